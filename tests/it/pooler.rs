//! Postgres through PgBouncer in transaction mode (`TEST_PGBOUNCER_URL`,
//! started by `.ci/run` with scripts/pgbouncer.sh; skipped without it):
//! the real binary, several instances on one database through the pooler.
//! The pooler hands each transaction, and each statement outside one, to
//! whichever of its few server connections is free (`default_pool_size =
//! 4`), so a named prepared statement, a session setting or a session lock
//! made on one is missing on the next.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use stripe_hookd::testing::store::outbox::{self, StoredEvent};
use stripe_hookd::testing::store::{with_conn, Pooler, Pooling, Store, StoreOptions};

use crate::daemon::Daemon;
use crate::harness::*;

/// A store on `url` with the default options but `pooler`.
fn store_with(
    url: &str,
    pooler: Pooler,
) -> Result<Store, stripe_hookd::testing::store::StoreError> {
    let defaults =
        stripe_hookd::testing::config::from_toml_str("").expect("the built-in configuration");
    let options = StoreOptions {
        pooler,
        ..defaults.database.store_options()
    };
    Store::open(url, &options)
}

/// Log lines at ERROR, and WARN lines about the database (the daemons log
/// JSON; without an admin token they warn that the admin API is off).
fn complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains(r#""level":"ERROR""#)
                || (l.contains(r#""level":"WARN""#) && !l.contains("admin API disabled"))
        })
        .collect()
}

/// What a transaction pooler answers a daemon that keeps session state.
const POOLER_ERRORS: [&str; 6] = [
    "__diesel_stmt",
    "bind message supplies",
    "duplicate key",
    "database migrations failed",
    "cannot claim events",
    "finishing transaction failed",
];

