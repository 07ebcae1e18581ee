//! `[runner]`: the job runner's workers, leases, retries and retention. The
//! runner's options are built here and nowhere else ([`RunnerConfig::options`]).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::queue::RunnerOptions;

const DAY_SECS: u64 = 24 * 3600;

/// The job runner (see `src/queue/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Run workers in this process; `false` makes an intake-only instance.
    pub enabled: bool,
    /// Objects processed at once by this process.
    pub concurrency: usize,
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
        }
    }

    fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.saturating_mul(DAY_SECS))
    }
}
