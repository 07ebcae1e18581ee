//! Pruning finished events so the outbox does not grow without bound.
//! Only `done` and `ignored` events go; `dead` ones stay until an operator
//! acts. Deletes in small batches so no long lock is held. The delete
//! checks each event's status again ([`delete_finished`]): one replayed
//! since it was listed stays.

use diesel::prelude::*;

use super::status;
use crate::store::deliveries;
use crate::store::schema::{event_attempts, webhook_events};
use crate::store::{with_tx, write_transaction, DbConnection, StoreError, Tx};

/// Done or ignored events processed before `$older_than`.
macro_rules! finished_before {
    ($older_than:expr) => {
        webhook_events::table
            .filter(webhook_events::status.eq_any([status::DONE, status::IGNORED]))
            .filter(webhook_events::processed_at.lt($older_than))
    };
}

/// Deletes up to `batch` events finished before `older_than` (epoch ms),
/// with their attempt rows. Returns how many events were deleted.
pub(crate) fn prune_batch(
    conn: &mut DbConnection,
    older_than: i64,
    batch: usize,
) -> Result<usize, StoreError> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    let deleted = write_transaction(conn, |tx| -> Result<usize, diesel::result::Error> {
        let ids: Vec<String> = with_tx!(tx, c => finished_before!(older_than)
            .order(webhook_events::id.asc())
            .limit(limit)
            .select(webhook_events::event_id)
            .load(c))?;
        if ids.is_empty() {
            return Ok(0);
        }
        delete_finished(tx, &ids, older_than)
    })?;
    Ok(deleted)
}

/// The delete of [`prune_batch`]: of `ids` (read before, in the same
/// transaction), the events still finished before `older_than`, with their
/// attempt rows; how many events. Each statement checks the status again:
/// on Postgres a replay can commit between the read and the delete, and
/// the replayed event (pending again) stays, with its history.
pub fn delete_finished(
    tx: &mut Tx<'_>,
    ids: &[String],
    older_than: i64,
) -> Result<usize, diesel::result::Error> {
    // Deliveries that read their body from these events get a copy (a
    // copy for an event that stays is harmless: the same bytes).
    deliveries::keep_bodies_of(tx, ids)?;
    with_tx!(tx, c => {
        let gone: Vec<String> = diesel::delete(
            finished_before!(older_than).filter(webhook_events::event_id.eq_any(ids)),
        )
        .returning(webhook_events::event_id)
        .get_results(c)?;
        // The foreign key cascades too; this keeps it explicit.
        diesel::delete(event_attempts::table.filter(event_attempts::event_id.eq_any(&gone))).execute(c)?;
        Ok(gone.len())
    })
}

/// Prunes in batches until nothing older than `older_than` is left.
pub fn prune(conn: &mut DbConnection, older_than: i64, batch: usize) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let n = prune_batch(conn, older_than, batch)?;
        total += n;
        if n < batch {
            return Ok(total);
        }
    }
}
