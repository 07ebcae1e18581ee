//! Logging: readable lines or JSON on stdout (journald comes with the
//! systemd issue). Field names are stable: operators filter on them.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Auto | LogFormat::Text | LogFormat::Journald => {
            registry.with(fmt::layer()).try_init()
        }
    };
    if let Err(e) = result {
        eprintln!("stripe-hookd: logging was already initialised: {e}");
    }
}
