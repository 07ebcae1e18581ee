//! The connection pool on Postgres: a connection the server dropped (a
//! restart, an idle cut by a proxy) is replaced at check-out, not handed to
//! a caller. Check-outs skip the test query for a connection tested less
//! than `PG_RECHECK_AFTER` ago, so this holds once that time has passed.

use std::time::Duration;

use diesel::{Connection, RunQueryDsl};
use stripe_hookd::testing::store::PG_RECHECK_AFTER;

use crate::harness::{open_store, Backend, TestDb};

#[test]
fn a_connection_the_server_dropped_is_replaced_at_check_out() {
    let db = TestDb::new(Backend::Postgres);
    let store = open_store(&db.url);
    store
        .conn()
        .expect("check-out")
        .batch_execute("SELECT 1")
        .expect("a working connection");
    // The server drops every connection to this database but the one asking.
    let mut admin = diesel::PgConnection::establish(&db.url).expect("connect");
    let dropped = diesel::sql_query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .expect("terminate the pool's connections");
    assert!(dropped >= 1, "the pool held a connection to drop");
    std::thread::sleep(PG_RECHECK_AFTER + Duration::from_millis(300));
    for n in 0..3 {
        store
            .conn()
            .expect("check-out")
            .batch_execute("SELECT 1")
            .unwrap_or_else(|e| panic!("check-out {n} handed out a dropped connection: {e}"));
    }
}
