//! A Stripe stand-in for `demo` and the tests: stateful (objects change between
//! events), built on Stripe's published object shapes (the trigger's
//! fixtures), answering like Stripe (list shape, error shape, `Request-Id`),
//! with fault injection and a log of the requests it saw.
//!
//! ```ignore
//! let fake = FakeStripe::start().await;              // expects `Bearer {KEY}`
//! let s = Scenario::new(false, API_VERSION);
//! let sub = fake.subscription(&s, "active");         // also: customer, invoice, …
//! fake.fail_next(1, "/v1/subscriptions/", Fault::ServerError(500));
//! // … point the client (or the daemon) at fake.base_url() …
//! assert_eq!(fake.count("/v1/subscriptions/"), 2);
//! ```
//!
//! A response can be held: [`FakeStripe::hold_next`] makes the next request
//! to a path be answered with the object as it is WHEN THE REQUEST ARRIVES,
//! but only once the test calls [`Hold::release`] — so an older fetch can be
//! made to return after a newer one.

mod billing;
mod endpoints;
pub mod v2;
pub use billing::charge_shape;

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::trigger::Scenario;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

/// A lock that survives a panicked holder (the maps stay usable in a test that failed).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub const KEY: &str = "sk_test_fake_stripe_key";

#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with optional `Stripe-Should-Retry` and `Retry-After`.
    RateLimited {
        should_retry: Option<bool>,
        retry_after: Option<u64>,
    },
    ServerError(u16),
    /// Answer only after this long (the client times out first).
    Slow(Duration),
    /// A 200 whose body breaks off after a few bytes (the connection drops).
    CutBody,
    /// Stripe's 404 for a path it does not know (what an API base ending
    /// in `/v1` gets): no `resource_missing`.
    UnknownPath,
    /// A 404 page from something in between (a proxy): HTML, no Stripe body.
    ProxyNotFound,
    /// 409 `lock_timeout`: another request holds the object.
    Conflict,
    /// 403: a restricted key without the permission this call needs.
    Forbidden,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub version: Option<String>,
    pub account: Option<String>,
}

#[derive(Default)]
struct State {
    /// The API key requests must carry as `Authorization: Bearer …`.
    key: String,
    objects: Mutex<HashMap<String, Value>>,
    /// The Connect account an object belongs to (absent: the platform's).
    /// Such an object is shown only to requests with that `Stripe-Account`
    /// (as Stripe does); a platform object is retrieved by every request
    /// (looser than Stripe, so that tests of headers need no setup), but
    /// listed only without `Stripe-Account`.
    accounts: Mutex<HashMap<String, String>>,
    events: Mutex<Vec<Value>>,
    faults: Mutex<VecDeque<(String, Fault)>>,
    /// Armed holds: the next request whose path starts with the prefix is held.
    holds: Mutex<Vec<(String, Hold)>>,
    seen: Mutex<Vec<Seen>>,
    /// v2.rs, endpoints.rs: full thin events, webhook endpoints, event destinations.
    thin_events: Mutex<Vec<Value>>,
    webhook_endpoints: Mutex<Vec<Value>>,
    event_destinations: Mutex<Vec<Value>>,
}

