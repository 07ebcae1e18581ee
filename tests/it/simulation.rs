//! Convergence under any delivery schedule. Each case builds a
//! random history in the fake Stripe (a customer, a subscription moving
//! through its statuses, an invoice, a checkout session, a dispute), delivers
//! the events through the real intake reordered, duplicated, some dropped and
//! recovered by catch-up, with faults (Stripe 429/500, a worker dying with a
//! lease, the database refusing intake writes), runs the queue to quiescence
//! with the steppable runner, and checks that the local records equal the
//! fake's final state.
//!
//! `PROPTEST_CASES=2000 cargo test --test it simulation` for a longer soak;
//! a failure prints the plan and shrinks it.

use std::sync::OnceLock;
use std::time::Duration;

use diesel::prelude::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use stripe_hookd::reconcile::entitlements;
use stripe_hookd::store::schema::{customers, event_attempts, invoices, subscriptions};
use stripe_hookd::store::{now_ms, outbox, with_conn};
use stripe_hookd::trigger::Scenario;

use crate::fake_stripe::{set_subscription_status, FakeStripe, Fault};
use crate::harness::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubStatus {
    Active,
    PastDue,
    Canceled,
    Trialing,
}

impl SubStatus {
    fn as_str(self) -> &'static str {
        match self {
            SubStatus::Active => "active",
            SubStatus::PastDue => "past_due",
            SubStatus::Canceled => "canceled",
            SubStatus::Trialing => "trialing",
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

#[derive(Debug, Clone)]
struct Plan {
    /// The subscription's walk after `incomplete`.
    walk: Vec<SubStatus>,
    invoice_paid: bool,
    /// Per event: how many times it is delivered (0 = dropped, recovered by catch-up).
    copies: Vec<u8>,
    /// Seed of the delivery order.
    order: u64,
    /// Run the queue after every n deliveries (0: only at the end).
    process_every: u8,
    fault: FaultPlan,
    /// Where in the delivery sequence the fault strikes.
    fault_at: u8,
}

fn plan() -> impl Strategy<Value = Plan> {
    let status = prop_oneof![
        Just(SubStatus::Active),
        Just(SubStatus::PastDue),
        Just(SubStatus::Canceled),
        Just(SubStatus::Trialing),
    ];
    let fault = prop_oneof![
        3 => Just(FaultPlan::None),
        1 => (1u8..4).prop_map(FaultPlan::RateLimited),
        1 => (1u8..4).prop_map(FaultPlan::ServerErrors),
        1 => Just(FaultPlan::Crash),
        1 => Just(FaultPlan::DbRefuses),
    ];
    (
        proptest::collection::vec(status, 1..6),
        any::<bool>(),
        proptest::collection::vec(0u8..4, 16),
        any::<u64>(),
        0u8..5,
        fault,
        any::<u8>(),
    )
        .prop_map(
            |(walk, invoice_paid, copies, order, process_every, fault, fault_at)| Plan {
                walk,
                invoice_paid,
                copies,
                order,
                process_every,
                fault,
                fault_at,
            },
        )
}

/// One world per backend for the whole run: every case uses fresh ids.
struct World {
    runtime: tokio::runtime::Runtime,
    _db: TestDb,
    fake: FakeStripe,
    app: TestApp,
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
        let (fake, app) = runtime.block_on(async {
            let fake = FakeStripe::start().await;
            let app = TestApp::spawn_with(
                &db,
                AppOptions::default().stripe(&fake.base_url).config(|c| {
                    // Failed calls go back to the runner, whose clock the
                    // simulation moves: no real sleeping between retries.
                    c.stripe.max_retries = 0;
                    c.runner.backoff_base_ms = 1000;
                    c.runner.backoff_max_secs = 30;
                    c.runner.lease_secs = 30;
                    c.runner.max_attempts = 1000;
                }),
            )
            .await;
            (fake, app)
        });
        World {
            runtime,
            _db: db,
            fake,
            app,
            backend,
        }
    })
}

