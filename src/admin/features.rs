//! What a customer is entitled to: Stripe's Entitlements product (the
//! features of the products they pay for), as last re-fetched.
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/customers/{id}/features` | the customer's active features (lookup key, feature id, account) |
//! | `GET /v1/customers/{id}/features/{lookup_key}` | `{"active": true/false, …}`: does the customer have this feature now |

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{blocking, AdminError, AdminState};
use crate::reconcile::features;
use crate::store::StoreError;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/customers/{id}/features", web::get().to(list))
        .route(
            "/v1/customers/{id}/features/{lookup_key}",
            web::get().to(one),
        );
}

async fn list(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let customer = id.into_inner();
    let lookup = customer.clone();
    let (rows, fetched_at) = blocking(&state, move |c| -> Result<_, StoreError> {
        Ok((
            features::for_customer(c, &lookup)?,
            features::fetched_at(c, &lookup)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "customer": customer,
        "features": rows,
        // null: never fetched (no summary event yet), not "none".
        "fetched_at": fetched_at,
    })))
}

async fn one(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (customer, lookup_key) = path.into_inner();
    let (c_id, key) = (customer.clone(), lookup_key.clone());
    let (row, fetched_at) = blocking(&state, move |c| -> Result<_, StoreError> {
        Ok((
            features::has_feature(c, &c_id, &key)?,
            features::fetched_at(c, &c_id)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({
        "customer": customer,
        "lookup_key": lookup_key,
        "active": row.is_some(),
        "feature": row,
        "fetched_at": fetched_at,
    })))
}
