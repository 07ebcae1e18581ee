//! The access rule in Stripe's states (docs/entitlements.md, "The rule"),
//! end to end: the fake Stripe's subscription, reconciled through the real
//! intake, read through the Rust readers, the `entitlements_now` view and
//! `GET /v1/access`, which must agree.

use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::now_ms;
use stripe_hookd::testing::trigger::Scenario;

use crate::access_api::{api_rows, ask, bought, setup, view_rows, ACCESS_TOKEN};
use crate::backend_tests;
use crate::fake_stripe::FakeStripe as Fake;
use crate::fake_stripe::FakeStripe;
use crate::harness::*;

backend_tests!(
    a_cancel_at_bounds_access_while_the_status_holds,
    a_trial_without_a_payment_method_ends_at_trial_end,
    past_due_found_late_gets_no_new_grace,
    a_failed_upgrade_keeps_the_period_paid_for,
    test_access_is_not_answered_once_the_key_is_live,
    a_licensed_item_of_quantity_zero_grants_nothing,
    one_unreachable_connected_account_does_not_stop_the_catch_up,
    a_deleted_customer_fetched_with_a_live_key_is_live,
    every_item_grants_beyond_the_first_page_stripe_embeds,
    past_due_found_by_the_sweep_gets_no_new_grace,
);

/// Changes the subscription in the fake and delivers its `updated` event.
async fn change(fake: &FakeStripe, app: &TestApp, s: &Scenario, f: impl FnOnce(&mut Value)) {
    fake.update(&s.subscription, f);
    let sub = fake.get(&s.subscription).unwrap();
    app.deliver_ok(&snapshot_event("customer.subscription.updated", sub))
        .await;
    app.runner.run_pending().await.unwrap();
}

/// The customer's access by the three readers, which must agree: the
/// `GET /v1/access` body.
async fn access_of(app: &TestApp, s: &Scenario) -> Value {
    let (code, body) = ask(app, &format!("customer={}", s.customer), Some(ACCESS_TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let view = view_rows(app, "customer_id", &s.customer).await;
    assert_eq!(api_rows(&body), view, "the API and the view: {body}");
    let customer = s.customer.clone();
    let rust = app
        .db(move |c| entitlements::for_customer(c, &customer, now_ms()).unwrap())
        .await;
    assert_eq!(
        rust.len(),
        view.len(),
        "the Rust reader and the view: {rust:?}"
    );
    body
}

/// `cancel_at` passed while Stripe still says `active` (its
/// `customer.subscription.deleted` is late or lost): no access. A future
/// `cancel_at` before the period end is the `access_until` shown.
async fn a_cancel_at_bounds_access_while_the_status_holds(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "active").await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], true, "{body}");
    let period_end = body["entitlements"][0]["access_until"].as_i64().unwrap();

    let cancel_at = now() + 3600;
    change(&fake, &app, &s, |v| v["cancel_at"] = json!(cancel_at)).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], true, "{body}");
    assert_eq!(
        body["entitlements"][0]["access_until"],
        cancel_at * 1000,
        "min(period end {period_end}, cancel_at): {body}"
    );

    change(&fake, &app, &s, |v| v["cancel_at"] = json!(now() - 60)).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], false, "cancel_at passed: {body}");

    // Stripe lifts the cancellation: access again, to the period end.
    change(&fake, &app, &s, |v| v["cancel_at"] = Value::Null).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], true, "{body}");
    assert_eq!(
        body["entitlements"][0]["access_until"], period_end,
        "{body}"
    );
    app.stop().await;
    fake.stop().await;
}

