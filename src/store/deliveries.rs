//! The deliveries table: one row per event × destination, claimed by the
//! forwarder with a lease (like the outbox), in order per
//! (destination, object) for ordered destinations.
//!
//! Rows are written through an [`EventHook`] in the transaction of the step
//! they follow (the event's finish, or the outbox insert): the store, the
//! queue and the intake call the hook without knowing what it writes; the
//! composition root builds it from the configured destinations.

use std::borrow::Cow;
use std::sync::Arc;

use diesel::prelude::*;
use sha2::{Digest, Sha256};

pub(crate) mod history;
pub(crate) mod pauses;
pub(crate) mod retention;

use super::schema::{deliveries, delivery_payloads, webhook_events};
use super::{relaxed_transaction, with_tx, write_transaction, DbConnection, StoreError, Tx};

pub(crate) mod status {
    pub(crate) const PENDING: &str = "pending";
    pub(crate) const DELIVERING: &str = "delivering";
    pub(crate) const DELIVERED: &str = "delivered";
    pub(crate) const DEAD: &str = "dead";
    pub(crate) const DISCARDED: &str = "discarded";
}

/// An event at the step a hook follows. Borrowed where the step already
/// holds the event (the intake's commit: no copy of the body unless a
/// delivery is recorded), owned where the hook makes it.
#[derive(Debug, Clone)]
pub struct HookEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub event_type: Cow<'a, str>,
    pub object_key: Cow<'a, str>,
    pub payload: Cow<'a, str>,
    /// `payload` is the body the outbox stores for `event_id` (a Stripe
    /// event, at the intake or the runner's finish): its deliveries read
    /// it from there instead of writing a copy. stripe-hookd's own events
    /// (false) have theirs copied to `delivery_payloads`.
    pub in_outbox: bool,
}

impl<'a> HookEvent<'a> {
    /// A Stripe event whose body the outbox holds (`in_outbox`).
    pub fn in_outbox(
        event_id: impl Into<Cow<'a, str>>,
        event_type: impl Into<Cow<'a, str>>,
        object_key: impl Into<Cow<'a, str>>,
        payload: impl Into<Cow<'a, str>>,
    ) -> Self {
        HookEvent {
            event_id: event_id.into(),
            event_type: event_type.into(),
            object_key: object_key.into(),
            payload: payload.into(),
            in_outbox: true,
        }
    }
}

/// Runs inside the transaction of a step (events, the step's time in epoch
/// ms); an error rolls the step back.
pub(crate) type EventHook =
    Arc<dyn Fn(&mut Tx<'_>, &[HookEvent<'_>], i64) -> QueryResult<()> + Send + Sync>;

/// The delivery id the app deduplicates on: stable per event × destination.
pub fn delivery_id(destination: &str, event_id: &str) -> String {
    let digest = Sha256::digest(format!("{destination}\0{event_id}").as_bytes());
    format!("dlv_{}", &hex::encode(digest)[..24])
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = deliveries)]
struct NewDelivery<'a> {
    delivery_id: String,
    destination: &'a str,
    event_id: &'a str,
    event_type: &'a str,
    object_key: &'a str,
    next_attempt_at: i64,
    created_at: i64,
    sequence: Option<i64>,
}

