//! Claiming work from the outbox with leases, one object at a time.
//!
//! A claim runs in one write transaction and never waits for another
//! claim (on Postgres two claims that waited on each other's rows and
//! object leases once deadlocked):
//! 1. candidates: events that are due (`pending`, `next_attempt_at <= now`)
//!    or whose lease expired (`processing`, `lease_expires_at < now`), of
//!    objects nobody holds a live lease on — live events (from the intake)
//!    before background ones (replays, catch-up), oldest first within each;
//!    a hot object piling up events under another worker's lease cannot
//!    fill the candidate list and starve the others;
//! 2. their distinct object keys, oldest first: on Postgres each key is
//!    try-locked (`pg_try_advisory_xact_lock`, never waits) and those another
//!    transaction is claiming or finishing are passed by; up to `max_groups`
//!    keys are kept;
//! 3. for each kept key, take the object's lease in `object_leases` (delete
//!    it if expired, then `INSERT … ON CONFLICT DO NOTHING`): whoever inserts
//!    the row owns the object until it finishes or the lease expires, on
//!    every instance;
//! 4. mark every due event of the owned objects `processing` under the
//!    claim's token (coalescing: one handler call serves them all; Postgres
//!    takes them `FOR UPDATE SKIP LOCKED`, so a row another transaction holds
//!    is left for later rather than waited for), count the attempt, and open
//!    an attempt row for each.
//!
//! Whoever else writes an object's lease row or its events (finishing,
//! releasing) first takes the same advisory lock on the object
//! ([`lock_object`]), so a claim never waits on them.

use diesel::prelude::*;
#[cfg(feature = "postgres")]
use diesel::sql_types::{Array, BigInt, Integer, Text};

#[cfg(feature = "postgres")]
use super::claim_pg;
#[cfg(feature = "postgres")]
use super::leased::OBJECT_LOCK_CLASS;
use super::leased::{Claimed, ClaimedEvent, EventGroup};
use super::status;
use crate::store::schema::{event_attempts, object_leases, webhook_events};
use crate::store::{relaxed_transaction, with_tx, write_transaction, DbConnection, StoreError, Tx};

/// How often a claim that found work but lost every key to concurrent
/// claims looks again before reporting nothing (those claims commit within
/// milliseconds, and their objects then drop out of the candidates).
const CONTENDED_RETRIES: usize = 5;

/// The backend-specific steps of a claim.
trait ClaimLocks {
    /// Keeps up to `max` of `keys` (in order) that this transaction may
    /// claim; Postgres passes by keys another transaction holds.
    fn lock_keys(&mut self, keys: Vec<String>, max: usize) -> QueryResult<Vec<String>>;
    /// Ids of the due events of `keys`; Postgres locks them, skipping rows
    /// another transaction holds.
    fn lock_events(&mut self, keys: &[String], now: i64) -> QueryResult<Vec<i64>>;
    /// Waits for the object's advisory lock (finishing and releasing).
    fn lock_object(&mut self, key: &str) -> QueryResult<()>;
}

/// Objects with a live lease: their events wait, whatever their age.
macro_rules! leased_keys {
    ($now:expr) => {
        object_leases::table
            .filter(object_leases::expires_at.ge($now))
            .select(object_leases::object_key)
    };
}

macro_rules! due_query {
    ($now:expr, $limit:expr) => {
        webhook_events::table
            .filter(webhook_events::status.eq(status::PENDING))
            .filter(webhook_events::next_attempt_at.le($now))
            .filter(webhook_events::object_key.ne_all(leased_keys!($now)))
            .order((
                webhook_events::priority.asc(),
                webhook_events::next_attempt_at.asc(),
            ))
            .limit($limit)
            .select((
                webhook_events::id,
                webhook_events::object_key,
                webhook_events::priority,
            ))
    };
}

macro_rules! expired_query {
    ($now:expr, $limit:expr) => {
        webhook_events::table
            .filter(webhook_events::status.eq(status::PROCESSING))
            .filter(webhook_events::lease_expires_at.lt($now))
            .filter(webhook_events::object_key.ne_all(leased_keys!($now)))
            .limit($limit)
            .select((
                webhook_events::id,
                webhook_events::object_key,
                webhook_events::priority,
            ))
    };
}

