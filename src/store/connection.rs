//! Connections: the backend enum every query goes through, how a
//! connection is opened with the settings it needs, and the r2d2 manager.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

#[cfg(feature = "postgres")]
use super::pooler;
use super::{checkpoint, gate, hooks, with_conn, writer, DatabaseUrl, Pooling, StoreError};

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

/// Every pooled SQLite connection's durability: a commit is in the WAL on
/// disk before it returns.
pub(super) const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous = FULL";

/// Opens a SQLite connection with the settings every connection needs.
pub(super) fn open_sqlite(
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
    target: DatabaseUrl,
    busy_timeout: Duration,
    /// Shared by every SQLite connection this manager opens.
    gate: Arc<gate::WriteGate>,
    /// Shared by every connection this manager opens.
    pub(super) hooks: Arc<hooks::Hooks>,
    /// Postgres: whether a transaction pooler stands in between.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pooling: Pooling,
}

impl ConnectionManager {
    pub fn new(target: DatabaseUrl, busy_timeout: Duration) -> Self {
        let gate = match &target {
            DatabaseUrl::Sqlite(path) => {
                let path = path.clone();
                let open: writer::Open =
                    Box::new(move || open_sqlite(&path, busy_timeout).map_err(|e| e.to_string()));
                gate::WriteGate::with_writer(busy_timeout, writer::Writer::new(open))
            }
            DatabaseUrl::Postgres(_) => gate::WriteGate::new(busy_timeout),
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
    /// (`pooler::configure`).
    pub fn with_pooling(self, pooling: Pooling) -> Self {
        ConnectionManager { pooling, ..self }
    }

    pub fn establish(&self) -> Result<DbConnection, StoreError> {
        match &self.target {
            DatabaseUrl::Sqlite(path) => Ok(DbConnection::Sqlite(
                open_sqlite(path, self.busy_timeout)?,
                Arc::clone(&self.gate),
                Arc::clone(&self.hooks),
            )),
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                pooler::configure(&mut conn, self.pooling);
                Ok(DbConnection::Postgres(
                    conn,
                    std::time::Instant::now(),
                    Arc::clone(&self.hooks),
                ))
            }
            #[cfg(not(feature = "postgres"))]
            DatabaseUrl::Postgres(_) => Err(StoreError::Url(
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
