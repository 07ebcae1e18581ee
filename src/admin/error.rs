//! The admin API's errors: each kind has its HTTP status and a stable reason
//! code, answered as `{"error": {"reason": …, "message": …}}`. Handlers
//! return `Result<_, AdminError>` and use `?`; the error is logged once, here,
//! where it becomes the response (server errors with their whole cause chain).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::reconcile::ResyncError;
use crate::store::events::DiscardError;
use crate::store::outbox::EventStatus;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// The request's filter cannot be used (bad status, limit out of range…).
    #[error("{0}")]
    InvalidFilter(String),
    /// `POST /v1/replay` with a filter that names no events: it would
    /// re-queue the whole outbox.
    #[error("Say what to replay: a filter such as {{\"status\": \"dead\"}} or {{\"type\": \"invoice.*\", \"since\": <epoch ms>}}; an empty filter would re-queue the whole outbox")]
    EmptyFilter,
    #[error("Say why: {{\"reason\": \"…\"}}")]
    ReasonRequired,
    #[error("No event {0}")]
    NoSuchEvent(String),
    #[error("No such job (jobs live as long as the daemon)")]
    NoSuchJob,
    #[error("No delivery {0}")]
    NoSuchDelivery(String),
    #[error("No destination named {0:?} is configured")]
    NoSuchDestination(String),
    /// A redeliver or discard of a delivery the forwarder holds: left as
    /// it is (the attempt under way records its own outcome).
    #[error(
        "Delivery {0} is being sent right now: left as it is; try again once the attempt ended"
    )]
    DeliveryInFlight(String),
    /// Other writers kept changing the delivery's status meanwhile.
    #[error("Delivery {id} changed meanwhile (now {status}): left as it is; try again")]
    DeliveryChanged { id: String, status: String },
    #[error("Delivery {id} is {status}: only dead or pending deliveries can be discarded")]
    DeliveryNotDiscardable { id: String, status: String },
    #[error("Event {id} is {status}, not dead: use /v1/events/{id}/replay")]
    NotDead { id: String, status: EventStatus },
    /// Only dead events can be discarded.
    #[error(transparent)]
    NotDiscardable(DiscardError),
    #[error("{what} is already running: job {job}")]
    AlreadyRunning { what: &'static str, job: u64 },
    #[error(
        "No Stripe API key is configured (STRIPE_API_KEY): resync, reconcile and catch-up need one"
    )]
    NoApiKey,
    #[error(transparent)]
    Resync(#[from] ResyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking thread pool could not run the store call.
    #[error(transparent)]
    Blocking(#[from] actix_web::error::BlockingError),
}

impl From<DiscardError> for AdminError {
    fn from(e: DiscardError) -> Self {
        match e {
            DiscardError::NotFound(id) => AdminError::NoSuchEvent(id),
            DiscardError::Store(e) => AdminError::Store(e),
            e @ DiscardError::NotDead { .. } => AdminError::NotDiscardable(e),
        }
    }
}

impl AdminError {
    /// The stable, machine-readable reason code.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AdminError::InvalidFilter(_) => "invalid_filter",
            AdminError::EmptyFilter => "filter_required",
            AdminError::ReasonRequired => "reason_required",
            AdminError::NoSuchEvent(_) => "no_such_event",
            AdminError::NoSuchJob => "no_such_job",
            AdminError::NoSuchDelivery(_) => "no_such_delivery",
            AdminError::NoSuchDestination(_) => "no_such_destination",
            AdminError::DeliveryInFlight(_) => "in_flight",
            AdminError::DeliveryChanged { .. } => "changed_meanwhile",
            AdminError::DeliveryNotDiscardable { .. } => "not_discardable",
            AdminError::NotDead { .. } | AdminError::NotDiscardable(_) => "not_dead",
            AdminError::AlreadyRunning { .. } => "already_running",
            AdminError::NoApiKey => "no_api_key",
            AdminError::Resync(ResyncError::UnknownId(_)) => "unknown_object",
            AdminError::Resync(_) => "resync_failed",
            AdminError::Store(_) | AdminError::Blocking(_) => "internal",
        }
    }
}

/// `{"error": {"reason": …, "message": …}}` with `status`.
pub(crate) fn error(status: StatusCode, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"reason": reason, "message": message}}))
}

/// The error and its causes, outermost first.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::InvalidFilter(_)
            | AdminError::EmptyFilter
            | AdminError::ReasonRequired
            | AdminError::Resync(ResyncError::UnknownId(_)) => StatusCode::BAD_REQUEST,
            AdminError::NoSuchEvent(_)
            | AdminError::NoSuchJob
            | AdminError::NoSuchDelivery(_)
            | AdminError::NoSuchDestination(_) => StatusCode::NOT_FOUND,
            AdminError::DeliveryInFlight(_)
            | AdminError::DeliveryChanged { .. }
            | AdminError::DeliveryNotDiscardable { .. }
            | AdminError::NotDead { .. }
            | AdminError::NotDiscardable(_)
            | AdminError::AlreadyRunning { .. } => StatusCode::CONFLICT,
            AdminError::NoApiKey => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Resync(_) => StatusCode::BAD_GATEWAY,
            AdminError::Store(_) | AdminError::Blocking(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let reason = self.reason();
        if status.is_server_error() {
            tracing::error!(error = %chain(self), reason, status = status.as_u16(), "admin request failed");
        } else {
            tracing::warn!(error = %self, reason, status = status.as_u16(), "admin request refused");
        }
        error(status, reason, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_keeps_its_status_reason_and_cause() {
        let e = AdminError::from(DiscardError::NotFound("evt_1".to_owned()));
        assert_eq!(
            (e.status_code(), e.reason(), e.to_string()),
            (
                StatusCode::NOT_FOUND,
                "no_such_event",
                "No event evt_1".to_owned()
            )
        );
        let e = AdminError::from(StoreError::Query(diesel::result::Error::NotFound));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept");
        let e = AdminError::Resync(ResyncError::UnknownId("x_1".to_owned()));
        assert_eq!(
            (e.status_code(), e.reason()),
            (StatusCode::BAD_REQUEST, "unknown_object")
        );
    }
}