/// Due or lease-expired events of `$keys`. A `CASE`, not an `OR` of the
/// two states: with an `OR`, SQLite's planner reads every due event through
/// the due index (the whole backlog) instead of these objects' events.
macro_rules! claimable_of {
    ($keys:expr, $now:expr) => {
        webhook_events::table
            .filter(webhook_events::object_key.eq_any($keys))
            .filter(webhook_events::status.eq_any([status::PENDING, status::PROCESSING]))
            .filter(
                diesel::dsl::case_when(
                    webhook_events::status.eq(status::PENDING),
                    webhook_events::next_attempt_at.le($now).nullable(),
                )
                .otherwise(webhook_events::lease_expires_at.lt($now))
                .assume_not_null(),
            )
            .select(webhook_events::id)
    };
}

impl ClaimLocks for diesel::sqlite::SqliteConnection {
    // One writer at a time (BEGIN IMMEDIATE): nothing to pass by.
    fn lock_keys(&mut self, mut keys: Vec<String>, max: usize) -> QueryResult<Vec<String>> {
        keys.truncate(max);
        Ok(keys)
    }
    fn lock_events(&mut self, keys: &[String], now: i64) -> QueryResult<Vec<i64>> {
        claimable_of!(keys, now).load(self)
    }
    fn lock_object(&mut self, _key: &str) -> QueryResult<()> {
        Ok(())
    }
}

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct LockedKey {
    #[diesel(sql_type = Text)]
    key: String,
}

#[cfg(feature = "postgres")]
impl ClaimLocks for diesel::pg::PgConnection {
    fn lock_keys(&mut self, keys: Vec<String>, max: usize) -> QueryResult<Vec<String>> {
        // LIMIT without ORDER BY: the keys are tried in array order and
        // trying stops once `max` are held.
        let rows: Vec<LockedKey> = diesel::sql_query(
            "SELECT k AS key FROM unnest($1::text[]) AS k \
             WHERE pg_try_advisory_xact_lock($2, hashtext(k)) LIMIT $3",
        )
        .bind::<Array<Text>, _>(&keys)
        .bind::<Integer, _>(OBJECT_LOCK_CLASS)
        .bind::<BigInt, _>(i64::try_from(max).unwrap_or(i64::MAX))
        .load(self)?;
        Ok(rows.into_iter().map(|r| r.key).collect())
    }
    fn lock_events(&mut self, keys: &[String], now: i64) -> QueryResult<Vec<i64>> {
        claimable_of!(keys, now)
            .for_update()
            .skip_locked()
            .load(self)
    }
    fn lock_object(&mut self, key: &str) -> QueryResult<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))::text AS key")
            .bind::<Integer, _>(OBJECT_LOCK_CLASS)
            .bind::<Text, _>(key)
            .load::<LockedKey>(self)
            .map(|_| ())
    }
}

/// Takes the advisory lock on `key`'s object for the rest of the
/// transaction (Postgres; SQLite has one writer anyway). Everything that
/// writes an object's lease row or its leased events outside a claim takes
/// it first, so claims, which only try it, never wait on them.
pub(crate) fn lock_object(tx: &mut Tx<'_>, key: &str) -> QueryResult<()> {
    with_tx!(tx, c => c.lock_object(key))
}

/// Candidate `(id, object_key, priority)` rows: live events before
/// background ones (replays, catch-up), oldest first within each. Two
/// index-friendly queries (due `pending` events, expired `processing` ones)
/// rather than one `OR` that would scan the whole outbox.
fn candidates(tx: &mut Tx<'_>, now: i64, limit: i64) -> QueryResult<Vec<(i64, String, i32)>> {
    let mut rows: Vec<(i64, String, i32)> = with_tx!(tx, c => {
        let mut rows: Vec<(i64, String, i32)> = due_query!(now, limit).load(c)?;
        rows.extend(expired_query!(now, limit).load::<(i64, String, i32)>(c)?);
        rows
    });
    rows.sort_by_key(|(id, _, priority)| (*priority, *id));
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
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
    claim_with(
        conn,
        worker,
        next_token,
        now,
        lease_ms,
        max_groups,
        PgClaim::default(),
    )
}

