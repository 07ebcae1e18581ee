//! Forwarding that every stack can take: a destination with
//! `signature = "standard"` gets Standard Webhooks requests that the spec's
//! own Python library (`standardwebhooks`, from PyPI; not our code) verifies,
//! with a `webhook-id` that a retry keeps; and a reconciled delivery carries
//! its object's place in the order of fetches (`Stripe-Hookd-Sequence`),
//! a received one none.
//!
//! The Python verifier lives in a virtualenv made once per machine
//! (`$STRIPE_HOOKD_TEST_VENV`, default `~/.cache/stripe-hookd/test-venv`,
//! the way scripts/bench.sh keeps its peer's). Without Python or pip the
//! test fails and says so; `STRIPE_HOOKD_SKIP_PYTHON=1` skips only the
//! Python verification (the rest of the test still runs).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;
use stripe_hookd::testing::config::{After, Signature};
use stripe_hookd::testing::store::deliveries;

use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::forward::{customer_event, destination, forwarder};
use crate::harness::{snapshot_event, AppOptions, Backend, TestApp, TestDb};

/// A Standard Webhooks secret: `whsec_` and the base64 of 32 bytes.
pub(crate) const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/LNsWp9DFzA=";

/// One request as the app got it: every header (lower-case names) and the
/// body, unverified.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The `id` of the event in the body.
    pub(crate) fn body_event_id(&self) -> String {
        let event: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
        event["id"].as_str().unwrap_or_default().to_owned()
    }
}

/// An app that records every request and answers 500 to the first
/// request of each event listed in `fail_first`, 200 to the rest.
pub(crate) struct Recorder {
    base: String,
    got: Arc<Mutex<Vec<Request>>>,
}

impl Recorder {
    pub(crate) fn start(fail_first: Vec<String>) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let got: Arc<Mutex<Vec<Request>>> = Arc::default();
        let state = (got.clone(), Arc::new(Mutex::new(fail_first)));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(record))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        Recorder { base, got }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn got(&self, path: &str) -> Vec<Request> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

type RecorderState = (Arc<Mutex<Vec<Request>>>, Arc<Mutex<Vec<String>>>);

async fn record(state: web::Data<RecorderState>, req: HttpRequest, body: String) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let event_id = event["id"].as_str().unwrap_or("").to_owned();
    state.0.lock().unwrap().push(Request {
        path: req.path().to_owned(),
        headers,
        body,
    });
    let mut fail_first = state.1.lock().unwrap();
    if let Some(at) = fail_first.iter().position(|id| *id == event_id) {
        fail_first.remove(at);
        return HttpResponse::InternalServerError().body("once");
    }
    HttpResponse::Ok().body("ok")
}

backend_tests!(
    standard_deliveries_verify_with_the_specs_own_library_and_keep_their_id_across_retries,
    reconciled_deliveries_carry_their_objects_fetch_order_and_received_ones_none,
    while_a_secret_rolls_apps_holding_the_old_or_the_new_secret_both_verify,
);