/// Records a delivery of `event` to `destination` (once: a second call for
/// the same pair changes nothing). The body stays where it is when the
/// outbox holds it (`in_outbox`: one row written, not two; pruning an
/// event copies it first, [`keep_bodies_of`]); otherwise it goes to
/// `delivery_payloads`, apart from the row that every claim and finish
/// rewrites. `sequence` is the object's place in the order of fetches,
/// sent as `Stripe-Hookd-Sequence` (for deliveries recorded after the
/// reconcile; `None` for the others).
pub(crate) fn insert(
    tx: &mut Tx<'_>,
    destination: &str,
    event: &HookEvent<'_>,
    sequence: Option<i64>,
    now: i64,
) -> QueryResult<()> {
    let row = NewDelivery {
        delivery_id: delivery_id(destination, &event.event_id),
        destination,
        event_id: event.event_id.as_ref(),
        event_type: event.event_type.as_ref(),
        object_key: event.object_key.as_ref(),
        next_attempt_at: now,
        created_at: now,
        sequence,
    };
    let payload = event.payload.as_ref();
    if event.in_outbox {
        return with_tx!(tx, c => diesel::insert_into(deliveries::table)
            .values(&row)
            .on_conflict((deliveries::event_id, deliveries::destination))
            .do_nothing()
            .execute(c)
            .map(drop));
    }
    with_tx!(tx, c => {
        let id: Option<i64> = diesel::insert_into(deliveries::table)
            .values(&row)
            .on_conflict((deliveries::event_id, deliveries::destination))
            .do_nothing()
            .returning(deliveries::id)
            .get_result(c)
            .optional()?;
        if let Some(id) = id {
            diesel::insert_into(delivery_payloads::table)
                .values((delivery_payloads::id.eq(id), delivery_payloads::payload.eq(payload)))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
}

/// A delivery row with its body: select it from [`with_payload`].
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = deliveries)]
pub struct Delivery {
    pub id: i64,
    pub delivery_id: String,
    pub destination: String,
    pub event_id: String,
    pub event_type: String,
    pub object_key: String,
    /// `None`: the body is missing (its copy and its event's are gone,
    /// e.g. deleted by hand); such a delivery is dead-lettered when claimed
    /// ([`BODY_MISSING`]).
    #[diesel(select_expression = body())]
    #[diesel(select_expression_type = body)]
    pub payload: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// When an operator discarded it (epoch ms); what retention counts from.
    pub discarded_at: Option<i64>,
    /// The object's place in the order of fetches when the delivery was
    /// recorded after its reconcile (`Stripe-Hookd-Sequence`).
    pub sequence: Option<i64>,
}

diesel::define_sql_function! {
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// Deliveries with their bodies: a copy of their own, or their event's in
/// the outbox.
#[diesel::dsl::auto_type]
fn with_payload() -> _ {
    deliveries::table
        .left_join(delivery_payloads::table)
        .left_join(webhook_events::table.on(webhook_events::event_id.eq(deliveries::event_id)))
}

/// A delivery's body in [`with_payload`]: its own or its event's (an event
/// leaves the outbox only after its deliveries have copies,
/// [`keep_bodies_of`]). NULL only when both rows are gone (deleted by hand,
/// a restore of part of the database): not assumed away, so that one such
/// row cannot fail every claim of its destination.
#[diesel::dsl::auto_type]
fn body() -> _ {
    coalesce(
        delivery_payloads::payload.nullable(),
        webhook_events::payload.nullable(),
    )
}

/// The start of `last_error` of a delivery dead-lettered because its body
/// is gone.
pub(crate) const BODY_MISSING: &str = "body missing";

/// Copies the outbox's body of each of `event_ids` to the deliveries that
/// read it from there, before the events are pruned.
pub(crate) fn keep_bodies_of(tx: &mut Tx<'_>, event_ids: &[String]) -> QueryResult<usize> {
    with_tx!(tx, c => {
        let uncopied = deliveries::table
            .inner_join(webhook_events::table.on(webhook_events::event_id.eq(deliveries::event_id)))
            .left_join(delivery_payloads::table)
            .filter(deliveries::event_id.eq_any(event_ids))
            .filter(delivery_payloads::id.nullable().is_null())
            .select((deliveries::id, webhook_events::payload));
        diesel::insert_into(delivery_payloads::table)
            .values(uncopied)
            .into_columns((delivery_payloads::id, delivery_payloads::payload))
            .execute(c)
    })
}

/// Due (pending, `next_attempt_at <= now`) or abandoned (delivering, lease
/// expired).
macro_rules! claimable {
    ($now:expr) => {
        deliveries::status
            .eq(status::PENDING)
            .and(deliveries::next_attempt_at.le($now))
            .or(deliveries::status
                .eq(status::DELIVERING)
                .and(deliveries::lease_expires_at.lt($now)))
    };
}

/// Claims what `wanted` says, counting the attempt: up to `limit`
/// deliveries of `destination` for `owner` until `now + lease_ms`.
/// Ordered: only the first unfinished delivery of each object is a
/// candidate, so a later one waits while an earlier one is pending,
/// retrying or in flight (a dead one no longer holds it back).
pub fn claim(conn: &mut DbConnection, wanted: &Claim<'_>) -> Result<Vec<Delivery>, StoreError> {
    Ok(finish_and_claim(conn, &[], wanted)?.1)
}

/// What a claim takes ([`claim`], [`finish_and_claim`]).
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub destination: &'a str,
    pub ordered: bool,
    pub owner: &'a str,
    pub now: i64,
    pub lease_ms: i64,
    pub limit: usize,
}

/// Ends the attempts `finished` by the claim's owner (as [`finish`]), then claims
/// (as [`claim`]), in one transaction: the forwarder's claims take the
/// attempts that ended since the last commit along, so a busy destination
/// costs one write transaction per batch, not two, and the rows and index
/// pages both rewrite (neighbours in id order) are written once
/// (docs/performance.md). Finishing first lets a delivery just delivered
/// release the next one of its object in the same claim.
pub fn finish_and_claim(
    conn: &mut DbConnection,
    finished: &[Finished],
    wanted: &Claim<'_>,
) -> Result<(Vec<bool>, Vec<Delivery>), StoreError> {
    // Relaxed: a claim lost to a power cut is a lease nobody holds any more;
    // the delivery is claimed and sent again (same delivery id); an outcome
    // lost so is an attempt sent again (see [`finish`]).
    relaxed_transaction(conn, |tx| {
        let recorded = finish_in(tx, wanted.owner, finished)?;
        let claimed = claim_in(tx, wanted)?;
        Ok((recorded, claimed))
    })
}

fn claim_in(tx: &mut Tx<'_>, wanted: &Claim<'_>) -> Result<Vec<Delivery>, StoreError> {
    let Claim {
        destination,
        ordered,
        owner,
        now,
        lease_ms,
        limit,
    } = *wanted;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Due pending rows in id order (the index (destination, status, id),
    // stopping at the limit), then abandoned ones (few: at most the
    // deliveries in flight); ordered: only rows with no earlier
    // unfinished row of their object (an index probe).
    let earlier = diesel::alias!(deliveries as earlier);
    let first_of_object = diesel::dsl::not(diesel::dsl::exists(
        earlier
            .filter(earlier.field(deliveries::destination).eq(destination))
            .filter(
                earlier
                    .field(deliveries::object_key)
                    .eq(deliveries::object_key),
            )
            .filter(earlier.field(deliveries::id).lt(deliveries::id))
            .filter(
                earlier
                    .field(deliveries::status)
                    .eq_any([status::PENDING, status::DELIVERING]),
            ),
    ));
    let mut candidates: Vec<i64> = Vec::new();
    for pending in [true, false] {
        let found: Vec<i64> = with_tx!(tx, c => {
            let mut query = deliveries::table
                .filter(deliveries::destination.eq(destination))
                .order(deliveries::id.asc())
                .limit(limit)
                .select(deliveries::id)
                .into_boxed();
            query = if pending {
                query
                    .filter(deliveries::status.eq(status::PENDING))
                    // `+ 0`: not an index term, so SQLite walks
                    // deliveries_claim in id order instead of sorting
                    // every due row.
                    .filter((deliveries::next_attempt_at + 0_i64).le(now))
            } else {
                query
                    .filter(deliveries::status.eq(status::DELIVERING))
                    .filter(deliveries::lease_expires_at.lt(now))
            };
            if ordered {
                query = query.filter(first_of_object.clone());
            }
            query.load(c)
        })?;
        candidates.extend(found);
    }
    candidates.sort_unstable();
    candidates.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for all; another instance may have taken some
    // since: the update re-checks each row. Then the claimed rows with
    // their bodies (read only: the bodies' pages stay clean).
    let claimed: Vec<Delivery> = with_tx!(tx, c => {
        let claimed: Vec<i64> = diesel::update(
            deliveries::table
                .filter(deliveries::id.eq_any(&candidates))
                .filter(claimable!(now)),
        )
        .set((
            deliveries::status.eq(status::DELIVERING),
            deliveries::lease_owner.eq(owner),
            deliveries::lease_expires_at.eq(now.saturating_add(lease_ms)),
            deliveries::attempts.eq(deliveries::attempts + 1),
        ))
        .returning(deliveries::id)
        .get_results(c)?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        with_payload()
            .filter(deliveries::id.eq_any(&claimed))
            .order(deliveries::id.asc())
            .select(Delivery::as_select())
            .load(c)
    })?;
    let (ready, bodiless): (Vec<Delivery>, Vec<Delivery>) =
        claimed.into_iter().partition(|d| d.payload.is_some());
    for d in &bodiless {
        bury_bodiless(tx, d)?;
    }
    Ok(ready)
}

/// Dead-letters a claimed delivery whose body is gone: nothing can be sent
/// for it, and it must not hold back the rest of its destination. Its
/// claim is not counted as an attempt (nothing was sent); `last_error`
/// says why ([`BODY_MISSING`]). A redelivery after the body is back (a
/// restore) sends it.
fn bury_bodiless(tx: &mut Tx<'_>, d: &Delivery) -> QueryResult<()> {
    let error = format!(
        "{BODY_MISSING}: neither a copy of its own nor its event {} in the outbox",
        d.event_id
    );
    with_tx!(tx, c => diesel::update(
        deliveries::table
            .filter(deliveries::id.eq(d.id))
            .filter(deliveries::status.eq(status::DELIVERING)),
    )
    .set((
        deliveries::status.eq(status::DEAD),
        deliveries::attempts.eq(deliveries::attempts - 1),
        deliveries::lease_owner.eq(None::<String>),
        deliveries::lease_expires_at.eq(None::<i64>),
        deliveries::last_error.eq(&error),
    ))
    .execute(c))?;
    tracing::error!(
        destination = %d.destination, delivery_id = %d.delivery_id, event_id = %d.event_id,
        "delivery dead: {error} (`stripe-hookd deliveries redeliver {}` once it is back)",
        d.delivery_id
    );
    Ok(())
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry { next_attempt_at: i64 },
    Dead,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead => "dead",
        }
    }
}

