//! Logging. Under journald (`JOURNAL_STREAM` set, or `log.format =
//! "journald"`) every field goes to the journal as its own field in upper
//! case — `journalctl -u stripe-hookd EVENT_ID=evt_…`, `OUTCOME=rejected` —
//! with the priority mapped from the level. Elsewhere: readable lines, or
//! JSON with `log.format = "json"`, on stdout. Field names are stable
//! (docs/operations.md lists them).

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let registry = tracing_subscriber::registry().with(filter);
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        LogFormat::Text | LogFormat::Json => false,
    };
    let result = if journald {
        match tracing_journald::layer() {
            Ok(layer) => registry
                .with(
                    layer
                        .with_field_prefix(None)
                        .with_syslog_identifier("stripe-hookd".to_owned()),
                )
                .try_init(),
            Err(e) => {
                eprintln!("stripe-hookd: cannot reach journald ({e}); logging to stdout");
                registry.with(fmt::layer()).try_init()
            }
        }
    } else if format == LogFormat::Json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init()
    } else {
        registry.with(fmt::layer()).try_init()
    };
    if let Err(e) = result {
        // Tests build several applications in one process.
        tracing::debug!("logging was already initialised: {e}");
    }
}
