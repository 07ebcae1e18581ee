//! Convergence under any delivery schedule, with Stripe changing while
//! events are delivered and processed. Each case walks a random history in
//! the fake Stripe (a customer, a subscription moving through its statuses,
//! an invoice settled somewhere along the way, a checkout session, a
//! dispute); after every change, some of the events emitted so far are
//! delivered through the real intake — reordered, duplicated, some dropped
//! and recovered by catch-up at the end — and processed by one of TWO
//! runners on the same database whose clocks are four minutes apart (one,
//! the other, or both at once). Some changes race: a fetch of the
//! subscription (a completed Checkout's, or a resync's) is held in the fake,
//! Stripe changes, the other runner fetches and commits the newer state,
//! then the held (older) answer is released and its write lands last — it
//! must be dropped by the fetch-order guard. Faults: Stripe 429/500, a
//! worker dying with its leases, the database refusing intake writes. At
//! the end the queue runs to quiescence with the steppable runners, and the
//! local records must equal the fake's final state, with every event `done`
//! once and the access answer agreeing with the subscription.
//!
//! A case may also set the subscription up in one of the states the access
//! rule has a branch for ([`Twist`]: a trial Stripe ends without a payment
//! method, a `cancel_at`, an unpaid update or renewal found late, the live
//! key put in on the same database); the final check derives the expected
//! answer from the fake's final objects by docs/entitlements.md
//! ([`stripe_says_access`], not the daemon's rule) and compares it with
//! `GET /v1/access` and the Rust reader.
//!
//! `PROPTEST_CASES=20000 cargo test --all-features --test it simulation`
//! for a longer soak; a failure prints the plan and shrinks it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::prelude::*;
use proptest::prelude::*;
use rand::Rng;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::{entitlements, Family, ReconcileHandler};
use stripe_hookd::testing::store::schema::{customers, event_attempts, invoices, subscriptions};
use stripe_hookd::testing::store::{access_mode, now_ms, outbox, with_conn};
use stripe_hookd::testing::trigger::Scenario;
use stripe_hookd::testing::util::Clock;

use crate::access_api::{ask, ACCESS_TOKEN};
use crate::fake_stripe::{set_subscription_status, FakeStripe, Fault};
use crate::harness::*;
use crate::harness_faults::{accept_inserts, refuse_inserts};

/// How far the second runner's clock is ahead of the first's.
const SKEW: Duration = Duration::from_secs(240);
/// The runners' lease: longer than the skew, so neither takes the other's
/// live leases (a held fetch would otherwise lose its lease, not race).
const LEASE_SECS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubStatus {
    Active,
    PastDue,
    Canceled,
    Trialing,
}

impl SubStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Trialing => "trialing",
        }
    }
}

/// Who makes the older fetch of the subscription that is held while
/// Stripe changes and the other runner fetches and commits the newer state.
#[derive(Debug, Clone, Copy)]
enum Race {
    /// A runner processing a completed Checkout (which fetches the
    /// session's subscription too); the runner is the one whose clock is
    /// ahead if `true`.
    Checkout(bool),
    /// A resync (the admin's fetch-and-write) by that instance.
    Resync(bool),
}

