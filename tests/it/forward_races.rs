//! Delivery and event status under races and broken rows (#28 items 6–8):
//! a 410 pause that nothing undoes before it is stored, and that backs
//! off; operator changes that state the status they expect (a delivery
//! being sent is left alone); pruning that keeps an event replayed since
//! it was listed; a delivery whose body is gone dead-lettered while the
//! rest of its destination flows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::RunQueryDsl;
use futures_util::FutureExt;
use serde_json::{json, Value};
use stripe_hookd::testing::store::deliveries::{self, pauses, Change};
use stripe_hookd::testing::store::{write_transaction, DbConnection};

use crate::backend_tests;
use crate::forward::{customer_event, destination, forwarder, rows, with_destination, Receiver};
use crate::harness::{Backend, TestApp, TestDb, ADMIN_TOKEN};

backend_tests!(
    a_gone_pause_that_cannot_be_stored_holds_here_until_it_is,
    a_gone_delivery_backs_off_like_any_retry,
    redeliver_and_discard_leave_a_delivery_being_sent_alone,
    pruning_keeps_an_event_replayed_after_it_was_listed,
    a_delivery_without_its_body_is_dead_and_the_rest_flow,
);

/// Runs `sql` (one statement per entry) on the test's database.
async fn execute(app: &TestApp, sql: &[&str]) {
    let sql: Vec<String> = sql.iter().map(|s| (*s).to_owned()).collect();
    app.db(move |conn| {
        for statement in &sql {
            stripe_hookd::testing::with_conn!(conn, c => diesel::sql_query(statement.as_str()).execute(c))
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    })
    .await;
}

/// Makes every write of a pause row fail (as a full disk or a lost
/// database would), until [`allow_pauses`].
async fn refuse_pauses(app: &TestApp, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            execute(
                app,
                &[
                    "CREATE TRIGGER no_pauses BEFORE INSERT ON destination_pauses \
             BEGIN SELECT RAISE(ABORT, 'pauses cannot be stored'); END",
                ],
            )
            .await
        }
        Backend::Postgres => {
            execute(
                app,
                &[
                    "CREATE FUNCTION no_pauses() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'pauses cannot be stored'; END $$",
                    "CREATE TRIGGER no_pauses BEFORE INSERT ON destination_pauses \
             FOR EACH ROW EXECUTE FUNCTION no_pauses()",
                ],
            )
            .await
        }
    }
}

async fn allow_pauses(app: &TestApp, backend: Backend) {
    match backend {
        Backend::Sqlite => execute(app, &["DROP TRIGGER no_pauses"]).await,
        Backend::Postgres => execute(app, &["DROP TRIGGER no_pauses ON destination_pauses"]).await,
    }
}

async fn stored_pauses(app: &TestApp) -> Vec<String> {
    app.db(|c| pauses::list(c).unwrap())
        .await
        .into_iter()
        .map(|p| p.destination)
        .collect()
}

async fn admin_get(app: &TestApp, path: &str) -> Value {
    app.client
        .get(app.admin_url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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

const BACKOFF_BASE_MS: u64 = 30_000;

/// A 410 whose pause row cannot be stored: the destination stays paused
/// in this process through every read of the pauses (before the fix the
/// first read found no row and resumed it, and the delivery, due again at
/// once, was sent again in a tight loop: `run_pending` never returned);
/// once the database takes writes again the pause is stored for every
/// instance.
async fn a_gone_pause_that_cannot_be_stored_holds_here_until_it_is(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(410);
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_gone1"))
        .await;
    app.runner.run_pending().await.unwrap();
    refuse_pauses(&app, backend).await;

    let fwd = forwarder(&app);
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(20), fwd.run_pending())
            .await
            .expect("a 410 answered again and again: the pause was undone")
            .unwrap();
        clock.advance(Duration::from_secs(24 * 3600));
    }
    assert_eq!(app_side.seen().len(), 1, "sent again after a 410");
    assert!(fwd.is_paused("app"), "the local pause was undone");
    assert!(stored_pauses(&app).await.is_empty());

    allow_pauses(&app, backend).await;
    fwd.run_pending().await.unwrap();
    assert_eq!(stored_pauses(&app).await, vec!["app".to_owned()]);
    assert!(fwd.is_paused("app"));
    assert_eq!(app_side.seen().len(), 1);
    assert!(rows(&app).await.iter().all(|r| r.status == "pending"));
}

