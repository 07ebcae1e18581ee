//! The fake Stripe's webhook endpoints (`/v1/webhook_endpoints`, form
//! bodies) and event destinations (`/v2/core/event_destinations`, JSON
//! bodies): list, retrieve, create (the signing secret is shown only in the
//! create answer; for a destination only with
//! `include[]=webhook_endpoint.signing_secret`) and update; a destination
//! is also disabled and enabled (`…/{id}/disable`, `…/{id}/enable`, which
//! set `status` and `status_details` as Stripe does). As at Stripe, a
//! webhook endpoint's `api_version` is set at creation and cannot be
//! updated, and a listed or retrieved destination shows its
//! `webhook_endpoint.url` only with `include=webhook_endpoint.url`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::v2::{refuse, rfc3339};
use super::{lock, request_id, stripe_error, FakeStripe, State};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhook_endpoints", web::get().to(list_endpoints))
        .route("/v1/webhook_endpoints", web::post().to(create_endpoint))
        .route("/v1/webhook_endpoints/{id}", web::get().to(get_endpoint))
        .route(
            "/v1/webhook_endpoints/{id}",
            web::post().to(update_endpoint),
        )
        .route(
            "/v2/core/event_destinations",
            web::get().to(list_destinations),
        )
        .route(
            "/v2/core/event_destinations",
            web::post().to(create_destination),
        )
        .route(
            "/v2/core/event_destinations/{id}",
            web::get().to(get_destination),
        )
        .route(
            "/v2/core/event_destinations/{id}",
            web::post().to(update_destination),
        )
        .route(
            "/v2/core/event_destinations/{id}/disable",
            web::post().to(disable_destination),
        )
        .route(
            "/v2/core/event_destinations/{id}/enable",
            web::post().to(enable_destination),
        );
}

/// Whether a v2 GET asked for `include=webhook_endpoint.url` (v2 repeats
/// an array's key).
fn includes_url(req: &HttpRequest) -> bool {
    form(req.query_string().as_bytes())
        .iter()
        .any(|(k, v)| k == "include" && v == "webhook_endpoint.url")
}