impl Race {
    fn older_is_ahead(self) -> bool {
        match self {
            Race::Checkout(a) | Race::Resync(a) => a,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum FaultPlan {
    None,
    /// The Stripe API answers 429 (not to be retried by the client) a few times.
    RateLimited(u8),
    /// The Stripe API answers 500 a few times.
    ServerErrors(u8),
    /// A worker claims everything waiting and dies holding the leases.
    Crash,
    /// The database refuses intake writes for a while (503; Stripe retries).
    DbRefuses,
}

/// A state of the subscription that the access rule has a branch for,
/// set up at the start of a case (docs/entitlements.md, "The rule").
#[derive(Debug, Clone, Copy)]
enum Twist {
    /// None: the walk alone.
    None,
    /// A trial Stripe ends per `missing_payment_method` = `behavior`, its
    /// `trial_end` passed (`ended`) or a day ahead, a payment method on the
    /// subscription, on the customer, or nowhere. The case ends `trialing`.
    Trial {
        behavior: &'static str,
        ended: bool,
        method: MethodOn,
    },
    /// `cancel_at` a minute ago (`passed`) or a day ahead, while Stripe
    /// still says `active`/`trialing`/`past_due` (its cancellation's event
    /// is late).
    CancelAt { passed: bool },
    /// The latest invoice is unpaid (`open`): for a mid-period update
    /// (`subscription_update`, an upgrade's proration) or a renewal
    /// (`subscription_cycle`), finalised a week ago (`late`: found late, its
    /// grace over) or an hour ago. The case ends `past_due`.
    Unpaid { update: bool, late: bool },
    /// At the check, the live key is put in on the same database (the
    /// world's live instance answers, its mode recorded): the case's
    /// test-mode access is answered no more.
    TestThenLive,
}

#[derive(Debug, Clone, Copy)]
enum MethodOn {
    Nowhere,
    Subscription,
    Customer,
}

#[derive(Debug, Clone)]
struct Plan {
    /// The subscription's walk after `incomplete`; a change may race.
    walk: Vec<(SubStatus, Option<Race>)>,
    invoice_paid: bool,
    /// After which change of the walk the invoice is settled.
    invoice_at: u8,
    /// A last change after everything was processed, racing (so every
    /// case puts the guard to the test at least once).
    last: (SubStatus, Race),
    /// Per event: how many times it is delivered (0 = dropped, recovered by catch-up).
    copies: Vec<u8>,
    /// Seed of the delivery order, of how many are delivered after each
    /// change, and of which runner processes.
    order: u64,
    /// Run a runner after every n deliveries (0: only at the end).
    process_every: u8,
    fault: FaultPlan,
    /// Where in the delivery sequence the fault strikes.
    fault_at: u8,
    twist: Twist,
}

fn plan() -> impl Strategy<Value = Plan> {
    let status = || {
        prop_oneof![
            Just(SubStatus::Active),
            Just(SubStatus::PastDue),
            Just(SubStatus::Canceled),
            Just(SubStatus::Trialing),
        ]
    };
    let race = || {
        prop_oneof![
            any::<bool>().prop_map(Race::Checkout),
            any::<bool>().prop_map(Race::Resync),
        ]
    };
    let twist = prop_oneof![
        2 => Just(Twist::None),
        1 => (
            prop_oneof![Just("cancel"), Just("pause"), Just("create_invoice")],
            any::<bool>(),
            prop_oneof![
                2 => Just(MethodOn::Nowhere),
                1 => Just(MethodOn::Subscription),
                1 => Just(MethodOn::Customer),
            ],
        )
            .prop_map(|(behavior, ended, method)| Twist::Trial {
                behavior,
                ended,
                method
            }),
        1 => any::<bool>().prop_map(|passed| Twist::CancelAt { passed }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(update, late)| Twist::Unpaid { update, late }),
        1 => Just(Twist::TestThenLive),
    ];
    let fault = prop_oneof![
        3 => Just(FaultPlan::None),
        1 => (1u8..4).prop_map(FaultPlan::RateLimited),
        1 => (1u8..4).prop_map(FaultPlan::ServerErrors),
        1 => Just(FaultPlan::Crash),
        1 => Just(FaultPlan::DbRefuses),
    ];
    (
        proptest::collection::vec((status(), proptest::option::weighted(0.3, race())), 1..6),
        (any::<bool>(), 0u8..6),
        (status(), race()),
        proptest::collection::vec(0u8..4, 16),
        any::<u64>(),
        0u8..5,
        fault,
        any::<u8>(),
        twist,
    )
        .prop_map(
            |(
                walk,
                (invoice_paid, invoice_at),
                last,
                copies,
                order,
                process_every,
                fault,
                fault_at,
                twist,
            )| {
                Plan {
                    walk,
                    invoice_paid,
                    invoice_at,
                    last,
                    copies,
                    order,
                    process_every,
                    fault,
                    fault_at,
                    twist,
                }
                .shaped()
            },
        )
}

impl Plan {
    /// A twisted case never cancels (the state would not show), and ends in
    /// the status its twist is about (`cancel_at`: any granting one).
    fn shaped(mut self) -> Plan {
        let end = match self.twist {
            Twist::None | Twist::TestThenLive => return self,
            Twist::Trial { .. } => SubStatus::Trialing,
            Twist::Unpaid { .. } => SubStatus::PastDue,
            Twist::CancelAt { .. } if self.last.0 == SubStatus::Canceled => SubStatus::Active,
            Twist::CancelAt { .. } => self.last.0,
        };
        // Dropped, not replaced: the walk stays as long as an untwisted one
        // (which stops at its first cancellation).
        self.walk
            .retain(|(status, _)| *status != SubStatus::Canceled);
        self.last.0 = end;
        self
    }
}

/// One world per backend for the whole run: every case uses fresh ids.
struct World {
    runtime: tokio::runtime::Runtime,
    _db: TestDb,
    fake: FakeStripe,
    /// Two instances on the one database; `b`'s clock is [`SKEW`] ahead.
    a: TestApp,
    b: TestApp,
    /// A third instance, with the live key (see [`access_once_live`]).
    live: TestApp,
    /// The reconcile handler a resync uses (the admin's path).
    ops: Arc<ReconcileHandler>,
    backend: Backend,
}

fn world(backend: Backend) -> &'static World {
    static SQLITE: OnceLock<World> = OnceLock::new();
    static POSTGRES: OnceLock<World> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let db = TestDb::new(backend);
        let (fake, live, a, b) = runtime.block_on(async {
            let fake = FakeStripe::start().await.expect("fake stripe");
            let options = |clock: Clock| AppOptions {
                clock,
                ..AppOptions::default()
                    .stripe(&fake.base_url)
                    .admin()
                    .config(|c| {
                        c.access_token = Some(ACCESS_TOKEN.into());
                        // Failed calls go back to the runner, whose clock the
                        // simulation moves: no real sleeping between retries.
                        c.stripe.max_retries = 0;
                        // A held answer waits for conditions, never for time.
                        c.stripe.timeout_secs = 300;
                        c.runner.backoff_base_ms = 1000;
                        c.runner.backoff_max_secs = 30;
                        c.runner.lease_secs = LEASE_SECS;
                        c.runner.max_attempts = 1000;
                        // The clocks move by hours over a run.
                        c.runner.max_age_hours = 24 * 365 * 100;
                    })
            };
            // Started first: the test instances' start records their mode last.
            let live = TestApp::spawn_with(&db, live_options(&fake)).await;
            let a = TestApp::spawn_with(&db, options(Clock::default())).await;
            let ahead = Clock::default();
            ahead.advance(SKEW);
            let b = TestApp::spawn_with(&db, options(ahead)).await;
            (fake, live, a, b)
        });
        let ops = stripe_hookd::testing::app::reconcile_handler(&config_for(&fake.base_url, 300))
            .expect("reconcile handler")
            .expect("stripe configured");
        World {
            runtime,
            _db: db,
            fake,
            live,
            a,
            b,
            ops,
            backend,
        }
    })
}

