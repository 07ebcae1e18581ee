//! `[schedule]`: background catch-up and drift sweep (they need an API key).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

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
    /// The sweep compares the charges created in this many days (1 to
    /// [`MAX_SWEEP_CHARGE_WINDOW_DAYS`]); 0 = no charges.
    pub sweep_charge_window_days: u32,
}

/// The longest charge window: a year (card networks allow disputes for
/// about 120 days; every further day costs the sweep pages of charges that
/// can no longer change).
pub(super) const MAX_SWEEP_CHARGE_WINDOW_DAYS: u32 = 365;

impl ScheduleConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.sweep_charge_window_days > MAX_SWEEP_CHARGE_WINDOW_DAYS {
            return Err(invalid(
                "schedule.sweep_charge_window_days (STRIPE_HOOKD_SCHEDULE__SWEEP_CHARGE_WINDOW_DAYS)",
                format!(
                    "{} days is more than the {MAX_SWEEP_CHARGE_WINDOW_DAYS} allowed: set 1 to {MAX_SWEEP_CHARGE_WINDOW_DAYS} days of charges for the drift sweep to compare, or 0 for none",
                    self.sweep_charge_window_days
                ),
            ));
        }
        Ok(())
    }

    /// How far back (by `created`) the drift sweep compares charges; `None`
    /// when it compares none.
    pub fn sweep_charge_window(&self) -> Option<Duration> {
        (self.sweep_charge_window_days > 0)
            .then(|| Duration::from_secs(u64::from(self.sweep_charge_window_days) * 24 * 3600))
    }

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
