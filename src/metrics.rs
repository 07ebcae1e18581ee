//! Prometheus metrics, served by the admin listener at `/metrics`.
//!
//! Counters and histograms are recorded where things happen (intake, runner,
//! Stripe client) through the `metrics` facade; gauges about the outbox are
//! computed from the database at scrape time. Names are stable (see
//! docs/operations.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::store::{events, outbox, DbConnection, StoreError};

pub const WEBHOOK_REQUESTS: &str = "hookd_webhook_requests_total";
pub const SIGNATURE_FAILURES: &str = "hookd_signature_failures_total";
pub const ATTEMPTS: &str = "hookd_event_attempts_total";
pub const ATTEMPT_SECONDS: &str = "hookd_event_processing_seconds";
pub const STRIPE_REQUESTS: &str = "hookd_stripe_api_requests_total";
pub const STRIPE_SECONDS: &str = "hookd_stripe_api_request_seconds";
pub const OUTBOX_EVENTS: &str = "hookd_outbox_events";
pub const OUTBOX_LAG: &str = "hookd_outbox_lag_seconds";
pub const DEAD_EVENTS: &str = "hookd_dead_events";
pub const SINCE_VERIFIED: &str = "hookd_seconds_since_last_verified_event";
pub const SWEEP_OBJECTS: &str = "hookd_sweep_objects_checked_total";
pub const SWEEP_DRIFT: &str = "hookd_sweep_drift_total";
pub const SWEEP_RUNNING: &str = "hookd_sweep_running";

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the global recorder once; every later call returns the same handle.
pub fn install() -> Result<PrometheusHandle, String> {
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
pub struct Activity {
    started_at: i64,
    last_verified: Arc<Mutex<HashMap<String, i64>>>,
}

impl Activity {
    pub fn new(endpoints: impl IntoIterator<Item = String>, now: i64) -> Self {
        let map = endpoints.into_iter().map(|e| (e, now)).collect();
        Activity {
            started_at: now,
            last_verified: Arc::new(Mutex::new(map)),
        }
    }

    pub fn verified(&self, endpoint: &str, now: i64) {
        if let Ok(mut map) = self.last_verified.lock() {
            map.insert(endpoint.to_owned(), now);
        }
    }

    /// Per endpoint: seconds since the last verified delivery (or since start).
    pub fn silence(&self, now: i64) -> Vec<(String, f64)> {
        let map = match self.last_verified.lock() {
            Ok(m) => m.clone(),
            Err(p) => p.into_inner().clone(),
        };
        map.into_iter()
            .map(|(e, t)| (e, (now - t.max(self.started_at)) as f64 / 1000.0))
            .collect()
    }
}

/// The gauges computed at scrape time, in Prometheus text format: the
/// outbox by status, the lag, the dead count, and the silence per endpoint.
/// Rendered per request (not through the global registry) so that each
/// scrape reports this daemon's own database.
pub fn render_scrape_gauges(
    conn: &mut DbConnection,
    activity: &Activity,
    now: i64,
) -> Result<String, StoreError> {
    use std::fmt::Write;
    let counts = outbox::count_by_status(conn)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP {OUTBOX_EVENTS} Events in the outbox by status.\n# TYPE {OUTBOX_EVENTS} gauge"
    );
    for s in outbox::status::ALL {
        let n = counts.iter().find(|(st, _)| st == s).map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "{OUTBOX_EVENTS}{{status=\"{s}\"}} {n}");
    }
    let dead = counts
        .iter()
        .find(|(st, _)| st == outbox::status::DEAD)
        .map_or(0, |(_, n)| *n);
    let _ = writeln!(out, "# HELP {DEAD_EVENTS} Dead events waiting for an operator.\n# TYPE {DEAD_EVENTS} gauge\n{DEAD_EVENTS} {dead}");
    let lag = events::oldest_pending(conn)?.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
    let _ = writeln!(
        out,
        "# HELP {OUTBOX_LAG} Age of the oldest event not yet processed.\n# TYPE {OUTBOX_LAG} gauge\n{OUTBOX_LAG} {lag}"
    );
    let _ = writeln!(
        out,
        "# HELP {SINCE_VERIFIED} Seconds since the endpoint last received a verified delivery (or since start).\n# TYPE {SINCE_VERIFIED} gauge"
    );
    let mut silence = activity.silence(now);
    silence.sort_by(|a, b| a.0.cmp(&b.0));
    for (endpoint, secs) in silence {
        let _ = writeln!(out, "{SINCE_VERIFIED}{{endpoint=\"{endpoint}\"}} {secs}");
    }
    Ok(out)
}
