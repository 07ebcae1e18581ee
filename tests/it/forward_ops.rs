//! Operating the forwarder: attempt history (headers without secrets, the
//! first 2 KB of the answer), destination health and its metrics, 410
//! pauses kept in the database, redelivery by filter in bounded batches,
//! `Retry-After` as an HTTP-date, and the CLI over the same data.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Value};
use stripe_hookd::testing::forward::Forwarder;
use stripe_hookd::testing::store::deliveries;
use stripe_hookd::testing::util::Clock;

use crate::backend_tests;
use crate::forward::{customer_event, destination, forwarder, rows, with_destination};
use crate::harness::{Backend, TestApp, TestDb, ADMIN_TOKEN, SECRET};

/// One scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, String);

/// An app that answers from a script (then 200 "ok"), counting requests.
struct ScriptedApp {
    url: String,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    requests: Arc<Mutex<usize>>,
}

impl ScriptedApp {
    fn start() -> ScriptedApp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<VecDeque<Scripted>>> = Arc::default();
        let requests: Arc<Mutex<usize>> = Arc::default();
        let (s, r) = (script.clone(), requests.clone());
        let server = HttpServer::new(move || {
            let (s, r) = (s.clone(), r.clone());
            App::new().default_service(web::to(move || {
                let (s, r) = (s.clone(), r.clone());
                async move {
                    *r.lock().unwrap() += 1;
                    let next = s.lock().unwrap().pop_front();
                    let (status, headers, body) =
                        next.unwrap_or((200, Vec::new(), "ok".to_owned()));
                    let mut res =
                        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    for (name, value) in headers {
                        res.insert_header((name, value));
                    }
                    res.body(body)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        ScriptedApp {
            url: format!("http://{addr}/webhooks/stripe"),
            script,
            requests,
        }
    }

    fn then(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push_back((status, headers, body.to_owned()));
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    let res = app
        .client
        .get(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.admin_url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

backend_tests!(
    every_attempt_is_kept_with_redacted_headers_and_the_start_of_the_answer,
    destination_health_shows_failing_since_backlog_and_recovery,
    a_410_pause_is_stored_for_every_instance_until_resumed,
    redeliver_by_filter_goes_in_bounded_batches,
    retry_after_as_an_http_date_is_honoured,
    the_cli_lists_destinations_shows_deliveries_and_redelivers,
);

async fn every_attempt_is_kept_with_redacted_headers_and_the_start_of_the_answer(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    let long = "e".repeat(5000);
    app_side.then(500, Vec::new(), &long);
    let d = destination(&app_side.url, |d| {
        d.headers.insert(
            "Authorization".to_owned(),
            "Bearer app-token-secret".to_owned().into(),
        );
    });
    let options = with_destination(d).admin();
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_h1"))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 1, "{tally:?}");
    let id = rows(&app).await[0].delivery_id.clone();

    let shown = admin_get(&app, &format!("/v1/deliveries/{id}")).await;
    assert_eq!(shown["delivery"]["status"], "delivered");
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    let (first, second) = (&attempts[0], &attempts[1]);
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["outcome"], "retry");
    assert_eq!(first["http_status"], 500);
    assert_eq!(first["response_body"].as_str().unwrap(), &long[..2048]);
    assert!(first["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(second["outcome"], "delivered");
    assert_eq!(second["http_status"], 200);
    assert_eq!(second["response_body"], "ok");
    assert!(second["started_at"].as_i64() > first["started_at"].as_i64());
    let headers: Vec<(String, String)> =
        serde_json::from_value(first["request_headers"].clone()).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
    };
    assert_eq!(header("Stripe-Hookd-Delivery"), id);
    assert_eq!(header("Stripe-Hookd-Attempt"), "1");
    assert_eq!(header("Content-Type"), "application/json");
    let signature = header("Stripe-Signature");
    assert!(
        signature.starts_with("t=") && signature.ends_with(",v1=[redacted]"),
        "{signature}"
    );
    assert_eq!(header("Authorization"), "[redacted]");
    assert!(!shown.to_string().contains("app-token-secret"));
    assert!(!shown.to_string().contains(super::forward::APP_SECRET));

    let (status, _) = admin_post(&app, "/v1/deliveries/dlv_nope/redeliver", json!({})).await;
    assert_eq!(status, 404);
    let res = app
        .client
        .get(app.admin_url("/v1/deliveries/dlv_nope"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn destination_health_shows_failing_since_backlog_and_recovery(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    // Two rounds of two failures, then up.
    for _ in 0..4 {
        app_side.then(503, Vec::new(), "down");
    }
    let options = with_destination(destination(&app_side.url, |_| {})).admin();
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    for customer in ["cus_h2", "cus_h3"] {
        app.deliver_ok(&customer_event("customer.created", customer))
            .await;
    }
    app.runner.run_pending().await.unwrap();
    let failed_at = clock.now_ms();
    forwarder(&app).run_pending().await.unwrap();

    let listed = admin_get(&app, "/v1/destinations").await;
    let d = &listed["destinations"][0];
    assert_eq!(d["name"], "app");
    assert!(d.get("secret").is_none() && !listed.to_string().contains("whsec_"));
    assert_eq!(d["backlog"], 2);
    assert_eq!(d["dead"], 0);
    assert_eq!(d["last_status"], 503);
    assert_eq!(d["last_success_at"], Value::Null);
    let failing_since = d["failing_since"].as_i64().expect("failing");
    assert!(
        (failed_at..=clock.now_ms()).contains(&failing_since),
        "{failing_since} not at the first failure ({failed_at})"
    );
    assert!(d["oldest_undelivered_at"].as_i64().unwrap() <= failed_at);
    assert_eq!(d["paused"], Value::Null);
    clock.advance(Duration::from_secs(600));
    let text = metrics(&app).await;
    assert!(
        text.contains("hookd_delivery_backlog{destination=\"app\"} 2"),
        "{text}"
    );
    let oldest: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("hookd_delivery_oldest_undelivered_seconds{destination=\"app\"} ")
        })
        .expect("oldest gauge")
        .parse()
        .unwrap();
    assert!(oldest > 0.0, "{text}");
    assert!(text.contains("hookd_destination_paused{destination=\"app\"} 0"));
    assert!(text.contains("hookd_delivery_attempts_total"), "{text}");

    // Failing still: failing_since stays at the first failure.
    forwarder(&app).run_pending().await.unwrap();
    let d = admin_get(&app, "/v1/destinations").await["destinations"][0].clone();
    assert_eq!(d["failing_since"].as_i64(), Some(failing_since), "{d}");
    clock.advance(Duration::from_secs(3600));
    forwarder(&app).run_pending().await.unwrap();
    let d = admin_get(&app, "/v1/destinations").await["destinations"][0].clone();
    assert_eq!(d["backlog"], 0, "{d}");
    assert!(d["last_success_at"].as_i64().unwrap() > failed_at);
    assert_eq!(d["failing_since"], Value::Null);
    assert_eq!(d["last_status"], 200);
    assert_eq!(d["oldest_undelivered_at"], Value::Null);
}

async fn a_410_pause_is_stored_for_every_instance_until_resumed(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    app_side.then(410, Vec::new(), "gone");
    let d = destination(&app_side.url, |_| {});
    let options = with_destination(d.clone()).admin();
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_p1"))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert!(forwarder(&app).is_paused("app"));
    assert_eq!(app_side.requests(), 1);

    // Another instance (or this one after a restart) reads the pause.
    let other = Arc::new(
        Forwarder::new(
            app.store.clone(),
            vec![d],
            stripe_hookd::testing::forward::ForwardOptions::from_config(
                &stripe_hookd::testing::config::from_toml_str("")
                    .unwrap()
                    .forward,
            ),
            Clock::default(),
        )
        .unwrap(),
    );
    clock.advance(Duration::from_secs(24 * 3600));
    other.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert!(other.is_paused("app"));
    assert_eq!(app_side.requests(), 1, "sent to a paused destination");
    let listed = admin_get(&app, "/v1/destinations").await;
    assert!(listed["destinations"][0]["paused"]["reason"]
        .as_str()
        .unwrap()
        .contains("410"));
    assert!(metrics(&app)
        .await
        .contains("hookd_destination_paused{destination=\"app\"} 1"));

    let (status, _) = admin_post(&app, "/v1/destinations/nope/resume", json!({})).await;
    assert_eq!(status, 404);
    let (status, body) = admin_post(&app, "/v1/destinations/app/resume", json!({})).await;
    assert_eq!((status, body["was_paused"].clone()), (200, json!(true)));
    let tally = other.run_pending().await.unwrap();
    assert_eq!(tally.delivered, 1, "{tally:?}");
    assert!(!other.is_paused("app"));

    // An operator's pause, with a reason, holds the same way.
    let (status, _) = admin_post(&app, "/v1/destinations/app/pause", json!({})).await;
    assert_eq!(status, 400, "a pause needs a reason");
    let (status, _) = admin_post(
        &app,
        "/v1/destinations/app/pause",
        json!({"reason": "app maintenance"}),
    )
    .await;
    assert_eq!(status, 200);
    app.deliver_ok(&customer_event("customer.updated", "cus_p1"))
        .await;
    app.runner.run_pending().await.unwrap();
    other.run_pending().await.unwrap();
    assert_eq!(app_side.requests(), 2);
}

async fn redeliver_by_filter_goes_in_bounded_batches(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    for _ in 0..3 {
        app_side.then(500, Vec::new(), "no");
    }
    let options = with_destination(destination(&app_side.url, |d| d.max_attempts = 1)).admin();
    let app = TestApp::spawn_with(&db, options).await;
    for n in 0..3 {
        app.deliver_ok(&customer_event("customer.created", &format!("cus_b{n}")))
            .await;
    }
    app.runner.run_pending().await.unwrap();
    assert_eq!(forwarder(&app).run_pending().await.unwrap().dead, 3);

    let (status, body) = admin_post(
        &app,
        "/v1/deliveries/redeliver",
        json!({"status": "pending"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = admin_post(
        &app,
        "/v1/deliveries/redeliver",
        json!({"destination": "app"}),
    )
    .await;
    assert_eq!(status, 400, "a status is required");
    let filter =
        json!({"status": "dead", "destination": "app", "event_type": "customer.*", "limit": 2});
    let (status, body) = admin_post(&app, "/v1/deliveries/redeliver", filter.clone()).await;
    assert_eq!(
        (status, body["requeued"].clone(), body["more"].clone()),
        (200, json!(2), json!(true))
    );
    let (_, body) = admin_post(&app, "/v1/deliveries/redeliver", filter.clone()).await;
    assert_eq!(
        (body["requeued"].clone(), body["more"].clone()),
        (json!(1), json!(false))
    );
    let (_, body) = admin_post(&app, "/v1/deliveries/redeliver", filter).await;
    assert_eq!(body["requeued"], 0);
    let (_, body) = admin_post(
        &app,
        "/v1/deliveries/redeliver",
        json!({"status": "dead", "event_type": "invoice.*"}),
    )
    .await;
    assert_eq!(body["requeued"], 0, "the type filter");
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 3, "{tally:?}");
    assert!(rows(&app)
        .await
        .iter()
        .all(|r| r.status == "delivered" && r.attempts == 1));
}

async fn retry_after_as_an_http_date_is_honoured(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    // Within forward.backoff_max_secs (1 h), which caps any hint.
    let in_half_an_hour = std::time::SystemTime::now() + Duration::from_secs(1800);
    app_side.then(
        503,
        vec![("Retry-After", httpdate::fmt_http_date(in_half_an_hour))],
        "later",
    );
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_ra"))
        .await;
    app.runner.run_pending().await.unwrap();
    let before = clock.now_ms();
    forwarder(&app).run_pending().await.unwrap();
    let row = rows(&app).await[0].clone();
    assert_eq!(row.status, "pending");
    let wait = row.next_attempt_at - before;
    // The backoff alone is one to two seconds; the date asks for 30 min.
    assert!(
        (1800 * 1000 - 60_000..=1800 * 1000).contains(&wait),
        "waits {wait} ms"
    );
    clock.advance(Duration::from_secs(600));
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.requests(), 1, "retried before the date");
    clock.advance(Duration::from_secs(1800));
    assert_eq!(forwarder(&app).run_pending().await.unwrap().delivered, 1);
}

/// The binary against the test's database, with the test's destination.
fn hookd(db: &TestDb, url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("STRIPE_API_KEY", "sk_test_forward_cli")
        .env("STRIPE_HOOKD_STATE_DIR", db.dir())
        .env("DATABASE_URL", &db.url)
        .env(
            "STRIPE_HOOKD_DESTINATIONS",
            format!("[{{name=\"app\",url=\"{url}\",secret=\"whsec_cli\"}}]"),
        )
        .output()
        .expect("run stripe-hookd")
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

async fn the_cli_lists_destinations_shows_deliveries_and_redelivers(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = ScriptedApp::start();
    app_side.then(500, Vec::new(), "boom");
    let options = with_destination(destination(&app_side.url, |d| d.max_attempts = 1));
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_cli"))
        .await;
    app.runner.run_pending().await.unwrap();
    assert_eq!(forwarder(&app).run_pending().await.unwrap().dead, 1);
    let id = rows(&app).await[0].delivery_id.clone();
    let url = app_side.url.clone();
    let (db_ref, url_ref) = (&db, url.as_str());

    let listed: Value = serde_json::from_str(&ok(&hookd(
        db_ref,
        url_ref,
        &["destinations", "list", "--json"],
    )))
    .unwrap();
    assert_eq!(listed[0]["name"], "app");
    assert_eq!(listed[0]["dead"], 1);
    assert_eq!(listed[0]["last_status"], 500);
    let human = ok(&hookd(db_ref, url_ref, &["destinations", "list"]));
    assert!(
        human.contains("dead 1") && human.contains("HTTP 500"),
        "{human}"
    );

    let dead = ok(&hookd(
        db_ref,
        url_ref,
        &["deliveries", "list", "--status", "dead"],
    ));
    assert!(dead.contains(&id), "{dead}");
    let shown = ok(&hookd(db_ref, url_ref, &["deliveries", "show", &id]));
    assert!(
        shown.contains("HTTP 500") && shown.contains("< boom"),
        "{shown}"
    );
    assert!(shown.contains("v1=[redacted]"), "{shown}");
    let shown: Value = serde_json::from_str(&ok(&hookd(
        db_ref,
        url_ref,
        &["deliveries", "show", &id, "--json"],
    )))
    .unwrap();
    assert_eq!(shown["attempts"][0]["outcome"], "dead");

    let refused = hookd(db_ref, url_ref, &["deliveries", "redeliver"]);
    assert!(!refused.status.success());
    let out = ok(&hookd(
        db_ref,
        url_ref,
        &["deliveries", "redeliver", "--status", "dead"],
    ));
    assert!(out.contains("1 deliveries re-queued"), "{out}");
    assert_eq!(forwarder(&app).run_pending().await.unwrap().delivered, 1);

    let pause = ok(&hookd(
        db_ref,
        url_ref,
        &["destinations", "pause", "app", "--reason", "deploy"],
    ));
    assert!(pause.contains("paused"), "{pause}");
    app.deliver_ok(&customer_event("customer.updated", "cus_cli"))
        .await;
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.requests(), 2, "sent while paused from the CLI");
    let discarded = ok(&hookd(
        db_ref,
        url_ref,
        &["deliveries", "list", "--status", "pending", "--json"],
    ));
    let pending: Value = serde_json::from_str(&discarded).unwrap();
    let next = pending[0]["delivery_id"].as_str().unwrap().to_owned();
    ok(&hookd(
        db_ref,
        url_ref,
        &["deliveries", "discard", &next, "--reason", "not needed"],
    ));
    ok(&hookd(db_ref, url_ref, &["destinations", "resume", "app"]));
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.requests(), 2);
    let row = app
        .db(move |c| deliveries::get(c, &next).unwrap().unwrap())
        .await;
    assert_eq!(row.status, "discarded");
    assert_eq!(row.last_error.as_deref(), Some("discarded: not needed"));
}
