//! Convergence as the application sees it (#28). A receiving app in the
//! test is registered twice: destination `all` takes every Stripe event
//! (`after = "received"`, switched to `reconciled` and back by reloads),
//! destination `access` takes `stripe_hookd.access.updated`. The app
//! de-duplicates on the delivery id and keeps, per customer, the access of
//! the latest announcement — they come one at a time per customer, in the
//! order they were made (docs/forwarding.md) — and checks that each one's
//! `previous_attributes` is the access it held.
//!
//! Each case walks a subscription through random steps: Stripe changes
//! (with an event, or silently: an event lost for good, that only a
//! repair finds), deliveries to either of two instances on one database
//! (reordered, duplicated, some dropped and recovered by catch-up), runner
//! and forwarder rounds, the app down (refusing, applying and then
//! failing, so the retry must be de-duplicated, or not listening at all:
//! a gate in front of it), catch-up, the drift sweep, a resync, reloads
//! (`all`'s `after`, both destinations' `events` patterns, equivalent for
//! this case's types), and restarts (a runner dying with the leases of
//! what it claimed). At the end: the app's view
//! of the customer's access equals stripe-hookd's entitlements, every
//! stored event reached `all` (delivered, and handled by the app), every
//! announcement was delivered, and the subscription is Stripe's.
//!
//! `PROPTEST_CASES=400 cargo test --all-features --test it simulation_app`
//! for a longer run; a failure prints the plan and shrinks it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;
use proptest::prelude::*;
use rand::Rng;
use serde_json::{json, Value};
use stripe_hookd::testing::app::reload::{self, Loaded, Reloader};
use stripe_hookd::testing::reconcile::access_events::{access_now, ACCESS_UPDATED};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::deliveries::{self, DeliverySummary};
use stripe_hookd::testing::store::{now_ms, outbox};
use stripe_hookd::testing::trigger::Scenario;
use stripe_hookd::testing::util::Clock;

use crate::admin::run_job;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::forward::{Received, Receiver, APP_SECRET};
use crate::harness::*;
use crate::harness_gate::Gate;
use crate::simulation::{cases, deliver, event, fail, local_subscription, SubStatus};

/// The runners' lease: a runner that died holding leases frees them when
/// the clocks have moved past it.
const LEASE_SECS: u64 = 60;
/// The forwarder's longest backoff: a round of quiescence moves the clocks
/// past it (and past the runner's, 30 s, and the lease).
const FORWARD_BACKOFF_MAX_SECS: u64 = 20;
const ROUND: Duration = Duration::from_secs(LEASE_SECS + 1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// The app answers 500 and applies nothing.
    Refuses,
    /// The app applies the event, then answers 500 (it crashed before
    /// answering): the retry must be recognised by its delivery id.
    AppliesThenFails,
    /// Nothing listens: connections are refused (those open are cut).
    Unreachable,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Stripe changes the subscription and emits the event.
    Change(SubStatus),
    /// Stripe changes it and the event is lost for good (not in the event
    /// list either): only the sweep or a resync finds it.
    Silent(SubStatus),
    /// Up to n of the waiting deliveries reach the intake.
    Deliver(u8),
    /// One runner, the other, or both at once, run what is due.
    Process,
    /// The forwarders send what is due.
    Forward,
    AppDown(Outage),
    AppUp,
    CatchUp,
    Sweep,
    Resync,
    /// The destinations as `Setting` says (a reload that changes nothing
    /// is skipped).
    Reload(Setting),
    /// Instance 0 or 1 stops and starts again; `crash`: it first claims
    /// everything due and dies with the leases.
    Restart {
        second: bool,
        crash: bool,
    },
}

#[derive(Debug, Clone)]
struct Plan {
    steps: Vec<Step>,
    /// Per event: how many times it is delivered (0 = dropped, recovered by catch-up).
    copies: Vec<u8>,
    /// Seed of the delivery order and of which instance does what.
    seed: u64,
    /// A silent change once everything else is settled, repaired by a
    /// resync (`true`) or the final sweep: no event follows to announce it.
    last_silent: Option<(SubStatus, bool)>,
}