/// One held response (see [`FakeStripe::hold_next`]).
#[derive(Clone)]
pub struct Hold {
    arrived: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    released: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

impl Hold {
    fn new() -> Hold {
        Hold {
            arrived: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
            released: std::sync::Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Waits until the held request has come (its answer is fixed from then on).
    pub async fn arrived(&self) {
        let mut rx = self.arrived.subscribe();
        let _ = rx.wait_for(|a| *a).await;
    }

    /// Lets the held answer go out (or, if the request has not come yet,
    /// lets it through unheld).
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    async fn wait_released(&self) {
        let mut rx = self.released.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }
}

pub struct FakeStripe {
    pub base_url: String,
    state: web::Data<State>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeStripe {
    /// Starts on a free port, expecting the key [`KEY`].
    pub async fn start() -> std::io::Result<FakeStripe> {
        FakeStripe::start_with_key(KEY).await
    }

    /// Starts on a free port; requests without `Bearer {key}` get a 401.
    pub async fn start_with_key(key: &str) -> std::io::Result<FakeStripe> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = web::Data::new(State {
            key: key.to_owned(),
            ..State::default()
        });
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(v2::routes)
                .configure(endpoints::routes)
                .default_service(web::to(serve))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(FakeStripe {
            base_url: format!("http://{addr}"),
            state,
            handle,
        })
    }

    /// `http://127.0.0.1:<port>`, the client's `api_base`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stores (or replaces) an object under its id.
    pub fn put(&self, object: Value) -> Value {
        let Some(id) = object["id"].as_str().map(str::to_owned) else {
            tracing::warn!(%object, "fake stripe: an object without an id is not stored");
            return object;
        };
        lock(&self.state.objects).insert(id, object.clone());
        object
    }

    /// Stores an object in a connected account: only requests with
    /// `Stripe-Account: {account}` see it.
    pub fn put_in(&self, account: &str, object: Value) -> Value {
        let Some(id) = object["id"].as_str().map(str::to_owned) else {
            return self.put(object);
        };
        lock(&self.state.accounts).insert(id, account.to_owned());
        self.put(object)
    }

    pub fn get(&self, id: &str) -> Option<Value> {
        lock(&self.state.objects).get(id).cloned()
    }

    /// Changes an object in place.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Value)) {
        let mut objects = lock(&self.state.objects);
        match objects.get_mut(id) {
            Some(object) => f(object),
            None => tracing::warn!(id, "fake stripe: update of an object it does not hold"),
        }
    }

    /// Forgets an object: GET answers 404.
    pub fn remove(&self, id: &str) {
        lock(&self.state.objects).remove(id);
    }

    /// Deletes a customer the way Stripe does: GET answers `deleted: true`.
    pub fn delete_customer(&self, id: &str) {
        self.put(json!({"id": id, "object": "customer", "deleted": true}));
    }

    /// Appends to what `GET /v1/events` lists (newest last here; listed newest first).
    pub fn push_event(&self, event: Value) {
        lock(&self.state.events).push(event);
    }

    /// Empties the event list.
    pub fn clear_events(&self) {
        lock(&self.state.events).clear();
    }

    /// The next `n` requests whose path starts with `prefix` get `fault`
    /// (`""` or `"/v1/"`: any path). Faults queue up in order.
    pub fn fail_next(&self, n: usize, prefix: &str, fault: Fault) {
        let mut faults = lock(&self.state.faults);
        for _ in 0..n {
            faults.push_back((prefix.to_owned(), fault.clone()));
        }
    }

    /// Holds the answer to the next request whose path starts with `prefix`
    /// (one not failed by a fault): the answer is the state at request time,
    /// sent when the returned [`Hold`] is released.
    pub fn hold_next(&self, prefix: &str) -> Hold {
        let hold = Hold::new();
        lock(&self.state.holds).push((prefix.to_owned(), hold.clone()));
        hold
    }

    /// Disarms the holds no request has reached yet.
    pub fn clear_holds(&self) {
        lock(&self.state.holds).clear();
    }

    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// How many requests had a path starting with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .count()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }

    // --- realistic objects, from Stripe's published shapes ---

    pub fn customer(&self, s: &Scenario) -> Value {
        self.put(shape(s, "customer.created"))
    }

    /// A subscription in `status`, in the scenario's API shape.
    pub fn subscription(&self, s: &Scenario, status: &str) -> Value {
        let mut sub = shape(s, "customer.subscription.created");
        set_subscription_status(&mut sub, status);
        self.put(sub)
    }

    pub fn invoice(&self, s: &Scenario, status: &str) -> Value {
        let mut inv = shape(s, "invoice.paid");
        inv["status"] = json!(status);
        if status != "paid" {
            inv["amount_paid"] = json!(0);
            inv["amount_remaining"] = inv["amount_due"].clone();
        }
        if status == "uncollectible" && s.endive() {
            // Endive says why (only on an uncollectible invoice).
            inv["status_details"] = json!({"uncollectible": {"reason": "user_forgiven"}});
        }
        self.put(inv)
    }

    pub fn payment_intent(&self, s: &Scenario, succeeded: bool) -> Value {
        let t = if succeeded {
            "payment_intent.succeeded"
        } else {
            "payment_intent.payment_failed"
        };
        self.put(shape(s, t))
    }

    pub fn dispute(&self, s: &Scenario, status: &str) -> Value {
        let mut d = shape(s, "charge.dispute.created");
        d["status"] = json!(status);
        self.put(d)
    }

    pub fn checkout_session(&self, s: &Scenario) -> Value {
        self.put(shape(s, "checkout.session.completed"))
    }
}

/// The scenario's object for an event type this file names.
#[allow(clippy::expect_used)] // every type passed here is one `Scenario::object` knows; None is a bug in this file
fn shape(s: &Scenario, event_type: &str) -> Value {
    s.object(event_type)
        .expect("an event type the scenario knows")
}

pub fn set_subscription_status(sub: &mut Value, status: &str) {
    sub["status"] = json!(status);
    let now = crate::store::now_ms() / 1000;
    if status == "canceled" {
        sub["canceled_at"] = json!(now);
        sub["ended_at"] = json!(now);
    } else {
        sub["canceled_at"] = Value::Null;
        sub["ended_at"] = Value::Null;
    }
}

fn stripe_error(status: u16, kind: &str, code: Option<&str>, message: &str) -> HttpResponse {
    error_response(
        status,
        json!({"error": {"type": kind, "code": code, "message": message,
                         "doc_url": code.map(|c| format!("https://stripe.com/docs/error-codes/{c}"))}}),
    )
}

fn error_response(status: u16, body: Value) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .insert_header(("Request-Id", request_id()))
        .json(body)
}

/// Stripe's answer for an id it does not know.
fn no_such(object: &str, id: &str) -> HttpResponse {
    error_response(
        404,
        json!({"error": {"type": "invalid_request_error", "code": "resource_missing",
                         "message": format!("No such {object}: '{id}'"), "param": "id",
                         "doc_url": "https://stripe.com/docs/error-codes/resource-missing"}}),
    )
}

/// Whether the object `id` is visible to a request made as `account`.
fn visible(state: &State, id: &str, account: Option<&str>) -> bool {
    match lock(&state.accounts).get(id) {
        Some(owner) => Some(owner.as_str()) == account,
        None => true,
    }
}

/// One object by id, if it is of this type and visible to `account`;
/// `expand[]=latest_invoice` replaces the invoice id with the stored invoice.
fn retrieve(
    state: &State,
    object: &str,
    id: &str,
    expand: &[String],
    account: Option<&str>,
) -> HttpResponse {
    if !visible(state, id, account) {
        return no_such(object, id);
    }
    let objects = lock(&state.objects);
    let Some(mut found) = objects
        .get(id)
        .filter(|o| o["object"] == json!(object))
        .cloned()
    else {
        return no_such(object, id);
    };
    if expand.iter().any(|e| e == "latest_invoice") {
        if let Some(invoice) = found["latest_invoice"]
            .as_str()
            .and_then(|i| objects.get(i))
        {
            found["latest_invoice"] = invoice.clone();
        }
    }
    if object == "subscription" {
        embed_first_items(&mut found);
    }
    HttpResponse::Ok()
        .insert_header(("Request-Id", request_id()))
        .json(found)
}

/// One of the platform's events by id (a connected account's are
/// `billing.rs`'s).
fn retrieve_event(state: &State, id: &str) -> HttpResponse {
    let found = lock(&state.events)
        .iter()
        .find(|e| e["id"] == json!(id))
        .cloned();
    match found {
        Some(event) => HttpResponse::Ok()
            .insert_header(("Request-Id", request_id()))
            .json(event),
        None => no_such("event", id),
    }
}

/// How many of a subscription's items Stripe embeds in it; the rest are
/// listed at `/v1/subscription_items` (`items.has_more`).
const EMBEDDED_ITEMS: usize = 10;

/// A subscription as Stripe answers it: its first [`EMBEDDED_ITEMS`] items.
fn embed_first_items(subscription: &mut Value) {
    let more = match subscription["items"]["data"].as_array_mut() {
        Some(data) if data.len() > EMBEDDED_ITEMS => {
            data.truncate(EMBEDDED_ITEMS);
            true
        }
        _ => false,
    };
    if more {
        subscription["items"]["has_more"] = json!(true);
    }
}

/// `GET /v1/subscription_items?subscription=…`: every item of one
/// subscription, paged.
fn subscription_items(
    state: &State,
    query: &HashMap<String, String>,
    account: Option<&str>,
) -> HttpResponse {
    let Some(id) = query.get("subscription") else {
        return stripe_error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: subscription.",
        );
    };
    if !visible(state, id, account) {
        return no_such("subscription", id);
    }
    let items = lock(&state.objects)
        .get(id.as_str())
        .filter(|o| o["object"] == json!("subscription"))
        .and_then(|o| o["items"]["data"].as_array().cloned());
    match items {
        Some(items) => list(items, "/v1/subscription_items", query),
        None => no_such("subscription", id),
    }
}

