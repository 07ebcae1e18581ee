//! Group commit, the part every writer shares: threads that block for the
//! first queued job, take whatever else is queued (up to a batch size) and
//! hand the batch to the writer's commit, which answers each job only
//! after its transaction committed. Used by the intake's writers
//! (`intake::commit`) and the runner's finishers (`queue::group_commit`).
//! The forwarder's finished attempts gather differently (in the async
//! tasks that await them, and into the next claim's transaction:
//! `forward::finish`), but answer after COMMIT likewise.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// A queue of jobs a committing thread can block on.
pub(crate) trait Jobs<J>: Send + 'static {
    /// The next job, waiting for one; `None` once every sender is gone.
    fn next_blocking(&mut self) -> Option<J>;
    /// A job already queued, if any.
    fn next_queued(&mut self) -> Option<J>;
}

impl<J: Send + 'static> Jobs<J> for mpsc::Receiver<J> {
    fn next_blocking(&mut self) -> Option<J> {
        self.blocking_recv()
    }
    fn next_queued(&mut self) -> Option<J> {
        self.try_recv().ok()
    }
}

impl<J: Send + 'static> Jobs<J> for mpsc::UnboundedReceiver<J> {
    fn next_blocking(&mut self) -> Option<J> {
        self.blocking_recv()
    }
    fn next_queued(&mut self) -> Option<J> {
        self.try_recv().ok()
    }
}

/// Starts `threads` threads (named `{name}-{n}`) that take batches of at
/// most `max_batch` jobs from `jobs` and run `commit` on each, until every
/// sender is gone.
pub(crate) fn start<J, Q, F>(
    name: &str,
    threads: usize,
    jobs: Q,
    max_batch: usize,
    commit: F,
) -> std::io::Result<()>
where
    J: Send + 'static,
    Q: Jobs<J>,
    F: Fn(Vec<J>) + Send + Sync + 'static,
{
    let jobs = Arc::new(Mutex::new(jobs));
    let commit = Arc::new(commit);
    let max_batch = max_batch.max(1);
    for n in 0..threads.max(1) {
        let (jobs, commit) = (Arc::clone(&jobs), Arc::clone(&commit));
        std::thread::Builder::new()
            .name(format!("{name}-{n}"))
            .spawn(move || {
                while let Some(batch) = next_batch(&jobs, max_batch) {
                    commit(batch);
                }
                tracing::debug!(thread = %std::thread::current().name().unwrap_or(""), "committer stopped: its queue closed");
            })?;
    }
    Ok(())
}

/// Blocks for one job, then takes what else is queued.
fn next_batch<J, Q: Jobs<J>>(jobs: &Mutex<Q>, max_batch: usize) -> Option<Vec<J>> {
    // A thread that panicked while holding the lock left the queue intact
    // (it only receives): keep using it.
    let mut jobs = jobs.lock().unwrap_or_else(|p| p.into_inner());
    let mut batch = Vec::with_capacity(max_batch.min(64));
    batch.push(jobs.next_blocking()?);
    while batch.len() < max_batch {
        match jobs.next_queued() {
            Some(job) => batch.push(job),
            None => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_what_is_queued_up_to_the_limit() {
        let (tx, rx) = mpsc::unbounded_channel::<u32>();
        for n in 0..5 {
            tx.send(n).unwrap();
        }
        let jobs = Mutex::new(rx);
        assert_eq!(next_batch(&jobs, 3), Some(vec![0, 1, 2]));
        assert_eq!(next_batch(&jobs, 3), Some(vec![3, 4]));
        drop(tx);
        assert_eq!(next_batch(&jobs, 3), None);
    }

    #[test]
    fn every_job_reaches_a_commit() {
        let (tx, rx) = mpsc::channel::<u32>(4);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        start("test-committer", 2, rx, 8, move |batch| {
            sink.lock().unwrap().extend(batch);
        })
        .unwrap();
        for n in 0..100 {
            tx.blocking_send(n).unwrap();
        }
        drop(tx);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while seen.lock().unwrap().len() < 100 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut got = seen.lock().unwrap().clone();
        got.sort_unstable();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }
}
