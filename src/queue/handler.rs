//! The handler contract: what the runner hands a handler (a claimed group
//! of one object's events) and what it takes back (the writes to apply in
//! the finishing transaction, or an error that says whether to retry).

use std::any::Any;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

pub use crate::store::outbox::{ClaimedEvent, EventGroup};
use crate::store::{Store, Tx};
use crate::util::Clock;

/// Domain writes that commit together with the events' `done` mark.
pub type Apply = Box<dyn Writes>;

/// A handler's domain writes for one group, run in the transaction that
/// finishes it. A closure is one ([`apply_fn`]); a handler whose writes are
/// cheaper several groups at a time (one statement for many rows) also
/// implements [`Writes::write_batch`].
pub trait Writes: Send + 'static {
    /// Writes this group's changes.
    fn write(&self, tx: &mut Tx<'_>) -> Result<(), HandlerError>;

    /// Writes `batch` (the writes of the groups of one finish batch, in
    /// order, `self` among them) all at once, where this kind knows how;
    /// `None` (the default): it does not, and nothing was written. An
    /// `Err` is the batch's: the finish undoes what was written and writes
    /// each group alone, so that the failure stays with its own group.
    fn write_batch(&self, _tx: &mut Tx<'_>, _batch: &[&Apply]) -> Option<Result<(), HandlerError>> {
        None
    }

    /// For [`Writes::write_batch`] to find its own kind in a batch.
    fn as_any(&self) -> &dyn Any;
}

/// A closure as a group's writes.
struct FnWrites<F>(F);

impl<F> Writes for FnWrites<F>
where
    F: Fn(&mut Tx<'_>) -> Result<(), HandlerError> + Send + 'static,
{
    fn write(&self, tx: &mut Tx<'_>) -> Result<(), HandlerError> {
        (self.0)(tx)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `f` as a group's writes.
pub fn apply_fn<F>(f: F) -> Apply
where
    F: Fn(&mut Tx<'_>) -> Result<(), HandlerError> + Send + 'static,
{
    Box::new(FnWrites(f))
}

/// Why a handler could not apply a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// Wait at least this long before the next attempt (e.g. Stripe's 429).
    pub retry_after: Option<Duration>,
    /// Retrying cannot help (e.g. an API key of the wrong mode): dead at once.
    pub permanent: bool,
}

impl HandlerError {
    pub fn retry(message: impl Into<String>) -> Self {
        HandlerError {
            message: message.into(),
            retry_after: None,
            permanent: false,
        }
    }
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        HandlerError {
            retry_after: Some(after),
            ..HandlerError::retry(message)
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        HandlerError {
            permanent: true,
            ..HandlerError::retry(message)
        }
    }
}

impl From<diesel::result::Error> for HandlerError {
    fn from(e: diesel::result::Error) -> Self {
        HandlerError::retry(format!("database: {e}"))
    }
}

/// What the runner lends a handler for one group: the database (for what a
/// handler must read or take before its transaction, such as the order of
/// its fetches) and the runner's clock.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    pub store: Store,
    pub clock: Clock,
}

/// What the reconcile stage implements per event family.
pub trait Handler: Send + Sync + 'static {
    /// Whether this handler takes `event_type`; events no handler takes end
    /// `ignored` (stored, visible, not an error).
    fn handles(&self, event_type: &str) -> bool;

    /// Whether this handler takes this stored event; by default by its type
    /// alone ([`Handler::handles`]). The reconcile handler routes thin events
    /// by the object they name instead (docs/thin-events.md).
    fn handles_event(&self, event: &ClaimedEvent) -> bool {
        self.handles(&event.event_type)
    }

    /// Works out what to write for a group (only its handled events), with no
    /// transaction open; the returned [`Apply`] runs inside the transaction
    /// that marks the events `done`.
    fn handle(
        &self,
        group: EventGroup,
        cx: &HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>>;
}

/// A handler that takes nothing: every event ends `ignored`.
pub(crate) struct NoHandler;

impl Handler for NoHandler {
    fn handles(&self, _: &str) -> bool {
        false
    }
    fn handle(
        &self,
        _: EventGroup,
        _: &HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        futures_util::future::ready(Err(HandlerError::permanent("no handler"))).boxed()
    }
}