fn status() -> impl Strategy<Value = SubStatus> {
    prop_oneof![
        Just(SubStatus::Active),
        Just(SubStatus::PastDue),
        Just(SubStatus::Canceled),
        Just(SubStatus::Trialing),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => status().prop_map(Step::Change),
        1 => status().prop_map(Step::Silent),
        4 => (1u8..6).prop_map(Step::Deliver),
        3 => Just(Step::Process),
        3 => Just(Step::Forward),
        1 => Just(Step::AppDown(Outage::Refuses)),
        1 => Just(Step::AppDown(Outage::AppliesThenFails)),
        1 => Just(Step::AppDown(Outage::Unreachable)),
        1 => Just(Step::AppUp),
        1 => Just(Step::CatchUp),
        1 => Just(Step::Sweep),
        1 => Just(Step::Resync),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(all_received, wide_patterns)| {
            Step::Reload(Setting { all_received, wide_patterns })
        }),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(second, crash)| Step::Restart { second, crash }),
    ]
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        proptest::collection::vec(step(), 1..16),
        proptest::collection::vec(0u8..3, 16),
        any::<u64>(),
        proptest::option::weighted(0.4, (status(), any::<bool>())),
    )
        .prop_map(|(steps, copies, seed, last_silent)| Plan {
            steps,
            copies,
            seed,
            last_silent,
        })
}

/// The receiving application's state.
#[derive(Debug)]
struct AppView {
    outage: Option<Outage>,
    /// Delivery ids handled: the app's unique key.
    handled: HashSet<String>,
    /// Per customer: the access of the latest announcement applied.
    access: HashMap<String, Value>,
    /// Announcements whose `previous_attributes` were not the access held.
    broken: Vec<String>,
}

impl AppView {
    fn answer(&mut self, r: &Received) -> u16 {
        if matches!(self.outage, Some(Outage::Refuses | Outage::Unreachable)) {
            return 500;
        }
        if self.handled.insert(r.delivery.clone()) && r.event_type == ACCESS_UPDATED {
            self.apply_access(&r.body);
        }
        if self.outage.is_some() {
            500
        } else {
            200
        }
    }

    /// Keeps the announced access; it must follow the access held (the
    /// fields it says changed had the old values, the others are the same).
    fn apply_access(&mut self, body: &str) {
        let event: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let access = event["data"]["object"].clone();
        let customer = access["customer"].as_str().unwrap_or_default().to_owned();
        let held = self.view(&customer);
        let previous = &event["data"]["previous_attributes"];
        if let Some(fields) = access.as_object() {
            for (key, now) in fields {
                let before = previous.get(key).unwrap_or(now);
                if held.get(key).unwrap_or(&Value::Null) != before {
                    self.broken.push(format!(
                        "{customer}: {} says {key} was {before}, the app held {}",
                        event["id"],
                        held.get(key).unwrap_or(&Value::Null)
                    ));
                }
            }
        }
        self.access.insert(customer, access);
    }

    /// The customer's access as the app knows it (none before any announcement).
    fn view(&self, customer: &str) -> Value {
        self.access
            .get(customer)
            .cloned()
            .unwrap_or_else(|| access_now(customer, &[], 0))
    }
}

/// The destinations' settings that reloads change: `all` follows
/// `received` or `reconciled`; both destinations' `events` are the wide
/// patterns (`*`, `stripe_hookd.*`) or the narrow ones (the families of
/// this case's types, `stripe_hookd.access.updated`): equivalent here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setting {
    all_received: bool,
    wide_patterns: bool,
}

/// What each case starts with.
const START: Setting = Setting {
    all_received: true,
    wide_patterns: true,
};

