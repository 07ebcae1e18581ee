//! What a Stripe API call can end in, with what the caller needs to decide:
//! retry (and when), record the object as gone, or give up.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// 404 with Stripe's `resource_missing`: the object named in `message`
    /// is deleted, or not visible to this key / account / mode. Whether it
    /// is the object that was asked for is the caller's question
    /// ([`StripeError::is_missing`]).
    #[error("not found ({message})")]
    NotFound {
        message: String,
        request_id: Option<String>,
    },
    /// Any other 404: a wrong path (an API base ending in `/v1`), a proxy,
    /// an unknown route. Says nothing about the object: retried, never
    /// taken for "deleted".
    #[error("404 that is not Stripe's resource_missing ({message}): check STRIPE_API_BASE (scheme and host only, no /v1) and any proxy in between")]
    UnexpectedNotFound {
        message: String,
        request_id: Option<String>,
    },
    #[error("the API key was rejected (401): {message} — check STRIPE_API_KEY")]
    Unauthorized { message: String },
    #[error("the API key may not do this (403): {message} — a restricted key needs read access to this resource")]
    Forbidden { message: String },
    /// 409: another request holds the object (`lock_timeout`), or an
    /// idempotency clash. Transient: retried like a 429 or a 5xx.
    #[error("conflict at Stripe (409): {message}")]
    Conflict { message: String },
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
    /// event then goes through, and so does a 404 that is not Stripe's
    /// `resource_missing` (a wrong API base, a proxy) and a 409 that
    /// outlasted the client's own retries. Stripe's
    /// `resource_missing`, another 4xx or a bad configuration will answer
    /// the same every time.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            StripeError::NotFound { .. }
                | StripeError::InvalidRequest { .. }
                | StripeError::Config(_)
        )
    }

    /// Whether this is Stripe's `resource_missing` for the object `id`
    /// itself (its message names the id: `No such subscription: 'sub_…'`),
    /// not for an expansion, another object, or a path Stripe does not know.
    pub fn is_missing(&self, id: &str) -> bool {
        match self {
            StripeError::NotFound { message, .. } => message.contains(&format!("'{id}'")),
            _ => false,
        }
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
            404 if code.as_deref() == Some("resource_missing") => StripeError::NotFound {
                message,
                request_id,
            },
            404 => StripeError::UnexpectedNotFound {
                message,
                request_id,
            },
            401 => StripeError::Unauthorized { message },
            403 => StripeError::Forbidden { message },
            409 => StripeError::Conflict { message },
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

#[cfg(test)]
mod tests {
    use super::*;

    const MISSING: &str = r#"{"error":{"code":"resource_missing","param":"id","message":"No such subscription: 'sub_123'","type":"invalid_request_error"}}"#;
    const UNKNOWN_PATH: &str = r#"{"error":{"type":"invalid_request_error","message":"Unrecognized request URL (GET: /v1/v1/subscriptions/sub_123). Please see https://stripe.com/docs or we can help at https://support.stripe.com/."}}"#;

    #[test]
    fn only_resource_missing_for_the_id_asked_for_is_missing() {
        let e = StripeError::from_response(404, MISSING, None, None);
        assert!(e.is_missing("sub_123"));
        assert!(!e.is_retryable());
        assert!(!e.is_missing("sub_12"), "another id");
        assert!(!e.is_missing("sub_999"), "another id");
    }

    #[test]
    fn a_conflict_is_retryable() {
        let body = r#"{"error":{"type":"invalid_request_error","code":"lock_timeout","message":"This object cannot be accessed right now because another API request or Stripe process is currently accessing it."}}"#;
        let e = StripeError::from_response(409, body, None, None);
        assert!(matches!(e, StripeError::Conflict { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn other_404s_are_retryable_errors_not_missing() {
        for body in [
            UNKNOWN_PATH,
            "<html><body>404 Not Found</body></html>",
            "",
            "{}",
        ] {
            let e = StripeError::from_response(404, body, None, None);
            assert!(
                matches!(e, StripeError::UnexpectedNotFound { .. }),
                "{body}: {e:?}"
            );
            assert!(!e.is_missing("sub_123"), "{body}");
            assert!(e.is_retryable(), "{body}");
        }
    }
}
