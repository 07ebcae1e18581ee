//! The command line: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::config::{self, Config};
use crate::telemetry;

mod backup;
pub(crate) mod check;
mod deliveries;
mod demo;
mod destinations;
mod features;
mod manual;
mod ops;
pub(crate) mod setup;
mod stripe_ops;
mod trigger;

#[derive(Debug, Parser)]
#[command(
    name = "stripe-hookd",
    version = manual::VERSION,
    about = "Durable Stripe webhook intake and billing-state reconciliation"
)]
pub(crate) struct Cli {
    /// Config file (TOML). Default: /etc/stripe-hookd/config.toml when it exists.
    #[arg(long, short = 'c', global = true, env = "STRIPE_HOOKD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the daemon: webhook intake (and, as they land, workers and admin API).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate {
        /// List the pending migrations without applying them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the SQLite database to PATH, consistently, while the daemon serves (never overwrites).
    Backup { path: PathBuf },
    /// Diagnose the setup: config, database, migrations, Stripe API key; non-zero exit on failure.
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Inspect events: list with filters, or show one with its attempts.
    #[command(subcommand)]
    Events(ops::EventsCommand),
    /// Re-queue events through the normal runner: by id, or every event matching a filter.
    Replay {
        event_ids: Vec<String>,
        #[command(flatten)]
        filter: ops::FilterArgs,
        #[arg(long)]
        json: bool,
    },
    /// Dead letters: list, show, retry, discard with a reason.
    #[command(subcommand)]
    Dead(ops::DeadCommand),
    /// End every inspector session, in every browser and on every instance sharing the database (sign out everywhere).
    SignOutEverywhere {
        #[arg(long)]
        json: bool,
    },
    /// Fetch objects from Stripe now and reconcile them (cus_…, sub_…, in_…, pi_…, ch_…, dp_…, cs_…).
    Resync {
        object_ids: Vec<String>,
        /// Fetch from this Connect account (acct_…); default: the account the record came from.
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The drift sweep: compare subscriptions, customers, recent charges and customer features with Stripe, fix and report drift.
    Reconcile {
        /// Report what differs without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// List every drifted field, not only the first 100.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// A customer's Stripe Entitlements features, or whether they have one (exit 1 if not).
    Features(features::FeaturesArgs),
    /// Pull events Stripe could not deliver (GET /v1/events; with a thin endpoint also GET /v2/core/events) and ingest the missing ones.
    CatchUp(stripe_ops::CatchUpArgs),
    /// Create or update the Stripe endpoint (webhook endpoint, or --thin event destination) with the handled event types.
    Setup(setup::SetupArgs),
    /// Forwarding deliveries: list, show with attempts, redeliver (by id or filter), discard.
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// Forwarding destinations: list with health, pause/resume, a fresh secret, a signed test ping.
    #[command(subcommand)]
    Destinations(destinations::DestinationsCommand),
    /// Send realistic signed Stripe events to an endpoint (one, or a load test with --count).
    Trigger(trigger::TriggerArgs),
    /// The whole loop offline: the daemon, a Stripe stand-in and a scripted customer story.
    Demo(demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `stripe-hookd man | man -l -`.
    Man,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated from the arguments alone: no config, no logging.
    match cli.command {
        Command::Completions { shell } => return finish(manual::completions(shell)),
        Command::Man => return finish(manual::man()),
        _ => {}
    }
    // STRIPE_HOOKD_CONFIG is a CLI setting, not a config key.
    std::env::remove_var("STRIPE_HOOKD_CONFIG");
    if let Command::Check { json } = cli.command {
        telemetry::init(crate::config::LogFormat::Text, "error");
        let checks = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(check::run(config::load(cli.config.as_deref()))),
            Err(e) => return finish(Err(e.into())),
        };
        return if check::print(&checks, json) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Command::Trigger(args) = cli.command {
        // Sending needs only a URL and a secret: the config supplies defaults.
        telemetry::init(crate::config::LogFormat::Text, "warn");
        return finish(trigger::run(config::load(cli.config.as_deref()), args));
    }
    if let Command::Demo(args) = cli.command {
        // The demo's app answers 500 once on purpose and the story narrates
        // the retry: the forwarder's WARN for it would only interrupt that.
        telemetry::init(
            crate::config::LogFormat::Text,
            "warn,stripe_hookd::forward=error",
        );
        return finish(demo::run(cli.config.as_deref(), args));
    }
    if let Command::Destinations(command) = cli.command {
        // `secret` needs no config; `test` reports a config error itself.
        telemetry::init(crate::config::LogFormat::Text, "warn");
        return finish(destinations::run(
            config::load(cli.config.as_deref()),
            command,
        ));
    }
    // Loaded as a reload compares against (`serve` reloads on SIGHUP).
    let loaded = match app::reload::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("stripe-hookd: {e}");
            return ExitCode::from(2);
        }
    };
    let config = loaded.config.clone();
    telemetry::init(config.log.format, &config.log.level);
    let result = match cli.command {
        Command::Serve => serve(loaded, cli.config),
        Command::Migrate { dry_run: false } => migrate(&config),
        Command::Migrate { dry_run: true } => backup::migrate_dry_run(&config),
        Command::Backup { path } => backup::backup(&config, &path),
        Command::Events(command) => ops::events(&config, command),
        Command::Replay {
            event_ids,
            filter,
            json,
        } => ops::replay(&config, event_ids, filter, json),
        Command::Dead(command) => ops::dead(&config, command),
        Command::SignOutEverywhere { json } => ops::sign_out_everywhere(&config, json),
        Command::Resync {
            object_ids,
            account,
            json,
        } => stripe_ops::resync(&config, object_ids, account, json),
        Command::Reconcile { dry_run, all, json } => {
            match stripe_ops::reconcile(&config, dry_run, all, json) {
                // Partial: a part failed, the others ran (documented).
                Ok(false) => return ExitCode::from(3),
                other => other.map(|_| ()),
            }
        }
        Command::CatchUp(args) => stripe_ops::catch_up(&config, args),
        Command::Setup(args) => setup::command(&config, args),
        Command::Features(args) => match features::run(&config, &args) {
            Ok(false) => return ExitCode::FAILURE,
            other => other.map(|_| ()),
        },
        Command::Deliveries(command) => deliveries::run(&config, command),
        Command::Trigger(_)
        | Command::Check { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Destinations(_)
        | Command::Demo(_) => Ok(()),
    };
    finish(result)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "stripe-hookd failed");
            eprintln!("stripe-hookd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(loaded: app::Loaded, path: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let builder = Application::builder(loaded.config.clone()).reload_on_hangup(path, loaded);
    runtime.block_on(app::serve(builder))
}

fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = app::open_store(config)?;
    let pending = store.pending_migrations()?;
    println!(
        "database {} ({}) is up to date; {} migration(s) pending",
        store.target().redacted(),
        store.backend().as_str(),
        pending.len()
    );
    Ok(())
}
