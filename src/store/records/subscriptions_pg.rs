//! Postgres: the subscriptions of a whole finish batch at once (see
//! [`super::subscriptions`] for one).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::PgConnection;

use super::{insert_rows, ItemRow};
use crate::store::schema::{subscription_items, subscriptions};

/// The stored status and `past_due_since` of each of `ids` that is stored.
pub(crate) fn previous_many(
    c: &mut PgConnection,
    ids: &[&str],
) -> QueryResult<HashMap<String, (String, Option<i64>)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // By the primary key: an index scan whatever the statistics.
    Ok(subscriptions::table
        .filter(subscriptions::id.eq_any(ids))
        .select((
            subscriptions::id,
            subscriptions::status,
            subscriptions::past_due_since,
        ))
        .load::<(String, String, Option<i64>)>(c)?
        .into_iter()
        .map(|(id, status, since)| (id, (status, since)))
        .collect())
}

/// Deletes the rows of `$table` (a literal) whose `subscription_id` is one
/// of `$ids`, each subscription's rows through the index, one subscription
/// at a time (`LATERAL … OFFSET 0` is not flattened into a join): without
/// statistics (a new database, until autovacuum's first ANALYZE) the
/// planner takes `= ANY` of a dozen ids for a few percent of the table and
/// scans it whole. `$marker` names the statement in diesel's cache.
macro_rules! delete_rows_of {
    ($c:expr, $marker:ident, $table:literal, $ids:expr) => {{
        use $crate::store::prepared::{Bind, Cached};
        struct $marker;
        Cached::<$marker>::new(
            concat!(
                "DELETE FROM ",
                $table,
                " WHERE subscription_id = ANY($1::text[]) ",
                "AND ctid = ANY(ARRAY(SELECT r.ctid FROM unnest($1::text[]) AS k(id), ",
                "LATERAL (SELECT ctid FROM ",
                $table,
                " WHERE subscription_id = k.id OFFSET 0) AS r))"
            ),
            vec![Bind::TextRefs($ids)],
        )
        .execute($c)
    }};
}
pub(crate) use delete_rows_of;

/// Replaces the items of the subscriptions `written` with `items`.
pub(crate) fn replace_items(
    c: &mut PgConnection,
    written: &[&str],
    items: &[ItemRow],
) -> QueryResult<()> {
    delete_rows_of!(c, DeleteItems, "subscription_items", written)?;
    insert_rows!(c, subscription_items::table, items)?;
    Ok(())
}
