//! The doors: what every write of a fact brings with it, whoever makes the
//! write.
//!
//! - **Events into the outbox** ([`super::outbox::insert_batch_in`], the
//!   only insert): the deliveries of the destinations that follow
//!   `received` are recorded in the same transaction, whether the events
//!   came through the intake, a catch-up (v1, v2, Connect) or any other way
//!   in ([`Hooks::set_received`]).
//! - **A customer's entitlement rows**: every write of them notes the
//!   customer ([`super::access_changes::note`]); at the end of the
//!   transaction that wrote them, whatever opened it (the runner's finish,
//!   the drift sweep, a resync), each noted customer's access is compared
//!   with the access last announced, once per customer, and a change is
//!   announced in that transaction ([`Hooks::set_access`]).
//!
//! The composition root (`app`) sets both; without them (a tool, a test of
//! one stage) nothing follows a write. Every connection of the store's pool
//! carries the store's hooks, so no caller can insert or write without them.

use std::sync::{Arc, RwLock};

use diesel::QueryResult;

use super::deliveries::EventHook;
use super::Tx;

/// One customer whose entitlement rows a transaction wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChange {
    pub customer: String,
    pub livemode: bool,
    /// The Stripe API version of the event that caused the write, if an
    /// event did (the announcement carries it, as Stripe's events do).
    pub api_version: Option<String>,
    /// What caused the writes (event ids, or `fetch:<seq>` for a sweep or
    /// resync): with the access reached, they make the announcement's id.
    pub causes: Vec<String>,
}

/// Runs at the end of a write transaction that wrote entitlement rows,
/// with the customers noted (in lock-key order) and the latest time a
/// writer noted; an error rolls the transaction back.
pub(crate) type AccessHook =
    Arc<dyn Fn(&mut Tx<'_>, &[AccessChange], i64) -> QueryResult<()> + Send + Sync>;

/// The hooks every write of the store's connections runs (shared by every
/// clone of the store and every connection of its pool).
#[derive(Default)]
pub struct Hooks {
    received: RwLock<Option<EventHook>>,
    access: RwLock<Option<AccessHook>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("received", &self.received().is_some())
            .field("access", &self.access().is_some())
            .finish()
    }
}

impl Hooks {
    /// What inserting events into the outbox records (the deliveries of
    /// `after = "received"` destinations).
    pub fn set_received(&self, hook: EventHook) {
        *self.received.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// What a change of entitlement rows announces.
    pub fn set_access(&self, hook: AccessHook) {
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    pub fn received(&self) -> Option<EventHook> {
        self.received
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn access(&self) -> Option<AccessHook> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
