//! What a Stripe API call can end in, with what the caller needs to decide:
//! retry (and when), record the object as gone, or give up.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// 404: deleted, or not visible to this key / account / mode.
    #[error("not found ({message})")]
    NotFound {
        message: String,
        request_id: Option<String>,
    },
    #[error("the API key was rejected (401): {message} — check STRIPE_API_KEY")]
    Unauthorized { message: String },
    #[error("the API key may not do this (403): {message} — a restricted key needs read access to this resource")]
    Forbidden { message: String },
    #[error("rate limited by Stripe (429): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("invalid request ({status}): {message}")]
    InvalidRequest {
        status: u16,
        message: String,
        code: Option<String>,
    },
    #[error("Stripe server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("cannot reach the Stripe API: {0}")]
    Network(String),
    #[error("the Stripe API did not answer in time")]
    Timeout,
    #[error("Stripe client configuration: {0}")]
    Config(String),
    #[error("unexpected answer from the Stripe API: {0}")]
    Decode(String),
}

impl StripeError {
    /// Whether trying again later may succeed. A rejected key (401/403)
    /// counts: the operator can fix the key or its permissions and the
    /// event then goes through; a 404, another 4xx or a bad configuration
    /// will answer the same every time.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            StripeError::NotFound { .. }
                | StripeError::InvalidRequest { .. }
                | StripeError::Config(_)
        )
    }

    /// Stripe's hint of when to try again, if it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StripeError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds the error for a non-2xx answer from its status and body.
    pub fn from_response(
        status: u16,
        body: &str,
        retry_after: Option<Duration>,
        request_id: Option<String>,
    ) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| body.chars().take(200).collect());
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        match status {
            404 => StripeError::NotFound {
                message,
                request_id,
            },
            401 => StripeError::Unauthorized { message },
            403 => StripeError::Forbidden { message },
            429 => StripeError::RateLimited {
                retry_after,
                message,
            },
            s if s >= 500 => StripeError::Server { status: s, message },
            s => StripeError::InvalidRequest {
                status: s,
                message,
                code,
            },
        }
    }
}
