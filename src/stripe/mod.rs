//! The Stripe API client: reqwest with rustls (ring), a pinned
//! `Stripe-Version`, `Stripe-Account` for Connect events, time-outs, retries
//! as Stripe's SDKs do them (see [`retry`]), a client-side rate limit below
//! Stripe's, and the `Request-Id` of every call in the logs.
//!
//! Two priorities share one budget ([`budget`]): live events (the runner's
//! re-fetches, resyncs) go first; background work (the drift sweep,
//! catch-up) waits while a live call is queued. A 429 lowers the rate in use
//! for the next minutes; the runner sizes its work in flight by the budget
//! and the latency seen ([`StripeClient::in_flight_wanted`]).

pub(crate) mod budget;
pub(crate) mod envelope;
pub(crate) mod error;
pub(crate) mod mode;
pub(crate) mod objects;
pub(crate) mod retry;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

pub(crate) use budget::Budget;
pub use budget::Snapshot as BudgetSnapshot;
pub use error::StripeError;
pub(crate) use mode::key_mode;
pub use mode::Mode;

/// Settings of a [`StripeClient`] (the configuration builds them:
/// `StripeConfig::client_options`).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub api_base: String,
    pub api_key: SecretString,
    pub api_version: String,
    pub timeout: Duration,
    pub max_retries: u32,
    pub requests_per_sec: u32,
}

/// Who is asking: live events go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Live,
    Background,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub json: serde_json::Value,
    pub request_id: Option<String>,
    pub status: u16,
}

#[derive(Clone)]
pub struct StripeClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    mode: Mode,
    budget: Budget,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.inner.options.api_base)
            .field("api_version", &self.inner.options.api_version)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(options: ClientOptions) -> Result<StripeClient, StripeError> {
        let mode = key_mode(options.api_key.expose_secret()).ok_or_else(|| {
            StripeError::Config("the API key is not a Stripe secret or restricted key".to_owned())
        })?;
        // Two TLS providers may be compiled in by dependencies: pick ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("stripe-hookd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StripeError::Config(format!("cannot build the HTTP client: {e}")))?;
        let budget = Budget::new(options.requests_per_sec);
        Ok(StripeClient {
            inner: Arc::new(Inner {
                http,
                options,
                mode,
                budget,
            }),
        })
    }

    /// The budget's figures now: rate configured and in use, latency,
    /// requests in flight.
    pub fn budget(&self) -> BudgetSnapshot {
        self.inner.budget.snapshot(Instant::now())
    }

    /// How many requests should be in flight now to use the rate in use at
    /// the latency seen (Little's law, with headroom): the job runner runs
    /// about this many groups at once.
    pub fn in_flight_wanted(&self) -> usize {
        self.inner.budget.in_flight_wanted(Instant::now())
    }

    /// test or live, from the key's prefix.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    pub fn api_version(&self) -> &str {
        &self.inner.options.api_version
    }

    /// `GET {base}{path}?expand[]=…` (a live call).
    pub async fn get(
        &self,
        path: &str,
        expand: &[&str],
        account: Option<&str>,
    ) -> Result<ApiResponse, StripeError> {
        let params: Vec<(&str, &str)> = expand.iter().map(|e| ("expand[]", *e)).collect();
        self.request(path, &params, account, Priority::Live).await
    }

    /// `GET` with query parameters (a live call).
    pub async fn get_with(
        &self,
        path: &str,
        params: &[(&str, &str)],
        account: Option<&str>,
    ) -> Result<ApiResponse, StripeError> {
        self.request(path, params, account, Priority::Live).await
    }

    /// `GET` with query parameters, at the given priority.
    pub async fn request(
        &self,
        path: &str,
        params: &[(&str, &str)],
        account: Option<&str>,
        priority: Priority,
    ) -> Result<ApiResponse, StripeError> {
        let mut call = Call::get(priority);
        if let Some(account) = account {
            call.headers.push(("Stripe-Account", account.to_owned()));
        }
        self.send(path, params, call).await
    }

    /// GETs a v2 resource (`/v2/core/events/{id}`, a v2 list page) as the
    /// account `context` names (`Stripe-Context`, the v2 header; `None`:
    /// the platform).
    pub async fn get_v2(
        &self,
        path: &str,
        params: &[(&str, &str)],
        context: Option<&str>,
        priority: Priority,
    ) -> Result<ApiResponse, StripeError> {
        let mut call = Call::get(priority);
        if let Some(context) = context {
            call.headers.push(("Stripe-Context", context.to_owned()));
        }
        self.send(path, params, call).await
    }

    /// POSTs a v1 form (`setup`: webhook endpoints). Sent with an
    /// `Idempotency-Key`, so the client's retries cannot apply it twice.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(String, String)],
    ) -> Result<ApiResponse, StripeError> {
        let mut call = Call::post(Body::Form(form.to_vec()));
        call.headers.push(("Idempotency-Key", idempotency_key()));
        self.send(path, &[], call).await
    }

    /// POSTs a v2 JSON body (`setup`: event destinations), with an
    /// `Idempotency-Key` like [`StripeClient::post_form`].
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ApiResponse, StripeError> {
        let mut call = Call::post(Body::Json(body.clone()));
        call.headers.push(("Idempotency-Key", idempotency_key()));
        self.send(path, &[], call).await
    }

    /// One API call with the client's retries, rate limit, metrics and log.
    async fn send(
        &self,
        path: &str,
        params: &[(&str, &str)],
        call: Call,
    ) -> Result<ApiResponse, StripeError> {
        let url = format!("{}{}", self.inner.options.api_base, path);
        let method = call.method.as_str();
        let mut retries = 0;
        loop {
            self.inner.budget.turn(call.priority).await;
            let sending = self.inner.budget.sending();
            let started = Instant::now();
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), &url)
                .query(params)
                .bearer_auth(self.inner.options.api_key.expose_secret())
                .header("Stripe-Version", &self.inner.options.api_version);
            for (name, value) in &call.headers {
                req = req.header(*name, value);
            }
            req = match &call.body {
                Body::None => req,
                Body::Form(form) => req.form(form),
                Body::Json(json) => req.json(json),
            };
            let outcome = req.send().await;
            let CallAttempt {
                status,
                answered,
                should_retry,
                retry_after,
                request_id,
                result,
            } = read_attempt(outcome).await;
            let elapsed = started.elapsed();
            drop(sending);
            self.inner.budget.answered(elapsed);
            if status == Some(429) && self.inner.budget.rate_limited(started, Instant::now()) {
                let in_use = self.inner.budget.rate_at(Instant::now());
                tracing::warn!(
                    method,
                    path,
                    requests_per_sec = in_use,
                    hold_secs = budget::HOLD.as_secs(),
                    "rate limited by Stripe (429): lowering the request rate"
                );
            }
            let status_label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
            metrics::counter!(crate::metrics::STRIPE_REQUESTS, "status" => status_label.clone())
                .increment(1);
            metrics::histogram!(crate::metrics::STRIPE_SECONDS).record(elapsed.as_secs_f64());
            tracing::debug!(
                method, path, status = %status_label, request_id = request_id.as_deref().unwrap_or(""),
                duration_ms = elapsed.as_millis() as u64, attempt = retries + 1, "stripe api call"
            );
            let error = match result {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let retry_status = if answered { status } else { None };
            match retry::retry_delay(
                retry_status,
                should_retry,
                retry_after,
                retries,
                self.inner.options.max_retries,
                rand::random(),
            ) {
                Some(wait) => {
                    tracing::warn!(
                        method, path, status = %status_label, request_id = request_id.as_deref().unwrap_or(""),
                        retry_in_ms = wait.as_millis() as u64, error = %error, "stripe api call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    retries += 1;
                }
                None => return Err(error),
            }
        }
    }
}