/// One finished attempt, as recorded: the delivery's new state and the
/// attempt's history row.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The row id ([`Delivery::id`]).
    pub id: i64,
    pub attempt: history::NewAttempt,
    pub outcome: Outcome,
    /// When the attempt ended (epoch ms).
    pub now: i64,
}

/// Ends attempts, each only while `owner` still holds its lease, with
/// their history rows, in one transaction (the forwarder group-commits
/// them). Returns, per attempt, whether it was recorded (false: the lease
/// expired and another worker took it; no history row then either).
pub(crate) fn finish(
    conn: &mut DbConnection,
    owner: &str,
    batch: &[Finished],
) -> Result<Vec<bool>, StoreError> {
    // Relaxed: an outcome lost to a power cut (never to a crash of the
    // process) leaves the delivery in flight; it is sent again once the
    // lease expires, under the same delivery id (at least once).
    Ok(relaxed_transaction(conn, |tx| finish_in(tx, owner, batch))?)
}

fn finish_in(tx: &mut Tx<'_>, owner: &str, batch: &[Finished]) -> QueryResult<Vec<bool>> {
    let mut recorded = Vec::with_capacity(batch.len());
    for f in batch {
        let changed = finish_one(tx, owner, f)?;
        if changed {
            history::insert(tx, &f.attempt)?;
        }
        recorded.push(changed);
    }
    Ok(recorded)
}

