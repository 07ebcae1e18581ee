//! Process level: the real binary, killed with SIGKILL mid-event,
//! and several instances sharing one Postgres database. Uses the
//! `test-hooks` effects handler (each applied event adds one row).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use stripe_hookd::testing::queue::test_hooks::test_effects;
use stripe_hookd::testing::store::outbox::{self, StoredEvent};
use stripe_hookd::testing::store::{with_conn, Store};

use crate::backend_tests;
use crate::daemon::Daemon;
use crate::harness::*;

fn store(db: &TestDb) -> Store {
    let defaults =
        stripe_hookd::testing::config::from_toml_str("").expect("the built-in configuration");
    Store::open(&db.url, &defaults.database.store_options()).expect("open test store")
}

async fn rows(store: &Store) -> Vec<StoredEvent> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || outbox::list_all(&mut store.conn().unwrap()).unwrap())
        .await
        .unwrap()
}

async fn effects(store: &Store) -> Vec<String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = store.conn().unwrap();
        with_conn!(&mut *conn, c => test_effects::table.select(test_effects::event_id).load::<String>(c).unwrap())
    })
    .await
    .unwrap()
}

async fn wait_for(store: &Store, secs: u64, what: &str, done: impl Fn(&[StoredEvent]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let rows = rows(store).await;
        if done(&rows) {
            return;
        }
        let summary: std::collections::BTreeMap<&str, usize> =
            rows.iter().fold(Default::default(), |mut m, r| {
                *m.entry(r.status.as_str()).or_default() += 1;
                m
            });
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

backend_tests!(a_daemon_killed_mid_event_leaves_it_to_the_next_process);

async fn a_daemon_killed_mid_event_leaves_it_to_the_next_process(backend: Backend) {
    let db = TestDb::new(backend);
    let runner_env = [
        ("STRIPE_HOOKD_RUNNER__LEASE_SECS", "2"),
        ("STRIPE_HOOKD_RUNNER__POLL_INTERVAL_MS", "100"),
    ];
    let mut slow = runner_env.to_vec();
    slow.push(("HOOKD_TEST_HANDLER_DELAY_MS", "60000"));
    let mut first = Daemon::effects(&db, &slow);
    let client = client();
    let body = event_body("evt_crash", "invoice.paid", "in_crash", false);
    let res = client
        .post(first.url())
        .header(
            "stripe-signature",
            signature_header(&[SECRET], now(), &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let store = store(&db);
    wait_for(&store, 60, "the event to be leased", |rows| {
        rows.iter().any(|r| r.status == "processing")
    })
    .await;
    assert!(
        first.log().contains("evt_crash"),
        "the first daemon logged the delivery"
    );
    first.kill();

    let _second = Daemon::effects(&db, &runner_env);
    wait_for(
        &store,
        120,
        "the event to be done by the second process",
        |rows| rows.iter().all(|r| r.status == "done"),
    )
    .await;
    let row = rows(&store).await.pop().unwrap();
    assert_eq!(row.attempts, 2);
    assert_eq!(
        effects(&store).await,
        vec!["evt_crash".to_owned()],
        "applied exactly once"
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_every_event_applied_exactly_once() {
    let db = TestDb::new(Backend::Postgres);
    let env = [
        ("STRIPE_HOOKD_RUNNER__LEASE_SECS", "2"),
        ("STRIPE_HOOKD_RUNNER__POLL_INTERVAL_MS", "100"),
        ("STRIPE_HOOKD_RUNNER__CONCURRENCY", "4"),
        ("STRIPE_HOOKD_DATABASE__POOL_SIZE", "6"),
        ("STRIPE_HOOKD_INTAKE__HTTP_WORKERS", "1"),
        ("HOOKD_TEST_HANDLER_DELAY_MS", "2"),
    ];
    let mut daemons: Vec<Option<Daemon>> =
        (0..3).map(|_| Some(Daemon::effects(&db, &env))).collect();
    let urls: Vec<String> = daemons.iter().map(|d| d.as_ref().unwrap().url()).collect();
    let alive = Arc::new(Mutex::new(vec![true, true, true]));
    let client = client();
    const N: usize = 2000;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    // 32 senders deliver the events, spread over the instances; a delivery
    // that fails (instance killed) is retried on another, as Stripe would.
    let senders: Vec<_> = (0..32)
        .map(|s| {
            let (client, urls, alive, next) = (
                client.clone(),
                urls.clone(),
                Arc::clone(&alive),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= N {
                        return;
                    }
                    let body = event_body(
                        &format!("evt_multi_{i}"),
                        "customer.subscription.updated",
                        &format!("sub_{}", i % 40),
                        false,
                    );
                    let mut target = (i + s) % 3;
                    loop {
                        if alive.lock().unwrap()[target] {
                            let sent = client
                                .post(&urls[target])
                                .header(
                                    "stripe-signature",
                                    signature_header(&[SECRET], now(), &body),
                                )
                                .body(body.clone())
                                .send()
                                .await;
                            if matches!(&sent, Ok(r) if r.status() == 200) {
                                break;
                            }
                        }
                        target = (target + 1) % 3;
                    }
                }
            })
        })
        .collect();

    let store = store(&db);
    wait_for(&store, 180, "a third of the events", |rows| {
        rows.len() >= N / 3
    })
    .await;
    alive.lock().unwrap()[0] = false;
    let mut killed = daemons[0].take().unwrap();
    killed.kill();
    for s in senders {
        s.await.unwrap();
    }
    wait_for(&store, 300, "every event done", |rows| {
        rows.len() == N && rows.iter().all(|r| r.status == "done")
    })
    .await;

    let effects = effects(&store).await;
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for id in effects {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), N, "every event applied");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    for d in daemons.iter_mut().flatten() {
        assert_eq!(
            d.terminate(),
            Some(0),
            "a surviving instance exits 0 on SIGTERM"
        );
    }
    // Instances on one database never fail each other's claims or finishes
    // (they once deadlocked: claims waiting on each other's rows and leases).
    for (n, log) in std::iter::once(killed.log())
        .chain(daemons.iter().flatten().map(Daemon::log))
        .enumerate()
    {
        for bad in [
            "deadlock detected",
            "cannot claim events",
            "finishing transaction failed",
        ] {
            let hits: Vec<&str> = log.lines().filter(|l| l.contains(bad)).collect();
            assert!(hits.is_empty(), "instance {n} logged {bad:?}: {hits:#?}");
        }
    }
}
