//! Forwarding: each event, once reconciled (or received), delivered to the
//! configured destinations — re-signed, durable, in order per object.
//!
//! ```text
//!  finish / outbox insert ──(same transaction, via hook)──▶ deliveries
//!                                                               │
//!  Forwarder: per destination, claim (lease; ordered: only the first
//!  unfinished delivery of each object) up to its free in-flight slots
//!      │ POST the original body, Stripe-Signature signed now with the
//!      │ destination's secret, Stripe-Hookd-Delivery / -Attempt
//!      ▼
//!  2xx delivered · 410 pauses the destination · else retry (backoff with
//!  jitter, Retry-After a floor) · dead after the budget
//! ```
//! The forwarder never names reconcile or Stripe: it reads the deliveries
//! table and reuses the queue's clock and backoff.

mod finish;
pub(crate) mod health;
mod send;

pub use send::ping;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryResult;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{wildcard, After, Destination, ForwardConfig};
use crate::live::Live;
use crate::store::deliveries::{
    self, history, pauses, Delivery, EventHook, Finished, HookEvent, Outcome,
};
use crate::store::{Store, StoreError, Tx};
use crate::util::{backoff, Clock};

/// After a local commit wakes the forwarder, how long it lets further
/// commits gather before it claims.
const CLAIM_WINDOW: Duration = Duration::from_millis(5);

/// How often the background loop reads which destinations are paused
/// (by an operator, or by another instance that was answered 410). The
/// loop turns on every local commit and every answered request: reading
/// the pauses each time cost a database read (and a blocking task) per
/// event. A 410 answered here pauses at once.
const PAUSES_EVERY: Duration = Duration::from_millis(100);

/// The forwarder's own settings (the destinations carry theirs).
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    pub poll_interval: Duration,
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl ForwardOptions {
    /// From the `[forward]` section.
    pub fn from_config(config: &ForwardConfig) -> ForwardOptions {
        ForwardOptions {
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            lease: Duration::from_secs(config.lease_secs),
            backoff_base: Duration::from_millis(config.backoff_base_ms),
            backoff_max: Duration::from_secs(config.backoff_max_secs),
        }
    }
}

/// Where the admin API reads the destinations as configured now.
pub(crate) type DestinationSource = Arc<dyn Fn() -> Vec<Destination> + Send + Sync>;

/// Events of stripe-hookd's own that the clock makes (no transaction
/// causes them): `derive(tx, since, now)` gives those of the moments in
/// `(since, now]`; the forwarder looks every `every`.
#[derive(Clone, Copy)]
pub struct ClockEvents {
    pub event_type: &'static str,
    pub every: Duration,
    pub derive: fn(&mut Tx<'_>, i64, i64) -> QueryResult<Vec<HookEvent<'static>>>,
}

/// Whether `d` lists `event_type` explicitly: stripe-hookd's own events
/// (`stripe_hookd.…`) go only to destinations with a pattern of that
/// prefix (`*` alone means every Stripe event).
pub(crate) fn lists_own(d: &Destination, event_type: &str) -> bool {
    d.events
        .iter()
        .any(|p| p.starts_with("stripe_hookd.") && wildcard(p, event_type))
}

/// The hook that records a delivery for each destination of `after` that
/// wants the event, or `None` when no destination follows that step.
pub fn hook(destinations: &[Destination], after: After) -> Option<EventHook> {
    let destinations = destinations.to_vec();
    let follows = destinations.iter().any(|d| d.after == after);
    follows.then(|| {
        Arc::new(move |tx: &mut Tx<'_>, events: &[HookEvent<'_>], now: i64| {
            record(tx, &destinations, after, None, events, now)
        }) as EventHook
    })
}

