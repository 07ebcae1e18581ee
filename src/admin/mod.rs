//! The admin API: a separate listener (default 127.0.0.1:9091), never the
//! public one; every route but `/healthz` and the inspector's page needs
//! `Authorization: Bearer <admin_token>` or an inspector session (see
//! `auth.rs` and `ui/`).
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/events?status=&type=&object=&since=&until=&after=&limit=` | list events |
//! | `GET /v1/events/{id}` | one event, its payload and every attempt |
//! | `POST /v1/events/{id}/replay` | re-queue one event |
//! | `POST /v1/replay` (JSON filter, `limit` optional) | re-queue the matching events (an empty filter is refused) |
//! | `GET /v1/dead` | dead letters |
//! | `POST /v1/dead/{id}/retry` | re-queue a dead event |
//! | `POST /v1/dead/{id}/discard` (`{"reason":…}`) | give up on it, with a reason |
//! | `POST /v1/resync/{object_id}?account=` | fetch one object from Stripe now and reconcile it (`account`: from this Connect account; default: the record's own) |
//! | `POST /v1/reconcile` (`{"dry_run":…}`) | start the drift sweep (a job) |
//! | `POST /v1/catch-up` (`{"since":…,"only_failed":…,"dry_run":…}`) | start a catch-up (a job) |
//! | `GET /v1/jobs/{id}` | a job's progress and result (bounded: counts and the first entries) |
//! | `GET /v1/jobs/{id}/items?offset=&limit=` | every entry of a job's result, paged (the sweep's drift) |
//! | `GET /v1/access?customer=` / `?reference=` | who has access now, for applications: its own token (`access_token`), not the admin token (see `access.rs`) |
//! | `GET /metrics` | Prometheus text format |
//! | `/`, `/ui/…` | the browser inspector (see `ui/`) |
//! | `/v1/customers/{id}/features…` | a customer's Stripe Entitlements features (see `features.rs`) |
//! | `/v1/destinations…`, `/v1/deliveries…` | forwarding: destinations with their health, pause/resume; deliveries, their attempts, redelivery (see `deliveries.rs`) |

pub(crate) mod access;
pub(crate) mod auth;
pub(crate) mod deliveries;
mod error;
pub(crate) mod features;
pub(crate) mod gauges;
pub(crate) mod jobs;
pub(crate) mod ui;

use std::net::TcpListener;

use actix_web::http::StatusCode;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::metrics::Activity;
use crate::store::events::{self, EventFilter};
use crate::store::outbox::{EventStatus, StoredEvent};
use crate::store::{now_ms, EpochMs, Store};

pub(crate) use error::error;
pub(crate) use error::AdminError;

pub(crate) struct AdminState {
    pub store: Store,
    /// The admin token as configured now (a reload may rotate it).
    pub token: auth::LiveToken,
    /// The digest of the access token (`GET /v1/access`); `None`: not configured.
    pub access_token: Option<[u8; 32]>,
    pub metrics: PrometheusHandle,
    pub activity: Activity,
    /// The Stripe-backed operations; `None` without an API key.
    pub reconcile: Option<std::sync::Arc<crate::reconcile::ReconcileHandler>>,
    pub jobs: jobs::Jobs,
    /// How long an inspector session lasts (`admin_session_hours`).
    pub session_ttl: std::time::Duration,
    /// The forwarding destinations as configured now.
    pub destinations: crate::forward::DestinationSource,
}

/// Builds the admin server on `listener`.
pub(crate) fn server(
    listener: TcpListener,
    state: AdminState,
) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(state);
    let ui_state = web::Data::new(ui::UiState::default());
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(ui_state.clone())
            .app_data(web::JsonConfig::default().error_handler(|err, _| {
                let message = err.to_string();
                actix_web::error::InternalError::from_response(
                    err,
                    error(StatusCode::BAD_REQUEST, "invalid_body", &message),
                )
                .into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                let message = err.to_string();
                actix_web::error::InternalError::from_response(
                    err,
                    error(StatusCode::BAD_REQUEST, "invalid_query", &message),
                )
                .into()
            }))
            .route(
                "/healthz",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
            )
            .configure(ui::public_routes)
            // Before the admin scope: its own token, never the admin one.
            .route("/v1/access", web::get().to(access::get))
            .service(
                web::scope("")
                    .wrap(middleware::from_fn(auth::require_token))
                    .route("/metrics", web::get().to(metrics))
                    .route("/v1/events", web::get().to(list_events))
                    .route("/v1/events/{id}", web::get().to(show_event))
                    .route("/v1/events/{id}/replay", web::post().to(replay_one))
                    .route("/v1/replay", web::post().to(replay_filter))
                    .route("/v1/dead", web::get().to(list_dead))
                    .route("/v1/dead/{id}/retry", web::post().to(retry_dead))
                    .route("/v1/dead/{id}/discard", web::post().to(discard_dead))
                    .route("/v1/resync/{id}", web::post().to(resync))
                    .route("/v1/reconcile", web::post().to(start_sweep))
                    .route("/v1/catch-up", web::post().to(start_catch_up))
                    .route("/v1/jobs/{id}", web::get().to(job))
                    .route("/v1/jobs/{id}/items", web::get().to(job_items))
                    .configure(deliveries::routes)
                    .configure(ui::routes)
                    .configure(features::routes)
                    .default_service(web::to(|| async {
                        error(
                            StatusCode::NOT_FOUND,
                            "unknown_route",
                            "No such admin route",
                        )
                    })),
            )
    })
    .workers(1)
    // The inspector's event streams stay open; a stop does not wait long on them.
    .shutdown_timeout(2)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Runs blocking store work off the reactor.
async fn blocking<T, E>(
    state: &web::Data<AdminState>,
    f: impl FnOnce(&mut crate::store::DbConnection) -> Result<T, E> + Send + 'static,
) -> Result<T, AdminError>
where
    T: Send + 'static,
    E: Into<AdminError> + Send + 'static,
{
    let store = state.store.clone();
    web::block(move || {
        let mut conn = store.conn().map_err(AdminError::from)?;
        f(&mut conn).map_err(Into::into)
    })
    .await?
}

async fn metrics(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let now = now_ms();
    let activity = state.activity.clone();
    let this = state.clone();
    let gauges = blocking(&state, move |c| {
        let mut out = gauges::render(c, &activity, now)?;
        out.push_str(&deliveries::gauges(&this, c, now)?);
        Ok::<_, crate::store::StoreError>(out)
    })
    .await?;
    let mut body = state.metrics.render();
    body.push_str(&gauges);
    if let Some(ops) = &state.reconcile {
        body.push_str(&gauges::budget(&ops.client().budget()));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body))
}

fn validated(filter: EventFilter) -> Result<EventFilter, AdminError> {
    filter.validate().map_err(AdminError::InvalidFilter)?;
    Ok(filter)
}

async fn list_events(
    state: web::Data<AdminState>,
    query: web::Query<EventFilter>,
) -> Result<HttpResponse, AdminError> {
    let filter = validated(query.into_inner())?;
    let limit = filter.limit.unwrap_or(100);
    let rows = blocking(&state, move |c| events::list(c, &filter)).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"events": rows, "next_after": next})))
}

async fn show_event(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let (event, attempts) = blocking(&state, move |c| events::show(c, &lookup))
        .await?
        .ok_or(AdminError::NoSuchEvent(id))?;
    let payload: serde_json::Value = serde_json::from_str(&event.payload)
        .unwrap_or(serde_json::Value::String(event.payload.clone()));
    Ok(HttpResponse::Ok().json(json!({"event": event, "payload": payload, "attempts": attempts})))
}

async fn replay(
    state: &web::Data<AdminState>,
    filter: EventFilter,
) -> Result<HttpResponse, AdminError> {
    let now = EpochMs::now();
    let done = blocking(state, move |c| events::replay(c, &filter, "admin-api", now)).await?;
    tracing::info!(
        replayed = done.replayed.len(),
        in_flight = done.in_flight.len(),
        "events replayed"
    );
    Ok(HttpResponse::Ok().json(done))
}

/// One event by id, or the 404 to answer.
async fn find_event(state: &web::Data<AdminState>, id: &str) -> Result<StoredEvent, AdminError> {
    let lookup = id.to_owned();
    blocking(state, move |c| crate::store::outbox::get(c, &lookup))
        .await?
        .ok_or_else(|| AdminError::NoSuchEvent(id.to_owned()))
}

async fn replay_one(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    find_event(&state, &id).await?;
    let filter = EventFilter {
        event_id: Some(id),
        ..EventFilter::default()
    };
    replay(&state, filter).await
}

async fn replay_filter(
    state: web::Data<AdminState>,
    body: web::Json<EventFilter>,
) -> Result<HttpResponse, AdminError> {
    let filter = validated(body.into_inner())?;
    if filter.is_empty() {
        return Err(AdminError::EmptyFilter);
    }
    replay(&state, filter).await
}

async fn list_dead(
    state: web::Data<AdminState>,
    query: web::Query<EventFilter>,
) -> Result<HttpResponse, AdminError> {
    let mut filter = query.into_inner();
    filter.status = Some(EventStatus::Dead.as_str().to_owned());
    list_events(state, web::Query(filter)).await
}

async fn retry_dead(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let event = find_event(&state, &id).await?;
    if event.status != EventStatus::Dead {
        return Err(AdminError::NotDead {
            id,
            status: event.status,
        });
    }
    let filter = EventFilter {
        event_id: Some(id),
        status: Some(EventStatus::Dead.as_str().to_owned()),
        ..EventFilter::default()
    };
    replay(&state, filter).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    reason: String,
}

async fn discard_dead(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<DiscardBody>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let reason = body.into_inner().reason;
    if reason.trim().is_empty() {
        return Err(AdminError::ReasonRequired);
    }
    let (lookup, why) = (id.clone(), reason.clone());
    blocking(&state, move |c| {
        events::discard(c, &lookup, &why, "admin-api", EpochMs::now())
    })
    .await?;
    tracing::warn!(event_id = %id, reason = %reason, "dead event discarded");
    Ok(HttpResponse::Ok().json(json!({"discarded": id, "reason": reason})))
}

fn reconcile_handler(
    state: &AdminState,
) -> Result<std::sync::Arc<crate::reconcile::ReconcileHandler>, AdminError> {
    state.reconcile.clone().ok_or(AdminError::NoApiKey)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResyncQuery {
    /// A Connect account to fetch from (default: the record's own).
    account: Option<String>,
}

async fn resync(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    query: web::Query<ResyncQuery>,
) -> Result<HttpResponse, AdminError> {
    let handler = reconcile_handler(&state)?;
    let id = id.into_inner();
    let account = query.into_inner().account;
    let records = handler
        .resync_in(&state.store, &id, account.as_deref())
        .await?;
    tracing::info!(object = %id, records = records.len(), "object resynced from Stripe");
    let written: Vec<String> = records.iter().map(|r| r.describe()).collect();
    Ok(HttpResponse::Ok().json(json!({"resynced": id, "written": written})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SweepBody {
    #[serde(default)]
    dry_run: bool,
}

async fn start_sweep(
    state: web::Data<AdminState>,
    body: Option<web::Json<SweepBody>>,
) -> Result<HttpResponse, AdminError> {
    let handler = reconcile_handler(&state)?;
    let dry_run = body.map(|b| b.into_inner().dry_run).unwrap_or(false);
    let (jobs, store) = (state.jobs.clone(), state.store.clone());
    let started = state.jobs.spawn("reconcile", move |id| async move {
        let all_entries = jobs.clone();
        let progress = move |p: &crate::reconcile::sweep::SweepProgress| {
            jobs.progress(id, serde_json::to_value(p).unwrap_or_default());
        };
        metrics::gauge!(crate::metrics::SWEEP_RUNNING).set(1.0);
        let result = crate::reconcile::sweep::run(&handler, &store, dry_run, &progress).await;
        metrics::gauge!(crate::metrics::SWEEP_RUNNING).set(0.0);
        if let Ok(report) = &result {
            let items = report
                .all_drift
                .iter()
                .filter_map(|d| serde_json::to_value(d).ok());
            all_entries.set_items(id, items.collect());
        }
        result
    });
    let id = started.map_err(|job| AdminError::AlreadyRunning {
        what: "A sweep",
        job,
    })?;
    Ok(HttpResponse::Accepted().json(json!({"job": id, "kind": "reconcile", "dry_run": dry_run})))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CatchUpBody {
    /// Unix seconds; default 3 days ago.
    since: Option<i64>,
    #[serde(default)]
    only_failed: bool,
    #[serde(default)]
    dry_run: bool,
}

async fn start_catch_up(
    state: web::Data<AdminState>,
    body: Option<web::Json<CatchUpBody>>,
) -> Result<HttpResponse, AdminError> {
    let handler = reconcile_handler(&state)?;
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    let options = crate::reconcile::catchup::CatchUpOptions {
        since: body
            .since
            .unwrap_or(EpochMs::now().as_secs() - 3 * 24 * 3600),
        only_failed: body.only_failed,
        dry_run: body.dry_run,
        thin: handler.lists_thin_events(),
    };
    let store = state.store.clone();
    let started = state.jobs.spawn("catch-up", move |_| async move {
        crate::reconcile::connect::catch_up(&handler, &store, &options).await
    });
    let id = started.map_err(|job| AdminError::AlreadyRunning {
        what: "A catch-up",
        job,
    })?;
    Ok(HttpResponse::Accepted()
        .json(json!({"job": id, "kind": "catch-up", "dry_run": body.dry_run})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemsQuery {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

/// The entries of a job's report, a page at a time.
async fn job_items(
    state: web::Data<AdminState>,
    id: web::Path<u64>,
    query: web::Query<ItemsQuery>,
) -> Result<HttpResponse, AdminError> {
    let ItemsQuery { offset, limit } = query.into_inner();
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let (items, total) = state
        .jobs
        .items(id.into_inner(), offset, limit)
        .ok_or(AdminError::NoSuchJob)?;
    let next = (offset + items.len() < total).then_some(offset + items.len());
    Ok(HttpResponse::Ok()
        .json(json!({"items": items, "total": total, "offset": offset, "next_offset": next})))
}

async fn job(state: web::Data<AdminState>, id: web::Path<u64>) -> Result<HttpResponse, AdminError> {
    let job = state
        .jobs
        .get(id.into_inner())
        .ok_or(AdminError::NoSuchJob)?;
    Ok(HttpResponse::Ok().json(job))
}
