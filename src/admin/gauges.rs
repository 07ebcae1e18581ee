//! The gauges computed at scrape time from the database (the outbox by
//! status, its lag, the dead count) and from the intake's activity (silence
//! per endpoint). Names come from [`crate::metrics`].

use crate::metrics::{Activity, DEAD_EVENTS, OUTBOX_EVENTS, OUTBOX_LAG, SINCE_VERIFIED};
use crate::store::{events, outbox, DbConnection, StoreError};

/// The gauges computed at scrape time, in Prometheus text format: the
/// outbox by status, the lag, the dead count, and the silence per endpoint.
/// Rendered per request (not through the global registry) so that each
/// scrape reports this daemon's own database.
pub(crate) fn render(
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

/// The Stripe client's budget gauges (see [`crate::metrics::STRIPE_BUDGET`]),
/// in Prometheus text format.
pub(crate) fn budget(snapshot: &crate::stripe::BudgetSnapshot) -> String {
    use crate::metrics::{STRIPE_BUDGET, STRIPE_IN_FLIGHT, STRIPE_LATENCY, STRIPE_RATE_IN_USE};
    let latency = snapshot.latency_secs.unwrap_or(0.0);
    format!(
        "# HELP {STRIPE_BUDGET} The Stripe API requests a second this daemon may send (stripe.requests_per_sec).\n# TYPE {STRIPE_BUDGET} gauge\n{STRIPE_BUDGET} {}\n\
         # HELP {STRIPE_RATE_IN_USE} The Stripe API requests a second sent at most now (lowered for minutes after a 429).\n# TYPE {STRIPE_RATE_IN_USE} gauge\n{STRIPE_RATE_IN_USE} {}\n\
         # HELP {STRIPE_LATENCY} Average time of a Stripe API answer (recent answers weigh most; 0 before the first).\n# TYPE {STRIPE_LATENCY} gauge\n{STRIPE_LATENCY} {latency}\n\
         # HELP {STRIPE_IN_FLIGHT} Stripe API requests sent and not yet answered.\n# TYPE {STRIPE_IN_FLIGHT} gauge\n{STRIPE_IN_FLIGHT} {}\n",
        snapshot.budget, snapshot.in_use, snapshot.in_flight
    )
}
