//! Deliveries to the forwarding destinations: list, redeliver, discard.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/deliveries?destination=&status=&after=&limit=` | list (no bodies) |
//! | `POST /v1/deliveries/{delivery_id}/redeliver` | send again from attempt 1 (also a dead one) |
//! | `POST /v1/deliveries/{delivery_id}/discard` | give up on a dead or pending one |

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{blocking, error, AdminState};
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

async fn list(state: web::Data<AdminState>, query: web::Query<Filter>) -> HttpResponse {
    let f = query.into_inner();
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    match blocking(&state, move |c| {
        deliveries::list_filtered(
            c,
            f.destination.as_deref(),
            f.status.as_deref(),
            f.after,
            limit,
        )
        .map_err(|e| e.to_string())
    })
    .await
    {
        Ok(rows) => {
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| r.id))
                .flatten();
            HttpResponse::Ok().json(json!({"deliveries": rows, "next_after": next}))
        }
        Err(e) => e,
    }
}

async fn redeliver(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let lookup = id.clone();
    let now = crate::store::now_ms();
    match blocking(&state, move |c| {
        deliveries::redeliver(c, &lookup, now).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(None) => not_found(&id),
        Ok(Some(before)) if before == deliveries::status::DELIVERING => error(
            StatusCode::CONFLICT,
            "in_flight",
            &format!("Delivery {id} is being sent right now"),
        ),
        Ok(Some(before)) => {
            tracing::info!(delivery_id = %id, before = %before, "delivery re-queued by the admin API");
            HttpResponse::Ok().json(json!({"delivery_id": id, "status": "pending", "was": before}))
        }
        Err(e) => e,
    }
}

async fn discard(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    let lookup = id.clone();
    match blocking(&state, move |c| {
        deliveries::discard(c, &lookup).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(None) => not_found(&id),
        Ok(Some(before))
            if before == deliveries::status::DEAD || before == deliveries::status::PENDING =>
        {
            tracing::info!(delivery_id = %id, before = %before, "delivery discarded by the admin API");
            HttpResponse::Ok()
                .json(json!({"delivery_id": id, "status": "discarded", "was": before}))
        }
        Ok(Some(before)) => error(
            StatusCode::CONFLICT,
            "not_discardable",
            &format!("Delivery {id} is {before}: only dead or pending deliveries can be discarded"),
        ),
        Err(e) => e,
    }
}

fn not_found(id: &str) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        "no_such_delivery",
        &format!("No delivery {id}"),
    )
}
