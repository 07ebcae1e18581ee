//! One request to a destination: the original body byte for byte, signed
//! now with the destination's secret in Stripe's scheme (the intake's
//! signing code), and how the answer counts.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use secrecy::ExposeSecret;

use crate::config::Destination;
use crate::intake::signature;
use crate::store::deliveries::Delivery;

/// What the destination answered.
#[derive(Debug)]
pub enum Answer {
    Delivered(u16),
    /// 410: the app says this endpoint is gone.
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Delivered(s) => Some(*s),
            Answer::Gone => Some(410),
            Answer::Failed { status, .. } => *status,
        }
    }
    pub fn error(&self) -> Option<String> {
        match self {
            Answer::Delivered(_) => None,
            Answer::Gone => Some("410 Gone: destination paused".to_owned()),
            Answer::Failed { error, .. } => Some(error.clone()),
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Answer::Failed { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The `Stripe-Signature` header for `body` at unix second `t`.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", signature::sign(secret.as_bytes(), t, body))
}

/// The signed request for `body` (headers without the body's own).
fn request(
    client: &reqwest::Client,
    d: &Destination,
    body: &[u8],
    delivery_id: &str,
    attempt: i32,
) -> Result<reqwest::RequestBuilder, String> {
    // Wall time, not the runner's clock: the app checks the timestamp
    // against its own clock.
    let t = crate::store::now_ms() / 1000;
    let mut request = client
        .post(d.url.clone())
        .timeout(d.timeout)
        .header(CONTENT_TYPE, "application/json")
        .header(
            "Stripe-Signature",
            signature_header(d.secret.expose_secret(), t, body),
        )
        .header("Stripe-Hookd-Delivery", delivery_id)
        .header("Stripe-Hookd-Attempt", attempt.to_string());
    for (name, value) in &d.headers {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            format!("header {name}: the configured value is not a valid header value")
        })?;
        value.set_sensitive(true);
        request = request.header(name.as_str(), value);
    }
    Ok(request)
}

pub async fn send(client: &reqwest::Client, d: &Destination, delivery: &Delivery) -> Answer {
    let body = delivery.payload.clone().into_bytes();
    let request = match request(client, d, &body, &delivery.delivery_id, delivery.attempts) {
        Ok(request) => request,
        Err(error) => {
            return Answer::Failed {
                status: None,
                error,
                retry_after: None,
            }
        }
    };
    let response = match request.body(body).send().await {
        Ok(response) => response,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            return Answer::Failed {
                status: None,
                error: format!("{kind}: {e}"),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Answer::Delivered(status.as_u16());
    }
    if status == reqwest::StatusCode::GONE {
        return Answer::Gone;
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = if status.is_redirection() {
        format!("answered {status}: redirects are not followed; configure the final URL")
    } else {
        format!("answered {status}")
    };
    Answer::Failed {
        status: Some(status.as_u16()),
        error,
        retry_after,
    }
}

/// What a destination answered to a ping.
#[derive(Debug)]
pub struct Ping {
    pub body: String,
    pub status: u16,
    /// The first 2 KB of the answer.
    pub answer: String,
    pub duration_ms: u128,
}

/// Sends `destination` a signed `stripe_hookd.ping` event, shaped like a
/// Stripe event (not recorded, not retried) and returns what it answered.
pub async fn ping(d: &Destination) -> anyhow::Result<Ping> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let now = crate::store::now_ms() / 1000;
    let id = format!("evt_ping_{:016x}", rand::random::<u64>());
    let body = serde_json::json!({
        "id": id,
        "object": "event",
        "type": "stripe_hookd.ping",
        "created": now,
        "livemode": false,
        "api_version": null,
        "pending_webhooks": 0,
        "data": {"object": {"object": "ping", "destination": d.name}},
    })
    .to_string();
    let started = std::time::Instant::now();
    let response = request(&client, d, body.as_bytes(), &format!("dlv_ping_{id}"), 1)
        .map_err(anyhow::Error::msg)?
        .body(body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    let answer = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).into_owned();
    Ok(Ping {
        body,
        status,
        answer,
        duration_ms: started.elapsed().as_millis(),
    })
}
