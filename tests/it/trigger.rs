//! `trigger` builds events that verify, and group commit never
//! answers 2xx for an event that is not stored.

use std::collections::HashSet;

use futures_util::future::join_all;
use stripe_hookd::testing::intake::signature;
use stripe_hookd::testing::store::outbox;
use stripe_hookd::testing::stripe::envelope;
use stripe_hookd::testing::trigger::{self, Intake, Load, Scenario, TYPES};

use crate::backend_tests;
use crate::harness::*;

#[test]
fn trigger_signatures_match_an_independent_computation_and_verify() {
    let scenario = Scenario::new(false, API_VERSION);
    for (event_type, _) in TYPES {
        let body = scenario.event(event_type).expect("type").to_string();
        let header = trigger::signature_header(SECRET, &body);
        let (t, v1) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .expect("t=…,v1=… header");
        let t: i64 = t.parse().expect("timestamp");
        assert_eq!(
            v1,
            sign(SECRET, t, &body),
            "{event_type}: HMAC-SHA256 over \"{{t}}.{{body}}\""
        );
        let verified = signature::verify(Some(&header), body.as_bytes(), &[SECRET], now(), 300)
            .expect("verifies");
        assert_eq!(verified.timestamp, t);
        assert_eq!(
            envelope::parse(body.as_bytes()).expect("event").event_type,
            *event_type
        );
    }
}

backend_tests!(
    triggered_events_are_accepted_and_stored,
    group_commit_with_the_database_failing_mid_batch_never_acknowledges_a_lost_event,
);

async fn triggered_events_are_accepted_and_stored(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    let target = Intake {
        url: app.url("/webhooks/stripe"),
        secret: SECRET.to_owned(),
    };
    let load = Load {
        count: 120,
        concurrency: 8,
        rate: None,
        duplicates_pct: 25.0,
        shuffle: true,
        livemode: false,
        api_version: API_VERSION.to_owned(),
    };
    let report = trigger::run_load(&target, &load).await.expect("load run");
    assert_eq!(report.requests, 150);
    assert_eq!(report.statuses.get("200"), Some(&150));
    assert_eq!(app.count().await, 120, "duplicates are stored once");
    let rows = app.db(|c| outbox::list_all(c).unwrap()).await;
    let types: HashSet<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(types.len(), TYPES.len(), "every type was sent");
    assert!(
        report.latency_ms.p50 <= report.latency_ms.p99
            && report.latency_ms.p99 <= report.latency_ms.max
    );
    app.stop().await;
}

/// Refuses inserts of events whose id contains `_fail_` (a failing disk
/// sector, say), so that batches holding them fail mid-way.
fn refuse_some_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CREATE TRIGGER hookd_test_refuse_some BEFORE INSERT ON webhook_events WHEN NEW.event_id LIKE '%\\_fail\\_%' ESCAPE '\\' BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END;",
        Backend::Postgres => "CREATE FUNCTION hookd_test_refuse_some() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.event_id LIKE '%\\_fail\\_%' THEN RAISE EXCEPTION 'simulated write failure'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER hookd_test_refuse_some BEFORE INSERT ON webhook_events FOR EACH ROW EXECUTE FUNCTION hookd_test_refuse_some();",
    }
}

async fn group_commit_with_the_database_failing_mid_batch_never_acknowledges_a_lost_event(
    backend: Backend,
) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn(&db).await;
    app.db(move |c| c.batch_execute(refuse_some_sql(backend)).expect("trigger"))
        .await;
    // 200 concurrent deliveries; one in five fails to insert, scattered
    // through the batches the writer forms.
    let ids: Vec<String> = (0..200)
        .map(|i| {
            if i % 5 == 2 {
                format!("evt_fail_{i}")
            } else {
                format!("evt_ok_{i}")
            }
        })
        .collect();
    let bodies: Vec<String> = ids
        .iter()
        .map(|id| event_body(id, "invoice.paid", "in_gc", false))
        .collect();
    let answers = join_all(bodies.iter().map(|b| app.deliver(b))).await;
    let stored: HashSet<String> = app
        .db(|c| outbox::event_ids(c).unwrap())
        .await
        .into_iter()
        .collect();
    let mut acknowledged = 0;
    for (id, res) in ids.iter().zip(&answers) {
        if res.status().is_success() {
            acknowledged += 1;
            assert!(
                stored.contains(id),
                "{id} was answered {} but is not stored",
                res.status()
            );
        } else {
            assert_eq!(res.status(), 503, "{id}");
            assert!(
                !stored.contains(id),
                "{id} is stored but was answered {}",
                res.status()
            );
        }
    }
    assert_eq!(
        acknowledged, 160,
        "one bad row does not fail its batch neighbours"
    );
    assert_eq!(stored.len(), 160);
    app.stop().await;
}
