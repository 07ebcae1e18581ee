//! The job runner — retries, budget, panics, ordering, coalescing,
//! leases, graceful shutdown, retention.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::{join_all, BoxFuture};
use futures_util::FutureExt;
use stripe_hookd::testing::queue::{
    apply_fn, finish, Apply, EventGroup, Handler, HandlerError, Runner,
};
use stripe_hookd::testing::store::events::{self, EventFilter};
use stripe_hookd::testing::store::outbox::{self, NewEvent, StoredEvent};
use stripe_hookd::testing::store::{now_ms, with_tx, DbConnection, EpochMs, Store};
use stripe_hookd::testing::util::Clock;

use crate::backend_tests;
use crate::harness::*;

backend_tests!(
    a_handler_failing_twice_ends_done_after_three_attempts_with_backoff,
    a_handler_that_always_fails_ends_dead_with_its_last_error,
    a_panicking_handler_is_a_failed_attempt_not_a_dead_worker,
    events_of_one_object_are_coalesced_into_one_call,
    events_of_one_object_never_run_concurrently,
    an_expired_lease_is_claimed_again_and_applied_once,
    unhandled_event_types_end_ignored,
    shutdown_with_events_in_flight_loses_nothing,
    retention_prunes_finished_events_and_keeps_dead_ones,
    groups_waiting_for_a_worker_do_not_lose_their_lease,
    a_hot_leased_object_does_not_starve_the_others,
    runners_claiming_at_once_never_fail_or_overlap,
    live_events_are_claimed_before_replayed_ones,
);

diesel::table! {
    test_effects (rowid) {
        rowid -> BigInt,
        event_id -> Text,
        object_key -> Text,
    }
}

const EFFECTS_SQLITE: &str = "CREATE TABLE test_effects (rowid INTEGER PRIMARY KEY, event_id TEXT NOT NULL, object_key TEXT NOT NULL)";
const EFFECTS_POSTGRES: &str = "CREATE TABLE test_effects (rowid BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, object_key TEXT NOT NULL)";

/// What the test handler does for an event type.
#[derive(Clone, Copy)]
enum Behaviour {
    Ok,
    FailTimes(usize),
    AlwaysFail,
    Panic,
}

/// A handler whose effect is a row per event in `test_effects` (no unique
/// key, so an effect applied twice shows), written in the finishing
/// transaction; it also records overlapping calls for one object.
#[derive(Clone)]
struct TestHandler {
    behaviour: Arc<Mutex<HashMap<String, Behaviour>>>,
    failures: Arc<Mutex<HashMap<String, usize>>>,
    active: Arc<Mutex<HashMap<String, usize>>>,
    overlaps: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    delay: Duration,
    /// When set, each call waits for a permit (the test holds them back).
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl TestHandler {
    fn new(delay: Duration) -> Self {
        TestHandler {
            behaviour: Arc::default(),
            failures: Arc::default(),
            active: Arc::default(),
            overlaps: Arc::default(),
            calls: Arc::default(),
            delay,
            gate: None,
        }
    }
    /// Calls block until the test opens the gate.
    fn gated(mut self) -> (Self, Arc<tokio::sync::Semaphore>) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        self.gate = Some(Arc::clone(&gate));
        (self, gate)
    }
    fn with(self, event_type: &str, b: Behaviour) -> Self {
        self.behaviour
            .lock()
            .unwrap()
            .insert(event_type.to_owned(), b);
        self
    }
}

impl Handler for TestHandler {
    fn handles(&self, event_type: &str) -> bool {
        !event_type.starts_with("unhandled.")
    }

