//! `stripe-hookd demo`: the story, played in-process on each backend with a
//! short clock, ends in the records and access it implies; the binary plays
//! it to the end and cleans up (also when interrupted); `--open` runs
//! xdg-open or warns; live keys are refused; `serve` has no route to the
//! Stripe stand-in.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use stripe_hookd::testing::config::Signature;
use stripe_hookd::testing::demo::{self, Demo, Handled, Options};
use stripe_hookd::testing::reconcile::entitlements;
use stripe_hookd::testing::store::schema::{
    checkout_sessions, disputes, invoices, payment_intents, subscriptions,
};
use stripe_hookd::testing::store::{now_ms, outbox, with_conn};

use crate::backend_tests;
use crate::daemon::Daemon;
use crate::harness::*;

backend_tests!(
    the_story_ends_in_the_records_and_access_it_implies,
    the_app_verifies_standard_webhooks_and_sees_the_same_story,
);

/// Narration captured for the assertions (and echoed with TEST_LOG).
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Transcript {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transcript {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn the_story_ends_in_the_records_and_access_it_implies(backend: Backend) {
    the_story(backend, Signature::Stripe).await;
}

async fn the_app_verifies_standard_webhooks_and_sees_the_same_story(backend: Backend) {
    the_story(backend, Signature::Standard).await;
}

/// The Stripe event types the app handles in each step, sorted (events
/// of different objects are forwarded in parallel; one object's in order).
const APP_STEPS: [&[&str]; 7] = [
    &[
        "checkout.session.completed",
        "customer.created",
        "customer.subscription.created",
    ],
    &["customer.subscription.updated"],
    &[
        "invoice.paid",
        "invoice.payment_succeeded",
        "payment_intent.succeeded",
    ],
    &["customer.subscription.updated", "invoice.payment_failed"],
    &[
        "customer.subscription.updated",
        "customer.updated",
        "invoice.paid",
        "payment_method.attached",
    ],
    &["charge.dispute.created"],
    &[
        "customer.subscription.deleted",
        "customer.subscription.updated",
    ],
];

/// What the demo's app received, step by step: every request verified
/// in the scheme, each delivery handled once, each Stripe event of the
/// step (in order per object, sequences never falling), access granted and later
/// revoked, and `invoice.paid` answered 500 once and retried.
fn assert_the_app_side(outcome: &demo::StoryOutcome, text: &str) {
    let all: Vec<&demo::Received> = outcome.steps.iter().flat_map(|s| &s.app).collect();
    assert!(
        all.iter()
            .all(|r| !matches!(r.handled, Handled::Refused(_))),
        "every request verifies: {all:#?}"
    );
    assert!(
        !all.iter()
            .any(|r| matches!(r.handled, Handled::Stale { .. })),
        "{all:#?}"
    );
    // The redelivery of step 6: the same delivery id, not handled again.
    let duplicates: Vec<(usize, &str, &str)> = outcome
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.app.iter().map(move |r| (i + 1, r)))
        .filter(|(_, r)| r.handled == Handled::Duplicate)
        .map(|(i, r)| (i, r.event_type.as_str(), r.delivery_id.as_str()))
        .collect();
    let dispute = outcome.steps[5]
        .app
        .iter()
        .find(|r| r.handled == Handled::Applied)
        .expect("the dispute's delivery");
    assert_eq!(
        duplicates,
        [(6, "charge.dispute.created", dispute.delivery_id.as_str())],
        "{all:#?}"
    );
    for (step, expected) in outcome.steps.iter().zip(APP_STEPS) {
        let mut handled: Vec<&str> = step
            .app
            .iter()
            .filter(|r| r.handled == Handled::Applied && !r.event_type.starts_with("stripe_hookd."))
            .map(|r| r.event_type.as_str())
            .collect();
        handled.sort_unstable();
        assert_eq!(handled, expected, "{}: {:#?}", step.title, step.app);
    }
    // One object's deliveries in order, with rising sequences.
    let subscription: Vec<(&str, Option<i64>)> = all
        .iter()
        .filter(|r| r.handled == Handled::Applied && r.object_id == outcome.subscription)
        .map(|r| (r.event_type.as_str(), r.sequence))
        .collect();
    let types: Vec<&str> = subscription.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        types,
        [
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.updated",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.subscription.updated",
        ],
        "{all:#?}"
    );
    let sequences: Vec<i64> = subscription
        .iter()
        .map(|(t, s)| s.unwrap_or_else(|| panic!("{t} has no sequence")))
        .collect();
    // Events finished together follow one stored state: equal numbers.
    assert!(sequences.windows(2).all(|w| w[0] <= w[1]), "{sequences:?}");
    assert!(
        sequences[0] < sequences[sequences.len() - 1],
        "{sequences:?}"
    );
    // Access as the app heard it: granted at activation, revoked at the cancel.
    let access: Vec<(usize, Option<bool>)> = outcome
        .steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.app
                .iter()
                .filter(|r| r.event_type == "stripe_hookd.access.updated")
                .map(move |r| (i + 1, r.has_access))
        })
        .collect();
    assert_eq!(access.first(), Some(&(2, Some(true))), "{access:?}");
    assert_eq!(access.last(), Some(&(7, Some(false))), "{access:?}");
    assert!(
        access[..access.len() - 1]
            .iter()
            .all(|(_, a)| *a == Some(true)),
        "{access:?}"
    );
    // The 500 on purpose, then the retry of the same delivery.
    let paid: Vec<(&str, u32, &Handled)> = outcome.steps[2]
        .app
        .iter()
        .filter(|r| r.event_type == "invoice.paid")
        .map(|r| (r.delivery_id.as_str(), r.attempt, &r.handled))
        .collect();
    assert_eq!(paid.len(), 2, "{paid:?}");
    assert_eq!((paid[0].1, paid[0].2), (1, &Handled::FailedOnPurpose));
    assert_eq!((paid[1].1, paid[1].2), (2, &Handled::Applied));
    assert_eq!(paid[0].0, paid[1].0, "the retry keeps the delivery id");
    assert!(paid[0].0.starts_with("dlv_"), "{paid:?}");
    let failed_once = all
        .iter()
        .filter(|r| r.handled == Handled::FailedOnPurpose)
        .count();
    assert_eq!(failed_once, 1, "{all:#?}");
    // The narration says so.
    for expected in [
        "not handled again",
        "your app (demo-app",
        "answered 500 (on purpose)",
        "the retry succeeded",
        "has_access: true",
        "has_access: false",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

async fn the_story(backend: Backend, signature: Signature) {
    let db = TestDb::new(backend);
    let options = Options {
        step_delay: Duration::from_millis(10),
        api_key: None,
        // SQLite: the demo's own throwaway file; Postgres: the test's database.
        database_url: (backend == Backend::Postgres).then(|| db.url.clone()),
        signature,
    };
    let demo = Demo::start(&options).await.expect("the demo starts");
    let mut transcript = Transcript::default();
    let outcome = demo
        .run_story(&mut transcript, options.step_delay)
        .await
        .expect("the story plays");
    let text = transcript.text();
    if std::env::var("TEST_LOG").is_ok() {
        println!("{text}");
    }
    assert_the_app_side(&outcome, &text);

    // Every delivery was answered 200; the redeliveries were recognised.
    let deliveries: Vec<_> = outcome.steps.iter().flat_map(|s| &s.deliveries).collect();
    assert!(deliveries.iter().all(|d| d.http_status == 200));
    let duplicates = deliveries.iter().filter(|d| d.duplicate).count();
    assert_eq!(duplicates, 2, "invoice.paid and the dispute come twice");
    assert!(
        text.contains("twice") && text.contains("out of order"),
        "{text}"
    );
    for d in &deliveries {
        let expected = if d.event_type == "payment_method.attached" {
            "ignored"
        } else {
            "done"
        };
        assert_eq!(d.status, expected, "{} {}", d.event_type, d.event_id);
    }

    // Access along the way: none while incomplete, granted while active and
    // during the past_due grace, none after the cancel.
    let along: Vec<(Option<&str>, bool)> = outcome
        .steps
        .iter()
        .map(|s| (s.subscription_status.as_deref(), s.access))
        .collect();
    assert_eq!(
        along,
        vec![
            (Some("incomplete"), false),
            (Some("active"), true),
            (Some("active"), true),
            (Some("past_due"), true),
            (Some("active"), true),
            (Some("active"), true),
            (Some("canceled"), false),
        ],
        "{text}"
    );
    let grace_end = outcome.steps[3].access_until.expect("a grace end");
    let now = now_ms();
    assert!(grace_end > now - 600_000 && grace_end <= now + 72 * 3600 * 1000);
    assert!(
        outcome.steps[4].access_until.is_none(),
        "active: no grace clock"
    );

    // The final records, from the database.
    let o = outcome.clone();
    let store = demo.store().clone();
    let (sub, invoices_paid, dispute, session, payment, stored) =
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn().unwrap();
            let c = &mut *conn;
            let sub: (String, Option<String>) = with_conn!(c, c => subscriptions::table
                .find(&o.subscription)
                .select((subscriptions::status, subscriptions::customer_id))
                .first(c)
                .unwrap());
            let invoices_paid: Vec<Option<String>> = o
                .invoices
                .iter()
                .map(|id| {
                    with_conn!(c, c => invoices::table.find(id).select(invoices::status).first(c).unwrap())
                })
                .collect();
            let dispute: Option<String> = with_conn!(c, c => disputes::table
                .find(&o.dispute)
                .select(disputes::status)
                .first(c)
                .unwrap());
            let session: (Option<String>, Option<String>, Option<String>) =
                with_conn!(c, c => checkout_sessions::table
                    .find(&o.checkout_session)
                    .select((
                        checkout_sessions::customer_id,
                        checkout_sessions::subscription_id,
                        checkout_sessions::client_reference_id,
                    ))
                    .first(c)
                    .unwrap());
            let payment: Option<String> = with_conn!(c, c => payment_intents::table
                .find(&o.payment_intent)
                .select(payment_intents::status)
                .first(c)
                .unwrap());
            let stored = outbox::count(c).unwrap();
            (sub, invoices_paid, dispute, session, payment, stored)
        })
        .await
        .unwrap();
    assert_eq!(sub, ("canceled".to_owned(), Some(outcome.customer.clone())));
    assert_eq!(
        invoices_paid,
        vec![Some("paid".to_owned()), Some("paid".to_owned())],
        "the first invoice and the renewal"
    );
    assert_eq!(dispute.as_deref(), Some("needs_response"));
    assert_eq!(
        session,
        (
            Some(outcome.customer.clone()),
            Some(outcome.subscription.clone()),
            Some(outcome.client_reference_id.clone())
        )
    );
    assert_eq!(payment.as_deref(), Some("succeeded"));
    assert_eq!(
        stored as usize,
        deliveries.len() - duplicates,
        "each event stored once"
    );

    // Access now: none, by customer and by the application's user id; the
    // entitlement row stays, granting nothing.
    let (customer, reference) = (
        outcome.customer.clone(),
        outcome.client_reference_id.clone(),
    );
    let store = demo.store().clone();
    let (now_customer, now_reference, rows) = tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        let now = now_ms();
        (
            entitlements::for_customer(&mut conn, &customer, now).unwrap(),
            entitlements::for_reference(&mut conn, &reference, now).unwrap(),
            entitlements::for_customer_all(&mut conn, &customer).unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(
        now_customer.is_empty() && now_reference.is_empty(),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].grants);
    assert_eq!(rows[0].status, "canceled");

    // The admin API (the inspector's data) shows the same, with the run's
    // one-time token and only with it.
    let client = client();
    let events: serde_json::Value = client
        .get(format!("{}/v1/events?limit=1000", demo.admin_url()))
        .bearer_auth(demo.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = events["events"].as_array().unwrap();
    assert_eq!(listed.len(), deliveries.len() - duplicates);
    assert!(listed
        .iter()
        .all(|e| e["status"] == "done" || e["status"] == "ignored"));
    let refused = client
        .get(format!("{}/v1/events", demo.admin_url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "another token is refused");

    // The summary prints the list and the access view.
    let mut summary = Transcript::default();
    demo.print_summary(&mut summary, &outcome).await.unwrap();
    let summary = summary.text();
    assert!(summary.contains(&outcome.subscription) && summary.contains("no access"));
    assert!(summary.contains("payment_method.attached") && summary.contains("ignored"));
    assert!(
        summary
            .contains("1 answered 500 on purpose, then retried; 1 redelivered, not handled again"),
        "{summary}"
    );

    // The inspector's event page lists the event's deliveries: the retried
    // invoice.paid went to the app in two attempts.
    let paid = &outcome.steps[2]
        .app
        .iter()
        .find(|r| r.event_type == "invoice.paid")
        .expect("invoice.paid reached the app")
        .event_id;
    let shown: serde_json::Value = client
        .get(format!("{}/ui/events/{paid}/deliveries", demo.admin_url()))
        .bearer_auth(demo.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = shown["deliveries"].as_array().expect("deliveries");
    assert_eq!(rows.len(), 1, "{shown}");
    assert_eq!(rows[0]["destination"], demo::APP_DESTINATION, "{shown}");
    assert_eq!(rows[0]["status"], "delivered", "{shown}");
    assert_eq!(rows[0]["attempts"], 2, "{shown}");
    demo.stop().await.expect("the demo stops cleanly");
}

/// The demo command, as in the README, with a short clock: it plays the
/// story to the end, prints the summary, exits 0 and deletes its database.
/// A test key in the environment is neither refused nor used.
#[test]
fn the_binary_plays_the_story_and_cleans_up() {
    for (scheme, name) in [("stripe", "Stripe's"), ("standard", "Standard Webhooks'")] {
        the_binary_plays_the_story(scheme, name);
    }
}

fn the_binary_plays_the_story(scheme: &str, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .args([
            "demo",
            "--exit",
            "--step-delay",
            "10ms",
            "--signature",
            scheme,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TMPDIR", tmp.path())
        .env("STRIPE_API_KEY", "sk_test_not_used_by_the_demo")
        .stdin(Stdio::null())
        .output()
        .expect("run stripe-hookd demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The stand-in holds every object the story names: nothing to warn of
    // (the dispute's charge was missing and logged as gone).
    for level in ["WARN", "ERROR"] {
        assert!(
            !stdout.contains(level) && !stderr.contains(level),
            "the demo logs {level}:\n{stdout}\n{stderr}"
        );
    }
    for expected in [
        "inspector    http://127.0.0.1:",
        "admin token  ",
        "Step 1: A customer checks out",
        "Step 7: Jenny cancels",
        "subscription: canceled · access now: none",
        "The events (as `stripe-hookd events list` shows them)",
        "Access now",
        "no access",
        &format!("your app (demo-app, verifying {name} signature) received:"),
        "invoice.paid                       try 1 ",
        "answered 500 (on purpose)",
        "the retry succeeded",
        "not handled again",
        "stripe_hookd.access.updated",
        &format!("── Your app ({name} signature)"),
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let db_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("database"))
        .expect("the database line");
    assert!(
        db_line.contains(&*tmp.path().to_string_lossy()),
        "{db_line}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "the throwaway directory is deleted: {leftovers:?}"
    );
}

/// A live key, given or configured, stops the demo before anything starts.
#[test]
fn a_live_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, "[stripe]\napi_key = \"rk_live_from_the_file\"\n").unwrap();
    // (arguments, environment, where the refusal says the key came from)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![("STRIPE_API_KEY", "sk_live_from_the_environment")],
            "stripe.api_key",
        ),
        (
            vec![],
            vec![("STRIPE_HOOKD_STRIPE__API_KEY", "sk_live_prefixed")],
            "stripe.api_key",
        ),
        (vec!["--api-key", "rk_live_given"], vec![], "--api-key"),
        (
            vec!["--config", config.to_str().unwrap()],
            vec![],
            "stripe.api_key",
        ),
    ];
    for (args, env, origin) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .args(["demo", "--exit", "--step-delay", "0s"])
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", tmp.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run stripe-hookd demo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}: {stdout}");
        assert!(
            stderr.contains("live Stripe key") && stderr.contains(origin),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(!stdout.contains("Step 1"), "nothing ran: {stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != "config.toml")
        .collect();
    assert!(left.is_empty(), "no demo directory was made: {left:?}");
}

/// In-process too: `Demo::start` refuses a live `--api-key` and any key
/// that is not a test key.
#[tokio::test]
async fn the_library_refuses_live_and_malformed_keys() {
    for (key, message) in [
        ("sk_live_x", "live Stripe key"),
        ("rk_live_x", "live Stripe key"),
        ("pk_test_x", "not a Stripe test key"),
    ] {
        let options = Options {
            api_key: Some(key.to_owned()),
            ..Options::default()
        };
        let err = match Demo::start(&options).await {
            Ok(demo) => {
                demo.stop().await.unwrap();
                panic!("{key} was accepted");
            }
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(message), "{key}: {err}");
    }
    assert!(demo::refuse_live_keys([("x", Some("sk_test_ok"))]).is_ok());
}

/// `serve` never serves or reaches the stand-in: its API base is Stripe's
/// unless configured (the stand-in's port and key are made up inside a
/// `demo` process), and its listeners have none of the stand-in's routes.
#[test]
fn serve_has_no_route_to_the_fake() {
    let config = stripe_hookd::testing::config::from_toml_str("").unwrap();
    assert_eq!(config.stripe.api_base, "https://api.stripe.com");
    // Only src/demo/ names the stand-in: no other part of the daemon can start it.
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "{files:?}");
    // src/testing.rs is the tests' own facade (it re-exports the stand-in
    // for them); nothing in the daemon uses it.
    let facade = src.join("testing.rs");
    for file in files
        .iter()
        .filter(|f| !f.starts_with(src.join("demo")) && **f != facade)
    {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            !text.contains("fake_stripe") && !text.contains("FakeStripe"),
            "{} names the Stripe stand-in",
            file.display()
        );
    }

    let db = TestDb::new(Backend::Sqlite);
    let daemon = Daemon::spawn(&db, &[("STRIPE_HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let admin = loop {
        if let Some(admin) = daemon.admin_addr() {
            break admin;
        }
        assert!(
            Instant::now() < deadline,
            "no admin address: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = client();
        for base in [format!("http://{}", daemon.addr), format!("http://{admin}")] {
            for path in [
                "/v1/account",
                "/v1/subscriptions",
                "/v1/customers/cus_demo",
                "/v1/events",
            ] {
                let res = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(ADMIN_TOKEN)
                    .send()
                    .await
                    .unwrap();
                let request_id = res.headers().get("request-id").is_some();
                let status = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                // The admin API's own event list is the one answer allowed.
                if base.ends_with(&admin.port().to_string()) && path == "/v1/events" {
                    assert_eq!(status, 200);
                    assert!(body.get("events").is_some(), "{body}");
                    continue;
                }
                assert_eq!(status, 404, "{base}{path}: {body}");
                assert!(!request_id, "{base}{path}: a Stripe-like answer");
                assert!(body.get("object").is_none(), "{base}{path}: {body}");
            }
        }
    });
}

/// Ctrl-C (or SIGTERM) mid-story and while serving stops the daemon and
/// deletes the throwaway directory, exiting 0.
#[test]
fn an_interrupt_stops_the_demo_and_deletes_its_directory() {
    use std::io::{BufRead, BufReader};
    for (signal, args, wait_for) in [
        // Mid-story: the pause after step 1 is a minute long.
        ("-INT", vec!["--step-delay", "60s"], "── Step 1"),
        (
            "-TERM",
            vec!["--step-delay", "10ms"],
            "keeps serving until Ctrl-C",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .arg("demo")
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn stripe-hookd demo");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(wait_for) => break,
                Ok(_) => {}
                Err(e) => panic!("{wait_for:?} never came ({e})"),
            }
        }
        // A directory exists while the demo runs.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = child.wait().unwrap();
        let all = reader.join().unwrap();
        assert!(status.success(), "{signal}: {status:?}\n{all}");
        assert!(all.contains("the demo's database is deleted"), "{all}");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left behind {left:?}");
    }
}

/// `--open` hands the inspector's URL to xdg-open; without one the demo
/// warns and goes on.
#[test]
fn open_starts_a_browser_or_warns() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = tmp.path().join("opened");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = |path: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .args(["demo", "--open", "--exit", "--step-delay", "0s"])
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .output()
            .expect("run stripe-hookd demo");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
    };

    let stdout = run(&bin);
    let inspector = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("inspector"))
        .map(str::trim)
        .expect("the inspector line")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !opened.exists() || std::fs::read_to_string(&opened).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "xdg-open was not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), inspector);
    assert!(!stdout.contains("warning"), "{stdout}");

    let stdout = run(&empty);
    assert!(
        stdout.contains("warning: cannot open a browser") && stdout.contains("Step 7"),
        "{stdout}"
    );
}
