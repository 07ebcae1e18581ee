//! Stripe's Entitlements product as stored: a customer's active features
//! (`customer_features`), replaced with every fetch of the customer's
//! active entitlements under the fetch-order guard kept in
//! `customer_feature_fetches` (one row per customer: the latest fetch).

use diesel::prelude::*;
use serde::Serialize;

use super::Stamp;
use crate::store::schema::{customer_feature_fetches, customer_features};
use crate::store::{with_conn, with_tx, DbConnection, StoreError, Tx};

/// One feature a customer is entitled to.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable, Selectable, Serialize)]
#[diesel(table_name = customer_features)]
pub struct Feature {
    pub customer_id: String,
    pub feature_id: String,
    pub lookup_key: String,
    pub entitlement_id: String,
    pub livemode: bool,
    /// The Connect account the customer lives in (`None`: the platform).
    pub account: Option<String>,
    pub updated_at: i64,
}

/// One fetch of a customer's active entitlements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureFetch<'a> {
    pub customer_id: &'a str,
    /// The Connect account fetched from (`None`: the platform).
    pub account: Option<&'a str>,
    /// How many active entitlements Stripe listed.
    pub listed: i64,
    pub stamp: Stamp,
    /// The writer's clock (epoch ms).
    pub now: i64,
}

/// Replaces the customer's rows with `rows`, unless a newer fetch is
/// already stored; returns whether it wrote.
pub(crate) fn replace(
    tx: &mut Tx<'_>,
    fetch: FeatureFetch<'_>,
    rows: &[Feature],
) -> QueryResult<bool> {
    let (seq, at) = (fetch.stamp.seq, fetch.stamp.at);
    let row = (
        customer_feature_fetches::customer_id.eq(fetch.customer_id),
        customer_feature_fetches::account.eq(fetch.account),
        customer_feature_fetches::features.eq(fetch.listed),
        customer_feature_fetches::fetched_at.eq(at),
        customer_feature_fetches::updated_at.eq(fetch.now),
        customer_feature_fetches::fetch_seq.eq(seq),
    );
    let written = with_tx!(tx, c => {
        let inserted = diesel::insert_into(customer_feature_fetches::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c)?;
        if inserted == 1 {
            1
        } else {
            diesel::update(
                customer_feature_fetches::table
                    .filter(customer_feature_fetches::customer_id.eq(fetch.customer_id))
                    .filter(customer_feature_fetches::fetch_seq.le(seq)),
            )
            .set(row)
            .execute(c)?
        }
    });
    if written == 0 {
        return Ok(false);
    }
    with_tx!(tx, c => {
        diesel::delete(customer_features::table.filter(customer_features::customer_id.eq(fetch.customer_id))).execute(c)?;
        diesel::insert_into(customer_features::table).values(rows).execute(c)
    })?;
    Ok(true)
}

/// The customer's active features, by lookup key.
pub fn for_customer(
    conn: &mut DbConnection,
    customer_id: &str,
) -> Result<Vec<Feature>, StoreError> {
    let rows = with_conn!(conn, c => customer_features::table
        .filter(customer_features::customer_id.eq(customer_id))
        .order((customer_features::lookup_key.asc(), customer_features::feature_id.asc()))
        .select(Feature::as_select())
        .load(c))?;
    Ok(rows)
}

/// Whether the customer has the feature `lookup_key` now (as of the last
/// fetch of their active entitlements): the feature's row, if so.
pub fn has_feature(
    conn: &mut DbConnection,
    customer_id: &str,
    lookup_key: &str,
) -> Result<Option<Feature>, StoreError> {
    let row = with_conn!(conn, c => customer_features::table
        .filter(customer_features::customer_id.eq(customer_id))
        .filter(customer_features::lookup_key.eq(lookup_key))
        .select(Feature::as_select())
        .first(c)
        .optional())?;
    Ok(row)
}

/// When the customer's features were last fetched (epoch ms), if ever: an
/// application can tell "no features" from "never synced".
pub fn fetched_at(conn: &mut DbConnection, customer_id: &str) -> Result<Option<i64>, StoreError> {
    let at = with_conn!(conn, c => customer_feature_fetches::table
        .filter(customer_feature_fetches::customer_id.eq(customer_id))
        .select(customer_feature_fetches::fetched_at)
        .first(c)
        .optional())?;
    Ok(at)
}

/// The customers of `account` (`None`: the platform) with a stored fetch
/// of their features, by id.
pub(crate) fn customers_fetched(
    conn: &mut DbConnection,
    account: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let ids = with_conn!(conn, c => match account {
        Some(a) => customer_feature_fetches::table
            .filter(customer_feature_fetches::account.eq(a))
            .select(customer_feature_fetches::customer_id)
            .order(customer_feature_fetches::customer_id.asc())
            .load(c),
        None => customer_feature_fetches::table
            .filter(customer_feature_fetches::account.is_null())
            .select(customer_feature_fetches::customer_id)
            .order(customer_feature_fetches::customer_id.asc())
            .load(c),
    })?;
    Ok(ids)
}

/// The lookup keys of the customer's stored features.
pub(crate) fn lookup_keys(
    conn: &mut DbConnection,
    customer_id: &str,
) -> Result<Vec<String>, StoreError> {
    let keys = with_conn!(conn, c => customer_features::table
        .filter(customer_features::customer_id.eq(customer_id))
        .select(customer_features::lookup_key)
        .load(c))?;
    Ok(keys)
}
