//! Inspector sessions: the session id as the database keys it; the rows
//! themselves are the store's ([`crate::store::sessions`]).

pub(crate) use crate::store::sessions::delete_all;
pub use crate::store::sessions::{create, delete, find, Session};

/// Hex SHA-256 of a session id: what the table keys on.
pub fn hash_id(id: &str) -> String {
    hex::encode(super::super::auth::digest(id))
}
