//! systemd integration: `Type=notify` readiness, reloading, stopping, and a watchdog
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
pub(crate) struct Heartbeat(Arc<AtomicI64>);

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Arc::new(AtomicI64::new(now_ms())))
    }
}

impl Heartbeat {
    pub(crate) fn beat(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub(crate) fn age(&self) -> Duration {
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
pub(crate) fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with MONOTONIC_USEC: a configuration reload has begun
/// (systemd shows the unit as "reloading" until [`reloaded`]).
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the configuration"),
        ]),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the monotonic clock for MONOTONIC_USEC");
            notify(&[
                NotifyState::Reloading,
                NotifyState::Status("reloading the configuration"),
            ]);
        }
    }
}

/// READY=1 after a reload, whether it was applied or refused (the service
/// serves either way); `status` says which.
pub(crate) fn reloaded(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// STOPPING=1: shutdown has begun.
pub(crate) fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Feeds the watchdog every half interval while the runner is alive; a
/// stuck runner stops the feeding and systemd restarts the service.
/// Returns at once when no watchdog is configured.
///
/// Alive means `heartbeat` beat within `stale_after` or within the
/// watchdog interval, whichever is longer. The runner beats on every turn
/// of its loop, but when all its workers are busy it turns only as events
/// finish, and a handler may legitimately take up to half a lease (a Stripe
/// API that does not answer): pass the lease, so that a slow Stripe is not
/// taken for a stuck runner (restarting would not help, and would drop
/// webhook deliveries for as long as the restart takes).
pub(crate) async fn watchdog(
    heartbeat: Heartbeat,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let stale_after = stale_after.max(interval);
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        stale_after_ms = stale_after.as_millis() as u64,
        "systemd watchdog enabled"
    );
    feed_while_alive(&heartbeat, interval / 2, stale_after, &shutdown, || {
        notify(&[NotifyState::Watchdog]);
    })
    .await;
}

/// Calls `feed` every `period` while `heartbeat` is younger than
/// `stale_after`; returns when `shutdown` is cancelled.
async fn feed_while_alive(
    heartbeat: &Heartbeat,
    period: Duration,
    stale_after: Duration,
    shutdown: &CancellationToken,
    mut feed: impl FnMut(),
) {
    let mut ticker = tokio::time::interval(period);
    let mut starved = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let age = heartbeat.age();
        if age < stale_after {
            if starved {
                tracing::warn!(
                    heartbeat_age_ms = age.as_millis() as u64,
                    "the job runner loop is running again; feeding the watchdog"
                );
                starved = false;
            }
            feed();
        } else if !starved {
            // Once: systemd restarts the service within the watchdog interval.
            tracing::error!(
                heartbeat_age_ms = age.as_millis() as u64,
                "the job runner loop has not run for too long; no longer feeding the watchdog"
            );
            starved = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use super::*;

    /// Waits (with a deadline) until `cond` holds.
    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn the_watchdog_is_fed_only_while_the_heartbeat_is_fresh() {
        let heartbeat = Heartbeat::default();
        let shutdown = CancellationToken::new();
        let fed = Arc::new(AtomicUsize::new(0));
        let stale_after = Duration::from_millis(300);
        let task = tokio::spawn({
            let (heartbeat, shutdown, fed) =
                (heartbeat.clone(), shutdown.clone(), Arc::clone(&fed));
            async move {
                feed_while_alive(
                    &heartbeat,
                    Duration::from_millis(20),
                    stale_after,
                    &shutdown,
                    || {
                        fed.fetch_add(1, Ordering::SeqCst);
                    },
                )
                .await;
            }
        });
        let count = || fed.load(Ordering::SeqCst);

        // Alive: beating more often than stale_after keeps the feeding going
        // for longer than stale_after.
        let started = Instant::now();
        while started.elapsed() < stale_after * 2 {
            heartbeat.beat();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(count() >= 10, "fed {} times while alive", count());

        // Stuck: no beats. Feeding stops once the beat is stale_after old.
        heartbeat.beat();
        let last_beat = Instant::now();
        let stopped_at = {
            let mut previous = count();
            let mut unchanged_since = Instant::now();
            // Stopped = no feed for five periods in a row.
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let now = count();
                if now != previous {
                    previous = now;
                    unchanged_since = Instant::now();
                } else if unchanged_since.elapsed() >= Duration::from_millis(100) {
                    break unchanged_since;
                }
                assert!(
                    last_beat.elapsed() < Duration::from_secs(10),
                    "the watchdog kept being fed"
                );
            }
        };
        let fed_for = stopped_at.duration_since(last_beat);
        assert!(
            fed_for >= stale_after - Duration::from_millis(50),
            "stopped feeding after {fed_for:?}, before the heartbeat was {stale_after:?} old"
        );
        let when_stuck = count();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(count(), when_stuck, "no feeding while stuck");

        // Alive again: feeding resumes.
        heartbeat.beat();
        until("feeding to resume", || count() > when_stuck).await;

        shutdown.cancel();
        task.await.expect("the watchdog task ends on shutdown");
    }
}