fn finish_one(tx: &mut Tx<'_>, owner: &str, f: &Finished) -> QueryResult<bool> {
    let now = f.now;
    let (new_status, next_at, delivered_at) = match &f.outcome {
        Outcome::Delivered => (status::DELIVERED, None, Some(now)),
        Outcome::Retry { next_attempt_at } => (status::PENDING, Some(*next_attempt_at), None),
        Outcome::Dead => (status::DEAD, None, None),
    };
    let http_status = f.attempt.http_status;
    let error = f.attempt.error.as_deref();
    let changed = with_tx!(tx, c => {
        let mine = deliveries::table
            .filter(deliveries::id.eq(f.id))
            .filter(deliveries::lease_owner.eq(owner))
            .filter(deliveries::status.eq(status::DELIVERING));
        match next_at {
            Some(at) => diesel::update(mine)
                .set((
                    deliveries::status.eq(new_status),
                    deliveries::next_attempt_at.eq(at),
                    deliveries::lease_owner.eq(None::<String>),
                    deliveries::lease_expires_at.eq(None::<i64>),
                    deliveries::last_status.eq(http_status),
                    deliveries::last_error.eq(error),
                ))
                .execute(c),
            None => diesel::update(mine)
                .set((
                    deliveries::status.eq(new_status),
                    deliveries::delivered_at.eq(delivered_at),
                    deliveries::lease_owner.eq(None::<String>),
                    deliveries::lease_expires_at.eq(None::<i64>),
                    deliveries::last_status.eq(http_status),
                    deliveries::last_error.eq(error),
                ))
                .execute(c),
        }
    })?;
    Ok(changed == 1)
}

