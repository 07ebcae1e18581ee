//! The apalis side: an apalis [`Backend`] over the outbox, and the worker
//! that drives [`Runner::process`] on what it yields.
//!
//! The outbox IS the queue: the intake's insert is the enqueue, so there is
//! no second write to lose. The backend claims groups (with leases) when
//! woken by the intake (`Notify`) or by the poll interval, and hands them to
//! apalis one at a time; apalis runs up to `concurrency` of them at once and
//! asks for the next only when a worker is free. A worker is free once its
//! group's finish is queued ([`Runner::start`]): the commit, and what waits
//! for its outcome, runs on its own task while the object lease keeps the
//! object from every other claim, so the finishes of more groups share
//! each commit. A claim takes one group
//! per free worker ([`Runner::claim_size`]; a buffer's worth more only while
//! handlers are fast next to the lease), so a lease starts ticking when its work can
//! start, not while it waits behind slow handlers.
//!
//! With a pace (the Stripe client's budget × its latency,
//! [`Runner::with_pace`]) there are `max_concurrency` workers, and the
//! backend hands a group to one only while fewer than [`Runner::limit`]
//! groups run; else it waits until a group's handler ends (or 50 ms, for a
//! limit that rose). So the groups in flight follow the API budget and the
//! latency seen, not a fixed worker count. Claim errors
//! never end the worker (that would stop it for good): they are logged and
//! retried after a pause. On shutdown every group claimed and not finished
//! is released ([`Runner::release_claimed`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::data::Data;
use apalis_core::task::Task;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_layer::Identity;

use super::{EventGroup, Runner};
use crate::store::outbox::retention;
use crate::store::StoreError;

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

enum State {
    /// Waiting for a wake-up (intake notify or poll interval).
    Waiting(BoxFut<()>),
    Claiming(BoxFut<Result<Vec<EventGroup>, StoreError>>),
}

/// An apalis backend over the outbox table.
pub(crate) struct OutboxBackend {
    runner: Arc<Runner>,
    wake: Arc<Notify>,
    buffer: VecDeque<EventGroup>,
    state: State,
    /// While a group waits in the buffer for a place under the runner's
    /// limit: resolves when one may be free.
    room: Option<BoxFut<()>>,
    /// Called on every loop turn: the systemd watchdog's proof of life.
    heartbeat: Arc<dyn Fn() + Send + Sync>,
}

impl OutboxBackend {
    pub(crate) fn new(
        runner: Arc<Runner>,
        wake: Arc<Notify>,
        heartbeat: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        let state = State::Claiming(claim_future(&runner));
        OutboxBackend {
            runner,
            wake,
            buffer: VecDeque::new(),
            state,
            room: None,
            heartbeat,
        }
    }

    fn wait_future(&self, pause: Duration) -> BoxFut<()> {
        let wake = Arc::clone(&self.wake);
        Box::pin(async move {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        })
    }
}

/// How often a backend held back by the runner's limit looks again (the
/// limit may have risen).
const ROOM_RECHECK: Duration = Duration::from_millis(50);

fn room_future(runner: &Arc<Runner>) -> BoxFut<()> {
    let runner = Arc::clone(runner);
    Box::pin(async move {
        tokio::select! {
            () = runner.place_freed() => {}
            () = tokio::time::sleep(ROOM_RECHECK) => {}
        }
    })
}

fn claim_future(runner: &Arc<Runner>) -> BoxFut<Result<Vec<EventGroup>, StoreError>> {
    let runner = Arc::clone(runner);
    Box::pin(async move {
        let size = runner.claim_size();
        runner.claim(size).await
    })
}

/// Never fails: claim errors are logged and retried inside the backend.
#[derive(Debug, thiserror::Error)]
#[error("outbox backend error")]
pub(crate) struct OutboxBackendError;

impl Backend for OutboxBackend {
    type Task = Task<EventGroup>;
    type Error = OutboxBackendError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if !self.buffer.is_empty() {
                if self.runner.try_admit() {
                    if let Some(group) = self.buffer.pop_front() {
                        // Asked for more: a worker slot is free, so an event finished.
                        self.room = None;
                        (self.heartbeat)();
                        return Poll::Ready(Some(Ok(Task::new(group))));
                    }
                    self.runner.leave();
                }
                let runner = &self.runner;
                let room = self.room.get_or_insert_with(|| room_future(runner));
                if room.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.room = None;
                (self.heartbeat)();
                continue;
            }
            match &mut self.state {
                State::Waiting(fut) => {
                    if fut.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    (self.heartbeat)();
                    self.state = State::Claiming(claim_future(&self.runner));
                }
                State::Claiming(fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(groups)) => {
                        (self.heartbeat)();
                        if groups.is_empty() {
                            let pause = self.runner.options().poll_interval;
                            self.state = State::Waiting(self.wait_future(pause));
                        } else {
                            self.buffer.extend(groups);
                            // More may be due: claim again once these are handed out.
                            self.state = State::Claiming(claim_future(&self.runner));
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::error!(error = %e, "cannot claim events; retrying");
                        let pause = self
                            .runner
                            .options()
                            .poll_interval
                            .max(Duration::from_secs(1));
                        self.state = State::Waiting(self.wait_future(pause));
                    }
                },
            }
        }
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // The groups still buffered (and any claim under way) are released
        // by `run` once the worker has stopped.
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for OutboxBackend {
    type Args = EventGroup;
    type Id = apalis_core::task::task_id::RandomId;
    type Kind = apalis_core::backend::finalize::Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}

