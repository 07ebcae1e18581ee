//! Re-fetch per event, local records, entitlements — against the
//! fake Stripe, through the real intake.

use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::schema::{
    checkout_sessions, customers, disputes, invoices, payment_intents, subscriptions,
};
use stripe_hookd::testing::store::{now_ms, outbox, with_conn, DbConnection};
use stripe_hookd::testing::trigger::Scenario;

use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe, Fault};
use crate::harness::*;

backend_tests!(
    every_handled_event_type_reconciles_its_object,
    subscription_deleted_before_created_ends_canceled_and_revoked,
    invoice_paid_before_created_ends_paid,
    checkout_completed_before_the_customer_exists_links_both,
    a_replay_after_the_object_changed_follows_the_api,
    both_api_shapes_reconcile_the_same_subscription,
    stripe_faults_are_retried_and_the_event_ends_done,
    a_missing_object_is_recorded_gone_and_not_retried,
    an_api_key_of_the_wrong_mode_is_a_permanent_error,
    billing_scenarios_end_to_end,
    fetch_order_does_not_follow_the_instances_clocks,
    a_past_due_subscription_keeps_its_grace_start_across_writes,
    fetches_that_start_together_get_distinct_places_in_the_order,
);

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, |o| o.config(quick_retries)).await
}

fn basil() -> Scenario {
    Scenario::new(false, API_VERSION)
}

async fn status_of(app: &TestApp, event_id: &str) -> String {
    let id = event_id.to_owned();
    app.db(move |c| outbox::get(c, &id).unwrap().unwrap().status.to_string())
        .await
}

/// The `status` column of a local record (None if absent), per table.
async fn local_status(app: &TestApp, table: &'static str, id: &str) -> Option<String> {
    let id = id.to_owned();
    app.db(move |c: &mut DbConnection| {
        with_conn!(c, c => match table {
            "subscriptions" => subscriptions::table.filter(subscriptions::id.eq(&id)).select(subscriptions::status.nullable()).first::<Option<String>>(c).optional().unwrap().flatten(),
            "invoices" => invoices::table.filter(invoices::id.eq(&id)).select(invoices::status).first::<Option<String>>(c).optional().unwrap().flatten(),
            "payment_intents" => payment_intents::table.filter(payment_intents::id.eq(&id)).select(payment_intents::status).first::<Option<String>>(c).optional().unwrap().flatten(),
            "disputes" => disputes::table.filter(disputes::id.eq(&id)).select(disputes::status).first::<Option<String>>(c).optional().unwrap().flatten(),
            "checkout_sessions" => checkout_sessions::table.filter(checkout_sessions::id.eq(&id)).select(checkout_sessions::payment_status).first::<Option<String>>(c).optional().unwrap().flatten(),
            "customers" => customers::table.filter(customers::id.eq(&id)).select((customers::deleted, customers::gone)).first::<(bool, bool)>(c).optional().unwrap()
                .map(|(deleted, gone)| if gone { "gone".to_owned() } else if deleted { "deleted".to_owned() } else { "present".to_owned() }),
            other => panic!("unknown table {other}"),
        })
    })
    .await
}

async fn access(app: &TestApp, customer: &str, at: i64) -> Vec<entitlements::Entitlement> {
    let customer = customer.to_owned();
    app.db(move |c| entitlements::for_customer(c, &customer, at).unwrap())
        .await
}

