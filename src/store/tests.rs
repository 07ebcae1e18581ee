use super::connection::open_sqlite;
use super::*;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}
#[derive(QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    synchronous: i32,
}
#[derive(QueryableByName)]
struct ForeignKeys {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    foreign_keys: i32,
}
#[derive(QueryableByName)]
struct BusyTimeout {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    timeout: i32,
}

/// A 2xx must survive power loss: every connection the pool hands out
/// (not only the first) runs WAL with `synchronous=FULL`, waits for
/// the write lock, and enforces foreign keys.
#[test]
fn every_pooled_sqlite_connection_is_wal_full_sync_with_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pragmas.db").display());
    let options = StoreOptions {
        pool_size: 4,
        busy_timeout: Duration::from_millis(1234),
        connect_timeout: Duration::from_secs(5),
        pooler: Pooler::Auto,
    };
    let store = Store::open(&url, &options).unwrap();
    // Held at once: four distinct connections.
    let mut conns: Vec<PooledConnection> = (0..4).map(|_| store.conn().unwrap()).collect();
    for (n, conn) in conns.iter_mut().enumerate() {
        let DbConnection::Sqlite(c, ..) = &mut **conn else {
            panic!("a SQLite URL gave another backend");
        };
        let mode: Vec<JournalMode> = diesel::sql_query("PRAGMA journal_mode").load(c).unwrap();
        assert_eq!(mode[0].journal_mode, "wal", "connection {n}");
        let sync: Vec<Synchronous> = diesel::sql_query("PRAGMA synchronous").load(c).unwrap();
        assert_eq!(sync[0].synchronous, 2, "connection {n}: synchronous=FULL");
        let busy: Vec<BusyTimeout> = diesel::sql_query("PRAGMA busy_timeout").load(c).unwrap();
        assert_eq!(busy[0].timeout, 1234, "connection {n}");
        let fk: Vec<ForeignKeys> = diesel::sql_query("PRAGMA foreign_keys").load(c).unwrap();
        assert_eq!(fk[0].foreign_keys, 1, "connection {n}");
        let auto: Vec<AutoCheckpoint> = diesel::sql_query("PRAGMA wal_autocheckpoint")
            .load(c)
            .unwrap();
        assert_eq!(
            auto[0].wal_autocheckpoint, 0,
            "connection {n}: no checkpoint inside a COMMIT (the checkpoint thread does them)"
        );
    }
}

#[derive(QueryableByName)]
struct LastRowid {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// Every write transaction of a pool runs on one connection (its page
/// cache and prepared statements stay warm: store/writer.rs), flushing
/// like a pooled one; a transaction that panicked leaves it usable.
#[test]
fn write_transactions_from_every_pooled_connection_share_one_writer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("writer.db").display());
    let options = StoreOptions {
        pool_size: 2,
        busy_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        pooler: Pooler::Auto,
    };
    let store = Store::open(&url, &options).unwrap();
    let (mut a, mut b) = (store.conn().unwrap(), store.conn().unwrap());
    let setup = |c: &mut SqliteConnection| {
        c.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    };
    write_transaction(&mut a, |tx| setup(on_sqlite(tx))).unwrap();
    let insert = |c: &mut SqliteConnection, v: &str| -> QueryResult<i64> {
        diesel::sql_query("INSERT INTO t (v) VALUES (?)")
            .bind::<diesel::sql_types::Text, _>(v)
            .execute(c)?;
        Ok(diesel::sql_query("SELECT last_insert_rowid() AS id")
            .get_result::<LastRowid>(c)?
            .id)
    };
    let last_rowid = |c: &mut SqliteConnection| -> QueryResult<i64> {
        Ok(diesel::sql_query("SELECT last_insert_rowid() AS id")
            .get_result::<LastRowid>(c)?
            .id)
    };
    let id = write_transaction(&mut a, |tx| insert(on_sqlite(tx), "from a")).unwrap();
    // last_insert_rowid() is per connection: b's write sees a's insert.
    let seen = write_transaction(&mut b, |tx| last_rowid(on_sqlite(tx))).unwrap();
    assert_eq!(
        seen, id,
        "b's write transaction ran on the connection a's insert used"
    );
    let sync = write_transaction(&mut b, |tx| {
        diesel::sql_query("PRAGMA synchronous").load::<Synchronous>(on_sqlite(tx))
    })
    .unwrap();
    assert_eq!(
        sync[0].synchronous, 2,
        "the writer flushes its commits (FULL)"
    );

    // A panic inside a transaction: the next write opens a new writer.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: QueryResult<()> = write_transaction(&mut a, |tx| {
            insert(on_sqlite(tx), "rolled back")?;
            panic!("a handler bug");
        });
    }));
    assert!(panicked.is_err());
    let after = write_transaction(&mut b, |tx| insert(on_sqlite(tx), "after")).unwrap();
    let count: i64 = diesel::sql_query("SELECT count(*) AS id FROM t")
        .get_result::<LastRowid>(match &mut *a {
            DbConnection::Sqlite(c, ..) => c,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(..) => panic!("a SQLite URL gave another backend"),
        })
        .unwrap()
        .id;
    assert_eq!(
        count, 2,
        "the panicked transaction's insert was rolled back"
    );
    assert!(after > id);
}