/// The delivery answered 410 is due again after a backoff like any
/// failed attempt (before: at once, so a resume, or a pause that was
/// undone, resent it in a tight loop to an app that said Gone).
async fn a_gone_delivery_backs_off_like_any_retry(backend: Backend) {
    let db = TestDb::new(backend);
    let gone = Arc::new(AtomicBool::new(true));
    let app_side = {
        let gone = gone.clone();
        Receiver::start(Arc::new(move |_| {
            let status = if gone.load(Ordering::SeqCst) {
                410
            } else {
                200
            };
            async move { status }.boxed()
        }))
    };
    let options = with_destination(destination(&app_side.url, |_| {}))
        .admin()
        .config(|c| c.forward.backoff_base_ms = BACKOFF_BASE_MS);
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    app.deliver_ok(&customer_event("customer.created", "cus_gone2"))
        .await;
    app.runner.run_pending().await.unwrap();
    let fwd = forwarder(&app);
    let answered_at = clock.now_ms();
    fwd.run_pending().await.unwrap();
    assert!(fwd.is_paused("app"));
    let row = rows(&app).await.remove(0);
    assert_eq!(row.status, "pending");
    assert_eq!(row.last_status, Some(410));
    // The first retry's backoff: `forward.backoff_base_ms` with equal
    // jitter, at least half of it.
    let base = BACKOFF_BASE_MS as i64;
    assert!(
        row.next_attempt_at >= answered_at + base / 2,
        "due again {} ms after the 410, the backoff is at least {} ms",
        row.next_attempt_at - answered_at,
        base / 2
    );

    // Held back, paused or not: not sent again within the backoff.
    assert_eq!(app_side.seen().len(), 1);
    execute(&app, &["DELETE FROM destination_pauses"]).await;
    fwd.run_pending().await.unwrap();
    assert!(!fwd.is_paused("app"));
    assert_eq!(app_side.seen().len(), 1, "resent within the backoff");

    // An operator's resume says the app is back: due at once.
    gone.store(false, Ordering::SeqCst);
    let pause = app
        .db(move |c| pauses::pause(c, "app", answered_at, "410 again").unwrap())
        .await;
    assert!(pause);
    let (status, _) = admin_post(&app, "/v1/destinations/app/resume", json!({})).await;
    assert_eq!(status, 200);
    fwd.run_pending().await.unwrap();
    assert_eq!(app_side.delivered().len(), 1);
}

/// A redeliver or a discard of a delivery the forwarder holds is refused
/// (409 `in_flight` from the admin API) and changes nothing; so is one
/// that read the status just before a claim committed (Postgres: the
/// claim can commit between the read and the update, driven here by
/// handing the update the status read before the claim). Before the fix
/// that update reset the delivery being sent (sent twice) or discarded it
/// mid-flight.
async fn redeliver_and_discard_leave_a_delivery_being_sent_alone(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {})).admin();
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let event = app
        .deliver_ok(&customer_event("customer.created", "cus_race1"))
        .await;
    app.runner.run_pending().await.unwrap();
    let id = deliveries::delivery_id("app", &event);
    assert_eq!(
        rows(&app).await[0].status,
        "pending",
        "read before the claim"
    );

    // The forwarder of some instance claims it.
    let now = clock.now_ms();
    let claimed = app
        .db(move |c| {
            deliveries::claim(
                c,
                &deliveries::Claim {
                    destination: "app",
                    ordered: true,
                    owner: "another-instance",
                    now,
                    lease_ms: 60_000,
                    limit: 8,
                },
            )
            .unwrap()
        })
        .await;
    assert_eq!(claimed.len(), 1);
    let before = rows(&app).await.remove(0);
    assert_eq!(before.status, "delivering");

    for (path, body) in [
        (format!("/v1/deliveries/{id}/redeliver"), json!({})),
        (
            format!("/v1/deliveries/{id}/discard"),
            json!({"reason": "merged"}),
        ),
    ] {
        let (status, answer) = admin_post(&app, &path, body).await;
        assert_eq!(status, 409, "{path}: {answer}");
        assert_eq!(answer["error"]["reason"], "in_flight", "{path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("is being sent"), "{message}");
    }

    // The statements themselves, with the status read before the claim.
    let stale = |f: fn(&mut DbConnection, &str) -> Result<Change, diesel::result::Error>| {
        let id = id.clone();
        app.db(move |c| f(c, &id).unwrap())
    };
    let redone = stale(|c, id| {
        write_transaction(c, |tx| {
            deliveries::redeliver_expecting(tx, id, "pending", 1)
        })
    })
    .await;
    assert_eq!(redone, Change::Refused("delivering".to_owned()));
    let discarded = stale(|c, id| {
        write_transaction(c, |tx| {
            deliveries::discard_expecting(tx, id, "pending", "merged", 1)
        })
    })
    .await;
    assert_eq!(discarded, Change::Refused("delivering".to_owned()));

    let after = rows(&app).await.remove(0);
    assert_eq!(after.status, "delivering");
    assert_eq!(after.attempts, before.attempts);
    assert_eq!(after.lease_owner.as_deref(), Some("another-instance"));
    assert_eq!(after.discarded_at, None);
    assert_eq!(after.last_error, None);
    assert!(app_side.seen().is_empty());
}