async fn every_handled_event_type_reconciles_its_object(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let customer = fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    let invoice = fake.invoice(&s, "paid");
    let pi = fake.payment_intent(&s, true);
    let dispute = fake.dispute(&s, "needs_response");
    let session = fake.checkout_session(&s);
    let cases: Vec<(&str, &Value, &str, &str)> = vec![
        (
            "payment_intent.succeeded",
            &pi,
            "payment_intents",
            "succeeded",
        ),
        (
            "payment_intent.payment_failed",
            &pi,
            "payment_intents",
            "succeeded",
        ),
        (
            "customer.subscription.created",
            &sub,
            "subscriptions",
            "active",
        ),
        (
            "customer.subscription.updated",
            &sub,
            "subscriptions",
            "active",
        ),
        (
            "customer.subscription.trial_will_end",
            &sub,
            "subscriptions",
            "active",
        ),
        (
            "customer.subscription.paused",
            &sub,
            "subscriptions",
            "active",
        ),
        (
            "customer.subscription.resumed",
            &sub,
            "subscriptions",
            "active",
        ),
        (
            "customer.subscription.deleted",
            &sub,
            "subscriptions",
            "active",
        ),
        ("invoice.created", &invoice, "invoices", "paid"),
        ("invoice.finalized", &invoice, "invoices", "paid"),
        ("invoice.paid", &invoice, "invoices", "paid"),
        ("invoice.payment_succeeded", &invoice, "invoices", "paid"),
        ("invoice.payment_failed", &invoice, "invoices", "paid"),
        ("invoice.voided", &invoice, "invoices", "paid"),
        ("invoice.marked_uncollectible", &invoice, "invoices", "paid"),
        (
            "charge.dispute.created",
            &dispute,
            "disputes",
            "needs_response",
        ),
        (
            "charge.dispute.updated",
            &dispute,
            "disputes",
            "needs_response",
        ),
        (
            "charge.dispute.closed",
            &dispute,
            "disputes",
            "needs_response",
        ),
        (
            "checkout.session.completed",
            &session,
            "checkout_sessions",
            "paid",
        ),
        (
            "checkout.session.async_payment_succeeded",
            &session,
            "checkout_sessions",
            "paid",
        ),
        (
            "checkout.session.async_payment_failed",
            &session,
            "checkout_sessions",
            "paid",
        ),
        (
            "checkout.session.expired",
            &session,
            "checkout_sessions",
            "paid",
        ),
        ("customer.created", &customer, "customers", "present"),
        ("customer.updated", &customer, "customers", "present"),
    ];
    for (event_type, object, table, expected) in &cases {
        let id = object["id"].as_str().unwrap();
        let event = app
            .deliver_ok(&snapshot_event(event_type, (*object).clone()))
            .await;
        let tally = app.runner.run_pending().await.unwrap();
        assert_eq!(tally.done, 1, "{event_type}: {tally:?}");
        assert_eq!(status_of(&app, &event).await, "done", "{event_type}");
        assert_eq!(
            local_status(&app, table, id).await.as_deref(),
            Some(*expected),
            "{event_type}"
        );
    }
    // customer.deleted: Stripe answers `deleted: true`.
    fake.delete_customer(&s.customer);
    app.deliver_ok(&snapshot_event("customer.deleted", customer.clone()))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        local_status(&app, "customers", &s.customer)
            .await
            .as_deref(),
        Some("deleted")
    );
    // The re-fetch used the pinned version and the right paths.
    let seen = fake.requests();
    assert!(seen
        .iter()
        .all(|r| r.version.as_deref() == Some(API_VERSION)));
    assert!(fake.count("/v1/checkout/sessions/") >= 4);
    // Types no handler takes are ignored, not failed.
    let odd = app
        .deliver_ok(&snapshot_event(
            "balance.available",
            json!({"object": "balance"}).clone(),
        ))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &odd).await, "ignored");
    app.stop().await;
    fake.stop().await;
}

