//! Postgres: the entitlement rows of a whole finish batch's subscriptions
//! at once (see [`super::entitlements`], the door, for one).

use diesel::prelude::*;
use diesel::PgConnection;

use super::entitlements::{Entitlement, Owner};
use super::insert_rows;
use super::subscriptions_pg::delete_rows_of;
use crate::store::schema::entitlements;

/// Replaces the entitlement rows of the subscriptions `written` with
/// `rows`, and notes each of `owners` access as changed.
pub(crate) fn replace_many(
    c: &mut PgConnection,
    written: &[&str],
    rows: &[Entitlement],
    owners: &[Owner<'_>],
) -> QueryResult<()> {
    delete_rows_of!(c, DeleteEntitlements, "entitlements", written)?;
    insert_rows!(c, entitlements::table, rows)?;
    for owner in owners {
        owner.note()?;
    }
    Ok(())
}