fn config_text(setting: Setting, app_url: &str) -> String {
    let (all, access) = if setting.wide_patterns {
        (r#"["*"]"#, r#"["stripe_hookd.*"]"#)
    } else {
        (
            r#"["customer.*", "invoice.*", "checkout.*", "charge.*"]"#,
            r#"["stripe_hookd.access.updated"]"#,
        )
    };
    let after = if setting.all_received {
        "received"
    } else {
        "reconciled"
    };
    format!(
        r#"[[endpoints]]
name = "default"
path = "/webhooks/stripe"
mode = "test"
secrets = ["{SECRET}"]

[forward]
enabled = false
backoff_base_ms = 1000
backoff_max_secs = {FORWARD_BACKOFF_MAX_SECS}

[[destinations]]
name = "all"
url = "{app_url}"
secret = "{APP_SECRET}"
after = "{after}"
events = {all}
max_attempts = 100000
max_age_hours = 876000

[[destinations]]
name = "access"
url = "{app_url}"
secret = "{APP_SECRET}"
events = {access}
max_attempts = 100000
max_age_hours = 876000
"#
    )
}

/// One world per backend for the whole run: every case uses fresh ids.
struct World {
    runtime: tokio::runtime::Runtime,
    db: TestDb,
    fake: FakeStripe,
    /// The app, and the gate in front of it that its URL names.
    _app_side: Receiver,
    gate: Gate,
    app_url: String,
    view: Arc<Mutex<AppView>>,
    /// The configuration file reloads read, and what it holds now.
    file: tempfile::NamedTempFile,
    config: Mutex<(Setting, Loaded)>,
    /// The two instances' clocks (kept across restarts).
    clocks: [Clock; 2],
    instances: Mutex<[Arc<TestApp>; 2]>,
    /// Deliveries up to this id belong to earlier cases.
    seen_deliveries: Mutex<i64>,
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
        let view = Arc::new(Mutex::new(AppView {
            outage: None,
            handled: HashSet::new(),
            access: HashMap::new(),
            broken: Vec::new(),
        }));
        let setting = START;
        let file = tempfile::NamedTempFile::new().expect("config file");
        let clocks = [Clock::default(), Clock::default()];
        let (fake, app_side, gate, app_url, loaded, instances) = runtime.block_on(async {
            let fake = FakeStripe::start().await.expect("fake stripe");
            let app_view = Arc::clone(&view);
            let app_side = Receiver::start(Arc::new(move |r: Received| {
                let status = app_view.lock().expect("app view").answer(&r);
                async move { status }.boxed()
            }));
            let target = reqwest::Url::parse(&app_side.url).expect("the app's URL");
            let target = target.socket_addrs(|| None).expect("the app's address")[0];
            let gate = Gate::start(target).await;
            let app_url = format!("http://{}/webhooks/stripe", gate.addr);
            std::fs::write(file.path(), config_text(setting, &app_url)).expect("write");
            let loaded = reload::load(Some(file.path())).expect("the config loads");
            let a = TestApp::spawn_with(&db, options(&fake, &loaded, &clocks[0])).await;
            let b = TestApp::spawn_with(&db, options(&fake, &loaded, &clocks[1])).await;
            (
                fake,
                app_side,
                gate,
                app_url,
                loaded,
                [Arc::new(a), Arc::new(b)],
            )
        });
        World {
            runtime,
            db,
            fake,
            _app_side: app_side,
            gate,
            app_url,
            view,
            file,
            config: Mutex::new((setting, loaded)),
            clocks,
            instances: Mutex::new(instances),
            seen_deliveries: Mutex::new(0),
        }
    })
}

/// An instance with the destinations of `loaded`, the admin API, and the
/// fake Stripe; runner and forwarder stepped by the test.
fn options(fake: &FakeStripe, loaded: &Loaded, clock: &Clock) -> AppOptions {
    let (destinations, forward) = (
        loaded.config.destinations.clone(),
        loaded.config.forward.clone(),
    );
    AppOptions {
        clock: clock.clone(),
        ..AppOptions::default()
            .stripe(&fake.base_url)
            .admin()
            .config(move |c| {
                c.destinations = destinations.clone();
                c.forward = forward.clone();
                // Failed calls go back to the runner, whose clock moves.
                c.stripe.max_retries = 0;
                c.stripe.timeout_secs = 60;
                c.runner.backoff_base_ms = 1000;
                c.runner.backoff_max_secs = 30;
                c.runner.lease_secs = LEASE_SECS;
                c.runner.max_attempts = 1000;
                c.runner.max_age_hours = 24 * 365 * 100;
            })
    }
}

impl World {
    fn instance(&self, second: bool) -> Arc<TestApp> {
        Arc::clone(&self.instances.lock().expect("instances")[usize::from(second)])
    }

    fn both(&self) -> [Arc<TestApp>; 2] {
        self.instances.lock().expect("instances").clone()
    }

    fn advance(&self, by: Duration) {
        for clock in &self.clocks {
            clock.advance(by);
        }
    }
}

