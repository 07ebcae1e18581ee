//! The Stripe-backed operations: replay, resync, drift sweep,
//! catch-up — through the admin API, against the fake Stripe.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::schema::{customers, subscriptions};
use stripe_hookd::testing::store::{now_ms, outbox, with_conn};
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::{post, run_job};
use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::harness::*;

backend_tests!(
    replaying_a_done_event_reapplies_it_with_no_change_in_state,
    resync_fetches_an_object_never_seen,
    the_drift_sweep_reports_and_fixes_drift_then_finds_none,
    catch_up_ingests_missing_events_once_across_pages,
);

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, AppOptions::admin).await
}

/// Starts a job and waits for its result.
async fn job(app: &TestApp, path: &str, body: Value) -> Value {
    run_job(app, path, body).await.1
}

async fn deliver_event(app: &TestApp, id: &str, event_type: &str, object: &Value) {
    let mut event = snapshot_event(event_type, object.clone());
    event["id"] = id.into();
    app.deliver_ok(&event).await;
}

async fn sub_row(app: &TestApp, id: &str) -> Option<(String, String, i64)> {
    let id = id.to_owned();
    app.db(move |c| {
        with_conn!(c, c => subscriptions::table
            .filter(subscriptions::id.eq(&id))
            .select((subscriptions::status, subscriptions::raw, subscriptions::fetched_at))
            .first(c)
            .optional()
            .unwrap())
    })
    .await
}

async fn replaying_a_done_event_reapplies_it_with_no_change_in_state(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = Scenario::new(false, API_VERSION);
    let sub = fake.subscription(&s, "active");
    deliver_event(
        &app,
        "evt_replay_done",
        "customer.subscription.created",
        &sub,
    )
    .await;
    app.runner.run_pending().await.unwrap();
    let (status, raw, fetched) = sub_row(&app, &s.subscription).await.unwrap();
    let customer = s.customer.clone();
    let before = app
        .db(move |c| entitlements::for_customer_all(c, &customer).unwrap())
        .await;

    let (code, body) = post(&app, "/v1/events/evt_replay_done/replay", json!({})).await;
    assert_eq!(
        (code, body["replayed"].clone()),
        (StatusCode::OK, json!(["evt_replay_done"]))
    );
    let calls = fake.count("/v1/subscriptions/");
    assert_eq!(
        app.runner.run_pending().await.unwrap().done,
        1,
        "re-applied through the runner"
    );
    assert_eq!(
        fake.count("/v1/subscriptions/"),
        calls + 1,
        "with a fresh re-fetch"
    );
    let (status2, raw2, fetched2) = sub_row(&app, &s.subscription).await.unwrap();
    assert_eq!((status2, raw2), (status, raw), "no change in state");
    assert!(fetched2 >= fetched);
    let customer = s.customer.clone();
    let after = app
        .db(move |c| entitlements::for_customer_all(c, &customer).unwrap())
        .await;
    assert_eq!(
        after
            .iter()
            .map(|e| (&e.item_id, &e.status, e.grants))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|e| (&e.item_id, &e.status, e.grants))
            .collect::<Vec<_>>()
    );
    app.stop().await;
    fake.stop().await;
}

