//! `stripe_hookd.access.updated`: a customer's access change, as a signed
//! Stripe-shaped event, recorded in the finishing transaction, only for
//! destinations that list it, with the same bytes on redelivery.

use serde_json::Value;
use stripe_hookd::testing::store::deliveries;

use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::forward::{destination, forwarder, rows, Receiver};
use crate::harness::{snapshot_event, AppOptions, Backend, TestApp, TestDb};

backend_tests!(
    access_changes_are_forwarded_as_stripe_shaped_events,
    access_ended_by_the_clock_is_forwarded,
    a_thin_event_changes_access_too,
);

const ACCESS: &str = "stripe_hookd.access.updated";

async fn access_changes_are_forwarded_as_stripe_shaped_events(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    let sub = fake.subscription(&s, "active");
    let listing = Receiver::always(200);
    let everything = Receiver::always(200);
    let d_listing = destination(&listing.url, |d| {
        d.name = "listing".to_owned();
        d.events = vec!["customer.subscription.*".to_owned(), ACCESS.to_owned()];
    });
    // `*` means every Stripe event, not stripe-hookd's own.
    let d_all = destination(&everything.url, |d| d.name = "all".to_owned());
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .admin()
            .stripe(fake.base_url())
            .config(move |c| {
                c.destinations = vec![d_listing.clone(), d_all.clone()];
                c.forward.enabled = false;
            }),
    )
    .await;

    let created = app
        .deliver_ok(&snapshot_event(
            "customer.subscription.created",
            sub.clone(),
        ))
        .await;
    app.runner.run_pending().await.unwrap();
    // Recorded with the finish: the access event follows its cause.
    let recorded = rows(&app).await;
    let access_rows: Vec<_> = recorded.iter().filter(|r| r.event_type == ACCESS).collect();
    assert_eq!(access_rows.len(), 1, "{recorded:?}");
    assert_eq!(access_rows[0].destination, "listing");
    // Ordered among announcements only, not behind the customer's own
    // `customer.*` events (whose key is the customer id).
    assert_eq!(
        access_rows[0].object_key,
        format!("{ACCESS}:{}", s.customer)
    );
    forwarder(&app).run_pending().await.unwrap();
    // Two objects (the subscription, the customer's access): no order
    // between them.
    let mut got = listing.delivered();
    got.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    assert_eq!(
        got.iter()
            .map(|r| r.event_type.as_str())
            .collect::<Vec<_>>(),
        vec!["customer.subscription.created", ACCESS],
    );
    assert_eq!(got[0].event_id, created);
    let granted: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(granted["object"], "event");
    assert!(granted["id"].as_str().unwrap().starts_with("evt_hookd_"));
    assert!(granted["created"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(granted["livemode"], false);
    assert_eq!(
        granted["api_version"],
        crate::harness::API_VERSION,
        "the causing event's (stripe-go compares it)"
    );
    let access = &granted["data"]["object"];
    assert_eq!(access["customer"], s.customer.as_str());
    assert_eq!(access["has_access"], true);
    assert_eq!(
        access["entitlements"][0]["subscription"],
        s.subscription.as_str()
    );
    assert_eq!(access["entitlements"][0]["status"], "active");
    assert_eq!(granted["data"]["previous_attributes"]["has_access"], false);
    assert!(
        everything
            .delivered()
            .iter()
            .all(|r| r.event_type != ACCESS),
        "sent to a destination that does not list it"
    );
    assert_eq!(everything.delivered().len(), 1);

    // An update that changes nothing about access: no access event.
    app.deliver_ok(&snapshot_event(
        "customer.subscription.updated",
        sub.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(
        listing
            .delivered()
            .iter()
            .filter(|r| r.event_type == ACCESS)
            .count(),
        1
    );

    // Canceled at Stripe: access revoked.
    fake.update(&s.subscription, |v| set_subscription_status(v, "canceled"));
    app.deliver_ok(&snapshot_event("customer.subscription.deleted", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    let got = listing.delivered();
    let revoked: Vec<Value> = got
        .iter()
        .filter(|r| r.event_type == ACCESS)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(revoked.len(), 2, "{got:?}");
    assert_eq!(revoked[1]["data"]["object"]["has_access"], false);
    assert_eq!(
        revoked[1]["data"]["object"]["entitlements"],
        serde_json::json!([])
    );
    assert_eq!(
        revoked[1]["data"]["previous_attributes"]["has_access"],
        true
    );
    assert_eq!(
        revoked[1]["data"]["previous_attributes"]["entitlements"][0]["status"],
        "active"
    );
    assert_eq!(*listing.forged.lock().unwrap(), 0, "signed like any event");

    // Redelivered: the same bytes.
    let first = got.iter().find(|r| r.event_type == ACCESS).unwrap().clone();
    let res = app
        .client
        .post(app.admin_url(&format!("/v1/deliveries/{}/redeliver", first.delivery)))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    forwarder(&app).run_pending().await.unwrap();
    let again = listing.delivered().last().unwrap().clone();
    assert_eq!(again.delivery, first.delivery);
    assert_eq!(again.body, first.body, "redelivered byte for byte");
    assert_eq!(
        first.delivery,
        deliveries::delivery_id("listing", &first.event_id)
    );
    app.stop().await;
    fake.stop().await;
}

/// A past_due grace running out changes access with no Stripe event: the
/// forwarder finds it and sends access.updated once.
async fn access_ended_by_the_clock_is_forwarded(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    let sub = fake.subscription(&s, "past_due");
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| d.events = vec![ACCESS.to_owned()]);
    let clock = stripe_hookd::testing::util::Clock::default();
    let options = AppOptions {
        clock: clock.clone(),
        ..AppOptions::default()
    };
    let app = TestApp::spawn_with(
        &db,
        options.stripe(fake.base_url()).config(move |c| {
            c.destinations = vec![d.clone()];
            c.forward.enabled = false;
            c.entitlements.past_due_grace_hours = 1;
        }),
    )
    .await;
    app.deliver_ok(&snapshot_event("customer.subscription.updated", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    let access = |app_side: &Receiver| -> Vec<Value> {
        app_side
            .delivered()
            .iter()
            .filter(|r| r.event_type == ACCESS)
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    };
    let got = access(&app_side);
    assert_eq!(got.len(), 1, "past_due within its grace grants access");
    assert_eq!(got[0]["data"]["object"]["has_access"], true);

    // Within the grace: nothing changes.
    clock.advance(std::time::Duration::from_secs(30 * 60));
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(access(&app_side).len(), 1);

    // The grace runs out: no Stripe event, but access ended.
    clock.advance(std::time::Duration::from_secs(60 * 60));
    forwarder(&app).run_pending().await.unwrap();
    let got = access(&app_side);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["data"]["object"]["has_access"], false);
    assert_eq!(got[1]["data"]["previous_attributes"]["has_access"], true);
    assert_eq!(got[1]["livemode"], false);
    assert_eq!(*app_side.forged.lock().unwrap(), 0, "signed like any event");

    // Looked at again (or by another instance): announced once.
    clock.advance(std::time::Duration::from_secs(60));
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(access(&app_side).len(), 2);
    app.stop().await;
    fake.stop().await;
}

/// A thin event has no `data.object`: its subscription's customer is found
/// in the records just written.
async fn a_thin_event_changes_access_too(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    fake.customer(&s);
    fake.subscription(&s, "active");
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| d.events = vec![ACCESS.to_owned()]);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .stripe(fake.base_url())
            .config(move |c| {
                c.destinations = vec![d.clone()];
                c.forward.enabled = false;
            }),
    )
    .await;
    let thin = fake.thin_event("customer.subscription.updated", &s.subscription, None);
    app.deliver_ok(&thin).await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    let got: Vec<Value> = app_side
        .delivered()
        .iter()
        .filter(|r| r.event_type == ACCESS)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["data"]["object"]["customer"], s.customer.as_str());
    assert_eq!(got[0]["data"]["object"]["has_access"], true);
    app.stop().await;
    fake.stop().await;
}

/// Two Postgres instances finishing events of one customer at the same
/// moment (a subscription's and an invoice's) each derive the customer's
/// access against the snapshot last announced. Forced interleaving: A has
/// derived (its snapshot written, not committed) when B derives; A commits
/// only once B waits on a lock. Exactly one access.updated comes of it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_announce_one_access_change_once() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use diesel::sql_types::{Integer, Nullable, Text};
    use diesel::{Connection, RunQueryDsl};
    use stripe_hookd::testing::reconcile::access_events;
    use stripe_hookd::testing::store::deliveries::HookEvent;
    use stripe_hookd::testing::store::{with_conn, write_transaction, StoreError};

    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = Integer)]
        pid: i32,
    }
    #[derive(diesel::QueryableByName)]
    struct Waiting {
        #[diesel(sql_type = Nullable<Text>)]
        wait_event_type: Option<String>,
    }

    let db = TestDb::new(Backend::Postgres);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    let sub = fake.subscription(&s, "active");
    // No destination lists access.updated: the finish writes the
    // entitlements and announces nothing, so there is no snapshot yet.
    let app = TestApp::spawn_with(&db, AppOptions::default().stripe(fake.base_url())).await;
    app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
        .await;
    app.runner.run_pending().await.unwrap();

    let event = |id: &str, customer: &str| {
        HookEvent {
        event_id: id.to_owned().into(),
        event_type: "invoice.paid".into(),
        object_key: format!("in_{id}").into(),
        payload: serde_json::json!({
            "id": id, "object": "event", "type": "invoice.paid",
            "data": {"object": {"object": "invoice", "id": format!("in_{id}"), "customer": customer}},
        })
        .to_string()
        .into(),
        in_outbox: false,
    }
    };
    let (event_a, event_b) = (
        event("evt_race_a", &s.customer),
        event("evt_race_b", &s.customer),
    );
    let now = app.runner.clock().now_ms();
    let (pid_tx, pid_rx) = mpsc::channel::<i32>();
    let (derived_tx, derived_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();

    let (store, url) = (app.store.clone(), db.url.clone());
    let a = std::thread::spawn(move || {
        let mut conn = store.conn().unwrap();
        let b_pid = pid_rx.recv().unwrap();
        let mut watcher = diesel::PgConnection::establish(&url).unwrap();
        write_transaction(&mut conn, |tx| -> Result<usize, StoreError> {
            let made = access_events::derive(tx, &[event_a], now)?;
            derived_tx.send(()).unwrap();
            // Commit once B waits on a lock (or has finished without
            // waiting); a generous deadline, never a failure by itself.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline && done_rx.try_recv().is_err() {
                let waiting: Waiting = diesel::sql_query(
                    "SELECT wait_event_type::text AS wait_event_type FROM pg_stat_activity WHERE pid = $1",
                )
                .bind::<Integer, _>(b_pid)
                .get_result(&mut watcher)
                .unwrap();
                if waiting.wait_event_type.as_deref() == Some("Lock") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(made.len())
        })
        .unwrap()
    });
    let store = app.store.clone();
    let b = std::thread::spawn(move || {
        let mut conn = store.conn().unwrap();
        let pid: Pid = with_conn!(&mut *conn, c => diesel::sql_query("SELECT pg_backend_pid() AS pid").get_result(c)).unwrap();
        pid_tx.send(pid.pid).unwrap();
        derived_rx.recv().unwrap();
        let made = write_transaction(&mut conn, |tx| {
            access_events::derive(tx, &[event_b], now).map_err(StoreError::from)
        })
        .unwrap();
        let _ = done_tx.send(());
        made.len()
    });
    let (a, b) = tokio::task::spawn_blocking(move || (a.join().unwrap(), b.join().unwrap()))
        .await
        .unwrap();
    assert_eq!(a, 1, "the first to derive announces the change");
    assert_eq!(b, 0, "announced twice: the second read the old snapshot");
    app.stop().await;
    fake.stop().await;
}

