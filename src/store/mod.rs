//! Storage: one diesel code path for SQLite and Postgres.
//!
//! [`DbConnection`] is an enum over the backends; [`with_conn!`] and
//! [`with_tx!`] expand the same diesel code once per backend, so queries are
//! written once and checked by the compiler against each. The backend is
//! chosen from the database URL's scheme, never by trial.

pub(crate) mod access_changes;
pub(crate) mod access_mode;
pub(crate) mod backup;
mod checkpoint;
mod connection;
pub(crate) mod deliveries;
pub(crate) mod events;
pub(crate) mod fetch_order;
mod gate;
pub(crate) mod hooks;
pub(crate) mod inspect;
mod migrate;
pub(crate) mod outbox;
mod pooler;
#[cfg(feature = "postgres")]
pub(crate) mod prepared;
pub(crate) mod records;
pub(crate) mod schema;
pub(crate) mod sessions;
#[cfg(feature = "test-hooks")]
pub(crate) mod test_effects;
pub(crate) mod time;
mod transaction;
mod url;
mod writer;

#[cfg(feature = "postgres")]
pub use connection::PG_RECHECK_AFTER;
pub use connection::{Backend, ConnectionManager, DbConnection, Pool, PooledConnection};
pub use gate::Lane;
pub use pooler::{Pooler, Pooling};
pub use time::EpochMs;
#[cfg(feature = "postgres")]
pub use transaction::{pg_transaction_with, PG_RELAXED_BEGIN};
pub use transaction::{
    relaxed_transaction, savepoint, write_transaction, write_transaction_in, Durability, Tx,
};
pub use url::DatabaseUrl;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
    /// A blocking task holding a connection ended without an answer (it
    /// panicked, or the runtime shut down).
    #[error("database task failed: {0}")]
    Task(String),
    #[error("database pooler: {0}")]
    Pooler(String),
    #[error("cannot start the SQLite checkpoint thread: {0}")]
    CheckpointThread(std::io::Error),
    #[error("cannot start the fetch order thread: {0}")]
    FetchOrderThread(std::io::Error),
    #[error("the order of fetches: {0}")]
    FetchOrder(String),
}

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
    target: DatabaseUrl,
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

impl Store {
    /// Opens a pool on `url` (creating a SQLite file's directory).
    pub fn open(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let target = DatabaseUrl::parse(url)?;
        if let DatabaseUrl::Sqlite(path) = &target {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::StateDir {
                    path: dir.to_owned(),
                    source,
                })?;
            }
        }
        let pooling = match &target {
            DatabaseUrl::Sqlite(_) => None,
            #[cfg(feature = "postgres")]
            DatabaseUrl::Postgres(url) => Some(pooler::resolve(url, options.pooler)?),
            #[cfg(not(feature = "postgres"))]
            DatabaseUrl::Postgres(_) => None,
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

    pub fn target(&self) -> &DatabaseUrl {
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
}

/// Milliseconds since the unix epoch: [`EpochMs::now`] as a bare number.
pub fn now_ms() -> i64 {
    EpochMs::now().as_i64()
}

#[cfg(test)]
mod tests;
