//! Pruning finished deliveries so `deliveries` and `delivery_attempts` do
//! not grow without bound (`runner.retention_days`, run by the runner's
//! prune loop next to the events' pruning).
//!
//! Only finished ones go, with their attempt rows: `delivered` ones whose
//! `delivered_at` is before the horizon, `discarded` ones whose
//! `discarded_at` is. `pending`, `delivering` and `dead` ones stay (dead
//! until an operator acts, like dead events). Order is unaffected: only
//! pending and delivering rows hold a later one of their object back, and
//! those are never pruned. `access_snapshots` (the access last announced,
//! that the next `stripe_hookd.access.updated` is computed against) is
//! never pruned. Small batches, one transaction each: no long write lock.

use diesel::prelude::*;

use super::status;
use crate::store::schema::{deliveries, delivery_attempts};
use crate::store::{with_tx, write_transaction, DbConnection, StoreError};

/// What one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: usize,
    pub attempts: usize,
}

/// Deletes up to `limit` deliveries of `$status` whose `$at` is before
/// `$older_than`, oldest first; the delivery ids deleted. The delete checks
/// the row again: one redelivered meanwhile (pending again) stays.
macro_rules! delete_finished {
    ($tx:expr, $status:expr, $at:expr, $older_than:expr, $limit:expr) => {
        with_tx!($tx, c => {
            // `|| ''`: not an index term, so SQLite walks the index on
            // `$at` from the oldest (and stops at the limit) instead of
            // sorting every delivery of that status.
            let ids: Vec<i64> = deliveries::table
                .filter($at.lt($older_than))
                .filter(deliveries::status.concat("").eq($status))
                .order($at.asc())
                .limit($limit)
                .select(deliveries::id)
                .load(c)?;
            if ids.is_empty() {
                Ok::<Vec<String>, diesel::result::Error>(Vec::new())
            } else {
                diesel::delete(
                    deliveries::table
                        .filter(deliveries::id.eq_any(&ids))
                        .filter(deliveries::status.eq($status))
                        .filter($at.lt($older_than)),
                )
                .returning(deliveries::delivery_id)
                .get_results(c)
            }
        })
    };
}

/// Deletes up to `batch` deliveries finished (delivered or discarded)
/// before `older_than` (epoch ms), with their attempt rows, in one
/// transaction.
pub(crate) fn prune_batch(
    conn: &mut DbConnection,
    older_than: i64,
    batch: usize,
) -> Result<Pruned, StoreError> {
    let limit = i64::try_from(batch).unwrap_or(i64::MAX);
    write_transaction(conn, |tx| -> Result<Pruned, diesel::result::Error> {
        let mut gone: Vec<String> = delete_finished!(
            tx,
            status::DELIVERED,
            deliveries::delivered_at,
            older_than,
            limit
        )?;
        let left = limit.saturating_sub(i64::try_from(gone.len()).unwrap_or(i64::MAX));
        if left > 0 {
            gone.extend(delete_finished!(
                tx,
                status::DISCARDED,
                deliveries::discarded_at,
                older_than,
                left
            )?);
        }
        if gone.is_empty() {
            return Ok(Pruned::default());
        }
        let attempts = with_tx!(tx, c => diesel::delete(
            delivery_attempts::table.filter(delivery_attempts::delivery_id.eq_any(&gone)),
        )
        .execute(c))?;
        Ok(Pruned {
            deliveries: gone.len(),
            attempts,
        })
    })
    .map_err(StoreError::from)
}

/// Prunes in batches of `batch` until nothing finished before
/// `older_than` is left.
pub fn prune(conn: &mut DbConnection, older_than: i64, batch: usize) -> Result<Pruned, StoreError> {
    let mut total = Pruned::default();
    loop {
        let n = prune_batch(conn, older_than, batch)?;
        total.deliveries += n.deliveries;
        total.attempts += n.attempts;
        if n.deliveries < batch {
            return Ok(total);
        }
    }
}