impl World {
    fn advance(&self, by: Duration) {
        self.a.runner.clock().advance(by);
        self.b.runner.clock().advance(by);
    }

    /// `(older, newer)` for a race.
    fn pair(&self, race: Race) -> (&TestApp, &TestApp) {
        if race.older_is_ahead() {
            (&self.b, &self.a)
        } else {
            (&self.a, &self.b)
        }
    }
}

/// An event as Stripe would emit it for the object's current state.
pub(crate) fn event(event_type: &str, object: &Value, created: i64) -> Value {
    json!({
        "id": stripe_hookd::testing::trigger::scenario::new_id("evt"),
        "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "livemode": false, "pending_webhooks": 1, "type": event_type,
        "data": {"object": object}
    })
}

/// Delivers until the intake says 2xx (as Stripe retries): returns false if
/// the database kept refusing.
pub(crate) async fn deliver(app: &TestApp, body: &str) -> bool {
    for _ in 0..3 {
        if app.deliver(body).await.status().is_success() {
            return true;
        }
    }
    false
}

pub(crate) fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// One case in progress.
struct Case<'w> {
    w: &'w World,
    plan: &'w Plan,
    s: Scenario,
    second: i64,
    rng: rand::rngs::StdRng,
    /// Every event Stripe emitted in this case.
    events: Vec<Value>,
    /// Deliveries still to make (event indexes; duplicates repeat).
    pool: Vec<usize>,
    /// Events never delivered (recovered by catch-up at the end).
    dropped: Vec<usize>,
    acknowledged: std::collections::HashSet<String>,
    delivered: usize,
    fault_at: usize,
    fault_done: bool,
    /// The subscription as Stripe has it now.
    sub: Value,
    rev: u64,
}

