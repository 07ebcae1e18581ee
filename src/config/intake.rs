//! `[intake]`: body limit, group commit and back-pressure of the webhook
//! intake.

use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Largest body accepted; beyond it the answer is 413.
    pub max_body_bytes: usize,
    /// How long a delivery waits for its commit before it is answered 503.
    pub write_timeout_ms: u64,
    /// The `Retry-After` sent with a 503.
    pub retry_after_secs: u64,
    /// Most deliveries committed in one transaction (group commit).
    pub max_batch: usize,
    /// Deliveries waiting for a writer before new ones are answered 503.
    pub queue_capacity: usize,
    /// Writer threads; unset: 1 on SQLite (one writer at a time anyway), 2 on Postgres.
    #[serde(default)]
    pub writers: Option<usize>,
    /// HTTP worker threads; unset: one per CPU core.
    #[serde(default)]
    pub http_workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown.
    pub shutdown_timeout_secs: u64,
}

impl IntakeConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(invalid("intake.max_body_bytes", "must be at least 1024"));
        }
        if self.max_batch == 0 || self.queue_capacity == 0 || self.writers == Some(0) {
            return Err(invalid(
                "intake",
                "max_batch, queue_capacity and writers must be at least 1",
            ));
        }
        if self.write_timeout_ms == 0 {
            return Err(invalid("intake.write_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}
