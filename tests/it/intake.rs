//! Verified events into the durable outbox.

use crate::backend_tests;
use crate::harness::*;
use futures_util::future::join_all;
use stripe_hookd::testing::store::outbox;

backend_tests!(
    a_signed_event_is_stored_once_with_its_fields,
    redeliveries_concurrent_are_stored_once,
    distinct_concurrent_events_are_all_stored,
    every_rejection_has_its_status_and_reason_and_stores_nothing,
    rolling_secrets_either_one_verifies,
    storage_failure_answers_503_then_the_retry_is_stored,
    a_restart_keeps_every_stored_event,
    shutdown_finishes_in_flight_requests,
    health_and_readiness,
);

async fn a_signed_event_is_stored_once_with_its_fields(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    let mut event = snapshot_event(
        "customer.subscription.updated",
        serde_json::json!({"id": "sub_42", "object": "subscription", "status": "active"}),
    );
    event["id"] = "evt_1Abc".into();
    event["api_version"] = "2024-06-20".into();
    event["account"] = "acct_123".into();
    event["created"] = 1_763_999_990.into();
    let body = event.to_string();

    let res = app.deliver(&body).await;
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer, serde_json::json!({"received": true}));

    let row = app
        .db(|c| outbox::get(c, "evt_1Abc").expect("query"))
        .await
        .expect("stored");
    assert_eq!(row.event_type, "customer.subscription.updated");
    assert_eq!(row.api_version.as_deref(), Some("2024-06-20"));
    assert_eq!(row.account.as_deref(), Some("acct_123"));
    assert!(!row.livemode);
    assert_eq!(row.object_type.as_deref(), Some("subscription"));
    assert_eq!(row.object_id.as_deref(), Some("sub_42"));
    assert_eq!(row.stripe_created, 1_763_999_990);
    assert_eq!(row.payload, body, "the raw body is stored byte for byte");
    assert_eq!(row.endpoint, "default");
    assert_eq!(row.secret_index, 0);
    assert_eq!(row.status, "pending");
    assert_eq!(row.attempts, 0);
    let headers: serde_json::Value = serde_json::from_str(&row.headers).expect("headers json");
    assert!(headers["stripe-signature"]
        .as_str()
        .is_some_and(|s| s.starts_with("t=")));
    assert!(headers["user-agent"]
        .as_str()
        .is_some_and(|s| s.starts_with("Stripe/")));
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

async fn redeliveries_concurrent_are_stored_once(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    for (n, id) in [(2, "evt_twice"), (20, "evt_twenty")] {
        let body = event_body(id, "invoice.paid", "in_1", false);
        let responses = join_all((0..n).map(|_| app.deliver(&body))).await;
        for res in responses {
            assert!(res.status().is_success(), "{id}: {}", res.status());
            let answer: serde_json::Value = res.json().await.expect("json");
            assert_eq!(answer["received"], true);
        }
    }
    assert_eq!(app.count().await, 2);
    app.stop().await;
}

async fn distinct_concurrent_events_are_all_stored(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    let bodies: Vec<String> = (0..200)
        .map(|i| {
            event_body(
                &format!("evt_many_{i}"),
                "payment_intent.succeeded",
                &format!("pi_{i}"),
                false,
            )
        })
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.deliver(b))).await;
    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.count().await, 200);
    let ids = app.db(|c| outbox::event_ids(c).expect("ids")).await;
    for i in 0..200 {
        assert!(ids.contains(&format!("evt_many_{i}")));
    }
    app.stop().await;
}