    fn handle(
        &self,
        group: EventGroup,
        _: &stripe_hookd::testing::queue::HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        let this = self.clone();
        async move {
            this.calls.fetch_add(1, Ordering::SeqCst);
            {
                let mut active = this.active.lock().unwrap();
                let n = active.entry(group.key.clone()).or_default();
                *n += 1;
                if *n > 1 {
                    this.overlaps.fetch_add(1, Ordering::SeqCst);
                }
            }
            if let Some(gate) = &this.gate {
                drop(gate.acquire().await.unwrap());
            }
            if !this.delay.is_zero() {
                tokio::time::sleep(this.delay).await;
            }
            *this.active.lock().unwrap().get_mut(&group.key).unwrap() -= 1;
            let event_type = group.events[0].event_type.clone();
            let behaviour = this.behaviour.lock().unwrap().get(&event_type).copied().unwrap_or(Behaviour::Ok);
            match behaviour {
                Behaviour::Ok => {}
                Behaviour::FailTimes(n) => {
                    let mut failures = this.failures.lock().unwrap();
                    let count = failures.entry(group.key.clone()).or_default();
                    if *count < n {
                        *count += 1;
                        return Err(HandlerError::retry(format!("simulated failure {count}")));
                    }
                }
                Behaviour::AlwaysFail => return Err(HandlerError::retry("the upstream keeps failing")),
                Behaviour::Panic => panic!("handler bug on {}", group.key),
            }
            let rows: Vec<(String, String)> = group
                .events
                .iter()
                .map(|e| (e.event_id.clone(), group.key.clone()))
                .collect();
            let apply: Apply = apply_fn(move |tx| {
                for (event_id, key) in &rows {
                    with_tx!(tx, c => diesel::insert_into(test_effects::table)
                        .values((test_effects::event_id.eq(event_id), test_effects::object_key.eq(key)))
                        .execute(c))?;
                }
                Ok(())
            });
            Ok(apply)
        }
        .boxed()
    }
}

async fn app_with(
    db: &TestDb,
    handler: &TestHandler,
    runner: impl Fn(&mut RunnerConfig) + Send + Sync + 'static,
) -> TestApp {
    let app = TestApp::spawn_with(
        db,
        AppOptions::default()
            .handler(Arc::new(handler.clone()))
            .config(move |c| runner(&mut c.runner)),
    )
    .await;
    let backend = db.backend;
    app.db(move |c| {
        c.batch_execute(match backend {
            Backend::Sqlite => EFFECTS_SQLITE,
            Backend::Postgres => EFFECTS_POSTGRES,
        })
        .expect("effects table")
    })
    .await;
    app
}

async fn effects(app: &TestApp) -> HashMap<String, i64> {
    let rows: Vec<String> = app
        .db(|c| match c {
            DbConnection::Sqlite(c, ..) => test_effects::table
                .select(test_effects::event_id)
                .load(c)
                .unwrap(),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(c, ..) => test_effects::table
                .select(test_effects::event_id)
                .load(c)
                .unwrap(),
        })
        .await;
    let mut counts = HashMap::new();
    for id in rows {
        *counts.entry(id).or_default() += 1;
    }
    counts
}

async fn event(app: &TestApp, id: &str) -> StoredEvent {
    let id = id.to_owned();
    app.db(move |c| outbox::get(c, &id).unwrap())
        .await
        .expect("event stored")
}

/// `(attempt, outcome, error)` rows of an event, in order.
async fn attempts(app: &TestApp, id: &str) -> Vec<(i32, Option<String>, Option<String>)> {
    use stripe_hookd::testing::store::schema::event_attempts as a;
    let id = id.to_owned();
    app.db(move |c| {
        stripe_hookd::testing::store::with_conn!(c, c => a::table
            .filter(a::event_id.eq(&id))
            .order(a::id.asc())
            .select((a::attempt, a::outcome, a::error))
            .load(c)
            .unwrap())
    })
    .await
}

async fn deliver_ok(app: &TestApp, id: &str, event_type: &str, object: &str) {
    let res = app
        .deliver(&event_body(id, event_type, object, false))
        .await;
    assert_eq!(res.status(), 200, "{id}");
}

