//! Paused destinations (`destination_pauses`): a 410 Gone from the app (or
//! an operator) pauses a destination for every instance and across
//! restarts, until a resume (which makes the deliveries answered 410 due
//! again at once).

use diesel::prelude::*;

use super::status;
use crate::store::schema::{deliveries, destination_pauses};
use crate::store::{with_conn, with_tx, write_transaction, DbConnection, StoreError};

/// A paused destination.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = destination_pauses)]
pub struct Pause {
    pub destination: String,
    pub paused_at: i64,
    pub reason: String,
}

/// Pauses `destination` (a second pause keeps the first one's time and
/// reason). Returns whether it was running until now. A write transaction,
/// like every write that can run while the intake is busy: on SQLite it
/// waits its turn at the write gate.
pub fn pause(
    conn: &mut DbConnection,
    destination: &str,
    now: i64,
    reason: &str,
) -> Result<bool, StoreError> {
    let n = write_transaction(conn, |tx| {
        with_tx!(tx, c => diesel::insert_into(destination_pauses::table)
            .values((
                destination_pauses::destination.eq(destination),
                destination_pauses::paused_at.eq(now),
                destination_pauses::reason.eq(reason),
            ))
            .on_conflict(destination_pauses::destination)
            .do_nothing()
            .execute(c))
    })?;
    Ok(n == 1)
}

/// Resumes `destination`. Returns whether it was paused. Its deliveries
/// answered 410 Gone (waiting out their backoff, which keeps a pause that
/// does not hold from turning into a resend loop) are due again at `now`:
/// the operator says the app is back.
pub fn resume(conn: &mut DbConnection, destination: &str, now: i64) -> Result<bool, StoreError> {
    let n = write_transaction(conn, |tx| {
        with_tx!(tx, c => {
            let n = diesel::delete(
                destination_pauses::table.filter(destination_pauses::destination.eq(destination)),
            )
            .execute(c)?;
            diesel::update(
                deliveries::table
                    .filter(deliveries::destination.eq(destination))
                    .filter(deliveries::status.eq(status::PENDING))
                    .filter(deliveries::last_status.eq(GONE))
                    .filter(deliveries::next_attempt_at.gt(now)),
            )
            .set(deliveries::next_attempt_at.eq(now))
            .execute(c)?;
            Ok::<_, diesel::result::Error>(n)
        })
    })?;
    Ok(n == 1)
}

/// The HTTP status that pauses a destination.
const GONE: i32 = 410;

/// Every paused destination.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Pause>, StoreError> {
    Ok(with_conn!(conn, c => destination_pauses::table
        .order(destination_pauses::destination.asc())
        .select(Pause::as_select())
        .load(c))?)
}
