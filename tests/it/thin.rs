//! Thin events (`"object":"v2.core.event"`) through the real intake and
//! runner against the fake Stripe: routed by `related_object.type`,
//! fetched as the `context` account, applied once with a snapshot twin,
//! v2 resources and the ping ignored, a generation failure resynced, and
//! catch-up listing `/v2/core/events` page by page. A thin refund update
//! reconciles the refund's charge; the thin entitlements summary (which
//! names no object) reaches its customer's features through its snapshot
//! event.

use std::time::Duration;

use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::catchup::{self, CatchUpOptions};
use stripe_hookd::testing::reconcile::thin;
use stripe_hookd::testing::store::schema::{
    charges, checkout_sessions, customer_features, invoices, subscriptions,
};
use stripe_hookd::testing::store::{outbox, with_conn, DbConnection};
use stripe_hookd::testing::stripe::{ClientOptions, StripeClient};
use stripe_hookd::testing::trigger::Scenario;

use crate::backend_tests;
use crate::fake_stripe::{v2, FakeStripe, KEY};
use crate::harness::*;

backend_tests!(
    a_thin_event_reconciles_the_object_it_names,
    a_snapshot_event_and_its_thin_twin_apply_once,
    v2_resources_and_the_ping_are_answered_and_ignored,
    a_thin_event_is_fetched_as_its_context_account,
    a_resolved_generation_failure_resyncs_the_object,
    catch_up_lists_thin_events_page_by_page,
    a_thin_event_with_a_bad_created_is_refused,
    an_accounts_v2_customer_links_checkout_without_a_customer_fetch,
    a_thin_refund_update_reconciles_the_refunds_charge,
    a_thin_entitlements_summary_reaches_its_customers_features,
);

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, |o| o.config(quick_retries)).await
}

fn scenario() -> Scenario {
    Scenario::new(false, API_VERSION)
}

async fn stored(app: &TestApp, event_id: &str) -> outbox::StoredEvent {
    let id = event_id.to_owned();
    app.db(move |c| outbox::get(c, &id).unwrap().expect("stored"))
        .await
}

async fn status_of(app: &TestApp, event_id: &str) -> String {
    stored(app, event_id).await.status.to_string()
}

/// A local record's `status` (None: no record), for subscriptions and invoices.
async fn local_status(app: &TestApp, table: &'static str, id: &str) -> Option<String> {
    let id = id.to_owned();
    app.db(move |c: &mut DbConnection| {
        with_conn!(c, c => match table {
            "subscriptions" => subscriptions::table.filter(subscriptions::id.eq(&id)).select(subscriptions::status.nullable()).first::<Option<String>>(c).optional().unwrap().flatten(),
            "invoices" => invoices::table.filter(invoices::id.eq(&id)).select(invoices::status).first::<Option<String>>(c).optional().unwrap().flatten(),
            other => panic!("unknown table {other}"),
        })
    })
    .await
}

async fn subscription_status(app: &TestApp, id: &str) -> Option<String> {
    local_status(app, "subscriptions", id).await
}

async fn a_thin_event_reconciles_the_object_it_names(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.customer(&s);
    fake.subscription(&s, "active");
    let thin = fake.thin_event("customer.subscription.updated", &s.subscription, None);
    assert_eq!(thin["object"], "v2.core.event");
    assert!(thin["created"].is_string(), "created is RFC 3339");
    let id = app.deliver_ok(&thin).await;
    let row = stored(&app, &id).await;
    assert_eq!(row.event_type, "v1.customer.subscription.updated");
    assert_eq!(row.object_type.as_deref(), Some("subscription"));
    assert_eq!(row.object_key, s.subscription);
    assert!(
        (row.stripe_created - now()).abs() < 3600,
        "created stored as unix seconds like a snapshot event's: {}",
        row.stripe_created
    );

    // An invoice event under a name no list of ours holds: routed by its
    // related_object.type all the same.
    fake.invoice(&s, "paid");
    let mut full = v2::full_event(
        "v1.invoice.some_future_change",
        Some(("invoice", &s.invoice)),
        None,
    );
    full["livemode"] = json!(false);
    let odd = fake.push_thin_event(full);
    let odd_id = app.deliver_ok(&odd).await;

    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2, "{tally:?}");
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(status_of(&app, &odd_id).await, "done");
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("active")
    );
    let invoice_status = local_status(&app, "invoices", &s.invoice).await;
    assert_eq!(invoice_status.as_deref(), Some("paid"));
    assert_eq!(
        fake.count(&format!("/v1/subscriptions/{}", s.subscription)),
        1
    );
    // The thin event's own URL is what was fetched, at the pinned version.
    let seen = fake.requests();
    let fetch = seen
        .iter()
        .find(|r| r.path == thin["related_object"]["url"].as_str().unwrap())
        .expect("the related object's URL was fetched");
    assert_eq!(fetch.version.as_deref(), Some(API_VERSION));
    app.stop().await;
    fake.stop().await;
}

