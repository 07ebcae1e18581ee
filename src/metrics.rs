//! Prometheus metrics, served by the admin listener at `/metrics`.
//!
//! A leaf: metric names and recording, nothing of the store. Counters and
//! histograms are recorded where things happen (intake, runner, Stripe
//! client) through the `metrics` facade; the gauges read from the database at
//! scrape time live with the admin listener (`admin::gauges`). Names are
//! stable (see docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub(crate) const WEBHOOK_REQUESTS: &str = "hookd_webhook_requests_total";
pub(crate) const SIGNATURE_FAILURES: &str = "hookd_signature_failures_total";
/// Requests refused before any handler ran, by reason (`telemetry`).
pub(crate) const HTTP_REFUSED: &str = "hookd_http_refused_total";
pub(crate) const ATTEMPTS: &str = "hookd_event_attempts_total";
pub(crate) const ATTEMPT_SECONDS: &str = "hookd_event_processing_seconds";
/// One intake transaction: the write lock's turn, the inserts, the COMMIT
/// and its fsync (a slow disk shows here first).
pub(crate) const INTAKE_COMMIT_SECONDS: &str = "hookd_intake_commit_seconds";
pub(crate) const STRIPE_REQUESTS: &str = "hookd_stripe_api_requests_total";
pub(crate) const STRIPE_SECONDS: &str = "hookd_stripe_api_request_seconds";
/// The Stripe client's budget (`stripe.requests_per_sec`), the rate in use
/// now (lower for minutes after a 429), the average answer time and the
/// requests in flight: gauges read from the client at scrape time
/// (`admin::gauges::budget`).
pub(crate) const STRIPE_BUDGET: &str = "hookd_stripe_budget_requests_per_second";
pub(crate) const STRIPE_RATE_IN_USE: &str = "hookd_stripe_rate_in_use_requests_per_second";
pub(crate) const STRIPE_LATENCY: &str = "hookd_stripe_latency_seconds";
pub(crate) const STRIPE_IN_FLIGHT: &str = "hookd_stripe_requests_in_flight";
/// How many groups the job runner lets run at once now (it follows the
/// Stripe budget × latency).
pub(crate) const RUNNER_LIMIT: &str = "hookd_runner_in_flight_limit";
pub(crate) const OUTBOX_EVENTS: &str = "hookd_outbox_events";
pub(crate) const OUTBOX_LAG: &str = "hookd_outbox_lag_seconds";
pub(crate) const DEAD_EVENTS: &str = "hookd_dead_events";
pub(crate) const SINCE_VERIFIED: &str = "hookd_seconds_since_last_verified_event";
pub(crate) const SWEEP_OBJECTS: &str = "hookd_sweep_objects_checked_total";
pub(crate) const SWEEP_DRIFT: &str = "hookd_sweep_drift_total";
pub(crate) const SWEEP_RUNNING: &str = "hookd_sweep_running";
pub(crate) const DELIVERY_ATTEMPTS: &str = "hookd_delivery_attempts_total";
pub(crate) const DELIVERY_SECONDS: &str = "hookd_delivery_request_seconds";
pub(crate) const DELIVERY_BACKLOG: &str = "hookd_delivery_backlog";
pub(crate) const DELIVERY_OLDEST: &str = "hookd_delivery_oldest_undelivered_seconds";
pub(crate) const DELIVERY_DEAD: &str = "hookd_delivery_dead";
pub(crate) const DESTINATION_PAUSED: &str = "hookd_destination_paused";

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the global recorder once; every later call returns the same handle.
pub(crate) fn install() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        })
        .clone()
}

/// When each endpoint last received a verified delivery: silence is the
/// failure no error log shows (a wrong secret or a broken proxy looks like a
/// quiet day).
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    started_at: i64,
    last_verified: Arc<Mutex<HashMap<String, i64>>>,
}

impl Activity {
    pub(crate) fn new(endpoints: impl IntoIterator<Item = String>, now: i64) -> Self {
        let map = endpoints.into_iter().map(|e| (e, now)).collect();
        Activity {
            started_at: now,
            last_verified: Arc::new(Mutex::new(map)),
        }
    }

    pub(crate) fn verified(&self, endpoint: &str, now: i64) {
        if let Ok(mut map) = self.last_verified.lock() {
            map.insert(endpoint.to_owned(), now);
        }
    }

    /// Per endpoint: seconds since the last verified delivery (or since start).
    pub(crate) fn silence(&self, now: i64) -> Vec<(String, f64)> {
        let map = match self.last_verified.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        map.into_iter()
            .map(|(e, t)| (e, (now - t.max(self.started_at)) as f64 / 1000.0))
            .collect()
    }
}
