//! Retention of deliveries: delivered and discarded ones finished before
//! the horizon go with their attempt history; pending, dead and recently
//! finished ones stay; the order per object is unaffected; the runner's
//! prune loop does it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use stripe_hookd::testing::store::deliveries::{self, history, retention};

use crate::backend_tests;
use crate::forward::{
    customer_event, destination, forwarder, rows, with_destination, Received, Receiver,
};
use crate::harness::{AppOptions, Backend, TestApp, TestDb};

backend_tests!(
    finished_deliveries_past_retention_go_with_their_attempts,
    the_runners_prune_loop_prunes_finished_deliveries,
    a_delivery_keeps_its_body_when_its_event_leaves_the_outbox,
);

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Delivers `event_type` of `customer` and finishes it (recording its
/// delivery); its event id.
async fn record(app: &TestApp, event_type: &str, customer: &str) -> String {
    let id = app.deliver_ok(&customer_event(event_type, customer)).await;
    app.runner.run_pending().await.unwrap();
    id
}

/// The status of each delivery, by event id (`None`: pruned).
async fn status_of(app: &TestApp, event_id: &str) -> Option<String> {
    rows(app)
        .await
        .into_iter()
        .find(|d| d.event_id == event_id)
        .map(|d| d.status)
}

async fn attempts_of(app: &TestApp, event_id: &str) -> usize {
    let id = deliveries::delivery_id("app", event_id);
    app.db(move |c| history::for_delivery(c, &id).unwrap().len())
        .await
}

/// Bodies (`delivery_payloads`) whose delivery is gone.
async fn orphaned_bodies(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use stripe_hookd::testing::store::schema::{deliveries, delivery_payloads};
    app.db(|conn| {
        stripe_hookd::testing::with_conn!(conn, c => delivery_payloads::table
            .filter(diesel::dsl::not(diesel::dsl::exists(
                deliveries::table.filter(deliveries::id.eq(delivery_payloads::id)),
            )))
            .count()
            .get_result::<i64>(c)
            .unwrap())
    })
    .await
}

/// How many deliveries have a body of their own (`delivery_payloads`).
async fn copied_bodies(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    use stripe_hookd::testing::store::schema::delivery_payloads;
    app.db(|conn| {
        stripe_hookd::testing::with_conn!(conn, c => delivery_payloads::table
            .count()
            .get_result::<i64>(c)
            .unwrap())
    })
    .await
}

/// A delivery of a Stripe event reads its body from the outbox (recording
/// it writes no copy, by the intake or by the runner's finish); pruning the
/// event copies the body first, so a dead delivery redelivered once its
/// event is gone still sends the original body byte for byte.
async fn a_delivery_keeps_its_body_when_its_event_leaves_the_outbox(backend: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = TestDb::new(backend);
    let refuse = Arc::new(AtomicBool::new(true));
    let answer = Arc::clone(&refuse);
    let app_side = Receiver::start(Arc::new(move |_r: Received| {
        let status = if answer.load(Ordering::SeqCst) {
            500
        } else {
            200
        };
        async move { status }.boxed()
    }));
    // Two destinations: one recorded by the intake, one by the finish.
    let reconciled = destination(&app_side.url, |d| d.max_attempts = 1);
    let received = destination(&app_side.url, |d| {
        d.name = "early".into();
        d.after = stripe_hookd::testing::config::After::Received;
        d.max_attempts = 1;
    });
    let options = AppOptions::default().config(move |c| {
        c.destinations = vec![reconciled.clone(), received.clone()];
        c.forward.enabled = false;
    });
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let fwd = forwarder(&app);

    // Spacing of its own: what is sent is these bytes, not a re-encoding.
    let id = "evt_body_kept";
    let raw = format!(
        "{{ \"id\": \"{id}\",  \"object\": \"event\", \"type\": \"customer.created\", \"api_version\": \"{}\", \"created\": 1700000000, \"livemode\": false, \"pending_webhooks\": 1, \"request\": {{\"id\": null, \"idempotency_key\": null}},\n  \"data\": {{\"object\": {{\"id\": \"cus_body\", \"object\": \"customer\"}}}} }}",
        crate::harness::API_VERSION
    );
    assert_eq!(app.deliver(&raw).await.status(), 200);
    app.runner.run_pending().await.unwrap();
    assert_eq!(rows(&app).await.len(), 2, "one delivery per destination");
    assert_eq!(
        copied_bodies(&app).await,
        0,
        "no copy while the outbox holds the body"
    );
    fwd.run_pending().await.unwrap();
    for d in rows(&app).await {
        assert_eq!(d.status, "dead", "{}", d.destination);
        assert_eq!(
            d.payload.as_deref(),
            Some(raw.as_str()),
            "{}",
            d.destination
        );
    }

    // Four days later the event leaves the outbox (three days' retention).
    clock.advance(4 * DAY);
    let older_than = clock.now_ms() - i64::try_from((3 * DAY).as_millis()).unwrap();
    let pruned = app
        .db(move |c| {
            stripe_hookd::testing::store::outbox::retention::prune(c, older_than, 10).unwrap()
        })
        .await;
    assert_eq!(pruned, 1, "the event pruned");
    assert_eq!(
        copied_bodies(&app).await,
        2,
        "each delivery got a copy first"
    );

    // Redelivered once the app answers again: the original bytes.
    refuse.store(false, Ordering::SeqCst);
    let now = clock.now_ms();
    for name in ["app", "early"] {
        let delivery = deliveries::delivery_id(name, id);
        app.db(move |c| deliveries::redeliver(c, &delivery, now).unwrap())
            .await;
    }
    let tally = fwd.run_pending().await.unwrap();
    assert_eq!(tally.delivered, 2, "{tally:?}");
    let delivered = app_side.delivered();
    assert_eq!(delivered.len(), 2);
    for r in delivered {
        assert_eq!(r.body, raw, "delivery {}", r.delivery);
    }
    app.stop().await;
}

async fn finished_deliveries_past_retention_go_with_their_attempts(backend: Backend) {
    let db = TestDb::new(backend);
    // customer.deleted is refused (500) forever; the rest is delivered.
    let app_side = Receiver::start(Arc::new(|r: Received| {
        let status = if r.event_type == "customer.deleted" {
            500
        } else {
            200
        };
        async move { status }.boxed()
    }));
    // Retries only when the test moves the clock (an hour or more apart).
    let options = with_destination(destination(&app_side.url, |d| d.max_attempts = 2))
        .config(|c| c.forward.backoff_base_ms = 3_600_000);
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let fwd = forwarder(&app);

    // Day 0.
    let old_delivered = record(&app, "customer.created", "cus_ok").await;
    let old_dead = record(&app, "customer.deleted", "cus_dead").await;
    let old_discarded = record(&app, "customer.deleted", "cus_disc").await;
    let discarded_late = record(&app, "customer.deleted", "cus_late").await;
    fwd.run_pending().await.unwrap();
    let id = deliveries::delivery_id("app", &old_discarded);
    let now = clock.now_ms();
    app.db(move |c| deliveries::discard(c, &id, "test", now).unwrap())
        .await;
    clock.advance(HOUR);
    fwd.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &old_dead).await.as_deref(), Some("dead"));
    assert_eq!(
        status_of(&app, &discarded_late).await.as_deref(),
        Some("dead")
    );

    // Four days later: one dead delivery of day 0 discarded now, a recent
    // delivered one, an object whose first delivery is retrying with a
    // later one waiting behind it, and a delivery waiting to go to the
    // object whose delivery of day 0 was delivered.
    clock.advance(4 * DAY);
    let id = deliveries::delivery_id("app", &discarded_late);
    let now = clock.now_ms();
    app.db(move |c| deliveries::discard(c, &id, "test", now).unwrap())
        .await;
    let recent = record(&app, "customer.created", "cus_new").await;
    let retrying = record(&app, "customer.deleted", "cus_pend").await;
    let behind = record(&app, "customer.updated", "cus_pend").await;
    fwd.run_pending().await.unwrap();
    let next_of_delivered = record(&app, "customer.updated", "cus_ok").await;
    assert_eq!(status_of(&app, &recent).await.as_deref(), Some("delivered"));
    assert_eq!(status_of(&app, &retrying).await.as_deref(), Some("pending"));
    assert_eq!(attempts_of(&app, &retrying).await, 1);
    assert_eq!(attempts_of(&app, &behind).await, 0, "held back");

    // Retention of three days, in batches of one.
    let older_than = clock.now_ms() - i64::try_from((3 * DAY).as_millis()).unwrap();
    let pruned = app
        .db(move |c| retention::prune(c, older_than, 1).unwrap())
        .await;
    assert_eq!(
        pruned,
        retention::Pruned {
            deliveries: 2,
            attempts: 2
        },
        "the delivery delivered and the one discarded on day 0, with their attempt each"
    );
    assert_eq!(
        orphaned_bodies(&app).await,
        0,
        "bodies of pruned deliveries kept"
    );
    for gone in [&old_delivered, &old_discarded] {
        assert_eq!(status_of(&app, gone).await, None, "{gone} kept");
        assert_eq!(attempts_of(&app, gone).await, 0, "attempts of {gone} kept");
    }
    for (kept, status, attempts) in [
        (&old_dead, "dead", 2),
        (&discarded_late, "discarded", 2),
        (&recent, "delivered", 1),
        (&retrying, "pending", 1),
        (&behind, "pending", 0),
        (&next_of_delivered, "pending", 0),
    ] {
        assert_eq!(
            status_of(&app, kept).await.as_deref(),
            Some(status),
            "{kept}"
        );
        assert_eq!(attempts_of(&app, kept).await, attempts, "{kept}");
    }

    // The next delivery of an object whose earlier one was pruned goes.
    let tally = fwd.run_pending().await.unwrap();
    assert_eq!(tally.delivered, 1, "{tally:?}");
    assert_eq!(
        status_of(&app, &next_of_delivered).await.as_deref(),
        Some("delivered")
    );
    assert!(app_side
        .delivered()
        .iter()
        .any(|r| r.event_id == next_of_delivered));
    // The one behind a retrying delivery still waits.
    assert_eq!(attempts_of(&app, &behind).await, 0);
    app.stop().await;
}

async fn the_runners_prune_loop_prunes_finished_deliveries(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {})).config(|c| {
        c.runner.enabled = true;
        c.runner.retention_days = 3;
        c.runner.prune_interval_secs = 1;
    });
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let event = app
        .deliver_ok(&customer_event("customer.created", "cus_loop"))
        .await;
    // The runner's workers finish the event: its delivery is recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rows(&app).await.is_empty() {
        assert!(std::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(status_of(&app, &event).await.as_deref(), Some("delivered"));
    assert_eq!(attempts_of(&app, &event).await, 1);

    clock.advance(4 * DAY);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while status_of(&app, &event).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "a delivery delivered four days ago outlived a retention of three"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(attempts_of(&app, &event).await, 0);
    app.stop().await;
}
