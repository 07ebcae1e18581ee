//! The admin API — auth, inspect, replay, dead letters, metrics.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::*;

backend_tests!(
    admin_routes_need_the_token_and_are_not_on_the_public_listener,
    events_are_listed_with_filters_and_pages_and_shown_with_attempts,
    replay_by_filter_requeues_exactly_the_matching_events,
    a_replay_with_an_empty_filter_is_refused_and_requeues_nothing,
    a_replay_takes_at_most_limit_events,
    a_large_replay_in_batches_requeues_exactly_the_matching_events,
    dead_letters_can_be_listed_retried_and_discarded,
    metrics_move_when_events_flow,
);

async fn admin_app(db: &TestDb) -> TestApp {
    TestApp::spawn_with(db, AppOptions::default().admin()).await
}

pub async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// An authorised admin POST: status and JSON body.
pub async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .client
        .post(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Starts an admin job (`POST path`, 202) and waits for it; returns the
/// job's id and its result.
pub async fn run_job(app: &TestApp, path: &str, body: Value) -> (u64, Value) {
    let (status, started) = post(app, path, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["job"].as_u64().expect("a job id");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, job) = get(app, &format!("/v1/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        match job["state"].as_str() {
            Some("done") => return (id, job["result"].clone()),
            Some("failed") => panic!("job {path} failed: {job}"),
            _ => assert!(
                std::time::Instant::now() < deadline,
                "job {path} did not finish: {job}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Delivers in order (the lists below rely on it).
async fn deliver_all(app: &TestApp, events: &[(&str, &str, &str)]) {
    for (id, t, o) in events {
        let res = app.deliver(&event_body(id, t, o, false)).await;
        assert_eq!(res.status(), 200, "{id}");
    }
}

async fn admin_routes_need_the_token_and_are_not_on_the_public_listener(backend: Backend) {
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    deliver_all(&app, &[("evt_auth", "invoice.paid", "in_1")]).await;
    let routes = [
        ("GET", "/metrics"),
        ("GET", "/v1/events"),
        ("GET", "/v1/events/evt_auth"),
        ("POST", "/v1/events/evt_auth/replay"),
        ("POST", "/v1/replay"),
        ("GET", "/v1/dead"),
        ("POST", "/v1/dead/evt_auth/retry"),
        ("POST", "/v1/dead/evt_auth/discard"),
        ("POST", "/v1/resync/sub_1"),
        ("POST", "/v1/reconcile"),
        ("POST", "/v1/catch-up"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for token in [None, Some("wrong-token-wrong-token"), Some("")] {
            let mut req = app
                .client
                .request(method.clone(), app.admin_url(path))
                .json(&json!({}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "{method} {path} with {token:?}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["reason"], "unauthorized");
        }
        let res = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            404,
            "the public listener does not serve {path}"
        );
    }
    // The health check is open.
    let res = app
        .client
        .get(app.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Nothing was replayed by the refused requests.
    let (_, body) = get(&app, "/v1/events/evt_auth").await;
    assert_eq!(body["attempts"].as_array().unwrap().len(), 0);
    app.stop().await;
}

async fn events_are_listed_with_filters_and_pages_and_shown_with_attempts(backend: Backend) {
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    deliver_all(
        &app,
        &[
            ("evt_l1", "invoice.paid", "in_1"),
            ("evt_l2", "invoice.payment_failed", "in_2"),
            ("evt_l3", "customer.updated", "cus_1"),
            ("evt_l4", "invoice.paid", "in_1"),
        ],
    )
    .await;
    let (status, body) = get(&app, "/v1/events?type=invoice.*").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_l1", "evt_l2", "evt_l4"]);
    let (_, body) = get(&app, "/v1/events?object=in_1&status=pending").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    // Pages: two at a time, following next_after.
    let (_, page1) = get(&app, "/v1/events?limit=2").await;
    assert_eq!(page1["events"].as_array().unwrap().len(), 2);
    let after = page1["next_after"].as_i64().expect("a next page");
    let (_, page2) = get(&app, &format!("/v1/events?limit=2&after={after}")).await;
    let ids: Vec<&str> = page2["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["evt_l3", "evt_l4"]);
    let (status, _) = get(&app, "/v1/events?status=bogus").await;
    assert_eq!(status, 400);

    app.runner.run_pending().await.unwrap();
    let (status, body) = get(&app, "/v1/events/evt_l3").await;
    assert_eq!(status, 200);
    assert_eq!(body["event"]["event_type"], "customer.updated");
    assert_eq!(body["payload"]["id"], "evt_l3");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["outcome"], "ignored");
    assert!(attempts[0]["finished_at"].as_i64().is_some());
    let (status, body) = get(&app, "/v1/events/evt_missing").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["reason"], "no_such_event");
    app.stop().await;
}

async fn replay_by_filter_requeues_exactly_the_matching_events(backend: Backend) {
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    deliver_all(
        &app,
        &[
            ("evt_r1", "invoice.paid", "in_1"),
            ("evt_r2", "invoice.voided", "in_2"),
            ("evt_r3", "customer.updated", "cus_1"),
        ],
    )
    .await;
    app.runner.run_pending().await.unwrap();
    let (status, body) = post(&app, "/v1/replay", json!({"type": "invoice.*"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], json!(["evt_r1", "evt_r2"]));
    for (id, expected) in [
        ("evt_r1", "pending"),
        ("evt_r2", "pending"),
        ("evt_r3", "ignored"),
    ] {
        let (_, body) = get(&app, &format!("/v1/events/{id}")).await;
        assert_eq!(body["event"]["status"], expected, "{id}");
    }
    let (_, body) = get(&app, "/v1/events/evt_r1").await;
    let outcomes: Vec<&str> = body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["ignored", "replayed"],
        "the replay is in the event's history"
    );
    // Through the normal runner again.
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.ignored, 2);
    // One event by id; twice is harmless.
    for _ in 0..2 {
        let (status, body) = post(&app, "/v1/events/evt_r3/replay", json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(body["replayed"], json!(["evt_r3"]));
    }
    assert_eq!(app.runner.run_pending().await.unwrap().ignored, 1);
    let (status, _) = post(&app, "/v1/events/evt_nope/replay", json!({})).await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// Each event's status and how many `replayed` lines its history has.
async fn replay_state(app: &TestApp) -> Vec<(String, String, usize)> {
    app.db(|c| {
        stripe_hookd::testing::store::outbox::list_all(c)
            .unwrap()
            .into_iter()
            .map(|e| {
                let (_, attempts) = stripe_hookd::testing::store::events::show(c, &e.event_id)
                    .unwrap()
                    .unwrap();
                let replays = attempts
                    .iter()
                    .filter(|a| a.outcome.as_deref() == Some("replayed"))
                    .count();
                (e.event_id, e.status.to_string(), replays)
            })
            .collect()
    })
    .await
}

async fn a_replay_with_an_empty_filter_is_refused_and_requeues_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    deliver_all(
        &app,
        &[
            ("evt_e1", "invoice.paid", "in_1"),
            ("evt_e2", "customer.updated", "cus_1"),
        ],
    )
    .await;
    app.runner.run_pending().await.unwrap();
    let before = replay_state(&app).await;
    assert!(before.iter().all(|(_, s, _)| s == "ignored"), "{before:?}");
    // Paging alone names no events either.
    for body in [json!({}), json!({"limit": 10}), json!({"after": 0})] {
        let (status, answer) = post(&app, "/v1/replay", body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["reason"], "filter_required", "{body}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("whole outbox"),
            "{answer}"
        );
    }
    assert_eq!(replay_state(&app).await, before, "nothing was re-queued");
    assert_eq!(app.runner.run_pending().await.unwrap().total(), 0);
    app.stop().await;
}

async fn a_replay_takes_at_most_limit_events(backend: Backend) {
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    deliver_all(
        &app,
        &[
            ("evt_l1", "invoice.paid", "in_1"),
            ("evt_l2", "invoice.paid", "in_2"),
            ("evt_l3", "invoice.paid", "in_3"),
        ],
    )
    .await;
    app.runner.run_pending().await.unwrap();
    let (status, body) = post(&app, "/v1/replay", json!({"type": "invoice.*", "limit": 2})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["replayed"],
        json!(["evt_l1", "evt_l2"]),
        "oldest first"
    );
    let statuses: Vec<(String, String)> = replay_state(&app)
        .await
        .into_iter()
        .map(|(id, s, _)| (id, s))
        .collect();
    assert_eq!(
        statuses,
        [
            ("evt_l1".to_owned(), "pending".to_owned()),
            ("evt_l2".to_owned(), "pending".to_owned()),
            ("evt_l3".to_owned(), "ignored".to_owned()),
        ]
    );
    app.stop().await;
}

/// 2,000 events (every other one an invoice event; one invoice event in
/// five held by a worker) replayed in batches of 500: first at most 700,
/// then the rest by status. Exactly the matching, idle events are
/// re-queued, each once, and the in-flight ones are reported.
async fn a_large_replay_in_batches_requeues_exactly_the_matching_events(backend: Backend) {
    const N: usize = 2_000;
    let db = TestDb::new(backend);
    let app = admin_app(&db).await;
    let now = stripe_hookd::testing::store::EpochMs::now();
    let events: Vec<stripe_hookd::testing::store::outbox::NewEvent> = (0..N)
        .map(|i| {
            let (event_type, object) = if i % 2 == 0 {
                ("invoice.paid", format!("in_{i}"))
            } else {
                ("customer.updated", format!("cus_{i}"))
            };
            stripe_hookd::testing::store::outbox::NewEvent {
                event_id: format!("evt_big_{i:05}"),
                endpoint: "default".to_owned(),
                event_type: event_type.to_owned(),
                api_version: None,
                livemode: false,
                account: None,
                object_type: None,
                object_id: Some(object.clone()),
                object_key: object,
                stripe_created: now.as_secs(),
                received_at: now,
                queued_at: now,
                payload: "{}".to_owned(),
                headers: "{}".to_owned(),
                secret_index: 0,
                next_attempt_at: now,
                priority: stripe_hookd::testing::store::outbox::LIVE,
            }
        })
        .collect();
    app.db(move |c| {
        stripe_hookd::testing::store::outbox::insert_batch(c, &events).unwrap();
        c.batch_execute("UPDATE webhook_events SET status = 'done'")
            .unwrap();
        // Every tenth event (an invoice event) is held by a worker.
        for i in (0..N).step_by(10) {
            c.batch_execute(&format!(
                "UPDATE webhook_events SET status = 'processing', lease_owner = 'w' WHERE event_id = 'evt_big_{i:05}'"
            ))
            .unwrap();
        }
    })
    .await;
    let id = |i: usize| format!("evt_big_{i:05}");
    let idle_invoices: Vec<String> = (0..N)
        .filter(|i| i % 2 == 0 && i % 10 != 0)
        .map(id)
        .collect();
    let held: Vec<String> = (0..N).step_by(10).map(id).collect();
    assert_eq!((idle_invoices.len(), held.len()), (800, 200));

    let (status, first) = post(
        &app,
        "/v1/replay",
        json!({"type": "invoice.paid", "limit": 700}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        first["replayed"],
        json!(idle_invoices[..700]),
        "the limit spans batches"
    );
    let (status, rest) = post(
        &app,
        "/v1/replay",
        json!({"type": "invoice.paid", "status": "done"}),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["replayed"], json!(idle_invoices[700..]));
    assert_eq!(rest["in_flight"], json!([]), "held events are not done");

    for (event_id, status, replays) in replay_state(&app).await {
        let i: usize = event_id["evt_big_".len()..].parse().unwrap();
        let expected = match (i % 2, i % 10) {
            (_, 0) => ("processing", 0),
            (0, _) => ("pending", 1),
            _ => ("done", 0),
        };
        assert_eq!((status.as_str(), replays), expected, "{event_id}");
    }
    // Without a status, the held ones are matched and reported in flight.
    let (_, again) = post(
        &app,
        "/v1/replay",
        json!({"type": "invoice.paid", "since": now.as_i64()}),
    )
    .await;
    assert_eq!(again["in_flight"], json!(held));
    assert_eq!(again["replayed"].as_array().map(Vec::len), Some(800));
    app.stop().await;
}

async fn dead_letters_can_be_listed_retried_and_discarded(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .admin()
            .handler(std::sync::Arc::new(AlwaysFails))
            .config(|c| c.runner.max_attempts = 1),
    )
    .await;
    deliver_all(
        &app,
        &[
            ("evt_d1", "invoice.paid", "in_1"),
            ("evt_d2", "invoice.paid", "in_2"),
        ],
    )
    .await;
    app.runner.run_pending().await.unwrap();
    let (_, body) = get(&app, "/v1/dead").await;
    let dead: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(dead, ["evt_d1", "evt_d2"]);
    assert_eq!(body["events"][0]["last_error"], "always fails");

    let (status, body) = post(&app, "/v1/dead/evt_d1/retry", json!({})).await;
    assert_eq!(
        (status, body["replayed"].clone()),
        (StatusCode::OK, json!(["evt_d1"]))
    );
    let (_, body) = get(&app, "/v1/events/evt_d1").await;
    assert_eq!(body["event"]["status"], "pending");
    assert_eq!(
        body["event"]["attempts"], 0,
        "a retried dead letter gets a fresh budget"
    );

    let (status, _) = post(&app, "/v1/dead/evt_d2/discard", json!({})).await;
    assert_eq!(status, 400, "a reason is required");
    let (status, body) = post(
        &app,
        "/v1/dead/evt_d2/discard",
        json!({"reason": "refund handled by hand"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = get(&app, "/v1/events/evt_d2").await;
    assert_eq!(body["event"]["status"], "discarded");
    assert!(body["event"]["last_error"]
        .as_str()
        .unwrap()
        .contains("refund handled by hand"));
    let (status, body) = post(&app, "/v1/dead/evt_d2/discard", json!({"reason": "again"})).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = post(&app, "/v1/dead/evt_d1/retry", json!({})).await;
    assert_eq!(status, 409, "evt_d1 is pending now, not dead");
    let (_, body) = get(&app, "/v1/dead").await;
    assert!(body["events"].as_array().unwrap().is_empty());
    app.stop().await;
}

/// A handler that always fails.
struct AlwaysFails;

impl stripe_hookd::testing::queue::Handler for AlwaysFails {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn handle(
        &self,
        _: stripe_hookd::testing::queue::EventGroup,
        _: &stripe_hookd::testing::queue::HandlerContext,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<stripe_hookd::testing::queue::Apply, stripe_hookd::testing::queue::HandlerError>,
    > {
        Box::pin(async {
            Err(stripe_hookd::testing::queue::HandlerError::retry(
                "always fails",
            ))
        })
    }
}

/// The value of a metric line `name{labels…} value` whose labels contain every `want`.
fn metric(text: &str, name: &str, want: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| want.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics_move_when_events_flow(backend: Backend) {
    let db = TestDb::new(backend);
    // A unique endpoint name: the metrics registry is process-wide.
    let endpoint = format!("metrics_{}_{}", backend as u8, std::process::id());
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().admin().config({
            let endpoint = endpoint.clone();
            move |c| c.endpoints[0].name = endpoint.clone()
        }),
    )
    .await;
    let scrape = || async {
        let res = app
            .client
            .get(app.admin_url("/metrics"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    let ep = format!("endpoint=\"{endpoint}\"");
    let before = scrape().await;
    assert_eq!(metric(&before, "hookd_webhook_requests_total", &[&ep]), 0.0);

    deliver_all(
        &app,
        &[
            ("evt_m1", "invoice.paid", "in_1"),
            ("evt_m2", "invoice.paid", "in_2"),
        ],
    )
    .await;
    app.deliver(&event_body("evt_m1", "invoice.paid", "in_1", false))
        .await;
    let bad = event_body("evt_m3", "invoice.paid", "in_3", false);
    app.post_raw(
        "/webhooks/stripe",
        &bad,
        Some(&signature_header(&["whsec_wrong"], now(), &bad)),
    )
    .await;

    let text = scrape().await;
    assert_eq!(
        metric(
            &text,
            "hookd_webhook_requests_total",
            &[&ep, "outcome=\"stored\""]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "hookd_webhook_requests_total",
            &[&ep, "outcome=\"duplicate\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "hookd_webhook_requests_total",
            &[&ep, "outcome=\"rejected\""]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "hookd_signature_failures_total",
            &[&ep, "reason=\"signature_mismatch\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "hookd_outbox_events", &["status=\"pending\""]),
        2.0
    );
    assert!(metric(&text, "hookd_outbox_lag_seconds", &[]) >= 0.0);
    assert!(text.contains(&format!("hookd_seconds_since_last_verified_event{{{ep}}}")));
    assert!(metric(&text, "hookd_seconds_since_last_verified_event", &[&ep]) < 60.0);

    app.runner.run_pending().await.unwrap();
    let text = scrape().await;
    assert_eq!(
        metric(&text, "hookd_outbox_events", &["status=\"pending\""]),
        0.0
    );
    assert_eq!(
        metric(&text, "hookd_outbox_events", &["status=\"ignored\""]),
        2.0
    );
    assert!(
        metric(
            &text,
            "hookd_event_attempts_total",
            &["outcome=\"ignored\""]
        ) >= 2.0
    );
    assert!(text.contains("hookd_event_processing_seconds_bucket"));
    assert!(metric(&text, "hookd_intake_commit_seconds_count", &[]) >= 1.0);
    app.stop().await;
}
