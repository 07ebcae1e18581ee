//! Billing beyond subscriptions: charges (amounts, refunds, the dispute
//! link), Stripe's Entitlements product (a customer's active features), and
//! Connect (objects in a connected account) — against the fake Stripe,
//! through the real intake.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements as access;
use stripe_hookd::testing::store::now_ms;
use stripe_hookd::testing::store::schema::{charges, entitlements, invoices, subscriptions};
use stripe_hookd::testing::store::{outbox, with_conn};
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::{get, post, run_job};
use crate::backend_tests;
use crate::fake_stripe::FakeStripe;
use crate::harness::*;

backend_tests!(
    charges_keep_amounts_refunds_and_the_dispute_link,
    an_accounts_v2_customers_charge_is_that_customers,
    stripe_entitlements_give_a_customers_features,
    ignored_types_say_why,
    paused_resumed_trial_and_action_required_are_applied,
    connect_accounts_are_fetched_swept_and_caught_up_per_account,
    a_summary_naming_no_customer_ends_done_not_dead,
);

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let (db, app) = spawn(backend, &fake, false).await;
    (db, fake, app)
}

/// The daemon against `fake`; `connect`: its endpoint is a Connect endpoint.
async fn spawn(backend: Backend, fake: &FakeStripe, connect: bool) -> (TestDb, TestApp) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .admin()
            .stripe(&fake.base_url)
            .config(move |c| {
                c.endpoints[0].connect = connect;
                c.runner.backoff_base_ms = 1000;
                c.runner.backoff_max_secs = 10;
                // Held answers (`hold_next`) must not time out into a retry.
                c.stripe.timeout_secs = 120;
            }),
    )
    .await;
    (db, app)
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

async fn status_of(app: &TestApp, event_id: &str) -> String {
    let id = event_id.to_owned();
    app.db(move |c| outbox::get(c, &id).unwrap().unwrap().status.to_string())
        .await
}

/// What an application reads of a local charge.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
struct ChargeView {
    status: Option<String>,
    amount: Option<i64>,
    amount_refunded: Option<i64>,
    refunded: bool,
    disputed: bool,
    dispute_id: Option<String>,
    customer_id: Option<String>,
    payment_intent_id: Option<String>,
    account: Option<String>,
    gone: bool,
}

async fn charge(app: &TestApp, id: &str) -> Option<ChargeView> {
    let id = id.to_owned();
    app.db(move |c| {
        with_conn!(c, c => charges::table
            .filter(charges::id.eq(&id))
            .select((charges::status, charges::amount, charges::amount_refunded, charges::refunded,
                     charges::disputed, charges::dispute_id, charges::customer_id,
                     charges::payment_intent_id, charges::account, charges::gone))
            .first::<ChargeView>(c)
            .optional()
            .unwrap())
    })
    .await
}