async fn a_snapshot_event_and_its_thin_twin_apply_once(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    // Waiting together: one group, one fetch, one write, both done.
    let snapshot = snapshot_event("customer.subscription.updated", sub.clone());
    let twin = fake.thin_twin(&snapshot);
    let full = fake
        .thin_events()
        .into_iter()
        .find(|e| e["id"] == twin["id"])
        .unwrap();
    assert_eq!(full["snapshot_event"], snapshot["id"]);
    let snapshot_id = app.deliver_ok(&snapshot).await;
    let twin_id = app.deliver_ok(&twin).await;
    assert_eq!(
        stored(&app, &snapshot_id).await.object_key,
        stored(&app, &twin_id).await.object_key,
        "both styles key the same object"
    );
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2, "{tally:?}");
    assert_eq!(
        fake.count(&format!("/v1/subscriptions/{}", s.subscription)),
        1,
        "one fetch (and one write) serves the snapshot event and its thin twin"
    );
    assert_eq!(status_of(&app, &snapshot_id).await, "done");
    assert_eq!(status_of(&app, &twin_id).await, "done");

    // Processed apart (the twin arrives after the change was applied): the
    // twin's fetch reads the same current object — no change, no error.
    fake.update(&s.subscription, |o| o["status"] = json!("past_due"));
    let snapshot = snapshot_event(
        "customer.subscription.updated",
        fake.get(&s.subscription).unwrap(),
    );
    let twin = fake.thin_twin(&snapshot);
    app.deliver_ok(&snapshot).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("past_due")
    );
    let twin_id = app.deliver_ok(&twin).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1);
    assert_eq!(status_of(&app, &twin_id).await, "done");
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("past_due")
    );
    app.stop().await;
    fake.stop().await;
}

async fn v2_resources_and_the_ping_are_answered_and_ignored(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let ping = fake.push_thin_event(v2::full_event(
        "v2.core.event_destination.ping",
        Some(("v2.core.event_destination", "ed_test_1")),
        None,
    ));
    let res = app.deliver(&ping.to_string()).await;
    assert_eq!(res.status(), 200);
    let account = fake.push_thin_event(v2::full_event(
        "v2.core.account.updated",
        Some(("v2.core.account", "acct_1")),
        None,
    ));
    let account_id = app.deliver_ok(&account).await;
    // A v1 resource we do not reconcile.
    let product = fake.push_thin_event(v2::full_event(
        "v1.product.updated",
        Some(("product", "prod_1")),
        None,
    ));
    let product_id = app.deliver_ok(&product).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.ignored, 3, "{tally:?}");
    assert_eq!(
        status_of(&app, ping["id"].as_str().unwrap()).await,
        "ignored"
    );
    assert_eq!(status_of(&app, &account_id).await, "ignored");
    assert_eq!(status_of(&app, &product_id).await, "ignored");
    assert!(
        fake.requests().is_empty(),
        "nothing fetched: {:?}",
        fake.requests()
    );
    app.stop().await;
    fake.stop().await;
}