/// The default config (`pooler = "auto"`) detects the pooler; one that
/// says `none` is refused at start with what to set; `transaction` on a
/// direct URL works too (nothing it leaves out is needed there).
#[test]
fn the_pooler_is_detected_and_a_contradicting_setting_refused() {
    let Some(db) = TestDb::through_pgbouncer() else {
        return;
    };
    let direct = db.direct_url();
    let auto = store_with(&db.url, Pooler::Auto).expect("open through the pooler");
    assert_eq!(auto.pooling(), Some(Pooling::Transaction), "detected");
    let none = store_with(&db.url, Pooler::None)
        .map(|_| ())
        .expect_err("`none` through a transaction pooler is refused");
    let message = none.to_string();
    assert!(
        message.contains("database.pooler") && message.contains("\"transaction\""),
        "the refusal says what to set: {message}"
    );
    let straight = store_with(&direct, Pooler::Auto).expect("open straight");
    assert_eq!(
        straight.pooling(),
        Some(Pooling::Session),
        "no pooler there"
    );
    let forced = store_with(&direct, Pooler::Transaction).expect("open straight");
    assert_eq!(forced.pooling(), Some(Pooling::Transaction));
    forced
        .migrate()
        .expect("migrations without prepared statements");

    // The binary: refused with the reason on stderr, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_HOOKD_STATE_DIR", db.dir())
        .env("DATABASE_URL", &db.url)
        .env("STRIPE_HOOKD_DATABASE__POOLER", "none")
        .output()
        .expect("run migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "refused: {stderr}");
    assert!(
        stderr.contains("STRIPE_HOOKD_DATABASE__POOLER=transaction"),
        "{stderr}"
    );
}

/// Two instances through the pooler, the default config, on one
/// database: 600 events over 60 objects delivered to both, all applied
/// exactly once, and neither instance logs an error (before:
/// `prepared statement "__diesel_stmt_12" does not exist`, 15 of 1,000
/// events in a minute).
#[test]
fn two_instances_through_the_pooler_drain_every_event_without_an_error() {
    let Some(db) = TestDb::through_pgbouncer() else {
        return;
    };
    let env = [
        ("STRIPE_HOOKD_RUNNER__POLL_INTERVAL_MS", "100"),
        ("STRIPE_HOOKD_RUNNER__CONCURRENCY", "4"),
        ("STRIPE_HOOKD_DATABASE__POOL_SIZE", "4"),
        ("STRIPE_HOOKD_INTAKE__HTTP_WORKERS", "1"),
        ("HOOKD_TEST_HANDLER_DELAY_MS", "2"),
    ];
    // Started together: their migrations meet too.
    let daemons: Vec<Daemon> = std::thread::scope(|s| {
        let starts: Vec<_> = (0..2)
            .map(|_| s.spawn(|| Daemon::effects(&db, &env)))
            .collect();
        starts
            .into_iter()
            .map(|h| h.join().expect("a daemon started"))
            .collect()
    });
    const N: usize = 600;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let urls: Vec<String> = daemons.iter().map(Daemon::url).collect();
    runtime.block_on(async {
        let client = client();
        let sends = (0..N).map(|i| {
            let (client, url) = (client.clone(), urls[i % 2].clone());
            async move {
                let body = event_body(
                    &format!("evt_pooled_{i}"),
                    "customer.subscription.updated",
                    &format!("sub_{}", i % 60),
                    false,
                );
                let res = client
                    .post(url)
                    .header(
                        "stripe-signature",
                        signature_header(&[SECRET], now(), &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .expect("delivery sent");
                assert_eq!(res.status(), 200, "delivery {i}");
            }
        });
        use futures_util::StreamExt;
        futures_util::stream::iter(sends)
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    });

    let store = store_with(&db.direct_url(), Pooler::Auto).expect("open the store");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let rows: Vec<StoredEvent> = outbox::list_all(&mut store.conn().unwrap()).unwrap();
        let done = rows.iter().filter(|r| r.status == "done").count();
        if rows.len() == N && done == N {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {} events done after 240 s; logs:\n{}\n{}",
            rows.len(),
            daemons[0].log(),
            daemons[1].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let effects: Vec<String> = {
        use stripe_hookd::testing::queue::test_hooks::test_effects;
        let mut conn = store.conn().unwrap();
        with_conn!(&mut *conn, c => test_effects::table.select(test_effects::event_id).load::<String>(c).unwrap())
    };
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for id in effects {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), N, "every event applied");
    assert!(counts.values().all(|n| *n == 1), "each exactly once");
    for (n, daemon) in daemons.iter().enumerate() {
        let log = daemon.log();
        assert!(
            log.lines()
                .any(|l| l.contains("database ready") && l.contains(r#""pooler":"transaction""#)),
            "instance {n} detected the pooler"
        );
        let bad = complaints(&log);
        assert!(bad.is_empty(), "instance {n} complained: {bad:#?}");
        for error in POOLER_ERRORS {
            assert!(
                !log.contains(error),
                "instance {n} logged {error:?}:\n{log}"
            );
        }
    }
}

/// Instances started at the same moment on an empty database through the
/// pooler all come up, in each of three rounds: the migrations are
/// serialised by a lock that holds there (before, a session advisory lock
/// the pooler did not keep: `duplicate key value violates unique
/// constraint "pg_type_typname_nsp_index"`, one instance dead).
#[test]
fn instances_started_together_on_an_empty_database_through_the_pooler_all_come_up() {
    const INSTANCES: usize = 4;
    for round in 0..3 {
        let Some(db) = TestDb::through_pgbouncer() else {
            return;
        };
        let barrier = std::sync::Barrier::new(INSTANCES);
        let mut daemons: Vec<Daemon> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..INSTANCES)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        Daemon::spawn(&db, &[("STRIPE_HOOKD_DATABASE__POOL_SIZE", "2")])
                    })
                })
                .collect();
            starts
                .into_iter()
                .map(|h| h.join().expect("every instance came up"))
                .collect()
        });
        let store = store_with(&db.direct_url(), Pooler::Auto).expect("open");
        assert!(
            store.pending_migrations().expect("readable").is_empty(),
            "round {round}: migrated"
        );
        for (n, daemon) in daemons.iter_mut().enumerate() {
            let log = daemon.log();
            for error in POOLER_ERRORS {
                assert!(
                    !log.contains(error),
                    "round {round}, instance {n} logged {error:?}:\n{log}"
                );
            }
            assert_eq!(
                daemon.terminate(),
                Some(0),
                "round {round}, instance {n} ran until stopped:\n{log}"
            );
        }
    }
}
