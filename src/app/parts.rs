//! One constructor per part of the daemon, each from the config alone plus
//! the shared pieces it needs (store, wake-up, activity, the cells a reload
//! swaps): the intake server,
//! the admin server, the job runner, the forwarder and the Stripe-backed
//! operations.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::sync::Notify;

use crate::admin::auth::LiveToken;
use crate::config::{After, Config, Destination};
use crate::forward::{self, Forwarder};
use crate::intake::commit::{CommitOptions, CommitQueue};
use crate::intake::{self, EndpointState, IntakeState};
use crate::live::Live;
use crate::metrics::Activity;
use crate::queue::{Handler, Runner, RunnerOptions};
use crate::reconcile::{ReconcileHandler, ReconcileOptions};
use crate::store::deliveries::EventHook;
use crate::store::{Backend, Store};
use crate::stripe::StripeClient;
use crate::util::Clock;

/// A bound HTTP server, not yet running.
pub(super) struct Listener {
    pub server: Server,
    pub addr: SocketAddr,
}

/// Opens the database named by the config (blocking) and applies migrations.
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&config.database_url(), &config.database.store_options())
        .context("cannot open the database")?;
    let applied = store.migrate()?;
    if let Some(mode) = config.api_key_mode() {
        let live = mode == crate::config::Mode::Live;
        let mut conn = store.conn().context("cannot open the database")?;
        crate::store::access_mode::set(&mut conn, live, crate::store::now_ms())
            .context("cannot record the mode access is answered for")?;
        tracing::info!(mode = mode.as_str(), "access is answered for this mode");
    }
    tracing::info!(
        database = %store.target().redacted(),
        backend = store.backend().as_str(),
        pooler = store.pooling().map(crate::store::Pooling::as_str),
        migrations_applied = applied.len(),
        "database ready"
    );
    Ok(store)
}

/// The reconcile handler for this config, or `None` without an API key.
pub fn reconcile_handler(config: &Config) -> anyhow::Result<Option<Arc<ReconcileHandler>>> {
    let Some(options) = config.stripe.client_options() else {
        return Ok(None);
    };
    let client = StripeClient::new(options).context("cannot set up the Stripe API client")?;
    let grace_hours = config.entitlements.past_due_grace_hours;
    Ok(Some(ReconcileHandler::new(
        client,
        ReconcileOptions {
            api_version: config.stripe.api_version.clone(),
            past_due_grace: Duration::from_secs(grace_hours.saturating_mul(3600)),
            thin_catch_up: crate::reconcile::catchup::CatchUpOptions::thin_for(config),
            connect: config.endpoints.iter().any(|e| e.connect),
            charge_window: config.schedule.sweep_charge_window(),
        },
    )))
}

/// Sets the store's doors ([`crate::store::hooks`]) for `destinations`:
/// every insert into the outbox records the deliveries of `after =
/// "received"` destinations, and every transaction that wrote a customer's
/// entitlement rows announces the access change to the destinations that
/// list `stripe_hookd.access.updated`, whoever wrote them.
pub(super) fn doors(store: &Store, destinations: &Live<Vec<Destination>>) {
    use crate::reconcile::access_events;
    store.hooks().set_received(forward::live_hook(
        destinations.clone(),
        After::Received,
        None,
    ));
    store.hooks().set_access(forward::derived_hook(
        destinations.clone(),
        access_events::ACCESS_UPDATED,
        access_events::announce_changes,
    ));
}

/// The job runner over the store's outbox (`options`: the config's,
/// [`crate::config::RunnerConfig::options`]); it records the deliveries of
/// `after = "reconciled"` destinations in each finishing transaction (and
/// notes the customers its events name, whose access the transaction's end
/// compares), then wakes the forwarder. With `pace`, the groups it runs at
/// once follow that client's budget × latency.
pub(super) fn runner(
    options: RunnerOptions,
    store: &Store,
    handler: Arc<dyn Handler>,
    clock: Clock,
    forward_wake: &Arc<Notify>,
    destinations: Option<&Live<Vec<Destination>>>,
    pace: Option<StripeClient>,
) -> anyhow::Result<Arc<Runner>> {
    let mut runner = Runner::new(store.clone(), handler, options, clock)
        .context("cannot start the job runner")?;
    if let Some(client) = pace {
        runner = runner.with_pace(Arc::new(move || client.in_flight_wanted()));
    }
    if let Some(destinations) = destinations {
        let deliveries = forward::live_hook(
            destinations.clone(),
            After::Reconciled,
            Some(crate::reconcile::sequence::of_event),
        );
        let hook: EventHook = Arc::new(move |tx, events, now| {
            deliveries(tx, events, now)?;
            crate::reconcile::access_events::note_events(tx, events, now)
        });
        let wake = Arc::clone(forward_wake);
        runner = runner.with_finish_hook(hook, Arc::new(move || wake.notify_one()));
    }
    Ok(Arc::new(runner))
}

