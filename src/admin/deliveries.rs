//! Forwarding through the admin API: destinations with their health, pause
//! and resume; deliveries list/show (with every attempt), redeliver by id
//! or filter, discard with a reason.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/destinations` | each destination: settings (no secret), paused, backlog, dead, last success, failing since, last status, oldest undelivered |
//! | `POST /v1/destinations/{name}/pause` (`{"reason":…}`) | stop sending to it (every instance) |
//! | `POST /v1/destinations/{name}/resume` | send again (also after a 410 Gone: the deliveries answered 410 are due at once) |
//! | `GET /v1/deliveries?destination=&status=&after=&limit=` | list (no bodies) |
//! | `GET /v1/deliveries/{delivery_id}` | one delivery, its body and every attempt |
//! | `POST /v1/deliveries/{delivery_id}/redeliver` | send again from attempt 1 (also a dead one); 409 `in_flight` while it is being sent |
//! | `POST /v1/deliveries/redeliver` (`{"status":…, "destination", "event_type", "since", "until", "limit"}`) | re-queue up to `limit` (default 500, at most 1000) matching deliveries; `more` says whether to call again |
//! | `POST /v1/deliveries/{delivery_id}/discard` (`{"reason":…}`) | give up on a dead or pending one; 409 `in_flight` while it is being sent, `not_discardable` otherwise |

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, AdminError, AdminState};
use crate::forward::health;
use crate::store::deliveries::{self, history, pauses, Change, DeliveryFilter};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/destinations", web::get().to(destinations))
        .route("/v1/destinations/{name}/pause", web::post().to(pause))
        .route("/v1/destinations/{name}/resume", web::post().to(resume))
        .route("/v1/deliveries", web::get().to(list))
        .route("/v1/deliveries/redeliver", web::post().to(redeliver_filter))
        .route("/v1/deliveries/{id}", web::get().to(show))
        .route("/v1/deliveries/{id}/redeliver", web::post().to(redeliver))
        .route("/v1/deliveries/{id}/discard", web::post().to(discard));
}

/// The per-destination gauges for `/metrics`.
pub(crate) fn gauges(
    state: &AdminState,
    conn: &mut crate::store::DbConnection,
    now: i64,
) -> Result<String, crate::store::StoreError> {
    let views = health::overview(conn, &(state.destinations)())?;
    Ok(health::gauges(&views, now))
}

async fn destinations(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let configured = (state.destinations)();
    let views = blocking(&state, move |c| health::overview(c, &configured)).await?;
    Ok(HttpResponse::Ok().json(json!({"destinations": views})))
}