async fn subscription_deleted_before_created_ends_canceled_and_revoked(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let active = fake.subscription(&s, "active");
    let mut canceled = active.clone();
    set_subscription_status(&mut canceled, "canceled");
    fake.put(canceled.clone());
    // Deleted arrives first, created (with its stale `active` snapshot) after.
    app.deliver_ok(&snapshot_event(
        "customer.subscription.deleted",
        canceled.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        active.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        local_status(&app, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("canceled")
    );
    assert!(
        access(&app, &s.customer, now_ms()).await.is_empty(),
        "access revoked"
    );
    app.stop().await;
    fake.stop().await;
}

/// The grace of a past_due subscription runs from the first write that saw
/// it past_due: a later write of it, still past_due, keeps that start (the
/// write reads the stored row only in that case), so the grace does not
/// grow with every update Stripe sends.
async fn a_past_due_subscription_keeps_its_grace_start_across_writes(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let past_due = fake.subscription(&s, "past_due");
    let mut grace_ends = Vec::new();
    for round in 0..2 {
        app.deliver_ok(&snapshot_event(
            "customer.subscription.updated",
            past_due.clone(),
        ))
        .await;
        app.runner.run_pending().await.unwrap();
        let rows = access(&app, &s.customer, now_ms()).await;
        assert_eq!(rows.len(), 1, "round {round}: access during the grace");
        grace_ends.push(rows[0].access_until.expect("a grace end"));
        // The second write comes later by the clock.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        grace_ends[0], grace_ends[1],
        "the second past_due write kept the grace's start"
    );
    app.stop().await;
    fake.stop().await;
}

async fn invoice_paid_before_created_ends_paid(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let paid = fake.invoice(&s, "paid");
    let mut draft = paid.clone();
    draft["status"] = json!("draft");
    app.deliver_ok(&snapshot_event("invoice.payment_succeeded", paid.clone()))
        .await;
    app.deliver_ok(&snapshot_event("invoice.created", draft.clone()))
        .await;
    // Both wait for one object: one re-fetch serves them (coalesced).
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2);
    assert_eq!(
        fake.count(&format!("/v1/invoices/{}", s.invoice)),
        1,
        "one re-fetch for both events"
    );
    assert_eq!(
        local_status(&app, "invoices", &s.invoice).await.as_deref(),
        Some("paid")
    );
    // Separately, in the wrong order, one at a time: still paid.
    app.deliver_ok(&snapshot_event("invoice.created", draft.clone()))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        local_status(&app, "invoices", &s.invoice).await.as_deref(),
        Some("paid")
    );
    app.stop().await;
    fake.stop().await;
}

