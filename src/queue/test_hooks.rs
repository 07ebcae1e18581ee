//! A handler for process-level tests (feature `test-hooks`, never in a
//! release build): each handled event adds one row to `test_effects` in the
//! finishing transaction, so an effect applied twice shows as two rows.
//! The test binary `tests/bin/effects.rs` serves with it.

use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{apply_fn, Apply, EventGroup, Handler, HandlerContext, HandlerError};
use crate::store::{with_tx, DbConnection, StoreError};

diesel::table! {
    test_effects (rowid) {
        rowid -> BigInt,
        event_id -> Text,
        worker -> Text,
    }
}

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

    /// Creates the effects table if it is not there. On Postgres under a
    /// transaction lock: two instances starting at once would otherwise
    /// both create it (`CREATE TABLE IF NOT EXISTS` is no lock), one failing
    /// on `pg_type`'s unique index.
    pub fn prepare(conn: &mut DbConnection) -> Result<(), StoreError> {
        let sql = match conn.backend() {
            crate::store::Backend::Sqlite => "CREATE TABLE IF NOT EXISTS test_effects (rowid INTEGER PRIMARY KEY, event_id TEXT NOT NULL, worker TEXT NOT NULL)",
            crate::store::Backend::Postgres => "BEGIN; SELECT pg_advisory_xact_lock(7357); \
                CREATE TABLE IF NOT EXISTS test_effects (rowid BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, worker TEXT NOT NULL); COMMIT",
        };
        conn.batch_execute(sql)
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
                    with_tx!(tx, c => diesel::insert_into(test_effects::table)
                        .values((test_effects::event_id.eq(id), test_effects::worker.eq(&worker)))
                        .execute(c))?;
                }
                Ok(())
            });
            Ok(apply)
        }
        .boxed()
    }
}
