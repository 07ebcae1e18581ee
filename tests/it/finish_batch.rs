//! Finishing several groups in one transaction (`finish::successes_in`, set-based
//! on Postgres): each group ends as it would alone — a group whose lease
//! is lost or whose apply fails is left untouched, its neighbours finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::prelude::*;
use stripe_hookd::queue::finish::{self, FinishError, Success};
use stripe_hookd::queue::{claim, Apply, EventGroup, HandlerError};
use stripe_hookd::store::outbox::{self, NewEvent};
use stripe_hookd::store::{now_ms, write_transaction, EpochMs};

use crate::backend_tests;
use crate::harness::{open_store, stored_event, Backend, TestDb};

backend_tests!(a_batch_finishes_each_group_as_it_would_alone);

fn counting(n: &Arc<AtomicUsize>) -> Apply {
    let n = Arc::clone(n);
    Box::new(move |_| {
        n.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

fn failing() -> Apply {
    Box::new(|_| Err(HandlerError::retry("apply failed")))
}

async fn a_batch_finishes_each_group_as_it_would_alone(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let store = open_store(&url);
        store.migrate().unwrap();
        let mut conn = store.conn().unwrap();
        let now = now_ms();
        // Four objects; `sub_ok` has two events (one handled, one not).
        // `sub_lost` comes first, so that a claim of one group takes it.
        let events: Vec<NewEvent> = [
            ("evt_lost", "sub_lost"),
            ("evt_ok_1", "sub_ok"),
            ("evt_ok_2", "sub_ok"),
            ("evt_bad", "sub_bad"),
            ("evt_plain", "sub_plain"),
        ]
        .iter()
        .map(|(id, obj)| stored_event(id, obj, now))
        .collect();
        outbox::insert_batch(&mut conn, &events).unwrap();
        let mut seq = 0;
        let mut token = || {
            seq += 1;
            format!("test-worker/{seq}")
        };
        // `sub_lost` under a 1 s lease, the others under a minute's.
        let mut groups = claim::claim(&mut conn, "test-worker", &mut token, now, 1_000, 1).unwrap();
        assert_eq!(groups[0].key, "sub_lost");
        groups.extend(claim::claim(&mut conn, "test-worker", &mut token, now, 60_000, 10).unwrap());
        assert_eq!(groups.len(), 4);
        let group = |key: &str| -> EventGroup {
            groups.iter().find(|g| g.key == key).cloned().unwrap()
        };
        // `sub_lost`'s lease expires and another worker takes it.
        let mut other = || "other-worker/1".to_owned();
        let retaken =
            claim::claim(&mut conn, "other-worker", &mut other, now + 2_000, 60_000, 10).unwrap();
        assert_eq!(retaken.len(), 1);
        assert_eq!(retaken[0].key, "sub_lost");

        let applied = Arc::new(AtomicUsize::new(0));
        let keys = ["sub_bad", "sub_lost", "sub_ok", "sub_plain"];
        let mut jobs = Vec::new();
        for key in keys {
            let g = group(key);
            let ids: Vec<String> = g.events.iter().map(|e| e.event_id.clone()).collect();
            let (handled, apply): (Vec<String>, Option<Apply>) = match key {
                "sub_ok" => (vec!["evt_ok_1".to_owned()], Some(counting(&applied))),
                "sub_bad" => (ids, Some(failing())),
                "sub_plain" => (ids, None),
                _ => (ids, Some(counting(&applied))),
            };
            jobs.push(Success {
                group: g,
                handled,
                apply,
                now: now + 3_000,
            });
        }
        let results =
            write_transaction(&mut conn, |tx| finish::successes_in(tx, jobs)).unwrap();
        assert!(matches!(results[0], Err(FinishError::Handler(_))), "{:?}", results[0]);
        assert!(matches!(results[1], Err(FinishError::LeaseLost)), "{:?}", results[1]);
        assert!(results[2].is_ok(), "{:?}", results[2]);
        assert!(results[3].is_ok(), "{:?}", results[3]);

        let mut row = |id: &str| outbox::get(&mut conn, id).unwrap().unwrap();
        let (ok1, ok2, plain) = (row("evt_ok_1"), row("evt_ok_2"), row("evt_plain"));
        assert_eq!(ok1.status.as_str(), "done");
        assert_eq!(ok2.status.as_str(), "ignored");
        assert_eq!(plain.status.as_str(), "done");
        assert_eq!(plain.processed_at, Some(EpochMs(now + 3_000)));
        // The failed apply and the lost lease left their events as they were.
        let (bad, lost) = (row("evt_bad"), row("evt_lost"));
        assert_eq!(bad.status.as_str(), "processing");
        assert_eq!(lost.status.as_str(), "processing");
        assert_eq!(lost.lease_owner.as_deref(), Some("other-worker/1"));
        // Applied for `sub_ok` only: never for the lost group.
        assert_eq!(applied.load(Ordering::SeqCst), 1);

        use stripe_hookd::store::schema::{event_attempts as a, object_leases as l};
        let (leases, open): (Vec<String>, Vec<String>) = stripe_hookd::store::with_conn!(&mut *conn, c => {
            let leases = l::table.order(l::object_key.asc()).select(l::object_key).load(c).unwrap();
            let open = a::table
                .filter(a::finished_at.is_null())
                .order(a::event_id.asc())
                .select(a::event_id)
                .load(c)
                .unwrap();
            (leases, open)
        });
        // Finished objects are free; the failed and the retaken are held.
        assert_eq!(leases, ["sub_bad", "sub_lost"]);
        // Attempt rows: closed for the finished events only.
        assert_eq!(open, ["evt_bad", "evt_lost"]);
    })
    .await
    .unwrap();
}

backend_tests!(a_failed_apply_undoes_its_own_writes_only);

/// A row written by an apply (`test_applied`, made by the test).
fn writing(mark: &'static str, then: Option<&'static str>) -> Apply {
    Box::new(move |tx| {
        stripe_hookd::store::with_tx!(tx, c => {
            diesel::sql_query("INSERT INTO test_applied (mark) VALUES ($1)")
                .bind::<diesel::sql_types::Text, _>(mark)
                .execute(c)?;
            match then {
                None => Ok(()),
                // Fails in the database: the transaction is aborted until
                // the failed apply's writes are rolled back.
                Some("statement") => {
                    diesel::sql_query("INSERT INTO test_applied (mark) VALUES ($1)")
                        .bind::<diesel::sql_types::Text, _>(mark)
                        .execute(c)?;
                    Ok(())
                }
                Some(why) => Err(HandlerError::retry(why)),
            }
        })
    })
}

/// Each group's apply is undone alone: an apply that wrote and then failed
/// (its own error, or a statement the database refused) leaves nothing
/// behind, the groups before it keep their writes (on Postgres written
/// again, once: the batch's savepoint is rolled back and every apply runs
/// in a savepoint of its own), and the groups after it still finish in
/// the same transaction.
async fn a_failed_apply_undoes_its_own_writes_only(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let store = open_store(&url);
        store.migrate().unwrap();
        let mut conn = store.conn().unwrap();
        conn.batch_execute("CREATE TABLE test_applied (mark TEXT PRIMARY KEY)")
            .unwrap();
        let now = now_ms();
        let events: Vec<NewEvent> = ["sub_a", "sub_b", "sub_c", "sub_d"]
            .iter()
            .map(|obj| stored_event(&format!("evt_{obj}"), obj, now))
            .collect();
        outbox::insert_batch(&mut conn, &events).unwrap();
        let mut token = || "test-worker/1".to_owned();
        let groups = claim::claim(&mut conn, "test-worker", &mut token, now, 60_000, 10).unwrap();
        assert_eq!(groups.len(), 4);
        let applies = [
            ("sub_a", writing("a", None)),
            ("sub_b", writing("b", Some("failed after writing"))),
            ("sub_c", writing("c", Some("statement"))),
            ("sub_d", writing("d", None)),
        ];
        let jobs: Vec<Success> = applies
            .into_iter()
            .map(|(key, apply)| {
                let group = groups.iter().find(|g| g.key == key).cloned().unwrap();
                let handled = group.events.iter().map(|e| e.event_id.clone()).collect();
                Success {
                    group,
                    handled,
                    apply: Some(apply),
                    now: now + 1_000,
                }
            })
            .collect();
        let results = write_transaction(&mut conn, |tx| finish::successes_in(tx, jobs)).unwrap();
        assert!(results[0].is_ok(), "{:?}", results[0]);
        assert!(
            matches!(results[1], Err(FinishError::Handler(_))),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(FinishError::Handler(_))),
            "{:?}",
            results[2]
        );
        assert!(results[3].is_ok(), "{:?}", results[3]);

        #[derive(QueryableByName)]
        struct Mark {
            #[diesel(sql_type = diesel::sql_types::Text)]
            mark: String,
        }
        let marks: Vec<Mark> = stripe_hookd::store::with_conn!(&mut *conn, c => {
            diesel::sql_query("SELECT mark FROM test_applied ORDER BY mark").load(c).unwrap()
        });
        let marks: Vec<String> = marks.into_iter().map(|m| m.mark).collect();
        assert_eq!(marks, ["a", "d"], "only the applies that succeeded wrote");
        let mut status = |id: &str| outbox::get(&mut conn, id).unwrap().unwrap().status;
        assert_eq!(status("evt_sub_a").as_str(), "done");
        assert_eq!(status("evt_sub_b").as_str(), "processing");
        assert_eq!(status("evt_sub_c").as_str(), "processing");
        assert_eq!(status("evt_sub_d").as_str(), "done");
    })
    .await
    .unwrap();
}
