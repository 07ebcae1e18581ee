//! The composition root: storage opened and migrated, listeners bound, and a
//! future that runs until shutdown. `main` and the tests build it the same
//! way (tests bind port 0 and may give their own handler and clock):
//!
//! ```text
//! Application::builder(config) [.handler(h)] [.clock(c)] .build().await?
//!     .run_until_stopped().await
//! ```
//!
//! `run_until_stopped` serves the intake and admin listeners, and runs the
//! background tasks (job runner or its stand-in heartbeat, forwarder,
//! systemd watchdog, schedules) in one `JoinSet` under one cancellation
//! token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::auth::AdminToken;
use crate::config::{Config, ScheduleConfig};
use crate::forward::Forwarder;
use crate::intake::EndpointState;
use crate::live::Live;
use crate::metrics::Activity;
use crate::queue::{self, BenchSwitches, Handler, Runner};
use crate::reconcile::ReconcileHandler;
use crate::store::Store;
use crate::systemd::{self, Heartbeat};
use crate::util::Clock;

mod parts;
pub(crate) mod reload;

pub use parts::{open_store, reconcile_handler};
pub use reload::{Loaded, Reloader};

/// What [`Application::builder`] returns: the config, and optionally the
/// handler and clock (tests give theirs; the daemon takes the defaults).
pub struct ApplicationBuilder {
    config: Config,
    handler: Option<Arc<dyn Handler>>,
    clock: Clock,
    reload: Option<(Option<PathBuf>, Loaded)>,
    bench: BenchSwitches,
}

/// The daemon, built and bound, not yet running.
pub struct Application {
    intake: parts::Listener,
    admin: Option<parts::Listener>,
    store: Store,
    runner: Arc<Runner>,
    runner_enabled: bool,
    forwarder: Option<Arc<Forwarder>>,
    forward_enabled: bool,
    forward_wake: Arc<Notify>,
    schedules: Option<(Arc<ReconcileHandler>, ScheduleConfig)>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    reload_targets: reload::Targets,
    reload: Option<Hangup>,
}

/// Reloads on SIGHUP, with the signal installed at build.
struct Hangup {
    reloader: Reloader,
    signal: tokio::signal::unix::Signal,
}