async fn checkout_completed_before_the_customer_exists_links_both(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    fake.subscription(&s, "active");
    let session = fake.checkout_session(&s);
    app.deliver_ok(&snapshot_event(
        "checkout.session.completed",
        session.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        local_status(&app, "customers", &s.customer)
            .await
            .as_deref(),
        Some("present")
    );
    assert_eq!(
        local_status(&app, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("active")
    );
    let reference = s.client_reference_id.clone();
    let granted = app
        .db(move |c| entitlements::for_reference(c, &reference, now_ms()).unwrap())
        .await;
    assert_eq!(
        granted.len(),
        1,
        "the application's user has access through the link"
    );
    assert_eq!(granted[0].price_id.as_deref(), Some(s.price.as_str()));
    assert_eq!(granted[0].product_id.as_deref(), Some(s.product.as_str()));
    // The customer.created that arrives afterwards changes nothing.
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s.customer).unwrap().clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(access(&app, &s.customer, now_ms()).await.len(), 1);
    // The SQL view agrees.
    let reference = s.client_reference_id.clone();
    let via_view: i64 = app
        .db(move |c| {
            with_conn!(c, c => diesel::sql_query(format!(
                "SELECT COUNT(*) AS n FROM entitlements_now WHERE client_reference_id = '{reference}'"
            ))
            .get_result::<Count>(c)
            .unwrap()
            .n)
        })
        .await;
    assert_eq!(via_view, 1);
    app.stop().await;
    fake.stop().await;
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn a_replay_after_the_object_changed_follows_the_api(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let sub = fake.subscription(&s, "active");
    let event = app
        .deliver_ok(&snapshot_event(
            "customer.subscription.updated",
            sub.clone(),
        ))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        local_status(&app, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("active")
    );
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    let filter = stripe_hookd::testing::store::events::EventFilter {
        event_id: Some(event.clone()),
        ..Default::default()
    };
    app.db(move |c| {
        stripe_hookd::testing::store::events::replay(c, &filter, "test", now_ms().into()).unwrap()
    })
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &event).await, "done");
    assert_eq!(
        local_status(&app, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("past_due"),
        "the old payload said active; the API says past_due"
    );
    app.stop().await;
    fake.stop().await;
}

async fn both_api_shapes_reconcile_the_same_subscription(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let mut periods = Vec::new();
    for version in ["2024-06-20", API_VERSION] {
        let s = Scenario::new(false, version);
        let sub = fake.subscription(&s, "active");
        let inv = fake.invoice(&s, "paid");
        let item_end = sub["items"]["data"][0]["current_period_end"]
            .as_i64()
            .unwrap();
        assert_eq!(
            sub.get("current_period_end").is_some(),
            version.starts_with("2024"),
            "{version} shape"
        );
        app.deliver_ok(&snapshot_event(
            "customer.subscription.created",
            sub.clone(),
        ))
        .await;
        app.deliver_ok(&snapshot_event("invoice.paid", inv.clone()))
            .await;
        app.runner.run_pending().await.unwrap();
        let (sid, iid) = (s.subscription.clone(), s.invoice.clone());
        let (end, inv_sub): (Option<i64>, Option<String>) = app
            .db(move |c| {
                with_conn!(c, c => (
                    subscriptions::table.filter(subscriptions::id.eq(&sid)).select(subscriptions::current_period_end).first(c).unwrap(),
                    invoices::table.filter(invoices::id.eq(&iid)).select(invoices::subscription_id).first(c).unwrap(),
                ))
            })
            .await;
        assert_eq!(end, Some(item_end * 1000), "{version}: current_period_end");
        assert_eq!(
            inv_sub.as_deref(),
            Some(s.subscription.as_str()),
            "{version}: the invoice's subscription"
        );
        periods.push(access(&app, &s.customer, now_ms()).await.len());
    }
    assert_eq!(periods, vec![1, 1]);
    app.stop().await;
    fake.stop().await;
}

async fn stripe_faults_are_retried_and_the_event_ends_done(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let pi = fake.payment_intent(&s, true);
    let path = format!("/v1/payment_intents/{}", s.payment_intent);

    // 429 without Stripe-Should-Retry, 500, and a time-out: the client
    // retries within the call, and the event is done at the first attempt.
    for fault in [
        Fault::RateLimited {
            should_retry: None,
            retry_after: None,
        },
        Fault::ServerError(500),
        Fault::Slow(Duration::from_millis(1500)),
    ] {
        let before = fake.count(&path);
        fake.fail_next(1, &path, fault.clone());
        let event = app
            .deliver_ok(&snapshot_event("payment_intent.succeeded", pi.clone()))
            .await;
        let tally = app.runner.run_pending().await.unwrap();
        assert_eq!((tally.done, tally.retried), (1, 0), "{fault:?}");
        assert_eq!(
            fake.count(&path) - before,
            2,
            "{fault:?}: one failed call, one retry"
        );
        assert_eq!(status_of(&app, &event).await, "done");
    }

    // 429 with Stripe-Should-Retry: false is not retried by the client; the
    // runner reschedules the event (honouring Retry-After) and it ends done.
    let before = fake.count(&path);
    fake.fail_next(
        1,
        &path,
        Fault::RateLimited {
            should_retry: Some(false),
            retry_after: Some(3),
        },
    );
    let event = app
        .deliver_ok(&snapshot_event("payment_intent.succeeded", pi.clone()))
        .await;
    let t0 = app.runner.clock().now_ms();
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.retried, 1);
    assert_eq!(
        fake.count(&path) - before,
        1,
        "Stripe-Should-Retry: false → no retry inside the call"
    );
    let row = app
        .db({
            let e = event.clone();
            move |c| outbox::get(c, &e).unwrap().unwrap()
        })
        .await;
    assert_eq!(row.status, "pending");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("429"),
        "{:?}",
        row.last_error
    );
    assert!(
        row.next_attempt_at.as_i64() >= t0 + 3000,
        "Retry-After is honoured"
    );
    app.runner.clock().advance(Duration::from_secs(10));
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &event).await, "done");

    // A long outage: calls keep failing, the event is retried with backoff
    // and ends done once the fake recovers.
    fake.fail_next(6, &path, Fault::ServerError(503));
    let event = app
        .deliver_ok(&snapshot_event("payment_intent.succeeded", pi.clone()))
        .await;
    for _ in 0..2 {
        app.runner.run_pending().await.unwrap();
        assert_eq!(status_of(&app, &event).await, "pending");
        app.runner.clock().advance(Duration::from_secs(10));
    }
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &event).await, "done");
    app.stop().await;
    fake.stop().await;
}