/// Reads, in the transaction that finishes an event, the sequence of its
/// deliveries (`Stripe-Hookd-Sequence`) from its type and object key; the
/// composition root gives `reconcile::sequence::of_event` (the forwarder
/// knows nothing of the records).
pub(crate) type SequenceFn = fn(&mut Tx<'_>, &str, &str) -> QueryResult<Option<i64>>;

/// [`hook`] over destinations that a configuration reload may replace
/// (`app::reload`): each transaction records deliveries for the
/// destinations configured when it runs, with their sequence when
/// `sequence` is given (the finish's hook).
pub(crate) fn live_hook(
    destinations: Live<Vec<Destination>>,
    after: After,
    sequence: Option<SequenceFn>,
) -> EventHook {
    Arc::new(move |tx, events, now| {
        let destinations = destinations.get();
        record(tx, &destinations, after, sequence, events, now)
    })
}

/// Events of stripe-hookd's own that a change of stored state makes
/// (`stripe_hookd.access.updated`): `derive` turns the changes a
/// transaction made into events, and records what it announced.
pub(crate) type DeriveFn<C> = fn(&mut Tx<'_>, &[C], i64) -> QueryResult<Vec<HookEvent<'static>>>;

/// What [`derived_hook`] gives: run in a transaction with its changes.
pub(crate) type ChangeHook<C> =
    Arc<dyn Fn(&mut Tx<'_>, &[C], i64) -> QueryResult<()> + Send + Sync>;

/// The hook that records, for the destinations that list `event_type`
/// (configured when the transaction runs), the events `derive` makes of a
/// transaction's changes; nothing is derived while no destination lists
/// the type.
pub(crate) fn derived_hook<C: 'static>(
    destinations: Live<Vec<Destination>>,
    event_type: &'static str,
    derive: DeriveFn<C>,
) -> ChangeHook<C> {
    Arc::new(move |tx, changes, now| {
        let destinations = destinations.get();
        let listing: Vec<&Destination> = destinations
            .iter()
            .filter(|d| lists_own(d, event_type))
            .collect();
        if listing.is_empty() {
            return Ok(());
        }
        for event in derive(tx, changes, now)? {
            for d in &listing {
                deliveries::insert(tx, &d.name, &event, None, now)?;
            }
        }
        Ok(())
    })
}

/// After a reload made the destinations `switched` follow `received`
/// where they followed `reconciled`: records their deliveries of the
/// events the finish will no longer give them (those not finished yet) and
/// of those finished since `since` (a finish racing the switch). Recording
/// is once per event × destination, so an event recorded already is not
/// recorded again. Returns how many events were looked at.
pub(crate) fn record_switched(
    store: &Store,
    switched: &[Destination],
    since: i64,
) -> Result<usize, StoreError> {
    let Some(hook) = hook(switched, After::Received) else {
        return Ok(0);
    };
    let mut conn = store.conn()?;
    let (mut after_id, mut seen) = (0, 0);
    loop {
        let events = crate::store::outbox::unfinished_or_since(&mut conn, since, after_id, 500)?;
        let Some(last) = events.last() else {
            return Ok(seen);
        };
        after_id = last.id;
        seen += events.len();
        let events: Vec<HookEvent<'_>> = events
            .iter()
            .map(|e| {
                HookEvent::in_outbox(
                    e.event_id.as_str(),
                    e.event_type.as_str(),
                    e.object_key.as_str(),
                    e.payload.as_str(),
                )
            })
            .collect();
        crate::store::write_transaction(&mut conn, |tx| hook(tx, &events, crate::store::now_ms()))?;
    }
}

/// One transaction's delivery rows: the events for the destinations of
/// `after` that want them, each with the sequence `sequence` reads.
fn record(
    tx: &mut Tx<'_>,
    destinations: &[Destination],
    after: After,
    sequence: Option<SequenceFn>,
    events: &[HookEvent<'_>],
    now: i64,
) -> QueryResult<()> {
    for event in events {
        // Read once per event, and only when some destination takes it.
        let mut read: Option<Option<i64>> = None;
        for d in destinations
            .iter()
            .filter(|d| d.after == after && d.wants(&event.event_type))
        {
            let number = match (sequence, read) {
                (None, _) => None,
                (Some(_), Some(number)) => number,
                (Some(of_event), None) => {
                    *read.insert(of_event(tx, &event.event_type, &event.object_key)?)
                }
            };
            deliveries::insert(tx, &d.name, event, number, now)?;
        }
    }
    Ok(())
}

/// How the attempts of one round ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attempted {
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
    /// Lease lost before the attempt was recorded.
    pub lost: usize,
}

impl Attempted {
    fn add(&mut self, other: &Attempted) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.dead += other.dead;
        self.lost += other.lost;
    }
}

/// When a claim round reads the destinations' pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pauses {
    /// Every round (tests and tools: [`Forwarder::run_pending`]).
    Read,
    /// At most every [`PAUSES_EVERY`] (the background loop).
    Every,
}

