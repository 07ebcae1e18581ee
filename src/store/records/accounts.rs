//! The Connect account each record was fetched from (`account`, NULL for
//! the platform's own objects): every later fetch of a record sends it as
//! `Stripe-Account`.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::{per_family, Family};
use crate::store::schema::{
    charges, checkout_sessions, customer_features, customers, disputes, invoices, payment_intents,
    subscriptions,
};
use crate::store::{with_conn, with_tx, DbConnection, Tx};

/// Records the Connect account a record marked gone was fetched from
/// (`None`: the platform), so that later fetches of it send the same
/// `Stripe-Account`. The other records carry it in their rows.
pub(crate) fn set(
    tx: &mut Tx<'_>,
    family: Family,
    id: &str,
    account: Option<&str>,
) -> QueryResult<()> {
    with_tx!(tx, c => per_family!(family, t => diesel::update(t::table.filter(t::id.eq(id)))
        .set(t::account.eq(account))
        .execute(c)))?;
    Ok(())
}

/// The Connect account a stored record was fetched from; `None` for the
/// platform's own objects and for objects not stored.
pub(crate) fn of(conn: &mut DbConnection, family: Family, id: &str) -> QueryResult<Option<String>> {
    let account: Option<Option<String>> = with_conn!(conn, c => per_family!(family, t => t::table
        .filter(t::id.eq(id))
        .select(t::account)
        .first(c)
        .optional()))?;
    Ok(account.flatten())
}

/// The accounts stored records came from (every record table), sorted.
pub(crate) fn stored(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    macro_rules! distinct {
        ($t:ident) => {
            out.extend(with_conn!(&mut *conn, c => $t::table
                .filter($t::account.is_not_null())
                .select($t::account)
                .distinct()
                .load::<Option<String>>(c))?)
        };
    }
    distinct!(customers);
    distinct!(subscriptions);
    distinct!(invoices);
    distinct!(payment_intents);
    distinct!(checkout_sessions);
    distinct!(disputes);
    distinct!(charges);
    distinct!(customer_features);
    let set: BTreeSet<String> = out.into_iter().flatten().collect();
    Ok(set.into_iter().collect())
}