impl Case<'_> {
    fn ids(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Stripe emits an event: it joins the deliveries to make.
    fn emit(&mut self, event_type: &str, object: &Value) -> usize {
        let i = self.events.len();
        self.events.push(event(event_type, object, self.second));
        match self.plan.copies[i % self.plan.copies.len()] {
            0 => self.dropped.push(i),
            n => self.pool.extend(std::iter::repeat_n(i, n as usize)),
        }
        i
    }

    /// Changes the subscription in Stripe (every change is visible in its
    /// metadata, so a stale write shows even when the status is the same).
    fn change_subscription(&mut self, status: SubStatus) {
        let was_canceled = self.sub["status"] == json!("canceled");
        if !was_canceled {
            set_subscription_status(&mut self.sub, status.as_str());
        }
        self.rev += 1;
        self.sub["metadata"] = json!({"rev": self.rev.to_string()});
        self.w.fake.put(self.sub.clone());
        let t = if !was_canceled && status == SubStatus::Canceled {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        let sub = self.sub.clone();
        self.emit(t, &sub);
    }

    /// Delivers `n` of the waiting deliveries, picked at random, running a
    /// runner every `process_every` deliveries.
    async fn deliver_some(&mut self, n: usize) -> Result<(), TestCaseError> {
        rand::seq::SliceRandom::shuffle(self.pool.as_mut_slice(), &mut self.rng);
        let n = n.min(self.pool.len());
        let batch: Vec<usize> = self.pool.drain(..n).collect();
        for i in batch {
            if self.delivered == self.fault_at && !self.fault_done {
                self.fault_done = true;
                inject(self.w, self.plan.fault).await?;
            }
            let app = if self.rng.random() {
                &self.w.a
            } else {
                &self.w.b
            };
            let body = self.events[i].to_string();
            if deliver(app, &body).await {
                self.acknowledged
                    .insert(self.events[i]["id"].as_str().unwrap_or_default().to_owned());
            } else {
                // The database refused every try: Stripe would retry later.
                self.dropped.push(i);
            }
            let every = self.plan.process_every as usize;
            if every > 0 && self.delivered % every == 0 {
                self.process().await?;
            }
            self.delivered += 1;
        }
        Ok(())
    }

    /// Runs one runner, the other, or both at once, to the end of what is due.
    async fn process(&mut self) -> Result<(), TestCaseError> {
        let (a, b) = (&self.w.a.runner, &self.w.b.runner);
        match self.rng.random_range(0..3) {
            0 => {
                a.run_pending().await.map_err(fail)?;
            }
            1 => {
                b.run_pending().await.map_err(fail)?;
            }
            _ => {
                let (x, y) = tokio::join!(a.run_pending(), b.run_pending());
                x.map_err(fail)?;
                y.map_err(fail)?;
            }
        }
        Ok(())
    }

    /// A change of the subscription made while an older fetch of it is
    /// held in the fake: the other runner fetches and commits the newer
    /// state, then the held answer is released and written last. If the
    /// older fetch never reaches Stripe (a fault failed it first), the
    /// change is made without a race.
    async fn race(&mut self, status: SubStatus, race: Race) -> Result<(), TestCaseError> {
        let w = self.w;
        let (older, newer) = w.pair(race);
        let sid = self.s.subscription.clone();
        let hold = w.fake.hold_next(&format!("/v1/subscriptions/{sid}"));
        let mut task = match race {
            Race::Checkout(_) => {
                let session = w.fake.get(&self.s.checkout_session).unwrap_or_default();
                let i = self.emit("checkout.session.completed", &session);
                let body = self.events[i].to_string();
                if deliver(older, &body).await {
                    self.acknowledged
                        .insert(self.events[i]["id"].as_str().unwrap_or_default().to_owned());
                } else {
                    self.dropped.push(i);
                }
                let runner = Arc::clone(&older.runner);
                tokio::spawn(async move {
                    runner
                        .run_pending()
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            }
            Race::Resync(_) => {
                let (ops, store) = (Arc::clone(&w.ops), older.store.clone());
                let cx = stripe_hookd::testing::queue::HandlerContext {
                    store: store.clone(),
                    clock: older.runner.clock().clone(),
                };
                tokio::spawn(async move {
                    // A fetch that fails (an API fault) writes nothing.
                    if let Ok(records) = ops.fetch(&cx, Family::Subscription, &sid, None).await {
                        ops.write(&store, records, None)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            }
        };
        let finished = tokio::select! {
            _ = hold.arrived() => None,
            r = &mut task => Some(r),
        };
        if let Some(result) = finished {
            w.fake.clear_holds();
            hold.release();
            result.map_err(fail)?.map_err(fail)?;
            self.change_subscription(status);
            return Ok(());
        }
        // The older answer is fixed; Stripe changes, the newer fetch commits.
        self.change_subscription(status);
        let i = self.events.len() - 1;
        let id = self.events[i]["id"].as_str().unwrap_or_default().to_owned();
        let body = self.events[i].to_string();
        if deliver(newer, &body).await {
            self.acknowledged.insert(id.clone());
        } else {
            self.dropped.push(i);
        }
        newer.runner.run_pending().await.map_err(fail)?;
        let newer_done = newer
            .db(move |c| outbox::get(c, &id).unwrap().map(|r| r.status.as_str()))
            .await
            == Some("done");
        hold.release();
        task.await.map_err(fail)?.map_err(fail)?;
        if newer_done {
            // The older answer was written after the newer one: it must not win.
            let (status, metadata) = local_subscription(newer, &self.s.subscription).await;
            prop_assert_eq!(
                (status.as_str(), metadata),
                (
                    self.sub["status"].as_str().unwrap_or_default(),
                    self.sub["metadata"].clone()
                ),
                "an older fetch written after a newer one overwrote it ({:?})",
                race
            );
        }
        Ok(())
    }

    /// Recovers the dropped deliveries through catch-up (Stripe's event
    /// list holds this case's undelivered events).
    async fn catch_up(&mut self) -> Result<(), TestCaseError> {
        let mut dropped = std::mem::take(&mut self.dropped);
        dropped.sort_unstable();
        dropped.dedup();
        if dropped.is_empty() {
            return Ok(());
        }
        let (w, fake) = (self.w, &self.w.fake);
        fake.clear_events();
        for &i in &dropped {
            fake.push_event(self.events[i].clone());
        }
        // A catch-up that meets the API faults is simply run again (as the schedule would).
        let options = stripe_hookd::testing::reconcile::catchup::CatchUpOptions {
            since: self.second - 5,
            only_failed: false,
            dry_run: false,
            thin: false,
        };
        let mut report = None;
        let mut missing = Vec::new();
        for _ in 0..20 {
            match stripe_hookd::testing::reconcile::catchup::run(
                w.ops.client(),
                &w.a.store,
                &options,
            )
            .await
            {
                Ok(r) => {
                    missing.extend(r.missing.clone());
                    report = Some(r);
                    break;
                }
                Err(_) => continue,
            }
        }
        let mut report = report.ok_or_else(|| TestCaseError::fail("catch-up never got through"))?;
        report.missing = missing;
        for &i in &dropped {
            let id = self.events[i]["id"].as_str().unwrap_or_default();
            prop_assert!(
                report.missing.iter().any(|m| m == id) || self.acknowledged.contains(id),
                "catch-up recovered {id}"
            );
        }
        Ok(())
    }

    /// Runs both runners until every event of the case is settled, moving
    /// their clocks instead of sleeping.
    async fn quiesce(&mut self) -> Result<(), TestCaseError> {
        for round in 0..60 {
            let (a, b) = (&self.w.a.runner, &self.w.b.runner);
            let (x, y) = tokio::join!(a.run_pending(), b.run_pending());
            x.map_err(fail)?;
            y.map_err(fail)?;
            let ids = self.ids();
            let open = self
                .w
                .a
                .db(move |c| {
                    ids.iter()
                        .filter_map(|id| outbox::get(c, id).unwrap())
                        .filter(|r| r.status == "pending" || r.status == "processing")
                        .count()
                })
                .await;
            if open == 0 {
                return Ok(());
            }
            // Backoffs first; after a while, leases a dead worker left.
            let by = if round < 8 { 31 } else { LEASE_SECS + 1 };
            self.w.advance(Duration::from_secs(by));
        }
        Ok(())
    }
}

/// The local subscription's status and metadata.
pub(crate) async fn local_subscription(app: &TestApp, id: &str) -> (String, Value) {
    let id = id.to_owned();
    let (status, metadata): (String, String) = app
        .db(move |c| {
            with_conn!(c, c => subscriptions::table
                .filter(subscriptions::id.eq(&id))
                .select((subscriptions::status, subscriptions::metadata))
                .first(c)
                .unwrap())
        })
        .await;
    (
        status,
        serde_json::from_str(&metadata).unwrap_or(Value::Null),
    )
}

async fn run_case(w: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let s = Scenario::new(false, "2025-03-31.basil");
    let mut case = Case {
        w,
        plan,
        second: now_ms() / 1000, // several events share this second
        rng: <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(plan.order),
        sub: Value::Null,
        s,
        events: Vec::new(),
        pool: Vec::new(),
        dropped: Vec::new(),
        acknowledged: Default::default(),
        delivered: 0,
        fault_at: plan.fault_at as usize % 24,
        fault_done: false,
        rev: 0,
    };
    let (fake, s) = (&w.fake, case.s.clone());

    // 1. The history, delivered as it happens: after every change some of
    // the events emitted so far go out.
    let mut customer = fake.customer(&s);
    case.sub = fake.subscription(&s, "incomplete");
    let unpaid = set_up_twist(&mut case, &mut customer);
    case.emit("customer.created", &customer);
    let sub = case.sub.clone();
    case.emit("customer.subscription.created", &sub);
    if let Some(invoice) = unpaid {
        case.emit("invoice.payment_failed", &invoice);
    }
    let session = fake.checkout_session(&s);
    case.emit("checkout.session.completed", &session);
    let invoice = fake.invoice(&s, "open");
    case.emit("invoice.created", &invoice);
    let dispute = fake.dispute(&s, "needs_response");
    case.emit("charge.dispute.created", &dispute);
    let n = case.rng.random_range(0..=case.pool.len());
    case.deliver_some(n).await?;
    let mut invoice_settled = false;
    for (k, &(status, race)) in plan.walk.iter().enumerate() {
        if case.sub["status"] == json!("canceled") {
            break;
        }
        if k == plan.invoice_at as usize {
            settle_invoice(&mut case, &invoice);
            invoice_settled = true;
        }
        match race {
            Some(race) => case.race(status, race).await?,
            None => case.change_subscription(status),
        }
        let n = case.rng.random_range(0..=case.pool.len());
        case.deliver_some(n).await?;
    }
    if !invoice_settled {
        settle_invoice(&mut case, &invoice);
    }
    case.deliver_some(usize::MAX).await?;
    if !case.fault_done {
        case.fault_done = true;
        inject(w, plan.fault).await?;
    }
    heal(w).await?;

    // 2. Dropped deliveries are recovered through catch-up.
    case.catch_up().await?;

    // 3. Quiescence, then one more change that races with nothing else in
    // flight, and quiescence again.
    case.quiesce().await?;
    let (status, race) = plan.last;
    case.race(status, race).await?;
    case.deliver_some(usize::MAX).await?;
    case.catch_up().await?;
    case.quiesce().await?;

    // 4. The checks: local == Stripe.
    let ids = case.ids();
    let rows =
        w.a.db(move |c| {
            ids.iter()
                .map(|id| outbox::get(c, id).unwrap())
                .collect::<Vec<_>>()
        })
        .await;
    for (e, row) in case.events.iter().zip(&rows) {
        let id = e["id"].as_str().unwrap_or_default();
        let row = row
            .as_ref()
            .ok_or_else(|| TestCaseError::fail(format!("{id} is not in the outbox")))?;
        prop_assert_eq!(&row.status, "done", "{} {}", id, row.event_type);
    }
    let final_sub = fake.get(&s.subscription).unwrap_or_default();
    let final_status = final_sub["status"].as_str().unwrap_or_default().to_owned();
    let (local_status, local_metadata) = local_subscription(&w.b, &s.subscription).await;
    prop_assert_eq!(
        local_status.as_str(),
        final_status.as_str(),
        "subscription status"
    );
    prop_assert_eq!(
        &local_metadata,
        &final_sub["metadata"],
        "subscription metadata"
    );
    let final_invoice = fake.get(&s.invoice).unwrap_or_default();
    let (iid, cid) = (s.invoice.clone(), s.customer.clone());
    let case_ids = case.ids();
    let (local_inv, local_customers, done_twice): (Option<String>, i64, i64) = w
        .a
        .db(move |c| {
            with_conn!(c, c => (
                invoices::table.filter(invoices::id.eq(&iid)).select(invoices::status).first(c).unwrap(),
                customers::table.filter(customers::id.eq(&cid)).count().get_result(c).unwrap(),
                event_attempts::table
                    .filter(event_attempts::event_id.eq_any(&case_ids))
                    .filter(event_attempts::outcome.eq("done"))
                    .group_by(event_attempts::event_id)
                    .having(diesel::dsl::count_star().gt(1))
                    .select(event_attempts::event_id)
                    .load::<String>(c)
                    .unwrap()
                    .len() as i64,
            ))
        })
        .await;
    prop_assert_eq!(local_inv.as_deref(), final_invoice["status"].as_str());
    prop_assert_eq!(local_customers, 1);
    prop_assert_eq!(done_twice, 0, "no event was applied (marked done) twice");
    // The access answer is what docs/entitlements.md says of the fake's
    // final objects.
    let latest_invoice = final_sub["latest_invoice"]
        .as_str()
        .and_then(|id| fake.get(id));
    let stripe_customer = fake.get(&s.customer).unwrap_or_default();
    let expected = stripe_says_access(
        &final_sub,
        latest_invoice.as_ref(),
        &stripe_customer,
        now_ms(),
    );
    let answered = access_answer(&w.b, &s.customer).await?;
    prop_assert_eq!(
        answered,
        expected,
        "access for {} ({:?}): the subscription {}, its latest invoice {:?}",
        final_status,
        plan.twist,
        final_sub,
        latest_invoice
    );
    if let Twist::TestThenLive = plan.twist {
        let live = access_once_live(w, &s.customer).await?;
        prop_assert!(!live, "test-mode access answered by the live instance");
    }
    Ok(())
}

const DAY: i64 = 24 * 3600;
/// `entitlements.past_due_grace_hours`, the default.
const GRACE_MS: i64 = 72 * 3_600_000;

/// Sets the case's subscription (and customer) up in the state of its
/// twist, in the fake, before any event about them is emitted; returns the
/// unpaid invoice of [`Twist::Unpaid`], whose event is to be emitted.
fn set_up_twist(case: &mut Case<'_>, customer: &mut Value) -> Option<Value> {
    let (fake, now) = (&case.w.fake, case.second);
    let mut unpaid = None;
    match case.plan.twist {
        Twist::None | Twist::TestThenLive => {}
        Twist::Trial {
            behavior,
            ended,
            method,
        } => {
            case.sub["trial_start"] = json!(now - 14 * DAY);
            case.sub["trial_end"] = json!(if ended { now - 60 } else { now + DAY });
            case.sub["trial_settings"] =
                json!({"end_behavior": {"missing_payment_method": behavior}});
            match method {
                MethodOn::Nowhere => {}
                MethodOn::Subscription => {
                    case.sub["default_payment_method"] = json!("pm_card_visa");
                }
                MethodOn::Customer => {
                    customer["invoice_settings"]["default_payment_method"] = json!("pm_card_visa");
                    fake.put(customer.clone());
                }
            }
        }
        Twist::CancelAt { passed } => {
            case.sub["cancel_at"] = json!(if passed { now - 60 } else { now + DAY });
        }
        Twist::Unpaid { update, late } => {
            let billed = now - if late { 7 * DAY } else { 3600 };
            let mut invoice = case.s.object("invoice.payment_failed").unwrap_or_default();
            invoice["id"] = json!(stripe_hookd::testing::trigger::scenario::new_id("in"));
            invoice["billing_reason"] = json!(if update {
                "subscription_update"
            } else {
                "subscription_cycle"
            });
            invoice["created"] = json!(billed - 3600);
            invoice["status_transitions"]["finalized_at"] = json!(billed);
            fake.put(invoice.clone());
            case.sub["latest_invoice"] = invoice["id"].clone();
            unpaid = Some(invoice);
        }
    }
    fake.put(case.sub.clone());
    unpaid
}

/// Whether Stripe's `sub` gives access at `now_ms`, by docs/entitlements.md
/// ("The rule"), read from Stripe's objects here — not by the daemon's
/// rule: `latest_invoice` is the subscription's latest invoice, `customer`
/// its customer. Every past_due start here is seen by the daemon after the
/// unpaid invoice was billed, so the grace runs from the billing (or, with
/// no unpaid invoice, from the daemon's first sight: now, in this case).
fn stripe_says_access(
    sub: &Value,
    latest_invoice: Option<&Value>,
    customer: &Value,
    now_ms: i64,
) -> bool {
    let ms = |v: &Value| v.as_i64().map(|secs| secs * 1000);
    let passed = |v: &Value| ms(v).is_some_and(|t| t <= now_ms);
    let status = sub["status"].as_str().unwrap_or_default();
    // Known ends: `cancel_at`; a trial's end that Stripe ends (cancel or
    // pause) with no payment method on the subscription or its customer.
    let method_on_file = !sub["default_payment_method"].is_null()
        || !sub["default_source"].is_null()
        || !customer["invoice_settings"]["default_payment_method"].is_null()
        || !customer["default_source"].is_null();
    let trial_ends_unpaid = status == "trialing"
        && matches!(
            sub["trial_settings"]["end_behavior"]["missing_payment_method"].as_str(),
            Some("cancel" | "pause")
        )
        && !method_on_file;
    if passed(&sub["cancel_at"]) || (trial_ends_unpaid && passed(&sub["trial_end"])) {
        return false;
    }
    match status {
        "active" | "trialing" => true,
        "past_due" => {
            let unpaid = latest_invoice.filter(|i| i["status"] == "open");
            let billed = unpaid.and_then(|i| {
                ms(&i["status_transitions"]["finalized_at"]).or_else(|| ms(&i["created"]))
            });
            let in_grace = billed.is_none_or(|b| b + GRACE_MS > now_ms);
            // A failed update keeps the period paid for.
            let period_end = sub["items"]["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|item| ms(&item["current_period_end"]))
                .max()
                .or_else(|| ms(&sub["current_period_end"]));
            let paid_for = unpaid.is_some_and(|i| i["billing_reason"] == "subscription_update")
                && period_end.is_some_and(|end| end > now_ms);
            in_grace || paid_for
        }
        _ => false,
    }
}

/// Whether `customer` has access now by `GET /v1/access` on `app`, which
/// must agree with the Rust reader.
async fn access_answer(app: &TestApp, customer: &str) -> Result<bool, TestCaseError> {
    let (code, body) = ask(app, &format!("customer={customer}"), Some(ACCESS_TOKEN)).await;
    prop_assert_eq!(code, 200, "{}", body);
    let by_api = body["access"]
        .as_bool()
        .ok_or_else(|| fail(format!("no `access` in {body}")))?;
    let id = customer.to_owned();
    let by_rust = !app
        .db(move |c| entitlements::for_customer(c, &id, now_ms()).unwrap())
        .await
        .is_empty();
    prop_assert_eq!(by_api, by_rust, "GET /v1/access and for_customer: {}", body);
    Ok(by_api)
}

const LIVE_KEY: &str = "sk_live_fake_stripe_key";

/// The world's live instance: the live key, on the same database.
fn live_options(fake: &FakeStripe) -> AppOptions {
    AppOptions::default()
        .stripe(&fake.base_url)
        .admin()
        .config(|c| {
            c.access_token = Some(ACCESS_TOKEN.into());
            c.stripe.api_key = Some(LIVE_KEY.into());
            c.endpoints[0].mode = stripe_hookd::testing::config::Mode::Live;
        })
}

/// The live key put in on the same database: `customer`'s access (the
/// case's, all test mode) as the live instance answers it once the live
/// mode is recorded — what a daemon's start records for its key (the
/// restart itself: `access_rule::test_access_is_not_answered_once_the_key_is_live`).
/// The test key's mode is recorded again afterwards, for the next case.
async fn access_once_live(w: &World, customer: &str) -> Result<bool, TestCaseError> {
    w.live
        .db(|c| access_mode::set(c, true, now_ms()))
        .await
        .map_err(fail)?;
    let answer = access_answer(&w.live, customer).await;
    w.a.db(|c| access_mode::set(c, false, now_ms()))
        .await
        .map_err(fail)?;
    answer
}

/// The invoice is paid (or its payment fails and it stays open).
fn settle_invoice(case: &mut Case<'_>, invoice: &Value) {
    let mut invoice = invoice.clone();
    if case.plan.invoice_paid {
        invoice["status"] = json!("paid");
        invoice["amount_paid"] = invoice["amount_due"].clone();
        invoice["amount_remaining"] = json!(0);
        case.w.fake.put(invoice.clone());
        case.emit("invoice.paid", &invoice);
    } else {
        case.emit("invoice.payment_failed", &invoice);
    }
}

fn config_for(api_base: &str, timeout_secs: u64) -> stripe_hookd::testing::config::Config {
    stripe_hookd::testing::config::from_toml_str(&format!(
        "webhook_secret = \"{SECRET}\"\n[stripe]\napi_key = \"{}\"\napi_base = \"{api_base}\"\nrequests_per_sec = 1000\ntimeout_secs = {timeout_secs}\nmax_retries = 0\n",
        crate::fake_stripe::KEY,
    ))
    .expect("config")
}

async fn inject(w: &World, fault: FaultPlan) -> Result<(), TestCaseError> {
    match fault {
        FaultPlan::None => {}
        FaultPlan::RateLimited(n) => w.fake.fail_next(
            n as usize,
            "/v1/",
            Fault::RateLimited {
                should_retry: Some(false),
                retry_after: None,
            },
        ),
        FaultPlan::ServerErrors(n) => {
            w.fake
                .fail_next(n as usize * 3, "/v1/", Fault::ServerError(500))
        }
        FaultPlan::Crash => {
            // A worker takes what is waiting and dies without a word.
            let _abandoned = w.a.runner.claim(64).await;
        }
        FaultPlan::DbRefuses => refuse_inserts(&w.a, w.backend).await?,
    }
    Ok(())
}

/// Ends every fault that has an end (the API faults run out by themselves).
async fn heal(w: &World) -> Result<(), TestCaseError> {
    accept_inserts(&w.a, w.backend).await
}

/// Every case races (and runs two runners), so fewer than a simulation
/// without races needed: about a minute for both backends in CI.
pub(crate) fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_converges_under_any_schedule(plan in plan()) {
        let w = world(Backend::Sqlite);
        w.runtime.block_on(run_case(w, &plan))?;
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn postgres_converges_under_any_schedule(plan in plan()) {
        let w = world(Backend::Postgres);
        w.runtime.block_on(run_case(w, &plan))?;
    }
}