/// One delivery by its delivery id.
pub fn get(conn: &mut DbConnection, delivery_id: &str) -> Result<Option<Delivery>, StoreError> {
    Ok(super::with_conn!(conn, c => with_payload()
        .filter(deliveries::delivery_id.eq(delivery_id))
        .select(Delivery::as_select())
        .first(c)
        .optional())?)
}

/// Every delivery, oldest first (tests and tools).
pub fn list(conn: &mut DbConnection) -> Result<Vec<Delivery>, StoreError> {
    Ok(super::with_conn!(conn, c => with_payload()
        .order(deliveries::id.asc())
        .select(Delivery::as_select())
        .load(c))?)
}

/// A delivery as the admin API lists it: everything but the body.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = deliveries)]
pub struct DeliverySummary {
    pub id: i64,
    pub delivery_id: String,
    pub destination: String,
    pub event_id: String,
    pub event_type: String,
    pub object_key: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    /// When an operator discarded it (epoch ms); what retention counts from.
    pub discarded_at: Option<i64>,
}

/// Deliveries after id `after`, oldest first, optionally of one destination
/// and status.
pub fn list_filtered(
    conn: &mut DbConnection,
    destination: Option<&str>,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<DeliverySummary>, StoreError> {
    Ok(super::with_conn!(conn, c => {
        let mut query = deliveries::table
            .filter(deliveries::id.gt(after))
            .order(deliveries::id.asc())
            .limit(limit)
            .select(DeliverySummary::as_select())
            .into_boxed();
        if let Some(d) = destination {
            query = query.filter(deliveries::destination.eq(d));
        }
        if let Some(s) = status {
            query = query.filter(deliveries::status.eq(s));
        }
        query.load(c)
    })?)
}

/// What an operator's change of one delivery's status ([`redeliver`],
/// [`discard`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Changed; the status it had before.
    Done(String),
    /// Left as it is: its status (the one it has now) does not allow the
    /// change, e.g. `delivering` (being sent right now).
    Refused(String),
    /// There is no such delivery.
    Missing,
    /// Left as it is: other writers changed its status between each read
    /// and update of [`CHANGE_TRIES`] tries; try again.
    Busy(String),
}

/// How many times an operator's change reads a status and tries the
/// update that expects it, while other writers (Postgres: a claim, another
/// operator) keep changing the row in between.
const CHANGE_TRIES: usize = 3;

