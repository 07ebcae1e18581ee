//! Subscriptions: the stored grace start a `past_due` fetch keeps, and a
//! subscription's items (replaced with every write of the subscription).
//! The row itself is upserted through [`super::SubscriptionRow::upsert`].

use diesel::prelude::*;

use super::{insert_rows, ItemRow};
use crate::store::schema::{subscription_items, subscriptions};
use crate::store::{with_conn, with_tx, DbConnection, Tx};

/// The stored subscription's status and `past_due_since` (when its grace
/// began), if it is stored.
pub(crate) fn previous(tx: &mut Tx<'_>, id: &str) -> QueryResult<Option<(String, Option<i64>)>> {
    with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::id.eq(id))
        .select((subscriptions::status, subscriptions::past_due_since))
        .first(c)
        .optional())
}

/// Replaces the items of subscription `id` with `items`.
pub(crate) fn replace_items(tx: &mut Tx<'_>, id: &str, items: &[ItemRow]) -> QueryResult<()> {
    with_tx!(tx, c => {
        diesel::delete(subscription_items::table.filter(subscription_items::subscription_id.eq(id))).execute(c)?;
        insert_rows!(c, subscription_items::table, items)
    })?;
    Ok(())
}

/// The customer of a stored subscription, if it is stored and has one.
pub(crate) fn customer_of(tx: &mut Tx<'_>, id: &str) -> QueryResult<Option<String>> {
    let customer: Option<Option<String>> = with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::id.eq(id))
        .select(subscriptions::customer_id)
        .first(c)
        .optional())?;
    Ok(customer.flatten())
}

/// The mode of one of the customer's stored subscriptions, if any.
pub(crate) fn livemode_of_customer(tx: &mut Tx<'_>, customer: &str) -> QueryResult<Option<bool>> {
    with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::customer_id.eq(customer))
        .select(subscriptions::livemode)
        .first(c)
        .optional())
}

/// The columns of a stored subscription the drift sweep compares.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = subscriptions)]
pub(crate) struct ComparedSubscription {
    pub customer_id: Option<String>,
    pub status: String,
    pub livemode: bool,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub latest_invoice_id: Option<String>,
    pub metadata: String,
    pub raw: String,
    pub gone: bool,
}

/// The stored subscription `id`'s compared columns, if it is stored.
pub(crate) fn compared(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<ComparedSubscription>> {
    with_conn!(conn, c => subscriptions::table
        .filter(subscriptions::id.eq(id))
        .select(ComparedSubscription::as_select())
        .first(c)
        .optional())
}

/// A stored item as the drift sweep compares it: id, price, product,
/// quantity.
pub(crate) type ComparedItem = (String, Option<String>, Option<String>, Option<i64>);

/// The stored items of subscription `id`, by item id.
pub(crate) fn compared_items(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<ComparedItem>> {
    with_conn!(conn, c => subscription_items::table
        .filter(subscription_items::subscription_id.eq(id))
        .select((subscription_items::id, subscription_items::price_id, subscription_items::product_id, subscription_items::quantity))
        .order(subscription_items::id.asc())
        .load(c))
}
