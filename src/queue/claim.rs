//! Claiming work from the outbox with leases, one object at a time.
//!
//! A claim runs in one write transaction:
//! 1. candidates: events that are due (`pending`, `next_attempt_at <= now`)
//!    or whose lease expired (`processing`, `lease_expires_at < now`), oldest
//!    first — on Postgres `FOR UPDATE SKIP LOCKED`, so instances claiming at
//!    once pass each other by;
//! 2. for each distinct object key, take the object's lease in
//!    `object_leases` (delete it if expired, then `INSERT … ON CONFLICT DO
//!    NOTHING`): whoever inserts the row owns the object until it finishes or
//!    the lease expires, on every instance;
//! 3. mark every due event of that object `processing` under a fresh token
//!    (coalescing: one handler call serves them all), count the attempt, and
//!    open an attempt row for each.

use diesel::prelude::*;

use crate::store::outbox::status;
use crate::store::schema::{event_attempts, object_leases, webhook_events};
use crate::store::{with_tx, write_transaction, DbConnection, StoreError};

use super::{ClaimedEvent, EventGroup};

/// Loads candidate `(id, object_key)` rows; Postgres skips rows locked by
/// another instance's claim. Two index-friendly queries (due `pending`
/// events, expired `processing` ones) rather than one `OR` that would scan
/// the whole outbox.
trait Candidates {
    fn candidates(&mut self, now: i64, limit: i64) -> QueryResult<Vec<(i64, String)>>;
}

macro_rules! due_query {
    ($now:expr, $limit:expr) => {
        webhook_events::table
            .filter(webhook_events::status.eq(status::PENDING))
            .filter(webhook_events::next_attempt_at.le($now))
            .order(webhook_events::next_attempt_at.asc())
            .limit($limit)
            .select((webhook_events::id, webhook_events::object_key))
    };
}

macro_rules! expired_query {
    ($now:expr, $limit:expr) => {
        webhook_events::table
            .filter(webhook_events::status.eq(status::PROCESSING))
            .filter(webhook_events::lease_expires_at.lt($now))
            .limit($limit)
            .select((webhook_events::id, webhook_events::object_key))
    };
}

fn oldest_first(mut rows: Vec<(i64, String)>, limit: i64) -> Vec<(i64, String)> {
    rows.sort_by_key(|(id, _)| *id);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    rows
}

impl Candidates for diesel::sqlite::SqliteConnection {
    fn candidates(&mut self, now: i64, limit: i64) -> QueryResult<Vec<(i64, String)>> {
        let mut rows = due_query!(now, limit).load(self)?;
        rows.extend(expired_query!(now, limit).load::<(i64, String)>(self)?);
        Ok(oldest_first(rows, limit))
    }
}

#[cfg(feature = "postgres")]
impl Candidates for diesel::pg::PgConnection {
    fn candidates(&mut self, now: i64, limit: i64) -> QueryResult<Vec<(i64, String)>> {
        let mut rows = due_query!(now, limit)
            .for_update()
            .skip_locked()
            .load(self)?;
        rows.extend(
            expired_query!(now, limit)
                .for_update()
                .skip_locked()
                .load::<(i64, String)>(self)?,
        );
        Ok(oldest_first(rows, limit))
    }
}