async fn a_thin_event_is_fetched_as_its_context_account(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    let sub = fake.subscription(&s, "active");
    fake.remove(&s.subscription);
    fake.put_in("acct_connected", sub);
    let thin = fake.thin_event(
        "customer.subscription.created",
        &s.subscription,
        Some("acct_connected"),
    );
    assert_eq!(thin["context"], "acct_connected");
    let id = app.deliver_ok(&thin).await;
    assert_eq!(
        stored(&app, &id).await.account.as_deref(),
        Some("acct_connected")
    );
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("active"),
        "found only as the connected account"
    );
    let fetches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/subscriptions/"))
        .collect();
    assert!(!fetches.is_empty());
    assert!(fetches
        .iter()
        .all(|r| r.account.as_deref() == Some("acct_connected")));
    app.stop().await;
    fake.stop().await;
}

async fn a_resolved_generation_failure_resyncs_the_object(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.customer(&s);
    fake.subscription(&s, "active");
    let mut full = v2::full_event(
        "v2.core.health.event_generation_failure.resolved",
        None,
        None,
    );
    full["data"] = json!({
        "alert_id": "alert_1",
        "grouping_key": "gk_1",
        "summary": "Events could not be generated",
        "resolved_at": v2::rfc3339(now()),
        "impact": {
            "context": null,
            "event_type": "customer.subscription.updated",
            "related_object": {
                "id": s.subscription, "type": "subscription",
                "url": format!("/v1/subscriptions/{}", s.subscription)
            }
        }
    });
    let notification = fake.push_thin_event(full);
    assert!(notification.get("data").is_none());
    let id = app.deliver_ok(&notification).await;
    assert_eq!(
        stored(&app, &id).await.object_key,
        id,
        "keyed by its own id"
    );
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(
        fake.count(&format!("/v2/core/events/{id}")),
        1,
        "the full event was read"
    );
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("active"),
        "the named object was resynced"
    );
    app.stop().await;
    fake.stop().await;
}

async fn catch_up_lists_thin_events_page_by_page(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.customer(&s);
    let mut ids = Vec::new();
    for _ in 0..130 {
        let thin = fake.thin_event("customer.updated", &s.customer, None);
        ids.push(thin["id"].as_str().unwrap().to_owned());
    }
    // Older than Stripe keeps events: not asked for.
    let mut old = v2::full_event("v1.customer.updated", Some(("customer", &s.customer)), None);
    old["created"] = json!(v2::rfc3339(now() - 40 * 24 * 3600));
    let old_id = fake.push_thin_event(old)["id"].as_str().unwrap().to_owned();
    // One of them was delivered already.
    let delivered = fake.thin_events()[5].clone();
    app.deliver_ok(&v2::notification(&delivered)).await;

    let client = StripeClient::new(ClientOptions {
        api_base: fake.base_url().to_owned(),
        api_key: SecretString::from(KEY),
        api_version: API_VERSION.to_owned(),
        timeout: Duration::from_secs(30),
        max_retries: 2,
        requests_per_sec: 1000,
    })
    .unwrap();
    let options = CatchUpOptions {
        since: 0,
        only_failed: true,
        dry_run: false,
        thin: true,
    };
    let report = catchup::run(&client, &app.store, &options).await.unwrap();
    assert_eq!(report.listed, 130, "{report:?}");
    assert_eq!(report.already_stored, 1);
    assert_eq!(report.missing.len(), 129);
    assert!(!report.missing.contains(&old_id));
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v2/core/events")
        .collect();
    assert_eq!(pages.len(), 2, "two pages of at most 100: {pages:?}");
    assert!(pages[0].query.contains("created"), "{:?}", pages[0].query);
    assert!(pages[1].query.contains("page="), "{:?}", pages[1].query);
    let count = app.count().await;
    assert_eq!(count, 130);
    let row = stored(&app, &ids[0]).await;
    assert_eq!(row.endpoint, catchup::ENDPOINT);
    assert_eq!(row.object_key, s.customer);
    // Once more: nothing is missing.
    let report = catchup::run(&client, &app.store, &options).await.unwrap();
    assert!(report.missing.is_empty(), "{report:?}");
    // They are processed like delivered ones (one fetch for the customer).
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &ids[0]).await, "done");
    app.stop().await;
    fake.stop().await;
}

async fn a_thin_event_with_a_bad_created_is_refused(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let mut bad: Value = v2::notification(&v2::full_event(
        "v1.customer.updated",
        Some(("customer", "cus_1")),
        None,
    ));
    bad["created"] = json!(1_700_000_000);
    let res = app.deliver(&bad.to_string()).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "not_an_event");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("RFC 3339"),
        "{body}"
    );
    assert_eq!(app.count().await, 0);
    app.stop().await;
    fake.stop().await;
}

