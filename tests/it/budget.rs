//! The Stripe budget and the runner's groups in flight (docs/architecture.md,
//! "In flight"): with a slow Stripe the runner keeps more fetches in flight
//! than a fixed worker count would; a 429 lowers the rate in use, which
//! the admin API's health and metrics show.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::StatusCode;
use serde_json::Value;
use stripe_hookd::testing::store::outbox;
use stripe_hookd::testing::trigger::Scenario;

use crate::backend_tests;
use crate::fake_stripe::{FakeStripe, Fault};
use crate::harness::{
    quick_retries, AppOptions, Backend, TestApp, TestDb, ADMIN_TOKEN, API_VERSION,
};

backend_tests!(
    a_slow_stripe_gets_more_fetches_in_flight_than_the_fixed_workers,
    a_429_lowers_the_rate_in_use_shown_in_health_and_metrics,
);

/// A Stripe stand-in that answers every object GET after `latency` with an
/// object of that id, and counts the requests it holds at once.
struct SlowStripe {
    base_url: String,
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl SlowStripe {
    async fn start(latency: Duration) -> SlowStripe {
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (n, m) = (Arc::clone(&now), Arc::clone(&most));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let (n, m) = (Arc::clone(&n), Arc::clone(&m));
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (n, m) = (Arc::clone(&n), Arc::clone(&m));
                async move {
                    let held = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(held, Ordering::SeqCst);
                    tokio::time::sleep(latency).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    let id = req.path().rsplit('/').next().unwrap_or_default();
                    let mut object = Scenario::new(false, API_VERSION)
                        .object("customer.subscription.created")
                        .unwrap();
                    object["id"] = Value::from(id);
                    HttpResponse::Ok()
                        .insert_header(("Request-Id", "req_slow"))
                        .json(object)
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        SlowStripe {
            base_url,
            now,
            most,
            handle,
        }
    }
}

async fn all_done(app: &TestApp, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
        let done = rows.iter().filter(|r| r.status == "done").count();
        if done == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {n} events done after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 300 ms per fetch and a budget of 100 requests/s: about 30 fetches in
/// flight use it (Little's law); the 8 workers of before held 8 at most.
async fn a_slow_stripe_gets_more_fetches_in_flight_than_the_fixed_workers(backend: Backend) {
    let db = TestDb::new(backend);
    let stripe = SlowStripe::start(Duration::from_millis(300)).await;
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().stripe(&stripe.base_url).config(|c| {
            c.stripe.requests_per_sec = Some(100);
            c.stripe.timeout_secs = 20;
            c.runner.enabled = true;
            c.runner.poll_interval_ms = 50;
        }),
    )
    .await;
    assert_eq!(app.runner.options().concurrency, 8, "the default workers");
    let n = 80;
    let events: Vec<Value> = (0..n)
        .map(|_| {
            Scenario::new(false, API_VERSION)
                .event("customer.subscription.updated")
                .unwrap()
        })
        .collect();
    for chunk in events.chunks(16) {
        futures_util::future::join_all(chunk.iter().map(|e| app.deliver_ok(e))).await;
    }
    all_done(&app, n, Duration::from_secs(60)).await;
    let most = stripe.most.load(Ordering::SeqCst);
    assert!(
        most > 8,
        "at most {most} fetches in flight at once: the budget (100/s × 0.3 s) calls for about 30"
    );
    assert_eq!(stripe.now.load(Ordering::SeqCst), 0);
    app.stop().await;
    stripe.handle.stop(false).await;
}

async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let body = app
        .client
        .get(app.admin_url("/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Stripe answers a re-fetch 429: the client retries it after its backoff,
/// and the rate in use drops to half the budget (held for minutes), in the
/// health strip's figures and the metrics.
async fn a_429_lowers_the_rate_in_use_shown_in_health_and_metrics(backend: Backend) {
    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .stripe(&fake.base_url)
            .admin()
            .config(|c| {
                quick_retries(c);
                c.stripe.requests_per_sec = Some(40);
            }),
    )
    .await;
    let health = || async {
        let res = app
            .client
            .get(app.admin_url("/ui/health"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<Value>().await.unwrap()["stripe_api"]["budget"].clone()
    };
    let before = health().await;
    assert_eq!(before["budget"], 40.0, "{before}");
    assert_eq!(before["in_use"], 40.0, "{before}");
    assert!(before["since_rate_limited_secs"].is_null(), "{before}");

    let s = Scenario::new(false, API_VERSION);
    fake.subscription(&s, "active");
    fake.fail_next(
        1,
        "/v1/subscriptions/",
        Fault::RateLimited {
            should_retry: None,
            retry_after: None,
        },
    );
    app.deliver_ok(&s.event("customer.subscription.updated").unwrap())
        .await;
    let tally = app.runner.run_pending().await.unwrap();
    assert_eq!(tally.done, 1, "retried by the client after the 429");
    assert_eq!(fake.count("/v1/subscriptions/"), 2, "the 429 and its retry");

    let after = health().await;
    assert_eq!(after["budget"], 40.0, "{after}");
    assert_eq!(after["in_use"], 20.0, "halved by the 429: {after}");
    assert!(
        after["since_rate_limited_secs"].as_f64().is_some(),
        "{after}"
    );
    assert!(after["latency_secs"].as_f64().is_some(), "{after}");
    assert_eq!(
        metric(&app, "hookd_stripe_budget_requests_per_second").await,
        Some(40.0)
    );
    assert_eq!(
        metric(&app, "hookd_stripe_rate_in_use_requests_per_second").await,
        Some(20.0)
    );
    assert!(
        metric(&app, "hookd_stripe_latency_seconds")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    app.stop().await;
    fake.stop().await;
}