fn request_id() -> String {
    format!("req_{:016x}", rand::random::<u64>())
}

fn list(items: Vec<Value>, url: &str, query: &HashMap<String, String>) -> HttpResponse {
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let start = match query.get("starting_after") {
        Some(after) => items
            .iter()
            .position(|o| o["id"] == json!(after))
            .map_or(items.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = items.iter().skip(start).take(limit).cloned().collect();
    let has_more = start + page.len() < items.len();
    HttpResponse::Ok()
        .insert_header(("Request-Id", request_id()))
        .json(json!({"object": "list", "data": page, "has_more": has_more, "url": url}))
}

async fn serve(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    lock(&state.seen).push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.query_string().to_owned(),
        version: header("stripe-version"),
        account: header("stripe-account"),
    });
    match header("authorization") {
        Some(auth) if auth == format!("Bearer {}", state.key) => {}
        Some(auth) => {
            let key = auth.trim_start_matches("Bearer ");
            let tail = &key[key.len().saturating_sub(4)..];
            return stripe_error(
                401,
                "invalid_request_error",
                None,
                &format!("Invalid API Key provided: sk_****{tail}"),
            );
        }
        None => {
            return stripe_error(
                401,
                "invalid_request_error",
                None,
                "You did not provide an API key.",
            )
        }
    }
    let fault = {
        let mut faults = lock(&state.faults);
        let i = faults
            .iter()
            .position(|(prefix, _)| path.starts_with(prefix.as_str()));
        i.and_then(|i| faults.remove(i)).map(|(_, f)| f)
    };
    match fault {
        Some(Fault::RateLimited {
            should_retry,
            retry_after,
        }) => {
            let mut res = HttpResponse::TooManyRequests();
            res.insert_header(("Request-Id", request_id()))
                .insert_header(("Stripe-Rate-Limited-Reason", "global-rate"));
            if let Some(r) = should_retry {
                res.insert_header(("Stripe-Should-Retry", r.to_string()));
            }
            if let Some(s) = retry_after {
                res.insert_header(("Retry-After", s.to_string()));
            }
            return res.json(
                json!({"error": {"type": "invalid_request_error", "code": "rate_limit",
                "message": "Request rate limit exceeded."}}),
            );
        }
        Some(Fault::UnknownPath) => {
            return stripe_error(
                404,
                "invalid_request_error",
                None,
                &format!("Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."),
            )
        }
        Some(Fault::ProxyNotFound) => {
            return HttpResponse::NotFound()
                .content_type("text/html")
                .body("<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>")
        }
        Some(Fault::Conflict) => {
            return stripe_error(
                409,
                "invalid_request_error",
                Some("lock_timeout"),
                "This object cannot be accessed right now because another API request or Stripe process is currently accessing it. If you see this error intermittently, retry the request.",
            )
        }
        Some(Fault::Forbidden) => {
            return stripe_error(
                403,
                "invalid_request_error",
                None,
                &format!("The provided key 'rk_test_****' does not have the required permissions for this endpoint ({path})."),
            )
        }
        Some(Fault::ServerError(status)) => {
            return stripe_error(status, "api_error", None, "An unknown error occurred")
        }
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::CutBody) => {
            let chunks: [Result<web::Bytes, std::io::Error>; 2] = [
                Ok(web::Bytes::from_static(b"{\"id\": \"")),
                Err(std::io::Error::other("connection dropped")),
            ];
            // The pause lets the status line and the first chunk go out.
            let body =
                futures_util::StreamExt::then(futures_util::stream::iter(chunks), |c| async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    c
                });
            return HttpResponse::Ok()
                .insert_header(("Request-Id", request_id()))
                .content_type("application/json")
                .streaming(body);
        }
        None => {}
    }
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let expand: Vec<String> = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "expand[]")
        .map(|(_, v)| v)
        .collect();
    let account = header("stripe-account");
    let hold = {
        let mut holds = lock(&state.holds);
        let i = holds
            .iter()
            .position(|(prefix, _)| path.starts_with(prefix.as_str()));
        i.map(|i| holds.remove(i).1)
    };
    let response = answer(&state, &path, &query, &expand, account);
    if let Some(hold) = hold {
        hold.arrived.send_replace(true);
        hold.wait_released().await;
    }
    response
}

