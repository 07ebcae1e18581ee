//! The drift sweep compares everything access depends on (items, trial,
//! cancellation, pause), fixes it, and reports drift bounded (counts and the
//! first entries; every entry paged through the admin API), with no
//! personal data in the report.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::reconcile::sweep::DRIFT_SHOWN;
use stripe_hookd::testing::store::now_ms;
use stripe_hookd::testing::trigger::Scenario;

use crate::admin::run_job;
use crate::backend_tests;
use crate::fake_stripe::FakeStripe;
use crate::harness::*;

backend_tests!(
    a_missed_upgrade_is_reported_and_fixed,
    trial_cancel_and_pause_drift_is_reported_without_personal_data,
    a_large_report_is_bounded_and_paged,
    a_failed_part_is_named_and_the_others_still_repair,
);

async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, AppOptions::admin).await
}

fn basil() -> Scenario {
    Scenario::new(false, API_VERSION)
}

async fn get(app: &TestApp, path: &str) -> Value {
    let res = app
        .client
        .get(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.json().await.unwrap()
}

/// Runs the sweep through the admin API; returns (job id, report).
async fn sweep(app: &TestApp, dry_run: bool) -> (u64, Value) {
    run_job(app, "/v1/reconcile", json!({"dry_run": dry_run})).await
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

async fn products(app: &TestApp, customer: &str) -> Vec<Option<String>> {
    let customer = customer.to_owned();
    app.db(move |c| entitlements::for_customer(c, &customer, now_ms()).unwrap())
        .await
        .into_iter()
        .map(|e| e.product_id)
        .collect()
}

async fn a_missed_upgrade_is_reported_and_fixed(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s.customer).unwrap().clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(
        products(&app, &s.customer).await,
        vec![Some(s.product.clone())]
    );
    let (_, report) = sweep(&app, true).await;
    assert_eq!(report["drift_total"], 0, "in step: {report}");

    // The upgrade happened at Stripe; its event never arrived.
    fake.update(&s.subscription, |v| {
        let item = &mut v["items"]["data"][0];
        item["price"]["id"] = json!("price_upgraded");
        item["price"]["product"] = json!("prod_upgraded");
        item["quantity"] = json!(3);
    });
    let (_, report) = sweep(&app, true).await;
    let drift = drift_of(&report, &s.subscription);
    let fields: BTreeSet<&str> = drift.iter().map(|d| d.0.as_str()).collect();
    for field in [
        "item.price",
        "item.product",
        "item.quantity",
        "entitlement.products",
    ] {
        assert!(fields.contains(field), "{field} not reported: {drift:?}");
    }
    assert!(drift.contains(&(
        "entitlement.products".to_owned(),
        Some(s.product.clone()),
        Some("prod_upgraded".to_owned())
    )));
    assert_eq!(report["fixed"], 0);
    assert_eq!(
        products(&app, &s.customer).await,
        vec![Some(s.product.clone())],
        "a dry run changes nothing"
    );

    let (_, report) = sweep(&app, false).await;
    assert_eq!(report["fixed"], 1, "{report}");
    assert_eq!(
        products(&app, &s.customer).await,
        vec![Some("prod_upgraded".to_owned())],
        "access moved to the new product"
    );
    let (_, report) = sweep(&app, true).await;
    assert_eq!(report["drift_total"], 0, "fixed: {report}");
    app.stop().await;
    fake.stop().await;
}

async fn trial_cancel_and_pause_drift_is_reported_without_personal_data(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let sub = fake.subscription(&s, "trialing");
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s.customer).unwrap().clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();

    let later = now() + 40 * 86400;
    fake.update(&s.subscription, |v| {
        v["trial_end"] = json!(later);
        v["cancel_at"] = json!(later + 86400);
        v["pause_collection"] = json!({"behavior": "void", "resumes_at": null});
    });
    let secret_email = "jane.private@example.com";
    fake.update(&s.customer, |v| {
        v["email"] = json!(secret_email);
        v["name"] = json!("Jane Private");
    });
    let (_, report) = sweep(&app, true).await;
    let fields: BTreeSet<String> = drift_of(&report, &s.subscription)
        .into_iter()
        .map(|d| d.0)
        .collect();
    for field in ["trial_end", "cancel_at", "pause_collection"] {
        assert!(fields.contains(field), "{field} not reported: {report}");
    }
    let customer = drift_of(&report, &s.customer);
    let fields: BTreeSet<&str> = customer.iter().map(|d| d.0.as_str()).collect();
    assert!(
        fields.contains("email") && fields.contains("name"),
        "{customer:?}"
    );
    let text = report.to_string();
    assert!(
        !text.contains(secret_email) && !text.contains("Jane Private"),
        "no personal data in the report: {text}"
    );

    let (_, report) = sweep(&app, false).await;
    assert_eq!(report["fixed"], 2, "{report}");
    let (_, report) = sweep(&app, true).await;
    assert_eq!(report["drift_total"], 0, "fixed: {report}");
    app.stop().await;
    fake.stop().await;
}

