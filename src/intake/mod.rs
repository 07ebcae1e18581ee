//! The public webhook listener: raw body → signature → envelope → outbox →
//! `200 {"received":true}`, and nothing slow in between.
//!
//! Every request ends in exactly one log line with the stable fields
//! `endpoint`, `event_id`, `event_type`, `sig_verified`, `outcome`, `reason`,
//! `status` and `duration_ms` (see docs/operations.md).
//!
//! The envelope parser is [`crate::stripe::envelope`], not part of this module:
//! catch-up parses the events it lists with it too.

pub(crate) mod commit;
pub(crate) mod signature;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::config::Endpoint;
use crate::live::Live;
use crate::store::outbox::Inserted;
use crate::store::{now_ms, EpochMs, Store};
use crate::stripe::envelope;
use commit::{CommitError, CommitQueue};

/// Headers kept with each stored delivery (for the inspector).
const KEPT_HEADERS: &[&str] = &[
    "stripe-signature",
    "user-agent",
    "content-type",
    "x-forwarded-for",
    "x-real-ip",
    "x-request-id",
];

/// What every intake request shares.
pub(crate) struct IntakeState {
    pub queue: CommitQueue,
    pub store: Store,
    pub max_body_bytes: usize,
    pub write_timeout: Duration,
    pub retry_after_secs: u64,
    pub activity: crate::metrics::Activity,
}

/// One configured webhook endpoint, as the handler sees it. Its signing
/// secrets sit in a [`Live`] cell that a configuration reload replaces
/// (`app::reload`); the rest of the endpoint is fixed at start.
pub struct EndpointState {
    pub endpoint: Endpoint,
    secrets: Live<Vec<Vec<u8>>>,
}

impl EndpointState {
    pub fn new(endpoint: Endpoint) -> Self {
        let secrets = Live::new(secret_bytes(&endpoint.secrets));
        EndpointState { endpoint, secrets }
    }

    /// Verifies with `secrets` from the next request on; requests under
    /// way finish with the secrets they started with.
    pub fn set_secrets(&self, secrets: &[SecretString]) {
        self.secrets.set(secret_bytes(secrets));
    }
}

fn secret_bytes(secrets: &[SecretString]) -> Vec<Vec<u8>> {
    secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes().to_vec())
        .collect()
}

/// A refusal: its status, a stable reason code and a message in the SDKs' words.
#[derive(Debug, Clone)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            status,
            reason,
            message: message.into(),
        }
    }

    fn response(&self, retry_after: Option<u64>) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            res.insert_header((header::ALLOW, "POST"));
        }
        res.json(json!({"error": {"reason": self.reason, "message": self.message}}))
    }
}

/// What is known of a request so far, for its log line.
#[derive(Default)]
struct RequestLog {
    event_id: Option<String>,
    event_type: Option<String>,
    sig_verified: bool,
}

