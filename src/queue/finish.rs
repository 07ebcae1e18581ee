//! Ending an attempt (the SQL of one finish; `group_commit` batches them).
//! The handler's domain writes and the events' new status
//! commit in ONE transaction, and only while the lease is still ours: a
//! worker whose lease expired (and whose events another worker may have
//! taken) rolls everything back instead of applying twice.

use std::panic::AssertUnwindSafe;

use crate::store::outbox::claim::lock_object;
use crate::store::outbox::finish::{free_object, mark};
use crate::store::outbox::status;
use crate::store::{write_transaction, DbConnection, StoreError, Tx};

pub(crate) use crate::store::outbox::finish::lock_objects;

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
pub(crate) enum FailedAs {
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
    write_transaction(conn, |tx| success_in(tx, group, handled, apply, None, now))
}

/// [`finish_success`] inside an open transaction, with `then` written after
/// `apply`.
pub(crate) fn success_in(
    tx: &mut Tx<'_>,
    group: &EventGroup,
    handled: &[String],
    apply: Option<Apply>,
    then: Option<Apply>,
    now: i64,
) -> Result<(), FinishError> {
    lock_object(tx, &group.key)?;
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
        for writes in [&apply, &then].into_iter().flatten() {
            run_writes(tx, writes)?;
        }
        free_object(tx, token, &group.key)?;
        Ok(())
    }
}

/// Runs one group's writes, a panic an error of the group.
fn run_writes(tx: &mut Tx<'_>, writes: &Apply) -> Result<(), FinishError> {
    caught(std::panic::catch_unwind(AssertUnwindSafe(|| {
        writes.write(tx)
    })))
}

/// Writes several groups' `batch` at once, when one of its kinds knows how
/// ([`super::Writes::write_batch`]); `None`: none does, nothing written.
#[cfg(feature = "postgres")]
fn run_batch(tx: &mut Tx<'_>, batch: &[&Apply]) -> Option<Result<(), FinishError>> {
    if batch.len() < 2 {
        return None;
    }
    let found = std::panic::catch_unwind(AssertUnwindSafe(|| {
        batch.iter().find_map(|w| w.write_batch(tx, batch))
    }));
    match found {
        Ok(None) => None,
        Ok(Some(result)) => Some(caught(Ok(result))),
        Err(panic) => Some(caught(Err(panic))),
    }
}

/// A handler's result, or its panic, as the finish's.
fn caught(result: std::thread::Result<Result<(), HandlerError>>) -> Result<(), FinishError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(FinishError::Handler(e)),
        Err(panic) => Err(FinishError::Handler(HandlerError::retry(format!(
            "handler panicked while applying: {}",
            super::panic_message(&panic)
        )))),
    }
}

/// What an `ignored` event records: no handler takes its type (stored and
/// visible, not an error). docs/architecture.md lists the types ignored on
/// purpose, and why.
pub(crate) fn ignored_note(event_type: &str) -> String {
    format!("ignored: no handler takes {event_type} (the types ignored on purpose, and why: docs/architecture.md, \"Event types\")")
}

