//! The app's side of the demo: a small receiving application, in this
//! process on a random loopback port, registered as the daemon's
//! destination `demo-app` (every Stripe event and stripe-hookd's own
//! `stripe_hookd.*`, after the reconcile, ordered per object).
//!
//! It does what docs/forwarding.md's handlers do, in the scheme the demo
//! was started with (`--signature stripe|standard`):
//!
//! 1. verifies the signature on the raw body: Stripe's scheme with the
//!    intake's own verifier (`intake::signature`, on `util::signing`),
//!    Standard Webhooks with the spec's crate (`standardwebhooks`), both
//!    within the usual 300 s tolerance;
//! 2. de-duplicates on the delivery id (`Stripe-Hookd-Delivery`, which is
//!    also `webhook-id`): a delivery handled before is answered 200 and
//!    not handled again;
//! 3. drops a delivery whose `Stripe-Hookd-Sequence` is lower than the
//!    highest applied for its object (an equal one follows the same
//!    stored state: docs/forwarding.md, "The sequence header");
//! 4. records what it got, for the story to narrate.
//!
//! The story can ask it to answer 500 to the next delivery of one event
//! type, once ([`DemoApp::fail_next`]), to show the retry.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use base64::Engine;

use crate::config::Signature;
use crate::store::now_ms;

/// The destination's name in the daemon.
pub const DESTINATION: &str = "demo-app";
/// The app's webhook path.
const PATH: &str = "/webhooks/stripe-hookd";
/// What the app accepts as a signature's age (the SDKs' default).
const TOLERANCE_SECS: u64 = 300;

/// What the app did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Verified, new, in order: handled (answered 200).
    Applied,
    /// Answered 500 on purpose ([`DemoApp::fail_next`]); not handled.
    FailedOnPurpose,
    /// A delivery id handled before: answered 200, not handled again.
    Duplicate,
    /// Its sequence is lower than the highest applied for its object:
    /// answered 200, dropped.
    Stale { applied: i64 },
    /// The signature did not verify (answered 400), with why.
    Refused(String),
}

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery_id: String,
    pub attempt: u32,
    pub event_id: String,
    pub event_type: String,
    /// The object the event is about (`data.object.id`; for
    /// `stripe_hookd.access.updated`, the customer).
    pub object_id: String,
    pub sequence: Option<i64>,
    /// `data.object.has_access` of a `stripe_hookd.access.updated`.
    pub has_access: Option<bool>,
    pub handled: Handled,
}

#[derive(Default)]
struct Inner {
    /// Delivery ids handled (the app's unique key).
    seen: HashSet<String>,
    /// The highest sequence applied per object.
    applied: HashMap<String, i64>,
    /// Every request, in arrival order.
    log: Vec<Received>,
    /// Answer 500 to the next delivery of this event type.
    fail_next: Option<String>,
}

struct State {
    scheme: Signature,
    secret: String,
    inner: Mutex<Inner>,
}