/// The forwarder, when destinations are configured.
pub(super) fn forwarder(
    config: &Config,
    store: &Store,
    clock: Clock,
) -> anyhow::Result<Option<Arc<Forwarder>>> {
    if config.destinations.is_empty() {
        return Ok(None);
    }
    for d in &config.destinations {
        tracing::info!(
            destination = %d.name,
            url = %crate::redact::url(d.url.as_str()),
            after = d.after.as_str(),
            signature = d.signature.as_str(),
            ordered = d.ordered,
            events = %d.events.join(","),
            "destination configured"
        );
    }
    let forwarder = Forwarder::new(
        store.clone(),
        config.destinations.clone(),
        crate::forward::ForwardOptions::from_config(&config.forward),
        clock,
    )
    .context("cannot start the forwarder")?
    .with_clock_events(forward::ClockEvents {
        event_type: crate::reconcile::access_events::ACCESS_UPDATED,
        every: std::time::Duration::from_secs(30),
        derive: crate::reconcile::access_events::expired,
    });
    Ok(Some(Arc::new(forwarder)))
}

/// The public webhook listener: group commit into the outbox (through its
/// one door, see [`doors`]), waking the local
/// runner and forwarder after each commit.
pub(super) fn intake(
    config: &Config,
    store: &Store,
    wakes: [&Arc<Notify>; 2],
    activity: &Activity,
    endpoints: &[Arc<EndpointState>],
) -> anyhow::Result<Listener> {
    let writers = config.intake.writers.unwrap_or(match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    });
    let [runner_wake, forward_wake] = wakes.map(Arc::clone);
    let queue = CommitQueue::start(
        store.clone(),
        &CommitOptions {
            max_batch: config.intake.max_batch,
            queue_capacity: config.intake.queue_capacity,
            writers,
        },
        Some(Arc::new(move || {
            runner_wake.notify_one();
            forward_wake.notify_one();
        })),
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
    let endpoints = endpoints.to_vec();
    let listener = bind(config.listen, "listen / STRIPE_HOOKD_LISTEN")?;
    let addr = listener.local_addr()?;
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
    tracing::info!(public_addr = %addr, "listening");
    Ok(Listener { server, addr })
}

/// The admin listener, or `None` (with a warning) without an admin token
/// (`token`: the configured one, in the cell a reload rotates it in).
pub(super) fn admin(
    config: &Config,
    store: &Store,
    activity: Activity,
    ops: Option<Arc<ReconcileHandler>>,
    destinations: Option<&Live<Vec<Destination>>>,
    token: Option<&LiveToken>,
) -> anyhow::Result<Option<Listener>> {
    let Some(token) = token else {
        tracing::warn!("admin API disabled: set STRIPE_HOOKD_ADMIN_TOKEN (or the admin_token credential) to enable it");
        return Ok(None);
    };
    let listener = bind(
        config.admin_listen,
        "admin_listen / STRIPE_HOOKD_ADMIN_LISTEN",
    )?;
    let addr = listener.local_addr()?;
    let metrics = crate::metrics::install().map_err(|e| anyhow::anyhow!(e))?;
    let server = crate::admin::server(
        listener,
        crate::admin::AdminState {
            store: store.clone(),
            token: token.clone(),
            access_token: config
                .access_token
                .as_ref()
                .map(|t| crate::admin::auth::digest(secrecy::ExposeSecret::expose_secret(t))),
            metrics,
            activity,
            reconcile: ops,
            jobs: crate::admin::jobs::Jobs::default(),
            session_ttl: std::time::Duration::from_secs(
                u64::from(config.admin_session_hours) * 3600,
            ),
            destinations: match destinations {
                Some(live) => {
                    let live = live.clone();
                    Arc::new(move || live.get().as_ref().clone())
                }
                None => {
                    let configured = config.destinations.clone();
                    Arc::new(move || configured.clone())
                }
            },
        },
    )?;
    tracing::info!(admin_addr = %addr, "admin API listening");
    Ok(Some(Listener { server, addr }))
}

fn bind(addr: SocketAddr, setting: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} ({setting})"))
}
