//! Inspecting the outbox and the operator's actions on it: list and show
//! events with their attempts, replay, discard dead letters, counts for
//! metrics. Shared by the admin API and the CLI.

use std::time::Duration;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::outbox::{self, EventStatus, StoredEvent};
use super::schema::{event_attempts, webhook_events};
use super::{with_conn, with_tx, write_transaction, DbConnection, EpochMs, StoreError};

/// Which events an operator means. Empty fields match everything.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    pub status: Option<String>,
    /// An exact type, or a prefix ending in `*` (`invoice.*`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The Stripe object id (`sub_…`, `in_…`).
    pub object: Option<String>,
    /// One event by its Stripe id.
    pub event_id: Option<String>,
    /// Received at or after.
    pub since: Option<EpochMs>,
    /// Received before.
    pub until: Option<EpochMs>,
    /// Pagination: only events after this row id.
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

impl EventFilter {
    pub fn validate(&self) -> Result<(), String> {
        self.status()?;
        if self.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
            return Err("limit must be between 1 and 1000".to_owned());
        }
        Ok(())
    }

    /// Whether the filter names no events at all (so it would match the
    /// whole outbox): no status, type, object, event id or time bound.
    /// `limit` and `after` only page through a selection.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.event_type.is_none()
            && self.object.is_none()
            && self.event_id.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }

    /// The status asked for, if any.
    pub fn status(&self) -> Result<Option<EventStatus>, String> {
        self.status
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: super::outbox::UnknownStatus| e.to_string())
    }

    fn type_pattern(&self) -> Option<(bool, String)> {
        self.event_type.as_ref().map(|t| match t.strip_suffix('*') {
            Some(prefix) => {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                (true, format!("{escaped}%"))
            }
            None => (false, t.clone()),
        })
    }
}

/// An event without its payload, for lists.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = webhook_events)]
pub(crate) struct EventSummary {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub object_id: Option<String>,
    pub livemode: bool,
    pub status: EventStatus,
    pub attempts: i32,
    pub received_at: EpochMs,
    pub next_attempt_at: EpochMs,
    pub processed_at: Option<EpochMs>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = event_attempts)]
pub struct ProcessingAttempt {
    pub attempt: i32,
    pub worker: String,
    pub started_at: EpochMs,
    pub finished_at: Option<EpochMs>,
    pub outcome: Option<String>,
    pub error: Option<String>,
}

