//! The admin API: a separate listener (default 127.0.0.1:9091), never the
//! public one; every route but `/healthz` needs `Authorization: Bearer
//! <admin_token>`.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/events?status=&type=&object=&since=&until=&after=&limit=` | list events |
//! | `GET /v1/events/{id}` | one event, its payload and every attempt |
//! | `POST /v1/events/{id}/replay` | re-queue one event |
//! | `POST /v1/replay` (JSON filter) | re-queue every matching event |
//! | `GET /v1/dead` | dead letters |
//! | `POST /v1/dead/{id}/retry` | re-queue a dead event |
//! | `POST /v1/dead/{id}/discard` (`{"reason":…}`) | give up on it, with a reason |
//! | `POST /v1/resync/{object_id}` | fetch one object from Stripe now and reconcile it |
//! | `POST /v1/reconcile` (`{"dry_run":…}`) | start the drift sweep (a job) |
//! | `POST /v1/catch-up` (`{"since":…,"only_failed":…,"dry_run":…}`) | start a catch-up (a job) |
//! | `GET /v1/jobs/{id}` | a job's progress and result |
//! | `GET /metrics` | Prometheus text format |
//! | `/v1/deliveries…` | forwarding deliveries (see `deliveries.rs`) |

pub mod auth;
pub mod deliveries;
pub mod gauges;
pub mod jobs;

use std::net::TcpListener;

use actix_web::http::StatusCode;
use actix_web::{middleware, web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;
use serde_json::json;

use crate::metrics::Activity;
use crate::store::events::{self, EventFilter};
use crate::store::outbox::status;
use crate::store::{now_ms, Store};

pub struct AdminState {
    pub store: Store,
    pub token: [u8; 32],
    pub metrics: PrometheusHandle,
    pub activity: Activity,
    /// The Stripe-backed operations; `None` without an API key.
    pub reconcile: Option<std::sync::Arc<crate::reconcile::ReconcileHandler>>,
    pub jobs: jobs::Jobs,
}

/// Builds the admin server on `listener`.
pub fn server(listener: TcpListener, state: AdminState) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(state);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
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
                    .configure(deliveries::routes)
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
    .disable_signals()
    .listen(listener)?
    .run())
}

pub fn error(status: StatusCode, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"reason": reason, "message": message}}))
}

fn internal(e: impl std::fmt::Display) -> HttpResponse {
    tracing::error!(error = %e, "admin request failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        &e.to_string(),
    )
}

/// Runs blocking store work off the reactor.
async fn blocking<T: Send + 'static>(
    state: &web::Data<AdminState>,
    f: impl FnOnce(&mut crate::store::DbConnection) -> Result<T, String> + Send + 'static,
) -> Result<T, HttpResponse> {
    let store = state.store.clone();
    match web::block(move || {
        let mut conn = store.conn().map_err(|e| e.to_string())?;
        f(&mut conn)
    })
    .await
    {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

async fn metrics(state: web::Data<AdminState>) -> HttpResponse {
    let now = now_ms();
    let activity = state.activity.clone();
    let gauges = match blocking(&state, move |c| {
        gauges::render(c, &activity, now).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(g) => g,
        Err(e) => return e,
    };
    let mut body = state.metrics.render();
    body.push_str(&gauges);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

async fn list_events(state: web::Data<AdminState>, query: web::Query<EventFilter>) -> HttpResponse {
    let filter = query.into_inner();
    if let Err(e) = filter.validate() {
        return error(StatusCode::BAD_REQUEST, "invalid_filter", &e);
    }
    let limit = filter.limit.unwrap_or(100);
    let f = filter.clone();
    match blocking(&state, move |c| {
        events::list(c, &f).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| r.id))
                .flatten();
            HttpResponse::Ok().json(json!({"events": rows, "next_after": next}))
        }
        Err(e) => e,
    }
}

async fn show_event(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let lookup = id.clone();
    match blocking(&state, move |c| {
        events::show(c, &lookup).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(Some((event, attempts))) => {
            let payload: serde_json::Value = serde_json::from_str(&event.payload)
                .unwrap_or(serde_json::Value::String(event.payload.clone()));
            HttpResponse::Ok()
                .json(json!({"event": event, "payload": payload, "attempts": attempts}))
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_such_event",
            &format!("No event {id}"),
        ),
        Err(e) => e,
    }
}

async fn replay(state: &web::Data<AdminState>, filter: EventFilter) -> HttpResponse {
    let now = now_ms();
    match blocking(state, move |c| {
        events::replay(c, &filter, "admin-api", now).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(done) => {
            tracing::info!(
                replayed = done.replayed.len(),
                in_flight = done.in_flight.len(),
                "events replayed"
            );
            HttpResponse::Ok().json(done)
        }
        Err(e) => e,
    }
}

/// One event by id, or the 404 to answer.
async fn find_event(
    state: &web::Data<AdminState>,
    id: &str,
) -> Result<crate::store::outbox::StoredEvent, HttpResponse> {
    let lookup = id.to_owned();
    match blocking(state, move |c| {
        crate::store::outbox::get(c, &lookup).map_err(|e| e.to_string())
    })
    .await?
    {
        Some(event) => Ok(event),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "no_such_event",
            &format!("No event {id}"),
        )),
    }
}

async fn replay_one(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    if let Err(e) = find_event(&state, &id).await {
        return e;
    }
    let filter = EventFilter {
        event_id: Some(id),
        ..EventFilter::default()
    };
    replay(&state, filter).await
}

async fn replay_filter(state: web::Data<AdminState>, body: web::Json<EventFilter>) -> HttpResponse {
    let filter = body.into_inner();
    if let Err(e) = filter.validate() {
        return error(StatusCode::BAD_REQUEST, "invalid_filter", &e);
    }
    replay(&state, filter).await
}

async fn list_dead(state: web::Data<AdminState>, query: web::Query<EventFilter>) -> HttpResponse {
    let mut filter = query.into_inner();
    filter.status = Some(status::DEAD.to_owned());
    list_events(state, web::Query(filter)).await
}

async fn retry_dead(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    match find_event(&state, &id).await {
        Ok(e) if e.status == status::DEAD => {}
        Ok(e) => {
            return error(
                StatusCode::CONFLICT,
                "not_dead",
                &format!(
                    "Event {id} is {}, not dead: use /v1/events/{id}/replay",
                    e.status
                ),
            )
        }
        Err(e) => return e,
    }
    let filter = EventFilter {
        event_id: Some(id),
        status: Some(status::DEAD.to_owned()),
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
) -> HttpResponse {
    let id = id.into_inner();
    let reason = body.into_inner().reason;
    if reason.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "reason_required",
            "Say why the event is discarded: {\"reason\": \"…\"}",
        );
    }
    let (lookup, why) = (id.clone(), reason.clone());
    let result = blocking(&state, move |c| {
        Ok(events::discard(c, &lookup, &why, "admin-api", now_ms()))
    })
    .await;
    match result {
        Ok(Ok(())) => {
            tracing::warn!(event_id = %id, reason = %reason, "dead event discarded");
            HttpResponse::Ok().json(json!({"discarded": id, "reason": reason}))
        }
        Ok(Err(events::DiscardError::NotFound(_))) => error(
            StatusCode::NOT_FOUND,
            "no_such_event",
            &format!("No event {id}"),
        ),
        Ok(Err(e @ events::DiscardError::NotDead { .. })) => {
            error(StatusCode::CONFLICT, "not_dead", &e.to_string())
        }
        Ok(Err(e)) => internal(e),
        Err(e) => e,
    }
}

fn reconcile_or_503(
    state: &AdminState,
) -> Result<std::sync::Arc<crate::reconcile::ReconcileHandler>, Box<HttpResponse>> {
    state.reconcile.clone().ok_or_else(|| {
        Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_api_key",
            "No Stripe API key is configured (STRIPE_API_KEY): resync, reconcile and catch-up need one",
        ))
    })
}

