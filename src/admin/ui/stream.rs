//! `GET /ui/stream`: server-sent events, one per new outbox row.
//!
//! The stream polls the outbox for ids above the last one sent (every
//! [`POLL`]), so it sees events stored by any instance sharing the
//! database. Each message carries the row id as its SSE id: a browser that
//! reconnects (after a restart, say) sends `Last-Event-ID` and misses
//! nothing. A stream lasts at most [`LIFETIME`], then the browser
//! reconnects by itself; the admin server's shutdown does not wait on it.
//!
//! Every [`RECHECK`] the stream asks again whether what opened it still
//! holds: the session is still in the database, unexpired and started with
//! the configured admin token (sign-out, sign-out everywhere, expiry and a
//! token rotation all end it), or the bearer token is still the configured
//! one. When not, it sends `event: signed_out` and ends.

use std::collections::VecDeque;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::super::auth::Principal;
use super::super::{AdminError, AdminState};
use super::{principal, sessions};
use crate::store::events::{self, EventFilter};
use crate::store::{Store, StoreError};

/// How often the outbox is polled for new rows.
pub(super) const POLL: Duration = Duration::from_millis(300);
/// How long one stream lasts before the browser reconnects.
const LIFETIME: Duration = Duration::from_secs(300);
/// How often the stream checks that its session (or token) still holds.
pub(super) const RECHECK: Duration = Duration::from_secs(2);
/// A comment line every this many idle polls keeps proxies from closing it.
const KEEPALIVE_POLLS: u32 = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    /// Start after this row id (default: the newest now, or Last-Event-ID).
    after: Option<i64>,
}

struct Tail {
    store: Store,
    last: i64,
    queued: VecDeque<Bytes>,
    ticker: tokio::time::Interval,
    idle: u32,
    ends: tokio::time::Instant,
    /// What opened the stream, checked again at `recheck_at`.
    opened_by: Opener,
    state: web::Data<AdminState>,
    recheck_at: tokio::time::Instant,
    /// Set once the stream has said `signed_out`: it ends after that.
    closing: bool,
}

/// What let the stream open.
#[derive(Clone)]
enum Opener {
    /// The session with this id hash.
    Session(String),
    /// The bearer token with this digest (the configured one then).
    Bearer([u8; 32]),
}

/// Whether what opened the stream still lets it go on: the session is in
/// the database, unexpired, with the configured token's fingerprint; or
/// the bearer's token is still the configured one.
fn still_allowed(state: &AdminState, opened_by: &Opener) -> Result<bool, StoreError> {
    let token = state.token.get();
    match opened_by {
        Opener::Bearer(digest) => Ok(digest == token.digest()),
        Opener::Session(hash) => {
            let mut conn = state.store.conn()?;
            let found =
                sessions::find(&mut conn, hash, token.fingerprint(), crate::store::now_ms())?;
            Ok(found.is_some())
        }
    }
}

fn newest_id(store: &Store) -> Result<i64, StoreError> {
    events::newest_id(&mut *store.conn()?)
}

fn after(store: &Store, last: i64) -> Result<Vec<events::EventSummary>, StoreError> {
    let mut conn = store.conn()?;
    events::list(
        &mut conn,
        &EventFilter {
            after: Some(last),
            limit: Some(200),
            ..EventFilter::default()
        },
    )
}

/// Polls until there is something to send; `None` ends the stream.
async fn next(mut t: Tail) -> Option<(Result<Bytes, actix_web::Error>, Tail)> {
    loop {
        if let Some(chunk) = t.queued.pop_front() {
            return Some((Ok(chunk), t));
        }
        if t.closing || tokio::time::Instant::now() >= t.ends {
            return None;
        }
        t.ticker.tick().await;
        if tokio::time::Instant::now() >= t.recheck_at {
            t.recheck_at = tokio::time::Instant::now() + RECHECK;
            let (state, opened_by) = (t.state.clone(), t.opened_by.clone());
            match web::block(move || still_allowed(&state, &opened_by)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::info!(
                        outcome = "ended",
                        reason = "signed_out",
                        "inspector stream ended: its session or token no longer holds"
                    );
                    t.closing = true;
                    t.queued.clear();
                    t.queued
                        .push_back(Bytes::from_static(b"event: signed_out\ndata: {}\n\n"));
                    continue;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "inspector stream: the session check failed; the browser reconnects");
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inspector stream: the session check could not run; the browser reconnects");
                    return None;
                }
            }
        }
        let (store, last) = (t.store.clone(), t.last);
        let rows = match web::block(move || after(&store, last)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "inspector stream: the outbox poll failed; the browser reconnects");
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "inspector stream: the outbox poll could not run");
                return None;
            }
        };
        if rows.is_empty() {
            t.idle += 1;
            if t.idle >= KEEPALIVE_POLLS {
                t.idle = 0;
                t.queued.push_back(Bytes::from_static(b": keepalive\n\n"));
            }
            continue;
        }
        t.idle = 0;
        for row in rows {
            t.last = t.last.max(row.id);
            let data = serde_json::to_string(&row).unwrap_or_default();
            t.queued.push_back(Bytes::from(format!(
                "id: {}\nevent: event\ndata: {data}\n\n",
                row.id
            )));
        }
    }
}

pub(super) async fn stream(
    req: HttpRequest,
    state: web::Data<AdminState>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, AdminError> {
    let resumed = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let last = match resumed.or(query.after) {
        Some(id) => id,
        None => {
            let store = state.store.clone();
            web::block(move || newest_id(&store)).await??
        }
    };
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let opened_by = match principal(&req) {
        Some(Principal::Session(s)) => Opener::Session(s.id_hash),
        // The middleware let it through on the configured token.
        _ => Opener::Bearer(*state.token.get().digest()),
    };
    let hello = format!("retry: 1000\nevent: hello\ndata: {{\"after\":{last}}}\n\n");
    let tail = Tail {
        store: state.store.clone(),
        last,
        queued: VecDeque::from([Bytes::from(hello)]),
        ticker,
        idle: 0,
        ends: tokio::time::Instant::now() + LIFETIME,
        opened_by,
        state: state.clone(),
        recheck_at: tokio::time::Instant::now() + RECHECK,
        closing: false,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures_util::stream::unfold(tail, next)))
}
