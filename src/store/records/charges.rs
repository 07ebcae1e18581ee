//! Charges: the link between a charge and its dispute.

use diesel::prelude::*;

use crate::store::schema::{charges, disputes};
use crate::store::{with_conn, with_tx, DbConnection, Tx};

/// Sets a charge's `dispute_id`: to `dispute` (a dispute of this charge was
/// just written), or, when `None`, to a stored dispute that names the
/// charge (the charge was just written). So the link holds whichever of the
/// two is fetched first; the charge row keeps it across its own rewrites
/// (its upsert does not touch the column).
pub(crate) fn link_dispute(
    tx: &mut Tx<'_>,
    charge_id: &str,
    dispute: Option<&str>,
) -> QueryResult<()> {
    let dispute: Option<String> = match dispute {
        Some(d) => Some(d.to_owned()),
        None => with_tx!(tx, c => disputes::table
            .filter(disputes::charge_id.eq(charge_id))
            .select(disputes::id)
            .order(disputes::id.asc())
            .first::<String>(c)
            .optional())?,
    };
    if let Some(dispute) = dispute {
        with_tx!(tx, c => diesel::update(charges::table.filter(charges::id.eq(charge_id)))
            .set(charges::dispute_id.eq(&dispute))
            .execute(c))?;
    }
    Ok(())
}

/// The columns of a stored charge the drift sweep compares.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = charges)]
pub(crate) struct ComparedCharge {
    pub status: Option<String>,
    pub amount_refunded: Option<i64>,
    pub refunded: bool,
    pub disputed: bool,
    pub gone: bool,
}

/// The stored charge `id`'s compared columns, if it is stored.
pub(crate) fn compared(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ComparedCharge>> {
    with_conn!(conn, c => charges::table
        .filter(charges::id.eq(id))
        .select(ComparedCharge::as_select())
        .first(c)
        .optional())
}