fn known(state: &AdminState, name: &str) -> Result<(), AdminError> {
    if (state.destinations)().iter().any(|d| d.name == name) {
        Ok(())
    } else {
        Err(AdminError::NoSuchDestination(name.to_owned()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reason {
    reason: String,
}

async fn pause(
    state: web::Data<AdminState>,
    name: web::Path<String>,
    body: web::Json<Reason>,
) -> Result<HttpResponse, AdminError> {
    let name = name.into_inner();
    known(&state, &name)?;
    let reason = body.into_inner().reason;
    if reason.trim().is_empty() {
        return Err(AdminError::ReasonRequired);
    }
    let (n, r) = (name.clone(), format!("paused by an operator: {reason}"));
    let now = crate::store::now_ms();
    let newly = blocking(&state, move |c| pauses::pause(c, &n, now, &r)).await?;
    tracing::warn!(destination = %name, reason = %reason, "destination paused by the admin API");
    Ok(HttpResponse::Ok().json(json!({"destination": name, "paused": true, "was_paused": !newly})))
}

async fn resume(
    state: web::Data<AdminState>,
    name: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let name = name.into_inner();
    known(&state, &name)?;
    let n = name.clone();
    let now = crate::store::now_ms();
    let was = blocking(&state, move |c| pauses::resume(c, &n, now)).await?;
    tracing::info!(destination = %name, was_paused = was, "destination resumed by the admin API");
    Ok(HttpResponse::Ok().json(json!({"destination": name, "paused": false, "was_paused": was})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    destination: Option<String>,
    status: Option<String>,
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

async fn list(
    state: web::Data<AdminState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, AdminError> {
    let f = query.into_inner();
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let rows = blocking(&state, move |c| {
        deliveries::list_filtered(
            c,
            f.destination.as_deref(),
            f.status.as_deref(),
            f.after,
            limit,
        )
    })
    .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({"deliveries": rows, "next_after": next})))
}

async fn show(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let (delivery, attempts) = blocking(&state, move |c| {
        let delivery = deliveries::get(c, &lookup)?;
        let attempts = history::for_delivery(c, &lookup)?;
        Ok::<_, crate::store::StoreError>((delivery, attempts))
    })
    .await?;
    let delivery = delivery.ok_or(AdminError::NoSuchDelivery(id))?;
    let attempts: Vec<serde_json::Value> = attempts
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            v["request_headers"] = json!(a.headers());
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"delivery": delivery, "attempts": attempts})))
}

async fn redeliver(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let now = crate::store::now_ms();
    let change = blocking(&state, move |c| deliveries::redeliver(c, &lookup, now)).await?;
    let before = done_or_refused(id.clone(), change, |id, _| AdminError::DeliveryInFlight(id))?;
    tracing::info!(delivery_id = %id, before = %before, "delivery re-queued by the admin API");
    Ok(HttpResponse::Ok().json(json!({"delivery_id": id, "status": "pending", "was": before})))
}

/// The status a delivery had before an operator's change, or why the change
/// was refused: `refused` for a status that does not allow it (one being
/// sent right now: always `in_flight`, 409).
fn done_or_refused(
    id: String,
    change: Change,
    refused: impl FnOnce(String, String) -> AdminError,
) -> Result<String, AdminError> {
    match change {
        Change::Done(before) => Ok(before),
        Change::Missing => Err(AdminError::NoSuchDelivery(id)),
        Change::Refused(status) if status == deliveries::status::DELIVERING => {
            Err(AdminError::DeliveryInFlight(id))
        }
        Change::Refused(status) => Err(refused(id, status)),
        Change::Busy(status) => Err(AdminError::DeliveryChanged { id, status }),
    }
}

async fn redeliver_filter(
    state: web::Data<AdminState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, AdminError> {
    // `flatten` and `deny_unknown_fields` do not mix: split the limit off.
    let mut body = body.into_inner();
    let limit = body
        .as_object_mut()
        .and_then(|o| o.remove("limit"))
        .map(|l| {
            l.as_i64()
                .ok_or_else(|| AdminError::InvalidFilter("limit: a number".to_owned()))
        })
        .transpose()?
        .unwrap_or(500)
        .clamp(1, 1000);
    let filter: DeliveryFilter =
        serde_json::from_value(body).map_err(|e| AdminError::InvalidFilter(e.to_string()))?;
    filter.validate().map_err(AdminError::InvalidFilter)?;
    let now = crate::store::now_ms();
    let f = filter.clone();
    let n = blocking(&state, move |c| {
        deliveries::redeliver_matching(c, &f, now, limit)
    })
    .await?;
    tracing::info!(requeued = n, status = %filter.status, destination = ?filter.destination, event_type = ?filter.event_type, "deliveries re-queued by filter through the admin API");
    Ok(HttpResponse::Ok().json(json!({"requeued": n, "more": n as i64 == limit})))
}

async fn discard(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<Reason>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let reason = body.into_inner().reason;
    if reason.trim().is_empty() {
        return Err(AdminError::ReasonRequired);
    }
    let (lookup, r) = (id.clone(), reason.clone());
    let now = crate::store::now_ms();
    let change = blocking(&state, move |c| deliveries::discard(c, &lookup, &r, now)).await?;
    let before = done_or_refused(id.clone(), change, |id, status| {
        AdminError::DeliveryNotDiscardable { id, status }
    })?;
    tracing::info!(delivery_id = %id, before = %before, reason = %reason, "delivery discarded by the admin API");
    Ok(HttpResponse::Ok().json(json!({"delivery_id": id, "status": "discarded", "was": before})))
}