async fn every_rejection_has_its_status_and_reason_and_stores_nothing(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().config(|c| c.intake.max_body_bytes = 4096),
    )
    .await;
    let body = event_body("evt_reject", "customer.created", "cus_1", false);
    let t = now();
    let sig = sign(SECRET, t, &body);
    let live_body = event_body("evt_live", "customer.created", "cus_1", true);
    let huge = event_body(
        &format!("evt_{}", "x".repeat(5000)),
        "customer.created",
        "cus_1",
        false,
    );
    let not_event = r#"{"hello":"world"}"#;

    // (case, body, Stripe-Signature, status, reason, words of the message)
    type Case = (
        &'static str,
        String,
        Option<String>,
        u16,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("no header", body.clone(), None, 400, "missing_signature", "No stripe-signature header value was provided."),
        ("empty header", body.clone(), Some(String::new()), 400, "missing_signature", "No stripe-signature header value was provided."),
        ("garbage header", body.clone(), Some("not a signature".into()), 400, "unparsable_signature", "Unable to extract timestamp and signatures from header"),
        ("v0 only", body.clone(), Some(format!("t={t},v0={sig}")), 400, "no_v1_signature", "No signatures found with expected scheme"),
        ("wrong secret", body.clone(), Some(signature_header(&["whsec_wrong"], t, &body)), 400, "signature_mismatch", "No signatures found matching the expected signature for payload. Are you passing the raw request body you received from Stripe?"),
        ("re-serialised body", body.replace(",", ", "), Some(format!("t={t},v1={sig}")), 400, "signature_mismatch", "Are you passing the raw request body"),
        ("too old", body.clone(), Some(signature_header(&[SECRET], t - 301, &body)), 400, "timestamp_too_old", "Timestamp outside the tolerance zone"),
        ("in the future", body.clone(), Some(signature_header(&[SECRET], t + 3600, &body)), 400, "timestamp_in_future", "Timestamp outside the tolerance zone"),
        ("not an event", not_event.to_owned(), Some(signature_header(&[SECRET], t, not_event)), 400, "not_an_event", "not a Stripe event"),
        ("empty body", String::new(), Some(signature_header(&[SECRET], t, "")), 400, "not_an_event", "not a Stripe event"),
        ("live event, test endpoint", live_body.clone(), Some(signature_header(&[SECRET], t, &live_body)), 400, "livemode_mismatch", "test mode"),
        ("too large", huge.clone(), Some(signature_header(&[SECRET], t, &huge)), 413, "payload_too_large", "larger than 4096 bytes"),
    ];
    for (name, body, header, status, reason, message) in cases {
        let res = app
            .post_raw("/webhooks/stripe", &body, header.as_deref())
            .await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        let answer: serde_json::Value = res.json().await.expect("json error body");
        assert_eq!(answer["error"]["reason"], reason, "{name}: {answer}");
        let text = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{name}: {text:?} should contain {message:?}"
        );
    }

    let res = app
        .client
        .get(app.url("/webhooks/stripe"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let res = app
        .post_raw("/webhooks/other", &body, Some(&format!("t={t},v1={sig}")))
        .await;
    assert_eq!(res.status(), 404);
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer["error"]["reason"], "unknown_path");

    assert_eq!(app.count().await, 0, "no rejected delivery is stored");
    app.stop().await;
}

async fn rolling_secrets_either_one_verifies(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().config(|c| {
            c.endpoints = vec![endpoint(c, "rolling", Mode::Test, &[OLD_SECRET, SECRET])]
        }),
    )
    .await;
    let t = now();
    let deliveries = [
        ("evt_old", vec![OLD_SECRET], 0),
        ("evt_new", vec![SECRET], 1),
        ("evt_both", vec![SECRET, OLD_SECRET], 0),
    ];
    for (id, secrets, _) in &deliveries {
        let body = event_body(id, "customer.updated", "cus_9", false);
        let res = app
            .post_raw(
                "/webhooks/stripe",
                &body,
                Some(&signature_header(secrets, t, &body)),
            )
            .await;
        assert_eq!(res.status(), 200, "{id}");
    }
    for (id, _, index) in deliveries {
        let row = app
            .db(move |c| outbox::get(c, id).expect("query"))
            .await
            .expect("stored");
        assert_eq!(
            row.secret_index, index,
            "{id}: which secret matched is recorded"
        );
    }
    let body = event_body("evt_neither", "customer.updated", "cus_9", false);
    let res = app
        .post_raw(
            "/webhooks/stripe",
            &body,
            Some(&signature_header(&["whsec_third"], t, &body)),
        )
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(app.count().await, 3);
    app.stop().await;
}

/// A trigger makes the real database refuse inserts, as a full disk or a
/// failing volume would.
pub fn refuse_inserts_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CREATE TRIGGER hookd_test_refuse BEFORE INSERT ON webhook_events BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END;",
        Backend::Postgres => "CREATE FUNCTION hookd_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'simulated storage failure'; END $$; \
             CREATE TRIGGER hookd_test_refuse BEFORE INSERT ON webhook_events FOR EACH ROW EXECUTE FUNCTION hookd_test_refuse();",
    }
}