/// The status of `delivery_id`, if there is such a delivery.
fn status_of(tx: &mut Tx<'_>, delivery_id: &str) -> QueryResult<Option<String>> {
    with_tx!(tx, c => deliveries::table
        .filter(deliveries::delivery_id.eq(delivery_id))
        .select(deliveries::status)
        .first(c)
        .optional())
}

/// Reads the status, checks it with `allowed` and runs `change` (an
/// update that states the status it expects), again when the row changed
/// between the two statements (on Postgres a claim can commit in between:
/// the update then matches no row and leaves it alone).
fn change_status(
    tx: &mut Tx<'_>,
    delivery_id: &str,
    allowed: impl Fn(&str) -> bool,
    change: impl Fn(&mut Tx<'_>, &str) -> QueryResult<Change>,
) -> QueryResult<Change> {
    let mut now = String::new();
    for _ in 0..CHANGE_TRIES {
        let Some(seen) = status_of(tx, delivery_id)? else {
            return Ok(Change::Missing);
        };
        if !allowed(&seen) {
            return Ok(Change::Refused(seen));
        }
        match change(tx, &seen)? {
            // Changed between the read and the update: read it again.
            Change::Refused(status) | Change::Busy(status) => now = status,
            done_or_missing => return Ok(done_or_missing),
        }
    }
    Ok(Change::Busy(now))
}

/// Whether a delivery of this status may be sent again: any but one being
/// sent right now (a reset would send it twice at once).
fn redeliverable(status: &str) -> bool {
    status != status::DELIVERING
}

/// Sends a delivery again from its first attempt (a fresh budget), unless
/// it is being sent right now (`Refused("delivering")`).
pub fn redeliver(
    conn: &mut DbConnection,
    delivery_id: &str,
    now: i64,
) -> Result<Change, StoreError> {
    Ok(write_transaction(conn, |tx| {
        change_status(tx, delivery_id, redeliverable, |tx, seen| {
            redeliver_expecting(tx, delivery_id, seen, now)
        })
    })?)
}

/// The statement of [`redeliver`]: re-queues `delivery_id` only while its
/// status is still `expected` (what the caller read, a redeliverable one).
/// A row whose status changed since is left as it is, and its status now
/// reported (`Refused`).
pub fn redeliver_expecting(
    tx: &mut Tx<'_>,
    delivery_id: &str,
    expected: &str,
    now: i64,
) -> QueryResult<Change> {
    if !redeliverable(expected) {
        return Ok(Change::Refused(expected.to_owned()));
    }
    let n = with_tx!(tx, c => diesel::update(
        deliveries::table
            .filter(deliveries::delivery_id.eq(delivery_id))
            .filter(deliveries::status.eq(expected)),
    )
    .set((
        deliveries::status.eq(status::PENDING),
        deliveries::attempts.eq(0),
        deliveries::next_attempt_at.eq(now),
        deliveries::created_at.eq(now),
        deliveries::delivered_at.eq(None::<i64>),
        deliveries::discarded_at.eq(None::<i64>),
    ))
    .execute(c))?;
    changed_or_found(tx, delivery_id, expected, n)
}

/// `Done(expected)` when the update changed the row, else what the row is now.
fn changed_or_found(
    tx: &mut Tx<'_>,
    delivery_id: &str,
    expected: &str,
    updated: usize,
) -> QueryResult<Change> {
    if updated == 1 {
        return Ok(Change::Done(expected.to_owned()));
    }
    Ok(status_of(tx, delivery_id)?.map_or(Change::Missing, Change::Refused))
}

/// Whether a delivery of this status may be discarded: a dead one, or a
/// pending one (not yet sent, or waiting for its next attempt).
fn discardable(status: &str) -> bool {
    matches!(status, status::DEAD | status::PENDING)
}

/// Gives up on a dead or pending delivery (`discarded` at `now`, with the
/// reason in `last_error`; the next one of its object is no longer held
/// back by it; pruned `runner.retention_days` after `now`). Any other
/// status (one being sent right now included) is `Refused`.
pub fn discard(
    conn: &mut DbConnection,
    delivery_id: &str,
    reason: &str,
    now: i64,
) -> Result<Change, StoreError> {
    Ok(write_transaction(conn, |tx| {
        change_status(tx, delivery_id, discardable, |tx, seen| {
            discard_expecting(tx, delivery_id, seen, reason, now)
        })
    })?)
}

/// The statement of [`discard`]: discards `delivery_id` only while its
/// status is still `expected` (what the caller read, a discardable one). A
/// row claimed since (`delivering`) is left to its attempt, and its status
/// now reported (`Refused`).
pub fn discard_expecting(
    tx: &mut Tx<'_>,
    delivery_id: &str,
    expected: &str,
    reason: &str,
    now: i64,
) -> QueryResult<Change> {
    if !discardable(expected) {
        return Ok(Change::Refused(expected.to_owned()));
    }
    let n = with_tx!(tx, c => diesel::update(
        deliveries::table
            .filter(deliveries::delivery_id.eq(delivery_id))
            .filter(deliveries::status.eq(expected)),
    )
    .set((
        deliveries::status.eq(status::DISCARDED),
        deliveries::last_error.eq(format!("discarded: {reason}")),
        deliveries::discarded_at.eq(now),
    ))
    .execute(c))?;
    changed_or_found(tx, delivery_id, expected, n)
}

/// Which deliveries a redelivery by filter takes: all of one status
/// (`dead`, `delivered` or `discarded`: one that leaves the status once
/// re-queued, so repeated batches end), optionally of one destination, one
/// event type (a trailing `*` matches a prefix), created in `[since, until)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveryFilter {
    pub status: String,
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub event_type: Option<String>,
    /// Epoch ms.
    #[serde(default)]
    pub since: Option<i64>,
    /// Epoch ms.
    #[serde(default)]
    pub until: Option<i64>,
}