/// Pages through a list endpoint (`limit=100`, `starting_after`), one page
/// per [`Pager::next`].
/// What one API call sends besides its path and query.
struct Call {
    method: reqwest::Method,
    headers: Vec<(&'static str, String)>,
    body: Body,
    priority: Priority,
}

enum Body {
    None,
    Form(Vec<(String, String)>),
    Json(serde_json::Value),
}

impl Call {
    fn get(priority: Priority) -> Call {
        Call {
            method: reqwest::Method::GET,
            headers: Vec::new(),
            body: Body::None,
            priority,
        }
    }

    fn post(body: Body) -> Call {
        Call {
            method: reqwest::Method::POST,
            headers: Vec::new(),
            body,
            priority: Priority::Live,
        }
    }
}

/// 128 random bits, hex: one per POST, kept across its retries.
fn idempotency_key() -> String {
    format!("stripe-hookd-{:032x}", rand::random::<u128>())
}

/// The pages of a v2 list (`GET /v2/core/events`): each answer carries
/// `data` and `next_page_url` (a path with the opaque `page` token, null on
/// the last page), which is requested as it is.
pub struct V2Pager<'a> {
    client: &'a StripeClient,
    next: Option<String>,
    params: Vec<(&'a str, &'a str)>,
    context: Option<&'a str>,
    priority: Priority,
}