/// A failed write that left the writer connection no longer flushing
/// (a relaxed write whose `synchronous` could not be put back): the
/// next write gets a new connection, which flushes.
#[test]
fn a_writer_left_relaxed_by_a_failed_write_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relaxed.db");
    let busy = Duration::from_secs(5);
    let open_path = path.clone();
    let writer = writer::Writer::new(Box::new(move || {
        open_sqlite(&open_path, busy).map_err(|e| e.to_string())
    }));
    let mut own = open_sqlite(&path, busy).unwrap();
    let synchronous = |c: &mut SqliteConnection| {
        diesel::sql_query("PRAGMA synchronous")
            .get_result::<Synchronous>(c)
            .map(|s| s.synchronous)
    };
    let failed: Result<(), diesel::result::Error> = writer.write(&mut own, |c| {
        c.batch_execute("PRAGMA synchronous = NORMAL")?;
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(failed.is_err());
    assert_eq!(
        writer.write(&mut own, synchronous).unwrap(),
        2,
        "FULL again"
    );
    // A successful write is trusted as it leaves the connection.
    writer
        .write(&mut own, |c| c.batch_execute("PRAGMA synchronous = NORMAL"))
        .unwrap();
    assert_eq!(
        writer.write(&mut own, synchronous).unwrap(),
        1,
        "the same connection"
    );
}

fn on_sqlite<'a>(tx: &'a mut Tx<'_>) -> &'a mut SqliteConnection {
    match tx {
        Tx::Sqlite(c) => c,
        #[cfg(feature = "postgres")]
        Tx::Postgres(_) => panic!("a SQLite URL gave another backend"),
    }
}

#[derive(QueryableByName)]
struct AutoCheckpoint {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    wal_autocheckpoint: i32,
}

fn sqlite_store(dir: &tempfile::TempDir, name: &str) -> Store {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    let options = StoreOptions {
        pool_size: 2,
        busy_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        pooler: Pooler::Auto,
    };
    Store::open(&url, &options).unwrap()
}

fn synchronous(tx: &mut Tx<'_>) -> i32 {
    let Tx::Sqlite(c) = tx else {
        panic!("SQLite expected")
    };
    let sync: Vec<Synchronous> = diesel::sql_query("PRAGMA synchronous").load(*c).unwrap();
    sync[0].synchronous
}

/// A relaxed commit does not wait for the fsync (NORMAL); every other
/// write does (FULL), also on the same connection after a relaxed one
/// that failed.
#[test]
fn relaxed_sqlite_transactions_skip_the_flush_and_leave_the_connection_flushing() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "relaxed.db");
    let mut conn = store.conn().unwrap();
    let inside: i32 = relaxed_transaction(&mut conn, |tx| {
        Ok::<_, diesel::result::Error>(synchronous(tx))
    })
    .unwrap();
    assert_eq!(inside, 1, "synchronous=NORMAL inside a relaxed transaction");
    let failed: Result<(), diesel::result::Error> = relaxed_transaction(&mut conn, |_| {
        Err(diesel::result::Error::RollbackTransaction)
    });
    assert!(failed.is_err());
    for lane in [Lane::Background, Lane::Intake] {
        let inside: i32 = write_transaction_in(&mut conn, lane, |tx| {
            Ok::<_, diesel::result::Error>(synchronous(tx))
        })
        .unwrap();
        assert_eq!(inside, 2, "{lane:?}: synchronous=FULL after relaxed ones");
    }
}

