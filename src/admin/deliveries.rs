//! Deliveries to the forwarding destinations: list, redeliver, discard.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/deliveries?destination=&status=&after=&limit=` | list (no bodies) |
//! | `POST /v1/deliveries/{delivery_id}/redeliver` | send again from attempt 1 (also a dead one) |
//! | `POST /v1/deliveries/{delivery_id}/discard` | give up on a dead or pending one |

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, AdminError, AdminState};
use crate::store::deliveries;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/deliveries", web::get().to(list))
        .route("/v1/deliveries/{id}/redeliver", web::post().to(redeliver))
        .route("/v1/deliveries/{id}/discard", web::post().to(discard));
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

async fn redeliver(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let now = crate::store::now_ms();
    let before = blocking(&state, move |c| deliveries::redeliver(c, &lookup, now))
        .await?
        .ok_or_else(|| AdminError::NoSuchDelivery(id.clone()))?;
    if before == deliveries::status::DELIVERING {
        return Err(AdminError::DeliveryInFlight(id));
    }
    tracing::info!(delivery_id = %id, before = %before, "delivery re-queued by the admin API");
    Ok(HttpResponse::Ok().json(json!({"delivery_id": id, "status": "pending", "was": before})))
}

async fn discard(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let before = blocking(&state, move |c| deliveries::discard(c, &lookup))
        .await?
        .ok_or_else(|| AdminError::NoSuchDelivery(id.clone()))?;
    if before != deliveries::status::DEAD && before != deliveries::status::PENDING {
        return Err(AdminError::DeliveryNotDiscardable { id, status: before });
    }
    tracing::info!(delivery_id = %id, before = %before, "delivery discarded by the admin API");
    Ok(HttpResponse::Ok().json(json!({"delivery_id": id, "status": "discarded", "was": before})))
}
