//! `stripe-hookd setup` and the endpoint part of `check`, against the fake
//! Stripe's webhook endpoints and event destinations: create once (the
//! secret shown only then), find it again and change nothing, repair what
//! the Dashboard changed (a disabled destination is enabled again); `check`
//! reports a missing, disabled (with Stripe's reason and what to do),
//! incomplete or differently versioned Stripe-side endpoint, and any other
//! status details Stripe gives.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use stripe_hookd::testing::cli::check::{self, Verdict};
use stripe_hookd::testing::cli::setup::{self, Action, SetupOptions};
use stripe_hookd::testing::config;
use stripe_hookd::testing::reconcile::event_types;
use stripe_hookd::testing::stripe::{ClientOptions, StripeClient};

use crate::backend_tests;
use crate::fake_stripe::{FakeStripe, KEY};
use crate::harness::*;

backend_tests!(check_compares_the_stripe_side_endpoint_with_the_daemons_needs,);

const URL: &str = "https://hooks.example.com/webhooks/stripe";

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(ClientOptions {
        api_base: fake.base_url().to_owned(),
        api_key: SecretString::from(KEY),
        api_version: API_VERSION.to_owned(),
        timeout: Duration::from_secs(30),
        max_retries: 2,
        requests_per_sec: 1000,
    })
    .unwrap()
}

fn options(thin: bool) -> SetupOptions {
    SetupOptions {
        url: URL.to_owned(),
        thin,
        dry_run: false,
        adopt: false,
        api_version: API_VERSION.to_owned(),
    }
}

fn posts(fake: &FakeStripe) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

#[tokio::test]
async fn setup_creates_a_webhook_endpoint_once_and_then_keeps_it_right() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let client = client(&fake);

    let dry = setup::run(
        &client,
        &SetupOptions {
            dry_run: true,
            ..options(false)
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.action, Action::WouldCreate);
    assert_eq!(posts(&fake), 0, "a dry run changes nothing");

    let created = setup::run(&client, &options(false)).await.unwrap();
    assert_eq!(created.action, Action::Created);
    let secret = created.secret.as_ref().expect("the secret, on create");
    assert!(secret.expose_secret().starts_with("whsec_"));
    let endpoints = fake.webhook_endpoints();
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    assert_eq!(ep["url"], URL);
    assert_eq!(ep["api_version"], API_VERSION, "created at the pin");
    assert_eq!(ep["metadata"][setup::METADATA_KEY], setup::METADATA_VALUE);
    let mut events: Vec<String> = serde_json::from_value(ep["enabled_events"].clone()).unwrap();
    events.sort();
    assert_eq!(
        events,
        event_types::wanted(false),
        "exactly the handled types"
    );

    // Again: found, nothing to change, no secret.
    let before = posts(&fake);
    let again = setup::run(&client, &options(false)).await.unwrap();
    assert_eq!(again.action, Action::UpToDate);
    assert!(again.secret.is_none());
    assert_eq!(again.id, created.id);
    assert_eq!(posts(&fake), before, "nothing written when up to date");

    // Someone disabled it, removed an event type and added one of their own
    // in the Dashboard: setup adds back what is missing and enables it, and
    // keeps the type it does not use (the app may want it).
    let id = created.id.clone().unwrap();
    fake.edit_endpoint(&id, |e| {
        e["status"] = json!("disabled");
        e["enabled_events"] = json!(["invoice.paid", "product.updated"]);
    });
    let repaired = setup::run(&client, &options(false)).await.unwrap();
    assert_eq!(repaired.action, Action::Updated);
    let findings = repaired.findings.unwrap();
    assert!(findings.disabled);
    assert!(findings
        .missing
        .contains(&"customer.subscription.updated".to_owned()));
    assert_eq!(findings.extra, vec!["product.updated".to_owned()]);
    let change = repaired.change.unwrap();
    assert_eq!(change.add_events, findings.missing);
    assert!(change.enable && !change.adopt, "{change:?}");
    assert!(repaired.secret.is_none(), "an update shows no secret");
    let endpoints = fake.webhook_endpoints();
    assert_eq!(endpoints.len(), 1, "updated in place, not duplicated");
    assert_eq!(endpoints[0]["status"], "enabled");
    let mut events: Vec<String> =
        serde_json::from_value(endpoints[0]["enabled_events"].clone()).unwrap();
    events.sort();
    let mut expected = event_types::wanted(false);
    expected.push("product.updated".to_owned());
    expected.sort();
    assert_eq!(events, expected, "added to, never narrowed");

    // An endpoint at another version: kept (Stripe cannot change it), warned about.
    fake.edit_endpoint(&id, |e| e["api_version"] = json!("2025-03-31.basil"));
    let warned = setup::run(&client, &options(false)).await.unwrap();
    assert_eq!(warned.action, Action::UpToDate);
    assert!(
        warned
            .warnings
            .iter()
            .any(|w| w.contains("2025-03-31.basil")),
        "{:?}",
        warned.warnings
    );

    // The secret file, as the systemd credential reads it; a temporary
    // file left by an earlier run (mode 0644) must not lend its mode.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhook_secret");
    std::fs::write(&path, "whsec_old").unwrap();
    std::fs::write(dir.path().join(".webhook_secret.tmp"), "").unwrap();
    setup::write_secret(&path, secret).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        secret.expose_secret()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    fake.stop().await;
}

