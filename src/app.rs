//! The application: storage opened and migrated, listeners bound, and a
//! future that runs until shutdown. `main` and the tests build it the same
//! way; tests bind port 0.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::intake::commit::{CommitOptions, CommitQueue, OnCommit};
use crate::intake::{self, EndpointState, IntakeState};
use crate::store::{Backend, Store, StoreOptions};

pub struct Application {
    public_addr: SocketAddr,
    store: Store,
    server: actix_web::dev::Server,
    shutdown: CancellationToken,
}

/// Opens the database named by the config (blocking) and applies migrations.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    let options = StoreOptions {
        pool_size: config.database.pool_size,
        busy_timeout: Duration::from_millis(config.database.busy_timeout_ms),
        connect_timeout: Duration::from_millis(config.database.connect_timeout_ms),
    };
    let store = Store::open(&url, &options).context("cannot open the database")?;
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
    /// Opens storage, runs migrations and binds the public listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        if config.endpoints.is_empty() {
            anyhow::bail!(
                "no webhook endpoint is configured: set STRIPE_WEBHOOK_SECRET=whsec_… (Stripe Dashboard → Developers → Webhooks → Signing secret) or add an [[endpoints]] table to the config file"
            );
        }
        let store = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_store(&config)).await??
        };

        let on_commit: Option<OnCommit> = None;
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
            store,
            server,
            shutdown: CancellationToken::new(),
        })
    }

    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Cancel this token to stop the application gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then stops accepting,
    /// lets in-flight requests finish, and returns.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let shutdown = self.shutdown.clone();
        tokio::select! {
            result = server => { result??; }
            () = shutdown.cancelled() => {
                tracing::info!("shutting down: no new connections, finishing in-flight requests");
                handle.stop(true).await;
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
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