/// An event as Stripe would emit it for the object's current state.
fn event(event_type: &str, object: &Value, created: i64) -> Value {
    json!({
        "id": stripe_hookd::trigger::scenario::new_id("evt"),
        "object": "event", "api_version": "2025-03-31.basil", "created": created,
        "livemode": false, "pending_webhooks": 1, "type": event_type,
        "data": {"object": object}
    })
}

/// Delivers until the intake says 2xx (as Stripe retries): returns false if
/// the database kept refusing.
async fn deliver(app: &TestApp, body: &str) -> bool {
    for _ in 0..3 {
        if app.deliver(body).await.status().is_success() {
            return true;
        }
    }
    false
}

async fn run_case(w: &World, plan: &Plan) -> Result<(), TestCaseError> {
    let (app, fake) = (&w.app, &w.fake);
    let s = Scenario::new(false, "2025-03-31.basil");
    let second = now_ms() / 1000; // several events share this second

    // 1. The history: every change emits the event(s) Stripe would emit.
    let mut events: Vec<Value> = Vec::new();
    let customer = fake.customer(&s);
    events.push(event("customer.created", &customer, second));
    let mut sub = fake.subscription(&s, "incomplete");
    events.push(event("customer.subscription.created", &sub, second));
    let session = fake.checkout_session(&s);
    events.push(event("checkout.session.completed", &session, second));
    let mut final_status = "incomplete";
    for status in &plan.walk {
        if final_status == "canceled" {
            break;
        }
        set_subscription_status(&mut sub, status.as_str());
        fake.put(sub.clone());
        final_status = status.as_str();
        let t = if *status == SubStatus::Canceled {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        events.push(event(t, &sub, second + 1));
    }
    let invoice = fake.invoice(&s, if plan.invoice_paid { "paid" } else { "open" });
    events.push(event("invoice.created", &invoice, second));
    events.push(event(
        if plan.invoice_paid {
            "invoice.paid"
        } else {
            "invoice.payment_failed"
        },
        &invoice,
        second + 1,
    ));
    let dispute = fake.dispute(&s, "needs_response");
    events.push(event("charge.dispute.created", &dispute, second + 1));

    // 2. The schedule: reordered, duplicated, some dropped.
    let mut deliveries: Vec<usize> = Vec::new();
    let mut dropped: Vec<usize> = Vec::new();
    for (i, _) in events.iter().enumerate() {
        match plan.copies[i % plan.copies.len()] {
            0 => dropped.push(i),
            n => deliveries.extend(std::iter::repeat_n(i, n as usize)),
        }
    }
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(plan.order);
    rand::seq::SliceRandom::shuffle(deliveries.as_mut_slice(), &mut rng);
    let fault_at = plan.fault_at as usize % (deliveries.len() + 1);

    let mut acknowledged = std::collections::HashSet::new();
    for (n, &i) in deliveries.iter().enumerate() {
        if n == fault_at {
            inject(w, plan.fault).await;
        }
        let body = events[i].to_string();
        if deliver(app, &body).await {
            acknowledged.insert(events[i]["id"].as_str().unwrap_or_default().to_owned());
        } else {
            // The database refused every try: Stripe would retry later.
            dropped.push(i);
        }
        if plan.process_every > 0 && n % plan.process_every as usize == 0 {
            app.runner
                .run_pending()
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
    }
    if fault_at == deliveries.len() {
        inject(w, plan.fault).await;
    }
    heal(w).await;

    // Dropped deliveries are recovered through catch-up (Stripe's event
    // list holds this case's undelivered events).
    fake.clear_events();
    for &i in &dropped {
        fake.push_event(events[i].clone());
    }
    if !dropped.is_empty() {
        let ops = stripe_hookd::app::reconcile_handler(&config_for(w))
            .unwrap()
            .unwrap();
        // A catch-up that meets the API faults is simply run again (as the schedule would).
        let options = stripe_hookd::reconcile::catchup::CatchUpOptions {
            since: second - 5,
            only_failed: false,
            dry_run: false,
        };
        let mut report = None;
        let mut missing = Vec::new();
        for _ in 0..20 {
            match stripe_hookd::reconcile::catchup::run(ops.client(), &app.store, &options).await {
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
            let id = events[i]["id"].as_str().unwrap_or_default();
            prop_assert!(
                report.missing.iter().any(|m| m == id) || acknowledged.contains(id),
                "catch-up recovered {id}"
            );
        }
    }

    // 3. Quiescence: no sleeping, the clock is moved instead.
    for _ in 0..50 {
        app.runner
            .run_pending()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let ids: Vec<String> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let open = app
            .db(move |c| {
                ids.iter()
                    .filter_map(|id| outbox::get(c, id).unwrap())
                    .filter(|r| r.status == "pending" || r.status == "processing")
                    .count()
            })
            .await;
        if open == 0 {
            break;
        }
        app.runner.clock().advance(Duration::from_secs(31));
    }

    // 4. The checks.
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let rows = app
        .db(move |c| {
            ids.iter()
                .map(|id| outbox::get(c, id).unwrap())
                .collect::<Vec<_>>()
        })
        .await;
    for (e, row) in events.iter().zip(&rows) {
        let id = e["id"].as_str().unwrap_or_default();
        let row = row
            .as_ref()
            .ok_or_else(|| TestCaseError::fail(format!("{id} is not in the outbox")))?;
        prop_assert_eq!(&row.status, "done", "{} {}", id, row.event_type);
    }
    let (sid, iid, cid) = (
        s.subscription.clone(),
        s.invoice.clone(),
        s.customer.clone(),
    );
    let case_ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let (local_sub, local_inv, local_customers, done_twice): (String, Option<String>, i64, i64) = app
        .db(move |c| {
            with_conn!(c, c => (
                subscriptions::table.filter(subscriptions::id.eq(&sid)).select(subscriptions::status).first(c).unwrap(),
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
    prop_assert_eq!(local_sub.as_str(), final_status, "subscription status");
    prop_assert_eq!(
        local_inv.as_deref(),
        Some(if plan.invoice_paid { "paid" } else { "open" })
    );
    prop_assert_eq!(local_customers, 1);
    prop_assert_eq!(done_twice, 0, "no event was applied (marked done) twice");
    let customer = s.customer.clone();
    let access = app
        .db(move |c| entitlements::for_customer(c, &customer, now_ms()).unwrap())
        .await;
    let expected = matches!(final_status, "active" | "trialing" | "past_due");
    prop_assert_eq!(
        !access.is_empty(),
        expected,
        "entitlement agrees with status {}",
        final_status
    );
    Ok(())
}

fn config_for(w: &World) -> stripe_hookd::config::Config {
    stripe_hookd::config::from_toml_str(&format!(
        "webhook_secret = \"{SECRET}\"\n[stripe]\napi_key = \"{}\"\napi_base = \"{}\"\nrequests_per_sec = 1000\ntimeout_secs = 1\nmax_retries = 0\n",
        crate::fake_stripe::KEY,
        w.fake.base_url
    ))
    .expect("config")
}

async fn inject(w: &World, fault: FaultPlan) {
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
            let _abandoned = w.app.runner.claim(64).await;
        }
        FaultPlan::DbRefuses => {
            let backend = w.backend;
            w.app
                .db(move |c| {
                    c.batch_execute(crate::intake::refuse_inserts_sql(backend))
                        .unwrap()
                })
                .await;
        }
    }
}

/// Ends every fault that has an end (the API faults run out by themselves).
async fn heal(w: &World) {
    let backend = w.backend;
    w.app
        .db(move |c| {
            let _ = c.batch_execute(crate::intake::accept_inserts_sql(backend));
        })
        .await;
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
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