/// Claims up to `max_groups` objects' due events for `worker`, in a fixed
/// number of statements whatever the batch size (round trips, not rows, are
/// what a claim costs on Postgres). `next_token` makes the claim's lease
/// token; the groups of one claim share it and are told apart by their key.
pub fn claim(
    conn: &mut DbConnection,
    worker: &str,
    next_token: &mut dyn FnMut() -> String,
    now: i64,
    lease_ms: i64,
    max_groups: usize,
) -> Result<Vec<EventGroup>, StoreError> {
    let limit = i64::try_from(max_groups.saturating_mul(4))
        .unwrap_or(i64::MAX)
        .max(1);
    let token = next_token();
    let expires = now.saturating_add(lease_ms);
    let groups = write_transaction(
        conn,
        |tx| -> Result<Vec<EventGroup>, diesel::result::Error> {
            let candidates = with_tx!(tx, c => c.candidates(now, limit))?;
            let mut keys: Vec<String> = Vec::new();
            for (_, key) in candidates {
                if !keys.contains(&key) {
                    keys.push(key);
                    if keys.len() >= max_groups {
                        break;
                    }
                }
            }
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let token = token.as_str();
            let events: Vec<ClaimedEvent> = with_tx!(tx, c => {
                // Expired leases of these objects go; then whoever inserts an
                // object's row owns it until it finishes or the lease expires.
                diesel::delete(
                    object_leases::table
                        .filter(object_leases::object_key.eq_any(&keys))
                        .filter(object_leases::expires_at.lt(now)),
                )
                .execute(c)?;
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        (
                            object_leases::object_key.eq(k.as_str()),
                            object_leases::owner.eq(token),
                            object_leases::expires_at.eq(expires),
                        )
                    })
                    .collect();
                diesel::insert_into(object_leases::table)
                    .values(&rows)
                    .on_conflict_do_nothing()
                    .execute(c)?;
                let acquired: Vec<String> = object_leases::table
                    .filter(object_leases::owner.eq(token))
                    .filter(object_leases::object_key.eq_any(&keys))
                    .select(object_leases::object_key)
                    .load(c)?;
                diesel::update(
                    webhook_events::table.filter(webhook_events::object_key.eq_any(&acquired)).filter(
                        webhook_events::status
                            .eq(status::PENDING)
                            .and(webhook_events::next_attempt_at.le(now))
                            .or(webhook_events::status
                                .eq(status::PROCESSING)
                                .and(webhook_events::lease_expires_at.lt(now))),
                    ),
                )
                .set((
                    webhook_events::status.eq(status::PROCESSING),
                    webhook_events::lease_owner.eq(token),
                    webhook_events::lease_expires_at.eq(expires),
                    webhook_events::attempts.eq(webhook_events::attempts + 1),
                ))
                .execute(c)?;
                let events: Vec<ClaimedEvent> = webhook_events::table
                    .filter(webhook_events::object_key.eq_any(&acquired))
                    .filter(webhook_events::status.eq(status::PROCESSING))
                    .filter(webhook_events::lease_owner.eq(token))
                    .order(webhook_events::id.asc())
                    .select(ClaimedEvent::as_select())
                    .load(c)?;
                // Objects whose events another worker finished meanwhile: let go.
                let empty: Vec<&String> = acquired.iter().filter(|k| !events.iter().any(|e| &e.object_key == *k)).collect();
                if !empty.is_empty() {
                    diesel::delete(
                        object_leases::table
                            .filter(object_leases::owner.eq(token))
                            .filter(object_leases::object_key.eq_any(empty)),
                    )
                    .execute(c)?;
                }
                let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
                // Attempts left open by a worker that died are closed as abandoned.
                diesel::update(
                    event_attempts::table
                        .filter(event_attempts::event_id.eq_any(&ids))
                        .filter(event_attempts::finished_at.is_null()),
                )
                .set((
                    event_attempts::finished_at.eq(now),
                    event_attempts::outcome.eq("abandoned"),
                    event_attempts::error.eq("lease expired: the worker stopped without finishing"),
                ))
                .execute(c)?;
                let rows: Vec<_> = events
                    .iter()
                    .map(|e| {
                        (
                            event_attempts::event_id.eq(e.event_id.as_str()),
                            event_attempts::attempt.eq(e.attempts),
                            event_attempts::worker.eq(worker),
                            event_attempts::started_at.eq(now),
                        )
                    })
                    .collect();
                diesel::insert_into(event_attempts::table).values(&rows).execute(c)?;
                events
            });
            // One group per object, in the order of their oldest event.
            let mut groups: Vec<EventGroup> = Vec::new();
            for event in events {
                match groups.iter_mut().find(|g| g.key == event.object_key) {
                    Some(group) => group.events.push(event),
                    None => groups.push(EventGroup {
                        key: event.object_key.clone(),
                        token: token.to_owned(),
                        events: vec![event],
                    }),
                }
            }
            Ok(groups)
        },
    )?;
    Ok(groups)
}

/// Gives a claimed group back untouched (shutdown): its events become
/// `pending` again, the attempt is not counted, the object lease is freed.
/// Guarded by the token: a group that finished meanwhile is left alone.
pub fn release(conn: &mut DbConnection, group: &EventGroup, now: i64) -> Result<usize, StoreError> {
    let token = group.token.as_str();
    let released = write_transaction(conn, |tx| -> Result<usize, diesel::result::Error> {
        with_tx!(tx, c => {
            let ids: Vec<String> = webhook_events::table
                .filter(webhook_events::object_key.eq(&group.key))
                .filter(webhook_events::status.eq(status::PROCESSING))
                .filter(webhook_events::lease_owner.eq(token))
                .select(webhook_events::event_id)
                .load(c)?;
            diesel::update(
                webhook_events::table
                    .filter(webhook_events::object_key.eq(&group.key))
                    .filter(webhook_events::status.eq(status::PROCESSING))
                    .filter(webhook_events::lease_owner.eq(token)),
            )
            .set((
                webhook_events::status.eq(status::PENDING),
                webhook_events::attempts.eq(webhook_events::attempts - 1),
                webhook_events::lease_owner.eq(None::<String>),
                webhook_events::lease_expires_at.eq(None::<i64>),
                webhook_events::next_attempt_at.eq(now),
            ))
            .execute(c)?;
            diesel::update(
                event_attempts::table
                    .filter(event_attempts::event_id.eq_any(&ids))
                    .filter(event_attempts::finished_at.is_null()),
            )
            .set((
                event_attempts::finished_at.eq(now),
                event_attempts::outcome.eq("released"),
                event_attempts::error.eq("released at shutdown before it finished"),
            ))
            .execute(c)?;
            diesel::delete(
                object_leases::table
                    .filter(object_leases::owner.eq(token))
                    .filter(object_leases::object_key.eq(&group.key)),
            )
            .execute(c)?;
            Ok(ids.len())
        })
    })?;
    Ok(released)
}
