//! Storage: one diesel code path for SQLite and Postgres.
//!
//! [`DbConnection`] is an enum over the backends; [`with_conn!`] and
//! [`with_tx!`] expand the same diesel code once per backend, so queries are
//! written once and checked by the compiler against each. The backend is
//! chosen from the database URL's scheme, never by trial.

pub mod access_changes;
pub mod checkpoint;
pub mod deliveries;
pub mod events;
pub mod fetch_order;
pub mod gate;
pub mod hooks;
pub mod outbox;
pub mod pooler;
#[cfg(feature = "postgres")]
pub mod prepared;
pub mod schema;
pub mod time;
pub mod writer;

pub use gate::Lane;
pub use pooler::{Pooler, Pooling};
pub use time::EpochMs;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Expands `$body` once per backend with `$c` bound to the concrete
/// connection (exported: tests and tools use it too).
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::DbConnection::Sqlite($c, ..) => $body,
            #[cfg(feature = "postgres")]
            $crate::store::DbConnection::Postgres($c, ..) => $body,
        }
    };
}
pub use crate::with_conn;

/// Expands `$body` once per backend with `$c` bound to the transaction's
/// concrete connection.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(conn) => {
                let $c = &mut **conn;
                $body
            }
            #[cfg(feature = "postgres")]
            $crate::store::Tx::Postgres(conn) => {
                let $c = &mut **conn;
                $body
            }
        }
    };
}
pub use with_tx;

/// A connection inside an open write transaction (see [`write_transaction`]).
pub enum Tx<'a> {
    Sqlite(&'a mut SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(&'a mut PgConnection),
}

/// Runs `f` in a write transaction and commits if it returns `Ok`:
/// on SQLite after the pool's [`gate::WriteGate`] gave this writer its turn,
/// then `BEGIN IMMEDIATE` (the write lock up front); `BEGIN` on Postgres.
/// Background work; the intake's commits use [`write_transaction_in`].
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    write_transaction_in(conn, Lane::Background, f)
}

/// [`write_transaction`] in the given lane of SQLite's write gate (Postgres
/// has no gate: its writers do not share one lock).
pub fn write_transaction_in<T, E, F>(conn: &mut DbConnection, lane: Lane, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    transaction(conn, lane, Durability::Flushed, f)
}

/// How a write transaction's COMMIT reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before COMMIT returns (SQLite `synchronous=FULL`; Postgres
    /// `synchronous_commit` as configured, on by default).
    Flushed,
    /// Written but not waited for: COMMIT returns before the flush. A crash
    /// of the process loses nothing; a power loss or OS crash may lose the
    /// last such commits (never a part of one, never one without the
    /// commits before it). Only for writes whose loss is harmless: a lease
    /// that is taken again, a delivery sent again under the same delivery
    /// id (at least once, docs/forwarding.md), SQLite's fetch counter (a
    /// record stamped with a lost number is lost with it). On SQLite the next flushed
    /// commit (an intake batch, within milliseconds under load) flushes
    /// these too: the WAL is one file, written in order.
    Relaxed,
}

/// [`write_transaction`] whose commit is [`Durability::Relaxed`]: for the
/// forwarder's claims and finishes and the fetch counter, which would otherwise hold SQLite's
/// write lock (and the intake's next turn) through an fsync each.
pub fn relaxed_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    transaction(conn, Lane::Background, Durability::Relaxed, f)
}

fn transaction<T, E, F>(
    conn: &mut DbConnection,
    lane: Lane,
    durability: Durability,
    f: F,
) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    let hooks = Arc::clone(conn.hooks());
    let f = |tx: &mut Tx<'_>| access_changes::within(tx, &hooks, f);
    match conn {
        DbConnection::Sqlite(c, gate, _) => {
            let _turn = gate.enter(lane).map_err(|busy| {
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::Unknown,
                    Box::new(busy.to_string()),
                )
            })?;
            gate.write(c, |c| {
                if durability == Durability::Flushed {
                    return c.immediate_transaction(|c| f(&mut Tx::Sqlite(c)));
                }
                // A connection setting, read at COMMIT: set for this
                // transaction and put back whatever happened in it, so the
                // connection's next transaction flushes as every
                // connection's does.
                c.batch_execute("PRAGMA synchronous = NORMAL")?;
                let result = c.immediate_transaction(|c| f(&mut Tx::Sqlite(c)));
                c.batch_execute(SQLITE_SYNCHRONOUS)?;
                result
            })
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(c, ..) => match durability {
            Durability::Flushed => c.transaction(|c| f(&mut Tx::Postgres(c))),
            Durability::Relaxed => {
                pg_transaction_with(c, PG_RELAXED_BEGIN, |c| f(&mut Tx::Postgres(c)))
            }
        },
    }
}