impl DeliveryFilter {
    /// Refuses a status a redelivery would match again.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self.status.as_str() {
            status::DEAD | status::DELIVERED | status::DISCARDED => Ok(()),
            other => Err(format!(
                "status {other:?}: redeliver by filter takes dead, delivered or discarded deliveries"
            )),
        }
    }
}

/// Re-queues (from attempt 1, like [`redeliver`]) up to `limit` deliveries
/// matching `filter`, oldest first. Returns how many; call again while it
/// returns `limit`.
pub(crate) fn redeliver_matching(
    conn: &mut DbConnection,
    filter: &DeliveryFilter,
    now: i64,
    limit: i64,
) -> Result<usize, StoreError> {
    write_transaction(conn, |tx| {
        let ids: Vec<i64> = with_tx!(tx, c => {
            let mut query = deliveries::table
                .filter(deliveries::status.eq(&filter.status))
                .order(deliveries::id.asc())
                .limit(limit)
                .select(deliveries::id)
                .into_boxed();
            if let Some(d) = &filter.destination {
                query = query.filter(deliveries::destination.eq(d));
            }
            match filter.event_type.as_deref().map(|t| (t, t.strip_suffix('*'))) {
                Some((_, Some(prefix))) => {
                    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    query = query.filter(deliveries::event_type.like(format!("{escaped}%")).escape('\\'));
                }
                Some((t, None)) => query = query.filter(deliveries::event_type.eq(t.to_owned())),
                None => {}
            }
            if let Some(t) = filter.since {
                query = query.filter(deliveries::created_at.ge(t));
            }
            if let Some(t) = filter.until {
                query = query.filter(deliveries::created_at.lt(t));
            }
            query.load(c)
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let n = with_tx!(tx, c => diesel::update(
            deliveries::table
                .filter(deliveries::id.eq_any(&ids))
                .filter(deliveries::status.eq(&filter.status)),
        )
        .set((
            deliveries::status.eq(status::PENDING),
            deliveries::attempts.eq(0),
            deliveries::next_attempt_at.eq(now),
            deliveries::created_at.eq(now),
            deliveries::delivered_at.eq(None::<i64>),
            deliveries::discarded_at.eq(None::<i64>),
        ))
        .execute(c))?;
        Ok(n)
    })
}