impl ApplicationBuilder {
    /// The handler the runner applies events with. Default: the reconcile
    /// handler when an API key is configured; without one, events are stored
    /// and the runner stays off.
    pub fn handler(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// The runner's clock (tests move time).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Reload on SIGHUP: `loaded` is what `config` was loaded as (see
    /// [`reload::load`]), `path` the `--config` to load again.
    pub fn reload_on_hangup(mut self, path: Option<PathBuf>, loaded: Loaded) -> Self {
        self.reload = Some((path, loaded));
        self
    }

    /// Benchmarks only: the runner's ways of running that a benchmark
    /// compares with the default ([`BenchSwitches`]; the config never sets
    /// them).
    #[doc(hidden)]
    pub fn bench_switches(mut self, bench: BenchSwitches) -> Self {
        self.bench = bench;
        self
    }

    /// Opens storage, runs migrations and binds the listeners.
    pub async fn build(self) -> anyhow::Result<Application> {
        let ApplicationBuilder {
            mut config,
            handler,
            clock,
            reload,
            bench,
        } = self;
        // First: SIGHUP's default action would end the process.
        let hangup = match reload {
            Some(reload) => Some((
                reload,
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                    .context("cannot install the SIGHUP handler (reload)")?,
            )),
            None => None,
        };
        if config.endpoints.is_empty() {
            anyhow::bail!(
                "no webhook endpoint is configured: set STRIPE_WEBHOOK_SECRET=whsec_… (Stripe Dashboard → Developers → Webhooks → Signing secret) or add an [[endpoints]] table to the config file"
            );
        }
        // The admin API's Stripe operations get their own client from the config.
        let ops = reconcile_handler(&config)?;
        // The runner's groups in flight follow the client's budget when it
        // runs the reconcile handler (the same client as the admin
        // operations, the sweep and catch-up: one budget).
        let pace = match (&handler, &ops) {
            (None, Some(ops)) => Some(ops.client().clone()),
            _ => None,
        };
        let handler: Arc<dyn Handler> = match (handler, &ops) {
            (Some(handler), _) => handler,
            (None, Some(ops)) => ops.clone(),
            (None, None) => {
                tracing::warn!(
                    "no Stripe API key (STRIPE_API_KEY): events are verified and stored, but not processed until a key is configured"
                );
                config.runner.enabled = false;
                default_handler()
            }
        };
        let store = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_store(&config))
                .await
                .context("the database task failed")??
        };
        let activity = Activity::new(
            config.endpoints.iter().map(|e| e.name.clone()),
            crate::store::now_ms(),
        );
        let wake = Arc::new(Notify::new());
        let forward_wake = Arc::new(Notify::new());
        let forwarder = parts::forwarder(&config, &store, clock.clone())?;
        // What a reload swaps: the endpoints' secrets, and the destinations
        // when any was configured at start.
        let endpoints: Vec<Arc<EndpointState>> = config
            .endpoints
            .iter()
            .cloned()
            .map(|e| Arc::new(EndpointState::new(e)))
            .collect();
        let destinations = forwarder
            .as_ref()
            .map(|_| Live::new(config.destinations.clone()));
        if let Some(destinations) = &destinations {
            parts::doors(&store, destinations);
        }
        let mut runner_options = config.runner.options();
        runner_options.bench = bench;
        let runner = parts::runner(
            runner_options,
            &store,
            handler,
            clock,
            &forward_wake,
            destinations.as_ref(),
            pace,
        )?;
        let intake = parts::intake(
            &config,
            &store,
            [&wake, &forward_wake],
            &activity,
            &endpoints,
        )?;
        let admin_token = config
            .admin_token
            .as_ref()
            .map(|t| Live::new(AdminToken::new(t.expose_secret())));
        let admin = parts::admin(
            &config,
            &store,
            activity,
            ops.clone(),
            destinations.as_ref(),
            admin_token.as_ref(),
        )?;
        let schedules = ops
            .filter(|_| config.runner.enabled)
            .map(|ops| (ops, config.schedule.clone()));
        let reload_targets = reload::Targets {
            endpoints,
            admin_token,
            destinations: destinations
                .zip(forwarder.clone())
                .map(|(cell, forwarder)| reload::DestinationTargets {
                    cell,
                    forwarder,
                    wake: Arc::clone(&forward_wake),
                }),
        };
        let reload = hangup.map(|((path, loaded), signal)| Hangup {
            reloader: Reloader::new(path, loaded, reload_targets.clone()),
            signal,
        });
        Ok(Application {
            intake,
            admin,
            store,
            runner,
            runner_enabled: config.runner.enabled,
            forwarder,
            forward_enabled: config.forward.enabled,
            forward_wake,
            schedules,
            wake,
            shutdown: CancellationToken::new(),
            reload_targets,
            reload,
        })
    }
}

impl Application {
    pub fn builder(config: Config) -> ApplicationBuilder {
        ApplicationBuilder {
            config,
            handler: None,
            clock: Clock::default(),
            reload: None,
            bench: BenchSwitches::default(),
        }
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.intake.addr
    }

    /// The admin listener's address, when the admin API is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The job runner (tests step it with `run_pending` when workers are off).
    pub fn runner(&self) -> Arc<Runner> {
        Arc::clone(&self.runner)
    }

    /// The forwarder, when destinations are configured (tests step it with
    /// `run_pending` when `forward.enabled` is off).
    pub fn forwarder(&self) -> Option<Arc<Forwarder>> {
        self.forwarder.clone()
    }

    /// The parts a configuration reload swaps (for a [`Reloader`]).
    pub fn reload_targets(&self) -> reload::Targets {
        self.reload_targets.clone()
    }

