//! Group commit for finishing attempts: the finishes of groups processed at
//! the same time share one transaction (one fsync), each in its own
//! savepoint so that one failure cannot undo its neighbours. A finish is
//! reported done only after the transaction holding it committed.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use tokio::sync::{mpsc, oneshot};

use super::finish::{self, FailedAs, FinishError};
use super::{Apply, BenchSwitches, EventGroup};
use crate::store::{savepoint, write_transaction, Backend, Store};
use crate::util::group_commit;

/// Finishing threads on Postgres. Two: with a statement's worth of round
/// trips per batch (set-based finish, prepared statements), more threads
/// make smaller batches that contend on the same pages; one is fastest
/// with nothing to write (the no-op runner) and slower when the finish
/// carries the reconcile handlers' writes (docs/performance.md, "Fewer
/// round trips per claim and per finish").
const PG_DEFAULT_THREADS: usize = 2;

/// How many finishing threads [`Finisher::start`] starts on `backend`
/// (unless a benchmark says otherwise, [`BenchSwitches::pg_finisher_threads`]).
pub fn threads(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => PG_DEFAULT_THREADS,
    }
}

/// Most finishes in one transaction.
const MAX_BATCH: usize = 64;

pub(crate) type Verdicts = Vec<(String, FailedAs)>;

enum Job {
    Success {
        group: EventGroup,
        handled: Vec<String>,
        apply: Option<Apply>,
        then: Option<Apply>,
        now: i64,
        reply: oneshot::Sender<Result<(), FinishError>>,
    },
    Failure {
        group: EventGroup,
        error: String,
        now: i64,
        verdicts: Vec<FailedAs>,
        reply: oneshot::Sender<Result<Verdicts, FinishError>>,
    },
}

impl Job {
    fn key(&self) -> &str {
        match self {
            Job::Success { group, .. } | Job::Failure { group, .. } => &group.key,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Finisher {
    tx: mpsc::UnboundedSender<Job>,
}

impl Finisher {
    /// Starts the finishing threads: one on SQLite (one writer at a time
    /// anyway), several on Postgres (where round trips, not fsync, bound a
    /// single thread). They end when every `Finisher` is dropped.
    /// `bench`: the ways of finishing a benchmark compares (default: none).
    pub(crate) fn start(store: Store, bench: BenchSwitches) -> std::io::Result<Finisher> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let threads = match (store.backend(), bench.pg_finisher_threads) {
            (Backend::Postgres, Some(n)) if n > 0 => n,
            (backend, _) => threads(backend),
        };
        let per_group = bench.finish_per_group;
        group_commit::start("hookd-finisher", threads, rx, MAX_BATCH, move |batch| {
            commit(&store, batch, per_group)
        })?;
        Ok(Finisher { tx })
    }

    /// Queues a successful group's finish now (before the returned future
    /// is first polled) and answers once the transaction holding it ended.
    /// `then` (the runner's finish hook) is written after `apply`, in the
    /// same transaction.
    pub(crate) fn success(
        &self,
        group: EventGroup,
        handled: Vec<String>,
        apply: Option<Apply>,
        then: Option<Apply>,
        now: i64,
    ) -> impl Future<Output = Result<(), FinishError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Job::Success {
            group,
            handled,
            apply,
            then,
            now,
            reply,
        });
        async move {
            sent.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        }
    }

    /// Queues a failed group's finish now (before the returned future is
    /// first polled) and answers once the transaction holding it ended.
    pub(crate) fn failure(
        &self,
        group: EventGroup,
        error: String,
        now: i64,
        verdicts: Vec<FailedAs>,
    ) -> impl Future<Output = Result<Verdicts, FinishError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Job::Failure {
            group,
            error,
            now,
            verdicts,
            reply,
        });
        async move {
            sent.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        }
    }
}

fn stopped() -> FinishError {
    FinishError::Commit("the finisher has stopped".to_owned())
}

/// What one job's savepoint produced, waiting for the commit.
enum Outcome {
    Success(
        oneshot::Sender<Result<(), FinishError>>,
        Result<(), FinishError>,
    ),
    Failure(
        oneshot::Sender<Result<Verdicts, FinishError>>,
        Result<Verdicts, FinishError>,
    ),
}

/// Commits `batch` in one transaction; `per_group` as in
/// [`finish::successes_locked`].
fn commit(store: &Store, mut batch: Vec<Job>, per_group: bool) {
    // Each finish takes its object's lock first (see `claim::lock_object`);
    // in key order, two batches cannot wait on each other.
    batch.sort_by(|a, b| a.key().cmp(b.key()));
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), FinishError> {
        let mut conn = store.conn()?;
        write_transaction(&mut conn, |tx| -> Result<(), FinishError> {
            let mut keys: Vec<&str> = batch.iter().map(Job::key).collect();
            keys.dedup();
            finish::lock_objects(tx, &keys)?;
            let mut successes = Vec::new();
            let mut replies = Vec::new();
            let mut failures = Vec::new();
            for job in batch {
                match job {
                    Job::Success {
                        group,
                        handled,
                        apply,
                        then,
                        now,
                        reply,
                    } => {
                        successes.push(finish::Success {
                            group,
                            handled,
                            apply,
                            then,
                            now,
                        });
                        replies.push(reply);
                    }
                    Job::Failure {
                        group,
                        error,
                        now,
                        verdicts,
                        reply,
                    } => failures.push((group, error, now, verdicts, reply)),
                }
            }
            // Successes together (set-based on Postgres); failures (rare)
            // one savepoint each.
            let results = match finish::successes_locked(tx, successes, per_group) {
                Ok(results) => results,
                Err(e) => {
                    // The whole batch rolls back; the replies say why below.
                    for reply in replies {
                        outcomes.push(Outcome::Success(reply, Err(FinishError::LeaseLost)));
                    }
                    for (.., reply) in failures {
                        outcomes.push(Outcome::Failure(reply, Err(FinishError::LeaseLost)));
                    }
                    return Err(e);
                }
            };
            for (reply, r) in replies.into_iter().zip(results) {
                outcomes.push(Outcome::Success(reply, r));
            }
            for (group, error, now, verdicts, reply) in failures {
                let r = savepoint(tx, |tx| {
                    finish::failure_in(tx, &group, &error, now, &verdicts)
                });
                outcomes.push(Outcome::Failure(reply, r));
            }
            Ok(())
        })
    }));
    let failed = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(panic) => Some(format!(
            "finishing panicked: {}",
            super::panic_message(&panic)
        )),
    };
    if let Some(e) = &failed {
        tracing::error!(error = %e, jobs = outcomes.len(), "finishing transaction failed; the leases will expire and the events run again");
    }
    // Replies only now: after COMMIT (or with the reason it did not happen).
    for outcome in outcomes {
        match (outcome, &failed) {
            (Outcome::Success(reply, r), None) => {
                let _ = reply.send(r);
            }
            (Outcome::Failure(reply, r), None) => {
                let _ = reply.send(r);
            }
            (Outcome::Success(reply, _), Some(e)) => {
                let _ = reply.send(Err(FinishError::Commit(e.clone())));
            }
            (Outcome::Failure(reply, _), Some(e)) => {
                let _ = reply.send(Err(FinishError::Commit(e.clone())));
            }
        }
    }
}
