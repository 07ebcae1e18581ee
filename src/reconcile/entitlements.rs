//! Who has access now. Kept in the same transaction as the subscription it
//! derives from, one row per subscription item:
//!
//! | subscription status | grants | `access_until`                          |
//! |---------------------|--------|-----------------------------------------|
//! | `active`, `trialing`| yes    | period end (informational)              |
//! | `past_due`          | yes    | first seen past_due + the grace period  |
//! | anything else       | no     | —                                       |
//!
//! "Has access now" = grants and (active/trialing, or `access_until` > now).
//! Applications read the `entitlements_now` view or call [`for_customer`] /
//! [`for_reference`]. See docs/entitlements.md.

use diesel::prelude::*;

use super::records::{ItemRow, SubscriptionRow};
use crate::store::schema::{checkout_sessions, entitlements};
use crate::store::{with_conn, with_tx, DbConnection, StoreError, Tx};

#[derive(Debug, Clone, Insertable, Queryable, Selectable, PartialEq, Eq, serde::Serialize)]
#[diesel(table_name = entitlements)]
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
}

impl Entitlement {
    /// Whether this row gives access at `now` (epoch ms).
    pub fn active_at(&self, now: i64) -> bool {
        self.grants
            && (matches!(self.status.as_str(), "active" | "trialing")
                || self.access_until.is_some_and(|t| t > now))
    }
}

/// Rewrites the entitlement rows of one subscription.
pub fn recompute(
    tx: &mut Tx<'_>,
    sub: &SubscriptionRow,
    items: &[ItemRow],
    grace_ms: i64,
) -> QueryResult<()> {
    let (grants, access_until) = match sub.status.as_str() {
        "active" | "trialing" => (true, sub.current_period_end),
        "past_due" => (
            true,
            sub.past_due_since
                .map(|since| since.saturating_add(grace_ms)),
        ),
        _ => (false, None),
    };
    let mut rows: Vec<Entitlement> = items
        .iter()
        .map(|i| Entitlement {
            subscription_id: sub.id.clone(),
            item_id: i.id.clone(),
            customer_id: sub.customer_id.clone(),
            price_id: i.price_id.clone(),
            product_id: i.product_id.clone(),
            status: sub.status.clone(),
            grants,
            access_until: if sub.status == "past_due" {
                access_until
            } else {
                i.current_period_end.or(access_until)
            },
            updated_at: sub.updated_at,
        })
        .collect();
    if rows.is_empty() {
        rows.push(Entitlement {
            subscription_id: sub.id.clone(),
            item_id: String::new(),
            customer_id: sub.customer_id.clone(),
            price_id: None,
            product_id: None,
            status: sub.status.clone(),
            grants,
            access_until,
            updated_at: sub.updated_at,
        });
    }
    with_tx!(tx, c => {
        diesel::delete(entitlements::table.filter(entitlements::subscription_id.eq(&sub.id))).execute(c)?;
        diesel::insert_into(entitlements::table).values(&rows).execute(c)
    })?;
    Ok(())
}

/// A subscription Stripe no longer shows grants nothing.
pub fn revoke(tx: &mut Tx<'_>, subscription_id: &str, now: i64) -> QueryResult<()> {
    with_tx!(tx, c => diesel::update(entitlements::table.filter(entitlements::subscription_id.eq(subscription_id)))
        .set((entitlements::grants.eq(false), entitlements::status.eq("gone"), entitlements::access_until.eq(None::<i64>), entitlements::updated_at.eq(now)))
        .execute(c))?;
    Ok(())
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

/// What a customer has access to at `now` (epoch ms).
pub fn for_customer(
    conn: &mut DbConnection,
    customer_id: &str,
    now: i64,
) -> Result<Vec<Entitlement>, StoreError> {
    Ok(for_customer_all(conn, customer_id)?
        .into_iter()
        .filter(|e| e.active_at(now))
        .collect())
}

/// What the application's own user (`client_reference_id` from Checkout)
/// has access to at `now`: through every customer their sessions created.
pub fn for_reference(
    conn: &mut DbConnection,
    reference: &str,
    now: i64,
) -> Result<Vec<Entitlement>, StoreError> {
    let customers: Vec<Option<String>> = with_conn!(conn, c => checkout_sessions::table
        .filter(checkout_sessions::client_reference_id.eq(reference))
        .select(checkout_sessions::customer_id)
        .distinct()
        .load(c))?;
    let mut out = Vec::new();
    for customer in customers.into_iter().flatten() {
        out.extend(for_customer(conn, &customer, now)?);
    }
    Ok(out)
}
