//! Inspector sessions (`admin_sessions`): only the SHA-256 of the session
//! id is stored (`admin::ui::sessions::hash_id`), with the session's CSRF
//! token, expiry and the fingerprint of the admin token that started it (a
//! session is found only while that token is the configured one; see
//! `admin::auth::AdminToken`).

use diesel::prelude::*;

use super::schema::admin_sessions;
use super::{with_conn, with_tx, write_transaction, DbConnection, StoreError};

/// A live session, as the middleware finds it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = admin_sessions)]
pub struct Session {
    pub id_hash: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// [`crate::admin::auth::session_fingerprint`] of the token signed in with.
    pub token_fingerprint: String,
}

/// Stores a new session, and drops the expired ones on the way (one write
/// transaction: on SQLite it waits its turn at the write gate).
pub fn create(conn: &mut DbConnection, session: &Session, now: i64) -> Result<(), StoreError> {
    write_transaction(conn, |tx| {
        with_tx!(tx, c => {
            diesel::delete(admin_sessions::table.filter(admin_sessions::expires_at.le(now)))
                .execute(c)?;
            diesel::insert_into(admin_sessions::table)
                .values((
                    admin_sessions::id_hash.eq(&session.id_hash),
                    admin_sessions::csrf_token.eq(&session.csrf_token),
                    admin_sessions::created_at.eq(session.created_at),
                    admin_sessions::expires_at.eq(session.expires_at),
                    admin_sessions::token_fingerprint.eq(&session.token_fingerprint),
                ))
                .execute(c)
        })
    })?;
    Ok(())
}

/// The unexpired session with this id hash, started with the admin token
/// whose fingerprint is `token_fingerprint` (the configured one).
pub fn find(
    conn: &mut DbConnection,
    id_hash: &str,
    token_fingerprint: &str,
    now: i64,
) -> Result<Option<Session>, StoreError> {
    let found = with_conn!(conn, c => admin_sessions::table
        .filter(admin_sessions::id_hash.eq(id_hash))
        .filter(admin_sessions::token_fingerprint.eq(token_fingerprint))
        .filter(admin_sessions::expires_at.gt(now))
        .select(Session::as_select())
        .first(c)
        .optional())?;
    Ok(found)
}

/// Ends a session (sign-out); whether it existed.
pub fn delete(conn: &mut DbConnection, id_hash: &str) -> Result<bool, StoreError> {
    let n = write_transaction(conn, |tx| {
        with_tx!(tx, c => diesel::delete(
            admin_sessions::table.filter(admin_sessions::id_hash.eq(id_hash))
        )
        .execute(c))
    })?;
    Ok(n > 0)
}

/// Ends every session, on every instance sharing the database ("sign out
/// everywhere"); how many there were (expired ones included).
pub(crate) fn delete_all(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let n = write_transaction(
        conn,
        |tx| with_tx!(tx, c => diesel::delete(admin_sessions::table).execute(c)),
    )?;
    Ok(n)
}
