//! [`Live`]: a value that a configuration reload can replace while readers
//! keep going. A reader takes the current `Arc` (a short read lock, no
//! allocation) and works with that snapshot until it is done, so a request
//! or a delivery under way finishes with the settings it started with.
//!
//! A `std` `RwLock<Arc<T>>` is the lightest choice here: reloads are rare,
//! the lock is held only to clone an `Arc`, and it costs no dependency.

use std::sync::{Arc, PoisonError, RwLock};

/// A shared, replaceable `Arc<T>`. Clones share the same cell.
#[derive(Debug)]
pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(Arc::clone(&self.0))
    }
}

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The current value. A poisoned lock still holds a whole `Arc` (the
    /// writer only swaps it), so it is used as is.
    pub fn get(&self) -> Arc<T> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the value; readers holding the old one keep it.
    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_snapshot_and_the_next_read_sees_the_new_value() {
        let live = Live::new(vec!["a"]);
        let other = live.clone();
        let before = live.get();
        other.set(vec!["b"]);
        assert_eq!(*before, vec!["a"]);
        assert_eq!(*live.get(), vec!["b"]);
    }
}