/// Polls the database until `done` says so, or fails after `secs`.
async fn wait_until(
    app: &TestApp,
    secs: u64,
    what: &str,
    mut done: impl FnMut(&[StoredEvent]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
        if done(&rows) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Workers off (the test steps the runner), backoff 1 s doubling to 10 s.
fn stepped(r: &mut RunnerConfig) {
    r.enabled = false;
    r.backoff_base_ms = 1000;
    r.backoff_max_secs = 10;
}

/// Real workers polling every `poll_interval_ms`.
fn workers(r: &mut RunnerConfig, concurrency: usize, poll_interval_ms: u64) {
    r.enabled = true;
    r.concurrency = concurrency;
    r.poll_interval_ms = poll_interval_ms;
}

async fn a_handler_failing_twice_ends_done_after_three_attempts_with_backoff(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO).with("invoice.paid", Behaviour::FailTimes(2));
    let app = app_with(&db, &handler, stepped).await;
    deliver_ok(&app, "evt_flaky", "invoice.paid", "in_flaky").await;

    for round in 1..=2 {
        let before = app.runner.clock().now_ms();
        let tally = app.runner.run_pending().await.unwrap();
        assert_eq!(tally.retried, 1, "round {round}");
        let row = event(&app, "evt_flaky").await;
        assert_eq!(row.status, "pending");
        assert_eq!(row.attempts, round);
        assert_eq!(
            row.last_error.as_deref(),
            Some(format!("simulated failure {round}").as_str())
        );
        // Backoff: 1 s × 2^(n-1), with half of it jittered.
        let min_delay = 500 * (1 << (round - 1));
        assert!(
            row.next_attempt_at.as_i64() >= before + min_delay,
            "round {round}: backoff respected"
        );
        // Not due yet: nothing runs.
        assert_eq!(app.runner.run_pending().await.unwrap().total(), 0);
        app.runner.clock().advance(Duration::from_secs(10));
    }
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1);
    let row = event(&app, "evt_flaky").await;
    assert_eq!(row.status, "done");
    assert_eq!(row.attempts, 3);
    assert!(row.processed_at.is_some());
    let history = attempts(&app, "evt_flaky").await;
    let outcomes: Vec<_> = history
        .iter()
        .map(|(n, o, _)| (*n, o.clone().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "done".into())
        ]
    );
    assert_eq!(effects(&app).await.get("evt_flaky"), Some(&1));
    app.stop().await;
}

async fn a_handler_that_always_fails_ends_dead_with_its_last_error(backend: Backend) {
    let db = TestDb::new(backend);
    let handler =
        TestHandler::new(Duration::ZERO).with("charge.dispute.created", Behaviour::AlwaysFail);
    let app = app_with(&db, &handler, |r| {
        stepped(r);
        r.max_attempts = 3;
    })
    .await;
    deliver_ok(&app, "evt_doomed", "charge.dispute.created", "dp_1").await;
    for _ in 0..3 {
        app.runner.run_pending().await.unwrap();
        app.runner.clock().advance(Duration::from_secs(10));
    }
    let row = event(&app, "evt_doomed").await;
    assert_eq!(row.status, "dead");
    assert_eq!(row.attempts, 3);
    assert_eq!(
        row.last_error.as_deref(),
        Some("the upstream keeps failing")
    );
    // No more attempts once dead.
    app.runner.clock().advance(Duration::from_secs(3600));
    assert_eq!(app.runner.run_pending().await.unwrap().total(), 0);
    let history = attempts(&app, "evt_doomed").await;
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].1.as_deref(), Some("dead"));
    assert!(effects(&app).await.is_empty());
    app.stop().await;
}

async fn a_panicking_handler_is_a_failed_attempt_not_a_dead_worker(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO).with("customer.updated", Behaviour::Panic);
    // Real apalis workers this time: the panic must not stop them.
    let app = app_with(&db, &handler, |r| workers(r, 2, 50)).await;
    deliver_ok(&app, "evt_boom", "customer.updated", "cus_boom").await;
    wait_until(&app, 10, "the panicking event to be retried", |rows| {
        rows.iter()
            .any(|r| r.event_id == "evt_boom" && r.attempts >= 1 && r.status == "pending")
    })
    .await;
    let row = event(&app, "evt_boom").await;
    assert!(row
        .last_error
        .as_deref()
        .unwrap_or_default()
        .contains("handler panicked: handler bug on cus_boom"));
    // The worker is alive: later events are still processed.
    deliver_ok(&app, "evt_after", "customer.created", "cus_fine").await;
    wait_until(&app, 10, "the next event to be done", |rows| {
        rows.iter()
            .any(|r| r.event_id == "evt_after" && r.status == "done")
    })
    .await;
    app.stop().await;
}

