//! The gauges computed at scrape time from the database (the outbox by
//! status, its lag, the dead count) and from the intake's activity (silence
//! per endpoint). Names come from [`crate::metrics`].

use crate::metrics::{Activity, DEAD_EVENTS, OUTBOX_EVENTS, OUTBOX_LAG, SINCE_VERIFIED};
use crate::store::{events, outbox, DbConnection, StoreError};

/// The gauges computed at scrape time, in Prometheus text format: the
/// outbox by status, the lag, the dead count, and the silence per endpoint.
/// Rendered per request (not through the global registry) so that each
/// scrape reports this daemon's own database.
pub fn render(
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
