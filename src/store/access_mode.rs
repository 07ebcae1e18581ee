//! The mode (test or live) that access is answered for: the daemon's API
//! key's, written at start ([`set`]); read by the access readers
//! (`reconcile::entitlements`) and by the `entitlements_now` view. After a
//! database used in test mode gets a live key, the test subscriptions grant
//! nothing (no live event or sweep would ever end them). See
//! docs/entitlements.md, "Test and live".

use diesel::prelude::*;

use super::schema::access_mode;
use super::{with_conn, write_transaction, DbConnection, StoreError, Tx};

/// Records `livemode` as the mode access is answered for (at start).
pub fn set(conn: &mut DbConnection, livemode: bool, now: i64) -> Result<(), StoreError> {
    write_transaction(conn, |tx: &mut Tx<'_>| {
        crate::store::with_tx!(tx, c => diesel::insert_into(access_mode::table)
            .values((
                access_mode::id.eq(1),
                access_mode::livemode.eq(livemode),
                access_mode::updated_at.eq(now),
            ))
            .on_conflict(access_mode::id)
            .do_update()
            .set((
                access_mode::livemode.eq(livemode),
                access_mode::updated_at.eq(now),
            ))
            .execute(c))
        .map(|_| ())
        .map_err(StoreError::from)
    })
}

/// The mode access is answered for (`None`: none recorded yet, every mode).
pub(crate) fn get(conn: &mut DbConnection) -> Result<Option<bool>, StoreError> {
    Ok(with_conn!(conn, c => access_mode::table
        .select(access_mode::livemode)
        .first::<bool>(c)
        .optional())?)
}