/// Registers the endpoints and health checks on an actix `ServiceConfig`.
pub(crate) fn configure(
    cfg: &mut web::ServiceConfig,
    state: web::Data<IntakeState>,
    endpoints: &[Arc<EndpointState>],
) {
    cfg.app_data(state)
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
    for ep in endpoints {
        cfg.service(
            web::resource(ep.endpoint.path.as_str())
                .app_data(web::Data::from(Arc::clone(ep)))
                .route(web::post().to(receive))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

/// Answers unknown paths (the app's default service).
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    let rejection = Rejection::new(
        StatusCode::NOT_FOUND,
        "unknown_path",
        format!("No webhook endpoint is configured at {}", req.path()),
    );
    log_rejection(
        None,
        &RequestLog::default(),
        &rejection,
        Instant::now(),
        req.path(),
    );
    rejection.response(None)
}

async fn method_not_allowed(req: HttpRequest, ep: web::Data<EndpointState>) -> HttpResponse {
    let rejection = Rejection::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed: Stripe delivers events with POST",
            req.method()
        ),
    );
    log_rejection(
        Some(&ep.endpoint.name),
        &RequestLog::default(),
        &rejection,
        Instant::now(),
        req.path(),
    );
    rejection.response(None)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<IntakeState>) -> HttpResponse {
    let store = state.store.clone();
    match web::block(move || store.check_ready()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "error": e.to_string()}))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "error": e.to_string()})),
    }
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<IntakeState>,
    ep: web::Data<EndpointState>,
) -> HttpResponse {
    let started = Instant::now();
    let mut log = RequestLog::default();
    let result = accept(&req, payload, &state, &ep, &mut log).await;
    let endpoint = ep.endpoint.name.clone();
    if log.sig_verified {
        state.activity.verified(&endpoint, now_ms());
    }
    match &result {
        Ok(outcome) => {
            metrics::counter!(crate::metrics::WEBHOOK_REQUESTS, "endpoint" => endpoint, "outcome" => outcome.as_str())
                .increment(1);
        }
        Err(rejection) => {
            if rejection.reason.contains("signature") || rejection.reason.starts_with("timestamp_")
            {
                metrics::counter!(crate::metrics::SIGNATURE_FAILURES, "endpoint" => endpoint.clone(), "reason" => rejection.reason)
                    .increment(1);
            }
            metrics::counter!(crate::metrics::WEBHOOK_REQUESTS, "endpoint" => endpoint, "outcome" => "rejected")
                .increment(1);
        }
    }
    match result {
        Ok(outcome) => {
            tracing::info!(
                endpoint = %ep.endpoint.name,
                event_id = log.event_id.as_deref().unwrap_or(""),
                event_type = log.event_type.as_deref().unwrap_or(""),
                sig_verified = true,
                outcome = outcome.as_str(),
                status = 200u16,
                duration_ms = elapsed_ms(started),
                "webhook {}",
                outcome.as_str()
            );
            // Fixed answers: no JSON value built per request.
            let body: &'static str = match outcome {
                Inserted::Stored => r#"{"received":true}"#,
                Inserted::Duplicate => r#"{"received":true,"duplicate":true}"#,
            };
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
        Err(rejection) => {
            log_rejection(
                Some(&ep.endpoint.name),
                &log,
                &rejection,
                started,
                req.path(),
            );
            let retry_after = (rejection.status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(state.retry_after_secs);
            rejection.response(retry_after)
        }
    }
}

/// The intake pipeline for one delivery.
async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &IntakeState,
    ep: &EndpointState,
    log: &mut RequestLog,
) -> Result<Inserted, Rejection> {
    let too_large = || {
        Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "The body is larger than {} bytes (intake.max_body_bytes)",
                state.max_body_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > state.max_body_bytes) {
        return Err(too_large());
    }
    let body = match payload.to_bytes_limited(state.max_body_bytes).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("The request body could not be read: {e}"),
            ))
        }
        Err(_) => return Err(too_large()),
    };

    let header_value = match req.headers().get("stripe-signature").map(|v| v.to_str()) {
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                signature::SignatureError::Unparsable.reason(),
                signature::SignatureError::Unparsable.to_string(),
            ))
        }
        None => None,
    };
    let verified = signature::verify(
        header_value,
        &body,
        ep.secrets.get().as_slice(),
        now_ms() / 1000,
        ep.endpoint.tolerance_secs,
    )
    .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()))?;
    log.sig_verified = true;

    // The stored payload; taking the body's buffer (no copy when, as
    // usual, nothing else holds it).
    let text = String::from_utf8(Vec::from(body)).map_err(|_| {
        Rejection::new(
            StatusCode::BAD_REQUEST,
            "not_an_event",
            "The body is not a Stripe event: it is not UTF-8 JSON",
        )
    })?;
    let env = envelope::parse(text.as_bytes())
        .map_err(|e| Rejection::new(StatusCode::BAD_REQUEST, "not_an_event", e.to_string()))?;
    log.event_id = Some(env.id.clone());
    log.event_type = Some(env.event_type.clone());

    if env.livemode != ep.endpoint.mode.is_live() {
        let event_mode = if env.livemode { "live" } else { "test" };
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "livemode_mismatch",
            format!(
                "This endpoint is in {} mode but the event is a {event_mode}-mode event: point Stripe's {event_mode}-mode webhook at an endpoint configured with mode = \"{event_mode}\"",
                ep.endpoint.mode.as_str()
            ),
        ));
    }

    let event = crate::store::outbox::NewEvent::from_envelope(
        env,
        &ep.endpoint.name,
        text,
        kept_headers(req),
        i32::try_from(verified.secret_index).unwrap_or(i32::MAX),
        EpochMs::now(),
        crate::store::outbox::LIVE,
    );
    state
        .queue
        .submit(event, state.write_timeout)
        .await
        .map_err(|e| {
            let reason = match e {
                CommitError::Timeout(_) => "storage_timeout",
                CommitError::Store(_) | CommitError::Closed => "storage_unavailable",
            };
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                reason,
                format!("The event was not stored ({e}); Stripe will retry the delivery"),
            )
        })
}

fn kept_headers(req: &HttpRequest) -> String {
    let mut map = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(value) = req.headers().get(*name).and_then(|v| v.to_str().ok()) {
            map.insert((*name).to_owned(), value.into());
        }
    }
    if let Some(peer) = req.peer_addr() {
        map.insert("peer".to_owned(), peer.to_string().into());
    }
    serde_json::Value::Object(map).to_string()
}

fn log_rejection(
    endpoint: Option<&str>,
    log: &RequestLog,
    rejection: &Rejection,
    started: Instant,
    path: &str,
) {
    let status = rejection.status.as_u16();
    let fields = (
        endpoint.unwrap_or(""),
        log.event_id.as_deref().unwrap_or(""),
        log.event_type.as_deref().unwrap_or(""),
    );
    if rejection.status.is_server_error() {
        tracing::error!(
            endpoint = fields.0,
            event_id = fields.1,
            event_type = fields.2,
            sig_verified = log.sig_verified,
            outcome = "rejected",
            reason = rejection.reason,
            status,
            duration_ms = elapsed_ms(started),
            path,
            "webhook rejected: {}",
            rejection.message
        );
    } else {
        tracing::warn!(
            endpoint = fields.0,
            event_id = fields.1,
            event_type = fields.2,
            sig_verified = log.sig_verified,
            outcome = "rejected",
            reason = rejection.reason,
            status,
            duration_ms = elapsed_ms(started),
            path,
            "webhook rejected: {}",
            rejection.message
        );
    }
}

fn elapsed_ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}