/// Which statements a claim on Postgres runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum PgClaim {
    /// `claim_pg`'s: fewer round trips, a relaxed commit.
    #[default]
    Native,
    /// The portable statements (one per step, a synchronous commit), as on
    /// SQLite: benchmarks compare the two in one build.
    Portable,
}

/// [`claim`], choosing the statements on Postgres (`pg`; SQLite has one
/// kind).
pub(crate) fn claim_with(
    conn: &mut DbConnection,
    worker: &str,
    next_token: &mut dyn FnMut() -> String,
    now: i64,
    lease_ms: i64,
    max_groups: usize,
    pg: PgClaim,
) -> Result<Vec<EventGroup>, StoreError> {
    // Only Postgres has another kind.
    #[cfg(not(feature = "postgres"))]
    let _ = pg;
    let max_groups = max_groups.max(1);
    for _ in 0..CONTENDED_RETRIES {
        let token = next_token();
        let claimed = match conn {
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(c, ..) if pg == PgClaim::Native => {
                claim_pg::claim_once(c, worker, &token, now, lease_ms, max_groups)?
            }
            _ => claim_once(conn, worker, &token, now, lease_ms, max_groups)?,
        };
        match claimed {
            Claimed::Groups(groups) => return Ok(groups),
            Claimed::Nothing => return Ok(Vec::new()),
            Claimed::Contended => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    Ok(Vec::new())
}

fn claim_once(
    conn: &mut DbConnection,
    worker: &str,
    token: &str,
    now: i64,
    lease_ms: i64,
    max_groups: usize,
) -> Result<Claimed, StoreError> {
    let limit = i64::try_from(max_groups.saturating_mul(4)).unwrap_or(i64::MAX);
    let expires = now.saturating_add(lease_ms);
    // Relaxed, as the Postgres claim: a claim lost to a power cut leaves the
    // events unclaimed, taken again; a finish (flushed) finds no lease.
    let claimed = relaxed_transaction(conn, |tx| -> Result<Claimed, diesel::result::Error> {
        let mut keys: Vec<String> = Vec::new();
        for (_, key, _) in candidates(tx, now, limit)? {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Ok(Claimed::Nothing);
        }
        let keys = with_tx!(tx, c => c.lock_keys(keys, max_groups))?;
        if keys.is_empty() {
            return Ok(Claimed::Contended);
        }
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
            let acquired: Vec<String> = diesel::insert_into(object_leases::table)
                .values(&rows)
                .on_conflict_do_nothing()
                .returning(object_leases::object_key)
                .get_results(c)?;
            let ids = c.lock_events(&acquired, now)?;
            let mut events: Vec<ClaimedEvent> = diesel::update(
                webhook_events::table.filter(webhook_events::id.eq_any(&ids)),
            )
            .set((
                webhook_events::status.eq(status::PROCESSING),
                webhook_events::lease_owner.eq(token),
                webhook_events::lease_expires_at.eq(expires),
                webhook_events::attempts.eq(webhook_events::attempts + 1),
            ))
            .returning(ClaimedEvent::as_returning())
            .get_results(c)?;
            events.sort_by_key(|e| e.id);
            // Objects whose events another worker finished meanwhile: let go.
            let empty: Vec<&String> = acquired
                .iter()
                .filter(|k| !events.iter().any(|e| &e.object_key == *k))
                .collect();
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
        Ok(Claimed::Groups(EventGroup::by_object(events, token)))
    })?;
    Ok(claimed)
}

/// Gives a claimed group back untouched (shutdown): its events become
/// `pending` again, the attempt is not counted, the object lease is freed.
/// Guarded by the token: a group that finished meanwhile is left alone.
pub(crate) fn release(
    conn: &mut DbConnection,
    group: &EventGroup,
    now: i64,
) -> Result<usize, StoreError> {
    let token = group.token.as_str();
    let released = write_transaction(conn, |tx| -> Result<usize, diesel::result::Error> {
        lock_object(tx, &group.key)?;
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
