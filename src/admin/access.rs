//! `GET /v1/access`: who has access now, for applications (on the admin
//! listener, behind a token of its own).
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/access?customer=cus_…` | the customer's access now |
//! | `GET /v1/access?reference=…[&account=acct_…]` | the access of your own user, by the `client_reference_id` of their Checkout Sessions (the platform's, or one Connect account's) |
//!
//! Only `Authorization: Bearer <access_token>` opens it: not the admin
//! token, not an inspector session. The access token opens nothing else
//! (it is checked here, never by [`super::auth`]), so an application holds
//! a credential that can only read access. The answer is the
//! `entitlements_now` view's rows for the customer or reference, read by
//! [`crate::reconcile::entitlements`]: an unknown customer or reference is
//! `200` with `"access": false` and no rows, like a customer without
//! access (the view has no rows for either). See docs/entitlements.md.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{auth, blocking, error, AdminError, AdminState};
use crate::reconcile::entitlements::{self, Entitlement};
use crate::store::now_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessQuery {
    customer: Option<String>,
    reference: Option<String>,
    /// With `reference`: the Connect account whose Checkout carried it
    /// (default: the platform's own).
    account: Option<String>,
}

/// Who the question is about.
enum Subject {
    Customer(String),
    Reference(String, Option<String>),
}

impl AccessQuery {
    fn subject(self) -> Result<Subject, &'static str> {
        let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
        let account = nonempty(self.account);
        match (nonempty(self.customer), nonempty(self.reference)) {
            (Some(_), None) if account.is_some() => Err(
                "account goes with reference (a client_reference_id is one account's); a customer id names its account already",
            ),
            (Some(customer), None) => Ok(Subject::Customer(customer)),
            (None, Some(reference)) => Ok(Subject::Reference(reference, account)),
            (None, None) => Err("Say whom: ?customer=cus_… or ?reference=<client_reference_id>"),
            (Some(_), Some(_)) => {
                Err("Ask by one of customer or reference, not both: ?customer=cus_… or ?reference=<client_reference_id>")
            }
        }
    }
}

/// One granting row, as the `entitlements_now` view shows it (without the
/// view's `client_reference_id`, which the question already names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Granted {
    pub customer_id: Option<String>,
    pub subscription_id: String,
    pub product_id: Option<String>,
    pub price_id: Option<String>,
    pub status: String,
    /// Epoch ms, or null (see docs/entitlements.md).
    pub access_until: Option<i64>,
    /// The Connect account (null: the platform's own).
    pub account: Option<String>,
    /// `test` or `live` (null: a row written before the mode was kept).
    pub mode: Option<&'static str>,
}

impl From<Entitlement> for Granted {
    fn from(e: Entitlement) -> Granted {
        Granted {
            customer_id: e.customer_id,
            subscription_id: e.subscription_id,
            product_id: e.product_id,
            price_id: e.price_id,
            status: e.status,
            access_until: e.access_until,
            account: e.account,
            mode: e.livemode.map(|live| if live { "live" } else { "test" }),
        }
    }
}

/// Distinct non-null values, sorted.
fn distinct<'a>(values: impl Iterator<Item = &'a Option<String>>) -> Vec<&'a str> {
    let mut out: Vec<&str> = values.flatten().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn unauthorized(why: &str, req: &HttpRequest) -> HttpResponse {
    let peer = req.peer_addr().map(|p| p.to_string()).unwrap_or_default();
    tracing::warn!(path = %req.path(), peer = %peer, outcome = "rejected", reason = "unauthorized", status = 401u16, "access request without the access token: {why}");
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Missing or wrong access token: send Authorization: Bearer <access_token> (the admin token does not open /v1/access)",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    res
}

pub(crate) async fn get(
    req: HttpRequest,
    state: web::Data<AdminState>,
) -> Result<HttpResponse, AdminError> {
    let Some(expected) = &state.access_token else {
        return Ok(unauthorized("no access_token is configured", &req));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !auth::authorized(given, expected) {
        return Ok(unauthorized("missing or wrong bearer token", &req));
    }
    // Parsed only once the token passed: a caller without it learns nothing.
    let query = match web::Query::<AccessQuery>::from_query(req.query_string()) {
        Ok(query) => query.into_inner(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                &e.to_string(),
            ))
        }
    };
    let subject = match query.subject() {
        Ok(subject) => subject,
        Err(message) => return Ok(error(StatusCode::BAD_REQUEST, "invalid_query", message)),
    };
    let now = now_ms();
    let (asked, rows) = match subject {
        Subject::Customer(customer) => {
            let lookup = customer.clone();
            let rows =
                blocking(&state, move |c| entitlements::for_customer(c, &lookup, now)).await?;
            (json!({"customer": customer}), rows)
        }
        Subject::Reference(reference, account) => {
            let (lookup, within) = (reference.clone(), account.clone());
            let rows = blocking(&state, move |c| {
                entitlements::for_reference_in(c, &lookup, within.as_deref(), now)
            })
            .await?;
            (json!({"reference": reference, "account": account}), rows)
        }
    };
    let granted: Vec<Granted> = rows.into_iter().map(Granted::from).collect();
    let mut body = asked;
    body["access"] = json!(!granted.is_empty());
    body["products"] = json!(distinct(granted.iter().map(|g| &g.product_id)));
    body["prices"] = json!(distinct(granted.iter().map(|g| &g.price_id)));
    body["at"] = json!(now);
    body["entitlements"] = json!(granted);
    Ok(HttpResponse::Ok().json(body))
}
