//! The doors (`store::hooks`): whichever way a fact is written, what it
//! promises follows. Events that enter the outbox through catch-up reach
//! `received` destinations; access changed by a resync or the drift sweep
//! is announced; a customer's access is announced once per transaction,
//! after every group of it applied; access announcements are not held back
//! by the customer's Stripe events; a reload that switches a destination to
//! `received` loses none of the events in flight.

use std::sync::Arc;

use futures_util::FutureExt;
use serde_json::{json, Value};
use stripe_hookd::testing::config::After;
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::run_job;
use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::forward::{destination, forwarder, rows, with_destination, Receiver};
use crate::harness::{snapshot_event, Backend, TestApp, TestDb, API_VERSION};

backend_tests!(
    events_caught_up_reach_received_destinations,
    a_resync_or_the_sweep_announces_the_access_it_changed,
    a_customer_is_announced_once_per_transaction_after_every_group,
    access_announcements_do_not_wait_behind_the_customers_events,
    a_reload_to_received_records_the_events_in_flight,
);

const ACCESS: &str = "stripe_hookd.access.updated";

fn now() -> i64 {
    stripe_hookd::testing::store::now_ms() / 1000
}

/// The bodies of the access events `app_side` was given, in order.
fn announced(app_side: &Receiver) -> Vec<Value> {
    app_side
        .delivered()
        .iter()
        .filter(|r| r.event_type == ACCESS)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

/// Events that never reached the intake, recovered by a catch-up, are
/// forwarded to a destination that follows `received` (the intake's door
/// was the only one that recorded them).
async fn events_caught_up_reach_received_destinations(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| d.after = After::Received);
    let app = TestApp::spawn_with(&db, with_destination(d).admin().stripe(fake.base_url())).await;
    let s = Scenario::new(false, API_VERSION);
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut e = s.event("customer.updated").unwrap();
        e["id"] = json!(format!("evt_missed_{i}"));
        fake.push_event(e);
        ids.push(format!("evt_missed_{i}"));
    }
    let report = run_job(&app, "/v1/catch-up", json!({"since": now() - 3600}))
        .await
        .1;
    assert_eq!(report["missing"].as_array().unwrap().len(), 3, "{report}");
    let recorded: Vec<String> = rows(&app).await.into_iter().map(|r| r.event_id).collect();
    for id in &ids {
        assert!(
            recorded.contains(id),
            "{id} entered through catch-up and was not recorded for the received destination: {recorded:?}"
        );
    }
    forwarder(&app).run_pending().await.unwrap();
    let mut got: Vec<String> = app_side
        .delivered()
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    got.sort();
    assert_eq!(got, ids);
    app.stop().await;
    fake.stop().await;
}

/// A subscription canceled at Stripe while its event never came: a resync
/// revokes and announces it; re-activated, the drift sweep grants and
/// announces it. No event for that customer follows either repair.
async fn a_resync_or_the_sweep_announces_the_access_it_changed(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| {
        d.events = vec!["customer.subscription.*".to_owned(), ACCESS.to_owned()];
    });
    let app = TestApp::spawn_with(&db, with_destination(d).admin().stripe(fake.base_url())).await;
    let s = Scenario::new(false, API_VERSION);
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(announced(&app_side).len(), 1);

    fake.update(&s.subscription, |v| set_subscription_status(v, "canceled"));
    let res = app
        .client
        .post(app.admin_url(&format!("/v1/resync/{}", s.subscription)))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    forwarder(&app).run_pending().await.unwrap();
    let got = announced(&app_side);
    assert_eq!(got.len(), 2, "the resync's revocation was not announced");
    assert_eq!(got[1]["data"]["object"]["has_access"], false);
    assert_eq!(got[1]["data"]["previous_attributes"]["has_access"], true);
    assert_eq!(got[1]["api_version"], Value::Null, "no event caused it");

    fake.update(&s.subscription, |v| set_subscription_status(v, "active"));
    let report = run_job(&app, "/v1/reconcile", json!({})).await.1;
    assert_ne!(report["drift"], json!([]), "{report}");
    forwarder(&app).run_pending().await.unwrap();
    let got = announced(&app_side);
    assert_eq!(got.len(), 3, "the sweep's repair was not announced");
    assert_eq!(got[2]["data"]["object"]["has_access"], true);
    assert_ne!(got[1]["id"], got[2]["id"]);

    // Nothing changed: a second sweep announces nothing.
    run_job(&app, "/v1/reconcile", json!({})).await;
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(announced(&app_side).len(), 3);
    app.stop().await;
    fake.stop().await;
}

