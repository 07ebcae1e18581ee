//! The fake Stripe's thin events: `GET /v2/core/events` (listed newest
//! first, paged with `page` / `next_page_url` as v2 lists are) and
//! `GET /v2/core/events/{id}` (the full event, with `snapshot_event` naming
//! a snapshot twin), and the notifications a thin event destination sends.
//!
//! Shapes: Stripe's v2 event (`object: "v2.core.event"`, `created` RFC 3339,
//! `context`, `related_object {id, type, url}`, `reason`, and on the full
//! event `changes` and `data`).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{lock, request_id, stripe_error, FakeStripe, Seen, State};

/// The URL of a v1 object by its type, as `related_object.url` gives it.
pub fn object_url(object_type: &str, id: &str) -> String {
    let collection = match object_type {
        "checkout.session" => "checkout/sessions".to_owned(),
        "subscription" => "subscriptions".to_owned(),
        "customer" => "customers".to_owned(),
        "invoice" => "invoices".to_owned(),
        "payment_intent" => "payment_intents".to_owned(),
        "dispute" => "disputes".to_owned(),
        "charge" => "charges".to_owned(),
        other => format!("{}s", other.replace('.', "/")),
    };
    format!("/v1/{collection}/{id}")
}

/// `2026-11-23T16:00:00.000Z` for unix seconds.
pub fn rfc3339(secs: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs());
    humantime::format_rfc3339_millis(at).to_string()
}

/// The thin notification of a full v2 event: what a destination receives
/// (no `changes`, no `data`, no `snapshot_event`).
pub fn notification(full: &Value) -> Value {
    let mut thin = full.clone();
    if let Some(map) = thin.as_object_mut() {
        for key in ["changes", "data", "snapshot_event"] {
            map.remove(key);
        }
    }
    thin
}

/// Registers the v2 routes (ahead of the fake's catch-all service).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v2/core/events", web::get().to(list_events))
        .route("/v2/core/events/{id}", web::get().to(retrieve_event));
}

/// Records the request and checks the API key, as the catch-all does:
/// `Some` is the refusal to answer.
pub(super) fn refuse(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    lock(&state.seen).push(Seen {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        version: header("stripe-version"),
        account: header("stripe-account").or_else(|| header("stripe-context")),
    });
    let authorized =
        header("authorization").as_deref() == Some(format!("Bearer {}", state.key).as_str());
    (!authorized).then(|| {
        stripe_error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided",
        )
    })
}

fn query_map(req: &HttpRequest) -> std::collections::HashMap<String, String> {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

async fn list_events(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let query = query_map(&req);
    let mut events = lock(&state.thin_events).clone();
    events.reverse(); // newest first
    if let Some(gte) = query.get("created[gte]") {
        let Some(gte) = crate::stripe::envelope::rfc3339_secs(gte) else {
            return stripe_error(
                400,
                "invalid_request_error",
                None,
                "created[gte] must be an RFC 3339 timestamp",
            );
        };
        events.retain(|e| {
            e["created"]
                .as_str()
                .and_then(crate::stripe::envelope::rfc3339_secs)
                .is_some_and(|c| c >= gte)
        });
    }
    // The page token is an offset here; Stripe's is opaque. Later pages
    // are asked for with `page` alone, as next_page_url gives them.
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let (start, limit) = match query.get("page").and_then(|p| p.split_once('-')) {
        Some((offset, limit)) => (
            offset.parse::<usize>().unwrap_or(usize::MAX),
            limit.parse::<usize>().unwrap_or(20),
        ),
        None if query.contains_key("page") => (usize::MAX, limit),
        None => (0, limit),
    };
    let page: Vec<Value> = events.iter().skip(start).take(limit).cloned().collect();
    let end = start.saturating_add(page.len());
    let next = (end < events.len()).then(|| {
        json!(format!(
            "/v2/core/events?page={end}-{limit}{}",
            query
                .get("created[gte]")
                .map(|g| format!("&created%5Bgte%5D={g}"))
                .unwrap_or_default()
        ))
    });
    HttpResponse::Ok()
        .insert_header(("Request-Id", request_id()))
        .json(json!({"data": page, "next_page_url": next.unwrap_or(Value::Null), "previous_page_url": null}))
}

async fn retrieve_event(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    if let Some(refused) = refuse(&req, &state) {
        return refused;
    }
    let id = path.into_inner();
    match lock(&state.thin_events)
        .iter()
        .find(|e| e["id"] == json!(id))
    {
        Some(event) => HttpResponse::Ok()
            .insert_header(("Request-Id", request_id()))
            .json(event),
        None => stripe_error(
            404,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such v2.core.event: '{id}'"),
        ),
    }
}

impl FakeStripe {
    /// A thin event about a stored v1 object (`v1.{event_type}`), kept as a
    /// full event for `/v2/core/events`; returns the notification a
    /// destination would receive. `account`: the `context`.
    pub fn thin_event(&self, event_type: &str, object_id: &str, account: Option<&str>) -> Value {
        let object_type = self
            .get(object_id)
            .and_then(|o| o["object"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "customer".to_owned());
        self.push_thin_event(full_event(
            &format!("v1.{event_type}"),
            Some((&object_type, object_id)),
            account,
        ))
    }

    /// The thin twin of a snapshot event (both are sent while an endpoint
    /// and a destination, or a destination of both payloads, are set up):
    /// same change, its own id, `snapshot_event` naming the snapshot one
    /// (Stripe names it on every thin event of a v1 resource since
    /// `2026-09-30.endive`). An object without an id (the entitlements
    /// summary) gives no `related_object`, as at Stripe.
    pub fn thin_twin(&self, snapshot: &Value) -> Value {
        let object = &snapshot["data"]["object"];
        let related = object["id"]
            .as_str()
            .map(|id| (object["object"].as_str().unwrap_or(""), id));
        let mut full = full_event(
            &format!("v1.{}", snapshot["type"].as_str().unwrap_or("")),
            related,
            snapshot["account"].as_str(),
        );
        full["snapshot_event"] = snapshot["id"].clone();
        self.push_thin_event(full)
    }

    /// Stores a full v2 event and returns its notification.
    pub fn push_thin_event(&self, full: Value) -> Value {
        let thin = notification(&full);
        lock(&self.state.thin_events).push(full);
        thin
    }

    /// The full v2 events stored, oldest first.
    pub fn thin_events(&self) -> Vec<Value> {
        lock(&self.state.thin_events).clone()
    }
}

/// A full v2 event created now, about `related` (type, id) if any.
pub fn full_event(event_type: &str, related: Option<(&str, &str)>, context: Option<&str>) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut event = json!({
        "id": format!("evt_test_65{:020x}", rand::random::<u128>() & ((1u128 << 80) - 1)),
        "object": "v2.core.event",
        "type": event_type,
        "livemode": false,
        "created": rfc3339(now),
        "context": context,
        "reason": {"type": "request", "request": {"id": request_id(), "idempotency_key": null}},
        "changes": {},
    });
    if let Some((object_type, id)) = related {
        event["related_object"] =
            json!({"id": id, "type": object_type, "url": object_url(object_type, id)});
    }
    event
}
