//! Leaf utilities every stage may use; they use no stage.

pub(crate) mod backoff;
mod clock;
pub(crate) mod group_commit;
pub(crate) mod signing;

pub use clock::Clock;