async fn events_of_one_object_are_coalesced_into_one_call(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO);
    let app = app_with(&db, &handler, stepped).await;
    let bodies: Vec<String> = (0..30)
        .map(|i| {
            event_body(
                &format!("evt_co_{i}"),
                "customer.subscription.updated",
                &format!("sub_{}", i % 3),
                false,
            )
        })
        .collect();
    for res in join_all(bodies.iter().map(|b| app.deliver(b))).await {
        assert_eq!(res.status(), 200);
    }
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 30);
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        3,
        "one call per object serves its 10 events"
    );
    let effects = effects(&app).await;
    assert_eq!(effects.len(), 30);
    assert!(effects.values().all(|n| *n == 1));
    for i in 0..30 {
        let history = attempts(&app, &format!("evt_co_{i}")).await;
        assert_eq!(
            history.len(),
            1,
            "each coalesced event has its own attempt row"
        );
        assert_eq!(history[0].1.as_deref(), Some("done"));
    }
    app.stop().await;
}

async fn events_of_one_object_never_run_concurrently(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::from_millis(15));
    let app = app_with(&db, &handler, |r| workers(r, 8, 20)).await;
    for wave in 0..5 {
        let bodies: Vec<String> = (0..12)
            .map(|i| {
                event_body(
                    &format!("evt_ord_{wave}_{i}"),
                    "invoice.updated",
                    &format!("in_{}", i % 3),
                    false,
                )
            })
            .collect();
        for res in join_all(bodies.iter().map(|b| app.deliver(b))).await {
            assert_eq!(res.status(), 200);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_until(&app, 20, "all 60 events done", |rows| {
        rows.len() == 60 && rows.iter().all(|r| r.status == "done")
    })
    .await;
    assert_eq!(
        handler.overlaps.load(Ordering::SeqCst),
        0,
        "two calls for one object overlapped"
    );
    let effects = effects(&app).await;
    assert_eq!(effects.len(), 60);
    assert!(effects.values().all(|n| *n == 1));
    app.stop().await;
}

async fn an_expired_lease_is_claimed_again_and_applied_once(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO);
    let app = app_with(&db, &handler, |r| {
        stepped(r);
        r.lease_secs = 30;
    })
    .await;
    deliver_ok(&app, "evt_lease", "payment_intent.succeeded", "pi_lease").await;

    // A worker claims the event and "dies" holding the lease.
    let doomed = app.runner.claim(4).await.unwrap();
    assert_eq!(doomed.len(), 1);
    assert_eq!(event(&app, "evt_lease").await.status, "processing");
    // While the lease holds, nobody else takes it.
    assert_eq!(app.runner.run_pending().await.unwrap().total(), 0);
    // After it expires, the event is claimed again and applied.
    app.runner.clock().advance(Duration::from_secs(31));
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1);
    let row = event(&app, "evt_lease").await;
    assert_eq!((row.status.as_str(), row.attempts), ("done", 2));
    let history = attempts(&app, "evt_lease").await;
    assert_eq!(history[0].1.as_deref(), Some("abandoned"));
    assert_eq!(history[1].1.as_deref(), Some("done"));

    // The dead worker wakes up and tries to finish: its lease is gone, so
    // nothing is applied a second time.
    let group = doomed.into_iter().next().unwrap();
    let ids: Vec<String> = group.events.iter().map(|e| e.event_id.clone()).collect();
    let applied = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&applied);
    let late: Apply = apply_fn(move |_| {
        flag.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let now = app.runner.clock().now_ms();
    let result = app
        .db(move |c| finish::finish_success(c, &group, &ids, Some(late), now))
        .await;
    assert!(
        matches!(result, Err(finish::FinishError::LeaseLost)),
        "{result:?}"
    );
    assert_eq!(applied.load(Ordering::SeqCst), 0);
    assert_eq!(effects(&app).await.get("evt_lease"), Some(&1));
    app.stop().await;
}

async fn unhandled_event_types_end_ignored(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO);
    let app = app_with(&db, &handler, stepped).await;
    deliver_ok(&app, "evt_odd", "unhandled.thing", "x_1").await;
    deliver_ok(&app, "evt_mixed_a", "unhandled.thing", "sub_mix").await;
    deliver_ok(
        &app,
        "evt_mixed_b",
        "customer.subscription.updated",
        "sub_mix",
    )
    .await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!((tally.ignored, tally.done), (2, 1));
    assert_eq!(event(&app, "evt_odd").await.status, "ignored");
    assert_eq!(event(&app, "evt_mixed_a").await.status, "ignored");
    assert_eq!(event(&app, "evt_mixed_b").await.status, "done");
    let effects = effects(&app).await;
    assert_eq!(effects.len(), 1);
    app.stop().await;
}

