//! A handler for process-level tests (feature `test-hooks`, never in a
//! release build): each handled event adds one row to `test_effects` in the
//! finishing transaction ([`crate::store::test_effects`]), so an effect
//! applied twice shows as two rows.
//! The test binary `tests/bin/effects.rs` serves with it.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{apply_fn, Apply, EventGroup, Handler, HandlerContext, HandlerError};
use crate::store::test_effects as effects;
use crate::store::{DbConnection, StoreError};

/// The effects table (the tests read it).
pub use crate::store::test_effects::test_effects;

pub struct EffectsHandler {
    delay: Duration,
    worker: String,
}

impl EffectsHandler {
    /// Every call waits `delay` before it applies.
    pub fn new(delay: Duration) -> EffectsHandler {
        EffectsHandler {
            delay,
            worker: format!("pid{}", std::process::id()),
        }
    }

    /// Creates the effects table if it is not there
    /// ([`effects::prepare`]).
    pub fn prepare(conn: &mut DbConnection) -> Result<(), StoreError> {
        effects::prepare(conn)
    }
}

impl Handler for EffectsHandler {
    fn handles(&self, _: &str) -> bool {
        true
    }

    fn handle(
        &self,
        group: EventGroup,
        _: &HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        let delay = self.delay;
        let worker = self.worker.clone();
        async move {
            tokio::time::sleep(delay).await;
            let ids: Vec<String> = group.events.iter().map(|e| e.event_id.clone()).collect();
            let apply: Apply = apply_fn(move |tx| {
                for id in &ids {
                    effects::record(tx, id, &worker)?;
                }
                Ok(())
            });
            Ok(apply)
        }
        .boxed()
    }
}
