//! systemd integration: `Type=notify` readiness, stopping, and a watchdog
//! fed only while the job runner's loop is alive. Everything is a no-op when
//! the daemon does not run under systemd (`NOTIFY_SOCKET` unset).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::store::now_ms;

/// Proof of life of a loop: the time of its last beat.
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(AtomicI64::new(now_ms())))
    }
}

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub fn age(&self) -> Duration {
        Duration::from_millis(u64::try_from(now_ms() - self.0.load(Ordering::Relaxed)).unwrap_or(0))
    }
}

fn notify(state: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// READY=1: migrations ran and the listeners are bound.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// STOPPING=1: shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Feeds the watchdog every half interval while `heartbeat` is younger
/// than the interval; a stuck loop stops the feeding and systemd restarts
/// the service. Returns at once when no watchdog is configured.
pub async fn watchdog(heartbeat: Heartbeat, shutdown: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog enabled"
    );
    let mut ticker = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let age = heartbeat.age();
        if age < interval {
            notify(&[NotifyState::Watchdog]);
        } else {
            tracing::error!(
                heartbeat_age_ms = age.as_millis() as u64,
                "the job runner loop has not run for longer than the watchdog interval; not feeding the watchdog"
            );
        }
    }
}
