//! The table of the process-level tests' handler (feature `test-hooks`,
//! never in a release build; `queue::test_hooks`): one row per applied
//! event, written in the finishing transaction, so an effect applied twice
//! shows as two rows.

use diesel::prelude::*;

use super::{with_tx, Backend, DbConnection, StoreError, Tx};

diesel::table! {
    test_effects (rowid) {
        rowid -> BigInt,
        event_id -> Text,
        worker -> Text,
    }
}

/// Creates the effects table if it is not there. On Postgres under a
/// transaction lock: two instances starting at once would otherwise both
/// create it (`CREATE TABLE IF NOT EXISTS` is no lock), one failing on
/// `pg_type`'s unique index.
pub(crate) fn prepare(conn: &mut DbConnection) -> Result<(), StoreError> {
    let sql = match conn.backend() {
        Backend::Sqlite => "CREATE TABLE IF NOT EXISTS test_effects (rowid INTEGER PRIMARY KEY, event_id TEXT NOT NULL, worker TEXT NOT NULL)",
        Backend::Postgres => "BEGIN; SELECT pg_advisory_xact_lock(7357); \
            CREATE TABLE IF NOT EXISTS test_effects (rowid BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, worker TEXT NOT NULL); COMMIT",
    };
    conn.batch_execute(sql)
}

/// Records that `worker` applied event `event_id`.
pub(crate) fn record(tx: &mut Tx<'_>, event_id: &str, worker: &str) -> QueryResult<()> {
    with_tx!(tx, c => diesel::insert_into(test_effects::table)
        .values((test_effects::event_id.eq(event_id), test_effects::worker.eq(worker)))
        .execute(c))?;
    Ok(())
}
