//! Ending an attempt (the SQL of one finish; `group_commit` batches them).
//! The handler's domain writes and the events' new status
//! commit in ONE transaction, and only while the lease is still ours: a
//! worker whose lease expired (and whose events another worker may have
//! taken) rolls everything back instead of applying twice.

use std::panic::AssertUnwindSafe;

use diesel::prelude::*;

use crate::store::outbox::status;
use crate::store::schema::{event_attempts, object_leases, webhook_events};
use crate::store::{with_tx, write_transaction, DbConnection, StoreError, Tx};

use super::{Apply, EventGroup, HandlerError};

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("lease lost: another worker took these events after the lease expired")]
    LeaseLost,
    #[error("handler failed while applying: {0}")]
    Handler(HandlerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The batch holding this finish did not commit.
    #[error("the finishing transaction did not commit: {0}")]
    Commit(String),
}

impl From<diesel::result::Error> for FinishError {
    fn from(e: diesel::result::Error) -> Self {
        FinishError::Store(StoreError::Query(e))
    }
}

/// What happened to each event of a failed group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedAs {
    Retry { next_attempt_at: i64 },
    Dead,
}

/// Marks the group's events: those in `handled` `done`, the rest `ignored`;
/// runs `apply` in the same transaction.
pub fn finish_success(
    conn: &mut DbConnection,
    group: &EventGroup,
    handled: &[String],
    apply: Option<Apply>,
    now: i64,
) -> Result<(), FinishError> {
    write_transaction(conn, |tx| success_in(tx, group, handled, apply, now))
}

/// [`finish_success`] inside an open transaction.
pub fn success_in(
    tx: &mut Tx<'_>,
    group: &EventGroup,
    handled: &[String],
    apply: Option<Apply>,
    now: i64,
) -> Result<(), FinishError> {
    super::claim::lock_object(tx, &group.key)?;
    let token = group.token.as_str();
    {
        let mut changed = 0;
        let done: Vec<&str> = handled.iter().map(String::as_str).collect();
        if !done.is_empty() {
            changed += mark(tx, token, &done, status::DONE, None, now, None)?;
        }
        // An ignored event says why, in its `last_error` (one note per type).
        for e in group
            .events
            .iter()
            .filter(|e| !handled.contains(&e.event_id))
        {
            let note = ignored_note(&e.event_type);
            changed += mark(
                tx,
                token,
                &[e.event_id.as_str()],
                status::IGNORED,
                Some(&note),
                now,
                None,
            )?;
        }
        if changed != group.events.len() {
            return Err(FinishError::LeaseLost);
        }
        if let Some(apply) = apply {
            match std::panic::catch_unwind(AssertUnwindSafe(|| apply(tx))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(FinishError::Handler(e)),
                Err(panic) => {
                    return Err(FinishError::Handler(HandlerError::retry(format!(
                        "handler panicked while applying: {}",
                        super::panic_message(&panic)
                    ))))
                }
            }
        }
        free_object(tx, token, &group.key)?;
        Ok(())
    }
}

/// What an `ignored` event records: no handler takes its type (stored and
/// visible, not an error). docs/architecture.md lists the types ignored on
/// purpose, and why.
pub fn ignored_note(event_type: &str) -> String {
    format!("ignored: no handler takes {event_type} (the types ignored on purpose, and why: docs/architecture.md, \"Event types\")")
}

/// Records a failed attempt: each event is retried after its backoff, or
/// `dead` once the budget is spent (`decide` says which).
pub fn finish_failure(
    conn: &mut DbConnection,
    group: &EventGroup,
    error: &str,
    now: i64,
    decide: &dyn Fn(&super::ClaimedEvent) -> FailedAs,
) -> Result<Vec<(String, FailedAs)>, FinishError> {
    let verdicts: Vec<FailedAs> = group.events.iter().map(decide).collect();
    write_transaction(conn, |tx| failure_in(tx, group, error, now, &verdicts))
}

/// [`finish_failure`] inside an open transaction, with each event's verdict.
pub fn failure_in(
    tx: &mut Tx<'_>,
    group: &EventGroup,
    error: &str,
    now: i64,
    verdicts: &[FailedAs],
) -> Result<Vec<(String, FailedAs)>, FinishError> {
    super::claim::lock_object(tx, &group.key)?;
    let token = group.token.as_str();
    {
        let mut results = Vec::with_capacity(group.events.len());
        for (event, verdict) in group.events.iter().zip(verdicts) {
            let verdict = verdict.clone();
            let changed = match &verdict {
                FailedAs::Retry { next_attempt_at } => mark(
                    tx,
                    token,
                    &[event.event_id.as_str()],
                    status::PENDING,
                    Some(error),
                    now,
                    Some(*next_attempt_at),
                )?,
                FailedAs::Dead => mark(
                    tx,
                    token,
                    &[event.event_id.as_str()],
                    status::DEAD,
                    Some(error),
                    now,
                    None,
                )?,
            };
            if changed != 1 {
                return Err(FinishError::LeaseLost);
            }
            results.push((event.event_id.clone(), verdict));
        }
        free_object(tx, token, &group.key)?;
        Ok(results)
    }
}

/// Sets the status of `ids` (still leased by `token`) and closes their
/// open attempt rows. Returns how many events changed.
fn mark(
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

fn free_object(tx: &mut Tx<'_>, token: &str, key: &str) -> QueryResult<usize> {
    with_tx!(tx, c => diesel::delete(
        object_leases::table
            .filter(object_leases::owner.eq(token))
            .filter(object_leases::object_key.eq(key)),
    )
    .execute(c))
}