/// Records a failed attempt inside an open transaction: each event is
/// retried after its backoff, or `dead` once the budget is spent, as its
/// verdict says.
pub(crate) fn failure_in(
    tx: &mut Tx<'_>,
    group: &EventGroup,
    error: &str,
    now: i64,
    verdicts: &[FailedAs],
) -> Result<Vec<(String, FailedAs)>, FinishError> {
    lock_object(tx, &group.key)?;
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

/// A successful group waiting to be finished with others (see [`successes_in`]).
pub struct Success {
    pub group: EventGroup,
    pub handled: Vec<String>,
    pub apply: Option<Apply>,
    /// Written after `apply`, in the same transaction (the runner's finish
    /// hook); never batched.
    pub then: Option<Apply>,
    pub now: i64,
}

/// Finishes the successful groups of one batch inside the open transaction,
/// with each group's result (the same as [`success_in`] in its own
/// savepoint would give).
///
/// On Postgres, in a fixed number of statements whatever the batch size
/// (round trips, not rows, are what a finish costs there): the objects'
/// locks (one statement, key order), which groups still hold their lease
/// (one), the groups' `apply`s under one savepoint (each in a savepoint of
/// its own only when one fails), then the events' marks, their attempt
/// rows and the object leases of every group that succeeded (one
/// statement, three data-modifying CTEs). A group whose lease is lost, or
/// whose `apply` fails, is left untouched, as before. SQLite
/// (in-process, one writer, fsync-bound) finishes each in a savepoint.
pub fn successes_in(
    tx: &mut Tx<'_>,
    jobs: Vec<Success>,
) -> Result<Vec<Result<(), FinishError>>, FinishError> {
    let mut keys: Vec<&str> = jobs.iter().map(|j| j.group.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    lock_objects(tx, &keys)?;
    successes_locked(tx, jobs, false)
}

/// [`successes_in`] for a caller that already holds the locks of every
/// job's object ([`lock_objects`]): one round trip fewer per batch.
/// `per_group`: finish each group in a savepoint of its own on Postgres too
/// (the way before set-based finishing; benchmarks compare the two,
/// [`super::BenchSwitches::finish_per_group`]).
pub(crate) fn successes_locked(
    tx: &mut Tx<'_>,
    jobs: Vec<Success>,
    per_group: bool,
) -> Result<Vec<Result<(), FinishError>>, FinishError> {
    // Only Postgres has another way.
    #[cfg(not(feature = "postgres"))]
    let _ = per_group;
    match tx {
        #[cfg(feature = "postgres")]
        Tx::Postgres(c) if !per_group => set_based::successes(c, jobs),
        _ => Ok(jobs
            .into_iter()
            .map(|j| {
                crate::store::savepoint(tx, |tx| {
                    success_in(tx, &j.group, &j.handled, j.apply, j.then, j.now)
                })
            })
            .collect()),
    }
}

#[cfg(feature = "postgres")]
mod set_based {
    use super::*;
    use crate::store::outbox::finish::{
        leased_by, mark_finished, rollback_to_savepoint, savepoint, Marks,
    };

    /// Runs a group's writes (`apply`, then `then`) in a savepoint of its
    /// own, in one round trip. Only a failed apply costs a second round
    /// trip (back to the savepoint), which undoes its writes alone. `Err`
    /// only when the transaction cannot go on (the batch then rolls back
    /// as a whole).
    fn apply_in_savepoint(
        c: &mut diesel::PgConnection,
        writes: &GroupWrites<'_>,
    ) -> Result<Result<(), FinishError>, FinishError> {
        savepoint(c, "hookd_apply")?;
        let applied = run_group(c, writes);
        if applied.is_err() {
            rollback_to_savepoint(c, "hookd_apply")?;
        }
        Ok(applied)
    }

    /// One group's writes: its apply, then what follows it.
    type GroupWrites<'a> = (Option<&'a Apply>, Option<&'a Apply>);

    fn run_group(
        c: &mut diesel::PgConnection,
        (apply, then): &GroupWrites<'_>,
    ) -> Result<(), FinishError> {
        for writes in [apply, then].into_iter().flatten() {
            super::run_writes(&mut Tx::Postgres(c), writes)?;
        }
        Ok(())
    }

    /// Runs the groups' writes, each group's undone alone if they fail.
    /// The applies go first, all at once where their kind knows how
    /// ([`crate::queue::Writes::write_batch`]: one statement for many
    /// groups' rows), else one by one in order; then each group's `then`.
    /// One savepoint for them all (one round trip per batch, not one per
    /// group); only when a write fails, back to it and each group again in
    /// a savepoint of its own ([`apply_in_savepoint`]): a group is written
    /// again only after its first writes were undone. `Err` only when the
    /// transaction cannot go on.
    fn apply_all(
        c: &mut diesel::PgConnection,
        groups: &[GroupWrites<'_>],
    ) -> Result<Vec<Result<(), FinishError>>, FinishError> {
        if groups.iter().all(|(a, t)| a.is_none() && t.is_none()) {
            return Ok(groups.iter().map(|_| Ok(())).collect());
        }
        savepoint(c, "hookd_applies")?;
        let applies: Vec<&Apply> = groups.iter().filter_map(|(a, _)| *a).collect();
        let applied = match super::run_batch(&mut Tx::Postgres(c), &applies) {
            Some(result) => result.is_ok(),
            None => applies
                .iter()
                .all(|a| super::run_writes(&mut Tx::Postgres(c), a).is_ok()),
        };
        let all_written = applied
            && groups
                .iter()
                .filter_map(|(_, t)| *t)
                .all(|t| super::run_writes(&mut Tx::Postgres(c), t).is_ok());
        if all_written {
            return Ok(groups.iter().map(|_| Ok(())).collect());
        }
        tracing::debug!(
            groups = groups.len(),
            "a write of the finish batch failed: each group written again alone"
        );
        rollback_to_savepoint(c, "hookd_applies")?;
        groups
            .iter()
            .map(|writes| apply_in_savepoint(c, writes))
            .collect()
    }

    pub(super) fn successes(
        c: &mut diesel::PgConnection,
        jobs: Vec<Success>,
    ) -> Result<Vec<Result<(), FinishError>>, FinishError> {
        // The caller holds the objects' locks. Which events are still ours:
        // leased under their group's token.
        let ids: Vec<&str> = jobs
            .iter()
            .flat_map(|j| j.group.events.iter().map(|e| e.event_id.as_str()))
            .collect();
        let owned = leased_by(c, &ids)?;
        let ours: Vec<bool> = jobs
            .iter()
            .map(|job| {
                let group = &job.group;
                group.events.iter().all(|e| {
                    owned.get(&e.event_id).and_then(|o| o.as_deref()) == Some(group.token.as_str())
                })
            })
            .collect();
        let writes: Vec<GroupWrites<'_>> = jobs
            .iter()
            .zip(&ours)
            .filter(|(_, ours)| **ours)
            .map(|(job, _)| (job.apply.as_ref(), job.then.as_ref()))
            .collect();
        let mut applied = apply_all(c, &writes)?.into_iter();
        let mut results = Vec::with_capacity(jobs.len());
        let mut marks = Marks::default();
        for (job, ours) in jobs.into_iter().zip(ours) {
            let group = &job.group;
            if !ours {
                results.push(Err(FinishError::LeaseLost));
                continue;
            }
            if let Some(Err(e)) = applied.next() {
                results.push(Err(e));
                continue;
            }
            for e in &group.events {
                let (outcome, note) = if job.handled.contains(&e.event_id) {
                    (status::DONE, None)
                } else {
                    (status::IGNORED, Some(super::ignored_note(&e.event_type)))
                };
                marks.event(&e.event_id, outcome, job.now, &group.token, note);
            }
            marks.lease(&group.key, &group.token);
            results.push(Ok(()));
        }
        if marks.events() == 0 {
            return Ok(results);
        }
        if mark_finished(c, &marks)? != marks.events() {
            // Checked under the objects' locks a moment ago: something
            // changed leased events without the lock. Undo the whole batch
            // (its leases expire and the events run again).
            return Err(FinishError::LeaseLost);
        }
        Ok(results)
    }
}
