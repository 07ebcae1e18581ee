//! The job runner: turns stored events into applied ones.
//!
//! (The flow, drawn: docs/architecture.md, "Job runner".)
//!
//! The runner knows nothing of Stripe objects: handlers come in through the
//! [`Handler`] trait. [`Runner::run_pending`] processes everything due, for
//! tests and tools; [`worker::run`] drives the same steps on apalis workers.
//! A worker lets go of a group once its finish is queued
//! ([`Runner::start`]); the group stays claimed (its lease on the object
//! held) and its outcome is reported only once that finish's transaction
//! ended.

pub(crate) mod finish;
pub(crate) mod group_commit;
mod handler;
#[cfg(feature = "test-hooks")]
pub(crate) mod test_hooks;
pub(crate) mod worker;

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::store::deliveries::{EventHook, HookEvent};
use crate::store::outbox::claim;
use crate::store::{Store, StoreError};
use crate::util::{backoff, Clock};
use finish::{FailedAs, FinishError};

pub(crate) use handler::NoHandler;
pub use handler::{
    apply_fn, Apply, ClaimedEvent, EventGroup, Handler, HandlerContext, HandlerError, Writes,
};

/// Built from the configuration (`RunnerConfig::options`), which holds the
/// defaults.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Groups processed at once by the workers of this process; with a
    /// [`Pace`] the fewest.
    pub concurrency: usize,
    /// With a [`Pace`], the most groups processed at once (never below
    /// `concurrency`).
    pub max_concurrency: usize,
    /// How often idle workers look for work from other instances and due retries.
    pub poll_interval: Duration,
    /// How long a claim is valid; a handler gets half of it.
    pub lease: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// On shutdown, how long in-flight events get to finish before their
    /// leases are released.
    pub shutdown_grace: Duration,
    /// Finished (done/ignored) events are deleted after this long.
    pub retention: Duration,
    pub prune_interval: Duration,
    pub prune_batch: usize,
    /// Benchmarks only (the config never sets them).
    #[doc(hidden)]
    pub bench: BenchSwitches,
}

/// Ways of running that the benchmarks compare with the default in one
/// build (`benches/runner.rs`, `benches/e2e.rs`); all off by default.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BenchSwitches {
    /// Claim on Postgres with the portable statements (one per step, a
    /// synchronous commit) instead of `claim_pg`'s.
    pub portable_claim: bool,
    /// Finish each group in a savepoint of its own on Postgres too (the way
    /// before set-based finishing).
    pub finish_per_group: bool,
    /// Finishing threads on Postgres (`None`: the default,
    /// [`group_commit::threads`]).
    pub pg_finisher_threads: Option<usize>,
}

/// How one group ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    pub done: usize,
    pub ignored: usize,
    pub retried: usize,
    pub dead: usize,
    /// Groups whose lease was lost (nothing applied).
    pub lost: usize,
}

impl Processed {
    fn add(&mut self, other: &Processed) {
        self.done += other.done;
        self.ignored += other.ignored;
        self.retried += other.retried;
        self.dead += other.dead;
        self.lost += other.lost;
    }
    pub fn total(&self) -> usize {
        self.done + self.ignored + self.retried + self.dead
    }
}

/// How many finishes each worker may leave queued (not yet committed)
/// while it takes its next group: enough for batches of several groups per
/// commit, few enough that a finisher that falls behind holds the workers
/// back rather than piling up claimed groups.
pub const QUEUED_FINISHES_PER_WORKER: usize = 4;

