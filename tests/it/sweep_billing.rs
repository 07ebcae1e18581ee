//! The drift sweep compares charges (status, amount refunded, refunded,
//! disputed; those created in the window) and customer features (the set
//! of active lookup keys, where Stripe's Entitlements is in use) with
//! Stripe: reported in a dry run, repaired otherwise.

use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use stripe_hookd::testing::store::schema::charges;
use stripe_hookd::testing::store::with_conn;
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::{get, run_job};
use crate::backend_tests;
use crate::fake_stripe::{charge_shape, FakeStripe, Fault};
use crate::harness::*;

backend_tests!(
    the_sweep_compares_charges_and_customer_features,
    a_key_that_may_not_read_entitlements_skips_the_features,
    the_charge_window_is_the_configured_one,
);

/// `schedule.sweep_charge_window_days` by default.
const WINDOW_DAYS: i64 = 180;

const SUMMARY: &str = "entitlements.active_entitlement_summary.updated";

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, AppOptions::admin).await
}

fn basil() -> Scenario {
    Scenario::new(false, API_VERSION)
}

async fn sweep(app: &TestApp, dry_run: bool) -> Value {
    run_job(app, "/v1/reconcile", json!({"dry_run": dry_run}))
        .await
        .1
}

/// (field, local, stripe) of the report's drift entries for `object`.
fn drift_of(report: &Value, object: &str) -> Vec<(String, Option<String>, Option<String>)> {
    report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["object"] == object)
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_owned(),
                d["local"].as_str().map(str::to_owned),
                d["stripe"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn drifted(
    field: &str,
    local: Option<&str>,
    stripe: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    (
        field.to_owned(),
        local.map(str::to_owned),
        stripe.map(str::to_owned),
    )
}

/// A local charge's (status, amount_refunded, refunded, disputed).
async fn local_charge(
    app: &TestApp,
    id: &str,
) -> Option<(Option<String>, Option<i64>, bool, bool)> {
    let id = id.to_owned();
    app.db(move |c| {
        with_conn!(c, c => charges::table
            .filter(charges::id.eq(&id))
            .select((charges::status, charges::amount_refunded, charges::refunded, charges::disputed))
            .first::<(Option<String>, Option<i64>, bool, bool)>(c)
            .optional()
            .unwrap())
    })
    .await
}

/// The lookup keys of a customer's local features, sorted.
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

/// The summary event's object (the daemon re-fetches the list).
fn summary(customer: &str) -> Value {
    json!({"object": "entitlements.active_entitlement_summary", "customer": customer,
           "entitlements": {"object": "list", "data": [], "has_more": false,
                            "url": "/v1/customer/cus/entitlements"},
           "livemode": false})
}

async fn the_sweep_compares_charges_and_customer_features(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let ch = fake.charge(&s, "succeeded");
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s.customer).unwrap(),
    ))
    .await;
    app.deliver_ok(&snapshot_event("charge.succeeded", ch))
        .await;
    app.runner.run_pending().await.unwrap();

    // Entitlements not in use (no feature at Stripe, none stored): one
    // request says so, no customer's list is read.
    let report = sweep(&app, true).await;
    assert_eq!(report["drift_total"], 0, "in step: {report}");
    assert_eq!(report["charges_checked"], 1, "{report}");
    assert_eq!(report["customer_features_checked"], 0, "{report}");
    assert_eq!(fake.count("/v1/entitlements/features"), 1);
    assert_eq!(fake.count("/v1/entitlements/active_entitlements"), 0);
    let listed = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/charges")
        .expect("the charges were listed");
    assert!(listed.query.contains("created"), "{listed:?}");

    // Features in use, and in step.
    let cus = s.customer.as_str();
    fake.set_active_entitlements(cus, None, &[("pro", "feat_pro")]);
    app.deliver_ok(&snapshot_event(SUMMARY, summary(cus))).await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(features(&app, cus).await, ["pro"]);
    // A second customer with features, then deleted at Stripe (no longer
    // listed): its local features are still compared.
    let s2 = basil();
    fake.customer(&s2);
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s2.customer).unwrap(),
    ))
    .await;
    fake.set_active_entitlements(&s2.customer, None, &[("pro", "feat_pro")]);
    app.deliver_ok(&snapshot_event(SUMMARY, summary(&s2.customer)))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(features(&app, &s2.customer).await, ["pro"]);
    let report = sweep(&app, true).await;
    assert_eq!(report["drift_total"], 0, "in step: {report}");
    assert_eq!(report["customer_features_checked"], 2, "{report}");

    // What changed at Stripe while its events were lost.
    fake.refund_charge(&s.charge, 2000);
    fake.update(&s.charge, |c| c["disputed"] = json!(true));
    fake.set_active_entitlements(cus, None, &[("sso", "feat_sso"), ("export", "feat_export")]);
    fake.remove(&s2.customer);
    // A charge never delivered, in the window; one older than the window.
    let s3 = basil();
    fake.charge(&s3, "succeeded");
    let s4 = basil();
    let mut old = charge_shape(&s4, "succeeded");
    old["created"] = json!(now() - (WINDOW_DAYS + 10) * 24 * 3600);
    fake.put(old);

    let report = sweep(&app, true).await;
    let drift = drift_of(&report, &s.charge);
    for expected in [
        drifted("amount_refunded", Some("0"), Some("2000")),
        drifted("refunded", Some("false"), Some("true")),
        drifted("disputed", Some("false"), Some("true")),
    ] {
        assert!(drift.contains(&expected), "{expected:?} not in {drift:?}");
    }
    assert_eq!(
        drift_of(&report, &s3.charge),
        [drifted("(record)", None, Some("present"))]
    );
    assert!(
        drift_of(&report, &s4.charge).is_empty(),
        "older than the window: not listed"
    );
    assert_eq!(report["charges_checked"], 2, "{report}");
    assert_eq!(
        drift_of(&report, cus),
        [drifted("features", Some("pro"), Some("export,sso"))]
    );
    assert_eq!(
        drift_of(&report, &s2.customer),
        [drifted("features", Some("pro"), None)]
    );
    assert_eq!(report["fixed"], 0);
    assert_eq!(
        local_charge(&app, &s.charge).await,
        Some((Some("succeeded".into()), Some(0), false, false)),
        "a dry run changes nothing"
    );
    assert_eq!(features(&app, cus).await, ["pro"]);

    // Repaired.
    let report = sweep(&app, false).await;
    assert!(report["fixed"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(
        local_charge(&app, &s.charge).await,
        Some((Some("succeeded".into()), Some(2000), true, true))
    );
    assert!(local_charge(&app, &s3.charge).await.is_some(), "backfilled");
    assert!(local_charge(&app, &s4.charge).await.is_none());
    assert_eq!(features(&app, cus).await, ["export", "sso"]);
    assert!(features(&app, &s2.customer).await.is_empty());

    let report = sweep(&app, true).await;
    assert_eq!(
        report["drift_total"], 0,
        "a second sweep finds nothing: {report}"
    );
    app.stop().await;
    fake.stop().await;
}

async fn a_key_that_may_not_read_entitlements_skips_the_features(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    fake.set_active_entitlements(&s.customer, None, &[("pro", "feat_pro")]);
    fake.fail_next(1, "/v1/entitlements/features", Fault::Forbidden);
    let report = sweep(&app, true).await;
    assert_eq!(report["customer_features_checked"], 0, "{report}");
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(
        skipped[0].as_str().unwrap().contains("entitlements"),
        "{report}"
    );
    assert_eq!(report["customers_checked"], 1, "the rest of the sweep ran");
    assert_eq!(fake.count("/v1/entitlements/active_entitlements"), 0);
    app.stop().await;
    fake.stop().await;
}

/// `schedule.sweep_charge_window_days` decides which charges the sweep
/// lists and compares: created within that many days; 0 lists none.
async fn the_charge_window_is_the_configured_one(backend: Backend) {
    let window = |days: u32| {
        move |o: AppOptions| {
            o.admin()
                .config(move |c| c.schedule.sweep_charge_window_days = days)
        }
    };
    let (db, fake, app) = with_fake_stripe(backend, window(10)).await;
    let created_days_ago = |days: i64| {
        let s = basil();
        let mut charge = charge_shape(&s, "succeeded");
        charge["created"] = json!(now() - days * 24 * 3600);
        fake.put(charge);
        s.charge
    };
    let recent = created_days_ago(9);
    let older = created_days_ago(11);

    let report = sweep(&app, true).await;
    assert_eq!(report["charges_checked"], 1, "{report}");
    assert_eq!(
        drift_of(&report, &recent),
        [drifted("(record)", None, Some("present"))],
        "within 10 days: listed, and missing here"
    );
    assert!(
        drift_of(&report, &older).is_empty(),
        "older than 10 days: not listed: {report}"
    );
    app.stop().await;

    // 0: the sweep lists no charges at all.
    let listed = fake.count("/v1/charges");
    assert!(listed > 0);
    let app =
        TestApp::spawn_with(&db, window(0)(AppOptions::default().stripe(&fake.base_url))).await;
    let report = sweep(&app, true).await;
    assert_eq!(report["charges_checked"], 0, "{report}");
    assert_eq!(report["drifted_objects"], 0, "{report}");
    assert_eq!(fake.count("/v1/charges"), listed, "no charge listed");
    app.stop().await;
    fake.stop().await;
}