/// On Postgres a relaxed transaction sets `synchronous_commit = off` for
/// itself only (`TEST_POSTGRES_URL`; skipped without it).
#[cfg(feature = "postgres")]
#[test]
fn relaxed_postgres_transactions_turn_synchronous_commit_off_for_themselves() {
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        synchronous_commit: String,
    }
    fn setting(tx: &mut Tx<'_>) -> String {
        let Tx::Postgres(c) = tx else {
            panic!("Postgres expected")
        };
        let rows: Vec<Setting> = diesel::sql_query("SHOW synchronous_commit")
            .load(*c)
            .unwrap();
        rows[0].synchronous_commit.clone()
    }
    let Ok(url) = std::env::var("TEST_POSTGRES_URL") else {
        eprintln!("TEST_POSTGRES_URL unset: skipped");
        return;
    };
    let options = StoreOptions {
        pool_size: 1,
        busy_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        pooler: Pooler::Auto,
    };
    let store = Store::open(&url, &options).unwrap();
    let mut conn = store.conn().unwrap();
    let before =
        write_transaction(&mut conn, |tx| Ok::<_, diesel::result::Error>(setting(tx))).unwrap();
    assert_ne!(before, "off", "the server's default is flushed");
    let relaxed =
        relaxed_transaction(&mut conn, |tx| Ok::<_, diesel::result::Error>(setting(tx))).unwrap();
    assert_eq!(relaxed, "off");
    let after =
        write_transaction(&mut conn, |tx| Ok::<_, diesel::result::Error>(setting(tx))).unwrap();
    assert_eq!(after, before, "SET LOCAL ends with its transaction");
}

/// With no checkpoint inside COMMITs, the checkpoint thread copies the
/// WAL into the database, so SQLite starts it over: 50 transactions of
/// ~160 KiB (~2,000 frames in all, 8 MiB) leave a WAL file of about one
/// transaction. The writer waits for a checkpoint pass after each, so
/// the test does not depend on the machine's speed.
#[test]
fn the_checkpoint_thread_keeps_the_wal_short() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "wal.db");
    let stats = store
        .checkpoints()
        .expect("a SQLite store has a checkpoint thread");
    let mut conn = store.conn().unwrap();
    conn.batch_execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        .unwrap();
    for round in 0..50 {
        write_transaction(&mut conn, |tx| {
                let Tx::Sqlite(c) = tx else { unreachable!() };
                c.batch_execute(
                    "INSERT INTO blobs (data) SELECT randomblob(16000) FROM \
                     (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n)",
                )
            })
            .unwrap();
        let passes = stats.passes();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stats.passes() == passes {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: no checkpoint pass in 60 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(stats.failures(), 0);
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 1024 * 1024,
        "the WAL file grew to {wal} bytes for 8 MiB written: it is not started over"
    );
}

/// Under writes that never pause a pass rarely catches the WAL's end,
/// and a writer always comes between passes: only the gated pass (no
/// writer in between) lets SQLite start the WAL over. The writer stops
/// once the thread has made one; the WAL is then short again.
#[test]
fn a_long_wal_is_started_over_under_writes_that_never_pause() {
    #[derive(QueryableByName)]
    struct Pass {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        log: i32,
    }
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, "busy.db");
    store
        .conn()
        .unwrap()
        .batch_execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        .unwrap();
    let write = |conn: &mut DbConnection| {
        write_transaction(conn, |tx| {
                let Tx::Sqlite(c) = tx else { unreachable!() };
                c.batch_execute(
                    "INSERT INTO blobs (data) SELECT randomblob(16000) FROM \
                     (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT i FROM n)",
                )
            })
            .unwrap();
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let stats = store
        .checkpoints()
        .expect("a SQLite store has a checkpoint thread");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut conn = store.conn().unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                write(&mut conn);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while stats.gated() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(stats.gated() > 0, "no gated pass in 120 s of writes");
    let mut conn = store.conn().unwrap();
    write(&mut conn);
    let DbConnection::Sqlite(c, ..) = &mut *conn else {
        unreachable!()
    };
    let wal: Vec<Pass> = diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .load(c)
        .unwrap();
    assert!(
        wal[0].log < checkpoint::RESTART_FRAMES,
        "the WAL holds {} frames after a gated pass: it was not started over",
        wal[0].log
    );
}
