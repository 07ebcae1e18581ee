//! Group commit of finished attempts: each attempt task hands its outcome
//! over and waits; whichever task finds no commit under way becomes the
//! committer and writes everything handed over so far in one transaction
//! (then looks again), so many short requests cost one commit, not one
//! each. The committer first lets [`GATHER`] pass, so that the answers
//! arriving meanwhile share its commit: every commit rewrites whole pages
//! (the deliveries' rows, their indexes, the history's), so fewer, larger
//! commits write far fewer bytes for the intake's next fsync to flush
//! (docs/performance.md). Nothing is acknowledged before its transaction
//! committed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::store::deliveries::{self, Finished};
use crate::store::Store;

/// At most this many attempts per transaction.
const MAX_BATCH: usize = 512;

/// How long a committer waits for more finished attempts before it
/// commits. The requests' slots are free meanwhile (the forwarder lets go
/// of a slot once its request is answered).
const GATHER: Duration = Duration::from_millis(10);

type Waiter = oneshot::Sender<Result<bool, String>>;

pub(super) struct Recorder {
    store: Store,
    owner: String,
    handed: Mutex<Vec<(Finished, Waiter)>>,
    committing: AtomicBool,
}

impl Recorder {
    pub(super) fn new(store: Store, owner: String) -> Recorder {
        Recorder {
            store,
            owner,
            handed: Mutex::new(Vec::new()),
            committing: AtomicBool::new(false),
        }
    }

    /// Records `finished` (with the attempts handed over meanwhile).
    /// `Ok(false)`: the lease was lost, nothing recorded.
    pub(super) async fn record(&self, finished: Finished) -> Result<bool, String> {
        let (tx, rx) = oneshot::channel();
        self.lock().push((finished, tx));
        self.commit_handed().await;
        rx.await
            .map_err(|_| "the committing task ended before recording the attempt".to_owned())?
    }

    /// Takes the attempts handed over and not yet being committed, for a
    /// claim to record in its own transaction
    /// ([`deliveries::finish_and_claim`]); the claim answers their tasks
    /// through the [`Waiters`], or gives them back with
    /// [`Recorder::give_back`].
    pub(super) fn take(&self) -> (Vec<Finished>, Waiters) {
        let handed: Vec<(Finished, Waiter)> = {
            let mut handed = self.lock();
            let n = handed.len().min(MAX_BATCH);
            handed.drain(..n).collect()
        };
        let (rows, waiters) = handed.into_iter().unzip();
        (rows, Waiters(waiters))
    }

    /// Hands back what [`Recorder::take`] took (the claim's transaction
    /// failed) and commits it on its own.
    pub(super) async fn give_back(&self, rows: Vec<Finished>, waiters: Waiters) {
        if rows.is_empty() {
            return;
        }
        self.lock().extend(rows.into_iter().zip(waiters.0));
        self.commit_handed().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Finished, Waiter)>> {
        // A panic while holding the lock cannot leave the vector half
        // changed (push / drain only): keep going.
        self.handed.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn commit_handed(&self) {
        loop {
            if self.committing.swap(true, Ordering::AcqRel) {
                // The committer under way looks again after its commit.
                return;
            }
            tokio::time::sleep(GATHER).await;
            let batch: Vec<(Finished, Waiter)> = {
                let mut handed = self.lock();
                let n = handed.len().min(MAX_BATCH);
                handed.drain(..n).collect()
            };
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            self.committing.store(false, Ordering::Release);
            if self.lock().is_empty() {
                return;
            }
        }
    }

    async fn commit(&self, batch: Vec<(Finished, Waiter)>) {
        let (rows, waiters): (Vec<Finished>, Vec<Waiter>) = batch.into_iter().unzip();
        let (store, owner) = (self.store.clone(), self.owner.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            deliveries::finish(&mut conn, &owner, &rows)
        })
        .await;
        let result = match result {
            Ok(Ok(recorded)) => Ok(recorded),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("recording task failed: {e}")),
        };
        answer(waiters, result);
    }
}

/// The tasks of the attempts taken for a claim's transaction
/// ([`Recorder::take`]), in the order of their rows.
pub(super) struct Waiters(Vec<Waiter>);

impl Waiters {
    /// Tells each attempt's task whether it was recorded, once the claim's
    /// transaction committed.
    pub(super) fn answer(self, recorded: Vec<bool>) {
        answer(self.0, Ok(recorded));
    }

    /// Tells each attempt's task that it was not recorded (it is sent
    /// again once its lease expires).
    pub(super) fn fail(self, error: &str) {
        answer(self.0, Err(error.to_owned()));
    }
}

fn answer(waiters: Vec<Waiter>, result: Result<Vec<bool>, String>) {
    match result {
        Ok(recorded) => {
            for (waiter, ok) in waiters.into_iter().zip(recorded) {
                // The task may have ended (shutdown): nothing to tell.
                let _ = waiter.send(Ok(ok));
            }
        }
        Err(e) => {
            for waiter in waiters {
                let _ = waiter.send(Err(e.clone()));
            }
        }
    }
}