async fn a_missing_object_is_recorded_gone_and_not_retried(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(access(&app, &s.customer, now_ms()).await.len(), 1);
    fake.remove(&s.subscription);
    let event = app
        .deliver_ok(&snapshot_event(
            "customer.subscription.updated",
            sub.clone(),
        ))
        .await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1, "a 404 is an answer, not a failure");
    assert_eq!(status_of(&app, &event).await, "done");
    let sid = s.subscription.clone();
    let gone: bool = app
        .db(move |c| with_conn!(c, c => subscriptions::table.filter(subscriptions::id.eq(&sid)).select(subscriptions::gone).first(c).unwrap()))
        .await;
    assert!(gone);
    assert!(
        access(&app, &s.customer, now_ms()).await.is_empty(),
        "a subscription Stripe no longer shows grants nothing"
    );
    // An object never seen before: a gone row, event done.
    let event = app
        .deliver_ok(&snapshot_event(
            "invoice.paid",
            json!({"id": "in_never", "object": "invoice"}).clone(),
        ))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &event).await, "done");
    app.stop().await;
    fake.stop().await;
}

async fn an_api_key_of_the_wrong_mode_is_a_permanent_error(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .stripe(&fake.base_url)
            .config(|c| c.endpoints = vec![endpoint(c, "live", Mode::Live, &[SECRET])]),
    )
    .await;
    let body = event_body("evt_live_1", "customer.updated", "cus_live", true);
    assert_eq!(app.deliver(&body).await.status(), 200);
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.dead, 1, "not retried");
    let row = app
        .db(|c| outbox::get(c, "evt_live_1").unwrap().unwrap())
        .await;
    assert_eq!(row.attempts, 1);
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("live-mode event but the API key is a test key"),
        "{:?}",
        row.last_error
    );
    assert_eq!(fake.requests().len(), 0, "no API call with the wrong key");
    app.stop().await;
    fake.stop().await;
}

