//! Who has access now: the read side of the `entitlements` rows, one per
//! subscription item. [`super::access`] states the rule; [`super::records`]
//! writes the rows in the same transaction as the subscription they derive
//! from. Applications read the `entitlements_now` view or call
//! [`for_customer`] / [`for_reference`]. See docs/entitlements.md.

use diesel::prelude::*;

use super::access;
use crate::store::schema::{checkout_sessions, entitlements};
use crate::store::{access_mode, with_conn, DbConnection, StoreError};
use crate::stripe::objects::SubscriptionStatus;

#[derive(Debug, Clone, Insertable, Queryable, Selectable, PartialEq, Eq, serde::Serialize)]
#[diesel(table_name = entitlements, treat_none_as_default_value = false)]
pub struct Entitlement {
    pub subscription_id: String,
    pub item_id: String,
    pub customer_id: Option<String>,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub status: String,
    pub grants: bool,
    pub access_until: Option<i64>,
    pub updated_at: i64,
    /// The Connect account of the subscription (`None`: the platform).
    pub account: Option<String>,
    /// The mode of the subscription (`None`: written by a version before
    /// the column, until the subscription is written again).
    pub livemode: Option<bool>,
    /// A known end (epoch ms): no access from then on, whatever the status
    /// (see [`access`]).
    pub ends_at: Option<i64>,
}

impl Entitlement {
    /// Whether this row gives access at `now` (epoch ms).
    pub fn active_at(&self, now: i64) -> bool {
        let status = SubscriptionStatus::from(self.status.as_str());
        access::has_access(&status, self.grants, self.access_until, self.ends_at, now)
    }
}

/// Every entitlement row of a customer (granting or not).
pub fn for_customer_all(
    conn: &mut DbConnection,
    customer_id: &str,
) -> Result<Vec<Entitlement>, StoreError> {
    let rows = with_conn!(conn, c => entitlements::table
        .filter(entitlements::customer_id.eq(customer_id))
        .order((entitlements::subscription_id.asc(), entitlements::item_id.asc()))
        .select(Entitlement::as_select())
        .load(c))?;
    Ok(rows)
}

/// What a customer has access to at `now` (epoch ms), in the mode access
/// is answered for ([`access_mode`]: the daemon's; a row of unknown mode
/// counts).
pub fn for_customer(
    conn: &mut DbConnection,
    customer_id: &str,
    now: i64,
) -> Result<Vec<Entitlement>, StoreError> {
    let mode = access_mode::get(conn)?;
    Ok(for_customer_all(conn, customer_id)?
        .into_iter()
        .filter(|e| e.active_at(now) && in_mode(e.livemode, mode))
        .collect())
}

/// Whether a row of mode `livemode` is answered for in `mode`.
fn in_mode(livemode: Option<bool>, mode: Option<bool>) -> bool {
    match (livemode, mode) {
        (Some(row), Some(mode)) => row == mode,
        _ => true,
    }
}

/// What the application's own user (`client_reference_id` from Checkout)
/// has access to at `now`: through every customer their sessions created
/// (in the mode access is answered for, as [`for_customer`]), among the
/// platform's own Checkout Sessions (see [`for_reference_in`]).
pub fn for_reference(
    conn: &mut DbConnection,
    reference: &str,
    now: i64,
) -> Result<Vec<Entitlement>, StoreError> {
    for_reference_in(conn, reference, None, now)
}

/// [`for_reference`] among the Checkout Sessions of one Connect account
/// (`None`: the platform's own): a `client_reference_id` names a user of
/// the account whose Checkout carried it, so the same id in another
/// account is another user.
pub fn for_reference_in(
    conn: &mut DbConnection,
    reference: &str,
    account: Option<&str>,
    now: i64,
) -> Result<Vec<Entitlement>, StoreError> {
    let customers: Vec<Option<String>> = with_conn!(conn, c => {
        let sessions = checkout_sessions::table
            .filter(checkout_sessions::client_reference_id.eq(reference))
            .select(checkout_sessions::customer_id)
            .distinct();
        match account {
            Some(account) => sessions.filter(checkout_sessions::account.eq(account)).load(c),
            None => sessions.filter(checkout_sessions::account.is_null()).load(c),
        }
    })?;
    let mut out = Vec::new();
    for customer in customers.into_iter().flatten() {
        out.extend(
            for_customer(conn, &customer, now)?
                .into_iter()
                .filter(|e| e.account.as_deref() == account),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::in_mode;

    /// Test then live on one database: `(row's mode, mode answered for,
    /// answered)`. `None` for the row: written before the mode was kept;
    /// for the daemon: no mode recorded yet.
    #[rustfmt::skip]
    const MODES: [(Option<bool>, Option<bool>, bool); 9] = [
        (Some(false), Some(false), true),  // test row, test key
        (Some(false), Some(true),  false), // test row once the live key is in
        (Some(true),  Some(true),  true),  // live row, live key
        (Some(true),  Some(false), false), // live row, the test key back
        (None,        Some(true),  true),  // unknown mode: shown in either
        (None,        Some(false), true),
        (Some(false), None,        true),  // no mode recorded: every row
        (Some(true),  None,        true),
        (None,        None,        true),
    ];

    #[test]
    fn a_row_is_answered_in_its_own_mode_only() {
        for (row, daemon, answered) in MODES {
            assert_eq!(
                in_mode(row, daemon),
                answered,
                "row livemode {row:?}, daemon livemode {daemon:?}"
            );
        }
    }
}