async fn shutdown_with_events_in_flight_loses_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    // Handlers that do not finish before the grace period ends.
    let (handler, gate) = TestHandler::new(Duration::ZERO).gated();
    backlog(&db, &handler, "sd", 12).await;
    let app = app_on_existing(&db, &handler, |r| {
        workers(r, 4, 20);
        r.shutdown_grace_secs = 1;
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while handler.calls.load(Ordering::SeqCst) < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;

    // Nothing is left leased: the running groups (after the grace) and any
    // claimed but not started are back to pending, their attempt not spent.
    let app = app_with_existing(&db, &handler).await;
    let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
    assert_eq!(rows.len(), 12);
    assert!(
        rows.iter()
            .all(|r| r.status == "pending" && r.attempts == 0 && r.lease_owner.is_none()),
        "{rows:#?}"
    );
    let leases: i64 = app
        .db(|c| {
            use stripe_hookd::testing::store::schema::object_leases as l;
            stripe_hookd::testing::store::with_conn!(c, c => l::table.count().get_result(c).unwrap())
        })
        .await;
    assert_eq!(leases, 0, "no object lease left behind");
    let released = attempts(&app, "evt_sd_0").await;
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(released[0].1.as_deref(), Some("released"));

    // Nothing is lost, nothing applied twice.
    gate.add_permits(1000);
    let tally = app.runner.run_pending().await.unwrap();
    let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
    assert!(
        rows.iter().all(|r| r.status == "done"),
        "{tally:?} {rows:#?}"
    );
    let effects = effects(&app).await;
    assert_eq!(effects.len(), 12);
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
    app.stop().await;
}

/// A second application on the same database (the effects table exists).
async fn app_with_existing(db: &TestDb, handler: &TestHandler) -> TestApp {
    app_on_existing(db, handler, stepped).await
}

async fn app_on_existing(
    db: &TestDb,
    handler: &TestHandler,
    runner: impl Fn(&mut RunnerConfig) + Send + Sync + 'static,
) -> TestApp {
    TestApp::spawn_with(
        db,
        AppOptions::default()
            .handler(Arc::new(handler.clone()))
            .config(move |c| runner(&mut c.runner)),
    )
    .await
}

/// Stores `n` events, one object each, with no worker running: a backlog
/// for the workers of the next application on `db`.
async fn backlog(db: &TestDb, handler: &TestHandler, prefix: &str, n: usize) {
    let app = app_with(db, handler, stepped).await;
    for i in 0..n {
        deliver_ok(
            &app,
            &format!("evt_{prefix}_{i}"),
            "invoice.paid",
            &format!("in_{prefix}_{i}"),
        )
        .await;
    }
    app.stop().await;
}

async fn retention_prunes_finished_events_and_keeps_dead_ones(backend: Backend) {
    let db = TestDb::new(backend);
    let handler =
        TestHandler::new(Duration::ZERO).with("charge.dispute.created", Behaviour::AlwaysFail);
    let app = app_with(&db, &handler, |r| {
        stepped(r);
        r.max_attempts = 1;
    })
    .await;
    for i in 0..7 {
        deliver_ok(
            &app,
            &format!("evt_old_{i}"),
            "invoice.paid",
            &format!("in_{i}"),
        )
        .await;
    }
    deliver_ok(&app, "evt_old_ignored", "unhandled.x", "x_9").await;
    deliver_ok(&app, "evt_old_dead", "charge.dispute.created", "dp_9").await;
    app.runner.run_pending().await.unwrap();
    let cutoff = app.runner.clock().now_ms() + 1;
    deliver_ok(&app, "evt_recent", "invoice.paid", "in_recent").await;
    let pruned = app
        .db(move |c| stripe_hookd::testing::store::outbox::retention::prune(c, cutoff, 3).unwrap())
        .await;
    assert_eq!(
        pruned, 8,
        "done and ignored events before the cutoff, in batches of 3"
    );
    let ids = app.db(|c| outbox::event_ids(c).unwrap()).await;
    assert_eq!(
        ids,
        vec!["evt_old_dead".to_owned(), "evt_recent".to_owned()]
    );
    assert!(
        attempts(&app, "evt_old_0").await.is_empty(),
        "attempt rows go with their event"
    );
    app.stop().await;
}

/// Slow handling (as when the Stripe API slows down) with more groups than
/// workers: a group's lease must count from when a worker takes it, not
/// from a claim made long before, so none is lost, run twice, or charged
/// an extra attempt.
async fn groups_waiting_for_a_worker_do_not_lose_their_lease(backend: Backend) {
    let db = TestDb::new(backend);
    // A handler gets half the 2 s lease; each call takes 700 ms once the
    // gate opens.
    let (handler, gate) = TestHandler::new(Duration::from_millis(700)).gated();
    backlog(&db, &handler, "slow", 10).await;
    let app = app_on_existing(&db, &handler, |r| {
        workers(r, 2, 50);
        r.lease_secs = 2;
    })
    .await;
    // Both workers busy: only what they are working on is leased, nothing
    // waits in a buffer with its lease running out.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while handler.calls.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "no worker started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
    let leased = rows.iter().filter(|r| r.status == "processing").count();
    assert_eq!(leased, 2, "claimed only what the 2 workers can start");
    gate.add_permits(1000);
    wait_until(&app, 60, "all 10 events done", |rows| {
        rows.len() == 10 && rows.iter().all(|r| r.status == "done")
    })
    .await;
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        10,
        "one handler call per group: none ran twice"
    );
    for i in 0..10 {
        let id = format!("evt_slow_{i}");
        assert_eq!(event(&app, &id).await.attempts, 1, "{id}: no attempt spent");
        let history = attempts(&app, &id).await;
        assert_eq!(history.len(), 1, "{id}: {history:?}");
        assert_eq!(history[0].1.as_deref(), Some("done"), "{id}");
    }
    let effects = effects(&app).await;
    assert_eq!(effects.len(), 10);
    assert!(effects.values().all(|n| *n == 1), "{effects:?}");
    app.stop().await;
}