async fn a_large_report_is_bounded_and_paged(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    // Never delivered: each subscription and customer is one drift entry.
    let mut expected = BTreeSet::new();
    for _ in 0..(DRIFT_SHOWN / 2 + 10) {
        let s = basil();
        fake.customer(&s);
        fake.subscription(&s, "active");
        expected.insert(s.customer.clone());
        expected.insert(s.subscription.clone());
    }
    let total = expected.len();
    assert!(total > DRIFT_SHOWN);
    let (job, report) = sweep(&app, true).await;
    assert_eq!(report["drift_total"], total);
    assert_eq!(report["drifted_objects"], total);
    assert_eq!(report["drift_by_field"]["(record)"], total);
    assert_eq!(
        report["drift"].as_array().unwrap().len(),
        DRIFT_SHOWN,
        "bounded"
    );
    assert_eq!(report["drift_truncated"], true);

    // Every entry, page by page.
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page = get(
            &app,
            &format!("/v1/jobs/{job}/items?offset={offset}&limit=50"),
        )
        .await;
        assert_eq!(page["total"], total);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 50);
        seen.extend(
            items
                .iter()
                .map(|d| d["object"].as_str().unwrap().to_owned()),
        );
        match page["next_offset"].as_u64() {
            Some(next) => offset = next as usize,
            None => break,
        }
    }
    assert_eq!(seen.len(), total, "no entry twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    app.stop().await;
    fake.stop().await;
}

/// Stripe fails every charges listing: the sweep still compares and
/// repairs subscriptions and customers, names the failed part with its
/// cause (once), says "partial", and the CLI exits 3.
async fn a_failed_part_is_named_and_the_others_still_repair(backend: Backend) {
    use crate::fake_stripe::{set_subscription_status, Fault};

    let (db, fake, app) = setup(backend).await;
    let s = basil();
    fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(products(&app, &s.customer).await.len(), 1);
    // Canceled at Stripe; its event never arrived.
    fake.update(&s.subscription, |v| set_subscription_status(v, "canceled"));
    fake.fail_next(200, "/v1/charges", Fault::ServerError(500));

    let (_, report) = sweep(&app, false).await;
    assert_eq!(report["partial"], true, "{report}");
    let failed = report["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["part"], "charges");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("500"),
        "{report}"
    );
    assert!(report["subscriptions_checked"].as_u64().unwrap() >= 1);
    assert!(
        products(&app, &s.customer).await.is_empty(),
        "the subscriptions part still repaired: {report}"
    );

    // The CLI: the failed part named with its cause once, exit status 3.
    fake.update(&s.subscription, |v| set_subscription_status(v, "active"));
    let (url, dir, base) = (
        db.url.clone(),
        db.dir().to_owned(),
        fake.base_url().to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .arg("reconcile")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STRIPE_HOOKD_STATE_DIR", dir)
            .env("DATABASE_URL", url)
            .env("STRIPE_API_KEY", crate::fake_stripe::KEY)
            .env("STRIPE_HOOKD_STRIPE__API_BASE", base)
            .env("STRIPE_HOOKD_STRIPE__TIMEOUT_SECS", "2")
            .output()
            .expect("run stripe-hookd reconcile")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("failed: charges: Stripe API:"))
        .unwrap_or_else(|| panic!("the failed part is named: {stdout}\n{stderr}"));
    assert_eq!(line.matches("500").count(), 1, "the cause once: {line}");
    assert!(stderr.contains("partial sweep"), "{stderr}");
    assert_eq!(
        products(&app, &s.customer).await.len(),
        1,
        "the CLI's sweep repaired the subscription: {stdout}"
    );
    app.stop().await;
    fake.stop().await;
}