/// Two batches finishing groups of two customers in opposite orders (one
/// transaction each, as the group commit does): A then B in one, B then A
/// in the other. Neither waits for the other forever nor for Postgres's
/// deadlock detector: the one that would take its second lock out of key
/// order only tries it, and its group fails with that reason (the runner
/// retries it); the other announces both.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_lock_orders_in_two_batches_do_not_deadlock() {
    use std::sync::{Arc, Barrier};

    use stripe_hookd::testing::reconcile::access_events;
    use stripe_hookd::testing::store::deliveries::HookEvent;
    use stripe_hookd::testing::store::{write_transaction, StoreError};

    let db = TestDb::new(Backend::Postgres);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(&db, AppOptions::default().stripe(fake.base_url())).await;
    let mut customers = Vec::new();
    for _ in 0..2 {
        let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
        let sub = fake.subscription(&s, "active");
        app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
            .await;
        customers.push(s.customer.clone());
    }
    // No destination lists access.updated: no snapshot, both have a change.
    app.runner.run_pending().await.unwrap();

    fn event(id: &str, customer: &str) -> HookEvent<'static> {
        HookEvent {
            event_id: id.to_owned().into(),
            event_type: "invoice.paid".into(),
            object_key: format!("in_{id}").into(),
            payload: serde_json::json!({
                "id": id, "object": "event", "type": "invoice.paid",
                "data": {"object": {"object": "invoice", "id": format!("in_{id}"), "customer": customer}},
            })
            .to_string()
            .into(),
            in_outbox: false,
        }
    }
    let now = app.runner.clock().now_ms();
    let both_hold_one = Arc::new(Barrier::new(2));
    let batch = |first: String, second: String, tag: &'static str| {
        let (store, barrier) = (app.store.clone(), both_hold_one.clone());
        std::thread::spawn(move || -> Result<usize, String> {
            let mut conn = store.conn().unwrap();
            write_transaction(&mut conn, |tx| -> Result<usize, StoreError> {
                let a = access_events::derive(tx, &[event(&format!("evt_{tag}_1"), &first)], now)?;
                barrier.wait();
                let b = access_events::derive(tx, &[event(&format!("evt_{tag}_2"), &second)], now)?;
                Ok(a.len() + b.len())
            })
            .map_err(|e| e.to_string())
        })
    };
    let one = batch(customers[0].clone(), customers[1].clone(), "one");
    let other = batch(customers[1].clone(), customers[0].clone(), "other");
    let (one, other) =
        tokio::task::spawn_blocking(move || (one.join().unwrap(), other.join().unwrap()))
            .await
            .unwrap();
    let (announced, refused) = match (&one, &other) {
        (Ok(n), Err(e)) | (Err(e), Ok(n)) => (*n, e.clone()),
        _ => panic!("exactly one batch gives way: {one:?} / {other:?}"),
    };
    assert_eq!(announced, 2, "the other batch announces both changes");
    assert!(
        refused.contains("being announced by another transaction"),
        "given way by trying the out-of-order lock, not by the deadlock detector: {refused}"
    );
    app.stop().await;
    fake.stop().await;
}
