//! The outbox table: verified deliveries, inserted once per Stripe event id.

use std::str::FromStr;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use super::deliveries::HookEvent;
use super::schema::webhook_events;
use super::{with_conn, write_transaction_in, DbConnection, EpochMs, Lane, StoreError, Tx};
use crate::stripe::envelope::Envelope;

pub(crate) mod claim;
#[cfg(feature = "postgres")]
mod claim_pg;
pub(crate) mod finish;
#[cfg(feature = "postgres")]
mod finish_pg;
pub(crate) mod retention;

mod leased;

pub use leased::{ClaimedEvent, EventGroup};

/// Event statuses as stored, as strings (raw SQL and metrics labels use
/// these; Rust code holds an [`EventStatus`]).
pub(crate) mod status {
    use super::EventStatus;

    pub(crate) const PENDING: &str = EventStatus::Pending.as_str();
    pub(crate) const PROCESSING: &str = EventStatus::Processing.as_str();
    pub(crate) const DONE: &str = EventStatus::Done.as_str();
    pub(crate) const IGNORED: &str = EventStatus::Ignored.as_str();
    pub(crate) const DEAD: &str = EventStatus::Dead.as_str();
    /// A dead event an operator discarded (with a reason); kept, never retried.
    pub(crate) const DISCARDED: &str = EventStatus::Discarded.as_str();
    pub(crate) const ALL: [&str; 6] = [PENDING, PROCESSING, DONE, IGNORED, DEAD, DISCARDED];
}

/// Where an event is in its life. Stored as TEXT (the column's CHECK
/// constraint lists the same words), serialised as the same word.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    AsExpression,
    FromSqlRow,
    serde::Serialize,
    serde::Deserialize,
)]
#[diesel(sql_type = Text)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Waiting to be claimed (when `next_attempt_at` comes).
    Pending,
    /// Claimed by a worker, under a lease.
    Processing,
    Done,
    /// No handler takes its type.
    Ignored,
    /// Its retry budget is spent, or it failed permanently.
    Dead,
    /// A dead event an operator gave up on, with a reason.
    Discarded,
}

impl EventStatus {
    pub const ALL: [EventStatus; 6] = [
        EventStatus::Pending,
        EventStatus::Processing,
        EventStatus::Done,
        EventStatus::Ignored,
        EventStatus::Dead,
        EventStatus::Discarded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Processing => "processing",
            EventStatus::Done => "done",
            EventStatus::Ignored => "ignored",
            EventStatus::Dead => "dead",
            EventStatus::Discarded => "discarded",
        }
    }
}

/// A status word that is not one of [`EventStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}: one of {list}", list = status::ALL.join(", "))]
pub struct UnknownStatus(pub String);

impl FromStr for EventStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        EventStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl std::fmt::Display for EventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for EventStatus {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for EventStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<DB> FromSql<Text, DB> for EventStatus
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(String::from_sql(bytes)?.parse()?)
    }
}

impl<DB> ToSql<Text, DB> for EventStatus
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.as_str().to_sql(out)
    }
}

/// A verified delivery, ready to be stored.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_events)]
pub struct NewEvent {
    pub event_id: String,
    pub endpoint: String,
    pub event_type: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub account: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// The ordering key: `object_id`, or the event id when there is none.
    pub object_key: String,
    pub stripe_created: i64,
    pub received_at: EpochMs,
    pub queued_at: EpochMs,
    /// The raw body exactly as received.
    pub payload: String,
    /// The delivery's headers that matter, as a JSON object.
    pub headers: String,
    /// Which of the endpoint's secrets verified it.
    pub secret_index: i32,
    pub next_attempt_at: EpochMs,
    /// [`LIVE`] for what Stripe delivers now, [`BACKGROUND`] for what an
    /// operator or the catch-up re-queues: claims take live events first.
    pub priority: i32,
}

impl NewEvent {
    /// The outbox row for a parsed event: `payload` is the raw JSON as
    /// received.
    pub fn from_envelope(
        envelope: Envelope,
        endpoint: &str,
        payload: String,
        headers: String,
        secret_index: i32,
        received_at: EpochMs,
        priority: i32,
    ) -> NewEvent {
        NewEvent {
            object_key: envelope.object_key(),
            event_id: envelope.id,
            endpoint: endpoint.to_owned(),
            event_type: envelope.event_type,
            api_version: envelope.api_version,
            livemode: envelope.livemode,
            account: envelope.account,
            object_type: envelope.object_type,
            object_id: envelope.object_id,
            stripe_created: envelope.created,
            received_at,
            queued_at: received_at,
            payload,
            headers,
            secret_index,
            next_attempt_at: received_at,
            priority,
        }
    }
}

/// Claim priority of an event delivered to the intake.
pub const LIVE: i32 = 0;
/// Claim priority of replayed and caught-up events: behind every live one.
pub(crate) const BACKGROUND: i32 = 1;

/// What inserting one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    /// The event id was already in the outbox (a redelivery).
    Duplicate,
}

impl Inserted {
    pub fn as_str(self) -> &'static str {
        match self {
            Inserted::Stored => "stored",
            Inserted::Duplicate => "duplicate",
        }
    }
}