/// Two subscriptions of one customer, finished by one transaction (as the
/// group commit does): one announcement, with both — never the state after
/// the first group alone.
async fn a_customer_is_announced_once_per_transaction_after_every_group(backend: Backend) {
    use stripe_hookd::testing::queue::finish::{self, Success};
    use stripe_hookd::testing::queue::Apply;
    use stripe_hookd::testing::reconcile::{access_events, record_from_json, records::Stamp};
    use stripe_hookd::testing::reconcile::{writes::RecordWrites, Family};
    use stripe_hookd::testing::store::outbox;
    use stripe_hookd::testing::store::outbox::claim;

    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| d.events = vec![ACCESS.to_owned()]);
    let app = TestApp::spawn_with(&db, with_destination(d)).await;
    let s = Scenario::new(false, API_VERSION);
    let subscription = |id: &str, item: &str| {
        let mut sub = s.object("customer.subscription.created").unwrap();
        sub["id"] = json!(id);
        set_subscription_status(&mut sub, "active");
        sub["items"]["data"][0]["id"] = json!(item);
        sub["items"]["data"][0]["subscription"] = json!(id);
        sub
    };
    let apply = |sub: Value, seq: i64| -> Apply {
        let stamp = Stamp {
            seq,
            at: stripe_hookd::testing::store::now_ms(),
        };
        let record = record_from_json(Family::Subscription, &sub, stamp).unwrap();
        Box::new(RecordWrites::new(
            vec![record],
            Default::default(),
            None,
            3 * 24 * 3_600_000,
        ))
    };
    let (one, two) = (
        subscription("sub_door_one", "si_door_one"),
        subscription("sub_door_two", "si_door_two"),
    );
    let customer = s.customer.clone();
    let finished = app
        .db(move |conn| {
            let now = stripe_hookd::testing::store::now_ms();
            let events: Vec<_> = ["sub_door_one", "sub_door_two"]
                .iter()
                .map(|k| crate::harness::stored_event(&format!("evt_{k}"), k, now))
                .collect();
            outbox::insert_batch(conn, &events).unwrap();
            let mut token = || "door-test/1".to_owned();
            let groups = claim::claim(conn, "door-test", &mut token, now, 60_000, 10).unwrap();
            assert_eq!(groups.len(), 2);
            let applies = [apply(one, 10), apply(two, 11)];
            let jobs: Vec<Success> = groups
                .into_iter()
                .zip(applies)
                .map(|(group, apply)| Success {
                    handled: group.events.iter().map(|e| e.event_id.clone()).collect(),
                    group,
                    apply: Some(apply),
                    then: None,
                    now: now + 1,
                })
                .collect();
            stripe_hookd::testing::store::write_transaction(conn, |tx| {
                finish::successes_in(tx, jobs)
            })
            .unwrap()
        })
        .await;
    assert!(finished.iter().all(|r| r.is_ok()), "{finished:?}");
    let access_rows: Vec<_> = rows(&app)
        .await
        .into_iter()
        .filter(|r| r.event_type == ACCESS)
        .collect();
    assert_eq!(
        access_rows.len(),
        1,
        "one announcement per customer per transaction: {access_rows:?}"
    );
    forwarder(&app).run_pending().await.unwrap();
    let got = announced(&app_side);
    assert_eq!(got.len(), 1);
    let access = &got[0]["data"]["object"];
    assert_eq!(access["customer"], customer.as_str());
    let subs: Vec<&str> = access["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subscription"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["sub_door_one", "sub_door_two"], "{access}");
    assert_eq!(access_events::ACCESS_UPDATED, ACCESS);
    app.stop().await;
}