    /// Cancel this token to stop the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled (or the intake server
    /// ends), then stops accepting, lets in-flight requests and events
    /// finish (within the grace period), stops the admin listener and
    /// returns the first error any part ended with.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let mut background = self.spawn_background();
        if let Some(Hangup { reloader, signal }) = self.reload.take() {
            background.spawn(reloader.run(signal, shutdown.clone()));
        }
        let intake_handle = self.intake.server.handle();
        let mut intake = tokio::spawn(self.intake.server);
        let admin = self
            .admin
            .map(|admin| (admin.server.handle(), tokio::spawn(admin.server)));
        systemd::ready(&format!("accepting webhooks on {}", self.intake.addr));

        let mut result = tokio::select! {
            ended = &mut intake => {
                shutdown.cancel();
                ended.context("the intake server task failed").and_then(|r| Ok(r?))
            }
            () = shutdown.cancelled() => {
                systemd::stopping();
                tracing::info!("shutting down: no new connections, finishing in-flight requests and events");
                intake_handle.stop(true).await;
                intake.await.context("the intake server task failed").and_then(|r| Ok(r?))
            }
        };
        while let Some(ended) = background.join_next().await {
            let ended = ended.context("a background task failed").and_then(|r| r);
            result = result.and(ended);
        }
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            let ended = task.await.context("the admin server task failed");
            result = result.and(ended.and_then(|r| Ok(r?)));
        }
        tracing::info!("stopped");
        result
    }

    /// The runner (or, with the runner off, a ticker as the proof of life),
    /// the systemd watchdog fed by either, the forwarder and the schedules.
    fn spawn_background(&self) -> JoinSet<anyhow::Result<()>> {
        let shutdown = self.shutdown.clone();
        let heartbeat = Heartbeat::default();
        let mut tasks = JoinSet::new();
        let watchdog = systemd::watchdog(
            heartbeat.clone(),
            self.runner.options().lease,
            shutdown.clone(),
        );
        tasks.spawn(async move {
            watchdog.await;
            Ok(())
        });
        if self.runner_enabled {
            tracing::info!(
                worker = self.runner.worker_id(),
                concurrency = self.runner.options().concurrency,
                workers = self.runner.workers(),
                "job runner started"
            );
            let beat: Arc<dyn Fn() + Send + Sync> = Arc::new(move || heartbeat.beat());
            tasks.spawn(queue::worker::run(
                Arc::clone(&self.runner),
                Arc::clone(&self.wake),
                beat,
                shutdown.clone(),
            ));
        } else {
            tasks.spawn(tick(heartbeat, shutdown.clone()));
        }
        let refusals = crate::telemetry::report_refusals(Duration::from_secs(60), shutdown.clone());
        tasks.spawn(async move {
            refusals.await;
            Ok(())
        });
        if let Some(forwarder) = self.forwarder.iter().find(|_| self.forward_enabled) {
            tasks
                .spawn(Arc::clone(forwarder).run(Arc::clone(&self.forward_wake), shutdown.clone()));
        }
        if let Some((ops, schedule)) = &self.schedules {
            let schedules = crate::reconcile::schedule::run(
                Arc::clone(ops),
                self.store.clone(),
                schedule.clone(),
                shutdown,
            );
            tasks.spawn(async move {
                schedules.await;
                Ok(())
            });
        }
        tasks
    }
}

/// With no runner here (intake-only, or no API key), the HTTP side's own
/// ticker is the proof of life the watchdog needs.
async fn tick(heartbeat: Heartbeat, shutdown: CancellationToken) -> anyhow::Result<()> {
    loop {
        heartbeat.beat();
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// A handler that takes nothing (every event ends `ignored`): for tests and
/// intake-only setups; the daemon runs [`reconcile_handler`].
pub fn default_handler() -> Arc<dyn Handler> {
    Arc::new(queue::NoHandler)
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
                    _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Builds the application, stops it on SIGTERM/SIGINT, and serves until then.
pub async fn serve(builder: ApplicationBuilder) -> anyhow::Result<()> {
    let app = builder.build().await?;
    let token = app.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    app.run_until_stopped().await
}