pub fn accept_inserts_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "DROP TRIGGER hookd_test_refuse;",
        Backend::Postgres => {
            "DROP TRIGGER hookd_test_refuse ON webhook_events; DROP FUNCTION hookd_test_refuse();"
        }
    }
}

async fn storage_failure_answers_503_then_the_retry_is_stored(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    app.db(move |c| {
        c.batch_execute(refuse_inserts_sql(backend))
            .expect("install trigger")
    })
    .await;

    let body = event_body("evt_retry_me", "invoice.payment_succeeded", "in_7", false);
    let res = app.deliver(&body).await;
    assert_eq!(res.status(), 503);
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s > 0),
        "503 carries Retry-After"
    );
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer["error"]["reason"], "storage_unavailable");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("simulated storage failure"));
    assert_eq!(app.count().await, 0);

    // Concurrent deliveries while failing: every one is refused, none stored.
    let bodies: Vec<String> = (0..20)
        .map(|i| event_body(&format!("evt_fail_{i}"), "invoice.paid", "in_8", false))
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.deliver(b))).await;
    assert!(responses.iter().all(|r| r.status() == 503));
    assert_eq!(app.count().await, 0);

    app.db(move |c| {
        c.batch_execute(accept_inserts_sql(backend))
            .expect("drop trigger")
    })
    .await;
    // Stripe retries with a new signature timestamp.
    let res = app.deliver(&body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.count().await, 1);
    assert!(app
        .db(|c| outbox::get(c, "evt_retry_me").expect("q"))
        .await
        .is_some());
    app.stop().await;
}

async fn a_restart_keeps_every_stored_event(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    let bodies: Vec<String> = (0..25)
        .map(|i| event_body(&format!("evt_keep_{i}"), "customer.updated", "cus_k", false))
        .collect();
    for res in join_all(bodies.iter().map(|b| app.deliver(b))).await {
        assert_eq!(res.status(), 200);
    }
    app.stop().await;

    let app = TestApp::spawn(&db).await;
    assert_eq!(app.count().await, 25);
    let res = app.deliver(&bodies[3]).await;
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(
        answer["duplicate"], true,
        "a redelivery after restart is recognised"
    );
    assert_eq!(app.count().await, 25);
    app.stop().await;
}

async fn shutdown_finishes_in_flight_requests(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    // Hold the outbox's write lock from another connection, so that the
    // deliveries below are provably in flight (waiting for their commit)
    // when the shutdown starts.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let store = app.store.clone();
    let holder = std::thread::spawn(move || {
        let mut conn = store.conn().expect("conn");
        let (begin, commit) = match backend {
            Backend::Sqlite => ("BEGIN EXCLUSIVE;", "COMMIT;"),
            Backend::Postgres => (
                "BEGIN; LOCK TABLE webhook_events IN EXCLUSIVE MODE;",
                "COMMIT;",
            ),
        };
        conn.batch_execute(begin).expect("lock");
        locked.send(()).expect("signal");
        released.recv().expect("wait");
        conn.batch_execute(commit).expect("unlock");
    });
    is_locked.recv().expect("locked");

    let bodies: Vec<String> = (0..20)
        .map(|i| {
            event_body(
                &format!("evt_inflight_{i}"),
                "charge.dispute.created",
                "dp_1",
                false,
            )
        })
        .collect();
    let requests: Vec<_> = bodies
        .iter()
        .map(|body| {
            let req = app
                .client
                .post(app.url("/webhooks/stripe"))
                .header("stripe-signature", signature_header(&[SECRET], now(), body))
                .body(body.clone());
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Let the requests reach the writer, then start the shutdown while they wait.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let store = app.store.clone();
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for in-flight requests"
    );
    release.send(()).expect("release");
    holder.join().expect("holder");
    stopping.await.expect("stopped");

    for (i, handle) in requests.into_iter().enumerate() {
        let status = handle
            .await
            .expect("join")
            .expect("in-flight request answered");
        assert_eq!(status, 200, "evt_inflight_{i}");
    }
    let ids = tokio::task::spawn_blocking(move || {
        outbox::event_ids(&mut store.conn().expect("conn")).expect("ids")
    })
    .await
    .expect("join");
    assert_eq!(
        ids.len(),
        20,
        "every in-flight delivery was committed before exit"
    );
}

async fn health_and_readiness(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    let res = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(res.status(), 200);
    let answer: serde_json::Value = res.json().await.expect("json");
    assert_eq!(answer["status"], "ready");
    app.stop().await;
}
