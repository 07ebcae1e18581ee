//! One request to a destination: the original body byte for byte, signed
//! now with the destination's secret in its scheme (Stripe's, with the
//! shared signing code in `util::signing`, or Standard Webhooks', with the spec's own crate
//! `standardwebhooks`), and how the answer counts.

use std::time::Duration;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use secrecy::ExposeSecret;

use crate::config::{Destination, Signature};
use crate::store::deliveries::Delivery;
use crate::util::signing;

/// What the destination answered.
#[derive(Debug)]
pub(super) enum Answer {
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
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            Answer::Delivered(s) => Some(*s),
            Answer::Gone => Some(410),
            Answer::Failed { status, .. } => *status,
        }
    }
    pub(super) fn error(&self) -> Option<String> {
        match self {
            Answer::Delivered(_) => None,
            Answer::Gone => Some("410 Gone: destination paused".to_owned()),
            Answer::Failed { error, .. } => Some(error.clone()),
        }
    }
    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            Answer::Failed { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The `Stripe-Signature` header for `body` at unix second `t`: one
/// `v1=` per secret (Stripe's SDKs accept the request when any matches).
pub(super) fn signature_header<S: AsRef<str>>(
    secrets: impl IntoIterator<Item = S>,
    t: i64,
    body: &[u8],
) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(",v1=");
        header.push_str(&signing::sign(secret.as_ref().as_bytes(), t, body));
    }
    header
}

/// The Standard Webhooks `webhook-signature` header for `body` sent as
/// message `id` at unix second `t`: `v1,<base64 HMAC-SHA256 of
/// "{id}.{t}.{body}">` under the key that each secret (`whsec_…`) encodes,
/// space-separated (the spec's libraries accept the request when any
/// matches).
pub(super) fn standard_signature_header<S: AsRef<str>>(
    secrets: impl IntoIterator<Item = S>,
    id: &str,
    t: i64,
    body: &[u8],
) -> Result<String, String> {
    let mut signatures = Vec::new();
    for secret in secrets {
        let webhook = standardwebhooks::Webhook::new(secret.as_ref())
            .map_err(|e| format!("the destination's standard secret: {e}"))?;
        signatures.push(webhook.sign(id, t, body).map_err(|e| {
            format!("signing the body (Standard Webhooks signs UTF-8 bodies): {e}")
        })?);
    }
    Ok(signatures.join(" "))
}

/// The header carrying a reconciled delivery's place in the order of
/// stripe-hookd's fetches of its object (docs/forwarding.md, "The
/// sequence header").
pub(super) const SEQUENCE_HEADER: &str = "Stripe-Hookd-Sequence";

/// What identifies one request: the delivery, its attempt, and (for a
/// delivery recorded after the reconcile) its object's fetch number.
#[derive(Debug, Clone, Copy)]
struct Identity<'a> {
    delivery_id: &'a str,
    attempt: i32,
    sequence: Option<i64>,
}

/// The signed request for `body` (headers without the body's own), and
/// the headers as recorded in the attempt history: the signature itself
/// and the extra headers' values redacted.
fn request(
    client: &reqwest::Client,
    d: &Destination,
    body: &[u8],
    id: Identity<'_>,
) -> Result<(reqwest::RequestBuilder, Vec<(String, String)>), String> {
    // Wall time, not the runner's clock: the app checks the timestamp
    // against its own clock.
    let t = crate::store::now_ms() / 1000;
    let mut shown = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    let mut request = client
        .post(d.url.clone())
        .timeout(d.timeout)
        .header(CONTENT_TYPE, "application/json");
    let secrets = || d.signing_secrets().map(ExposeSecret::expose_secret);
    let count = d.signing_secrets().count();
    match d.signature {
        Signature::Stripe => {
            shown.push((
                "Stripe-Signature".to_owned(),
                format!("t={t}{}", ",v1=[redacted]".repeat(count)),
            ));
            request = request.header("Stripe-Signature", signature_header(secrets(), t, body));
        }
        Signature::Standard => {
            // The delivery id is the message id: the same for every
            // attempt, so the spec's de-duplication on `webhook-id` works
            // across retries.
            let signature = standard_signature_header(secrets(), id.delivery_id, t, body)?;
            shown.extend([
                ("webhook-id".to_owned(), id.delivery_id.to_owned()),
                ("webhook-timestamp".to_owned(), t.to_string()),
                (
                    "webhook-signature".to_owned(),
                    vec!["v1,[redacted]"; count].join(" "),
                ),
            ]);
            request = request
                .header("webhook-id", id.delivery_id)
                .header("webhook-timestamp", t.to_string())
                .header("webhook-signature", signature);
        }
    }
    shown.extend([
        (
            "Stripe-Hookd-Delivery".to_owned(),
            id.delivery_id.to_owned(),
        ),
        ("Stripe-Hookd-Attempt".to_owned(), id.attempt.to_string()),
    ]);
    request = request
        .header("Stripe-Hookd-Delivery", id.delivery_id)
        .header("Stripe-Hookd-Attempt", id.attempt.to_string());
    if let Some(sequence) = id.sequence {
        shown.push((SEQUENCE_HEADER.to_owned(), sequence.to_string()));
        request = request.header(SEQUENCE_HEADER, sequence.to_string());
    }
    shown.push(("User-Agent".to_owned(), USER_AGENT.to_owned()));
    for (name, value) in &d.headers {
        let mut value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
            format!("header {name}: the configured value is not a valid header value")
        })?;
        value.set_sensitive(true);
        request = request.header(name.as_str(), value);
        shown.push((name.clone(), "[redacted]".to_owned()));
    }
    Ok((request, shown))
}

