//! One SQLite connection for every write transaction of a pool.
//!
//! SQLite lets one connection write at a time, and the [`WriteGate`]
//! already hands the turns out one by one; what the writers' own pooled
//! connections added was a cold page cache. A connection throws its whole
//! page cache away when it starts a transaction and finds that another
//! connection committed since its last one. With the intake, the runner and
//! the forwarder each writing on a connection of its own, nearly every
//! transaction found that, and read every B-tree page it touched again with
//! a `pread` of the WAL or the database file: with forwarding, the
//! daemon read 24.6 pages per event, the intake's own commits among them
//! (docs/performance.md). Written through this one connection, a
//! write transaction finds the pages the previous writer left in the cache,
//! and the statements every writer prepared.
//!
//! The connection is opened on first use and opened again after a
//! transaction left it unusable: a panic inside one, a transaction manager
//! diesel reports broken, or a failed write after which it no longer
//! answers or no longer flushes its commits (`synchronous=FULL`).
//!
//! [`WriteGate`]: super::gate::WriteGate

use std::sync::{Mutex, MutexGuard};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::sqlite::SqliteConnection;

/// Opens the writer connection, with the settings of a pooled one.
pub(super) type Open = Box<dyn Fn() -> Result<SqliteConnection, String> + Send + Sync>;

pub struct Writer {
    conn: Mutex<Option<SqliteConnection>>,
    open: Open,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    pub fn new(open: Open) -> Writer {
        Writer {
            conn: Mutex::new(None),
            open,
        }
    }

    /// Runs `f` on the writer connection; call it holding a turn of the
    /// gate (nobody else waits on the lock then). When the connection cannot
    /// be opened, `f` runs on `fallback` (the caller's pooled connection),
    /// as every write did before this connection existed.
    pub fn write<T, E>(
        &self,
        fallback: &mut SqliteConnection,
        f: impl FnOnce(&mut SqliteConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut slot = self.lock();
        if slot.is_none() {
            match (self.open)() {
                Ok(conn) => *slot = Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the SQLite writer connection; writing on a pooled one");
                    return f(fallback);
                }
            }
        }
        let Some(conn) = slot.as_mut() else {
            return f(fallback);
        };
        let result = f(conn);
        if AnsiTransactionManager::is_broken_transaction_manager(conn)
            || (result.is_err() && !flushing(conn))
        {
            tracing::warn!(
                "the SQLite writer connection is unusable after a transaction; opening a new one"
            );
            *slot = None;
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, Option<SqliteConnection>> {
        match self.conn.lock() {
            Ok(slot) => slot,
            // A panic inside a transaction: the connection may be inside it
            // still. Closing it rolls that back; the next write opens another.
            Err(poisoned) => {
                let mut slot = poisoned.into_inner();
                *slot = None;
                self.conn.clear_poison();
                slot
            }
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Synchronous {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    synchronous: i32,
}

/// Whether `conn` answers and commits with `synchronous=FULL`, as every
/// write but a relaxed one (which sets NORMAL for its transaction and puts
/// FULL back) must find it: checked after a failed write, so that a
/// connection left relaxed or dead is not the one the next intake commit
/// gets.
fn flushing(conn: &mut SqliteConnection) -> bool {
    use diesel::RunQueryDsl;
    diesel::sql_query("PRAGMA synchronous")
        .get_result::<Synchronous>(conn)
        .is_ok_and(|s| s.synchronous == 2)
}
