//! Group commit: concurrent deliveries share one transaction (one fsync).
//!
//! (Drawn in docs/architecture.md, "Group commit".)
//!
//! A request is answered only from its reply slot, and the writer fills the
//! slots only after COMMIT returned, so no delivery is answered 2xx before it
//! is durable. If a batch fails, its events are retried one transaction each,
//! so one bad row cannot make its neighbours fail.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::outbox::{self, Inserted, NewEvent};
use crate::store::{Lane, Store};
use crate::util::group_commit;

/// Called after every commit that stored at least one new event (the runner
/// uses it to wake its workers at once).
pub(crate) type OnCommit = Arc<dyn Fn() + Send + Sync>;

#[derive(Debug, Clone)]
pub(crate) struct CommitOptions {
    pub max_batch: usize,
    pub queue_capacity: usize,
    pub writers: usize,
}

/// Why a delivery could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommitError {
    #[error("the database did not take the write: {0}")]
    Store(String),
    #[error("the write did not commit within {0:?}")]
    Timeout(Duration),
    #[error("the intake writer has stopped")]
    Closed,
}

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<Inserted, CommitError>>,
}

/// The sending side: cheap to clone, one per HTTP worker.
#[derive(Clone)]
pub(crate) struct CommitQueue {
    tx: mpsc::Sender<Job>,
}

impl CommitQueue {
    /// Starts `options.writers` writer threads on `store` (whose `received`
    /// hook runs inside each transaction with the events it stores).
    pub(crate) fn start(
        store: Store,
        options: &CommitOptions,
        on_commit: Option<OnCommit>,
    ) -> std::io::Result<CommitQueue> {
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        let writer = Writer { store, on_commit };
        group_commit::start(
            "hookd-writer",
            options.writers,
            rx,
            options.max_batch,
            move |batch| writer.commit(batch),
        )?;
        Ok(CommitQueue { tx })
    }

    /// Queues `event` and waits until the transaction holding it committed.
    pub(crate) async fn submit(
        &self,
        event: NewEvent,
        timeout: Duration,
    ) -> Result<Inserted, CommitError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { event, reply };
        let wait = async {
            self.tx.send(job).await.map_err(|_| CommitError::Closed)?;
            answer.await.map_err(|_| CommitError::Closed)?
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| CommitError::Timeout(timeout))?
    }
}

struct Writer {
    store: Store,
    on_commit: Option<OnCommit>,
}

impl Writer {
    fn commit(&self, batch: Vec<Job>) {
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            batch.into_iter().map(|j| (j.event, j.reply)).unzip();
        let started = std::time::Instant::now();
        let inserted = self.insert(&events);
        metrics::histogram!(crate::metrics::INTAKE_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        match inserted {
            Ok(outcomes) => {
                self.committed(&outcomes);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have timed out and gone: nothing to do.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) if events.len() > 1 => {
                tracing::warn!(
                    batch = events.len(),
                    error = %error,
                    "intake batch failed; retrying its events one by one"
                );
                for (event, reply) in events.into_iter().zip(replies) {
                    let result = self.insert(std::slice::from_ref(&event));
                    if let Ok(outcomes) = &result {
                        self.committed(outcomes);
                    }
                    let _ = reply.send(result.map(|o| o[0]));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn insert(&self, events: &[NewEvent]) -> Result<Vec<Inserted>, CommitError> {
        let mut conn = self
            .store
            .conn()
            .map_err(|e| CommitError::Store(e.to_string()))?;
        let outcomes = outbox::insert_batch_in(&mut conn, Lane::Intake, events)
            .map_err(|e| CommitError::Store(e.to_string()))?;
        if outcomes.len() == events.len() {
            Ok(outcomes)
        } else {
            Err(CommitError::Store(
                "the database answered a different number of rows".to_owned(),
            ))
        }
    }

    fn committed(&self, outcomes: &[Inserted]) {
        if let Some(on_commit) = &self.on_commit {
            if outcomes.contains(&Inserted::Stored) {
                on_commit();
            }
        }
    }
}
