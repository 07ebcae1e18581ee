//! The application: storage opened and migrated, listeners bound, and a
//! future that runs until shutdown. `main` and the tests build it the same
//! way; tests bind port 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use tokio::sync::Notify;

use crate::config::Config;
use crate::intake::commit::{CommitOptions, CommitQueue, OnCommit};
use crate::intake::{self, EndpointState, IntakeState};
use crate::queue::{self, Clock, Handler, Runner};
use crate::reconcile::ReconcileHandler;
use crate::store::{Backend, Store};

pub struct Application {
    public_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    admin: Option<actix_web::dev::Server>,
    store: Store,
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
    runner: Arc<Runner>,
    runner_enabled: bool,
    ops: Option<Arc<ReconcileHandler>>,
    schedule: crate::config::ScheduleConfig,
    wake: Arc<Notify>,
}

/// Opens the database named by the config (blocking) and applies migrations.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    let store =
        Store::open(&url, &config.database.store_options()).context("cannot open the database")?;
    let applied = store.migrate()?;
    tracing::info!(
        database = %store.target().redacted(),
        backend = store.backend().as_str(),
        migrations_applied = applied.len(),
        "database ready"
    );
    Ok(store)
}

impl Application {
    /// Opens storage, runs migrations and binds the public listener; events
    /// are applied by the default handler.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        #[cfg(feature = "test-hooks")]
        if let Some(handler) = queue::test_hooks::EffectsHandler::from_env() {
            tracing::warn!("test hook: HOOKD_TEST_HANDLER=effects is in use");
            let app = Application::build_with(config, Arc::new(handler), Clock::default()).await?;
            let store = app.store.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                queue::test_hooks::EffectsHandler::prepare(&mut *store.conn()?)?;
                Ok(())
            })
            .await??;
            return Ok(app);
        }
        match reconcile_handler(&config)? {
            Some(handler) => {
                Application::build_inner(config, handler.clone(), Some(handler), Clock::default())
                    .await
            }
            None => {
                tracing::warn!(
                    "no Stripe API key (STRIPE_API_KEY): events are verified and stored, but not processed until a key is configured"
                );
                let mut config = config;
                config.runner.enabled = false;
                Application::build_inner(config, default_handler(), None, Clock::default()).await
            }
        }
    }

    /// As [`Application::build`], with the handler (and clock) given. The
    /// admin API's Stripe operations get their own client from the config.
    pub async fn build_with(
        config: Config,
        handler: Arc<dyn Handler>,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        let ops = reconcile_handler(&config)?;
        Application::build_inner(config, handler, ops, clock).await
    }

    async fn build_inner(
        config: Config,
        handler: Arc<dyn Handler>,
        ops: Option<Arc<ReconcileHandler>>,
        clock: Clock,
    ) -> anyhow::Result<Application> {
        if config.endpoints.is_empty() {
            anyhow::bail!(
                "no webhook endpoint is configured: set STRIPE_WEBHOOK_SECRET=whsec_… (Stripe Dashboard → Developers → Webhooks → Signing secret) or add an [[endpoints]] table to the config file"
            );
        }
        let store = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_store(&config)).await??
        };

        let activity = crate::metrics::Activity::new(
            config.endpoints.iter().map(|e| e.name.clone()),
            crate::store::now_ms(),
        );
        let wake = Arc::new(Notify::new());
        let on_commit: Option<OnCommit> = {
            let wake = Arc::clone(&wake);
            Some(Arc::new(move || wake.notify_one()))
        };
        let runner = Arc::new(
            Runner::new(store.clone(), handler, config.runner.options(), clock)
                .context("cannot start the job runner")?,
        );
        let writers = config.intake.writers.unwrap_or(match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => 2,
        });
        let queue = CommitQueue::start(
            store.clone(),
            &CommitOptions {
                max_batch: config.intake.max_batch,
                queue_capacity: config.intake.queue_capacity,
                writers,
            },
            on_commit,
        )
        .context("cannot start the intake writer")?;
        let state = web::Data::new(IntakeState {
            queue,
            store: store.clone(),
            max_body_bytes: config.intake.max_body_bytes,
            write_timeout: Duration::from_millis(config.intake.write_timeout_ms),
            retry_after_secs: config.intake.retry_after_secs,
            activity: activity.clone(),
        });
        let endpoints: Vec<Arc<EndpointState>> = config
            .endpoints
            .iter()
            .cloned()
            .map(|e| Arc::new(EndpointState::new(e)))
            .collect();

        let listener = TcpListener::bind(config.listen).with_context(|| {
            format!(
                "cannot listen on {} (listen / STRIPE_HOOKD_LISTEN)",
                config.listen
            )
        })?;
        let public_addr = listener.local_addr()?;
        let workers = config.intake.http_workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let server = HttpServer::new(move || {
            let (state, endpoints) = (state.clone(), endpoints.clone());
            App::new()
                .configure(move |cfg| intake::configure(cfg, state, &endpoints))
                .default_service(web::to(intake::not_found))
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(config.intake.shutdown_timeout_secs)
        .listen(listener)?
        .run();

        let (admin, admin_addr) = match &config.admin_token {
            Some(token) => {
                let listener = TcpListener::bind(config.admin_listen).with_context(|| {
                    format!(
                        "cannot listen on {} (admin_listen / STRIPE_HOOKD_ADMIN_LISTEN)",
                        config.admin_listen
                    )
                })?;
                let addr = listener.local_addr()?;
                let metrics = crate::metrics::install().map_err(|e| anyhow::anyhow!(e))?;
                let server = crate::admin::server(
                    listener,
                    crate::admin::AdminState {
                        store: store.clone(),
                        token: crate::admin::auth::digest(secrecy::ExposeSecret::expose_secret(
                            token,
                        )),
                        metrics,
                        activity,
                        reconcile: ops.clone(),
                        jobs: crate::admin::jobs::Jobs::default(),
                    },
                )?;
                tracing::info!(admin_addr = %addr, "admin API listening");
                (Some(server), Some(addr))
            }
            None => {
                tracing::warn!("admin API disabled: set STRIPE_HOOKD_ADMIN_TOKEN (or the admin_token credential) to enable it");
                (None, None)
            }
        };

        for ep in &config.endpoints {
            tracing::info!(
                endpoint = %ep.name,
                path = %ep.path,
                mode = ep.mode.as_str(),
                secrets = ep.secrets.len(),
                tolerance_secs = ep.tolerance_secs,
                "webhook endpoint configured"
            );
        }
        tracing::info!(public_addr = %public_addr, "listening");
        Ok(Application {
            public_addr,
            admin_addr,
            admin,
            store,
            server,
            shutdown: CancellationToken::new(),
            runner,
            runner_enabled: config.runner.enabled,
            ops,
            schedule: config.schedule.clone(),
            wake,
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The admin listener's address, when the admin API is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The job runner (tests step it with `run_pending` when workers are off).
    pub fn runner(&self) -> Arc<Runner> {
        Arc::clone(&self.runner)
    }

    /// Cancel this token to stop the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting,
    /// lets in-flight requests and events finish (within the grace period),
    /// and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let admin = self.admin.map(|admin| {
            let handle = admin.handle();
            (handle, tokio::spawn(admin))
        });
        let shutdown = self.shutdown.clone();
        let heartbeat = crate::systemd::Heartbeat::default();
        let watchdog = tokio::spawn(crate::systemd::watchdog(
            heartbeat.clone(),
            self.runner.options().lease,
            shutdown.clone(),
        ));
        let runner = if self.runner_enabled {
            let beat = heartbeat.clone();
            let heartbeat: Arc<dyn Fn() + Send + Sync> = Arc::new(move || beat.beat());
            tracing::info!(
                worker = self.runner.worker_id(),
                concurrency = self.runner.options().concurrency,
                "job runner started"
            );
            Some(tokio::spawn(queue::worker::run(
                Arc::clone(&self.runner),
                Arc::clone(&self.wake),
                heartbeat,
                shutdown.clone(),
            )))
        } else {
            // No runner here (intake-only, or no API key): the HTTP side's
            // own ticker is the proof of life.
            let (beat, stop) = (heartbeat.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    beat.beat();
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            });
            None
        };
        let schedules = match (&self.ops, self.runner_enabled) {
            (Some(ops), true) => Some(tokio::spawn(crate::reconcile::schedule::run(
                Arc::clone(ops),
                self.store.clone(),
                self.schedule.clone(),
                shutdown.clone(),
            ))),
            _ => None,
        };
        crate::systemd::ready(&format!("accepting webhooks on {}", self.public_addr));
        tokio::select! {
            result = &mut server => {
                shutdown.cancel();
                result??;
            }
            () = shutdown.cancelled() => {
                crate::systemd::stopping();
                tracing::info!("shutting down: no new connections, finishing in-flight requests and events");
                handle.stop(true).await;
                server.await??;
            }
        }
        if let Some(runner) = runner {
            runner.await??;
        }
        let _ = watchdog.await;
        if let Some(task) = schedules {
            let _ = task.await;
        }
        if let Some((handle, task)) = admin {
            handle.stop(true).await;
            task.await??;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// A handler that takes nothing (every event ends `ignored`): for tests and
/// intake-only setups; the daemon runs [`reconcile_handler`].
pub fn default_handler() -> Arc<dyn Handler> {
    Arc::new(queue::NoHandler)
}

/// The reconcile handler for this config, or `None` without an API key.
pub fn reconcile_handler(config: &Config) -> anyhow::Result<Option<Arc<ReconcileHandler>>> {
    let Some(options) = config.stripe.client_options() else {
        return Ok(None);
    };
    let client =
        crate::stripe::StripeClient::new(options).context("cannot set up the Stripe API client")?;
    let handler = crate::reconcile::ReconcileHandler::new(
        client,
        crate::reconcile::ReconcileOptions {
            api_version: config.stripe.api_version.clone(),
            past_due_grace: Duration::from_secs(
                config
                    .entitlements
                    .past_due_grace_hours
                    .saturating_mul(3600),
            ),
        },
    );
    Ok(Some(handler))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
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