async fn billing_scenarios_end_to_end(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    // Real workers this time, woken by the intake.
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().stripe(&fake.base_url).config(|c| {
            c.runner.enabled = true;
            c.runner.concurrency = 4;
            c.runner.poll_interval_ms = 50;
        }),
    )
    .await;
    let s = basil();
    let settle = |what: &'static str| {
        let app = &app;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            loop {
                let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
                if rows
                    .iter()
                    .all(|r| r.status == "done" || r.status == "ignored")
                {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: events not done"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Pay: Checkout completes, the subscription starts, the invoice is paid.
    fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    let session = fake.checkout_session(&s);
    let invoice = fake.invoice(&s, "paid");
    app.deliver_ok(&snapshot_event(
        "checkout.session.completed",
        session.clone(),
    ))
    .await;
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    app.deliver_ok(&snapshot_event(
        "invoice.payment_succeeded",
        invoice.clone(),
    ))
    .await;
    settle("pay").await;
    let granted = access(&app, &s.customer, now_ms()).await;
    assert_eq!(granted.len(), 1, "pay → access granted");
    assert_eq!(granted[0].status, "active");

    // Failed renewal: past_due keeps access for the grace period only.
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    fake.update(&s.invoice, |v| v["status"] = json!("open"));
    app.deliver_ok(&snapshot_event(
        "invoice.payment_failed",
        fake.get(&s.invoice).unwrap().clone(),
    ))
    .await;
    app.deliver_ok(&snapshot_event(
        "customer.subscription.updated",
        fake.get(&s.subscription).unwrap().clone(),
    ))
    .await;
    settle("failed renewal").await;
    assert_eq!(
        local_status(&app, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("past_due")
    );
    let now = now_ms();
    let during = access(&app, &s.customer, now).await;
    assert_eq!(
        during.len(),
        1,
        "past_due → still access during the grace period"
    );
    let grace_end = during[0].access_until.expect("grace end");
    assert!(grace_end > now && grace_end <= now + 72 * 3600 * 1000);
    assert!(
        access(&app, &s.customer, grace_end + 1).await.is_empty(),
        "access ends after the grace period"
    );

    // Recovery, then cancel.
    fake.update(&s.subscription, |v| set_subscription_status(v, "active"));
    app.deliver_ok(&snapshot_event(
        "customer.subscription.updated",
        fake.get(&s.subscription).unwrap().clone(),
    ))
    .await;
    settle("recovered").await;
    assert_eq!(
        access(&app, &s.customer, grace_end + 1).await.len(),
        1,
        "active again: no grace clock"
    );
    fake.update(&s.subscription, |v| set_subscription_status(v, "canceled"));
    app.deliver_ok(&snapshot_event(
        "customer.subscription.deleted",
        fake.get(&s.subscription).unwrap().clone(),
    ))
    .await;
    settle("cancel").await;
    assert!(
        access(&app, &s.customer, now_ms()).await.is_empty(),
        "cancel → access revoked"
    );
    app.stop().await;
    fake.stop().await;
}

/// Two instances on one database whose clocks disagree by ten minutes: the
/// order of their fetches comes from the database, not from their clocks.
async fn fetch_order_does_not_follow_the_instances_clocks(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let ahead = stripe_hookd::testing::util::Clock::default();
    ahead.advance(Duration::from_secs(600));
    let options = |clock| AppOptions {
        clock,
        ..AppOptions::default().stripe(&fake.base_url)
    };
    let fast = TestApp::spawn_with(&db, options(ahead.clone())).await;
    let slow =
        TestApp::spawn_with(&db, options(stripe_hookd::testing::util::Clock::default())).await;
    let s = basil();
    let sub = fake.subscription(&s, "active");

    // The instance whose clock is ahead fetches first...
    fast.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    assert_eq!(fast.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        local_status(&slow, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("active")
    );
    // ...the subscription is canceled, and the instance whose clock is
    // behind fetches that: the newer fetch is stored, not dropped.
    fake.update(&s.subscription, |v| set_subscription_status(v, "canceled"));
    let event = slow
        .deliver_ok(&snapshot_event(
            "customer.subscription.deleted",
            sub.clone(),
        ))
        .await;
    assert_eq!(slow.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&slow, &event).await, "done");
    assert_eq!(
        local_status(&slow, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("canceled"),
        "a newer fetch from the instance whose clock is behind was dropped"
    );
    assert!(access(&slow, &s.customer, now_ms()).await.is_empty());

    // And the other way round: a fetch by the instance whose clock is ahead
    // (say, a resync) that started before the next change but is written
    // after it never overwrites the newer state.
    fake.update(&s.subscription, |v| set_subscription_status(v, "active"));
    let config = stripe_hookd::testing::config::from_toml_str(&format!(
        "webhook_secret = \"{SECRET}\"\n[stripe]\napi_key = \"{}\"\napi_base = \"{}\"\nrequests_per_sec = 1000\ntimeout_secs = 1\n",
        crate::fake_stripe::KEY,
        fake.base_url
    ))
    .expect("config");
    let ops = stripe_hookd::testing::app::reconcile_handler(&config)
        .unwrap()
        .unwrap();
    let cx = stripe_hookd::testing::queue::HandlerContext {
        store: fast.store.clone(),
        clock: ahead.clone(),
    };
    let older = ops
        .fetch(
            &cx,
            stripe_hookd::testing::reconcile::Family::Subscription,
            &s.subscription,
            None,
        )
        .await
        .unwrap();
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    let event = slow
        .deliver_ok(&snapshot_event(
            "customer.subscription.updated",
            sub.clone(),
        ))
        .await;
    assert_eq!(slow.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&slow, &event).await, "done");
    ops.write(&fast.store, older, None).await.unwrap();
    assert_eq!(
        local_status(&slow, "subscriptions", &s.subscription)
            .await
            .as_deref(),
        Some("past_due"),
        "an older fetch from the instance whose clock is ahead overwrote a newer one"
    );
    fast.stop().await;
    slow.stop().await;
    fake.stop().await;
}

/// The order of fetches hands out numbers several at a time when fetches
/// start together (`store::fetch_order`): 300 fetches starting at once, on
/// two stores of one database (two instances), get 600 distinct numbers,
/// and a fetch that starts after them all gets a larger one than any.
async fn fetches_that_start_together_get_distinct_places_in_the_order(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url.clone();
    let (one, two) = tokio::task::spawn_blocking(move || {
        let one = open_store(&url);
        one.migrate().unwrap();
        (one, open_store(&url))
    })
    .await
    .unwrap();
    let asks = (0..300).flat_map(|_| [one.next_fetch_seq(), two.next_fetch_seq()]);
    let numbers: Vec<i64> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let distinct: std::collections::HashSet<i64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), 600, "every fetch its own place");
    let later = one.next_fetch_seq().await.unwrap();
    assert!(
        numbers.iter().all(|n| *n < later),
        "{later} comes after every earlier fetch"
    );
}