/// The rest of a group's processing once its finish is queued (see
/// [`Runner::start`]): await it for the group's [`Processed`].
#[must_use = "the group stays claimed until its Finishing is awaited"]
pub struct Finishing(BoxFuture<'static, Processed>);

impl std::future::Future for Finishing {
    type Output = Processed;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Processed> {
        self.0.as_mut().poll(cx)
    }
}

/// How many groups the handler could use in flight now (the Stripe
/// client's rate in use × the latency it sees): with one, the runner runs
/// between `concurrency` and `max_concurrency` groups at once, following it
/// ([`Runner::with_pace`]).
pub(crate) type Pace = Arc<dyn Fn() -> usize + Send + Sync>;

/// A group's finish, queued by its worker.
enum Queued {
    Success {
        handled_ids: Vec<String>,
        answer: BoxFuture<'static, Result<(), FinishError>>,
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    Failure {
        error: HandlerError,
        answer: BoxFuture<'static, Result<group_commit::Verdicts, FinishError>>,
        _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
}

/// Claims, runs handlers and finishes attempts. Shared by the apalis workers
/// and by [`Runner::run_pending`].
pub struct Runner {
    store: Store,
    handler: Arc<dyn Handler>,
    options: RunnerOptions,
    clock: Clock,
    worker_id: String,
    seq: AtomicU64,
    /// How long groups took lately (ms): the slowest, decaying by 1/8 per
    /// group. Starts at the lease (slow until shown otherwise).
    recent_ms: AtomicU64,
    /// Groups claimed and not yet finished (waiting for a worker or
    /// running): what a shutdown releases.
    claimed: Mutex<Vec<EventGroup>>,
    /// False once shutdown began; held for the whole of a claim, so a
    /// shutdown waits for a claim under way and then sees its groups.
    claims_open: Mutex<bool>,
    finisher: group_commit::Finisher,
    /// One permit per finish queued and not yet committed (see
    /// [`Runner::start`]).
    finishing: Arc<tokio::sync::Semaphore>,
    finishing_max: usize,
    /// Set once a shutdown waits for the queued finishes
    /// ([`Runner::finishes_settled`]).
    settling: std::sync::atomic::AtomicBool,
    /// Runs in each finishing transaction of a successful group (with all
    /// its events, done and ignored), then `finished` after the commit.
    on_finish: Option<(EventHook, Arc<dyn Fn() + Send + Sync>)>,
    /// Sizes the groups run at once (see [`Pace`]); `None`: `concurrency`.
    pace: Option<Pace>,
    /// Groups handed to a worker whose handler has not ended
    /// ([`Runner::try_admit`], [`Runner::leave`]).
    active: std::sync::atomic::AtomicUsize,
    /// Fired when a group's handler ends (a place is free).
    freed: tokio::sync::Notify,
}

impl Runner {
    pub fn new(
        store: Store,
        handler: Arc<dyn Handler>,
        options: RunnerOptions,
        clock: Clock,
    ) -> std::io::Result<Runner> {
        let finisher = group_commit::Finisher::start(store.clone(), options.bench)?;
        let lease_ms = u64::try_from(options.lease.as_millis()).unwrap_or(u64::MAX);
        let finishing_max = options
            .concurrency
            .max(1)
            .saturating_mul(QUEUED_FINISHES_PER_WORKER);
        Ok(Runner {
            finisher,
            finishing: Arc::new(tokio::sync::Semaphore::new(finishing_max)),
            finishing_max,
            settling: std::sync::atomic::AtomicBool::new(false),
            store,
            handler,
            options,
            clock,
            worker_id: worker_id(),
            seq: AtomicU64::new(0),
            recent_ms: AtomicU64::new(lease_ms),
            claimed: Mutex::new(Vec::new()),
            claims_open: Mutex::new(true),
            on_finish: None,
            pace: None,
            active: std::sync::atomic::AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
        })
    }

    /// Runs as many groups at once as `pace` says (between `concurrency`
    /// and `max_concurrency`) instead of `concurrency`: the workers are
    /// `max_concurrency`, and the backend hands a group to one only while
    /// fewer than [`Runner::limit`] run.
    pub fn with_pace(mut self, pace: Pace) -> Runner {
        self.pace = Some(pace);
        self.finishing_max = self.workers().saturating_mul(QUEUED_FINISHES_PER_WORKER);
        self.finishing = Arc::new(tokio::sync::Semaphore::new(self.finishing_max));
        self
    }

    /// The apalis workers: `max_concurrency` with a pace, else `concurrency`.
    pub fn workers(&self) -> usize {
        let floor = self.options.concurrency.max(1);
        if self.pace.is_some() {
            self.options.max_concurrency.max(floor)
        } else {
            floor
        }
    }

    /// How many groups may run at once now: the pace, between
    /// `concurrency` and `max_concurrency`; without one, `concurrency`.
    pub fn limit(&self) -> usize {
        let floor = self.options.concurrency.max(1);
        match &self.pace {
            Some(pace) => pace().clamp(floor, self.workers()),
            None => floor,
        }
    }

    /// Groups whose handler runs now (handed to a worker, finish not yet
    /// queued).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Takes a place for a group if fewer than [`Runner::limit`] run.
    pub fn try_admit(&self) -> bool {
        let limit = self.limit();
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a place taken by [`Runner::try_admit`].
    pub fn leave(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        self.freed.notify_one();
    }

    /// Resolves when a place may have come free (a group's handler ended).
    pub async fn place_freed(&self) {
        self.freed.notified().await;
    }

    /// Writes what `hook` adds in the transaction that finishes a group
    /// successfully (its events done or ignored; an error from the hook rolls
    /// the finish back and the group is retried), and calls `finished` after
    /// that transaction committed.
    pub fn with_finish_hook(
        mut self,
        hook: EventHook,
        finished: Arc<dyn Fn() + Send + Sync>,
    ) -> Runner {
        self.on_finish = Some((hook, finished));
        self
    }

    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claims up to `max_groups` groups (on a blocking thread). They count
    /// as claimed until [`Runner::process`] ends them or a shutdown releases
    /// them; after shutdown began nothing is claimed.
    pub async fn claim(self: &Arc<Self>, max_groups: usize) -> Result<Vec<EventGroup>, StoreError> {
        let this = Arc::clone(self);
        let now = self.clock.now_ms();
        let lease_ms = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        tokio::task::spawn_blocking(move || {
            let open = lock(&this.claims_open);
            if !*open {
                return Ok(Vec::new());
            }
            let mut conn = this.store.conn()?;
            let mut next_token = || {
                format!(
                    "{}/{}",
                    this.worker_id,
                    this.seq.fetch_add(1, Ordering::Relaxed)
                )
            };
            let statements = if this.options.bench.portable_claim {
                claim::PgClaim::Portable
            } else {
                claim::PgClaim::Native
            };
            let groups = claim::claim_with(
                &mut conn,
                &this.worker_id,
                &mut next_token,
                now,
                lease_ms,
                max_groups,
                statements,
            )?;
            lock(&this.claimed).extend(groups.iter().cloned());
            Ok(groups)
        })
        .await
        .map_err(|e| StoreError::Task(format!("claim: {e}")))?
    }

    /// How many groups this runner has claimed and not yet finished.
    pub fn unfinished(&self) -> usize {
        lock(&self.claimed).len()
    }

    /// How many groups the workers should claim now: one per free worker,
    /// so that a lease starts ticking when its work can start. While groups
    /// take under 1/16 of the lease, also two per worker to wait in the
    /// buffer (fewer claims per group; two rounds of such groups are short
    /// next to the lease); never when they are slow (a slow Stripe API),
    /// where leases would run out in the buffer.
    /// Groups whose finish is queued do not hold a worker.
    /// With a pace, "workers" are the groups [`Runner::limit`] allows now.
    pub fn claim_size(&self) -> usize {
        let limit = self.limit();
        metrics::gauge!(crate::metrics::RUNNER_LIMIT).set(limit as f64);
        let busy = self.unfinished().saturating_sub(self.finishing());
        let free = limit.saturating_sub(busy).max(1);
        let lease_ms = u64::try_from(self.options.lease.as_millis()).unwrap_or(u64::MAX);
        if self.recent_ms.load(Ordering::Relaxed).saturating_mul(16) < lease_ms {
            free + 2 * limit
        } else {
            free
        }
    }

    fn took(&self, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .recent_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(ms.max(old - old / 8))
            });
    }

    /// Processes everything due now, group by group, until nothing is left.
    /// Tests and tools call this instead of sleeping.
    pub async fn run_pending(self: &Arc<Self>) -> Result<Processed, StoreError> {
        let mut tally = Processed::default();
        loop {
            let groups = self.claim(self.options.concurrency.max(1)).await?;
            if groups.is_empty() {
                return Ok(tally);
            }
            let results =
                futures_util::future::join_all(groups.into_iter().map(|g| self.process(g))).await;
            for t in &results {
                tally.add(t);
            }
        }
    }

    /// Runs one claimed group to its end: handler, then one transaction.
    pub async fn process(self: &Arc<Self>, group: EventGroup) -> Processed {
        self.start(group).await.await
    }

    /// Runs a group's handler and queues its finish; returns once the
    /// finish is queued, not committed. The returned [`Finishing`] waits for
    /// the commit and does everything that needs its real outcome (the
    /// group's tally, logs, metrics, the finish hook's `finished`, the
    /// failed attempt when the commit failed); until it ends, the group
    /// counts as claimed (a shutdown releases it) and its object lease
    /// keeps every other claim off the object. A worker can take its next
    /// group meanwhile, so that more groups share each commit. At most
    /// [`QUEUED_FINISHES_PER_WORKER`] × [`Runner::workers`] finishes wait
    /// at once: beyond that `start` waits (the finisher is behind).
    pub async fn start(self: &Arc<Self>, group: EventGroup) -> Finishing {
        let span = tracing::info_span!("process", object = %group.key, events = group.events.len());
        let started = std::time::Instant::now();
        let queued = self.handle_and_queue(&group).instrument(span.clone()).await;
        let this = Arc::clone(self);
        let rest = async move {
            let tally = this.complete(&group, queued).await;
            lock(&this.claimed).retain(|g| !(g.token == group.token && g.key == group.key));
            this.took(started.elapsed());
            metrics::histogram!(crate::metrics::ATTEMPT_SECONDS)
                .record(started.elapsed().as_secs_f64());
            for (outcome, n) in [
                ("done", tally.done),
                ("ignored", tally.ignored),
                ("retry", tally.retried),
                ("dead", tally.dead),
                ("lease_lost", tally.lost),
            ] {
                if n > 0 {
                    metrics::counter!(crate::metrics::ATTEMPTS, "outcome" => outcome)
                        .increment(n as u64);
                }
            }
            tally
        };
        Finishing(Box::pin(rest.instrument(span)))
    }

    /// How many finishes are queued and not yet committed.
    pub fn finishing(&self) -> usize {
        self.finishing_max
            .saturating_sub(self.finishing.available_permits())
    }

    /// Waits until no finish is queued (shutdown: before releasing what is
    /// left, so that groups whose finish is about to commit are not run
    /// again).
    pub async fn finishes_settled(&self) {
        self.settling.store(true, Ordering::Relaxed);
        let n = u32::try_from(self.finishing_max).unwrap_or(u32::MAX);
        // Never closed: an error cannot happen; nothing to wait for then.
        drop(self.finishing.acquire_many(n).await);
    }

    /// Whether a shutdown began waiting for the queued finishes (tests:
    /// the state in which a held finish must still commit).
    pub fn settling(&self) -> bool {
        self.settling.load(Ordering::Relaxed)
    }

    /// The handler's part (the worker's slot): runs the handler, then
    /// queues the group's finish (success or failure).
    async fn handle_and_queue(self: &Arc<Self>, group: &EventGroup) -> Queued {
        let handled: Vec<ClaimedEvent> = group
            .events
            .iter()
            .filter(|e| self.handler.handles_event(e))
            .cloned()
            .collect();
        let handled_ids: Vec<String> = handled.iter().map(|e| e.event_id.clone()).collect();
        let result = if handled.is_empty() {
            Ok(None)
        } else {
            let input = EventGroup {
                key: group.key.clone(),
                token: group.token.clone(),
                events: handled,
            };
            let budget = self.options.lease / 2;
            let cx = HandlerContext {
                store: self.store.clone(),
                clock: self.clock.clone(),
            };
            let fut = std::panic::AssertUnwindSafe(self.handler.handle(input, &cx)).catch_unwind();
            match tokio::time::timeout(budget, fut).await {
                Err(_) => Err(HandlerError::retry(format!(
                    "handler timed out after {budget:?}"
                ))),
                Ok(Err(panic)) => Err(HandlerError::retry(format!(
                    "handler panicked: {}",
                    panic_message(&panic)
                ))),
                Ok(Ok(result)) => result.map(Some),
            }
        };
        // The semaphore is never closed; without a permit the finish goes
        // unbounded rather than not at all.
        let permit = Arc::clone(&self.finishing).acquire_owned().await.ok();
        match result {
            Ok(apply) => {
                let answer = self.queue_success(group, handled_ids.clone(), apply);
                Queued::Success {
                    handled_ids,
                    answer: Box::pin(answer),
                    _permit: permit,
                }
            }
            Err(error) => {
                let answer = self.queue_failure(group, &error);
                Queued::Failure {
                    error,
                    answer: Box::pin(answer),
                    _permit: permit,
                }
            }
        }
    }

    /// After the handler: waits for the finish's commit and reports its
    /// real outcome (a failed commit or apply becomes a failed attempt).
    async fn complete(self: &Arc<Self>, group: &EventGroup, queued: Queued) -> Processed {
        let (error, answer, _permit) = match queued {
            Queued::Success {
                handled_ids,
                answer,
                _permit,
            } => {
                let error = match answer.await {
                    Ok(()) => {
                        if let Some((_, finished)) = &self.on_finish {
                            finished();
                        }
                        for e in &group.events {
                            let outcome = if handled_ids.contains(&e.event_id) {
                                "done"
                            } else {
                                "ignored"
                            };
                            tracing::info!(
                                event_id = %e.event_id, event_type = %e.event_type, attempt = e.attempts,
                                outcome, "event {outcome}"
                            );
                        }
                        return Processed {
                            done: handled_ids.len(),
                            ignored: group.events.len() - handled_ids.len(),
                            ..Processed::default()
                        };
                    }
                    Err(FinishError::LeaseLost) => return self.lost(group),
                    Err(FinishError::Handler(e)) => e,
                    Err(FinishError::Store(e)) => HandlerError::retry(format!("database: {e}")),
                    Err(e @ FinishError::Commit(_)) => HandlerError::retry(e.to_string()),
                };
                let answer = self.queue_failure(group, &error);
                (error, answer.await, _permit)
            }
            Queued::Failure {
                error,
                answer,
                _permit,
            } => (error, answer.await, _permit),
        };
        self.failed(group, &error, answer)
    }

    /// Queues the finish of a group whose handler succeeded (with the
    /// finish hook's writes, when there is one).
    fn queue_success(
        &self,
        group: &EventGroup,
        handled: Vec<String>,
        apply: Option<Apply>,
    ) -> impl std::future::Future<Output = Result<(), FinishError>> + Send + 'static {
        let now = self.clock.now_ms();
        let then = self.on_finish.as_ref().map(|(hook, _)| {
            let hook = Arc::clone(hook);
            let events: Vec<HookEvent<'static>> = group
                .events
                .iter()
                .map(|e| {
                    HookEvent::in_outbox(
                        e.event_id.clone(),
                        e.event_type.clone(),
                        e.object_key.clone(),
                        e.payload.clone(),
                    )
                })
                .collect();
            apply_fn(move |tx| {
                hook(tx, &events, now).map_err(|e| {
                    HandlerError::retry(format!("recording what follows the finish: {e}"))
                })
            })
        });
        self.finisher
            .success(group.clone(), handled, apply, then, now)
    }

    /// Queues a failed attempt: each event retried after its backoff, or
    /// dead.
    fn queue_failure(
        &self,
        group: &EventGroup,
        error: &HandlerError,
    ) -> impl std::future::Future<Output = Result<group_commit::Verdicts, FinishError>> + Send + 'static
    {
        let now = self.clock.now_ms();
        let verdicts: Vec<FailedAs> = group
            .events
            .iter()
            .map(|e| self.verdict(e, error, now))
            .collect();
        self.finisher
            .failure(group.clone(), error.message.clone(), now, verdicts)
    }

    /// What a recorded failed attempt (or its failure) comes to.
    fn failed(
        &self,
        group: &EventGroup,
        error: &HandlerError,
        result: Result<group_commit::Verdicts, FinishError>,
    ) -> Processed {
        let now = self.clock.now_ms();
        match result {
            Ok(verdicts) => {
                let mut tally = Processed::default();
                for (event_id, verdict) in verdicts {
                    match verdict {
                        FailedAs::Dead => {
                            tally.dead += 1;
                            tracing::error!(event_id = %event_id, outcome = "dead", error = %error.message, "event dead: retry budget spent");
                        }
                        FailedAs::Retry { next_attempt_at } => {
                            tally.retried += 1;
                            tracing::warn!(
                                event_id = %event_id, outcome = "retry", error = %error.message,
                                retry_in_ms = next_attempt_at - now, "event failed; will retry"
                            );
                        }
                    }
                }
                tally
            }
            Err(FinishError::LeaseLost) => self.lost(group),
            Err(e) => {
                // The lease will expire and the events be claimed again.
                tracing::error!(object = %group.key, error = %e, "cannot record a failed attempt");
                Processed::default()
            }
        }
    }

    fn verdict(&self, event: &ClaimedEvent, error: &HandlerError, now: i64) -> FailedAs {
        let age = Duration::from_millis(u64::try_from(now - event.queued_at).unwrap_or(0));
        let attempts = u32::try_from(event.attempts).unwrap_or(u32::MAX);
        if error.permanent || attempts >= self.options.max_attempts || age >= self.options.max_age {
            return FailedAs::Dead;
        }
        let delay = backoff::retry_delay(
            attempts,
            self.options.backoff_base,
            self.options.backoff_max,
            error.retry_after,
            rand::random::<f64>(),
        );
        FailedAs::Retry {
            next_attempt_at: now
                .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    fn lost(&self, group: &EventGroup) -> Processed {
        tracing::warn!(object = %group.key, token = %group.token, "lease lost before finishing; nothing applied");
        Processed {
            lost: 1,
            ..Processed::default()
        }
    }

    /// Shutdown: stops claiming (waiting for a claim under way), then gives
    /// back every group claimed and not finished — those still waiting for
    /// a worker, and those whose worker was stopped after the grace period.
    pub async fn release_claimed(self: &Arc<Self>) -> usize {
        let this = Arc::clone(self);
        let closed = tokio::task::spawn_blocking(move || {
            *lock(&this.claims_open) = false;
            std::mem::take(&mut *lock(&this.claimed))
        })
        .await;
        match closed {
            Ok(groups) => self.release(groups).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot release leases; they will expire");
                0
            }
        }
    }

    /// Gives claimed-but-unfinished groups back to the queue.
    pub async fn release(self: &Arc<Self>, groups: Vec<EventGroup>) -> usize {
        if groups.is_empty() {
            return 0;
        }
        let this = Arc::clone(self);
        let now = self.clock.now_ms();
        let result = tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
            let mut conn = this.store.conn()?;
            let mut n = 0;
            for g in &groups {
                n += claim::release(&mut conn, g, now)?;
            }
            Ok(n)
        })
        .await;
        match result {
            Ok(Ok(n)) => {
                tracing::info!(released = n, "released leases of unfinished events");
                n
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot release leases; they will expire");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot release leases; they will expire");
                0
            }
        }
    }
}

/// Unique per runner: hostname and pid (for people reading it) and 128
/// random bits (what makes it unique: in containers every process is pid 1
/// on a host named alike, and a 16-bit suffix repeats).
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}:{}:{:032x}",
        std::process::id(),
        rand::random::<u128>()
    )
}

/// A mutex's value, also after a panic elsewhere poisoned it (the lists
/// it guards stay consistent: every change is one call).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

pub(crate) fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_carry_128_random_bits_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| worker_id()).collect();
        assert_eq!(ids.len(), 10_000, "a lease token prefix repeated");
        for id in &ids {
            let random = id.rsplit(':').next().unwrap_or_default();
            assert_eq!(random.len(), 32, "{id}");
            assert!(random.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        }
    }
}