/// The user agent of every request.
pub(super) const USER_AGENT: &str = concat!("stripe-hookd/", env!("CARGO_PKG_VERSION"));

/// How much of an answer's body is kept.
pub(super) const BODY_KEPT: usize = 2048;

/// One attempt: what was sent and what came back.
#[derive(Debug)]
pub(super) struct Sent {
    pub answer: Answer,
    /// The request headers, secrets redacted.
    pub request_headers: Vec<(String, String)>,
    /// The first [`BODY_KEPT`] bytes of the answer (lossy UTF-8).
    pub response_body: Option<String>,
}

pub(super) async fn send(client: &reqwest::Client, d: &Destination, delivery: &Delivery) -> Sent {
    let Some(body) = delivery.payload.clone().map(String::into_bytes) else {
        // A claim dead-letters these ([`deliveries::BODY_MISSING`]); never sent.
        return Sent {
            answer: Answer::Failed {
                status: None,
                error: crate::store::deliveries::BODY_MISSING.to_owned(),
                retry_after: None,
            },
            request_headers: Vec::new(),
            response_body: None,
        };
    };
    let identity = Identity {
        delivery_id: &delivery.delivery_id,
        attempt: delivery.attempts,
        sequence: delivery.sequence,
    };
    let (request, request_headers) = match request(client, d, &body, identity) {
        Ok(request) => request,
        Err(error) => {
            return Sent {
                answer: Answer::Failed {
                    status: None,
                    error,
                    retry_after: None,
                },
                request_headers: Vec::new(),
                response_body: None,
            }
        }
    };
    let (answer, response_body) = exchange(request.body(body), &d.url).await;
    Sent {
        answer,
        request_headers,
        response_body,
    }
}

/// Sends the request to `url`; the answer and the first 2 KB of its body.
async fn exchange(
    request: reqwest::RequestBuilder,
    url: &reqwest::Url,
) -> (Answer, Option<String>) {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) => return (failed(e, url), None),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
    let mut kept = Vec::new();
    // Read no more than what is kept; an error reading the body of a 2xx
    // does not undo the app's answer.
    while kept.len() < BODY_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                kept.extend_from_slice(&chunk[..chunk.len().min(BODY_KEPT - kept.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    let body = Some(String::from_utf8_lossy(&kept).into_owned());
    if status.is_success() {
        return (Answer::Delivered(status.as_u16()), body);
    }
    if status == reqwest::StatusCode::GONE {
        return (Answer::Gone, body);
    }
    let error = if status.is_redirection() {
        format!("answered {status}: redirects are not followed; configure the final URL")
    } else {
        format!("answered {status}")
    };
    (
        Answer::Failed {
            status: Some(status.as_u16()),
            error,
            retry_after,
        },
        body,
    )
}

fn failed(e: reqwest::Error, url: &reqwest::Url) -> Answer {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    Answer::Failed {
        status: None,
        error: format!("{kind}: {}", describe(e, url)),
        retry_after: None,
    }
}

/// A request error as it is logged and stored: reqwest's message with its
/// causes, and the URL redacted (reqwest's own message would carry the
/// URL whole, credentials and query tokens included).
fn describe(e: reqwest::Error, url: &reqwest::Url) -> String {
    let e = e.without_url();
    let mut text = format!("{e} for url ({})", crate::redact::url(url.as_str()));
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); a
/// date in the past means now. `None` when it is neither.
pub(super) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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
    let identity = Identity {
        delivery_id: &format!("dlv_ping_{id}"),
        attempt: 1,
        sequence: None,
    };
    let response = request(&client, d, body.as_bytes(), identity)
        .map_err(anyhow::Error::msg)?
        .0
        .body(body.clone())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(describe(e, &d.url)))?;
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::{parse_retry_after, standard_signature_header};

    /// The spec repository's published test vectors
    /// (standard-webhooks/standard-webhooks): `libraries/testdata/signatures.json`
    /// (a secret given without `whsec_`), and the vector every reference
    /// library's `test_sign` checks (`libraries/rust/src/lib.rs`, and the
    /// same in the Python, JavaScript, Go… libraries).
    #[test]
    fn standard_signatures_match_the_specs_published_vectors() {
        assert_eq!(
            standard_signature_header(
                ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_696_200_454,
                br#"{"type": "example.created", "timestamp":"2023-09-28T19:20:22+00:00", "data":{"str":"string","bool":true,"int":42}}"#,
            )
            .as_deref(),
            Ok("v1,GgjvufBlIj71MBIVQotYGb+xEC3LNXCsIZp0HsDC8qs=")
        );
        assert_eq!(
            standard_signature_header(
                ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"],
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1_649_367_553,
                br#"{"email":"test@example.com","username":"test_user"}"#,
            )
            .as_deref(),
            Ok("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=")
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        let date = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = date - Duration::from_secs(90);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after(
                "Sun, 06 Nov 1994 08:49:37 GMT",
                date + Duration::from_secs(5)
            ),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", SystemTime::now()), None);
    }
}