/// An ordered destination whose app keeps failing `customer.updated`:
/// the customer's access announcement is delivered anyway (it is ordered
/// among announcements only).
async fn access_announcements_do_not_wait_behind_the_customers_events(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app_side = Receiver::start(Arc::new(|r: crate::forward::Received| {
        async move {
            if r.event_type == "customer.updated" {
                500
            } else {
                200
            }
        }
        .boxed()
    }));
    let d = destination(&app_side.url, |d| {
        d.ordered = true;
        d.events = vec![
            "customer.updated".to_owned(),
            "customer.subscription.*".to_owned(),
            ACCESS.to_owned(),
        ];
    });
    let app = TestApp::spawn_with(&db, with_destination(d).stripe(fake.base_url())).await;
    let s = Scenario::new(false, API_VERSION);
    let customer = fake.customer(&s);
    app.deliver_ok(&snapshot_event("customer.updated", customer))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert!(
        app_side
            .seen()
            .iter()
            .any(|r| r.event_type == "customer.updated"),
        "the failing event was tried first"
    );
    let got = announced(&app_side);
    assert_eq!(
        got.len(),
        1,
        "the access announcement waits behind the customer's failing event: {:?}",
        app_side.seen()
    );
    assert_eq!(got[0]["data"]["object"]["has_access"], true);
    app.stop().await;
    fake.stop().await;
}

/// A destination switched by a reload from `reconciled` to `received`
/// while events are waiting: each of them is recorded for it once (the
/// finish no longer records them, the intake did so before the switch).
async fn a_reload_to_received_records_the_events_in_flight(backend: Backend) {
    use stripe_hookd::testing::app::reload::{self, Reloader};

    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let file = tempfile::NamedTempFile::new().unwrap();
    let config = |after: &str| {
        format!(
            "[[endpoints]]\nname = \"default\"\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [\"{}\"]\n[[destinations]]\nname = \"app\"\nurl = \"{}\"\nsecret = \"{}\"\nafter = \"{after}\"\n",
            crate::harness::SECRET,
            app_side.url,
            crate::forward::APP_SECRET,
        )
    };
    std::fs::write(file.path(), config("reconciled")).unwrap();
    let current = reload::load(Some(file.path())).unwrap();
    let d = current.config.destinations[0].clone();
    let app = TestApp::spawn_with(&db, with_destination(d)).await;
    // Stored, not processed yet (no runner step): the finish would have
    // recorded them for a `reconciled` destination.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("evt_in_flight_{i}");
        let mut event = crate::forward::customer_event("customer.updated", &format!("cus_{i}"));
        event["id"] = json!(id);
        app.deliver_ok(&event).await;
        ids.push(id);
    }
    assert!(
        rows(&app).await.is_empty(),
        "nothing recorded before the finish"
    );
    std::fs::write(file.path(), config("received")).unwrap();
    let mut reloader = Reloader::new(
        Some(file.path().to_owned()),
        current,
        app.reload_targets.clone(),
    );
    let changes = reloader.reload().expect("the reload applies");
    assert!(!changes.is_empty());
    // Recorded on a blocking thread: wait for it (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let recorded: Vec<String> = rows(&app).await.into_iter().map(|r| r.event_id).collect();
        if ids.iter().all(|id| recorded.contains(id)) {
            assert_eq!(recorded.len(), ids.len(), "once each: {recorded:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the events in flight were never recorded for the switched destination: {recorded:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The finish after the switch records nothing more for it.
    app.runner.run_pending().await.unwrap();
    assert_eq!(rows(&app).await.len(), ids.len());
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.delivered().len(), ids.len());
    app.stop().await;
}