/// Opens a [`Durability::Relaxed`] transaction on Postgres in one round
/// trip; the setting ends with the transaction.
#[cfg(feature = "postgres")]
pub const PG_RELAXED_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// Runs `f` in a Postgres transaction opened by `begin` (one round trip:
/// `BEGIN` and any `SET LOCAL` sent together), committed if it returns `Ok`,
/// rolled back otherwise — diesel's `transaction` with another `BEGIN`.
#[cfg(feature = "postgres")]
pub fn pg_transaction_with<T, E, F>(c: &mut PgConnection, begin: &str, f: F) -> Result<T, E>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    AnsiTransactionManager::begin_transaction_sql(c, begin)?;
    match f(c) {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(c)?;
            Ok(value)
        }
        Err(error) => match AnsiTransactionManager::rollback_transaction(c) {
            // The first error says why; a broken manager follows from it.
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// Runs `f` in a savepoint of the open transaction: its writes are undone
/// alone if it fails, the transaction goes on.
pub fn savepoint<T, E, F>(tx: &mut Tx<'_>, f: F) -> Result<T, E>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match tx {
        Tx::Sqlite(c) => c.transaction(|c| f(&mut Tx::Sqlite(c))),
        #[cfg(feature = "postgres")]
        Tx::Postgres(c) => c.transaction(|c| f(&mut Tx::Postgres(c))),
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A live connection to either backend, with the store's [`hooks::Hooks`]
/// (what every write through it brings with it); a SQLite connection
/// carries its pool's write gate.
pub enum DbConnection {
    Sqlite(SqliteConnection, Arc<gate::WriteGate>, Arc<hooks::Hooks>),
    /// With the time its last test query passed (see [`PG_RECHECK_AFTER`]).
    #[cfg(feature = "postgres")]
    Postgres(PgConnection, std::time::Instant, Arc<hooks::Hooks>),
}

/// A pooled Postgres connection whose test query (`SELECT 1`) passed less
/// than this long ago is handed out again without one: the test is a
/// round trip per check-out, under load as many as the statements of a
/// reconciled event. So a connection in steady use is tested once a
/// second, and one idle longer before its next use (a server restart or
/// an idle cut by a proxy then costs no caller an error). A dead
/// connection (server restarted) can be handed out for up to this long:
/// its use fails with the database's error, as a statement under way at
/// the restart does, and the next test discards it.
#[cfg(feature = "postgres")]
pub const PG_RECHECK_AFTER: Duration = Duration::from_secs(1);

impl DbConnection {
    /// The hooks of the store this connection belongs to.
    pub fn hooks(&self) -> &Arc<hooks::Hooks> {
        match self {
            DbConnection::Sqlite(_, _, hooks) => hooks,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(_, _, hooks) => hooks,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(..) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(..) => Backend::Postgres,
        }
    }

    /// How many turns this connection's pool's write gate has given (SQLite;
    /// `None` on Postgres, which has no gate). Tests: whether a write
    /// passed the gate.
    pub fn write_gate_turns(&self) -> Option<u64> {
        match self {
            DbConnection::Sqlite(_, gate, _) => Some(gate.turns()),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(..) => None,
        }
    }

    /// Runs raw SQL statements (tests use this to inject faults).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), StoreError> {
        with_conn!(self, c => c.batch_execute(sql))?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL: {0}")]
    Url(String),
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error("database pooler: {0}")]
    Pooler(String),
    #[error("cannot start the SQLite checkpoint thread: {0}")]
    CheckpointThread(std::io::Error),
    #[error("cannot start the fetch order thread: {0}")]
    FetchOrderThread(std::io::Error),
    #[error("the order of fetches: {0}")]
    FetchOrder(String),
}

/// Where a database URL points, parsed from its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// `sqlite://PATH`, `sqlite:PATH`, a plain path, or `postgres(ql)://…`.
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                return Ok(Target::Postgres(url.to_owned()));
            }
            return Err(StoreError::Url(
                "this build has no Postgres support: rebuild with `cargo build --release --features postgres` (needs libpq)".to_owned(),
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        if path.is_empty() || path == ":memory:" {
            return Err(StoreError::Url(
                "a SQLite database needs a file path (sqlite:///var/lib/stripe-hookd/stripe-hookd.db)".to_owned(),
            ));
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(StoreError::Url(format!(
                "unsupported scheme {scheme:?}: use sqlite://PATH, a file path, or postgres://…"
            )));
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL without its password, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite://{}", path.display()),
            Target::Postgres(url) => redact_password(url),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Every pooled SQLite connection's durability: a commit is in the WAL on
/// disk before it returns.
const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous = FULL";

/// Opens a SQLite connection with the settings every connection needs.
fn open_sqlite(
    path: &std::path::Path,
    busy_timeout: Duration,
) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
    // busy_timeout first: the journal-mode switch may need the lock.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; {SQLITE_SYNCHRONOUS}; PRAGMA foreign_keys = ON; {};",
        busy_timeout.as_millis(),
        checkpoint::POOLED_CONNECTION,
    ))?;
    Ok(conn)
}