async fn standard_deliveries_verify_with_the_specs_own_library_and_keep_their_id_across_retries(
    backend: Backend,
) {
    let db = TestDb::new(backend);
    let first = customer_event("customer.created", "cus_std1");
    let second = customer_event("customer.updated", "cus_std2");
    let first_id = first["id"].as_str().unwrap().to_owned();
    let app_side = Recorder::start(vec![first_id.clone()]);
    let d = destination(&app_side.url("/hooks"), |d| {
        d.signature = Signature::Standard;
        d.secret = STANDARD_SECRET.into();
    });
    let options = crate::forward::with_destination(d);
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    for event in [&first, &second] {
        app.deliver_ok(event).await;
    }
    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!((tally.delivered, tally.retried), (1, 1), "{tally:?}");
    // The retry, an hour of backoff later.
    clock.advance(Duration::from_secs(3600));
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 1, "{tally:?}");

    let got = app_side.got("/hooks");
    assert_eq!(got.len(), 3, "{got:#?}");
    for r in &got {
        assert_eq!(r.header("stripe-signature"), None, "{r:#?}");
        let event: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let delivery = deliveries::delivery_id("app", event["id"].as_str().unwrap());
        assert_eq!(r.header("webhook-id"), Some(delivery.as_str()), "{r:#?}");
        assert_eq!(r.header("stripe-hookd-delivery"), Some(delivery.as_str()));
        let t: i64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((crate::harness::now() - t).abs() < 600, "{r:#?}");
        assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
    }
    let attempts_of_first: Vec<(&str, &str)> = got
        .iter()
        .filter(|r| r.body.contains(&first_id))
        .map(|r| {
            (
                r.header("webhook-id").unwrap(),
                r.header("stripe-hookd-attempt").unwrap(),
            )
        })
        .collect();
    let id = deliveries::delivery_id("app", &first_id);
    assert_eq!(
        attempts_of_first,
        vec![(id.as_str(), "1"), (id.as_str(), "2")],
        "a retry keeps its webhook-id"
    );
    // The body as Stripe sent it, byte for byte.
    let sent = first.to_string();
    assert!(got.iter().any(|r| r.body == sent));

    // The spec's own library agrees, and refuses the requests under another
    // secret or with a body changed.
    let verdicts = python_verify(STANDARD_SECRET, &got);
    assert_eq!(verdicts, Some(vec!["ok".to_owned(); 3]));
    let other = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    let refused = python_verify(other, &got[..1]);
    assert_eq!(refused, Some(vec!["refused".to_owned()]));
    let mut tampered = got[0].clone();
    tampered.body = tampered.body.replace("cus_std", "cus_xxx");
    assert_eq!(
        python_verify(STANDARD_SECRET, &[tampered]),
        Some(vec!["refused".to_owned()])
    );

    // The attempt history shows the headers, not the signature.
    let shown = app
        .db(move |c| deliveries::history::for_delivery(c, &id).expect("attempts"))
        .await;
    let headers = format!("{:?}", shown[0].headers());
    assert!(headers.contains("v1,[redacted]"), "{headers}");
    assert!(!headers.contains(&got[0].header("webhook-signature").unwrap()[3..]));
}