/// Inserts `events` in ONE transaction and commits; redeliveries are
/// skipped by the unique event id (`ON CONFLICT DO NOTHING`). Background
/// work (catch-up, tools); the intake uses [`insert_batch_in`].
pub fn insert_batch(
    conn: &mut DbConnection,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    insert_batch_in(conn, Lane::Background, events)
}

/// The one way into the outbox: inserts `events` in ONE transaction, in
/// the given lane of SQLite's write gate (the intake's commits go in
/// [`Lane::Intake`], ahead of background writers), and runs the store's
/// `received` hook ([`super::hooks`]) with the newly stored events (not the
/// duplicates) in the same transaction: the deliveries of the destinations
/// that follow `received`, whichever way the events came in.
pub(crate) fn insert_batch_in(
    conn: &mut DbConnection,
    lane: Lane,
    events: &[NewEvent],
) -> Result<Vec<Inserted>, StoreError> {
    let on_stored = conn.hooks().received();
    write_transaction_in(conn, lane, |tx| {
        let outcomes = insert_in(tx, events)?;
        if let Some(hook) = on_stored {
            let stored: Vec<HookEvent> = events
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| **o == Inserted::Stored)
                .map(|(e, _)| {
                    HookEvent::in_outbox(
                        e.event_id.as_str(),
                        e.event_type.as_str(),
                        e.object_key.as_str(),
                        e.payload.as_str(),
                    )
                })
                .collect();
            if !stored.is_empty() {
                hook(tx, &stored, crate::store::now_ms())?;
            }
        }
        Ok(outcomes)
    })
}

fn insert_in(tx: &mut Tx<'_>, events: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
    match tx {
        // In-process: one statement per event tells stored from duplicate.
        Tx::Sqlite(c) => events
            .iter()
            .map(|event| {
                let rows = diesel::insert_into(webhook_events::table)
                    .values(event)
                    .on_conflict(webhook_events::event_id)
                    .do_nothing()
                    .execute(*c)?;
                Ok(if rows == 1 {
                    Inserted::Stored
                } else {
                    Inserted::Duplicate
                })
            })
            .collect(),
        // Over the network: one multi-row statement per batch; the ids it
        // returns are the events it stored.
        #[cfg(feature = "postgres")]
        Tx::Postgres(c) => {
            let mut stored: std::collections::HashSet<String> = std::collections::HashSet::new();
            for chunk in events.chunks(1000) {
                let ids: Vec<String> = diesel::insert_into(webhook_events::table)
                    .values(chunk)
                    .on_conflict(webhook_events::event_id)
                    .do_nothing()
                    .returning(webhook_events::event_id)
                    .get_results(*c)?;
                stored.extend(ids);
            }
            // A redelivery inside the same batch: the first copy is stored.
            Ok(events
                .iter()
                .map(|e| {
                    if stored.remove(&e.event_id) {
                        Inserted::Stored
                    } else {
                        Inserted::Duplicate
                    }
                })
                .collect())
        }
    }
}

/// A stored event, as the inspector and tests see it.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = webhook_events)]
pub struct StoredEvent {
    pub id: i64,
    pub event_id: String,
    pub endpoint: String,
    pub event_type: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub account: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub object_key: String,
    pub stripe_created: i64,
    pub received_at: EpochMs,
    pub queued_at: EpochMs,
    pub payload: String,
    pub headers: String,
    pub secret_index: i32,
    pub status: EventStatus,
    pub attempts: i32,
    pub next_attempt_at: EpochMs,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<EpochMs>,
    pub last_error: Option<String>,
    pub processed_at: Option<EpochMs>,
}

/// One event by its Stripe id.
pub fn get(conn: &mut DbConnection, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
    let found = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::event_id.eq(event_id))
        .select(StoredEvent::as_select())
        .first(c)
        .optional())?;
    Ok(found)
}

/// How many events the outbox holds.
pub fn count(conn: &mut DbConnection) -> Result<i64, StoreError> {
    let n = with_conn!(conn, c => webhook_events::table.count().get_result(c))?;
    Ok(n)
}

/// Every stored event id, oldest first.
pub fn event_ids(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let ids = with_conn!(conn, c => webhook_events::table
        .order(webhook_events::id.asc())
        .select(webhook_events::event_id)
        .load(c))?;
    Ok(ids)
}

/// Every stored event, oldest first (tests and small tools).
pub fn list_all(conn: &mut DbConnection) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = with_conn!(conn, c => webhook_events::table
        .order(webhook_events::id.asc())
        .select(StoredEvent::as_select())
        .load(c))?;
    Ok(rows)
}

/// How many events are in each status.
pub fn count_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = with_conn!(conn, c => webhook_events::table
        .group_by(webhook_events::status)
        .select((webhook_events::status, diesel::dsl::count_star()))
        .load(c))?;
    Ok(rows)
}

/// Events not finished yet, or finished at or after `since` (epoch ms), with
/// an id above `after_id`, oldest first, at most `limit`: what a
/// destination that starts following `received` must still be given
/// (the finish no longer records it; the intake recorded them before).
pub(crate) fn unfinished_or_since(
    conn: &mut DbConnection,
    since: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::id.gt(after_id))
        .filter(
            webhook_events::status
                .eq_any([EventStatus::Pending, EventStatus::Processing])
                .or(webhook_events::processed_at.ge(since)),
        )
        .order(webhook_events::id.asc())
        .limit(limit)
        .select(StoredEvent::as_select())
        .load(c))?;
    Ok(rows)
}
