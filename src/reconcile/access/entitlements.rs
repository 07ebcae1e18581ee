//! Who has access now: the read side of the `entitlements` rows, one per
//! subscription item. [`super`] states the rule; [`crate::reconcile::records`]
//! makes the rows and [`crate::store::records::entitlements`] writes them,
//! in the same transaction as the subscription they derive from.
//! Applications read the `entitlements_now` view or call [`for_customer`] /
//! [`for_reference`]. See docs/entitlements.md.

use crate::reconcile::access;
use crate::store::records::entitlements as rows;
use crate::store::{access_mode, DbConnection, StoreError};
use crate::stripe::objects::SubscriptionStatus;

/// An entitlement row (declared with its table in
/// [`crate::store::records::entitlements`]).
pub use crate::store::records::entitlements::Entitlement;

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
    Ok(rows::of_customer(conn, customer_id)?)
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
    let customers = rows::customers_of_reference(conn, reference, account)?;
    let mut out = Vec::new();
    for customer in customers {
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
