//! `[log]`: the log format and filter.

use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, else text.
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `stripe_hookd=debug`; `RUST_LOG` wins.
    pub level: String,
}

impl LogConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if tracing_subscriber::EnvFilter::try_new(&self.level).is_err() {
            return Err(invalid(
                "log.level (STRIPE_HOOKD_LOG__LEVEL)",
                format!(
                    "{:?} is not a log filter such as \"info\" or \"stripe_hookd=debug\"",
                    self.level
                ),
            ));
        }
        Ok(())
    }
}
