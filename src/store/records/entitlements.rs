//! The entitlement rows (one per subscription item): who has access. The
//! one door for writing them: every function here that writes them notes
//! the customer ([`access_changes::note`]), so the transaction's end
//! compares the customer's access with what was last announced and
//! announces a change ([`crate::store::hooks`]). The rule that makes the
//! rows is `reconcile::access`.

use diesel::prelude::*;

use super::insert_rows;
use crate::store::access_changes::{self, Cause};
use crate::store::schema::{checkout_sessions, entitlements, subscriptions};
use crate::store::{with_conn, with_tx, DbConnection, Tx};

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
    /// (see `reconcile::access`).
    pub ends_at: Option<i64>,
}

/// Whose entitlement rows a write changes: the subscription's customer
/// (`None`: a subscription without one, nobody to announce to) and mode,
/// the place of the fetch that wrote them, and when (the writer's clock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    pub customer: Option<&'a str>,
    pub livemode: bool,
    pub fetch_seq: i64,
    pub now: i64,
}

impl Owner<'_> {
    /// Notes the customer's access as written in the open transaction.
    pub(super) fn note(&self) -> QueryResult<()> {
        match self.customer {
            Some(customer) => access_changes::note(
                customer,
                self.livemode,
                Cause::Fetch(self.fetch_seq),
                self.now,
            ),
            None => Ok(()),
        }
    }
}

/// Replaces the entitlement rows of subscription `subscription_id` with
/// `rows`, and notes its owner's access as changed.
pub(crate) fn replace(
    tx: &mut Tx<'_>,
    subscription_id: &str,
    rows: &[Entitlement],
    owner: Owner<'_>,
) -> QueryResult<()> {
    with_tx!(tx, c => {
        diesel::delete(entitlements::table.filter(entitlements::subscription_id.eq(subscription_id))).execute(c)?;
        insert_rows!(c, entitlements::table, rows)
    })?;
    owner.note()
}

/// A subscription Stripe no longer shows grants nothing: its rows are
/// marked `gone`, and its customer's access noted as changed.
pub(crate) fn revoke(
    tx: &mut Tx<'_>,
    subscription_id: &str,
    fetch_seq: i64,
    now: i64,
) -> QueryResult<()> {
    with_tx!(tx, c => diesel::update(entitlements::table.filter(entitlements::subscription_id.eq(subscription_id)))
        .set((entitlements::grants.eq(false), entitlements::status.eq("gone"), entitlements::access_until.eq(None::<i64>), entitlements::updated_at.eq(now)))
        .execute(c))?;
    let owner: Option<(Option<String>, bool)> = with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::id.eq(subscription_id))
        .select((subscriptions::customer_id, subscriptions::livemode))
        .first(c)
        .optional())?;
    if let Some((Some(customer), livemode)) = owner {
        Owner {
            customer: Some(&customer),
            livemode,
            fetch_seq,
            now,
        }
        .note()?;
    }
    Ok(())
}

/// Every entitlement row of a customer (granting or not), by subscription
/// and item.
pub(crate) fn of_customer(
    conn: &mut DbConnection,
    customer_id: &str,
) -> QueryResult<Vec<Entitlement>> {
    with_conn!(conn, c => entitlements::table
        .filter(entitlements::customer_id.eq(customer_id))
        .order((entitlements::subscription_id.asc(), entitlements::item_id.asc()))
        .select(Entitlement::as_select())
        .load(c))
}

/// The customers that the Checkout Sessions carrying `reference`
/// (`client_reference_id`) created, among those of one Connect account
/// (`None`: the platform's own).
pub(crate) fn customers_of_reference(
    conn: &mut DbConnection,
    reference: &str,
    account: Option<&str>,
) -> QueryResult<Vec<String>> {
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
    Ok(customers.into_iter().flatten().collect())
}

/// [`of_customer`] inside a write transaction (what the transaction wrote
/// so far included).
pub(crate) fn of_customer_in(tx: &mut Tx<'_>, customer_id: &str) -> QueryResult<Vec<Entitlement>> {
    with_tx!(tx, c => entitlements::table
        .filter(entitlements::customer_id.eq(customer_id))
        .order((entitlements::subscription_id.asc(), entitlements::item_id.asc()))
        .select(Entitlement::as_select())
        .load(c))
}

/// The customers with an entitlement row whose `access_until` is in
/// `(since, now]`: access that ended by the clock in that window.
pub(crate) fn customers_expired(tx: &mut Tx<'_>, since: i64, now: i64) -> QueryResult<Vec<String>> {
    let customers: Vec<Option<String>> = with_tx!(tx, c => entitlements::table
        .filter(entitlements::access_until.gt(since))
        .filter(entitlements::access_until.le(now))
        .filter(entitlements::customer_id.is_not_null())
        .select(entitlements::customer_id)
        .distinct()
        .load(c))?;
    Ok(customers.into_iter().flatten().collect())
}

/// The product and status of each entitlement row of subscription `id`.
pub(crate) fn products_of_subscription(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Vec<(Option<String>, String)>> {
    with_conn!(conn, c => entitlements::table
        .filter(entitlements::subscription_id.eq(id))
        .select((entitlements::product_id, entitlements::status))
        .load(c))
}
