//! Leaf utilities every stage may use; they use no stage.

pub mod backoff;
mod clock;
pub mod group_commit;
pub mod signing;

pub use clock::Clock;
