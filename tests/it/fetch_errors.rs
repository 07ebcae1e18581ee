//! What a failed re-fetch means: only Stripe's `resource_missing` for the
//! object asked for is "gone"; any other 404 (a wrong API base, a proxy) and
//! a 409 are errors that are retried, and never cost a customer access.
//! Connect records are re-fetched with their own `Stripe-Account`.

use std::time::Duration;

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::schema::subscriptions;
use stripe_hookd::testing::store::{now_ms, outbox, with_conn};
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::{post, run_job};
use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe, Fault};
use crate::harness::*;

backend_tests!(
    a_404_that_is_not_resource_missing_keeps_access_and_is_retried,
    a_mistyped_api_base_never_revokes_access,
    connected_account_records_are_refetched_with_their_account,
    a_conflict_that_outlasts_the_client_retries_is_retried,
);

fn options(base: &str) -> AppOptions {
    AppOptions::default().admin().stripe(base).config(|c| {
        c.runner.backoff_base_ms = 1000;
        c.runner.backoff_max_secs = 10;
    })
}

fn basil() -> Scenario {
    Scenario::new(false, API_VERSION)
}

/// Delivers `event_type` with `object` as its snapshot, from `account`.
async fn deliver(app: &TestApp, event_type: &str, object: &Value, account: Option<&str>) -> String {
    let mut event = snapshot_event(event_type, object.clone());
    if let Some(account) = account {
        event["account"] = json!(account);
    }
    app.deliver_ok(&event).await
}

async fn event(app: &TestApp, id: &str) -> outbox::StoredEvent {
    let id = id.to_owned();
    app.db(move |c| outbox::get(c, &id).unwrap().unwrap()).await
}

async fn access(app: &TestApp, customer: &str) -> usize {
    let customer = customer.to_owned();
    app.db(move |c| entitlements::for_customer(c, &customer, now_ms()).unwrap())
        .await
        .len()
}

/// (status, gone, account) of a local subscription.
async fn sub_row(app: &TestApp, id: &str) -> (String, bool, Option<String>) {
    let id = id.to_owned();
    app.db(move |c| {
        with_conn!(c, c => subscriptions::table
            .filter(subscriptions::id.eq(&id))
            .select((subscriptions::status, subscriptions::gone, subscriptions::account))
            .first(c)
            .unwrap())
    })
    .await
}

async fn a_404_that_is_not_resource_missing_keeps_access_and_is_retried(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(&db, options(&fake.base_url)).await;
    let s = basil();
    let sub = fake.subscription(&s, "active");
    deliver(&app, "customer.subscription.created", &sub, None).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(access(&app, &s.customer).await, 1);

    // Stripe's answer for a path it does not know, then a proxy's HTML 404.
    let path = format!("/v1/subscriptions/{}", s.subscription);
    fake.fail_next(1, &path, Fault::UnknownPath);
    fake.fail_next(1, &path, Fault::ProxyNotFound);
    let id = deliver(&app, "customer.subscription.updated", &sub, None).await;
    for (attempt, what) in [(1, "Unrecognized request URL"), (2, "Not Found")] {
        let tally = app.runner.run_pending().await.unwrap();
        assert_eq!(
            (tally.done, tally.retried, tally.dead),
            (0, 1, 0),
            "attempt {attempt}: retried, not done, not dead"
        );
        let row = event(&app, &id).await;
        assert_eq!(row.status, "pending");
        assert_eq!(row.attempts, attempt);
        let error = row.last_error.unwrap_or_default();
        assert!(
            error.contains("404") && error.contains(what) && error.contains("STRIPE_API_BASE"),
            "the error is visible: {error}"
        );
        assert_eq!(
            sub_row(&app, &s.subscription).await,
            ("active".to_owned(), false, None),
            "not marked gone"
        );
        assert_eq!(access(&app, &s.customer).await, 1, "access kept");
        app.runner.clock().advance(Duration::from_secs(20));
    }
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        event(&app, &id).await.status,
        "done",
        "done once Stripe answers"
    );

    // A real resource_missing for the subscription itself still means gone.
    fake.remove(&s.subscription);
    let id = deliver(&app, "customer.subscription.updated", &sub, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(event(&app, &id).await.status, "done");
    assert!(sub_row(&app, &s.subscription).await.1, "gone");
    assert_eq!(access(&app, &s.customer).await, 0, "revoked");
    app.stop().await;
    fake.stop().await;
}