/// A trial that Stripe ends without a payment method
/// (`trial_settings.end_behavior.missing_payment_method = cancel`), its
/// `trial_end` passed, still `trialing` (the event is late): no access.
/// With a payment method on the subscription or the customer, or with
/// `create_invoice` (Stripe bills it: the invoice's fate decides), access
/// holds while the status does.
async fn a_trial_without_a_payment_method_ends_at_trial_end(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "trialing").await;
    let trial = |end: i64, behavior: &'static str| {
        move |v: &mut Value| {
            v["trial_start"] = json!(now() - 14 * 86400);
            v["trial_end"] = json!(end);
            v["trial_settings"] = json!({"end_behavior": {"missing_payment_method": behavior}});
            v["default_payment_method"] = Value::Null;
            v["default_source"] = Value::Null;
        }
    };
    // Before the trial's end: access, until it.
    let end = now() + 3600;
    change(&fake, &app, &s, trial(end, "cancel")).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], true, "{body}");
    assert_eq!(
        body["entitlements"][0]["access_until"],
        end * 1000,
        "{body}"
    );
    // Passed: none.
    change(&fake, &app, &s, trial(now() - 60, "cancel")).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["access"], false, "trial ended, nothing to pay: {body}");
    // `pause` ends it too.
    change(&fake, &app, &s, trial(now() - 60, "pause")).await;
    assert_eq!(access_of(&app, &s).await["access"], false);
    // `create_invoice`: Stripe bills it, the status says what follows.
    change(&fake, &app, &s, trial(now() - 60, "create_invoice")).await;
    assert_eq!(access_of(&app, &s).await["access"], true);
    // A payment method of the subscription's own.
    change(&fake, &app, &s, |v| {
        trial(now() - 60, "cancel")(v);
        v["default_payment_method"] = json!("pm_card_visa");
    })
    .await;
    assert_eq!(access_of(&app, &s).await["access"], true);
    // The customer's default (stored before the subscription is written).
    fake.update(&s.customer, |c| {
        c["invoice_settings"]["default_payment_method"] = json!("pm_card_visa");
    });
    app.deliver_ok(&snapshot_event(
        "customer.updated",
        fake.get(&s.customer).unwrap(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    change(&fake, &app, &s, trial(now() - 60, "cancel")).await;
    assert_eq!(
        access_of(&app, &s).await["access"],
        true,
        "the customer's payment method"
    );
    app.stop().await;
    fake.stop().await;
}

/// The subscription turns `past_due` on its latest invoice, unpaid (`open`),
/// billed `billed_ago` seconds ago for `reason`.
async fn fails(fake: &Fake, app: &TestApp, s: &Scenario, billed_ago: i64, reason: &str) {
    fake.invoice(s, "open");
    let billed = now() - billed_ago;
    fake.update(&s.invoice, |i| {
        i["billing_reason"] = json!(reason);
        i["created"] = json!(billed - 3600);
        i["status_transitions"]["finalized_at"] = json!(billed);
    });
    change(fake, app, s, |v| {
        v["status"] = json!("past_due");
        v["latest_invoice"] = json!(s.invoice);
    })
    .await;
}

/// A subscription first seen `past_due` long after Stripe billed the
/// invoice it failed (a back-fill, a daemon down for days) gets no new
/// grace: the grace runs from the invoice's finalisation.
async fn past_due_found_late_gets_no_new_grace(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let late = bought(&fake, &app, "active").await;
    fails(&fake, &app, &late, 10 * 86400, "subscription_cycle").await;
    let body = access_of(&app, &late).await;
    assert_eq!(
        body["access"], false,
        "the 72 h grace ended a week ago: {body}"
    );

    let fresh = bought(&fake, &app, "active").await;
    fails(&fake, &app, &fresh, 3600, "subscription_cycle").await;
    let body = access_of(&app, &fresh).await;
    assert_eq!(body["access"], true, "{body}");
    let billed = fake.get(&fresh.invoice).unwrap()["status_transitions"]["finalized_at"]
        .as_i64()
        .unwrap();
    assert_eq!(
        body["entitlements"][0]["access_until"],
        billed * 1000 + 72 * 3_600_000,
        "the grace runs from the invoice's finalisation: {body}"
    );
    app.stop().await;
    fake.stop().await;
}

/// `past_due` because an upgrade's proration invoice failed
/// (`subscription_update`) keeps the period already paid for, even with no
/// grace; a failed renewal (`subscription_cycle`) has the grace alone.
async fn a_failed_upgrade_keeps_the_period_paid_for(backend: Backend) {
    let (_db, fake, app) = with_fake_stripe(backend, |o| {
        o.admin().config(|c| {
            c.access_token = Some(ACCESS_TOKEN.into());
            c.entitlements.past_due_grace_hours = 0;
        })
    })
    .await;
    let upgraded = bought(&fake, &app, "active").await;
    let period_end = access_of(&app, &upgraded).await["entitlements"][0]["access_until"]
        .as_i64()
        .unwrap();
    fails(&fake, &app, &upgraded, 60, "subscription_update").await;
    let body = access_of(&app, &upgraded).await;
    assert_eq!(body["access"], true, "the paid period is kept: {body}");
    assert_eq!(body["entitlements"][0]["status"], "past_due", "{body}");
    assert_eq!(
        body["entitlements"][0]["access_until"], period_end,
        "{body}"
    );

    let renewal = bought(&fake, &app, "active").await;
    fails(&fake, &app, &renewal, 60, "subscription_cycle").await;
    let body = access_of(&app, &renewal).await;
    assert_eq!(body["access"], false, "no grace configured: {body}");
    app.stop().await;
    fake.stop().await;
}

const LIVE_KEY: &str = "sk_live_fake_stripe_key";

/// Tried in test mode, then the live key put in, on the same database: the
/// test subscription (no live event or sweep will ever end it) grants
/// nothing, by customer or by reference; a live one does.
async fn test_access_is_not_answered_once_the_key_is_live(backend: Backend) {
    let (db, fake, app) = setup(backend).await;
    let tried = bought(&fake, &app, "active").await;
    let body = access_of(&app, &tried).await;
    assert_eq!(body["access"], true, "{body}");
    assert_eq!(body["entitlements"][0]["mode"], "test", "{body}");
    app.stop().await;
    fake.stop().await;

    let live_fake = FakeStripe::start_with_key(LIVE_KEY).await.unwrap();
    let options = AppOptions::default()
        .stripe(&live_fake.base_url)
        .admin()
        .config(|c| {
            c.access_token = Some(ACCESS_TOKEN.into());
            c.stripe.api_key = Some(LIVE_KEY.into());
            c.endpoints[0].mode = stripe_hookd::testing::config::Mode::Live;
        });
    let live = TestApp::spawn_with(&db, options).await;
    let body = access_of(&live, &tried).await;
    assert_eq!(
        body["access"], false,
        "test access after going live: {body}"
    );
    let (code, body) = ask(
        &live,
        &format!("reference={}", tried.client_reference_id),
        Some(ACCESS_TOKEN),
    )
    .await;
    assert_eq!((code, &body["access"]), (200, &json!(false)), "{body}");
    assert!(
        view_rows(&live, "client_reference_id", &tried.client_reference_id)
            .await
            .is_empty()
    );

    let paying = Scenario::new(true, API_VERSION);
    live_fake.customer(&paying);
    live_fake.subscription(&paying, "active");
    let mut event = snapshot_event(
        "checkout.session.completed",
        live_fake.checkout_session(&paying),
    );
    event["livemode"] = json!(true);
    live.deliver_ok(&event).await;
    live.runner.run_pending().await.unwrap();
    let body = access_of(&live, &paying).await;
    assert_eq!(body["access"], true, "{body}");
    assert_eq!(body["entitlements"][0]["mode"], "live", "{body}");
    live.stop().await;
    live_fake.stop().await;
}

/// Two items: a licensed one whose quantity goes to 0 (nothing paid for:
/// no access to its product) and a metered one (no quantity: it keeps
/// granting).
async fn a_licensed_item_of_quantity_zero_grants_nothing(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "active").await;
    let metered_product = "prod_metered_usage";
    let with_items = |licensed_quantity: i64| {
        move |v: &mut Value| {
            let mut licensed = v["items"]["data"][0].clone();
            licensed["quantity"] = json!(licensed_quantity);
            let mut metered = licensed.clone();
            metered["id"] = json!("si_metered_usage");
            metered["price"]["id"] = json!("price_metered_usage");
            metered["price"]["product"] = json!(metered_product);
            metered["price"]["recurring"] = json!({"interval": "month", "usage_type": "metered"});
            metered.as_object_mut().unwrap().remove("quantity");
            v["items"]["data"] = json!([licensed, metered]);
        }
    };
    change(&fake, &app, &s, with_items(1)).await;
    let body = access_of(&app, &s).await;
    let mut both = vec![s.product.clone(), metered_product.to_owned()];
    both.sort();
    assert_eq!(body["products"], json!(both), "{body}");

    change(&fake, &app, &s, with_items(0)).await;
    let body = access_of(&app, &s).await;
    assert_eq!(body["products"], json!([metered_product]), "{body}");
    app.stop().await;
    fake.stop().await;
}

/// Catch-up through two connected accounts, the first refusing (403, as a
/// deauthorized account does): it is reported with its cause, and the
/// other account's missed event is still ingested.
async fn one_unreachable_connected_account_does_not_stop_the_catch_up(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.unwrap();
    let options = AppOptions::default()
        .admin()
        .stripe(&fake.base_url)
        .config(|c| {
            c.endpoints[0].connect = true;
            // The held answer below must not time out into a retry.
            c.stripe.timeout_secs = 120;
        });
    let app = TestApp::spawn_with(&db, options).await;
    // Sorted: the refusing account is gone through first.
    let (refusing, reachable) = ("acct_1A_deauthorized", "acct_1B_reachable");
    let mut missed = Vec::new();
    for account in [refusing, reachable] {
        fake.add_account(account);
        let s = Scenario::new(false, API_VERSION);
        let mut event = snapshot_event("customer.created", s.object("customer.created").unwrap());
        event["account"] = json!(account);
        missed.push(event["id"].as_str().unwrap().to_owned());
        fake.push_account_event(account, event);
    }
    // The platform's list goes through; the next one (the first account's)
    // is refused.
    let platform = fake.hold_next("/v1/events");
    let refuse_the_next = async {
        platform.arrived().await;
        fake.fail_next(1, "/v1/events", crate::fake_stripe::Fault::Forbidden);
        platform.release();
    };
    let ((_, report), ()) = tokio::join!(
        crate::admin::run_job(&app, "/v1/catch-up", json!({"since": now() - 3600})),
        refuse_the_next
    );
    let failed = report["failed_accounts"]
        .as_array()
        .expect("failed_accounts");
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["account"], refusing, "{report}");
    assert!(!failed[0]["error"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(
        report["missing"],
        json!([missed[1]]),
        "the other account went on: {report}"
    );
    app.stop().await;
    fake.stop().await;
}

/// Stripe's deleted customer carries no `livemode`: fetched with a live
/// key, it is recorded live (it used to be recorded test).
async fn a_deleted_customer_fetched_with_a_live_key_is_live(backend: Backend) {
    use diesel::prelude::*;
    use stripe_hookd::testing::store::schema::customers;
    use stripe_hookd::testing::store::with_conn;
    let db = TestDb::new(backend);
    let fake = FakeStripe::start_with_key(LIVE_KEY).await.unwrap();
    let options = AppOptions::default().stripe(&fake.base_url).config(|c| {
        c.stripe.api_key = Some(LIVE_KEY.into());
        c.endpoints[0].mode = stripe_hookd::testing::config::Mode::Live;
    });
    let app = TestApp::spawn_with(&db, options).await;
    let s = Scenario::new(true, API_VERSION);
    let customer = fake.customer(&s);
    fake.delete_customer(&s.customer);
    let mut event = snapshot_event("customer.deleted", customer);
    event["livemode"] = json!(true);
    app.deliver_ok(&event).await;
    app.runner.run_pending().await.unwrap();
    let id = s.customer.clone();
    let row: (bool, bool) = app
        .db(move |c| {
            with_conn!(c, c => customers::table
                .filter(customers::id.eq(&id))
                .select((customers::deleted, customers::livemode))
                .first(c)
                .unwrap())
        })
        .await;
    assert_eq!(row, (true, true), "(deleted, livemode)");
    app.stop().await;
    fake.stop().await;
}

/// Stripe embeds a subscription's first 10 items (`items.has_more`); a
/// subscription of 13 products grants all 13, through the re-fetch and
/// through the drift sweep (the fake pages the rest at
/// `/v1/subscription_items`, as Stripe does).
async fn every_item_grants_beyond_the_first_page_stripe_embeds(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "active").await;
    let mut products: Vec<String> = vec![s.product.clone()];
    products.extend((1..=12).map(|n| format!("prod_extra_{n:02}")));
    products.sort();
    let extra = products.clone();
    change(&fake, &app, &s, move |v| {
        let first = v["items"]["data"][0].clone();
        let mut items = vec![first.clone()];
        for product in extra.iter().filter(|p| p.starts_with("prod_extra_")) {
            let mut item = first.clone();
            item["id"] = json!(product.replace("prod_", "si_"));
            item["price"]["id"] = json!(product.replace("prod_", "price_"));
            item["price"]["product"] = json!(product);
            items.push(item);
        }
        v["items"]["data"] = json!(items);
    })
    .await;
    let body = access_of(&app, &s).await;
    assert_eq!(
        body["products"],
        json!(products),
        "every item grants: {body}"
    );
    assert!(
        fake.count("/v1/subscription_items") >= 1,
        "the items past the first page were read"
    );

    // The drift sweep lists subscriptions (each with its first 10 items):
    // it pages the rest too, and finds nothing to repair.
    let (_, report) = crate::admin::run_job(&app, "/v1/reconcile", json!({"dry_run": false})).await;
    assert_eq!(report["subscriptions_checked"], 1, "{report}");
    let body = access_of(&app, &s).await;
    assert_eq!(body["products"], json!(products), "after the sweep: {body}");
    app.stop().await;
    fake.stop().await;
}

/// The drift sweep finds a subscription `past_due` for ten days whose
/// events never came (a back-fill, a daemon down for days): its grace runs
/// from the failed invoice's finalisation too, not from now (the sweep
/// lists subscriptions with their latest invoice expanded).
async fn past_due_found_by_the_sweep_gets_no_new_grace(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "active").await;
    assert_eq!(access_of(&app, &s).await["access"], true);
    fake.invoice(&s, "open");
    let billed = now() - 10 * 86400;
    fake.update(&s.invoice, |i| {
        i["billing_reason"] = json!("subscription_cycle");
        i["created"] = json!(billed - 3600);
        i["status_transitions"]["finalized_at"] = json!(billed);
    });
    let invoice = s.invoice.clone();
    fake.update(&s.subscription, move |v| {
        v["status"] = json!("past_due");
        v["latest_invoice"] = json!(invoice);
    });
    let (_, report) = crate::admin::run_job(&app, "/v1/reconcile", json!({"dry_run": false})).await;
    assert_eq!(report["subscriptions_checked"], 1, "{report}");
    assert!(
        report["drifted_objects"].as_u64() >= Some(1),
        "the sweep found the subscription changed: {report}"
    );
    let body = access_of(&app, &s).await;
    assert_eq!(
        body["access"], false,
        "the 72 h grace ended a week ago, whoever found it: {body}"
    );
    app.stop().await;
    fake.stop().await;
}
