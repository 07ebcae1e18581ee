//! The Postgres claim ([`super::claim`]'s steps) in three statements and an
//! asynchronous commit: round trips, not rows, are what a claim costs there.
//!
//! 1. `BEGIN; SET LOCAL synchronous_commit = off` and no bitmap scans
//!    ([`CLAIM_BEGIN`]; one round trip). A claim
//!    only leases events: if Postgres crashes before the claim's WAL reached
//!    the disk, the claim is gone as a whole — the events are still
//!    unclaimed and are taken again, and the worker's finish finds its lease
//!    gone and applies nothing. A later synchronous commit (every finish)
//!    flushes the claim's WAL with its own. So the claim does not wait for a
//!    WAL flush; nothing that is reported done depends on it.
//! 2. candidates, their distinct keys oldest first, try-locked
//!    (`pg_try_advisory_xact_lock`, never waits) up to `max_groups`: one
//!    statement.
//! 3. the object leases taken (an expired lease row is taken over in the
//!    same upsert), the due events of the objects won locked
//!    (`FOR UPDATE SKIP LOCKED`) and marked `processing`, attempts left open
//!    by a dead worker closed as abandoned, an attempt row opened for each:
//!    one statement of data-modifying CTEs. Its snapshot is taken after the
//!    keys' advisory locks are held, so every finish of these objects that
//!    committed before is seen.
//!
//! Both statements are prepared once per connection ([`Cached`]): planned
//! anew on every claim, they cost Postgres more than running them.
//!
//! Objects whose events another worker finished meanwhile (a lease won, no
//! event left) are let go in one more statement, only when that happens.

use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text};

use crate::store::prepared::{Bind, Cached};
use crate::store::StoreError;

use super::leased::{Claimed, ClaimedEvent, EventGroup, OBJECT_LOCK_CLASS};

/// Opens a claim's transaction: relaxed like the other queue writes
/// ([`crate::store::PG_RELAXED_BEGIN`]), and with no bitmap scans, so that
/// [`KEYS_SQL`] reads the due-events index in order, as a plain index scan.
/// A bitmap scan (what the planner takes for a generic plan, or without
/// statistics) visits every `pending` entry of the index, including those of
/// the events claimed since the last vacuum (their old versions), on every
/// claim; a plain index scan stops at the first few due events and marks
/// the dead entries it passes so that later scans skip them.
const CLAIM_BEGIN: &str =
    "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL enable_bitmapscan = off";

/// [`KEYS_SQL`] in diesel's statement cache.
struct KeysQuery;
/// [`CLAIM_SQL`] in diesel's statement cache.
struct ClaimQuery;

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(embed)]
    event: ClaimedEvent,
    /// The keys whose lease this claim won (the same on every row).
    #[diesel(sql_type = Array<Text>)]
    acquired: Vec<String>,
}

/// Candidates as in `claim::candidates` (due `pending` events by
/// (priority, next attempt), then expired `processing` ones, each list
/// limited, together sorted by (priority, id) and limited), their keys in
/// the order of each key's first candidate, and of those the first
/// `$4` whose advisory lock this transaction gets without waiting. The
/// try-lock is volatile, so it is not pushed below the ordering: keys are
/// tried in order and trying stops once `$4` are held. (`NOT IN`, which
/// Postgres runs as one hash of the leased keys, rather than `<> ALL`,
/// which it runs as a scan of them for every candidate.) One more row, with
/// no key, says that there were candidates (so that a claim that won no
/// key knows whether others hold them or there is no work).
const KEYS_SQL: &str = "\
WITH c AS (\
  SELECT id, object_key, priority FROM (\
    (SELECT id, object_key, priority FROM webhook_events \
      WHERE status = 'pending' AND next_attempt_at <= $1 \
        AND object_key NOT IN (SELECT object_key FROM object_leases WHERE expires_at >= $1) \
      ORDER BY priority, next_attempt_at LIMIT $2) \
    UNION ALL \
    (SELECT id, object_key, priority FROM webhook_events \
      WHERE status = 'processing' AND lease_expires_at < $1 \
        AND object_key NOT IN (SELECT object_key FROM object_leases WHERE expires_at >= $1) \
      LIMIT $2)\
  ) u ORDER BY priority, id LIMIT $2\
), k AS (\
  SELECT DISTINCT ON (object_key) object_key, priority, id FROM c ORDER BY object_key, priority, id\
) \
(SELECT o.object_key AS key FROM (SELECT object_key, priority, id FROM k ORDER BY priority, id) o \
  WHERE pg_try_advisory_xact_lock($3, hashtext(o.object_key)) LIMIT $4) \
UNION ALL (SELECT NULL::text AS key FROM k LIMIT 1)";

