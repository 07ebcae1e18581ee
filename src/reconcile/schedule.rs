//! Scheduled catch-up (default hourly) and drift sweep (default off).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::catchup::{self, connect};
use super::handling::ReconcileHandler;
use super::sweep;
use crate::config::ScheduleConfig;
use crate::store::{now_ms, Store};

/// Runs the configured schedules until `shutdown`.
pub(crate) async fn run(
    handler: Arc<ReconcileHandler>,
    store: Store,
    config: ScheduleConfig,
    shutdown: CancellationToken,
) {
    let catch_up = config.catch_up_interval().zip(config.catch_up_window());
    let sweep_every = config.sweep_interval();
    let tasks = [
        catch_up.map(|(every, window)| {
            let (handler, store, shutdown) =
                (Arc::clone(&handler), store.clone(), shutdown.clone());
            let only_failed = config.catch_up_only_failed;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    let options = catchup::CatchUpOptions {
                        since: now_ms() / 1000 - window.as_secs() as i64,
                        only_failed,
                        dry_run: false,
                        thin: handler.lists_thin_events(),
                    };
                    match connect::catch_up(&handler, &store, &options).await {
                        Ok(r) if !r.failed_accounts.is_empty() => tracing::error!(
                            listed = r.listed,
                            ingested = r.missing.len(),
                            failed_accounts = r.failed_accounts.len(),
                            "scheduled catch-up: some connected accounts failed (logged each); the others were caught up"
                        ),
                        Ok(r) if r.missing.is_empty() => tracing::debug!(
                            listed = r.listed,
                            "scheduled catch-up: nothing missing"
                        ),
                        Ok(r) => tracing::warn!(
                            listed = r.listed,
                            ingested = r.missing.len(),
                            "scheduled catch-up ingested missed events"
                        ),
                        Err(e) => tracing::error!(error = %e, "scheduled catch-up failed"),
                    }
                }
            })
        }),
        sweep_every.map(|every| {
            let (handler, store, shutdown) =
                (Arc::clone(&handler), store.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(every) => {}
                    }
                    match sweep::run(&handler, &store, false, &|_| {}).await {
                        Ok(r) if r.partial => tracing::warn!(
                            checked = r.checked(),
                            failed_parts = r.failed.len(),
                            fixed = r.fixed,
                            "scheduled drift sweep finished partially: a part failed (logged above)"
                        ),
                        Ok(r) => tracing::info!(
                            checked = r.checked(),
                            drifted_objects = r.drifted_objects,
                            drift_total = r.drift_total,
                            fixed = r.fixed,
                            "scheduled drift sweep finished"
                        ),
                        Err(e) => tracing::error!(error = %e, "scheduled drift sweep failed"),
                    }
                }
            })
        }),
    ];
    for task in tasks.into_iter().flatten() {
        let _ = task.await;
    }
}
