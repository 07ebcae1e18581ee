//! A consistent copy of a SQLite database while the daemon serves
//! (`stripe-hookd backup`).

use super::{DbConnection, StoreError};

/// Copies the database `conn` reads to the file `path` with `VACUUM INTO`:
/// one read transaction, so the copy is consistent while intake and the
/// runner keep writing. SQLite only. It writes no page of the database,
/// so it takes no turn at the write gate.
pub(crate) fn vacuum_into(conn: &mut DbConnection, path: &str) -> Result<(), StoreError> {
    conn.batch_execute(&format!("VACUUM INTO '{}'", path.replace('\'', "''")))
}
