//! Migrations: the schema embedded in the binary, applied under a lock
//! that serialises instances starting at once.

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{DbConnection, Store, StoreError};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A stable key for the Postgres advisory lock that serialises migrations
/// between instances starting at once ("hookd" in ASCII). A transaction
/// lock, taken in the transaction that runs the migrations: it holds
/// through a transaction pooler, which keeps no session lock.
#[cfg(feature = "postgres")]
const MIGRATION_LOCK_KEY: i64 = 0x0068_6f6f_6b64;

impl Store {
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