async fn reconciled_deliveries_carry_their_objects_fetch_order_and_received_ones_none(
    backend: Backend,
) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    let sub = fake.subscription(&s, "active");
    let app_side = Recorder::start(Vec::new());
    let reconciled = destination(&app_side.url("/reconciled"), |d| {
        d.name = "late".to_owned();
        d.signature = Signature::Standard;
        d.secret = STANDARD_SECRET.into();
    });
    let received = destination(&app_side.url("/received"), |d| {
        d.name = "early".to_owned();
        d.after = After::Received;
    });
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .stripe(fake.base_url())
            .config(move |c| {
                c.destinations = vec![reconciled.clone(), received.clone()];
                c.forward.enabled = false;
            }),
    )
    .await;
    app.deliver_ok(&snapshot_event(
        "customer.subscription.created",
        sub.clone(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    app.deliver_ok(&snapshot_event("customer.subscription.updated", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    // A type stripe-hookd does not reconcile: no sequence either.
    app.deliver_ok(&snapshot_event(
        "product.updated",
        json!({"id": "prod_seq", "object": "product"}),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();

    let late = app_side.got("/reconciled");
    let sequences: Vec<(String, Option<i64>)> = late
        .iter()
        .map(|r| {
            let event: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            (
                event["type"].as_str().unwrap().to_owned(),
                r.header("stripe-hookd-sequence")
                    .map(|v| v.parse().expect("a number")),
            )
        })
        .collect();
    assert_eq!(sequences.len(), 3, "{late:#?}");
    // Different objects go out in parallel: found by type. One object's
    // deliveries arrive in order.
    let of = |event_type: &str| {
        sequences
            .iter()
            .position(|(t, _)| t == event_type)
            .map(|at| (at, sequences[at].1))
            .unwrap_or_else(|| panic!("no {event_type}: {sequences:?}"))
    };
    let ((created_at, a), (updated_at, b)) = (
        of("customer.subscription.created"),
        of("customer.subscription.updated"),
    );
    assert!(created_at < updated_at, "{sequences:?}");
    assert!(
        matches!((a, b), (Some(a), Some(b)) if a < b),
        "increasing per object: {sequences:?}"
    );
    assert_eq!(of("product.updated").1, None, "not reconciled: no sequence");
    // The number is the one the subscription's record holds.
    let stored = app
        .db(move |c| {
            use diesel::prelude::*;
            use stripe_hookd::testing::store::schema::subscriptions;
            stripe_hookd::testing::with_conn!(c, c => subscriptions::table
                .filter(subscriptions::id.eq(&s.subscription))
                .select(subscriptions::fetch_seq)
                .first::<i64>(c)
                .expect("the record"))
        })
        .await;
    assert_eq!(b, Some(stored));

    let early = app_side.got("/received");
    assert_eq!(early.len(), 3, "{early:#?}");
    assert!(
        early
            .iter()
            .all(|r| r.header("stripe-hookd-sequence").is_none()),
        "{early:#?}"
    );
    assert_eq!(
        python_verify(STANDARD_SECRET, &late),
        Some(vec!["ok".to_owned(); 3])
    );
}

/// A destination with `previous_secrets` signs every request with each of
/// its secrets: in either scheme, an app holding only the old secret and
/// one holding only the new one both verify the same delivery (the
/// spec's Python library for Standard Webhooks; for Stripe's scheme
/// the test's own HMAC, written apart from the daemon's, as Stripe's SDKs
/// check it: any `v1` under the one secret the app holds), and a third
/// secret verifies nothing.
async fn while_a_secret_rolls_apps_holding_the_old_or_the_new_secret_both_verify(backend: Backend) {
    const NEW_STANDARD: &str = "whsec_bmV3LXNlY3JldC1uZXctc2VjcmV0LW5ldy1zZWNyZXQ=";
    const NEW_STRIPE: &str = "whsec_the_apps_new_secret";
    let old_stripe = crate::forward::APP_SECRET;
    let db = TestDb::new(backend);
    let app_side = Recorder::start(Vec::new());
    let standard = destination(&app_side.url("/standard"), |d| {
        d.name = "standard".to_owned();
        d.signature = Signature::Standard;
        d.secret = NEW_STANDARD.into();
        d.previous_secrets = vec![STANDARD_SECRET.into()];
    });
    let stripe = destination(&app_side.url("/stripe"), |d| {
        d.name = "stripe".to_owned();
        d.secret = NEW_STRIPE.into();
        d.previous_secrets = vec![old_stripe.into()];
    });
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().admin().config(move |c| {
            c.destinations = vec![standard.clone(), stripe.clone()];
            c.forward.enabled = false;
        }),
    )
    .await;
    // The admin API says how many secrets each signs with (never which).
    let listed: serde_json::Value = app
        .client
        .get(app.admin_url("/v1/destinations"))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counts: Vec<&serde_json::Value> = listed["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["signing_secrets"])
        .collect();
    assert_eq!(counts, [&json!(2), &json!(2)], "{listed}");
    assert!(!listed.to_string().contains("whsec_"), "{listed}");
    app.deliver_ok(&customer_event("customer.created", "cus_roll"))
        .await;
    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 2, "{tally:?}");

    let got = app_side.got("/standard");
    assert_eq!(got.len(), 1, "{got:#?}");
    let other = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
    for (secret, verdict) in [
        (STANDARD_SECRET, "ok"),
        (NEW_STANDARD, "ok"),
        (other, "refused"),
    ] {
        if let Some(verdicts) = python_verify(secret, &got) {
            assert_eq!(verdicts, vec![verdict.to_owned()], "{secret}");
        }
    }

    let signatures = got[0].header("webhook-signature").unwrap();
    assert_eq!(
        signatures
            .split(' ')
            .filter(|s| s.starts_with("v1,"))
            .count(),
        2,
        "one signature per secret, space-separated: {signatures}"
    );

    let got = app_side.got("/stripe");
    assert_eq!(got.len(), 1, "{got:#?}");
    let header = got[0].header("stripe-signature").unwrap();
    let t: i64 = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t= in {header}"));
    assert!((crate::harness::now() - t).abs() <= 300, "{header}");
    let verifies = |secret: &str| {
        let expected = crate::harness::sign(secret, t, &got[0].body);
        header
            .split(',')
            .filter_map(|p| p.strip_prefix("v1="))
            .any(|v1| v1 == expected)
    };
    assert!(verifies(old_stripe), "the old secret: {header}");
    assert!(verifies(NEW_STRIPE), "the new secret: {header}");
    assert!(!verifies("whsec_another"), "{header}");
    assert_eq!(header.matches("v1=").count(), 2, "{header}");

    // The attempt history shows both signatures redacted.
    let id = deliveries::delivery_id("stripe", &got[0].body_event_id());
    let shown = app
        .db(move |c| deliveries::history::for_delivery(c, &id).expect("attempts"))
        .await;
    let headers = format!("{:?}", shown[0].headers());
    assert!(headers.contains("v1=[redacted],v1=[redacted]"), "{headers}");
}

/// Verifies each request with the Python `standardwebhooks` package
/// (`Webhook(secret).verify(body, headers)`): "ok" or "refused" per
/// request. `None` only when `STRIPE_HOOKD_SKIP_PYTHON=1` says to skip.
pub(crate) fn python_verify(secret: &str, requests: &[Request]) -> Option<Vec<String>> {
    let Some(python) = python_with_standardwebhooks() else {
        eprintln!("STRIPE_HOOKD_SKIP_PYTHON is set: the Python verification is skipped");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("requests.json");
    std::fs::write(&input, serde_json::to_vec(requests).unwrap()).unwrap();
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(VERIFY_PY)
        .arg(secret)
        .arg(&input)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "the Python verifier failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

const VERIFY_PY: &str = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, path = sys.argv[1], sys.argv[2]
for r in json.load(open(path)):
    try:
        Webhook(secret).verify(r["body"], r["headers"])
        print("ok")
    except WebhookVerificationError as e:
        print("refused")
"#;

/// The Python `standardwebhooks` package pinned for the tests.
const PY_PACKAGE: &str = "standardwebhooks==1.1.0";

/// A Python with `standardwebhooks` importable: the cached virtualenv,
/// made on first use. Panics with what is missing, unless
/// `STRIPE_HOOKD_SKIP_PYTHON=1` (then `None`).
fn python_with_standardwebhooks() -> Option<PathBuf> {
    static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);
    let skip = std::env::var("STRIPE_HOOKD_SKIP_PYTHON").is_ok_and(|v| v == "1");
    let mut made = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(python) = made.as_ref() {
        return Some(python.clone());
    }
    let venv = std::env::var_os("STRIPE_HOOKD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
            home.join(".cache/stripe-hookd/test-venv")
        });
    let python = venv.join("bin/python");
    let importable = |python: &std::path::Path| {
        std::process::Command::new(python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !importable(&python) {
        let made_venv = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output();
        let installed = made_venv
            .as_ref()
            .ok()
            .filter(|o| o.status.success())
            .map(|_| {
                std::process::Command::new(venv.join("bin/pip"))
                    .args(["install", "-q", PY_PACKAGE])
                    .output()
            });
        if !importable(&python) {
            let why = match (made_venv, installed) {
                (Err(e), _) => format!("python3 -m venv could not run: {e}"),
                (Ok(o), None) => format!(
                    "python3 -m venv {} failed: {}",
                    venv.display(),
                    String::from_utf8_lossy(&o.stderr)
                ),
                (_, Some(Err(e))) => format!("pip could not run: {e}"),
                (_, Some(Ok(o))) => format!(
                    "pip install {PY_PACKAGE} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            };
            if skip {
                return None;
            }
            panic!(
                "the Standard Webhooks test verifies with Python's `{PY_PACKAGE}` in a virtualenv at {} \
                 (STRIPE_HOOKD_TEST_VENV), and cannot make it: {why}. Install python3 with venv and pip \
                 (Debian: apt-get install python3-venv), or set STRIPE_HOOKD_SKIP_PYTHON=1 to skip only \
                 this verification.",
                venv.display()
            );
        }
    }
    *made = Some(python.clone());
    Some(python)
}