/// A destination as a GET shows it: the URL only when asked for.
fn shown(destination: &Value, url: bool) -> Value {
    let mut d = destination.clone();
    if !url && d["webhook_endpoint"].is_object() {
        d["webhook_endpoint"]["url"] = Value::Null;
    }
    d
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn ok(body: &Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Request-Id", request_id()))
        .json(body)
}

fn missing(object: &str, id: &str) -> HttpResponse {
    stripe_error(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        &format!("No such {object}: '{id}'"),
    )
}

fn bad(message: &str) -> HttpResponse {
    stripe_error(
        400,
        "invalid_request_error",
        Some("parameter_invalid"),
        message,
    )
}

fn secret() -> String {
    format!("whsec_{:032x}", rand::random::<u128>())
}

/// A v1 form as (key, value) pairs, in order (`enabled_events[]` repeats).
fn form(body: &[u8]) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(&String::from_utf8_lossy(body))
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// Applies the form's fields to a webhook endpoint.
fn apply_form(
    endpoint: &mut Value,
    pairs: &[(String, String)],
    creating: bool,
) -> Result<(), String> {
    let events: Vec<Value> = pairs
        .iter()
        .filter(|(k, _)| k == "enabled_events[]" || k.starts_with("enabled_events["))
        .map(|(_, v)| json!(v))
        .collect();
    if !events.is_empty() {
        endpoint["enabled_events"] = Value::Array(events);
    }
    for (key, value) in pairs {
        match key.as_str() {
            "url" => endpoint["url"] = json!(value),
            "description" => endpoint["description"] = json!(value),
            "disabled" => {
                endpoint["status"] = json!(if value == "true" {
                    "disabled"
                } else {
                    "enabled"
                });
            }
            "api_version" if creating => endpoint["api_version"] = json!(value),
            "api_version" => return Err("Received unknown parameter: api_version".to_owned()),
            k if k.starts_with("metadata[") && k.ends_with(']') => {
                endpoint["metadata"][&k[9..k.len() - 1]] = json!(value);
            }
            _ => {}
        }
    }
    Ok(())
}

async fn list_endpoints(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let items = lock(&state.webhook_endpoints).clone();
    ok(&json!({"object": "list", "data": items, "has_more": false, "url": "/v1/webhook_endpoints"}))
}

async fn get_endpoint(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let id = id.into_inner();
    match lock(&state.webhook_endpoints)
        .iter()
        .find(|e| e["id"] == json!(id))
    {
        Some(e) => ok(e),
        None => missing("webhook endpoint", &id),
    }
}

async fn create_endpoint(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let pairs = form(&body);
    let mut endpoint = json!({
        "id": format!("we_{:024x}", rand::random::<u128>() & ((1u128 << 96) - 1)),
        "object": "webhook_endpoint",
        "api_version": null,
        "application": null,
        "created": now(),
        "description": null,
        "enabled_events": [],
        "livemode": false,
        "metadata": {},
        "status": "enabled",
        "url": null,
    });
    if let Err(e) = apply_form(&mut endpoint, &pairs, true) {
        return bad(&e);
    }
    if endpoint["url"].is_null() || endpoint["enabled_events"] == json!([]) {
        return bad("url and enabled_events are required");
    }
    lock(&state.webhook_endpoints).push(endpoint.clone());
    endpoint["secret"] = json!(secret());
    ok(&endpoint)
}

async fn update_endpoint(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let id = id.into_inner();
    let pairs = form(&body);
    let mut endpoints = lock(&state.webhook_endpoints);
    let Some(endpoint) = endpoints.iter_mut().find(|e| e["id"] == json!(id)) else {
        return missing("webhook endpoint", &id);
    };
    match apply_form(endpoint, &pairs, false) {
        Ok(()) => ok(endpoint),
        Err(e) => bad(&e),
    }
}

async fn list_destinations(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let url = includes_url(&req);
    let items: Vec<Value> = lock(&state.event_destinations)
        .iter()
        .map(|d| shown(d, url))
        .collect();
    ok(&json!({"data": items, "next_page_url": null, "previous_page_url": null}))
}

async fn get_destination(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let id = id.into_inner();
    match lock(&state.event_destinations)
        .iter()
        .find(|e| e["id"] == json!(id))
    {
        Some(e) => ok(&shown(e, includes_url(&req))),
        None => missing("event destination", &id),
    }
}

async fn disable_destination(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    set_destination_status(&req, &id.into_inner(), &state, false)
}

async fn enable_destination(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    set_destination_status(&req, &id.into_inner(), &state, true)
}

/// Stripe's disable (by a user: `status_details.disabled.reason: user`)
/// and enable (no status details).
fn set_destination_status(
    req: &HttpRequest,
    id: &str,
    state: &State,
    enabled: bool,
) -> HttpResponse {
    if let Some(refused) = refuse(req, state) {
        return refused;
    }
    let mut destinations = lock(&state.event_destinations);
    let Some(destination) = destinations.iter_mut().find(|e| e["id"] == json!(id)) else {
        return missing("event destination", id);
    };
    if enabled {
        destination["status"] = json!("enabled");
        destination["status_details"] = Value::Null;
    } else {
        destination["status"] = json!("disabled");
        destination["status_details"] = json!({"disabled": {"reason": "user"}});
    }
    destination["updated"] = json!(rfc3339(now()));
    ok(destination)
}

/// Applies a JSON body's fields to an event destination.
fn apply_json(destination: &mut Value, body: &Map<String, Value>) {
    for key in [
        "name",
        "description",
        "enabled_events",
        "metadata",
        "event_payload",
        "events_from",
        "snapshot_api_version",
    ] {
        if let Some(v) = body.get(key) {
            destination[key] = v.clone();
        }
    }
    if let Some(url) = body.get("webhook_endpoint").and_then(|w| w.get("url")) {
        destination["webhook_endpoint"]["url"] = url.clone();
    }
    destination["updated"] = json!(rfc3339(now()));
}

async fn create_destination(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be a JSON object");
    };
    for required in ["enabled_events", "event_payload", "name", "type"] {
        if !body.contains_key(required) {
            return bad(&format!("{required} is required"));
        }
    }
    let mut destination = json!({
        "id": format!("ed_test_{:024x}", rand::random::<u128>() & ((1u128 << 96) - 1)),
        "object": "v2.core.event_destination",
        "created": rfc3339(now()),
        "description": "",
        "enabled_events": [],
        "event_payload": "thin",
        "events_from": ["@self"],
        "livemode": false,
        "metadata": {},
        "name": "",
        "snapshot_api_version": null,
        "status": "enabled",
        "status_details": null,
        "type": "webhook_endpoint",
        "webhook_endpoint": {"signing_secret": null, "url": null},
    });
    apply_json(&mut destination, &body);
    lock(&state.event_destinations).push(destination.clone());
    let include = body
        .get("include")
        .and_then(Value::as_array)
        .is_some_and(|i| i.contains(&json!("webhook_endpoint.signing_secret")));
    if include {
        destination["webhook_endpoint"]["signing_secret"] = json!(secret());
    }
    ok(&destination)
}

async fn update_destination(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let id = id.into_inner();
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be a JSON object");
    };
    let mut destinations = lock(&state.event_destinations);
    let Some(destination) = destinations.iter_mut().find(|e| e["id"] == json!(id)) else {
        return missing("event destination", &id);
    };
    apply_json(destination, &body);
    ok(destination)
}

impl FakeStripe {
    /// The webhook endpoints as Stripe holds them (no secrets).
    pub fn webhook_endpoints(&self) -> Vec<Value> {
        lock(&self.state.webhook_endpoints).clone()
    }

    /// The event destinations as Stripe holds them (no secrets).
    pub fn event_destinations(&self) -> Vec<Value> {
        lock(&self.state.event_destinations).clone()
    }

    /// Changes a stored webhook endpoint or event destination (a test
    /// playing the Dashboard: disabling it, removing an event …).
    pub fn edit_endpoint(&self, id: &str, f: impl FnOnce(&mut Value)) {
        for list in [
            &self.state.webhook_endpoints,
            &self.state.event_destinations,
        ] {
            if let Some(e) = lock(list).iter_mut().find(|e| e["id"] == json!(id)) {
                f(e);
                return;
            }
        }
    }
}
