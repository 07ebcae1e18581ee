//! Finishing several groups in one transaction (`finish::successes_in`, set-based
//! on Postgres): each group ends as it would alone — a group whose lease
//! is lost or whose apply fails is left untouched, its neighbours finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::prelude::*;
use stripe_hookd::testing::queue::finish::{self, FinishError, Success};
use stripe_hookd::testing::queue::{apply_fn, Apply, EventGroup, HandlerError};
use stripe_hookd::testing::store::outbox::claim;
use stripe_hookd::testing::store::outbox::{self, NewEvent};
use stripe_hookd::testing::store::{now_ms, write_transaction, EpochMs};

use crate::backend_tests;
use crate::harness::{on_migrated_db, open_store, stored_event, Backend, TestDb};

backend_tests!(a_batch_finishes_each_group_as_it_would_alone);

fn counting(n: &Arc<AtomicUsize>) -> Apply {
    let n = Arc::clone(n);
    apply_fn(move |_| {
        n.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

fn failing() -> Apply {
    apply_fn(|_| Err(HandlerError::retry("apply failed")))
}

/// One stored event per object of `keys`, each claimed as a group of its
/// own (one lease token).
fn claimed_groups(
    conn: &mut stripe_hookd::testing::store::DbConnection,
    keys: &[&str],
    now: i64,
) -> Vec<EventGroup> {
    let events: Vec<NewEvent> = keys
        .iter()
        .map(|k| stored_event(&format!("evt_{k}"), k, now))
        .collect();
    outbox::insert_batch(conn, &events).unwrap();
    let mut token = || "test-worker/1".to_owned();
    let groups = claim::claim(conn, "test-worker", &mut token, now, 60_000, 10).unwrap();
    assert_eq!(groups.len(), keys.len());
    groups
}

/// The finishes of `groups`' groups named in `batch`, each with its apply,
/// every event handled, at `now`.
fn successes(groups: &[EventGroup], batch: Vec<(&str, Apply)>, now: i64) -> Vec<Success> {
    batch
        .into_iter()
        .map(|(key, apply)| {
            let group = groups.iter().find(|g| g.key == key).cloned().unwrap();
            let handled = group.events.iter().map(|e| e.event_id.clone()).collect();
            Success {
                group,
                handled,
                apply: Some(apply),
                then: None,
                now,
            }
        })
        .collect()
}

async fn a_batch_finishes_each_group_as_it_would_alone(backend: Backend) {
    on_migrated_db(backend, move |mut conn| {
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
                then: None,
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

        use stripe_hookd::testing::store::schema::{event_attempts as a, object_leases as l};
        let (leases, open): (Vec<String>, Vec<String>) = stripe_hookd::testing::store::with_conn!(&mut *conn, c => {
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
    .await;
}

backend_tests!(a_failed_apply_undoes_its_own_writes_only);

/// A row written by an apply (`test_applied`, made by the test).
fn writing(mark: &'static str, then: Option<&'static str>) -> Apply {
    apply_fn(move |tx| {
        stripe_hookd::testing::store::with_tx!(tx, c => {
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
    on_migrated_db(backend, move |mut conn| {
        conn.batch_execute("CREATE TABLE test_applied (mark TEXT PRIMARY KEY)")
            .unwrap();
        let now = now_ms();
        let groups = claimed_groups(&mut conn, &["sub_a", "sub_b", "sub_c", "sub_d"], now);
        let applies = [
            ("sub_a", writing("a", None)),
            ("sub_b", writing("b", Some("failed after writing"))),
            ("sub_c", writing("c", Some("statement"))),
            ("sub_d", writing("d", None)),
        ];
        let jobs = successes(&groups, applies.into(), now + 1_000);
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
        let marks: Vec<Mark> = stripe_hookd::testing::store::with_conn!(&mut *conn, c => {
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
    .await;
}

backend_tests!(reconciled_subscriptions_of_a_batch_end_as_if_written_one_by_one);

/// A subscription as Stripe shows it: `id`, `status`, and one item per id
/// in `items`.
fn subscription(id: &str, status: &str, items: &[&str]) -> serde_json::Value {
    let s = stripe_hookd::testing::trigger::Scenario::new(false, "2025-03-31.basil");
    let mut sub = s
        .object("customer.subscription.created")
        .expect("a subscription shape");
    sub["id"] = serde_json::json!(id);
    sub["customer"] = serde_json::json!(format!("cus_of_{id}"));
    stripe_hookd::testing::demo::fake_stripe::set_subscription_status(&mut sub, status);
    let item = sub["items"]["data"][0].clone();
    sub["items"]["data"] = items
        .iter()
        .map(|item_id| {
            let mut item = item.clone();
            item["id"] = serde_json::json!(item_id);
            item["subscription"] = serde_json::json!(id);
            item
        })
        .collect();
    sub
}

/// The reconcile handler's writes for `subs` (each fetched at its `seq`).
fn reconciled(subs: &[(serde_json::Value, i64)]) -> Apply {
    use stripe_hookd::testing::reconcile::{
        record_from_json, records::Stamp, writes::RecordWrites, Family,
    };
    let records = subs
        .iter()
        .map(|(json, seq)| {
            let stamp = Stamp {
                seq: *seq,
                at: now_ms(),
            };
            record_from_json(Family::Subscription, json, stamp).unwrap()
        })
        .collect();
    let grace_ms = 3 * 24 * 3_600_000;
    Box::new(RecordWrites::new(
        records,
        Default::default(),
        None,
        grace_ms,
    ))
}

/// (status, fetch_seq, past_due_since) of a stored subscription; its item
/// ids; its entitlement rows' (item id, status).
type Stored = (
    Option<(String, i64, Option<i64>)>,
    Vec<String>,
    Vec<(String, String)>,
);

fn stored(conn: &mut stripe_hookd::testing::store::DbConnection, id: &str) -> Stored {
    use stripe_hookd::testing::store::schema::{
        entitlements as e, subscription_items as i, subscriptions as s,
    };
    stripe_hookd::testing::store::with_conn!(conn, c => {
        let row = s::table
            .filter(s::id.eq(id))
            .select((s::status, s::fetch_seq, s::past_due_since))
            .first(c)
            .optional()
            .unwrap();
        let items = i::table
            .filter(i::subscription_id.eq(id))
            .order(i::id.asc())
            .select(i::id)
            .load(c)
            .unwrap();
        let rows = e::table
            .filter(e::subscription_id.eq(id))
            .order(e::item_id.asc())
            .select((e::item_id, e::status))
            .load(c)
            .unwrap();
        (row, items, rows)
    })
}

/// The reconcile handler's writes of several groups in one finish (on
/// Postgres, their subscriptions in one statement each for the rows, the
/// items and the entitlements) end as the same writes one after the other
/// would: the latest fetch of a subscription fetched twice wins in either
/// order, an older fetch than the stored one changes nothing, a `past_due`
/// one keeps its stored grace start, and a failed group's writes are undone
/// alone. (That the batch's statements themselves are used, not the
/// one-by-one writes a failed batch falls back to, is
/// `the_batch_write_of_subscriptions_…` below.)
async fn reconciled_subscriptions_of_a_batch_end_as_if_written_one_by_one(backend: Backend) {
    on_migrated_db(backend, move |mut conn| {
        let now = now_ms();
        // Stored before the batch: `sub_kept` at fetch 100, `sub_pd` past_due.
        let before = [
            (subscription("sub_kept", "active", &["si_kept"]), 100),
            (subscription("sub_pd", "past_due", &["si_pd"]), 101),
        ];
        write_transaction(&mut conn, |tx| reconciled(&before).write(tx)).unwrap();
        let (grace_start, ..) = stored(&mut conn, "sub_pd");
        let grace_start = grace_start.unwrap().2.expect("a grace start");
        std::thread::sleep(std::time::Duration::from_millis(5));

        let keys = ["g_a", "g_b", "g_c", "g_d", "g_e", "g_f"];
        let groups = claimed_groups(&mut conn, &keys, now);
        let mut finish = |batch: Vec<(&str, Apply)>| {
            let jobs = successes(&groups, batch, now + 1_000);
            write_transaction(&mut conn, |tx| finish::successes_in(tx, jobs)).unwrap()
        };
        let results = finish(vec![
            // `sub_x` fetched twice: the later fetch (12, canceled) in a later group…
            (
                "g_a",
                reconciled(&[
                    (subscription("sub_x", "active", &["si_x1"]), 10),
                    (subscription("sub_new", "trialing", &["si_n1", "si_n2"]), 11),
                ]),
            ),
            (
                "g_b",
                reconciled(&[(subscription("sub_x", "canceled", &["si_x1"]), 12)]),
            ),
            // …`sub_y`'s later fetch in an earlier group; an older fetch of `sub_kept`.
            (
                "g_c",
                reconciled(&[
                    (subscription("sub_y", "canceled", &["si_y1"]), 14),
                    (subscription("sub_kept", "canceled", &["si_stale"]), 50),
                    (subscription("sub_pd", "past_due", &["si_pd"]), 102),
                ]),
            ),
            (
                "g_d",
                reconciled(&[(subscription("sub_y", "active", &["si_y1"]), 13)]),
            ),
        ]);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        // A group that wrote and then failed, beside one that did not.
        let failed = reconciled(&[(subscription("sub_failed", "active", &["si_f"]), 15)]);
        let results = finish(vec![
            (
                "g_e",
                apply_fn(move |tx| {
                    failed.write(tx)?;
                    Err(HandlerError::retry("failed after writing"))
                }),
            ),
            (
                "g_f",
                reconciled(&[(subscription("sub_f", "active", &["si_g"]), 16)]),
            ),
        ]);
        assert!(
            matches!(results[0], Err(FinishError::Handler(_))),
            "{:?}",
            results[0]
        );
        assert!(results[1].is_ok(), "{:?}", results[1]);

        let owned = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        let rows = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let (x, x_items, x_rows) = stored(&mut conn, "sub_x");
        assert_eq!(x.map(|r| (r.0, r.1)), Some(("canceled".to_owned(), 12)));
        assert_eq!(x_items, owned(&["si_x1"]));
        assert_eq!(x_rows, rows(&[("si_x1", "canceled")]));
        let (y, _, y_rows) = stored(&mut conn, "sub_y");
        assert_eq!(y.map(|r| (r.0, r.1)), Some(("canceled".to_owned(), 14)));
        assert_eq!(y_rows, rows(&[("si_y1", "canceled")]));
        let (n, n_items, n_rows) = stored(&mut conn, "sub_new");
        assert_eq!(n.map(|r| (r.0, r.1)), Some(("trialing".to_owned(), 11)));
        assert_eq!(n_items, owned(&["si_n1", "si_n2"]));
        assert_eq!(
            n_rows,
            rows(&[("si_n1", "trialing"), ("si_n2", "trialing")])
        );
        // The stored fetch (100) is newer than the batch's (50): untouched.
        let (kept, kept_items, kept_rows) = stored(&mut conn, "sub_kept");
        assert_eq!(kept.map(|r| (r.0, r.1)), Some(("active".to_owned(), 100)));
        assert_eq!(kept_items, owned(&["si_kept"]));
        assert_eq!(kept_rows, rows(&[("si_kept", "active")]));
        let (pd, ..) = stored(&mut conn, "sub_pd");
        assert_eq!(
            pd,
            Some(("past_due".to_owned(), 102, Some(grace_start))),
            "a past_due rewrite keeps when the grace began"
        );
        assert_eq!(stored(&mut conn, "sub_failed"), (None, vec![], vec![]));
        let (f, ..) = stored(&mut conn, "sub_f");
        assert_eq!(f.map(|r| (r.0, r.1)), Some(("active".to_owned(), 16)));
    })
    .await;
}

/// `records::write_subscriptions` itself (Postgres: what a finish batch of
/// reconciled groups runs): the same subscription twice, in either order,
/// and a fetch older than the stored one, in one call that succeeds. (A
/// failure here would be hidden in a finish, which then writes each group
/// alone.)
#[cfg(feature = "postgres")]
#[test]
fn the_batch_write_of_subscriptions_takes_each_ones_latest_fetch() {
    use stripe_hookd::testing::reconcile::records::{
        self, Record, Stamp, SubscriptionWrite, WriteContext,
    };
    use stripe_hookd::testing::reconcile::{record_from_json, Family};
    let db = TestDb::new(Backend::Postgres);
    let store = open_store(&db.url);
    store.migrate().unwrap();
    let mut conn = store.conn().unwrap();
    let cx = WriteContext {
        now: now_ms(),
        past_due_grace_ms: 0,
        account: None,
    };
    let fetched = |subs: &[(serde_json::Value, i64)]| -> Vec<Record> {
        subs.iter()
            .map(|(json, seq)| {
                let stamp = Stamp {
                    seq: *seq,
                    at: now_ms(),
                };
                record_from_json(Family::Subscription, json, stamp).unwrap()
            })
            .collect()
    };
    let mut write = |records: &[Record]| {
        let subs: Vec<SubscriptionWrite<'_>> = records
            .iter()
            .map(|r| match r {
                Record::Subscription { sub, raw, stamp } => SubscriptionWrite {
                    sub,
                    raw,
                    stamp: *stamp,
                    cx: &cx,
                },
                other => panic!("not a subscription: {other:?}"),
            })
            .collect();
        // Through the store's transaction: entitlement rows written outside
        // one are refused (their access change would go unannounced).
        write_transaction(&mut conn, |tx| match tx {
            stripe_hookd::testing::store::Tx::Postgres(c) => records::write_subscriptions(c, &subs),
            _ => panic!("a Postgres store"),
        })
    };
    write(&fetched(&[(
        subscription("sub_kept", "active", &["si_k"]),
        100,
    )]))
    .unwrap();
    write(&fetched(&[
        (subscription("sub_a", "active", &["si_a"]), 1),
        (subscription("sub_a", "canceled", &["si_a"]), 3),
        (subscription("sub_b", "canceled", &["si_b"]), 4),
        (subscription("sub_b", "active", &["si_b"]), 2),
        (subscription("sub_kept", "canceled", &["si_k"]), 5),
    ]))
    .expect("one statement per table, each subscription written once");
    for (id, status, seq) in [
        ("sub_a", "canceled", 3),
        ("sub_b", "canceled", 4),
        ("sub_kept", "active", 100),
    ] {
        let (row, _, rows) = stored(&mut conn, id);
        assert_eq!(
            row.map(|r| (r.0, r.1)),
            Some((status.to_owned(), seq)),
            "{id}"
        );
        assert_eq!(rows.len(), 1, "{id}");
        assert_eq!(rows[0].1, status, "{id}: its entitlement row");
    }
}

backend_tests!(reconciled_records_of_every_family_in_a_batch_end_as_if_written_one_by_one);

/// An object of `family` as Stripe shows it (the scenario's shape for
/// `event_type`), with `id` and `field` = `value`.
fn object(event_type: &str, id: &str, field: &str, value: &str) -> serde_json::Value {
    let s = stripe_hookd::testing::trigger::Scenario::new(false, "2025-03-31.basil");
    let mut json = s.object(event_type).expect("a shape");
    json["id"] = serde_json::json!(id);
    json[field] = serde_json::json!(value);
    json
}

/// `(field, fetch_seq)` of a stored row.
fn field_of(
    conn: &mut stripe_hookd::testing::store::DbConnection,
    table: &str,
    field: &str,
    id: &str,
) -> Option<(Option<String>, i64)> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        value: Option<String>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        fetch_seq: i64,
    }
    let sql = format!("SELECT {field} AS value, fetch_seq FROM {table} WHERE id = '{id}'");
    let rows: Vec<Row> = stripe_hookd::testing::store::with_conn!(conn, c => {
        diesel::sql_query(sql).load(c).unwrap()
    });
    rows.into_iter().next().map(|r| (r.value, r.fetch_seq))
}

/// Customers, invoices, payment intents and Checkout Sessions of several
/// groups in one finish (on Postgres one statement per table) end as the
/// same writes one after the other would: a stored row is updated by a
/// newer fetch (every family), the latest of two fetches wins in either
/// order, and an older fetch than the stored one changes nothing.
async fn reconciled_records_of_every_family_in_a_batch_end_as_if_written_one_by_one(
    backend: Backend,
) {
    use stripe_hookd::testing::reconcile::{
        record_from_json, records::Stamp, writes::RecordWrites, Family,
    };
    on_migrated_db(backend, move |mut conn| {
        let now = now_ms();
        let writes = |records: &[(Family, serde_json::Value, i64)]| -> Apply {
            let records = records
                .iter()
                .map(|(family, json, seq)| {
                    let stamp = Stamp {
                        seq: *seq,
                        at: now_ms(),
                    };
                    record_from_json(*family, json, stamp).unwrap()
                })
                .collect();
            Box::new(RecordWrites::new(records, Default::default(), None, 0))
        };
        let customer = |id, email| object("customer.created", id, "email", email);
        let invoice = |id, status| object("invoice.paid", id, "status", status);
        let intent = |id, status| object("payment_intent.succeeded", id, "status", status);
        let session = |id, status| object("checkout.session.completed", id, "status", status);
        let (cus, inv, pi, cs) = (
            Family::Customer,
            Family::Invoice,
            Family::PaymentIntent,
            Family::CheckoutSession,
        );
        // Stored before the batch: one of each at fetch 5, one invoice at 100.
        let before = writes(&[
            (cus, customer("cus_upd", "old@example.com"), 5),
            (inv, invoice("in_upd", "draft"), 5),
            (pi, intent("pi_upd", "processing"), 5),
            (cs, session("cs_upd", "open"), 5),
            (inv, invoice("in_kept", "paid"), 100),
        ]);
        write_transaction(&mut conn, |tx| before.write(tx)).unwrap();

        let groups = claimed_groups(&mut conn, &["g_a", "g_b", "g_c"], now);
        let applies = [
            writes(&[
                (inv, invoice("in_two", "open"), 10),
                (cus, customer("cus_two", "new@example.com"), 11),
                (cus, customer("cus_upd", "new@example.com"), 20),
            ]),
            writes(&[
                (inv, invoice("in_two", "paid"), 12),
                (inv, invoice("in_upd", "paid"), 21),
                (pi, intent("pi_upd", "succeeded"), 22),
            ]),
            writes(&[
                (cus, customer("cus_two", "older@example.com"), 9),
                (inv, invoice("in_kept", "void"), 50),
                (cs, session("cs_upd", "complete"), 23),
            ]),
        ];
        let jobs = successes(
            &groups,
            ["g_a", "g_b", "g_c"].into_iter().zip(applies).collect(),
            now + 1_000,
        );
        let results = write_transaction(&mut conn, |tx| finish::successes_in(tx, jobs)).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");

        let expect = [
            ("customers", "email", "cus_upd", "new@example.com", 20),
            ("customers", "email", "cus_two", "new@example.com", 11),
            ("invoices", "status", "in_upd", "paid", 21),
            ("invoices", "status", "in_two", "paid", 12),
            ("invoices", "status", "in_kept", "paid", 100),
            ("payment_intents", "status", "pi_upd", "succeeded", 22),
            ("checkout_sessions", "status", "cs_upd", "complete", 23),
        ];
        for (table, field, id, value, seq) in expect {
            assert_eq!(
                field_of(&mut conn, table, field, id),
                Some((Some(value.to_owned()), seq)),
                "{table} {id}"
            );
        }
    })
    .await;
}