async fn resync(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let handler = match reconcile_or_503(&state) {
        Ok(h) => h,
        Err(e) => return *e,
    };
    let id = id.into_inner();
    match handler.resync(&state.store, &id).await {
        Ok(records) => {
            tracing::info!(object = %id, records = records.len(), "object resynced from Stripe");
            let written: Vec<String> = records.iter().map(|r| r.describe()).collect();
            HttpResponse::Ok().json(json!({"resynced": id, "written": written}))
        }
        Err(e @ crate::reconcile::ResyncError::UnknownId(_)) => {
            error(StatusCode::BAD_REQUEST, "unknown_object", &e.to_string())
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, "resync_failed", &e.to_string()),
    }
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
) -> HttpResponse {
    let handler = match reconcile_or_503(&state) {
        Ok(h) => h,
        Err(e) => return *e,
    };
    let dry_run = body.map(|b| b.into_inner().dry_run).unwrap_or(false);
    let (jobs, store) = (state.jobs.clone(), state.store.clone());
    let started = state.jobs.spawn("reconcile", move |id| async move {
        let progress = move |p: &crate::reconcile::sweep::SweepProgress| {
            jobs.progress(id, serde_json::to_value(p).unwrap_or_default());
        };
        metrics::gauge!(crate::metrics::SWEEP_RUNNING).set(1.0);
        let result = crate::reconcile::sweep::run(&handler, &store, dry_run, &progress).await;
        metrics::gauge!(crate::metrics::SWEEP_RUNNING).set(0.0);
        result
    });
    let id = match started {
        Ok(id) => id,
        Err(running) => return already_running("A sweep", running),
    };
    HttpResponse::Accepted().json(json!({"job": id, "kind": "reconcile", "dry_run": dry_run}))
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
) -> HttpResponse {
    let handler = match reconcile_or_503(&state) {
        Ok(h) => h,
        Err(e) => return *e,
    };
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    let options = crate::reconcile::catchup::CatchUpOptions {
        since: body.since.unwrap_or(now_ms() / 1000 - 3 * 24 * 3600),
        only_failed: body.only_failed,
        dry_run: body.dry_run,
    };
    let store = state.store.clone();
    let started = state.jobs.spawn("catch-up", move |_| async move {
        crate::reconcile::catchup::run(handler.client(), &store, &options).await
    });
    let id = match started {
        Ok(id) => id,
        Err(running) => return already_running("A catch-up", running),
    };
    HttpResponse::Accepted().json(json!({"job": id, "kind": "catch-up", "dry_run": body.dry_run}))
}

fn already_running(what: &str, running: u64) -> HttpResponse {
    error(
        StatusCode::CONFLICT,
        "already_running",
        &format!("{what} is already running: job {running}"),
    )
}

async fn job(state: web::Data<AdminState>, id: web::Path<u64>) -> HttpResponse {
    match state.jobs.get(id.into_inner()) {
        Some(job) => HttpResponse::Ok().json(job),
        None => error(
            StatusCode::NOT_FOUND,
            "no_such_job",
            "No such job (jobs live as long as the daemon)",
        ),
    }
}