async fn resync_fetches_an_object_never_seen(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = Scenario::new(false, API_VERSION);
    fake.subscription(&s, "trialing");
    let (code, body) = post(&app, &format!("/v1/resync/{}", s.subscription), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(sub_row(&app, &s.subscription).await.unwrap().0, "trialing");
    assert_eq!(
        app.db({
            let c = s.customer.clone();
            move |db| entitlements::for_customer(db, &c, now_ms()).unwrap()
        })
        .await
        .len(),
        1
    );
    let (code, body) = post(&app, "/v1/resync/acct_nope", json!({})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["reason"], "unknown_object");
    app.stop().await;
    fake.stop().await;
}

async fn the_drift_sweep_reports_and_fixes_drift_then_finds_none(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let scenarios: Vec<Scenario> = (0..3).map(|_| Scenario::new(false, API_VERSION)).collect();
    for (i, s) in scenarios.iter().enumerate() {
        fake.customer(s);
        let sub = fake.subscription(s, "active");
        if i < 2 {
            deliver_event(
                &app,
                &format!("evt_sweep_{i}"),
                "customer.subscription.created",
                &sub,
            )
            .await;
            deliver_event(
                &app,
                &format!("evt_sweep_c{i}"),
                "customer.created",
                &fake.get(&s.customer).unwrap(),
            )
            .await;
        }
    }
    app.runner.run_pending().await.unwrap();
    // Events were lost: locally the first subscription looks canceled, and
    // Stripe canceled the second (its deleted event never arrived).
    let lost = scenarios[0].subscription.clone();
    app.db(move |c| {
        with_conn!(c, c => diesel::update(subscriptions::table.filter(subscriptions::id.eq(&lost)))
            .set(subscriptions::status.eq("canceled"))
            .execute(c)
            .unwrap())
    })
    .await;
    fake.update(&scenarios[1].subscription, |v| {
        set_subscription_status(v, "canceled")
    });

    let report = job(&app, "/v1/reconcile", json!({"dry_run": true})).await;
    let drift: Vec<(String, String, Option<String>, Option<String>)> = report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["object"].as_str().unwrap().to_owned(),
                d["field"].as_str().unwrap().to_owned(),
                d["local"].as_str().map(str::to_owned),
                d["stripe"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let has = |object: &str, field: &str| drift.iter().any(|d| d.0 == object && d.1 == field);
    assert!(
        drift.contains(&(
            scenarios[0].subscription.clone(),
            "status".into(),
            Some("canceled".into()),
            Some("active".into())
        )),
        "{drift:?}"
    );
    assert!(has(&scenarios[1].subscription, "status"));
    assert!(
        has(&scenarios[2].subscription, "(record)"),
        "never delivered: the sweep backfills it"
    );
    assert!(has(&scenarios[2].customer, "(record)"));
    assert_eq!(report["fixed"], 0);
    assert_eq!(
        sub_row(&app, &scenarios[0].subscription).await.unwrap().0,
        "canceled",
        "a dry run changes nothing"
    );

    let report = job(&app, "/v1/reconcile", json!({})).await;
    assert!(report["fixed"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(
        report["subscriptions_checked"], 3,
        "all statuses, canceled included"
    );
    assert_eq!(
        sub_row(&app, &scenarios[0].subscription).await.unwrap().0,
        "active"
    );
    assert_eq!(
        sub_row(&app, &scenarios[1].subscription).await.unwrap().0,
        "canceled"
    );
    assert_eq!(
        sub_row(&app, &scenarios[2].subscription).await.unwrap().0,
        "active"
    );
    let cid = scenarios[2].customer.clone();
    let present: i64 = app
        .db(move |c| with_conn!(c, c => customers::table.filter(customers::id.eq(&cid)).count().get_result(c).unwrap()))
        .await;
    assert_eq!(present, 1);
    assert!(app
        .db({
            let c = scenarios[1].customer.clone();
            move |db| entitlements::for_customer(db, &c, now_ms()).unwrap()
        })
        .await
        .is_empty());

    let report = job(&app, "/v1/reconcile", json!({})).await;
    assert_eq!(report["drift"], json!([]), "a second sweep finds nothing");
    app.stop().await;
    fake.stop().await;
}

async fn catch_up_ingests_missing_events_once_across_pages(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = Scenario::new(false, API_VERSION);
    let mut events = Vec::new();
    for i in 0..130 {
        let mut e = s
            .event(if i % 2 == 0 {
                "invoice.paid"
            } else {
                "customer.updated"
            })
            .unwrap();
        e["id"] = json!(format!("evt_cu_{i:03}"));
        e["delivery_success"] = json!(i % 3 != 0);
        fake.push_event(e.clone());
        events.push(e);
    }
    // 40 of them did arrive.
    for e in events.iter().take(40) {
        assert_eq!(app.deliver(&e.to_string()).await.status(), 200);
    }
    let dry = job(
        &app,
        "/v1/catch-up",
        json!({"since": now() - 3600, "dry_run": true}),
    )
    .await;
    assert_eq!(dry["listed"], 130, "two pages of 100");
    assert_eq!(dry["missing"].as_array().unwrap().len(), 90);
    assert_eq!(app.count().await, 40, "a dry run stores nothing");

    let report = job(&app, "/v1/catch-up", json!({"since": now() - 3600})).await;
    assert_eq!(
        (
            report["already_stored"].clone(),
            report["missing"].as_array().unwrap().len()
        ),
        (json!(40), 90)
    );
    assert_eq!(app.count().await, 130);
    let row = app
        .db(|c| outbox::get(c, "evt_cu_129").unwrap().unwrap())
        .await;
    assert_eq!(
        (row.endpoint.as_str(), row.status.as_str()),
        ("catch-up", "pending")
    );

    let again = job(&app, "/v1/catch-up", json!({"since": now() - 3600})).await;
    assert_eq!(again["missing"], json!([]), "ingested once");
    let failed_only = job(
        &app,
        "/v1/catch-up",
        json!({"since": now() - 3600, "only_failed": true, "dry_run": true}),
    )
    .await;
    assert_eq!(
        failed_only["listed"], 44,
        "delivery_success=false is passed to Stripe"
    );
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.query.contains("delivery_success=false")));
    app.runner.run_pending().await.unwrap();
    app.stop().await;
    fake.stop().await;
}