/// An endpoint the operator made in the Dashboard, sending every type (`*`)
/// to the URL setup is asked for: setup changes nothing on it unless told
/// to adopt it, and then only adds its metadata — `*`, the description and
/// the other metadata stay.
#[tokio::test]
async fn setup_never_narrows_or_takes_over_an_endpoint_it_did_not_create() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let client = client(&fake);
    let made = client
        .post_form(
            "/v1/webhook_endpoints",
            &[
                ("url".to_owned(), URL.to_owned()),
                ("enabled_events[]".to_owned(), "*".to_owned()),
                (
                    "description".to_owned(),
                    "ours, from the Dashboard".to_owned(),
                ),
                ("metadata[team]".to_owned(), "billing".to_owned()),
            ],
        )
        .await
        .unwrap();
    let id = made.json["id"].as_str().unwrap().to_owned();
    let before = posts(&fake);

    for dry_run in [false, true] {
        let refused = setup::run(
            &client,
            &SetupOptions {
                dry_run,
                ..options(false)
            },
        )
        .await
        .unwrap_err();
        let message = format!("{refused:#}");
        assert!(
            message.contains(&id)
                && message.contains("did not create")
                && message.contains("--adopt"),
            "{message}"
        );
    }
    assert_eq!(posts(&fake), before, "nothing written without --adopt");

    let dry = setup::run(
        &client,
        &SetupOptions {
            dry_run: true,
            adopt: true,
            ..options(false)
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.action, Action::WouldUpdate);
    let change = dry.change.unwrap();
    assert!(
        change.adopt && change.add_events.is_empty() && !change.enable,
        "{change:?}"
    );
    assert_eq!(
        change.lines(true),
        vec![format!(
            "would adopt it (metadata {}={})",
            setup::METADATA_KEY,
            setup::METADATA_VALUE
        )]
    );
    assert_eq!(posts(&fake), before, "a dry run changes nothing");

    let adopted = setup::run(
        &client,
        &SetupOptions {
            adopt: true,
            ..options(false)
        },
    )
    .await
    .unwrap();
    assert_eq!(adopted.action, Action::Updated);
    let endpoints = fake.webhook_endpoints();
    assert_eq!(endpoints.len(), 1);
    let ep = &endpoints[0];
    assert_eq!(ep["enabled_events"], json!(["*"]), "`*` is never narrowed");
    assert_eq!(ep["description"], "ours, from the Dashboard");
    assert_eq!(ep["metadata"]["team"], "billing");
    assert_eq!(ep["metadata"][setup::METADATA_KEY], setup::METADATA_VALUE);

    // Now it is setup's: found as such, nothing to change.
    let again = setup::run(&client, &options(false)).await.unwrap();
    assert_eq!(again.action, Action::UpToDate);
    fake.stop().await;
}