/// Applies `$filter` to a boxed query over `webhook_events`.
macro_rules! filtered {
    ($filter:expr) => {{
        let f: &EventFilter = $filter;
        let mut q = webhook_events::table.into_boxed();
        if let Some(s) = &f.status {
            q = q.filter(webhook_events::status.eq(s.clone()));
        }
        match f.type_pattern() {
            Some((true, pattern)) => {
                q = q.filter(webhook_events::event_type.like(pattern).escape('\\'))
            }
            Some((false, exact)) => q = q.filter(webhook_events::event_type.eq(exact)),
            None => {}
        }
        if let Some(o) = &f.object {
            q = q.filter(webhook_events::object_id.eq(o.clone()));
        }
        if let Some(id) = &f.event_id {
            q = q.filter(webhook_events::event_id.eq(id.clone()));
        }
        if let Some(t) = f.since {
            q = q.filter(webhook_events::received_at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(webhook_events::received_at.lt(t));
        }
        if let Some(a) = f.after {
            q = q.filter(webhook_events::id.gt(a));
        }
        q
    }};
}

/// Events matching `filter`, oldest first, at most `filter.limit` (default 100).
pub(crate) fn list(
    conn: &mut DbConnection,
    filter: &EventFilter,
) -> Result<Vec<EventSummary>, StoreError> {
    let limit = filter.limit.unwrap_or(100);
    let rows = with_conn!(conn, c => filtered!(filter)
        .order(webhook_events::id.asc())
        .limit(limit)
        .select(EventSummary::as_select())
        .load(c))?;
    Ok(rows)
}

/// One event with its payload, and every attempt, oldest first.
pub fn show(
    conn: &mut DbConnection,
    event_id: &str,
) -> Result<Option<(StoredEvent, Vec<ProcessingAttempt>)>, StoreError> {
    let Some(event) = super::outbox::get(conn, event_id)? else {
        return Ok(None);
    };
    let attempts = with_conn!(conn, c => event_attempts::table
        .filter(event_attempts::event_id.eq(event_id))
        .order(event_attempts::id.asc())
        .select(ProcessingAttempt::as_select())
        .load(c))?;
    Ok(Some((event, attempts)))
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Replayed {
    /// Re-queued event ids.
    pub replayed: Vec<String>,
    /// Matching events left alone because a worker holds them right now.
    pub in_flight: Vec<String>,
}

/// Rows re-queued per replay transaction: each batch holds the write lock
/// (SQLite's is database-wide) for a few milliseconds only.
pub(crate) const REPLAY_BATCH: usize = 500;

/// The shortest pause between two replay batches, so that a writer waiting
/// for the lock (the intake's) gets it between them.
const REPLAY_PAUSE: Duration = Duration::from_millis(10);

/// Re-queues the events matching `filter`, oldest first, at most
/// `filter.limit` of them (every match when there is no limit), starting
/// after row `filter.after`: each becomes `pending`, due now, with a fresh
/// retry budget and a `replayed` line in its history. Events in flight are
/// skipped (reported). Replaying twice does no harm: handlers re-fetch the
/// current object.
///
/// The work is done in transactions of [`REPLAY_BATCH`] rows, pausing
/// between them at least as long as the last one took, so a bulk replay
/// never keeps the intake from committing. An empty filter means the whole
/// outbox: callers that take a filter from an operator refuse it first (see
/// [`EventFilter::is_empty`]).
pub fn replay(
    conn: &mut DbConnection,
    filter: &EventFilter,
    actor: &str,
    now: EpochMs,
) -> Result<Replayed, StoreError> {
    replay_in_batches(conn, filter, actor, now, REPLAY_BATCH)
}

/// [`replay`] with `batch` rows per transaction.
fn replay_in_batches(
    conn: &mut DbConnection,
    filter: &EventFilter,
    actor: &str,
    now: EpochMs,
    batch: usize,
) -> Result<Replayed, StoreError> {
    let mut remaining = filter
        .limit
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(0));
    let mut page = filter.clone();
    let mut done = Replayed::default();
    let mut pause = None;
    while remaining > 0 {
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
        let wanted = batch.min(remaining).max(1);
        // Read outside the write transaction: a filter that matches few rows
        // may scan many, and readers do not hold the write lock.
        let rows: Vec<(i64, String)> = with_conn!(conn, c => filtered!(&page)
            .order(webhook_events::id.asc())
            .limit(i64::try_from(wanted).unwrap_or(i64::MAX))
            .select((webhook_events::id, webhook_events::event_id))
            .load(c))?;
        let Some(&(last, _)) = rows.last() else {
            break;
        };
        page.after = Some(last);
        let last_page = rows.len() < wanted;
        let ids: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
        let started = std::time::Instant::now();
        let (replayed, in_flight) = replay_batch(conn, &ids, filter.status.as_deref(), actor, now)?;
        remaining = remaining.saturating_sub(replayed.len());
        done.replayed.extend(replayed);
        done.in_flight.extend(in_flight);
        if last_page {
            break;
        }
        pause = Some(started.elapsed().max(REPLAY_PAUSE));
    }
    Ok(done)
}

/// One replay transaction over `ids`: re-checks their status under the
/// write lock (a worker may have claimed them, or they may no longer have
/// the status asked for) and re-queues the rest.
fn replay_batch(
    conn: &mut DbConnection,
    ids: &[String],
    wanted_status: Option<&str>,
    actor: &str,
    now: EpochMs,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let result = write_transaction(
        conn,
        |tx| -> Result<(Vec<String>, Vec<String>), diesel::result::Error> {
            let current: Vec<(i64, String, EventStatus)> = with_tx!(tx, c => webhook_events::table
                .filter(webhook_events::event_id.eq_any(ids))
                .order(webhook_events::id.asc())
                .select((webhook_events::id, webhook_events::event_id, webhook_events::status))
                .load(c))?;
            let mut requeue = Vec::new();
            let mut in_flight = Vec::new();
            for (_, id, status) in current {
                if status == EventStatus::Processing {
                    in_flight.push(id);
                } else if wanted_status.is_none_or(|w| status == w) {
                    requeue.push(id);
                }
            }
            if requeue.is_empty() {
                return Ok((requeue, in_flight));
            }
            with_tx!(tx, c => {
                diesel::update(
                    webhook_events::table
                        .filter(webhook_events::event_id.eq_any(&requeue))
                        .filter(webhook_events::status.ne(EventStatus::Processing)),
                )
                .set((
                    webhook_events::status.eq(EventStatus::Pending),
                    webhook_events::attempts.eq(0),
                    webhook_events::next_attempt_at.eq(now),
                    webhook_events::queued_at.eq(now),
                    webhook_events::priority.eq(outbox::BACKGROUND),
                    webhook_events::lease_owner.eq(None::<String>),
                    webhook_events::lease_expires_at.eq(None::<EpochMs>),
                    webhook_events::last_error.eq(None::<String>),
                ))
                .execute(c)?;
                let rows: Vec<_> = requeue
                    .iter()
                    .map(|id| {
                        (
                            event_attempts::event_id.eq(id.as_str()),
                            event_attempts::attempt.eq(0),
                            event_attempts::worker.eq(actor),
                            event_attempts::started_at.eq(now),
                            event_attempts::finished_at.eq(Some(now)),
                            event_attempts::outcome.eq(Some("replayed")),
                        )
                    })
                    .collect();
                diesel::insert_into(event_attempts::table).values(&rows).execute(c)
            })?;
            Ok((requeue, in_flight))
        },
    )?;
    Ok(result)
}

/// Why a discard was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiscardError {
    #[error("no event {0}")]
    NotFound(String),
    #[error("event {id} is {status}: only dead events can be discarded")]
    NotDead { id: String, status: EventStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Marks a dead event `discarded` with the operator's reason (kept, never retried).
pub(crate) fn discard(
    conn: &mut DbConnection,
    event_id: &str,
    reason: &str,
    actor: &str,
    now: EpochMs,
) -> Result<(), DiscardError> {
    let current = super::outbox::get(conn, event_id)?
        .ok_or_else(|| DiscardError::NotFound(event_id.to_owned()))?;
    if current.status != EventStatus::Dead {
        return Err(DiscardError::NotDead {
            id: event_id.to_owned(),
            status: current.status,
        });
    }
    let note = format!("discarded by {actor}: {reason}");
    write_transaction(conn, |tx| -> Result<(), diesel::result::Error> {
        with_tx!(tx, c => {
            diesel::update(webhook_events::table.filter(webhook_events::event_id.eq(event_id)).filter(webhook_events::status.eq(EventStatus::Dead)))
                .set((webhook_events::status.eq(EventStatus::Discarded), webhook_events::last_error.eq(&note), webhook_events::processed_at.eq(now)))
                .execute(c)?;
            diesel::insert_into(event_attempts::table)
                .values((
                    event_attempts::event_id.eq(event_id),
                    event_attempts::attempt.eq(0),
                    event_attempts::worker.eq(actor),
                    event_attempts::started_at.eq(now),
                    event_attempts::finished_at.eq(Some(now)),
                    event_attempts::outcome.eq(Some("discarded")),
                    event_attempts::error.eq(Some(reason)),
                ))
                .execute(c)
        })?;
        Ok(())
    })
    .map_err(|e: diesel::result::Error| DiscardError::Store(e.into()))
}

/// Received-at of the oldest event waiting to be processed, if any.
pub(crate) fn oldest_pending(conn: &mut DbConnection) -> Result<Option<i64>, StoreError> {
    let t = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::status.eq_any([EventStatus::Pending, EventStatus::Processing]))
        .select(diesel::dsl::min(webhook_events::received_at))
        .first::<Option<i64>>(c))?;
    Ok(t)
}

/// The id of the newest stored event (0 when there is none): where a tail
/// of the stream starts.
pub(crate) fn newest_id(conn: &mut DbConnection) -> Result<i64, StoreError> {
    let max: Option<i64> = with_conn!(conn, c => webhook_events::table
        .select(diesel::dsl::max(webhook_events::id))
        .first(c))?;
    Ok(max.unwrap_or(0))
}
