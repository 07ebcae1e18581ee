//! Customers: reads the writes of other records need.

use diesel::prelude::*;

use crate::store::schema::customers;
use crate::store::{with_conn, with_tx, DbConnection, Tx};

/// The stored customer object (its JSON), if the customer is stored.
pub(crate) fn raw(tx: &mut Tx<'_>, customer: &str) -> QueryResult<Option<String>> {
    with_tx!(tx, c => customers::table
        .filter(customers::id.eq(customer))
        .select(customers::raw)
        .first(c)
        .optional())
}

/// The columns of a stored customer the drift sweep compares.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub(crate) struct ComparedCustomer {
    pub livemode: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub deleted: bool,
    pub metadata: String,
    pub gone: bool,
}

/// The stored customer `id`'s compared columns, if it is stored.
pub(crate) fn compared(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ComparedCustomer>> {
    with_conn!(conn, c => customers::table
        .filter(customers::id.eq(id))
        .select(ComparedCustomer::as_select())
        .first(c)
        .optional())
}