/// One case in progress.
struct Case<'w> {
    w: &'w World,
    plan: &'w Plan,
    s: Scenario,
    second: i64,
    rng: rand::rngs::StdRng,
    events: Vec<Value>,
    /// Deliveries still to make (event indexes; duplicates repeat).
    pool: Vec<usize>,
    /// Events not delivered (recovered by catch-up).
    dropped: Vec<usize>,
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

    fn emit(&mut self, event_type: &str, object: &Value) {
        let i = self.events.len();
        self.events.push(event(event_type, object, self.second));
        match self.plan.copies[i % self.plan.copies.len()] {
            0 => self.dropped.push(i),
            n => self.pool.extend(std::iter::repeat_n(i, n as usize)),
        }
    }

    /// Stripe changes the subscription (its metadata too, every time); the
    /// event is emitted unless `silent`.
    fn change(&mut self, status: SubStatus, silent: bool) {
        let was_canceled = self.sub["status"] == json!("canceled");
        if !was_canceled {
            set_subscription_status(&mut self.sub, status.as_str());
        }
        self.rev += 1;
        self.sub["metadata"] = json!({"rev": self.rev.to_string()});
        self.w.fake.put(self.sub.clone());
        if silent {
            return;
        }
        let t = if !was_canceled && status == SubStatus::Canceled {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        let sub = self.sub.clone();
        self.emit(t, &sub);
    }

    fn any_instance(&mut self) -> Arc<TestApp> {
        let second = self.rng.random();
        self.w.instance(second)
    }

    async fn deliver_some(&mut self, n: usize) {
        rand::seq::SliceRandom::shuffle(self.pool.as_mut_slice(), &mut self.rng);
        let n = n.min(self.pool.len());
        let batch: Vec<usize> = self.pool.drain(..n).collect();
        for i in batch {
            let app = self.any_instance();
            if !deliver(&app, &self.events[i].to_string()).await {
                self.dropped.push(i);
            }
        }
    }

    async fn process(&mut self) -> Result<(), TestCaseError> {
        let [a, b] = self.w.both();
        match self.rng.random_range(0..3) {
            0 => {
                a.runner.run_pending().await.map_err(fail)?;
            }
            1 => {
                b.runner.run_pending().await.map_err(fail)?;
            }
            _ => {
                let (x, y) = tokio::join!(a.runner.run_pending(), b.runner.run_pending());
                x.map_err(fail)?;
                y.map_err(fail)?;
            }
        }
        Ok(())
    }

    async fn forward(&mut self) -> Result<(), TestCaseError> {
        let [a, b] = self.w.both();
        let (a, b) = (
            a.forwarder.clone().expect("a forwarder"),
            b.forwarder.clone().expect("a forwarder"),
        );
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

    /// The dropped events, recovered through the admin API's catch-up
    /// (Stripe's event list holds exactly them).
    async fn catch_up(&mut self) {
        let mut dropped = std::mem::take(&mut self.dropped);
        dropped.sort_unstable();
        dropped.dedup();
        if dropped.is_empty() {
            return;
        }
        self.w.fake.clear_events();
        for &i in &dropped {
            self.w.fake.push_event(self.events[i].clone());
        }
        let app = self.any_instance();
        run_job(&app, "/v1/catch-up", json!({"since": self.second - 5})).await;
    }

    async fn sweep(&mut self) {
        let app = self.any_instance();
        run_job(&app, "/v1/reconcile", json!({})).await;
    }

    async fn resync(&mut self) -> Result<(), TestCaseError> {
        let app = self.any_instance();
        let res = app
            .client
            .post(app.admin_url(&format!("/v1/resync/{}", self.s.subscription)))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .map_err(fail)?;
        prop_assert_eq!(res.status().as_u16(), 200, "resync");
        Ok(())
    }

    /// Rewrites the file and reloads both instances (each as SIGHUP
    /// would). On a thread of its own, outside the runtime, a reload
    /// records the events in flight of a destination switched to
    /// `received` before it returns (in the daemon it is a blocking task).
    fn reload(&mut self, setting: Setting) -> Result<(), TestCaseError> {
        let w = self.w;
        let mut config = w.config.lock().expect("config");
        if config.0 == setting {
            return Ok(());
        }
        let current = config.1.clone();
        std::fs::write(w.file.path(), config_text(setting, &w.app_url)).map_err(fail)?;
        let path = w.file.path().to_owned();
        let targets: Vec<_> = w.both().iter().map(|a| a.reload_targets.clone()).collect();
        let loaded = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<Loaded, String> {
                    for t in targets {
                        let mut reloader = Reloader::new(Some(path.clone()), current.clone(), t);
                        let changes = reloader.reload().map_err(|e| e.to_string())?;
                        if changes.is_empty() {
                            return Err("the reload changed nothing".into());
                        }
                    }
                    reload::load(Some(&path)).map_err(|e| e.to_string())
                })
                .join()
        })
        .map_err(|_| fail("the reload panicked"))?
        .map_err(fail)?;
        *config = (setting, loaded);
        Ok(())
    }

    /// Stops an instance (as SIGTERM does) and starts it again with the
    /// configuration as reloaded; `crash`: it dies holding the leases of
    /// everything it claimed first.
    async fn restart(&mut self, second: bool, crash: bool) -> Result<(), TestCaseError> {
        let w = self.w;
        let old = w.instance(second);
        if crash {
            let _abandoned = old.runner.claim(64).await;
        }
        old.begin_stop();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !old.has_stopped() {
            prop_assert!(
                std::time::Instant::now() < deadline,
                "the instance did not stop"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let loaded = w.config.lock().expect("config").1.clone();
        let clock = &w.clocks[usize::from(second)];
        let new = TestApp::spawn_with(&w.db, options(&w.fake, &loaded, clock)).await;
        w.instances.lock().expect("instances")[usize::from(second)] = Arc::new(new);
        Ok(())
    }

    /// The app goes down as `outage` says, or comes back.
    async fn outage(&mut self, outage: Option<Outage>) -> Result<(), TestCaseError> {
        if outage == Some(Outage::Unreachable) {
            self.w.gate.close().await;
        } else {
            self.w.gate.open().await.map_err(fail)?;
        }
        self.w.view.lock().expect("view").outage = outage;
        Ok(())
    }

    async fn step(&mut self, step: Step) -> Result<(), TestCaseError> {
        match step {
            Step::Change(status) => self.change(status, false),
            Step::Silent(status) => self.change(status, true),
            Step::Deliver(n) => self.deliver_some(n as usize).await,
            Step::Process => self.process().await?,
            Step::Forward => self.forward().await?,
            Step::AppDown(outage) => self.outage(Some(outage)).await?,
            Step::AppUp => self.outage(None).await?,
            Step::CatchUp => self.catch_up().await,
            Step::Sweep => self.sweep().await,
            Step::Resync => self.resync().await?,
            Step::Reload(setting) => self.reload(setting)?,
            Step::Restart { second, crash } => self.restart(second, crash).await?,
        }
        Ok(())
    }

    /// This case's deliveries: its events' and its customer's announcements.
    async fn deliveries(&self) -> Vec<DeliverySummary> {
        let after = *self.w.seen_deliveries.lock().expect("watermark");
        let ids: HashSet<String> = self.ids().into_iter().collect();
        let customer = self.s.customer.clone();
        self.w
            .instance(false)
            .db(move |c| deliveries::list_filtered(c, None, None, after, 100_000).unwrap())
            .await
            .into_iter()
            .filter(|d| {
                ids.contains(&d.event_id)
                    || (d.event_type == ACCESS_UPDATED && d.object_key.ends_with(&customer))
            })
            .collect()
    }

    /// Runs both runners and both forwarders, moving the clocks past every
    /// backoff and lease, until the case's events are settled and its
    /// deliveries delivered (or a generous number of rounds passed: the
    /// checks then say what is left).
    async fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..30 {
            let [a, b] = self.w.both();
            let (x, y) = tokio::join!(a.runner.run_pending(), b.runner.run_pending());
            x.map_err(fail)?;
            y.map_err(fail)?;
            let (fa, fb) = (
                a.forwarder.clone().expect("a forwarder"),
                b.forwarder.clone().expect("a forwarder"),
            );
            let (x, y) = tokio::join!(fa.run_pending(), fb.run_pending());
            x.map_err(fail)?;
            y.map_err(fail)?;
            let ids = self.ids();
            let open = a
                .db(move |c| {
                    ids.iter()
                        .filter_map(|id| outbox::get(c, id).unwrap())
                        .filter(|r| r.status == "pending" || r.status == "processing")
                        .count()
                })
                .await;
            let undelivered = self
                .deliveries()
                .await
                .iter()
                .filter(|d| d.status != "delivered")
                .count();
            if open == 0 && undelivered == 0 {
                return Ok(());
            }
            self.w.advance(ROUND);
        }
        Ok(())
    }
}

