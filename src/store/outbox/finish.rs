//! The SQL of ending an attempt: the events' new status and attempt rows,
//! the object's lease freed, only while the lease is still the caller's.
//! What runs around it (the handler's writes in the same transaction,
//! batching several groups) is the runner's (`queue::finish`).

use diesel::prelude::*;

use super::status;
use crate::store::schema::{event_attempts, object_leases, webhook_events};
use crate::store::{with_tx, Tx};

#[cfg(feature = "postgres")]
pub(crate) use super::finish_pg::{
    leased_by, mark_finished, rollback_to_savepoint, savepoint, Marks,
};

/// Takes the advisory locks of `keys`' objects, in the order given (sort
/// them: two transactions taking overlapping sets in one order cannot wait
/// on each other). Postgres; nothing on SQLite (one writer).
pub(crate) fn lock_objects(tx: &mut Tx<'_>, keys: &[&str]) -> QueryResult<()> {
    match tx {
        #[cfg(feature = "postgres")]
        Tx::Postgres(c) => super::finish_pg::lock_objects(c, keys),
        _ => {
            let _ = keys;
            Ok(())
        }
    }
}

/// Sets the status of `ids` (still leased by `token`) and closes their
/// open attempt rows. Returns how many events changed.
pub(crate) fn mark(
    tx: &mut Tx<'_>,
    token: &str,
    ids: &[&str],
    new_status: &str,
    error: Option<&str>,
    now: i64,
    next_attempt_at: Option<i64>,
) -> QueryResult<usize> {
    let finished = new_status != status::PENDING;
    let attempt_outcome = match new_status {
        status::PENDING => "failed",
        other => other,
    };
    with_tx!(tx, c => {
        let owned = webhook_events::table
            .filter(webhook_events::lease_owner.eq(token))
            .filter(webhook_events::status.eq(status::PROCESSING))
            .filter(webhook_events::event_id.eq_any(ids));
        let changed = match next_attempt_at {
            Some(at) => diesel::update(owned)
                .set((
                    webhook_events::status.eq(new_status),
                    webhook_events::lease_owner.eq(None::<String>),
                    webhook_events::lease_expires_at.eq(None::<i64>),
                    webhook_events::last_error.eq(error),
                    webhook_events::next_attempt_at.eq(at),
                ))
                .execute(c)?,
            None => diesel::update(owned)
                .set((
                    webhook_events::status.eq(new_status),
                    webhook_events::lease_expires_at.eq(None::<i64>),
                    webhook_events::last_error.eq(error),
                    webhook_events::processed_at.eq(finished.then_some(now)),
                ))
                .execute(c)?,
        };
        diesel::update(
            event_attempts::table
                .filter(event_attempts::event_id.eq_any(ids))
                .filter(event_attempts::finished_at.is_null()),
        )
        .set((
            event_attempts::finished_at.eq(now),
            event_attempts::outcome.eq(attempt_outcome),
            event_attempts::error.eq(error),
        ))
        .execute(c)?;
        Ok(changed)
    })
}

/// Frees `key`'s object lease if `token` still holds it.
pub(crate) fn free_object(tx: &mut Tx<'_>, token: &str, key: &str) -> QueryResult<usize> {
    with_tx!(tx, c => diesel::delete(
        object_leases::table
            .filter(object_leases::owner.eq(token))
            .filter(object_leases::object_key.eq(key)),
    )
    .execute(c))
}