/// Since 2025-12-15.clover a Checkout Session of an Accounts v2 customer
/// has `customer: null` and `customer_account`: the session links to that
/// account, and no `/v1/customers/acct_…` fetch is made for it (it would be
/// recorded as a gone customer).
async fn an_accounts_v2_customer_links_checkout_without_a_customer_fetch(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.subscription(&s, "active");
    let mut session = fake.checkout_session(&s);
    session["customer"] = Value::Null;
    session["customer_account"] = json!("acct_v2customer");
    fake.put(session);
    let thin = fake.thin_event("checkout.session.completed", &s.checkout_session, None);
    assert_eq!(thin["related_object"]["type"], "checkout.session");
    let id = app.deliver_ok(&thin).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(fake.count("/v1/customers/"), 0, "{:?}", fake.requests());
    let session_id = s.checkout_session.clone();
    let customer = app
        .db(move |c: &mut DbConnection| {
            with_conn!(c, c => checkout_sessions::table
                .filter(checkout_sessions::id.eq(&session_id))
                .select(checkout_sessions::customer_id)
                .first::<Option<String>>(c)
                .unwrap())
        })
        .await;
    assert_eq!(customer.as_deref(), Some("acct_v2customer"));
    assert_eq!(
        subscription_status(&app, &s.subscription).await.as_deref(),
        Some("active"),
        "the subscription is still fetched"
    );
    app.stop().await;
    fake.stop().await;
}

/// A local charge's (amount_refunded, refunded, account), if stored.
async fn local_charge(app: &TestApp, id: &str) -> Option<(Option<i64>, bool, Option<String>)> {
    let id = id.to_owned();
    app.db(move |c: &mut DbConnection| {
        with_conn!(c, c => charges::table
            .filter(charges::id.eq(&id))
            .select((charges::amount_refunded, charges::refunded, charges::account))
            .first::<(Option<i64>, bool, Option<String>)>(c)
            .optional()
            .unwrap())
    })
    .await
}