async fn run_case(w: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let s = Scenario::new(false, "2025-03-31.basil");
    let mut case = Case {
        w,
        plan,
        second: now_ms() / 1000,
        rng: <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(plan.seed),
        s: s.clone(),
        events: Vec::new(),
        pool: Vec::new(),
        dropped: Vec::new(),
        sub: Value::Null,
        rev: 0,
    };
    case.outage(None).await?;
    case.reload(START)?;
    let fake = &w.fake;

    // 1. The beginning of the history, then the plan's steps.
    let customer = fake.customer(&s);
    case.emit("customer.created", &customer);
    case.sub = fake.subscription(&s, "incomplete");
    let sub = case.sub.clone();
    case.emit("customer.subscription.created", &sub);
    let session = fake.checkout_session(&s);
    case.emit("checkout.session.completed", &session);
    let mut invoice = fake.invoice(&s, "open");
    case.emit("invoice.created", &invoice);
    invoice["status"] = json!("paid");
    invoice["amount_paid"] = invoice["amount_due"].clone();
    invoice["amount_remaining"] = json!(0);
    fake.put(invoice.clone());
    case.emit("invoice.paid", &invoice);
    for &step in &plan.steps {
        case.step(step).await?;
    }

    // 2. The app is back; everything is delivered or caught up and
    // settled; a last silent change, repaired by a resync or the sweep
    // (which also repairs the plan's silent changes no event followed);
    // everything is forwarded.
    case.outage(None).await?;
    case.deliver_some(usize::MAX).await;
    case.catch_up().await;
    case.settle().await?;
    if let Some((status, resync)) = plan.last_silent {
        case.change(status, true);
        if resync {
            case.resync().await?;
        }
    }
    case.sweep().await;
    case.settle().await?;

    // 3. The checks.
    let ids = case.ids();
    let rows = w
        .instance(false)
        .db(move |c| {
            ids.iter()
                .map(|id| outbox::get(c, id).unwrap())
                .collect::<Vec<_>>()
        })
        .await;
    let deliveries = case.deliveries().await;
    let handled = w.view.lock().expect("view").handled.clone();
    for (e, row) in case.events.iter().zip(&rows) {
        let id = e["id"].as_str().unwrap_or_default();
        let row = row
            .as_ref()
            .ok_or_else(|| fail(format!("{id} is not in the outbox")))?;
        prop_assert_eq!(&row.status, "done", "{} {}", id, row.event_type);
        let to_all = deliveries
            .iter()
            .find(|d| d.destination == "all" && d.event_id == id);
        prop_assert!(
            to_all.is_some(),
            "{} ({}) was never recorded for the destination `all`",
            id,
            row.event_type
        );
        prop_assert_eq!(
            to_all.map(|d| d.status.as_str()),
            Some("delivered"),
            "{} to `all`",
            id
        );
        prop_assert!(
            handled.contains(&deliveries::delivery_id("all", id)),
            "the app never handled {} ({})",
            id,
            row.event_type
        );
    }
    for d in deliveries.iter().filter(|d| d.destination == "access") {
        prop_assert_eq!(d.status.as_str(), "delivered", "{}", d.delivery_id);
    }

    let customer = s.customer.clone();
    let now = w.clocks[0].now_ms();
    let expected = w
        .instance(false)
        .db(move |c| {
            let rows = entitlements::for_customer_all(c, &customer).unwrap();
            access_now(&customer, &rows, now)
        })
        .await;
    let (seen, broken) = {
        let view = w.view.lock().expect("view");
        let prefix = format!("{}:", s.customer);
        let broken: Vec<String> = view
            .broken
            .iter()
            .filter(|b| b.starts_with(&prefix))
            .cloned()
            .collect();
        (view.view(&s.customer), broken)
    };
    prop_assert!(
        broken.is_empty(),
        "announcements out of step with the app: {:?}",
        broken
    );
    prop_assert_eq!(
        &seen,
        &expected,
        "the app's view of the access is not stripe-hookd's entitlements"
    );
    let (local_status, _) = local_subscription(&w.instance(true), &s.subscription).await;
    let final_sub = fake.get(&s.subscription).unwrap_or_default();
    prop_assert_eq!(
        local_status.as_str(),
        final_sub["status"].as_str().unwrap_or_default(),
        "subscription status"
    );
    if let Some(last) = deliveries.iter().map(|d| d.id).max() {
        let mut seen = w.seen_deliveries.lock().expect("watermark");
        *seen = (*seen).max(last);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 2, max_shrink_iters: 100, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_the_app_converges_with_stripe_hookd(plan in plan()) {
        let w = world(Backend::Sqlite);
        w.runtime.block_on(run_case(w, &plan))?;
    }
}

#[cfg(feature = "postgres")]
proptest! {
    #![proptest_config(ProptestConfig { cases: cases() / 4, max_shrink_iters: 100, ..ProptestConfig::default() })]

    #[test]
    fn postgres_the_app_converges_with_stripe_hookd(plan in plan()) {
        let w = world(Backend::Postgres);
        w.runtime.block_on(run_case(w, &plan))?;
    }
}