/// The events' pruning lists what is finished, then deletes; a replay that
/// commits in between (Postgres) made the event pending again. Driven
/// here by handing the delete the list read before the replay: the
/// replayed event stays, with its `replayed` attempt (before the fix the
/// delete went by `event_id` alone and took it).
async fn pruning_keeps_an_event_replayed_after_it_was_listed(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {})).admin();
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let kept = app
        .deliver_ok(&customer_event("customer.created", "cus_prune1"))
        .await;
    let pruned = app
        .deliver_ok(&customer_event("customer.created", "cus_prune2"))
        .await;
    app.runner.run_pending().await.unwrap();
    let older_than = clock.now_ms() + 1;
    let listed = vec![kept.clone(), pruned.clone()];

    let (status, answer) = admin_post(&app, &format!("/v1/events/{kept}/replay"), json!({})).await;
    assert_eq!(status, 200, "{answer}");

    let deleted = app
        .db(move |c| {
            write_transaction(c, |tx| {
                stripe_hookd::testing::store::outbox::retention::delete_finished(
                    tx, &listed, older_than,
                )
            })
            .unwrap()
        })
        .await;
    assert_eq!(deleted, 1, "only the event still finished");
    let event = admin_get(&app, &format!("/v1/events/{kept}")).await;
    assert_eq!(event["event"]["status"], "pending", "{event}");
    let attempts = event["attempts"].as_array().unwrap();
    assert!(
        attempts.iter().any(|a| a["outcome"] == "replayed"),
        "the replay's attempt row went: {event}"
    );
    let res = app
        .client
        .get(app.admin_url(&format!("/v1/events/{pruned}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // The replayed event runs again, and its delivery still has its body.
    app.runner.run_pending().await.unwrap();
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.delivered().len(), 2);
}

/// One delivery whose body is gone (its outbox event deleted by hand):
/// before the fix every claim of the destination failed on it ("unexpected
/// null"), so nothing more was ever sent there. Now it is dead with the
/// reason, shown by the admin API, and the others are delivered.
async fn a_delivery_without_its_body_is_dead_and_the_rest_flow(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {})).admin();
    let app = TestApp::spawn_with(&db, options).await;
    let mut events = Vec::new();
    for (event_type, customer) in [
        ("customer.created", "cus_body1"),
        ("customer.created", "cus_body2"),
        ("customer.updated", "cus_body2"),
        ("customer.created", "cus_body3"),
    ] {
        events.push(app.deliver_ok(&customer_event(event_type, customer)).await);
    }
    app.runner.run_pending().await.unwrap();
    // The first of cus_body2: it also held the object's next one back.
    let broken = events[1].clone();
    execute(
        &app,
        &[&format!(
            "DELETE FROM webhook_events WHERE event_id = '{broken}'"
        )],
    )
    .await;

    let tally = tokio::time::timeout(Duration::from_secs(20), forwarder(&app).run_pending())
        .await
        .expect("the forwarder ends")
        .expect("claims succeed");
    assert_eq!(tally.delivered, 3, "{tally:?}");
    let mut delivered: Vec<String> = app_side
        .delivered()
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    delivered.sort();
    let mut others: Vec<String> = events.iter().filter(|e| **e != broken).cloned().collect();
    others.sort();
    assert_eq!(delivered, others);

    let id = deliveries::delivery_id("app", &broken);
    let listed = admin_get(&app, "/v1/deliveries?status=dead").await;
    let dead = listed["deliveries"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{listed}");
    assert_eq!(dead[0]["delivery_id"], id.as_str());
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.starts_with("body missing"), "{error}");
    assert_eq!(dead[0]["attempts"], 0, "nothing was sent");
    let shown = admin_get(&app, &format!("/v1/deliveries/{id}")).await;
    assert_eq!(shown["delivery"]["status"], "dead", "{shown}");
    assert_eq!(shown["delivery"]["payload"], Value::Null);
}