/// Runs the handler and queues the finish; the slot is free once the finish
/// is queued (the object's lease still guards it until it commits), and
/// the rest ([`super::Finishing`]: the commit's outcome, logs, metrics)
/// runs on its own task.
async fn process_task(
    group: EventGroup,
    runner: Data<Arc<Runner>>,
) -> Result<(), std::convert::Infallible> {
    // The place the backend took for this group ([`Runner::try_admit`]) is
    // given back once the handler ended, also if this task is dropped.
    struct Place<'a>(&'a Runner);
    impl Drop for Place<'_> {
        fn drop(&mut self) {
            self.0.leave();
        }
    }
    let place = Place(&runner);
    let finishing = runner.start(group).await;
    drop(place);
    tokio::spawn(finishing);
    Ok(())
}

/// Runs the apalis worker until `shutdown` is cancelled; then stops claiming,
/// gives in-flight events `shutdown_grace` to finish, releases the leases of
/// those that did not and of those claimed but not started, and returns.
pub async fn run(
    runner: Arc<Runner>,
    wake: Arc<Notify>,
    heartbeat: Arc<dyn Fn() + Send + Sync>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let backend = OutboxBackend::new(Arc::clone(&runner), wake, heartbeat);
    let worker = WorkerBuilder::new(runner.worker_id().to_owned())
        .backend(backend)
        .data(Arc::clone(&runner))
        .concurrency(runner.workers())
        .build(process_task);
    let stop = shutdown.clone();
    let mut run = Box::pin(worker.run_until(async move {
        stop.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    let grace = runner.options().shutdown_grace;
    let prune = tokio::spawn(prune_loop(Arc::clone(&runner), shutdown.clone()));
    let stop = shutdown.clone();
    let mut grace_over = Box::pin(async move {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    });
    let mut over = false;
    tokio::select! {
        result = &mut run => {
            result.map_err(|e| anyhow::anyhow!("job runner stopped: {e}"))?;
        }
        () = &mut grace_over => {
            drop(run);
            over = true;
        }
    }
    // Finishes already queued commit (within the same grace period), so
    // that their groups are not released and run again.
    if !over {
        let queued = runner.finishing();
        if queued > 0 {
            tracing::info!(queued, "shutdown: waiting for queued finishes to commit");
        }
        tokio::select! {
            () = runner.finishes_settled() => {}
            () = &mut grace_over => over = true,
        }
    }
    if over {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "shutdown grace period over; releasing unfinished events"
        );
    }
    runner.release_claimed().await;
    prune.abort();
    Ok(())
}

async fn prune_loop(runner: Arc<Runner>, shutdown: CancellationToken) {
    let options = runner.options().clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(options.prune_interval) => {}
        }
        let retention_ms = i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX);
        let older_than = runner.clock().now_ms().saturating_sub(retention_ms);
        let store = runner.store().clone();
        let batch = options.prune_batch;
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            let events = retention::prune(&mut conn, older_than, batch);
            // Finished deliveries (and their attempts) go by the same
            // horizon, whatever became of the events' pruning.
            let deliveries =
                crate::store::deliveries::retention::prune(&mut conn, older_than, batch);
            Ok::<_, StoreError>((events, deliveries))
        })
        .await;
        let (events, forwarded) = match result {
            Ok(Ok(both)) => both,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "pruning failed");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "pruning failed");
                continue;
            }
        };
        match events {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned finished events past retention"),
            Err(e) => tracing::error!(error = %e, "pruning events failed"),
        }
        match forwarded {
            Ok(p) if p.deliveries == 0 => {}
            Ok(p) => tracing::info!(
                deliveries = p.deliveries,
                attempts = p.attempts,
                "pruned delivered and discarded deliveries past retention, with their attempts"
            ),
            Err(e) => tracing::error!(error = %e, "pruning deliveries failed"),
        }
    }
}
