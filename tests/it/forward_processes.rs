//! Forwarding at process level: the real binary, SIGKILLed while the app
//! holds its request; the next process sends the delivery again, with the
//! same Stripe-Hookd-Delivery id (at least once).

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::backend_tests;
use crate::daemon::Daemon;
use crate::harness::*;

/// (delivery id, attempt) of each request the app received.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An app that holds its first request (never answers it) and answers the
/// others 200.
fn holding_app() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let state = seen.clone();
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().default_service(web::to(move |req: HttpRequest| {
            let state = state.clone();
            async move {
                let header = |n: &str| {
                    req.headers()
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                let first = {
                    let mut seen = state.lock().unwrap();
                    seen.push((
                        header("stripe-hookd-delivery"),
                        header("stripe-hookd-attempt"),
                    ));
                    seen.len() == 1
                };
                if first {
                    std::future::pending::<()>().await;
                }
                HttpResponse::Ok().body("ok")
            }
        }))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://{addr}/webhooks/stripe"), seen)
}

async fn wait_until(secs: u64, what: &str, seen: &Seen, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while seen.lock().unwrap().len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

backend_tests!(a_daemon_killed_mid_delivery_sends_it_again_after_restart);

async fn a_daemon_killed_mid_delivery_sends_it_again_after_restart(backend: Backend) {
    let db = TestDb::new(backend);
    let (app_url, seen) = holding_app();
    let destinations =
        format!("[{{name=\"app\",url=\"{app_url}\",secret=\"whsec_process\",after=\"received\"}}]");
    let env = [
        ("STRIPE_HOOKD_DESTINATIONS", destinations.as_str()),
        // The held request outlives the kill; the lease (which must outlast
        // the request's time-out) is what the next process waits for.
        ("STRIPE_HOOKD_FORWARD__TIMEOUT_SECS", "10"),
        ("STRIPE_HOOKD_FORWARD__LEASE_SECS", "12"),
        ("STRIPE_HOOKD_FORWARD__POLL_INTERVAL_MS", "100"),
    ];
    let mut first = Daemon::spawn(&db, &env);
    let body = event_body("evt_fwd_kill", "customer.created", "cus_fwd_kill", false);
    let res = client()
        .post(first.url())
        .header(
            "stripe-signature",
            signature_header(&[SECRET], now(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_until(60, "the first attempt", &seen, 1).await;
    first.kill();
    assert!(
        !first.log().contains("\"delivered\""),
        "the first process recorded an answer it never got"
    );

    let _second = Daemon::spawn(&db, &env);
    wait_until(120, "the delivery to be sent again", &seen, 2).await;
    let seen = seen.lock().unwrap().clone();
    let expected = stripe_hookd::testing::store::deliveries::delivery_id("app", "evt_fwd_kill");
    assert_eq!(seen[0], (expected.clone(), "1".to_owned()));
    assert_eq!(
        seen[1],
        (expected, "2".to_owned()),
        "same delivery id, next attempt"
    );
}

backend_tests!(a_destinations_url_secrets_appear_nowhere);

/// A destination whose URL carries a password and a query token, and
/// fails: neither appears in the daemon's log, the admin API's destination,
/// delivery and attempt JSON, or the database (#29.5).
async fn a_destinations_url_secrets_appear_nowhere(backend: Backend) {
    const PASSWORD: &str = "pw-SECRET-in-userinfo";
    const TOKEN: &str = "qs-SECRET-in-query";
    let db = TestDb::new(backend);
    // Port 9 (discard) is closed: every attempt fails to connect.
    let url = format!("http://app-user:{PASSWORD}@127.0.0.1:9/hook?token={TOKEN}&v=1");
    let destinations =
        format!("[{{name=\"app\",url=\"{url}\",secret=\"whsec_redact\",after=\"received\"}}]");
    let daemon = Daemon::spawn(
        &db,
        &[
            ("STRIPE_HOOKD_DESTINATIONS", destinations.as_str()),
            ("STRIPE_HOOKD_ADMIN_TOKEN", ADMIN_TOKEN),
            ("STRIPE_HOOKD_FORWARD__POLL_INTERVAL_MS", "100"),
        ],
    );
    let body = event_body("evt_redact", "customer.created", "cus_redact", false);
    let res = client()
        .post(daemon.url())
        .header(
            "stripe-signature",
            signature_header(&[SECRET], now(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let found = daemon
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("delivery failed; will retry"))
            .cloned();
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        failed.contains("cannot connect") && failed.contains("127.0.0.1:9/hook?token=[redacted]"),
        "the error keeps its cause and the redacted URL: {failed}"
    );
    let clean = |what: &str, text: &str| {
        assert!(
            !text.contains(PASSWORD) && !text.contains(TOKEN),
            "a URL secret in {what}:\n{text}"
        );
    };
    let log = daemon.log();
    assert!(
        log.contains("http://[redacted]@127.0.0.1:9/hook?token=[redacted]&v=[redacted]"),
        "the start's `destination configured` shows the redacted URL:\n{log}"
    );
    clean("the log", &log);

    let admin = daemon.admin_addr().expect("admin API");
    let id = stripe_hookd::testing::store::deliveries::delivery_id("app", "evt_redact");
    for path in [
        "/v1/destinations".to_owned(),
        "/v1/deliveries".to_owned(),
        format!("/v1/deliveries/{id}"),
    ] {
        let res = client()
            .get(format!("http://{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let text = res.text().await.unwrap();
        clean(&path, &text);
        if path.ends_with(&id) {
            assert!(text.contains("[redacted]"), "{text}");
        }
    }

    let url = db.url.clone();
    let stored: Vec<Option<String>> = tokio::task::spawn_blocking(move || {
        use diesel::prelude::*;
        use stripe_hookd::testing::store::schema::{deliveries, delivery_attempts};
        let store = open_store(&url);
        let mut conn = store.conn().unwrap();
        let mut errors: Vec<Option<String>> =
            stripe_hookd::testing::with_conn!(&mut *conn, c => deliveries::table
            .select(deliveries::last_error)
            .load(c))
            .unwrap();
        let attempts: Vec<Option<String>> =
            stripe_hookd::testing::with_conn!(&mut *conn, c => delivery_attempts::table
            .select(delivery_attempts::error)
            .load(c))
            .unwrap();
        errors.extend(attempts);
        errors
    })
    .await
    .unwrap();
    assert!(stored.iter().flatten().count() >= 2, "{stored:?}");
    clean("the database", &format!("{stored:?}"));
}
