//! Postgres' set-based finish: a fixed number of statements whatever the
//! batch size (round trips, not rows, are what a finish costs there).

use std::collections::HashMap;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel::PgConnection;

use super::leased::OBJECT_LOCK_CLASS;
use super::status;
use crate::store::prepared::{Bind, Cached};
use crate::store::schema::webhook_events;

/// The objects' locks, prepared once per connection (see [`Cached`]).
struct LockObjects;
/// The batch's marks, attempt rows and leases, prepared likewise.
struct MarkFinished;

#[derive(QueryableByName)]
struct Changed {
    #[diesel(sql_type = BigInt)]
    changed: i64,
}

pub(super) fn lock_objects(c: &mut PgConnection, keys: &[&str]) -> QueryResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    // A function scan yields the array's elements in order.
    Cached::<LockObjects>::new(
        "SELECT pg_advisory_xact_lock($1, hashtext(k)) FROM unnest($2::text[]) AS k",
        vec![Bind::Integer(OBJECT_LOCK_CLASS), Bind::TextRefs(keys)],
    )
    .execute(c)
    .map(|_| ())
}

/// Which of `ids` are `processing`, with their lease token.
pub(crate) fn leased_by(
    c: &mut PgConnection,
    ids: &[&str],
) -> QueryResult<HashMap<String, Option<String>>> {
    let owned: Vec<(String, Option<String>)> = webhook_events::table
        .filter(webhook_events::event_id.eq_any(ids))
        .filter(webhook_events::status.eq(status::PROCESSING))
        .select((webhook_events::event_id, webhook_events::lease_owner))
        .load(c)?;
    Ok(owned.into_iter().collect())
}

/// Opens a savepoint in one round trip (diesel's savepoints take two:
/// `SAVEPOINT` and `RELEASE`). It is not released: Postgres releases it
/// with the transaction, and a later one of the same name hides it.
pub(crate) fn savepoint(c: &mut PgConnection, name: &str) -> QueryResult<()> {
    c.batch_execute(&format!("SAVEPOINT {name}"))
}

/// Undoes what was written since [`savepoint`] `name` (diesel's transaction
/// manager, marked "requires rollback" by a failed statement, is repaired
/// by this statement's success).
pub(crate) fn rollback_to_savepoint(c: &mut PgConnection, name: &str) -> QueryResult<()> {
    c.batch_execute(&format!("ROLLBACK TO SAVEPOINT {name}"))
}

/// The rows of the groups of a batch that end well: each event's new status
/// (with the note of an ignored one) and each group's object lease.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    event_ids: Vec<String>,
    statuses: Vec<&'static str>,
    at: Vec<i64>,
    tokens: Vec<String>,
    notes: Vec<Option<String>>,
    lease_keys: Vec<String>,
    lease_tokens: Vec<String>,
}

impl Marks {
    /// `event_id` (leased under `token`) ends `status` at `at`.
    pub(crate) fn event(
        &mut self,
        event_id: &str,
        status: &'static str,
        at: i64,
        token: &str,
        note: Option<String>,
    ) {
        self.event_ids.push(event_id.to_owned());
        self.statuses.push(status);
        self.at.push(at);
        self.tokens.push(token.to_owned());
        self.notes.push(note);
    }

    /// The lease of `key` held under `token` is freed.
    pub(crate) fn lease(&mut self, key: &str, token: &str) {
        self.lease_keys.push(key.to_owned());
        self.lease_tokens.push(token.to_owned());
    }

    pub(crate) fn events(&self) -> usize {
        self.event_ids.len()
    }
}

/// Writes `marks` in one statement: the events' status, their attempt rows
/// and the object leases (data-modifying CTEs all run, read or not).
/// Returns how many events changed (those still `processing` under their
/// token).
pub(crate) fn mark_finished(c: &mut PgConnection, marks: &Marks) -> QueryResult<usize> {
    if marks.event_ids.is_empty() {
        return Ok(0);
    }
    // `a.event_id = ANY($1)` repeats the join so that the attempt rows are
    // found through their index: joined to `v` alone, a planner without
    // statistics (a new database) reads every attempt row of the history.
    let changed: Vec<Changed> = Cached::<MarkFinished>::planned_each_time(
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) \
           AS v(id, st, at, tok, note)), \
         e AS (UPDATE webhook_events AS e \
           SET status = v.st, lease_expires_at = NULL, last_error = v.note, processed_at = v.at \
           FROM v WHERE e.event_id = v.id AND e.status = 'processing' AND e.lease_owner = v.tok \
           RETURNING 1), \
         a AS (UPDATE event_attempts AS a SET finished_at = v.at, outcome = v.st, error = v.note \
           FROM v WHERE a.event_id = v.id AND a.event_id = ANY($1::text[]) AND a.finished_at IS NULL \
           RETURNING 1), \
         l AS (DELETE FROM object_leases AS l USING unnest($6::text[], $7::text[]) AS w(k, tok) \
           WHERE l.object_key = w.k AND l.owner = w.tok RETURNING 1) \
         SELECT (SELECT count(*) FROM e) AS changed",
        vec![
            Bind::Texts(&marks.event_ids),
            Bind::TextRefs(&marks.statuses),
            Bind::BigInts(&marks.at),
            Bind::Texts(&marks.tokens),
            Bind::NullableTexts(&marks.notes),
            Bind::Texts(&marks.lease_keys),
            Bind::Texts(&marks.lease_tokens),
        ],
    )
    .load(c)?;
    Ok(changed
        .first()
        .map_or(0, |c| usize::try_from(c.changed).unwrap_or(usize::MAX)))
}