/// Opens connections with the session settings every connection needs.
#[derive(Debug)]
pub struct ConnectionManager {
    target: Target,
    busy_timeout: Duration,
    /// Shared by every SQLite connection this manager opens.
    gate: Arc<gate::WriteGate>,
    /// Shared by every connection this manager opens.
    hooks: Arc<hooks::Hooks>,
    /// Postgres: whether a transaction pooler stands in between.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pooling: Pooling,
}

impl ConnectionManager {
    pub fn new(target: Target, busy_timeout: Duration) -> Self {
        let gate = match &target {
            Target::Sqlite(path) => {
                let path = path.clone();
                let open: writer::Open =
                    Box::new(move || open_sqlite(&path, busy_timeout).map_err(|e| e.to_string()));
                gate::WriteGate::with_writer(busy_timeout, writer::Writer::new(open))
            }
            Target::Postgres(_) => gate::WriteGate::new(busy_timeout),
        };
        ConnectionManager {
            target,
            busy_timeout,
            gate: Arc::new(gate),
            hooks: Arc::default(),
            pooling: Pooling::Session,
        }
    }

    /// With the Postgres connections set up for `pooling`
    /// ([`pooler::configure`]).
    pub fn with_pooling(self, pooling: Pooling) -> Self {
        ConnectionManager { pooling, ..self }
    }

    pub fn establish(&self) -> Result<DbConnection, StoreError> {
        match &self.target {
            Target::Sqlite(path) => Ok(DbConnection::Sqlite(
                open_sqlite(path, self.busy_timeout)?,
                Arc::clone(&self.gate),
                Arc::clone(&self.hooks),
            )),
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                pooler::configure(&mut conn, self.pooling);
                Ok(DbConnection::Postgres(
                    conn,
                    std::time::Instant::now(),
                    Arc::clone(&self.hooks),
                ))
            }
            #[cfg(not(feature = "postgres"))]
            Target::Postgres(_) => Err(StoreError::Url(
                "this build has no Postgres support".to_owned(),
            )),
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        match conn {
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(c, tested, _) => {
                if tested.elapsed() >= PG_RECHECK_AFTER {
                    c.batch_execute("SELECT 1")?;
                    *tested = std::time::Instant::now();
                }
                Ok(())
            }
            // In-process: the test costs no round trip.
            DbConnection::Sqlite(..) => conn.batch_execute("SELECT 1"),
        }
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        with_conn!(conn, c => c.is_broken())
    }
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Settings for [`Store::open`]; the configuration builds them
/// (`DatabaseConfig::store_options`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub pool_size: u32,
    pub busy_timeout: Duration,
    pub connect_timeout: Duration,
    /// Postgres: what stands in between ([`pooler`]).
    pub pooler: Pooler,
}

/// The database: a pool of connections to one backend.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    target: Target,
    /// SQLite: the WAL checkpoint thread, running while any clone lives.
    checkpointer: Option<Arc<checkpoint::Checkpointer>>,
    /// Hands out the order of fetches, running while any clone lives.
    fetch_order: Arc<fetch_order::FetchOrder>,
    /// What every write through the pool's connections brings with it.
    hooks: Arc<hooks::Hooks>,
    /// Postgres: `None` on SQLite.
    pooling: Option<Pooling>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("target", &self.target.redacted())
            .finish_non_exhaustive()
    }
}

/// A stable key for the Postgres advisory lock that serialises migrations
/// between instances starting at once ("hookd" in ASCII). A transaction
/// lock, taken in the transaction that runs the migrations: it holds
/// through a transaction pooler, which keeps no session lock.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x0068_6f6f_6b64;