/// One object piles up events while another instance holds its lease (a
/// slow Stripe call): the other objects' events must still be claimed.
async fn a_hot_leased_object_does_not_starve_the_others(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO);
    let app = app_with(&db, &handler, stepped).await;
    deliver_ok(&app, "evt_hot_first", "invoice.updated", "in_hot").await;
    // Another worker takes the hot object and is still at it.
    let held = app.runner.claim(1).await.unwrap();
    assert_eq!(held.len(), 1);
    for i in 0..40 {
        deliver_ok(&app, &format!("evt_hot_{i}"), "invoice.updated", "in_hot").await;
    }
    deliver_ok(&app, "evt_cold", "invoice.updated", "in_cold").await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1, "the cold object's event was claimed");
    assert_eq!(event(&app, "evt_cold").await.status, "done");
    assert_eq!(
        event(&app, "evt_hot_0").await.status,
        "pending",
        "the hot object waits for its lease"
    );
    app.stop().await;
}

/// A replay of the whole history (or a catch-up backlog) waits behind what
/// Stripe delivers now: replayed events are claimed after live ones.
async fn live_events_are_claimed_before_replayed_ones(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::ZERO);
    let app = app_with(&db, &handler, stepped).await;
    for i in 0..30 {
        deliver_ok(
            &app,
            &format!("evt_old_{i}"),
            "invoice.paid",
            &format!("in_old_{i}"),
        )
        .await;
    }
    assert_eq!(app.runner.run_pending().await.unwrap().done, 30);
    let replayed = app
        .db(|c| {
            let filter = EventFilter {
                status: Some("done".to_owned()),
                ..EventFilter::default()
            };
            events::replay(c, &filter, "test", EpochMs::now()).unwrap()
        })
        .await;
    assert_eq!(replayed.replayed.len(), 30);
    // Delivered after the replay, due later than every replayed event.
    tokio::time::sleep(Duration::from_millis(5)).await;
    deliver_ok(&app, "evt_live", "invoice.paid", "in_live").await;

    let first = app.runner.claim(1).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].key, "in_live",
        "a replayed event was claimed first"
    );
    for group in first {
        app.runner.process(group).await;
    }
    assert_eq!(app.runner.run_pending().await.unwrap().done, 30);
    app.stop().await;
}

