//! Transactions: the store's write transactions (SQLite's write gate and
//! durability), savepoints, and Postgres transactions opened in one round trip.

use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;

use super::connection::{DbConnection, SQLITE_SYNCHRONOUS};
use super::{access_changes, Lane};

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
