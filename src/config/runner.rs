//! `[runner]`: the job runner's workers, leases, retries and retention. The
//! runner's options are built here and nowhere else ([`RunnerConfig::options`]).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError, ScheduleConfig};
use crate::queue::RunnerOptions;

/// Stripe retries a failed delivery for up to three days: an event can come
/// back that long after it was first delivered.
const STRIPE_RETRIES_FOR: Duration = Duration::from_secs(3 * 24 * 3600);
const DAY_SECS: u64 = 24 * 3600;

/// The job runner (see `src/queue/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Run workers in this process; `false` makes an intake-only instance.
    pub enabled: bool,
    /// Objects processed at once by this process (with a Stripe API key:
    /// at least; the runner follows the API budget × latency up to
    /// `max_concurrency`).
    pub concurrency: usize,
    /// With a Stripe API key, the most objects processed at once (never
    /// below `concurrency`).
    pub max_concurrency: usize,
    /// How often idle workers look for due retries and other instances' events.
    pub poll_interval_ms: u64,
    /// How long a claim lasts before another worker may take the event.
    pub lease_secs: u64,
    /// Attempts before an event is `dead`.
    pub max_attempts: u32,
    /// Age (since received) after which a failing event is `dead`.
    pub max_age_hours: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    /// On SIGTERM, how long in-flight events get before their leases are released.
    pub shutdown_grace_secs: u64,
    /// Finished (`done`/`ignored`) events are deleted after this many days.
    pub retention_days: u64,
    pub prune_interval_secs: u64,
    /// Events deleted per pruning transaction.
    pub prune_batch: usize,
}

impl RunnerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.concurrency == 0 || self.max_attempts == 0 || self.poll_interval_ms == 0 {
            return Err(invalid(
                "runner",
                "concurrency, max_attempts and poll_interval_ms must be at least 1",
            ));
        }
        if self.lease_secs < 2 {
            return Err(invalid(
                "runner.lease_secs",
                "must be at least 2 (a handler gets half the lease)",
            ));
        }
        if self.prune_batch == 0 {
            return Err(invalid("runner.prune_batch", "must be at least 1"));
        }
        Ok(())
    }

    /// The job runner's options.
    pub fn options(&self) -> RunnerOptions {
        RunnerOptions {
            concurrency: self.concurrency,
            max_concurrency: self.max_concurrency.max(self.concurrency),
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            lease: Duration::from_secs(self.lease_secs),
            max_attempts: self.max_attempts,
            max_age: Duration::from_secs(self.max_age_hours.saturating_mul(3600)),
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            retention: self.retention(),
            prune_interval: Duration::from_secs(self.prune_interval_secs),
            prune_batch: self.prune_batch,
            bench: Default::default(),
        }
    }

    fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.saturating_mul(DAY_SECS))
    }
}

/// A finished event must outlive every way it can arrive again — Stripe's
/// retries and the scheduled catch-up's look-back — or, pruned, it would be
/// stored and processed a second time.
pub(super) fn check_retention(
    runner: &RunnerConfig,
    schedule: &ScheduleConfig,
) -> Result<(), ConfigError> {
    let catch_up = schedule.catch_up_window().unwrap_or(Duration::ZERO);
    let needed = catch_up.max(STRIPE_RETRIES_FOR);
    if runner.retention() >= needed {
        return Ok(());
    }
    let days = needed.as_secs().div_ceil(DAY_SECS);
    let (why, or) = if catch_up > STRIPE_RETRIES_FOR {
        (
            format!(
                "the scheduled catch-up looks back two schedule.catch_up_interval_mins and 10 minutes, {} hours",
                catch_up.as_secs().div_ceil(3600)
            ),
            " or lower schedule.catch_up_interval_mins",
        )
    } else {
        ("Stripe retries a delivery for 3 days".to_owned(), "")
    };
    Err(invalid(
        "runner.retention_days (STRIPE_HOOKD_RUNNER__RETENTION_DAYS)",
        format!(
            "{} days is shorter than the {days} days in which a finished event can come back ({why}): deleted sooner, it would be stored and processed again; set it to at least {days}{or}",
            runner.retention_days,
        ),
    ))
}