async fn a_mistyped_api_base_never_revokes_access(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = basil();
    let sub = fake.subscription(&s, "active");
    let app = TestApp::spawn_with(&db, options(&fake.base_url)).await;
    deliver(&app, "customer.subscription.created", &sub, None).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(access(&app, &s.customer).await, 1);
    app.stop().await;

    // The operator sets STRIPE_API_BASE to …/v1: every call goes to /v1/v1/….
    let app = TestApp::spawn_with(&db, options(&format!("{}/v1", fake.base_url))).await;
    let (code, body) = post(&app, &format!("/v1/resync/{}", s.subscription), json!({})).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("STRIPE_API_BASE"),
        "{body}"
    );
    assert!(fake.count("/v1/v1/subscriptions/") >= 1);
    assert_eq!(
        sub_row(&app, &s.subscription).await,
        ("active".to_owned(), false, None),
        "resync did not mark it gone"
    );
    assert_eq!(access(&app, &s.customer).await, 1, "resync kept access");

    let id = deliver(&app, "customer.subscription.updated", &sub, None).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!((tally.done, tally.retried, tally.dead), (0, 1, 0));
    assert_eq!(event(&app, &id).await.status, "pending");
    assert_eq!(access(&app, &s.customer).await, 1, "processing kept access");
    app.stop().await;
    fake.stop().await;
}

async fn connected_account_records_are_refetched_with_their_account(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(&db, options(&fake.base_url)).await;
    let s = basil();
    let mut sub = s
        .object("customer.subscription.created")
        .expect("subscription");
    set_subscription_status(&mut sub, "active");
    let sub = fake.put_in("acct_connected", sub);
    let event_id = deliver(
        &app,
        "customer.subscription.created",
        &sub,
        Some("acct_connected"),
    )
    .await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        sub_row(&app, &s.subscription).await,
        (
            "active".to_owned(),
            false,
            Some("acct_connected".to_owned())
        ),
        "the record keeps its account"
    );
    assert_eq!(access(&app, &s.customer).await, 1);

    let path = format!("/v1/subscriptions/{}", s.subscription);
    let accounts_seen = |fake: &FakeStripe, path: &str| -> Vec<Option<String>> {
        fake.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.account)
            .collect()
    };

    // resync: fetched as the connected account; access kept.
    let (code, body) = post(&app, &format!("/v1/resync/{}", s.subscription), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        accounts_seen(&fake, &path)
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("acct_connected")
    );
    assert_eq!(
        sub_row(&app, &s.subscription).await,
        (
            "active".to_owned(),
            false,
            Some("acct_connected".to_owned())
        ),
        "resync did not mark it gone"
    );
    assert_eq!(access(&app, &s.customer).await, 1, "resync kept access");

    // replay: the event's account again.
    let (code, body) = post(&app, &format!("/v1/events/{event_id}/replay"), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        accounts_seen(&fake, &path)
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("acct_connected")
    );

    // sweep: the connected account's list, with its header; drift fixed.
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    run_job(&app, "/v1/reconcile", json!({})).await;
    assert!(
        accounts_seen(&fake, "/v1/subscriptions")
            .iter()
            .any(|a| a.as_deref() == Some("acct_connected")),
        "the sweep listed the connected account's subscriptions"
    );
    assert_eq!(
        sub_row(&app, &s.subscription).await,
        (
            "past_due".to_owned(),
            false,
            Some("acct_connected".to_owned())
        ),
        "the sweep fixed the connected account's subscription"
    );
    assert_eq!(
        access(&app, &s.customer).await,
        1,
        "past_due: still in grace"
    );
    app.stop().await;
    fake.stop().await;
}

async fn a_conflict_that_outlasts_the_client_retries_is_retried(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(&db, options(&fake.base_url)).await;
    let s = basil();
    let sub = fake.subscription(&s, "active");
    let path = format!("/v1/subscriptions/{}", s.subscription);
    // The client tries 1 + max_retries (2) times; all three answer 409.
    fake.fail_next(3, &path, Fault::Conflict);
    let id = deliver(&app, "customer.subscription.created", &sub, None).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(
        (tally.done, tally.retried, tally.dead),
        (0, 1, 0),
        "a 409 is transient: retried, not dead"
    );
    assert_eq!(fake.count(&path), 3);
    let row = event(&app, &id).await;
    assert_eq!(row.status, "pending");
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("409"),
        "{:?}",
        row.last_error
    );
    app.runner.clock().advance(Duration::from_secs(20));
    app.runner.run_pending().await.unwrap();
    assert_eq!(event(&app, &id).await.status, "done");
    assert_eq!(access(&app, &s.customer).await, 1);
    app.stop().await;
    fake.stop().await;
}