#[tokio::test]
async fn setup_thin_creates_an_event_destination_with_v1_types() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let client = client(&fake);
    // A snapshot endpoint at the same URL is not the thin destination.
    setup::run(&client, &options(false)).await.unwrap();

    let created = setup::run(&client, &options(true)).await.unwrap();
    assert_eq!(created.action, Action::Created);
    assert!(created.secret.is_some(), "asked for with include[]");
    let destinations = fake.event_destinations();
    assert_eq!(destinations.len(), 1);
    let d = &destinations[0];
    assert_eq!(d["event_payload"], "thin");
    assert_eq!(d["type"], "webhook_endpoint");
    assert_eq!(d["webhook_endpoint"]["url"], URL);
    assert!(
        d["webhook_endpoint"]["signing_secret"].is_null(),
        "not stored readable"
    );
    let mut events: Vec<String> = serde_json::from_value(d["enabled_events"].clone()).unwrap();
    events.sort();
    assert_eq!(events, event_types::wanted(true));
    assert!(events.contains(&"v1.customer.subscription.updated".to_owned()));
    assert!(events.contains(&"v2.core.health.event_generation_failure.resolved".to_owned()));

    let again = setup::run(&client, &options(true)).await.unwrap();
    assert_eq!(again.action, Action::UpToDate);
    assert!(again.secret.is_none());

    // Stripe shows a destination's URL only when asked: the list asked.
    assert!(
        fake.requests().iter().any(|r| r.method == "GET"
            && r.path == "/v2/core/event_destinations"
            && r.query.contains("include=webhook_endpoint.url")),
        "{:?}",
        fake.requests()
    );

    let id = created.id.clone().unwrap();
    fake.edit_endpoint(&id, |e| e["enabled_events"] = json!(["v1.invoice.paid"]));
    let repaired = setup::run(&client, &options(true)).await.unwrap();
    assert_eq!(repaired.action, Action::Updated);
    assert_eq!(fake.event_destinations().len(), 1);
    let mut events: Vec<String> =
        serde_json::from_value(fake.event_destinations()[0]["enabled_events"].clone()).unwrap();
    events.sort();
    assert_eq!(events, event_types::wanted(true));

    // Disabled by someone (Stripe's disable: status_details say `user`):
    // setup enables it again.
    client
        .post_json(
            &format!("/v2/core/event_destinations/{id}/disable"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(fake.event_destinations()[0]["status"], "disabled");
    let enabled = setup::run(&client, &options(true)).await.unwrap();
    assert_eq!(enabled.action, Action::Updated);
    let findings = enabled.findings.unwrap();
    assert!(findings.disabled);
    assert_eq!(findings.disabled_reason.as_deref(), Some("user"));
    let d = &fake.event_destinations()[0];
    assert_eq!(d["status"], "enabled", "{d}");
    assert!(d["status_details"].is_null(), "{d}");
    assert_eq!(fake.event_destinations().len(), 1);
    fake.stop().await;
}

async fn endpoint_checks(db: &TestDb, fake: &FakeStripe, thin: bool) -> Vec<check::Check> {
    let toml = format!(
        "[[endpoints]]\nname = \"default\"\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [\"{SECRET}\"]\nthin = {thin}\n"
    );
    let mut config = config::from_toml_str(&toml).expect("config");
    config.state_dir = db.dir().to_owned();
    config.database.url = Some(db.url.clone().into());
    config.stripe.api_key = Some(KEY.into());
    config.stripe.api_base = fake.base_url().to_owned();
    config.stripe.api_version = API_VERSION.to_owned();
    check::run(Ok(config))
        .await
        .into_iter()
        .filter(|c| c.name == "stripe-endpoint")
        .collect()
}

async fn check_compares_the_stripe_side_endpoint_with_the_daemons_needs(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let client = client(&fake);

    let none = endpoint_checks(&db, &fake, false).await;
    assert_eq!(none.len(), 1, "{none:?}");
    assert_eq!(none[0].verdict, Verdict::Warn);
    assert!(
        none[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("stripe-hookd setup"),
        "{none:?}"
    );

    let created = setup::run(&client, &options(false)).await.unwrap();
    let id = created.id.unwrap();
    let ok = endpoint_checks(&db, &fake, false).await;
    assert_eq!(ok[0].verdict, Verdict::Ok, "{ok:?}");

    fake.edit_endpoint(&id, |e| e["api_version"] = json!("2025-03-31.basil"));
    let version = endpoint_checks(&db, &fake, false).await;
    assert_eq!(version[0].verdict, Verdict::Warn, "{version:?}");
    assert!(
        version[0].detail.contains("2025-03-31.basil"),
        "{version:?}"
    );

    fake.edit_endpoint(&id, |e| {
        e["api_version"] = json!(API_VERSION);
        e["enabled_events"] = json!(["invoice.paid"]);
    });
    let missing = endpoint_checks(&db, &fake, false).await;
    assert_eq!(missing[0].verdict, Verdict::Fail, "{missing:?}");
    assert!(
        missing[0].detail.contains("customer.subscription.updated"),
        "{missing:?}"
    );

    fake.edit_endpoint(&id, |e| e["status"] = json!("disabled"));
    let disabled = endpoint_checks(&db, &fake, false).await;
    assert_eq!(disabled[0].verdict, Verdict::Fail, "{disabled:?}");
    assert!(disabled[0].detail.contains("disabled"), "{disabled:?}");
    let fix = disabled[0].fix.as_deref().unwrap();
    assert!(
        fix.contains("stripe-hookd setup") && fix.contains("catch-up"),
        "{fix}"
    );

    // A thin endpoint is looked for among the event destinations.
    let thin_missing = endpoint_checks(&db, &fake, true).await;
    assert_eq!(thin_missing[0].verdict, Verdict::Warn, "{thin_missing:?}");
    assert!(thin_missing[0].fix.as_deref().unwrap().contains("--thin"));
    let destination = setup::run(&client, &options(true))
        .await
        .unwrap()
        .id
        .unwrap();
    let thin_ok = endpoint_checks(&db, &fake, true).await;
    assert_eq!(thin_ok[0].verdict, Verdict::Ok, "{thin_ok:?}");

    // Disabled (Stripe's `status_details.disabled.reason`): FAIL, with the
    // reason and what to do.
    client
        .post_json(
            &format!("/v2/core/event_destinations/{destination}/disable"),
            &json!({}),
        )
        .await
        .unwrap();
    let thin_disabled = endpoint_checks(&db, &fake, true).await;
    assert_eq!(thin_disabled[0].verdict, Verdict::Fail, "{thin_disabled:?}");
    assert!(
        thin_disabled[0].detail.contains("disabled")
            && thin_disabled[0].detail.contains("reason: user"),
        "{thin_disabled:?}"
    );
    let fix = thin_disabled[0].fix.as_deref().unwrap();
    assert!(fix.contains("--thin") && fix.contains("catch-up"), "{fix}");

    // Enabled, but Stripe reports other status details: shown as a warning.
    fake.edit_endpoint(&destination, |e| {
        e["status"] = json!("enabled");
        e["status_details"] =
            json!({"disabled": null, "failing": {"since": "2026-11-29T10:00:00.000Z"}});
    });
    let details = endpoint_checks(&db, &fake, true).await;
    assert_eq!(details[0].verdict, Verdict::Warn, "{details:?}");
    assert!(details[0].detail.contains("failing"), "{details:?}");
    fake.stop().await;
}

/// Runs the real binary's `setup` against the fake; returns (exit code, stdout).
fn setup_command(dir: &std::path::Path, base: &str, args: &[&str]) -> (Option<i32>, String) {
    let (code, out, _) = setup_command_err(dir, base, args);
    (code, out)
}

/// [`setup_command`], with stderr too.
fn setup_command_err(
    dir: &std::path::Path,
    base: &str,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .arg("setup")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_HOOKD_STATE_DIR", dir)
        .env("STRIPE_API_KEY", KEY)
        .env("STRIPE_API_BASE", base)
        .output()
        .expect("run setup");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_command_shows_the_secret_once_or_writes_it_to_the_credential() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let dir = tempfile::tempdir().unwrap();
    let base = fake.base_url().to_owned();
    let (code, out) = setup_command(dir.path(), &base, &["--url", URL]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("created the webhook endpoint"), "{out}");
    assert!(
        out.contains("signing secret (shown only now): whsec_"),
        "{out}"
    );
    let (code, out) = setup_command(dir.path(), &base, &["--url", URL]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("up to date"), "{out}");
    assert!(
        !out.contains("whsec_"),
        "the secret is shown only on create: {out}"
    );

    let credential = dir.path().join("webhook_secret");
    let (code, out) = setup_command(
        dir.path(),
        &base,
        &[
            "--url",
            URL,
            "--thin",
            "--secret-file",
            credential.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("whsec_"), "written, not printed: {out}");
    let written = std::fs::read_to_string(&credential).unwrap();
    assert!(
        written.starts_with("whsec_") && !written.ends_with('\n'),
        "{written:?}"
    );
    assert_eq!(fake.event_destinations().len(), 1);

    let (code, out) = setup_command(dir.path(), &base, &["--url", "hooks.example.com/x"]);
    assert_ne!(code, Some(0), "{out}");

    // A secret file that cannot be written is found before anything is
    // created at Stripe (else the only copy of the secret would be lost).
    let created_before = fake.event_destinations().len();
    let nowhere = dir.path().join("no-such-directory").join("webhook_secret");
    let (code, out, err) = setup_command_err(
        dir.path(),
        &base,
        &[
            "--url",
            "https://other.example.com/webhooks/stripe",
            "--thin",
            "--secret-file",
            nowhere.to_str().unwrap(),
        ],
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        err.contains("no-such-directory") && err.contains("nothing was changed at Stripe"),
        "{err}"
    );
    assert_eq!(
        fake.event_destinations().len(),
        created_before,
        "nothing created"
    );
    fake.stop().await;
}