impl Store {
    /// Opens a pool on `url` (creating a SQLite file's directory).
    pub fn open(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let target = Target::parse(url)?;
        if let Target::Sqlite(path) = &target {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        let pooling = match &target {
            Target::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            Target::Postgres(url) => Some(pooler::resolve(url, options.pooler)?),
            #[cfg(not(feature = "postgres"))]
            Target::Postgres(_) => None,
        };
        let manager = ConnectionManager::new(target.clone(), options.busy_timeout)
            .with_pooling(pooling.unwrap_or(Pooling::Session));
        let hooks = Arc::clone(&manager.hooks);
        // Establish one connection by hand first: its error says why (r2d2's
        // build error only says it timed out). On SQLite it then serves the
        // checkpoint thread.
        let first = manager.establish()?;
        let checkpointer = match first {
            DbConnection::Sqlite(conn, gate, _) => Some(Arc::new(
                checkpoint::Checkpointer::start(conn, gate)
                    .map_err(StoreError::CheckpointThread)?,
            )),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(..) => None,
        };
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            // No connection is ever opened behind the caller's back: one
            // being opened on a pool thread while the process exits crashed
            // libpq in its TLS exit handlers (SIGSEGV after `migrate`).
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .build(manager)?;
        // The database answers now, not at the first use.
        drop(pool.get()?);
        let fetch_order = Arc::new(
            fetch_order::FetchOrder::start(pool.clone()).map_err(StoreError::FetchOrderThread)?,
        );
        Ok(Store {
            pool,
            target,
            checkpointer,
            fetch_order,
            hooks,
            pooling,
        })
    }

    /// Postgres: whether the store talks through a transaction pooler
    /// (`None` on SQLite).
    pub fn pooling(&self) -> Option<Pooling> {
        self.pooling
    }

    pub fn backend(&self) -> Backend {
        self.target.backend()
    }

    /// SQLite: what the WAL checkpoint thread has done.
    pub fn checkpoints(&self) -> Option<&checkpoint::Stats> {
        self.checkpointer
            .as_deref()
            .map(checkpoint::Checkpointer::stats)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What every write through this store brings with it (the doors: set
    /// by the composition root).
    pub fn hooks(&self) -> &hooks::Hooks {
        &self.hooks
    }

    /// A connection from the pool (blocking: call from a blocking thread).
    pub fn conn(&self) -> Result<PooledConnection, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The next number in the order of fetches ([`fetch_order`]): take it
    /// right before the request to Stripe.
    pub async fn next_fetch_seq(&self) -> Result<i64, StoreError> {
        self.fetch_order.next().await
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let applied = match &mut *conn {
            DbConnection::Sqlite(c, ..) => run_migrations(c, SQLITE_MIGRATIONS)?,
            #[cfg(feature = "postgres")]
            // One transaction: the lock first (another instance migrating
            // holds it until its commit; then there is nothing left to
            // apply), then diesel's table of versions and every pending
            // migration (each in a savepoint). All of them, or none.
            DbConnection::Postgres(c, ..) => c.transaction(|c| {
                diesel::sql_query(format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
                ))
                .execute(c)?;
                run_migrations(c, POSTGRES_MIGRATIONS)
            })?,
        };
        Ok(applied)
    }

    /// Migrations embedded in this binary that the database has not applied.
    pub fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn()?;
        let pending = match &mut *conn {
            DbConnection::Sqlite(c, ..) => c
                .pending_migrations(SQLITE_MIGRATIONS)
                .map(|m| m.iter().map(|m| m.name().to_string()).collect()),
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(c, ..) => c
                .pending_migrations(POSTGRES_MIGRATIONS)
                .map(|m| m.iter().map(|m| m.name().to_string()).collect()),
        };
        pending.map_err(|e| StoreError::Migration(e.to_string()))
    }

    /// Ready = reachable and fully migrated.
    pub fn check_ready(&self) -> Result<(), StoreError> {
        let pending = self.pending_migrations()?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Migration(format!(
                "{} migration(s) not applied: run `stripe-hookd migrate`",
                pending.len()
            )))
        }
    }
}

fn run_migrations<C>(
    conn: &mut C,
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, StoreError>
where
    C: MigrationHarness<<C as Connection>::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| StoreError::Migration(e.to_string()))
}

/// Milliseconds since the unix epoch: [`EpochMs::now`] as a bare number.
pub fn now_ms() -> i64 {
    EpochMs::now().as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend_by_scheme() {
        assert_eq!(
            Target::parse("sqlite:///var/lib/x.db").ok(),
            Some(Target::Sqlite(PathBuf::from("/var/lib/x.db")))
        );
        assert_eq!(
            Target::parse("data/x.db").ok(),
            Some(Target::Sqlite(PathBuf::from("data/x.db")))
        );
        assert!(Target::parse("mysql://x").is_err());
        assert!(Target::parse("").is_err());
        assert_eq!(
            Target::parse("postgres://u:pw@h/db")
                .map(|t| t.backend())
                .ok(),
            cfg!(feature = "postgres").then_some(Backend::Postgres)
        );
    }

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
            relaxed_transaction(&mut conn, |tx| Ok::<_, diesel::result::Error>(setting(tx)))
                .unwrap();
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

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_password("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgres://h/db"), "postgres://h/db");
    }
}