/// The answer to a request that passed the key check and the faults.
fn answer(
    state: &State,
    path: &str,
    query: &HashMap<String, String>,
    expand: &[String],
    account: Option<String>,
) -> HttpResponse {
    if let Some(response) = billing::answer(state, path, query, expand, account.as_deref()) {
        return response;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "account"] => HttpResponse::Ok()
            .insert_header(("Request-Id", request_id()))
            .json(json!({"id": "acct_fake", "object": "account", "settings": {"dashboard": {"display_name": "Fake Co"}}})),
        ["v1", "events"] => {
            let mut events = lock(&state.events).clone();
            events.reverse(); // newest first, as Stripe lists them
            if let Some(gte) = query.get("created[gte]").and_then(|v| v.parse::<i64>().ok()) {
                events.retain(|e| e["created"].as_i64().unwrap_or(0) >= gte);
            }
            if query.get("delivery_success").map(String::as_str) == Some("false") {
                events.retain(|e| e["delivery_success"] == json!(false));
            }
            list(events, "/v1/events", query)
        }
        ["v1", "events", id] => retrieve_event(state, id),
        ["v1", collection @ ("subscriptions" | "customers")] => {
            let object = if *collection == "subscriptions" { "subscription" } else { "customer" };
            let mut items: Vec<Value> = lock(&state.objects)
                .values()
                .filter(|o| o["object"] == json!(object) && o["deleted"] != json!(true))
                .cloned()
                .collect();
            let owners = lock(&state.accounts).clone();
            items.retain(|o| {
                owners.get(o["id"].as_str().unwrap_or("")).map(String::as_str) == account.as_deref()
            });
            if object == "subscription" && query.get("status").map(String::as_str) != Some("all") {
                items.retain(|o| o["status"] != json!("canceled"));
            }
            items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            if object == "subscription" {
                items.iter_mut().for_each(embed_first_items);
                if expand.iter().any(|e| e == "data.latest_invoice") {
                    let objects = lock(&state.objects);
                    for sub in &mut items {
                        if let Some(invoice) = sub["latest_invoice"]
                            .as_str()
                            .and_then(|i| objects.get(i))
                        {
                            sub["latest_invoice"] = invoice.clone();
                        }
                    }
                }
            }
            list(items, &format!("/v1/{collection}"), query)
        }
        ["v1", "subscription_items"] => subscription_items(state, query, account.as_deref()),
        ["v1", "customers", id] => retrieve(state, "customer", id, expand, account.as_deref()),
        ["v1", "subscriptions", id] => retrieve(state, "subscription", id, expand, account.as_deref()),
        ["v1", "invoices", id] => retrieve(state, "invoice", id, expand, account.as_deref()),
        ["v1", "payment_intents", id] => retrieve(state, "payment_intent", id, expand, account.as_deref()),
        ["v1", "disputes", id] => retrieve(state, "dispute", id, expand, account.as_deref()),
        ["v1", "checkout", "sessions", id] => retrieve(state, "checkout.session", id, expand, account.as_deref()),
        _ => stripe_error(404, "invalid_request_error", None, &format!("Unrecognized request URL (GET: {path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.")),
    }
}