/// One destination, with its in-flight slots and pause switch.
struct Outlet {
    config: Destination,
    slots: Arc<Semaphore>,
    pause: Arc<PauseSwitch>,
}

impl Outlet {
    fn new(config: Destination) -> Arc<Outlet> {
        Arc::new(Outlet {
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            pause: Arc::default(),
            config,
        })
    }
}

/// Whether a destination is paused, as this process knows it: a cache of
/// `destination_pauses` (read again at most every [`PAUSES_EVERY`]), and a
/// 410 answered here. The local pause stands until a read that began after
/// its row was stored (a read from before the commit does not see the row
/// and must not undo it), and for as long as the row cannot be stored
/// (each read of the pauses tries again first).
#[derive(Default)]
struct PauseSwitch {
    /// What claims look at.
    paused: AtomicBool,
    local: std::sync::Mutex<LocalPause>,
}

/// A 410 answered by this process, until the pauses read show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum LocalPause {
    #[default]
    None,
    /// Its row is not stored yet: the write is under way, or failed (the
    /// next read of the pauses writes it again).
    Unstored { reason: String, at: i64 },
    /// Its row was stored before the pauses read number `before_read` began:
    /// reads up to that number may predate it.
    Stored { before_read: u64 },
}

impl PauseSwitch {
    fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, LocalPause> {
        // Assignments only: a panic cannot leave it half changed.
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Paused here, at once (a 410), until the row is stored and read.
    fn hold(&self, reason: String, at: i64) {
        let mut local = self.local();
        *local = LocalPause::Unstored { reason, at };
        self.paused.store(true, Ordering::SeqCst);
    }

    /// The row is stored; reads numbered above `reads` (begun after now)
    /// see it.
    fn stored(&self, reads: u64) {
        let mut local = self.local();
        if matches!(*local, LocalPause::Unstored { .. }) {
            *local = LocalPause::Stored { before_read: reads };
        }
    }

    /// The pause still to be stored, if any.
    fn unstored(&self) -> Option<(String, i64)> {
        match &*self.local() {
            LocalPause::Unstored { reason, at } => Some((reason.clone(), *at)),
            _ => None,
        }
    }

    /// Applies read number `read` of the pauses (`stored`: the row is
    /// there). Whether the destination was resumed by it.
    fn apply(&self, read: u64, stored: bool) -> bool {
        let mut local = self.local();
        let held = match *local {
            LocalPause::None => false,
            LocalPause::Unstored { .. } => true,
            LocalPause::Stored { before_read } if read <= before_read => true,
            LocalPause::Stored { .. } => {
                // This read began after the row was stored: it is the truth
                // now (an operator may have resumed since).
                *local = LocalPause::None;
                false
            }
        };
        let now_paused = held || stored;
        self.paused.swap(now_paused, Ordering::SeqCst) && !now_paused
    }
}

/// Claims deliveries and sends them. Shared by the background task
/// ([`Forwarder::run`]) and [`Forwarder::run_pending`].
pub struct Forwarder {
    store: Store,
    /// Replaced by [`Forwarder::set_destinations`] on a reload.
    outlets: Live<Vec<Arc<Outlet>>>,
    client: reqwest::Client,
    options: ForwardOptions,
    clock: Clock,
    worker_id: String,
    recorder: finish::Recorder,
    /// With the time (clock ms) up to which they were last looked for.
    clock_events: Vec<(ClockEvents, AtomicI64)>,
    /// When the pauses were last read ([`PAUSES_EVERY`]).
    pauses_read: std::sync::Mutex<Option<std::time::Instant>>,
    /// How many reads of the pauses began ([`PauseSwitch`]).
    pause_reads: std::sync::atomic::AtomicU64,
}

impl Forwarder {
    pub fn new(
        store: Store,
        destinations: Vec<Destination>,
        options: ForwardOptions,
        clock: Clock,
    ) -> anyhow::Result<Forwarder> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(send::USER_AGENT)
            .build()?;
        let outlets = destinations.into_iter().map(Outlet::new).collect();
        let worker_id = format!("fwd:{}:{:016x}", std::process::id(), rand::random::<u64>());
        Ok(Forwarder {
            recorder: finish::Recorder::new(store.clone(), worker_id.clone()),
            store,
            outlets: Live::new(outlets),
            client,
            options,
            clock,
            worker_id,
            clock_events: Vec::new(),
            pauses_read: std::sync::Mutex::new(None),
            pause_reads: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Also records the deliveries of `events` (for the destinations that
    /// list their type), looking from the start of the clock the first time.
    pub fn with_clock_events(mut self, events: ClockEvents) -> Self {
        self.clock_events.push((events, AtomicI64::new(0)));
        self
    }

    /// Records the deliveries of the clock's events due since last time
    /// (each kind at most every `every`, unless `force`); how many events.
    async fn clock_events(&self, force: bool) -> Result<usize, StoreError> {
        let mut made = 0;
        let now = self.clock.now_ms();
        for (events, checked) in &self.clock_events {
            let since = checked.load(Ordering::Relaxed);
            let every = i64::try_from(events.every.as_millis()).unwrap_or(i64::MAX);
            if !force && now.saturating_sub(since) < every {
                continue;
            }
            let listing: Vec<String> = self
                .outlets()
                .iter()
                .filter(|t| lists_own(&t.config, events.event_type))
                .map(|t| t.config.name.clone())
                .collect();
            if listing.is_empty() {
                continue;
            }
            let (store, derive) = (self.store.clone(), events.derive);
            made += tokio::task::spawn_blocking(move || -> Result<usize, StoreError> {
                let mut conn = store.conn()?;
                crate::store::write_transaction(&mut conn, |tx| {
                    let made = derive(tx, since, now)?;
                    for event in &made {
                        for name in &listing {
                            deliveries::insert(tx, name, event, None, now)?;
                        }
                    }
                    Ok::<_, StoreError>(made.len())
                })
            })
            .await
            .map_err(|e| StoreError::Task(format!("clock events: {e}")))??;
            checked.store(now, Ordering::Relaxed);
        }
        Ok(made)
    }

    /// The store it reads its deliveries from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Sends to `destinations` from the next claim on (a configuration
    /// reload). Requests under way finish with the settings they started
    /// with. A destination that keeps its name keeps its pause switch (410
    /// Gone, also when answered by a request under way) and, with the same
    /// `max_in_flight`, its in-flight slots (a new limit counts from the
    /// next claim on: requests under way are not counted against it).
    pub fn set_destinations(&self, destinations: Vec<Destination>) {
        let old = self.outlets.get();
        let outlets = destinations
            .into_iter()
            .map(
                |config| match old.iter().find(|t| t.config.name == config.name) {
                    Some(t) => Arc::new(Outlet {
                        slots: if t.config.max_in_flight == config.max_in_flight {
                            Arc::clone(&t.slots)
                        } else {
                            Arc::new(Semaphore::new(config.max_in_flight))
                        },
                        pause: Arc::clone(&t.pause),
                        config,
                    }),
                    None => Outlet::new(config),
                },
            )
            .collect();
        self.outlets.set(outlets);
    }

    /// The destinations this forwarder sends to now: the one place it
    /// reads them from.
    fn outlets(&self) -> Arc<Vec<Arc<Outlet>>> {
        self.outlets.get()
    }

    /// Whether the destination was paused when last looked at (it answered
    /// 410 Gone, or an operator paused it).
    pub fn is_paused(&self, destination: &str) -> bool {
        self.outlets()
            .iter()
            .any(|t| t.config.name == destination && t.pause.is_paused())
    }

    /// Sends everything due now (waiting for each request), until nothing
    /// is left. Tests and tools call this instead of sleeping.
    pub async fn run_pending(self: &Arc<Self>) -> Result<Attempted, StoreError> {
        let mut tasks = JoinSet::new();
        let mut tally = Attempted::default();
        self.clock_events(true).await?;
        loop {
            self.claim_into(&mut tasks, Pauses::Read).await?;
            match tasks.join_next().await {
                None => return Ok(tally),
                Some(Ok(t)) => tally.add(&t),
                Some(Err(e)) => tracing::error!(error = %e, "a delivery task failed"),
            }
        }
    }

    /// The background loop: claims whenever a slot is free and there is
    /// work, wakes on `wake` (local commits), a finished request, or the
    /// poll interval; on shutdown lets requests under way end.
    pub async fn run(
        self: Arc<Self>,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        tracing::info!(
            destinations = self.outlets().len(),
            worker = %self.worker_id,
            "forwarder started"
        );
        let mut tasks = JoinSet::new();
        loop {
            if let Err(e) = self.clock_events(false).await {
                tracing::error!(error = %e, "cannot record the clock's events; retrying");
            }
            let backlog = match self.claim_into(&mut tasks, Pauses::Every).await {
                Ok(backlog) => backlog,
                Err(e) => {
                    tracing::error!(error = %e, "cannot claim deliveries; retrying");
                    false
                }
            };
            let woken_by_commit = tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => true,
                Some(_) = tasks.join_next() => false,
                () = tokio::time::sleep(self.options.poll_interval) => false,
            };
            if woken_by_commit && !backlog {
                // Caught up: let the deliveries committed in the next
                // moments join this claim: one claim (and one finish) per
                // batch, not per event, so the forwarder takes the write
                // lock far less often than the intake commits
                // (docs/performance.md). With a backlog there is a batch
                // already: no waiting.
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(CLAIM_WINDOW) => {}
                }
            }
            while tasks.try_join_next().is_some() {}
        }
        // Requests under way end within their time-out; those not recorded
        // are sent again once their lease expires.
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    /// Reads which destinations are paused (by any instance), or only when
    /// [`PAUSES_EVERY`] passed since the last time (`Pauses::Every`).
    async fn refresh_pauses(&self, when: Pauses) -> Result<(), StoreError> {
        {
            let mut read = self.pauses_read.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            let fresh = read.is_some_and(|at| now.duration_since(at) < PAUSES_EVERY);
            if when == Pauses::Every && fresh {
                return Ok(());
            }
            *read = Some(now);
        }
        self.store_held_pauses().await;
        let read = self.pause_reads.fetch_add(1, Ordering::SeqCst) + 1;
        let store = self.store.clone();
        let paused: HashSet<String> = tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            pauses::list(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Task(format!("pause lookup: {e}")))??
        .into_iter()
        .map(|p| p.destination)
        .collect();
        for outlet in self.outlets().iter() {
            if outlet
                .pause
                .apply(read, paused.contains(&outlet.config.name))
            {
                tracing::info!(destination = %outlet.config.name, "destination resumed");
            }
        }
        Ok(())
    }

    /// Stores again the pauses (410s answered here) that could not be
    /// stored yet; they stay in force here meanwhile.
    async fn store_held_pauses(&self) {
        for outlet in self.outlets().iter() {
            let Some((reason, at)) = outlet.pause.unstored() else {
                continue;
            };
            let name = &outlet.config.name;
            match self.store_pause(name, at, &reason).await {
                Ok(()) => {
                    outlet.pause.stored(self.pause_reads.load(Ordering::SeqCst));
                    tracing::warn!(destination = %name, reason = %reason, "the 410 Gone pause is stored now: PAUSED for every instance until resumed");
                }
                Err(e) => tracing::error!(
                    destination = %name, error = %e,
                    "destination answered 410 Gone: still paused in this process only, the pause cannot be stored; retrying"
                ),
            }
        }
    }

    /// Writes the pause row of `destination`.
    async fn store_pause(&self, destination: &str, at: i64, reason: &str) -> Result<(), String> {
        let store = self.store.clone();
        let (name, reason) = (destination.to_owned(), reason.to_owned());
        match tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            pauses::pause(&mut conn, &name, at, &reason)
        })
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("pause task failed: {e}")),
        }
    }

    /// For each destination not paused: claims as many deliveries as it has
    /// free slots and starts them. Whether some destination may have more
    /// due than it claimed (its claim filled every slot it asked for).
    async fn claim_into(
        self: &Arc<Self>,
        tasks: &mut JoinSet<Attempted>,
        pauses: Pauses,
    ) -> Result<bool, StoreError> {
        let mut backlog = false;
        self.refresh_pauses(pauses).await?;
        for outlet in self.outlets().iter() {
            if outlet.pause.is_paused() {
                continue;
            }
            // Claim in batches: while some requests are in flight, wait
            // until at least half the slots are free (one claim
            // transaction per batch, not per finished request).
            let (free, max) = (
                outlet.slots.available_permits(),
                outlet.config.max_in_flight,
            );
            if free == 0 || (free < max && free < max.div_ceil(2)) {
                continue;
            }
            let mut permits = Vec::new();
            while let Ok(permit) = Arc::clone(&outlet.slots).try_acquire_owned() {
                permits.push(permit);
            }
            if permits.is_empty() {
                continue;
            }
            let claimed = self.claim(outlet, permits.len()).await?;
            backlog |= claimed.len() == permits.len();
            for (delivery, permit) in claimed.into_iter().zip(permits) {
                let (this, outlet) = (Arc::clone(self), Arc::clone(outlet));
                tasks.spawn(async move { this.attempt(&outlet, delivery, permit).await });
            }
        }
        Ok(backlog)
    }

    /// Claims up to `limit` deliveries of `outlet`, recording in the same
    /// transaction the attempts that ended meanwhile (their tasks wait for
    /// the recorder's next commit otherwise).
    async fn claim(&self, outlet: &Outlet, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let store = self.store.clone();
        let (name, ordered) = (outlet.config.name.clone(), outlet.config.ordered);
        let owner = self.worker_id.clone();
        let now = self.clock.now_ms();
        let lease_ms = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX);
        let (rows, waiters) = self.recorder.take();
        let result = tokio::task::spawn_blocking(move || {
            let wanted = deliveries::Claim {
                destination: &name,
                ordered,
                owner: &owner,
                now,
                lease_ms,
                limit,
            };
            let done = store
                .conn()
                .and_then(|mut conn| deliveries::finish_and_claim(&mut conn, &rows, &wanted));
            (done, rows)
        })
        .await;
        match result {
            Ok((Ok((recorded, claimed)), _)) => {
                waiters.answer(recorded);
                Ok(claimed)
            }
            Ok((Err(e), rows)) => {
                self.recorder.give_back(rows, waiters).await;
                Err(e)
            }
            Err(e) => {
                let e = format!("claim task failed: {e}");
                waiters.fail(&e);
                Err(StoreError::Task(e))
            }
        }
    }

    /// Pauses `outlet` for every instance (it answered 410 Gone): here at
    /// once, for the others once the row is stored (tried again at each
    /// read of the pauses while it fails).
    async fn pause(&self, outlet: &Outlet, delivery: &Delivery, now: i64) {
        let reason = format!("410 Gone answered to {}", delivery.delivery_id);
        outlet.pause.hold(reason.clone(), now);
        let d = &outlet.config;
        match self.store_pause(&d.name, now, &reason).await {
            Ok(()) => {
                outlet.pause.stored(self.pause_reads.load(Ordering::SeqCst));
                tracing::error!(
                    destination = %d.name, delivery_id = %delivery.delivery_id,
                    event_id = %delivery.event_id, status = 410,
                    "destination answered 410 Gone: PAUSED for every instance until resumed (`stripe-hookd destinations resume {}`)",
                    d.name
                );
            }
            Err(e) => tracing::error!(
                destination = %d.name, delivery_id = %delivery.delivery_id, status = 410, error = %e,
                "destination answered 410 Gone: paused in this process only, the pause could not be stored; retrying"
            ),
        }
    }

    /// Sends one delivery and records how it ended.
    async fn attempt(
        self: Arc<Self>,
        outlet: &Outlet,
        delivery: Delivery,
        permit: OwnedSemaphorePermit,
    ) -> Attempted {
        let d = &outlet.config;
        let started_at = self.clock.now_ms();
        let started = std::time::Instant::now();
        let sent = send::send(&self.client, d, &delivery).await;
        // The slot counts requests to the app: free once answered, while
        // the outcome waits for its (group) commit. The delivery keeps its
        // lease until then, so it is not claimed again meanwhile.
        drop(permit);
        let elapsed = started.elapsed();
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let now = self.clock.now_ms();
        let answer = &sent.answer;
        let outcome = match answer {
            send::Answer::Delivered(_) => Outcome::Delivered,
            send::Answer::Gone => {
                self.pause(outlet, &delivery, now).await;
                // Like any retry (never dead: the destination waits for an
                // operator): a resume within the backoff does not resend
                // at once to an app that just said Gone.
                Outcome::Retry {
                    next_attempt_at: self.retry_at(&delivery, None, now),
                }
            }
            failed => self.verdict(d, &delivery, failed.retry_after(), now),
        };
        let (status, error) = (answer.status(), answer.error());
        let headers = serde_json::to_string(&sent.request_headers).unwrap_or_else(|_| "[]".into());
        let recorded = self
            .recorder
            .record(Finished {
                id: delivery.id,
                attempt: history::NewAttempt {
                    delivery_id: delivery.delivery_id.clone(),
                    destination: d.name.clone(),
                    attempt: delivery.attempts,
                    started_at,
                    duration_ms: i64::try_from(duration_ms).unwrap_or(i64::MAX),
                    outcome: outcome.as_str().to_owned(),
                    http_status: status.map(i32::from),
                    error: error.clone(),
                    request_headers: headers,
                    response_body: sent.response_body,
                },
                outcome: outcome.clone(),
                now,
            })
            .await;
        let status_field = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        metrics::histogram!(crate::metrics::DELIVERY_SECONDS, "destination" => d.name.clone())
            .record(elapsed.as_secs_f64());
        let mut tally = Attempted::default();
        match recorded {
            Ok(true) => match outcome {
                Outcome::Delivered => {
                    tally.delivered = 1;
                    tracing::info!(
                        destination = %d.name, delivery_id = %delivery.delivery_id,
                        event_id = %delivery.event_id, status = %status_field, duration_ms,
                        attempt = delivery.attempts, "delivered"
                    );
                }
                Outcome::Retry { next_attempt_at } => {
                    tally.retried = 1;
                    tracing::warn!(
                        destination = %d.name, delivery_id = %delivery.delivery_id,
                        event_id = %delivery.event_id, status = %status_field, duration_ms,
                        attempt = delivery.attempts, retry_in_ms = next_attempt_at - now,
                        error = error.as_deref().unwrap_or(""), "delivery failed; will retry"
                    );
                }
                Outcome::Dead => {
                    tally.dead = 1;
                    tracing::error!(
                        destination = %d.name, delivery_id = %delivery.delivery_id,
                        event_id = %delivery.event_id, status = %status_field, duration_ms,
                        attempt = delivery.attempts, error = error.as_deref().unwrap_or(""),
                        "delivery dead: retry budget spent"
                    );
                }
            },
            Ok(false) => {
                tally.lost = 1;
                tracing::warn!(destination = %d.name, delivery_id = %delivery.delivery_id, "lease lost before the attempt was recorded");
            }
            Err(e) => {
                tracing::error!(destination = %d.name, delivery_id = %delivery.delivery_id, error = %e, "cannot record a delivery attempt; it is sent again when its lease expires");
            }
        }
        for (outcome, n) in [
            ("delivered", tally.delivered),
            ("retry", tally.retried),
            ("dead", tally.dead),
            ("lease_lost", tally.lost),
        ] {
            if n > 0 {
                metrics::counter!(crate::metrics::DELIVERY_ATTEMPTS, "destination" => d.name.clone(), "outcome" => outcome)
                    .increment(n as u64);
            }
        }
        tally
    }

    fn verdict(
        &self,
        d: &Destination,
        delivery: &Delivery,
        retry_after: Option<Duration>,
        now: i64,
    ) -> Outcome {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        let age = Duration::from_millis(u64::try_from(now - delivery.created_at).unwrap_or(0));
        if attempts >= d.max_attempts || age >= d.max_age {
            return Outcome::Dead;
        }
        Outcome::Retry {
            next_attempt_at: self.retry_at(delivery, retry_after, now),
        }
    }

    /// When a failed attempt of `delivery` is due again: the backoff for
    /// its attempt number, `retry_after` a floor.
    fn retry_at(&self, delivery: &Delivery, retry_after: Option<Duration>, now: i64) -> i64 {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(u32::MAX);
        let delay = backoff::retry_delay(
            attempts,
            self.options.backoff_base,
            self.options.backoff_max,
            retry_after,
            rand::random::<f64>(),
        );
        now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
    }
}
