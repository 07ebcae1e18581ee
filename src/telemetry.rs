//! Logging. Under journald (`JOURNAL_STREAM` names our stdout or stderr,
//! or `log.format = "journald"`) every field goes to the journal as its own field in upper
//! case — `journalctl -u stripe-hookd EVENT_ID=evt_…`, `OUTCOME=rejected` —
//! with the priority mapped from the level. Elsewhere: readable lines, or
//! JSON with `log.format = "json"`, on stdout. Text lines are coloured only
//! when stdout is a terminal (and `NO_COLOR` is unset): a file, a pipe or a
//! log collector gets plain text. Field names are stable
//! (docs/operations.md lists them).

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::{fmt, prelude::*, reload, EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// The handle that swaps the installed filter (`log.level` on a reload).
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber. `RUST_LOG` overrides `level`.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter).with(Refusals);
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => output_is_journal(),
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
                registry.with(fmt::layer().with_ansi(colour())).try_init()
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
        registry.with(fmt::layer().with_ansi(colour())).try_init()
    };
    match result {
        Ok(()) => {
            let _ = FILTER.set(handle);
        }
        // Tests build several applications in one process.
        Err(e) => tracing::debug!("logging was already initialised: {e}"),
    }
}

/// Where actix logs a request it refused before any handler ran (a head
/// too large, a request line it cannot parse): one ERROR line each.
const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Refusals counted since the last summary line ([`report_refusals`]).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Hostile or broken clients' requests that actix refuses before any
/// handler runs: counted (`hookd_http_refused_total{reason}`) instead of an
/// ERROR line each (2,000 such requests made 2,000 journal lines), and
/// summarised at WARN at most once a period ([`report_refusals`]).
struct Refusals;

impl<S: Subscriber> Layer<S> for Refusals {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        if event.metadata().target() != DISPATCHER {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if !message.0.starts_with("stream error") {
            return true;
        }
        let reason = refusal_reason(&message.0);
        metrics::counter!(crate::metrics::HTTP_REFUSED, "reason" => reason).increment(1);
        REFUSED.fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// An event's `message` field.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// The metric label of a refusal, from actix's message.
fn refusal_reason(message: &str) -> &'static str {
    if message.contains("too large") {
        "head_too_large"
    } else if message.contains("parse error") {
        "malformed"
    } else {
        "other"
    }
}

/// Logs, every `every` until `shutdown`, how many requests were refused
/// before any handler since the last line (nothing when none were).
pub(crate) async fn report_refusals(every: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let refused = REFUSED.swap(0, Ordering::Relaxed);
        if refused > 0 {
            tracing::warn!(
                refused,
                period_secs = every.as_secs(),
                "malformed HTTP requests refused before any handler (a head too large, a bad request line): counted in hookd_http_refused_total by reason"
            );
        }
    }
}

/// What [`set_level`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LevelChange {
    /// The new filter is in force from the next log line on.
    Applied,
    /// `RUST_LOG` is set and wins over `log.level`: nothing changed.
    RustLogWins,
    /// This process did not install the subscriber (tests, tools).
    NotInstalled,
}

/// A `log.level` that is not a filter, or a subscriber that is gone.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("{level:?} is not a log filter such as \"info\" or \"stripe_hookd=debug\": {source}")]
    Invalid {
        level: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("cannot swap the log filter: {0}")]
    Reload(#[from] reload::Error),
}

/// Replaces the log filter with `level` (a reload of `log.level`), unless
/// `RUST_LOG` is set, which wins as it does at start.
pub(crate) fn set_level(level: &str) -> Result<LevelChange, LevelError> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Ok(LevelChange::RustLogWins);
    }
    let filter = EnvFilter::try_new(level).map_err(|source| LevelError::Invalid {
        level: level.to_owned(),
        source,
    })?;
    let Some(handle) = FILTER.get() else {
        return Ok(LevelChange::NotInstalled);
    };
    handle.reload(filter)?;
    Ok(LevelChange::Applied)
}

/// Whether text lines get terminal colours: only when stdout (where they
/// go) is a terminal, and `NO_COLOR` (no-color.org) is unset or empty.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether stdout or stderr is connected to the journal. systemd sets
/// `JOURNAL_STREAM=<device>:<inode>` for a service whose output goes to the
/// journal, but the variable is inherited: a shell in a terminal that a
/// user service started has it too, and there a CLI command must print to
/// the terminal. So, as systemd.exec(5) advises, compare it with the
/// device and inode of our own stdout and stderr.
fn output_is_journal() -> bool {
    journal_stream_is_ours(std::env::var_os("JOURNAL_STREAM").as_deref())
}

fn journal_stream_is_ours(value: Option<&std::ffi::OsStr>) -> bool {
    let Some(stream) = value
        .and_then(|v| v.to_str())
        .and_then(parse_journal_stream)
    else {
        return false;
    };
    [std::io::stdout().as_fd(), std::io::stderr().as_fd()]
        .into_iter()
        .any(|fd| device_and_inode(fd) == Some(stream))
}

/// `JOURNAL_STREAM`'s `<device>:<inode>`, both decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn device_and_inode(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
    // fstat on a duplicate of the descriptor; closing the duplicate leaves
    // the original open.
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("8"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
    }

    #[test]
    fn journal_stream_matches_only_our_own_output() {
        let stderr = device_and_inode(std::io::stderr().as_fd()).expect("fstat stderr");
        let file = tempfile::tempfile().expect("temp file");
        let other = device_and_inode(file.as_fd()).expect("fstat temp file");
        assert_ne!(stderr, other);
        let ours = format!("{}:{}", stderr.0, stderr.1);
        let inherited = format!("{}:{}", other.0, other.1);
        assert!(
            journal_stream_is_ours(Some(ours.as_ref())),
            "JOURNAL_STREAM naming our stderr means journald"
        );
        assert!(
            !journal_stream_is_ours(Some(inherited.as_ref())),
            "an inherited JOURNAL_STREAM (another stream) is not ours"
        );
        assert!(!journal_stream_is_ours(Some("garbage".as_ref())));
        assert!(!journal_stream_is_ours(None), "unset means not journald");
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::refusal_reason;

    #[test]
    fn actix_messages_map_to_reasons() {
        assert_eq!(
            refusal_reason("stream error: request parse error: message head is too large"),
            "head_too_large"
        );
        assert_eq!(
            refusal_reason("stream error: request parse error: invalid Header provided"),
            "malformed"
        );
        assert_eq!(refusal_reason("stream error: something else"), "other");
    }
}