/// `v1.charge.refund.updated` names a refund (`related_object.type:
/// refund`): the refund is fetched as the `context` account for its
/// `charge`, and that charge is reconciled. With its snapshot twin (whose
/// refund carries the charge) waiting too, the refund is not fetched at
/// all, and the charge once.
async fn a_thin_refund_update_reconciles_the_refunds_charge(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.charge(&s, "succeeded");
    let refund = fake.refund(&s.charge, 500);
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let thin = fake.thin_event("charge.refund.updated", &refund_id, None);
    assert_eq!(thin["related_object"]["type"], "refund");
    assert_eq!(
        thin["related_object"]["url"],
        format!("/v1/refunds/{refund_id}")
    );
    let id = app.deliver_ok(&thin).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1, "{tally:?}");
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(
        local_charge(&app, &s.charge).await,
        Some((Some(500), false, None)),
        "the refund's charge, as Stripe shows it now"
    );
    assert_eq!(fake.count(&format!("/v1/refunds/{refund_id}")), 1);
    assert_eq!(fake.count(&format!("/v1/charges/{}", s.charge)), 1);

    // The snapshot event and its thin twin together: the snapshot's refund
    // names the charge, so one charge fetch serves both and the refund is
    // not fetched.
    let second = fake.refund(&s.charge, 1500);
    let snapshot = snapshot_event("charge.refund.updated", second.clone());
    let twin = fake.thin_twin(&snapshot);
    let snapshot_id = app.deliver_ok(&snapshot).await;
    let twin_id = app.deliver_ok(&twin).await;
    let (refunds, charges_before) = (fake.count("/v1/refunds/"), fake.count("/v1/charges/"));
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2, "{tally:?}");
    assert_eq!(status_of(&app, &snapshot_id).await, "done");
    assert_eq!(status_of(&app, &twin_id).await, "done");
    assert_eq!(fake.count("/v1/refunds/"), refunds, "no refund fetch");
    assert_eq!(
        fake.count("/v1/charges/"),
        charges_before + 1,
        "one charge fetch"
    );
    assert_eq!(
        local_charge(&app, &s.charge).await,
        Some((Some(2000), true, None))
    );

    // The newer refund events (`refund.created/updated/failed`) too, in
    // either style: routed by their object, the refund.
    let s5 = scenario();
    fake.charge(&s5, "succeeded");
    let third = fake.refund(&s5.charge, 100);
    let snapshot_id = app
        .deliver_ok(&snapshot_event("refund.created", third.clone()))
        .await;
    let thin_id = app
        .deliver_ok(&fake.thin_event("refund.updated", third["id"].as_str().unwrap(), None))
        .await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2, "{tally:?}");
    assert_eq!(status_of(&app, &snapshot_id).await, "done");
    assert_eq!(status_of(&app, &thin_id).await, "done");
    assert_eq!(
        local_charge(&app, &s5.charge).await,
        Some((Some(100), false, None))
    );

    // A connected account's refund: both fetches carry its Stripe-Account.
    let s2 = scenario();
    let ch = fake.charge(&s2, "succeeded");
    fake.remove(&s2.charge);
    fake.put_in("acct_refunds", ch);
    let refund = fake.refund(&s2.charge, 700);
    let refund_id = refund["id"].as_str().unwrap().to_owned();
    let thin = fake.thin_event("charge.refund.updated", &refund_id, Some("acct_refunds"));
    let id = app.deliver_ok(&thin).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(
        local_charge(&app, &s2.charge).await,
        Some((Some(700), false, Some("acct_refunds".to_owned())))
    );
    let fetches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.path == format!("/v1/refunds/{refund_id}")
                || r.path == format!("/v1/charges/{}", s2.charge)
        })
        .collect();
    assert_eq!(fetches.len(), 2, "{fetches:?}");
    assert!(fetches
        .iter()
        .all(|r| r.account.as_deref() == Some("acct_refunds")));

    // Stripe could not generate a refund's event, and says so when it is
    // resolved: the refund's charge is resynced.
    let s3 = scenario();
    fake.charge(&s3, "succeeded");
    let refund = fake.refund(&s3.charge, 300);
    let mut full = v2::full_event(
        "v2.core.health.event_generation_failure.resolved",
        None,
        None,
    );
    full["data"] = json!({
        "impact": {
            "context": null,
            "event_type": "charge.refund.updated",
            "related_object": {"id": refund["id"], "type": "refund", "url": format!("/v1/refunds/{}", refund["id"].as_str().unwrap())}
        }
    });
    let id = app.deliver_ok(&fake.push_thin_event(full)).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(
        local_charge(&app, &s3.charge).await,
        Some((Some(300), false, None)),
        "the refund's charge was resynced"
    );

    // A refund Stripe does not know names no charge: done, nothing written.
    let unknown = fake.push_thin_event(v2::full_event(
        "v1.charge.refund.updated",
        Some(("refund", "re_unknown_to_stripe")),
        None,
    ));
    let charges_before = fake.count("/v1/charges/");
    let id = app.deliver_ok(&unknown).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(fake.count("/v1/refunds/re_unknown_to_stripe"), 1);
    assert_eq!(fake.count("/v1/charges/"), charges_before);
    app.stop().await;
    fake.stop().await;
}

const SUMMARY: &str = "entitlements.active_entitlement_summary.updated";

/// The summary's object (no id of its own: it names the customer).
fn summary(customer: &str) -> Value {
    json!({"object": "entitlements.active_entitlement_summary", "customer": customer,
           "entitlements": {"object": "list", "data": [], "has_more": false,
                            "url": "/v1/customer/cus/entitlements"},
           "livemode": false})
}

/// The lookup keys of a customer's features, as stored.
async fn features(app: &TestApp, customer: &str) -> Vec<String> {
    let customer = customer.to_owned();
    let mut keys = app
        .db(move |c: &mut DbConnection| {
            with_conn!(c, c => customer_features::table
                .filter(customer_features::customer_id.eq(&customer))
                .select(customer_features::lookup_key)
                .load::<String>(c)
                .unwrap())
        })
        .await;
    keys.sort();
    keys
}