/// Leases, events, attempts (step 3). `$1` keys, `$2` token, `$3` lease
/// expiry, `$4` now, `$5` worker. The open attempts are found per claimed
/// event through the `event_id` index (the `LATERAL … OFFSET 0` keeps the
/// planner from turning it into a join that reads every attempt row: with
/// no statistics, as on a new database, it chose a sequential scan of
/// `event_attempts`, which grows with the history kept).
const CLAIM_SQL: &str = "\
WITH l AS (\
  INSERT INTO object_leases (object_key, owner, expires_at) \
  SELECT k, $2, $3 FROM unnest($1::text[]) AS k \
  ON CONFLICT (object_key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
  WHERE object_leases.expires_at < $4 \
  RETURNING object_key\
), ev AS (\
  SELECT id FROM webhook_events \
  WHERE object_key IN (SELECT object_key FROM l) \
    AND status IN ('pending', 'processing') \
    AND CASE WHEN status = 'pending' THEN next_attempt_at <= $4 ELSE lease_expires_at < $4 END \
  FOR UPDATE OF webhook_events SKIP LOCKED\
), u AS (\
  UPDATE webhook_events AS w \
  SET status = 'processing', lease_owner = $2, lease_expires_at = $3, attempts = w.attempts + 1 \
  FROM ev WHERE w.id = ev.id \
  RETURNING w.id, w.event_id, w.event_type, w.api_version, w.livemode, w.account, w.object_type, \
    w.object_id, w.object_key, w.stripe_created, w.received_at, w.queued_at, w.payload, w.attempts\
), ab AS (\
  UPDATE event_attempts AS a \
  SET finished_at = $4, outcome = 'abandoned', error = 'lease expired: the worker stopped without finishing' \
  WHERE a.id = ANY (ARRAY(\
    SELECT o.id FROM u CROSS JOIN LATERAL (\
      SELECT x.id FROM event_attempts AS x \
      WHERE x.event_id = u.event_id AND x.finished_at IS NULL OFFSET 0) AS o))\
), at AS (\
  INSERT INTO event_attempts (event_id, attempt, worker, started_at) \
  SELECT event_id, attempts, $5, $4 FROM u\
) \
SELECT u.*, coalesce((SELECT array_agg(object_key) FROM l), '{}') AS acquired FROM u ORDER BY u.id";

/// One claim attempt on Postgres (see the module's documentation).
pub(super) fn claim_once(
    c: &mut diesel::PgConnection,
    worker: &str,
    token: &str,
    now: i64,
    lease_ms: i64,
    max_groups: usize,
) -> Result<Claimed, StoreError> {
    let limit = i64::try_from(max_groups.saturating_mul(4)).unwrap_or(i64::MAX);
    let max = i64::try_from(max_groups).unwrap_or(i64::MAX);
    let expires = now.saturating_add(lease_ms);
    let claimed = crate::store::pg_transaction_with(c, CLAIM_BEGIN, |c| -> QueryResult<Claimed> {
        let keys: Vec<KeyRow> = Cached::<KeysQuery>::new(
            KEYS_SQL,
            vec![
                Bind::BigInt(now),
                Bind::BigInt(limit),
                Bind::Integer(OBJECT_LOCK_CLASS),
                Bind::BigInt(max),
            ],
        )
        .load(c)?;
        if keys.is_empty() {
            return Ok(Claimed::Nothing);
        }
        let keys: Vec<String> = keys.into_iter().filter_map(|k| k.key).collect();
        if keys.is_empty() {
            return Ok(Claimed::Contended);
        }
        let rows: Vec<ClaimedRow> = Cached::<ClaimQuery>::new(
            CLAIM_SQL,
            vec![
                Bind::Texts(&keys),
                Bind::Text(token),
                Bind::BigInt(expires),
                Bind::BigInt(now),
                Bind::Text(worker),
            ],
        )
        .load(c)?;
        let acquired = rows.first().map(|r| r.acquired.clone());
        let events: Vec<ClaimedEvent> = rows.into_iter().map(|r| r.event).collect();
        // Objects whose events another worker finished meanwhile: let go.
        // With no row at all, which leases were won is unknown: let go of
        // every key tried (only rows this claim owns go).
        let won = acquired.unwrap_or_else(|| keys.clone());
        let empty: Vec<&String> = won
            .iter()
            .filter(|k| !events.iter().any(|e| &e.object_key == *k))
            .collect();
        if !empty.is_empty() {
            use crate::store::schema::object_leases;
            diesel::delete(
                object_leases::table
                    .filter(object_leases::owner.eq(token))
                    .filter(object_leases::object_key.eq_any(empty)),
            )
            .execute(c)?;
        }
        Ok(Claimed::Groups(EventGroup::by_object(events, token)))
    })?;
    Ok(claimed)
}

#[derive(QueryableByName)]
struct KeyRow {
    /// `None`: the row saying that there were candidates.
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
}