impl State {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running app.
pub(super) struct DemoApp {
    url: String,
    state: Arc<State>,
    server: actix_web::dev::ServerHandle,
}

impl DemoApp {
    /// Binds 127.0.0.1:0 and serves, verifying with `scheme` and a fresh
    /// secret of its form.
    pub(super) fn start(scheme: Signature) -> anyhow::Result<DemoApp> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot bind the demo app's port")?;
        let url = format!("http://{}{PATH}", listener.local_addr()?);
        let state = Arc::new(State {
            scheme,
            secret: fresh_secret(scheme),
            inner: Mutex::default(),
        });
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(PATH, web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .context("the demo app cannot listen")?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(DemoApp {
            url,
            state,
            server: handle,
        })
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn scheme(&self) -> Signature {
        self.state.scheme
    }

    /// The secret the app verifies with (the destination's).
    pub(super) fn secret(&self) -> &str {
        &self.state.secret
    }

    /// The destination as configured in the daemon.
    pub(super) fn destination_toml(&self) -> String {
        format!(
            "[[destinations]]\nname = \"{DESTINATION}\"\nurl = \"{}\"\nsecret = \"{}\"\nsignature = \"{}\"\nevents = [\"*\", \"stripe_hookd.*\"]\n",
            self.url,
            self.state.secret,
            self.state.scheme.as_str()
        )
    }

    /// Answer 500 to the next delivery of `event_type`, once.
    pub(super) fn fail_next(&self, event_type: &str) {
        self.state.inner().fail_next = Some(event_type.to_owned());
    }

    /// How many requests came so far (a mark for [`DemoApp::since`]).
    pub(super) fn count(&self) -> usize {
        self.state.inner().log.len()
    }

    /// The requests that came after `mark`, in arrival order.
    pub(super) fn since(&self, mark: usize) -> Vec<Received> {
        self.state
            .inner()
            .log
            .get(mark..)
            .unwrap_or_default()
            .to_vec()
    }

    /// Stops serving.
    pub(super) async fn stop(&self) {
        self.server.stop(true).await;
    }
}

/// A fresh secret of the scheme's form: for Standard Webhooks `whsec_`
/// and the base64 of 32 random bytes (as `destinations secret
/// --standard`), for Stripe's any `whsec_` string.
fn fresh_secret(scheme: Signature) -> String {
    match scheme {
        Signature::Stripe => crate::trigger::scenario::new_id("whsec"),
        Signature::Standard => format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        ),
    }
}

async fn receive(state: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let event_type = text(&event["type"]);
    let object = &event["data"]["object"];
    // Standard Webhooks signs the delivery id as `webhook-id`; Stripe's
    // scheme carries it in `Stripe-Hookd-Delivery` (the same value).
    let id_header = match state.scheme {
        Signature::Stripe => "stripe-hookd-delivery",
        Signature::Standard => "webhook-id",
    };
    let mut received = Received {
        delivery_id: header(id_header).unwrap_or_default(),
        attempt: header("stripe-hookd-attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        event_id: text(&event["id"]),
        object_id: if event_type == "stripe_hookd.access.updated" {
            text(&object["customer"])
        } else {
            text(&object["id"])
        },
        sequence: header("stripe-hookd-sequence").and_then(|s| s.parse().ok()),
        has_access: object["has_access"].as_bool(),
        event_type,
        handled: Handled::Applied,
    };
    if let Err(why) = verify(&state, &req, &body) {
        received.handled = Handled::Refused(why);
        state.inner().log.push(received);
        return HttpResponse::BadRequest().body("signature refused");
    }
    let mut inner = state.inner();
    let status = if inner.fail_next.as_deref() == Some(received.event_type.as_str()) {
        inner.fail_next = None;
        received.handled = Handled::FailedOnPurpose;
        500
    } else if inner.seen.contains(&received.delivery_id) {
        received.handled = Handled::Duplicate;
        200
    } else {
        inner.seen.insert(received.delivery_id.clone());
        let applied = inner.applied.get(&received.object_id).copied();
        match (received.sequence, applied) {
            // An equal number is the same stored state (events finished
            // together): handled, de-duplicated on the delivery id only.
            (Some(sequence), Some(applied)) if sequence < applied => {
                received.handled = Handled::Stale { applied };
            }
            (Some(sequence), _) => {
                inner.applied.insert(received.object_id.clone(), sequence);
            }
            (None, _) => {}
        }
        200
    };
    inner.log.push(received);
    match status {
        200 => HttpResponse::Ok().body("ok"),
        _ => HttpResponse::InternalServerError().body("failing once, on purpose"),
    }
}

/// The scheme's verification of the raw body; why not, when it fails.
fn verify(state: &State, req: &HttpRequest, body: &[u8]) -> Result<(), String> {
    match state.scheme {
        Signature::Stripe => {
            let header = req
                .headers()
                .get("stripe-signature")
                .and_then(|v| v.to_str().ok());
            crate::intake::signature::verify(
                header,
                body,
                &[state.secret.as_bytes()],
                now_ms() / 1000,
                TOLERANCE_SECS,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
        Signature::Standard => {
            let webhook =
                standardwebhooks::Webhook::new(&state.secret).map_err(|e| e.to_string())?;
            let mut headers = reqwest::header::HeaderMap::new();
            for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
                if let Some(value) = req.headers().get(name) {
                    let value = reqwest::header::HeaderValue::from_bytes(value.as_bytes())
                        .map_err(|e| e.to_string())?;
                    headers.insert(name, value);
                }
            }
            webhook.verify(body, &headers).map_err(|e| e.to_string())
        }
    }
}