/// Stripe's thin `v1.entitlements.active_entitlement_summary.updated` has
/// no `related_object`; its full event names its v1 snapshot event
/// (`snapshot_event`, on every thin event of a v1 resource since
/// `2026-09-30.endive`), whose summary names the customer: the customer's
/// features are re-fetched, as the `context` account. A full event (as
/// catch-up lists it) is not fetched again; a summary whose snapshot event
/// cannot be found ends `done` with nothing fetched.
async fn a_thin_entitlements_summary_reaches_its_customers_features(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = scenario();
    fake.customer(&s);
    fake.set_active_entitlements(&s.customer, None, &[("pro", "feat_pro")]);
    let snapshot = snapshot_event(SUMMARY, summary(&s.customer));
    fake.push_event(snapshot.clone());
    let thin = fake.thin_twin(&snapshot);
    assert!(thin.get("related_object").is_none(), "{thin}");
    assert!(
        thin.get("snapshot_event").is_none(),
        "the notification does not carry it"
    );
    let id = app.deliver_ok(&thin).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1, "{tally:?}");
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(features(&app, &s.customer).await, ["pro"]);
    assert_eq!(fake.count(&format!("/v2/core/events/{id}")), 1);
    assert_eq!(
        fake.count(&format!("/v1/events/{}", snapshot["id"].as_str().unwrap())),
        1
    );

    // A connected account's summary: every fetch carries its account.
    let s2 = scenario();
    let customer = fake.customer(&s2);
    fake.remove(&s2.customer);
    fake.put_in("acct_summary", customer);
    fake.set_active_entitlements(&s2.customer, Some("acct_summary"), &[("sso", "feat_sso")]);
    let mut snapshot = snapshot_event(SUMMARY, summary(&s2.customer));
    snapshot["account"] = json!("acct_summary");
    fake.push_account_event("acct_summary", snapshot.clone());
    let thin = fake.thin_twin(&snapshot);
    assert_eq!(thin["context"], "acct_summary");
    let before = fake.requests().len();
    let id = app.deliver_ok(&thin).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(features(&app, &s2.customer).await, ["sso"]);
    let fetches: Vec<_> = fake.requests().into_iter().skip(before).collect();
    assert!(fetches.len() >= 3, "{fetches:?}");
    assert!(
        fetches
            .iter()
            .all(|r| r.account.as_deref() == Some("acct_summary")),
        "{fetches:?}"
    );

    // The full event (what catch-up lists) names its snapshot event itself:
    // no fetch of the v2 event.
    let s3 = scenario();
    fake.customer(&s3);
    fake.set_active_entitlements(&s3.customer, None, &[("export", "feat_export")]);
    let snapshot = snapshot_event(SUMMARY, summary(&s3.customer));
    fake.push_event(snapshot.clone());
    let twin = fake.thin_twin(&snapshot);
    let full = fake
        .thin_events()
        .into_iter()
        .find(|e| e["id"] == twin["id"])
        .unwrap();
    assert_eq!(full["snapshot_event"], snapshot["id"]);
    let id = app.deliver_ok(&full).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &id).await, "done");
    assert_eq!(features(&app, &s3.customer).await, ["export"]);
    assert_eq!(fake.count(&format!("/v2/core/events/{id}")), 0);

    // No snapshot event named, or one Stripe no longer keeps: the customer
    // cannot be told; done, no entitlements fetched.
    let lists = fake.count("/v1/entitlements/");
    let none = fake.push_thin_event(v2::full_event(thin::SUMMARY_THIN, None, None));
    let mut gone = v2::full_event(thin::SUMMARY_THIN, None, None);
    gone["snapshot_event"] = json!("evt_expired_long_ago");
    let gone = fake.push_thin_event(gone);
    let none_id = app.deliver_ok(&none).await;
    let gone_id = app.deliver_ok(&gone).await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 2, "{tally:?}");
    assert_eq!(status_of(&app, &none_id).await, "done");
    assert_eq!(status_of(&app, &gone_id).await, "done");
    assert_eq!(fake.count("/v1/events/evt_expired_long_ago"), 1);
    assert_eq!(fake.count("/v1/entitlements/"), lists);
    app.stop().await;
    fake.stop().await;
}