impl StripeClient {
    /// The pages of the v2 list at `path` with `params` (first page only:
    /// later pages are the `next_page_url` Stripe gives).
    pub fn v2_pages<'a>(
        &'a self,
        path: &str,
        params: &[(&'a str, &'a str)],
        priority: Priority,
    ) -> V2Pager<'a> {
        V2Pager {
            client: self,
            next: Some(path.to_owned()),
            params: params.to_vec(),
            context: None,
            priority,
        }
    }
}

impl<'a> V2Pager<'a> {
    /// The account whose list this is (`Stripe-Context`).
    pub fn context(mut self, context: Option<&'a str>) -> Self {
        self.context = context;
        self
    }

    /// The next page's items, or `None` after the last page.
    pub async fn next(&mut self) -> Result<Option<Vec<serde_json::Value>>, StripeError> {
        let Some(path) = self.next.take() else {
            return Ok(None);
        };
        let first = !path.contains('?');
        let params: Vec<(&str, &str)> = if first {
            let mut p = self.params.clone();
            p.push(("limit", "100"));
            p
        } else {
            Vec::new()
        };
        let page = self
            .client
            .get_v2(&path, &params, self.context, self.priority)
            .await?;
        let data = page
            .json
            .get("data")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.next = page
            .json
            .get("next_page_url")
            .and_then(serde_json::Value::as_str)
            .filter(|next| next.starts_with('/') && *next != path && !data.is_empty())
            .map(str::to_owned);
        Ok(Some(data))
    }
}

pub struct Pager<'a> {
    client: &'a StripeClient,
    path: &'a str,
    params: Vec<(&'a str, &'a str)>,
    priority: Priority,
    account: Option<&'a str>,
    after: Option<String>,
    done: bool,
}

impl StripeClient {
    /// Lists `path` with `params`, page by page, at `priority`.
    pub fn pages<'a>(
        &'a self,
        path: &'a str,
        params: &[(&'a str, &'a str)],
        priority: Priority,
    ) -> Pager<'a> {
        Pager {
            client: self,
            path,
            params: params.to_vec(),
            priority,
            account: None,
            after: None,
            done: false,
        }
    }
}

impl<'a> Pager<'a> {
    /// Lists a Connect account's objects (`Stripe-Account`) instead of the
    /// platform's (`None`).
    pub fn account(mut self, account: Option<&'a str>) -> Self {
        self.account = account;
        self
    }

    /// The next page's objects, or `None` after the last page.
    pub async fn next(&mut self) -> Result<Option<Vec<serde_json::Value>>, StripeError> {
        if self.done {
            return Ok(None);
        }
        let mut params = self.params.clone();
        params.push(("limit", "100"));
        if let Some(after) = &self.after {
            params.push(("starting_after", after.as_str()));
        }
        let page = self
            .client
            .request(self.path, &params, self.account, self.priority)
            .await?;
        let data = page
            .json
            .get("data")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has_more = page
            .json
            .get("has_more")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        self.after = data
            .last()
            .and_then(|o| o.get("id"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        self.done = !has_more || self.after.is_none();
        Ok(Some(data))
    }
}

/// What one HTTP attempt ended in.
struct CallAttempt {
    /// The HTTP status, if Stripe answered at all.
    status: Option<u16>,
    /// Whether the whole answer (status and body) arrived.
    answered: bool,
    should_retry: Option<bool>,
    retry_after: Option<Duration>,
    request_id: Option<String>,
    result: Result<ApiResponse, StripeError>,
}

async fn read_attempt(outcome: Result<reqwest::Response, reqwest::Error>) -> CallAttempt {
    let res = match outcome {
        Ok(res) => res,
        Err(e) => {
            return CallAttempt {
                status: None,
                answered: false,
                should_retry: None,
                retry_after: None,
                request_id: None,
                result: Err(transport_error(&e)),
            }
        }
    };
    let status = res.status().as_u16();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("request-id");
    let should_retry = header("stripe-should-retry").map(|v| v == "true");
    let retry_after = header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (answered, result) = match res.text().await {
        Err(e) => (false, Err(transport_error(&e))),
        Ok(body) if (200..300).contains(&status) => (
            true,
            serde_json::from_str(&body)
                .map(|json| ApiResponse {
                    json,
                    request_id: request_id.clone(),
                    status,
                })
                .map_err(|e| StripeError::Decode(e.to_string())),
        ),
        Ok(body) => (
            true,
            Err(StripeError::from_response(
                status,
                &body,
                retry_after,
                request_id.clone(),
            )),
        ),
    };
    CallAttempt {
        status: Some(status),
        answered,
        should_retry,
        retry_after,
        request_id,
        result,
    }
}

/// A failure below HTTP: no answer, or an answer cut off.
fn transport_error(e: &reqwest::Error) -> StripeError {
    if e.is_timeout() {
        StripeError::Timeout
    } else {
        StripeError::Network(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
