//! What the admin API and the CLI show of each configured destination:
//! its settings (never the secret), whether it is paused, and its health.

use crate::config::Destination;
use crate::store::deliveries::history::{self, Health};
use crate::store::deliveries::pauses::{self, Pause};
use crate::store::{DbConnection, StoreError};

/// One destination as shown.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct DestinationView {
    pub name: String,
    pub url: String,
    pub after: &'static str,
    /// `stripe` or `standard`.
    pub signature: &'static str,
    /// How many secrets each request is signed with (`secret` and
    /// `previous_secrets`): more than 1 while a secret rolls.
    pub signing_secrets: usize,
    pub ordered: bool,
    pub events: Vec<String>,
    pub max_in_flight: usize,
    /// Set while paused (a 410 Gone, or an operator).
    pub paused: Option<Pause>,
    #[serde(flatten)]
    pub health: Health,
}

/// Every destination of `destinations`, in that order.
pub(crate) fn overview(
    conn: &mut DbConnection,
    destinations: &[Destination],
) -> Result<Vec<DestinationView>, StoreError> {
    let paused = pauses::list(conn)?;
    destinations
        .iter()
        .map(|d| {
            Ok(DestinationView {
                name: d.name.clone(),
                // Shown in the admin API, the CLI and the inspector.
                url: crate::redact::url(d.url.as_str()),
                after: d.after.as_str(),
                signature: d.signature.as_str(),
                signing_secrets: d.signing_secrets().count(),
                ordered: d.ordered,
                events: d.events.clone(),
                max_in_flight: d.max_in_flight,
                paused: paused.iter().find(|p| p.destination == d.name).cloned(),
                health: history::health(conn, &d.name)?,
            })
        })
        .collect()
}

/// The per-destination gauges in Prometheus text format: backlog, age of
/// the oldest undelivered (seconds), dead deliveries, paused (0/1).
pub(crate) fn gauges(views: &[DestinationView], now: i64) -> String {
    use crate::metrics::{DELIVERY_BACKLOG, DELIVERY_DEAD, DELIVERY_OLDEST, DESTINATION_PAUSED};
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, help: &str, value: &dyn Fn(&DestinationView) -> f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for v in views {
            let _ = writeln!(out, "{name}{{destination=\"{}\"}} {}", v.name, value(v));
        }
    };
    family(
        DELIVERY_BACKLOG,
        "Deliveries not yet delivered, dead or discarded.",
        &|v| v.health.backlog as f64,
    );
    family(
        DELIVERY_OLDEST,
        "Age of the oldest undelivered delivery (0 when none).",
        &|v| {
            v.health
                .oldest_undelivered_at
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0)
        },
    );
    family(
        DELIVERY_DEAD,
        "Dead deliveries waiting for an operator.",
        &|v| v.health.dead as f64,
    );
    family(
        DESTINATION_PAUSED,
        "1 while the destination is paused (410 Gone or an operator).",
        &|v| f64::from(u8::from(v.paused.is_some())),
    );
    out
}
