//! `[schedule]`: background catch-up and drift sweep (they need an API key).

use std::time::Duration;

use serde::Deserialize;

/// Stripe lists events of the last 30 days, no older: catch-up cannot look
/// further back.
const EVENTS_KEPT_BY_STRIPE: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Pull recent events from Stripe and ingest the missing ones; 0 = off.
    pub catch_up_interval_mins: u64,
    /// Only events whose delivery Stripe marked failed.
    pub catch_up_only_failed: bool,
    /// Compare subscriptions, customers, recent charges and customer features with Stripe and fix drift; 0 = off.
    pub sweep_interval_hours: u64,
}

impl ScheduleConfig {
    /// How often catch-up runs; `None` when it is off.
    pub fn catch_up_interval(&self) -> Option<Duration> {
        (self.catch_up_interval_mins > 0)
            .then(|| Duration::from_secs(self.catch_up_interval_mins.saturating_mul(60)))
    }

    /// How far back each catch-up run looks: two intervals and 10 minutes,
    /// so a late run leaves no gap (at most Stripe's 30 days); `None` when
    /// catch-up is off. An event finished and pruned within this window
    /// would be ingested again.
    pub fn catch_up_window(&self) -> Option<Duration> {
        self.catch_up_interval().map(|every| {
            every
                .saturating_mul(2)
                .saturating_add(Duration::from_secs(600))
                .min(EVENTS_KEPT_BY_STRIPE)
        })
    }

    /// How often the drift sweep runs; `None` when it is off.
    pub fn sweep_interval(&self) -> Option<Duration> {
        (self.sweep_interval_hours > 0)
            .then(|| Duration::from_secs(self.sweep_interval_hours.saturating_mul(3600)))
    }
}