/// A stored event for `object`, due now, at the pinned API version.
fn new_event(id: &str, object: &str, now: i64) -> NewEvent {
    NewEvent {
        api_version: Some(API_VERSION.into()),
        ..stored_event(id, object, now)
    }
}

/// Three instances (each its own pool and runner) claiming at once on one
/// database, many events over few objects: every claim must succeed (on
/// Postgres two claims once deadlocked on each other's rows and object
/// leases), no object may be handled by two at once, every event applied
/// exactly once.
async fn runners_claiming_at_once_never_fail_or_overlap(backend: Backend) {
    const EVENTS: usize = 1200;
    const OBJECTS: usize = 12;
    let db = TestDb::new(backend);
    let handler = TestHandler::new(Duration::from_millis(1));
    let app = app_with(&db, &handler, stepped).await;
    let now = now_ms();
    let events: Vec<NewEvent> = (0..EVENTS)
        .map(|i| {
            new_event(
                &format!("evt_race_{i:05}"),
                &format!("sub_race_{}", i % OBJECTS),
                now,
            )
        })
        .collect();
    app.db(move |c| outbox::insert_batch(c, &events).unwrap())
        .await;

    let config = stripe_hookd::testing::config::from_toml_str(
        "[database]\npool_size = 8\n[runner]\nconcurrency = 4\nlease_secs = 20",
    )
    .unwrap();
    let runners: Vec<Arc<Runner>> = (0..3)
        .map(|_| {
            let store = Store::open(&db.url, &config.database.store_options()).unwrap();
            let options = config.runner.options();
            Arc::new(
                Runner::new(store, Arc::new(handler.clone()), options, Clock::default()).unwrap(),
            )
        })
        .collect();
    let store = app.store.clone();
    let tasks: Vec<_> = runners
        .iter()
        .map(|runner| {
            let (runner, store) = (Arc::clone(runner), store.clone());
            tokio::spawn(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(120);
                while std::time::Instant::now() < deadline {
                    let tally = runner.run_pending().await.map_err(|e| e.to_string())?;
                    assert_eq!(tally.lost, 0, "no lease lost");
                    let s = store.clone();
                    let open = tokio::task::spawn_blocking(move || {
                        outbox::count_by_status(&mut s.conn().unwrap())
                            .unwrap()
                            .iter()
                            .filter(|(st, _)| st != "done")
                            .map(|(_, n)| *n)
                            .sum::<i64>()
                    })
                    .await
                    .unwrap();
                    if open == 0 {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err("timed out with events left".to_owned())
            })
        })
        .collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let result: Result<(), String> = task.await.unwrap();
        assert_eq!(result, Ok(()), "runner {n} failed a claim");
    }
    assert_eq!(
        handler.overlaps.load(Ordering::SeqCst),
        0,
        "two instances handled one object at once"
    );
    let effects = effects(&app).await;
    assert_eq!(effects.len(), EVENTS);
    assert!(effects.values().all(|n| *n == 1));
    app.stop().await;
}
