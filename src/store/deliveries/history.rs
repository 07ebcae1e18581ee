//! Per-attempt history of the deliveries (`delivery_attempts`), written in
//! the transaction that records each attempt's outcome, and the health of
//! a destination read from it and from the deliveries.

use diesel::prelude::*;

use super::status;
use crate::store::schema::{deliveries, delivery_attempts};
use crate::store::{with_conn, with_tx, DbConnection, StoreError, Tx};

/// An attempt as the forwarder records it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = delivery_attempts)]
pub struct NewAttempt {
    pub delivery_id: String,
    pub destination: String,
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    /// `delivered`, `retry` or `dead` ([`super::Outcome::as_str`]).
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    /// JSON array of `[name, value]`, secrets redacted.
    pub request_headers: String,
    /// The first 2 KB of the answer.
    pub response_body: Option<String>,
}

/// A recorded attempt.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = delivery_attempts)]
pub struct DeliveryAttempt {
    #[serde(skip)]
    pub id: i64,
    pub delivery_id: String,
    pub destination: String,
    pub attempt: i32,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    /// Kept as JSON text; [`DeliveryAttempt::headers`] parses it.
    #[serde(skip)]
    pub request_headers: String,
    pub response_body: Option<String>,
}

impl DeliveryAttempt {
    /// The request headers, `[name, value]` pairs (secrets redacted).
    pub fn headers(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.request_headers).unwrap_or_default()
    }
}

pub(super) fn insert(tx: &mut Tx<'_>, attempt: &NewAttempt) -> QueryResult<()> {
    with_tx!(tx, c => diesel::insert_into(delivery_attempts::table)
        .values(attempt)
        .execute(c))?;
    Ok(())
}

/// Every attempt of a delivery, first first.
pub fn for_delivery(
    conn: &mut DbConnection,
    delivery_id: &str,
) -> Result<Vec<DeliveryAttempt>, StoreError> {
    Ok(with_conn!(conn, c => delivery_attempts::table
        .filter(delivery_attempts::delivery_id.eq(delivery_id))
        .order(delivery_attempts::id.asc())
        .select(DeliveryAttempt::as_select())
        .load(c))?)
}

/// How a destination is doing, from its deliveries and attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Health {
    /// Deliveries not yet delivered, dead or discarded.
    pub backlog: i64,
    /// Dead deliveries waiting for an operator.
    pub dead: i64,
    /// When the oldest of the backlog was recorded (epoch ms).
    pub oldest_undelivered_at: Option<i64>,
    /// The last attempt the app answered 2xx (its start, epoch ms).
    pub last_success_at: Option<i64>,
    /// The first failed attempt since the last success (epoch ms); `None`
    /// while the last attempt succeeded or none was made.
    pub failing_since: Option<i64>,
    pub last_attempt_at: Option<i64>,
    /// The last attempt's HTTP status (`None`: no answer, or no attempt).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

/// The health of `destination`.
pub(crate) fn health(conn: &mut DbConnection, destination: &str) -> Result<Health, StoreError> {
    Ok(with_conn!(conn, c => {
        let open = deliveries::table
            .filter(deliveries::destination.eq(destination))
            .filter(deliveries::status.eq_any([status::PENDING, status::DELIVERING]));
        let backlog: i64 = open.clone().count().get_result(c)?;
        let oldest: Option<i64> = open
            .select(diesel::dsl::min(deliveries::created_at))
            .first(c)?;
        let dead: i64 = deliveries::table
            .filter(deliveries::destination.eq(destination))
            .filter(deliveries::status.eq(status::DEAD))
            .count()
            .get_result(c)?;
        let of_destination =
            delivery_attempts::table.filter(delivery_attempts::destination.eq(destination));
        let last: Option<(i64, Option<i32>, Option<String>)> = of_destination
            .order(delivery_attempts::id.desc())
            .select((
                delivery_attempts::started_at,
                delivery_attempts::http_status,
                delivery_attempts::error,
            ))
            .first(c)
            .optional()?;
        let success: Option<(i64, i64)> = of_destination
            .filter(delivery_attempts::outcome.eq("delivered"))
            .order(delivery_attempts::id.desc())
            .select((delivery_attempts::id, delivery_attempts::started_at))
            .first(c)
            .optional()?;
        let failing_since: Option<i64> = of_destination
            .filter(delivery_attempts::id.gt(success.map_or(0, |(id, _)| id)))
            .select(diesel::dsl::min(delivery_attempts::started_at))
            .first(c)?;
        let (last_attempt_at, last_status, last_error) = match last {
            Some((at, s, e)) => (Some(at), s, e),
            None => (None, None, None),
        };
        Ok::<_, diesel::result::Error>(Health {
            backlog,
            dead,
            oldest_undelivered_at: oldest,
            last_success_at: success.map(|(_, at)| at),
            failing_since,
            last_attempt_at,
            last_status,
            last_error,
        })
    })?)
}