/// Since 2025-12-15.clover a charge of an Accounts v2 customer has
/// `customer: null` and `customer_account: "acct_…"` (as its payment does):
/// the charge is stored with that account as its customer, and the
/// customer's page (`GET /ui/objects/acct_…`, also reached from the
/// charge's id) shows the charge and the dispute on it — a dispute names no
/// customer, and one on a charge without a PaymentIntent is the charge's.
async fn an_accounts_v2_customers_charge_is_that_customers(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let v2 = "acct_v2_charged_customer";
    let mut ch = fake.charge(&s, "succeeded");
    ch["customer"] = Value::Null;
    ch["customer_account"] = json!(v2);
    ch["payment_intent"] = Value::Null;
    fake.put(ch.clone());
    deliver(&app, "charge.succeeded", &ch, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    let view = charge(&app, &s.charge).await.expect("the charge is stored");
    assert_eq!(view.customer_id.as_deref(), Some(v2), "{view:?}");

    let mut dispute = fake.dispute(&s, "needs_response");
    dispute["payment_intent"] = Value::Null;
    fake.put(dispute.clone());
    fake.update(&s.charge, |c| c["disputed"] = json!(true));
    deliver(&app, "charge.dispute.created", &dispute, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    let view = charge(&app, &s.charge).await.unwrap();
    assert_eq!(
        (view.customer_id.as_deref(), view.disputed),
        (Some(v2), true),
        "re-fetched with the dispute: {view:?}"
    );

    for asked in [v2, s.charge.as_str()] {
        let (status, page) = get(&app, &format!("/ui/objects/{asked}")).await;
        assert_eq!(status, StatusCode::OK, "{asked}: {page}");
        assert_eq!(page["customer"]["id"], v2, "{asked}: {page}");
        let charges: Vec<&Value> = page["charges"].as_array().unwrap().iter().collect();
        assert_eq!(charges.len(), 1, "{asked}: {page}");
        assert_eq!(charges[0]["id"], s.charge.as_str(), "{page}");
        assert_eq!(charges[0]["disputed"], true, "{page}");
        assert_eq!(page["disputes"][0]["id"], s.dispute.as_str(), "{page}");
        assert_eq!(page["disputes"][0]["charge"], s.charge.as_str(), "{page}");
    }
    app.stop().await;
    fake.stop().await;
}

async fn charges_keep_amounts_refunds_and_the_dispute_link(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    let ch = fake.charge(&s, "succeeded");

    // charge.succeeded: the charge as Stripe shows it.
    let e = deliver(&app, "charge.succeeded", &ch, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&app, &e).await, "done");
    let view = charge(&app, &s.charge).await.expect("the charge is stored");
    assert_eq!(
        view,
        ChargeView {
            status: Some("succeeded".into()),
            amount: Some(2000),
            amount_refunded: Some(0),
            refunded: false,
            disputed: false,
            dispute_id: None,
            customer_id: Some(s.customer.clone()),
            payment_intent_id: Some(s.payment_intent.clone()),
            account: None,
            gone: false,
        }
    );

    // A partial refund, then a late charge.succeeded (its stale snapshot
    // says nothing was refunded): the re-fetch wins.
    fake.refund_charge(&s.charge, 500);
    deliver(&app, "charge.refunded", &fake.get(&s.charge).unwrap(), None).await;
    deliver(&app, "charge.succeeded", &ch, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 2);
    let view = charge(&app, &s.charge).await.unwrap();
    assert_eq!((view.amount_refunded, view.refunded), (Some(500), false));

    // charge.refund.updated carries a refund: its charge is re-fetched.
    fake.refund_charge(&s.charge, 1500);
    let refund = json!({"id": "re_test_1", "object": "refund", "amount": 1500,
                        "charge": s.charge, "status": "succeeded"});
    let e = deliver(&app, "charge.refund.updated", &refund, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&app, &e).await, "done");
    let view = charge(&app, &s.charge).await.unwrap();
    assert_eq!((view.amount_refunded, view.refunded), (Some(2000), true));

    // A dispute: the dispute is stored, its charge re-fetched and linked.
    let dispute = fake.dispute(&s, "needs_response");
    fake.update(&s.charge, |c| c["disputed"] = json!(true));
    deliver(&app, "charge.dispute.created", &dispute, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    let view = charge(&app, &s.charge).await.unwrap();
    assert!(view.disputed, "{view:?}");
    assert_eq!(view.dispute_id.as_deref(), Some(s.dispute.as_str()));

    // A later charge event keeps the link (the charge's upsert leaves it).
    deliver(&app, "charge.updated", &fake.get(&s.charge).unwrap(), None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        charge(&app, &s.charge).await.unwrap().dispute_id.as_deref(),
        Some(s.dispute.as_str())
    );

    // The other way round: a dispute stored before its charge is known
    // (its charge's fetch came back `resource_missing`), then the charge.
    let s2 = basil();
    let dispute2 = fake.dispute(&s2, "warning_needs_response");
    deliver(&app, "charge.dispute.created", &dispute2, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert!(charge(&app, &s2.charge).await.unwrap().gone);
    let ch2 = fake.charge(&s2, "succeeded");
    deliver(&app, "charge.updated", &ch2, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    let view = charge(&app, &s2.charge).await.unwrap();
    assert!(!view.gone);
    assert_eq!(view.dispute_id.as_deref(), Some(s2.dispute.as_str()));

    // An older fetch never overwrites a newer one: a resync's fetch is
    // held while the charge is refunded again and that event is applied;
    // the resync's (older) answer then lands last and is dropped.
    let s3 = basil();
    let ch3 = fake.charge(&s3, "succeeded");
    deliver(&app, "charge.succeeded", &ch3, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    let hold = fake.hold_next(&format!("/v1/charges/{}", s3.charge));
    let resync = {
        let app_url = app.admin_url(&format!("/v1/resync/{}", s3.charge));
        let client = app.client.clone();
        tokio::spawn(async move {
            client
                .post(app_url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    hold.arrived().await;
    fake.refund_charge(&s3.charge, 2000);
    deliver(
        &app,
        "charge.refunded",
        &fake.get(&s3.charge).unwrap(),
        None,
    )
    .await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    hold.release();
    assert_eq!(resync.await.unwrap(), StatusCode::OK);
    let view = charge(&app, &s3.charge).await.unwrap();
    assert_eq!(
        (view.amount_refunded, view.refunded),
        (Some(2000), true),
        "the held (older) fetch was dropped"
    );

    // resync knows charge ids.
    let (code, body) = post(&app, &format!("/v1/resync/{}", s.charge), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    app.stop().await;
    fake.stop().await;
}

/// The object of `entitlements.active_entitlement_summary.updated` (it has
/// no id; the daemon re-fetches the list, whatever this one says).
fn summary(customer: &str, lookup_keys: &[&str]) -> Value {
    let data: Vec<Value> = lookup_keys
        .iter()
        .map(|k| {
            json!({"id": format!("ent_{k}"), "object": "entitlements.active_entitlement",
                         "feature": format!("feat_{k}"), "livemode": false, "lookup_key": k})
        })
        .collect();
    json!({"object": "entitlements.active_entitlement_summary", "customer": customer,
           "entitlements": {"object": "list", "data": data, "has_more": false,
                            "url": "/v1/customer/cus/entitlements"},
           "livemode": false})
}

const SUMMARY: &str = "entitlements.active_entitlement_summary.updated";

/// A summary whose `customer` is null has nothing to re-fetch: the event
/// ends `done` (it used to end `dead`, as if retrying could not help
/// something that needed help), and nothing is asked of Stripe.
async fn a_summary_naming_no_customer_ends_done_not_dead(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let mut object = summary("cus_none", &["pro"]);
    object["customer"] = Value::Null;
    let e = deliver(&app, SUMMARY, &object, None).await;
    let processed = app.runner.run_pending().await.unwrap();
    assert_eq!((processed.done, processed.dead), (1, 0), "{processed:?}");
    assert_eq!(status_of(&app, &e).await, "done");
    assert_eq!(fake.count("/v1/entitlements"), 0, "nothing fetched");
    app.stop().await;
    fake.stop().await;
}

/// The lookup keys of a customer's features, through the admin API.
async fn features(app: &TestApp, customer: &str) -> Vec<String> {
    let (code, body) = get(app, &format!("/v1/customers/{customer}/features")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let mut keys: Vec<String> = body["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["lookup_key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

async fn has(app: &TestApp, customer: &str, key: &str) -> bool {
    let (code, body) = get(app, &format!("/v1/customers/{customer}/features/{key}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["active"].as_bool().unwrap()
}

async fn stripe_entitlements_give_a_customers_features(backend: Backend) {
    let (db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let cus = s.customer.as_str();

    // Never fetched: no features, and the answer says so.
    let (_, body) = get(&app, &format!("/v1/customers/{cus}/features")).await;
    assert_eq!(body["fetched_at"], Value::Null);
    assert!(!has(&app, cus, "pro").await);

    fake.set_active_entitlements(cus, None, &[("pro", "feat_pro"), ("export", "feat_export")]);
    let e = deliver(&app, SUMMARY, &summary(cus, &[]), None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&app, &e).await, "done");
    assert_eq!(features(&app, cus).await, ["export", "pro"]);
    assert!(has(&app, cus, "pro").await);
    assert!(!has(&app, cus, "sso").await);
    let (_, body) = get(&app, &format!("/v1/customers/{cus}/features/pro")).await;
    assert_eq!(body["feature"]["feature_id"], "feat_pro");
    assert!(body["fetched_at"].as_i64().is_some());

    // A feature taken away: the re-fetch drops it (the stale snapshot
    // still lists it).
    fake.set_active_entitlements(cus, None, &[("pro", "feat_pro")]);
    deliver(&app, SUMMARY, &summary(cus, &["pro", "export"]), None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(features(&app, cus).await, ["pro"]);

    // More than a page: every page is read.
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("f{i:03}"), format!("feat_{i:03}")))
        .collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|(k, f)| (k.as_str(), f.as_str())).collect();
    fake.set_active_entitlements(cus, None, &pairs);
    deliver(&app, SUMMARY, &summary(cus, &[]), None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(features(&app, cus).await.len(), 150);
    assert!(
        fake.count("/v1/entitlements/active_entitlements") >= 4,
        "two pages for 150"
    );

    // An older fetch never replaces a newer one: one event's fetch is held
    // while the features change and a later event is applied; the held
    // (older) answer then lands last and is dropped.
    fake.set_active_entitlements(cus, None, &[("basic", "feat_basic")]);
    deliver(&app, SUMMARY, &summary(cus, &[]), None).await;
    let hold = fake.hold_next("/v1/entitlements/active_entitlements");
    let first = {
        let runner = app.runner.clone();
        tokio::spawn(async move { runner.run_pending().await.unwrap() })
    };
    hold.arrived().await;
    fake.set_active_entitlements(cus, None, &[("pro", "feat_pro"), ("sso", "feat_sso")]);
    deliver(&app, SUMMARY, &summary(cus, &[]), None).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while features(&app, cus).await != ["pro", "sso"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the newer fetch was not applied"
        );
        app.runner.run_pending().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    hold.release();
    first.await.unwrap();
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        features(&app, cus).await,
        ["pro", "sso"],
        "the held (older) fetch was dropped"
    );

    // The CLI answers from the database: yes (exit 0) / no (exit 1).
    let cli = |args: Vec<String>| {
        let (url, dir) = (db.url.clone(), db.dir().to_owned());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("STRIPE_HOOKD_STATE_DIR", dir)
                .env("DATABASE_URL", url)
                .output()
                .expect("run stripe-hookd")
        })
    };
    let yes = cli(vec!["features".into(), cus.into(), "sso".into()])
        .await
        .unwrap();
    assert!(yes.status.success(), "{yes:?}");
    assert!(
        String::from_utf8_lossy(&yes.stdout).contains("sso: yes"),
        "{yes:?}"
    );
    let no = cli(vec!["features".into(), cus.into(), "basic".into()])
        .await
        .unwrap();
    assert_eq!(no.status.code(), Some(1), "{no:?}");
    let all = cli(vec!["features".into(), cus.into(), "--json".into()])
        .await
        .unwrap();
    assert!(all.status.success(), "{all:?}");
    let listed: Value = serde_json::from_slice(&all.stdout).expect("JSON");
    assert_eq!(listed["features"].as_array().unwrap().len(), 2, "{listed}");

    // A customer Stripe does not know has none.
    let gone = "cus_unknown_to_stripe";
    let e = deliver(&app, SUMMARY, &summary(gone, &["pro"]), None).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(status_of(&app, &e).await, "done");
    assert!(features(&app, gone).await.is_empty());
    app.stop().await;
    fake.stop().await;
}

async fn ignored_types_say_why(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let e = deliver(
        &app,
        "invoice.upcoming",
        &json!({"object": "invoice", "customer": "cus_1"}),
        None,
    )
    .await;
    let p = deliver(
        &app,
        "payout.paid",
        &json!({"id": "po_1", "object": "payout"}),
        None,
    )
    .await;
    assert_eq!(app.runner.run_pending().await.unwrap().ignored, 2);
    for (id, t) in [(e, "invoice.upcoming"), (p, "payout.paid")] {
        let id2 = id.clone();
        let row = app
            .db(move |c| outbox::get(c, &id2).unwrap().unwrap())
            .await;
        assert_eq!(row.status.to_string(), "ignored");
        let note = row.last_error.unwrap_or_default();
        assert!(note.contains(&format!("no handler takes {t}")), "{note}");
        assert!(note.contains("docs/architecture.md"), "{note}");
    }
    app.stop().await;
    fake.stop().await;
}

/// (status, account) of a local subscription, and the accounts of its access rows.
async fn sub_and_access(
    app: &TestApp,
    id: &str,
) -> (Option<(String, Option<String>)>, Vec<Option<String>>) {
    let id = id.to_owned();
    app.db(move |c| {
        with_conn!(c, c => {
            let sub = subscriptions::table
                .filter(subscriptions::id.eq(&id))
                .select((subscriptions::status, subscriptions::account))
                .first::<(String, Option<String>)>(c)
                .optional()
                .unwrap();
            let access = entitlements::table
                .filter(entitlements::subscription_id.eq(&id))
                .select(entitlements::account)
                .load::<Option<String>>(c)
                .unwrap();
            (sub, access)
        })
    })
    .await
}

/// The `Stripe-Account` of the requests whose path starts with `prefix`.
fn accounts_seen(fake: &FakeStripe, prefix: &str) -> Vec<Option<String>> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.starts_with(prefix))
        .map(|r| r.account)
        .collect()
}

async fn connect_accounts_are_fetched_swept_and_caught_up_per_account(backend: Backend) {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let (_db, app) = spawn(backend, &fake, true).await;
    let known = "acct_1Known";
    let quiet = "acct_1Quiet"; // no event of it ever arrived

    // Events of a connected account: every fetch sends its Stripe-Account,
    // and every record (charge, features, subscription, access) keeps it.
    let s = basil();
    let mut customer = s.object("customer.created").unwrap();
    customer["id"] = json!(s.customer);
    fake.put_in(known, customer);
    let sub = fake.put_in(known, {
        let mut sub = s.object("customer.subscription.created").unwrap();
        crate::fake_stripe::set_subscription_status(&mut sub, "active");
        sub
    });
    let ch = fake.put_in(known, crate::fake_stripe::charge_shape(&s, "succeeded"));
    fake.set_active_entitlements(&s.customer, Some(known), &[("pro", "feat_pro")]);
    deliver(&app, "customer.subscription.created", &sub, Some(known)).await;
    deliver(&app, "charge.succeeded", &ch, Some(known)).await;
    deliver(&app, SUMMARY, &summary(&s.customer, &[]), Some(known)).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 3);
    for prefix in [
        "/v1/subscriptions/",
        "/v1/charges/",
        "/v1/entitlements/active_entitlements",
    ] {
        let seen = accounts_seen(&fake, prefix);
        assert!(
            !seen.is_empty() && seen.iter().all(|a| a.as_deref() == Some(known)),
            "{prefix}: {seen:?}"
        );
    }
    let (sub_row, access) = sub_and_access(&app, &s.subscription).await;
    assert_eq!(sub_row, Some(("active".to_owned(), Some(known.to_owned()))));
    assert_eq!(
        access,
        [Some(known.to_owned())],
        "the access row carries the account"
    );
    assert_eq!(
        charge(&app, &s.charge).await.unwrap().account.as_deref(),
        Some(known)
    );
    let (_, body) = get(&app, &format!("/v1/customers/{}/features", s.customer)).await;
    assert_eq!(body["features"][0]["account"], known, "{body}");

    // The sweep goes through every account Stripe lists, also one no event
    // ever came from: its subscription is backfilled with its account.
    let q = basil();
    fake.put_in(quiet, {
        let mut sub = q.object("customer.subscription.created").unwrap();
        crate::fake_stripe::set_subscription_status(&mut sub, "trialing");
        sub
    });
    run_job(&app, "/v1/reconcile", json!({})).await;
    assert!(
        accounts_seen(&fake, "/v1/accounts")
            .iter()
            .all(Option::is_none),
        "the platform lists its accounts"
    );
    assert!(accounts_seen(&fake, "/v1/subscriptions")
        .iter()
        .any(|a| a.as_deref() == Some(quiet)));
    let (sub_row, access) = sub_and_access(&app, &q.subscription).await;
    assert_eq!(
        sub_row,
        Some(("trialing".to_owned(), Some(quiet.to_owned())))
    );
    assert_eq!(access, [Some(quiet.to_owned())]);

    // Catch-up lists each account's events (with its Stripe-Account) and
    // stores them with the account, so processing fetches from it.
    let q_charge = fake.put_in(quiet, crate::fake_stripe::charge_shape(&q, "succeeded"));
    let mut missed = snapshot_event("charge.succeeded", q_charge);
    missed.as_object_mut().unwrap().remove("account");
    fake.push_account_event(quiet, missed.clone());
    let (_, report) = run_job(&app, "/v1/catch-up", json!({})).await;
    let missed_id = missed["id"].as_str().unwrap().to_owned();
    assert!(
        report["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == &json!(missed_id)),
        "{report}"
    );
    let id = missed_id.clone();
    let stored = app.db(move |c| outbox::get(c, &id).unwrap().unwrap()).await;
    assert_eq!(stored.account.as_deref(), Some(quiet));
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        charge(&app, &q.charge).await.unwrap().account.as_deref(),
        Some(quiet)
    );

    // resync of an object not stored yet: from the account named.
    let r = basil();
    fake.put_in(quiet, {
        let mut sub = r.object("customer.subscription.created").unwrap();
        crate::fake_stripe::set_subscription_status(&mut sub, "active");
        sub
    });
    let (code, body) = post(&app, &format!("/v1/resync/{}", r.subscription), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        sub_and_access(&app, &r.subscription).await.0,
        Some(("unknown".to_owned(), None)),
        "the platform cannot see it: recorded gone"
    );
    let (code, body) = post(
        &app,
        &format!("/v1/resync/{}?account={quiet}", r.subscription),
        json!({}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        sub_and_access(&app, &r.subscription).await,
        (
            Some(("active".to_owned(), Some(quiet.to_owned()))),
            vec![Some(quiet.to_owned())]
        )
    );
    app.stop().await;

    // Without a Connect endpoint, an account no record came from is not
    // swept (the flag is what lists Stripe's accounts).
    let (_db2, plain) = spawn(backend, &fake, false).await;
    run_job(&plain, "/v1/reconcile", json!({})).await;
    assert_eq!(sub_and_access(&plain, &q.subscription).await.0, None);
    plain.stop().await;
    fake.stop().await;
}

async fn paused_resumed_trial_and_action_required_are_applied(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let sub = fake.subscription(&s, "trialing");
    let e = deliver(&app, "customer.subscription.trial_will_end", &sub, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&app, &e).await, "done");
    assert_eq!(has_access(&app, &s.customer).await, 1, "trialing");

    // A trial that ends without a payment method pauses the subscription.
    fake.update(&s.subscription, |v| v["status"] = json!("paused"));
    deliver(&app, "customer.subscription.paused", &sub, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(
        sub_and_access(&app, &s.subscription).await.0.unwrap().0,
        "paused"
    );
    assert_eq!(
        has_access(&app, &s.customer).await,
        0,
        "paused grants nothing"
    );

    fake.update(&s.subscription, |v| v["status"] = json!("active"));
    deliver(&app, "customer.subscription.resumed", &sub, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(has_access(&app, &s.customer).await, 1, "resumed");

    // 3-D Secure needed: the invoice is stored as Stripe shows it (open).
    let invoice = fake.invoice(&s, "open");
    let e = deliver(&app, "invoice.payment_action_required", &invoice, None).await;
    assert_eq!(app.runner.run_pending().await.unwrap().done, 1);
    assert_eq!(status_of(&app, &e).await, "done");
    let id = s.invoice.clone();
    let status = app
        .db(move |c| {
            with_conn!(c, c => invoices::table
                .filter(invoices::id.eq(&id))
                .select(invoices::status)
                .first::<Option<String>>(c)
                .unwrap())
        })
        .await;
    assert_eq!(status.as_deref(), Some("open"));
    app.stop().await;
    fake.stop().await;
}

/// How many access rows grant the customer access now.
async fn has_access(app: &TestApp, customer: &str) -> usize {
    let customer = customer.to_owned();
    app.db(move |c| access::for_customer(c, &customer, now_ms()).unwrap())
        .await
        .len()
}
