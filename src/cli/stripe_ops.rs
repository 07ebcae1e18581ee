//! Operator subcommands that call Stripe: resync one object, the drift sweep
//! (`reconcile`), and catch-up. They share the rate limit logic of the
//! daemon (background priority) and write through the same code.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::app;
use crate::config::Config;
use crate::reconcile::{catchup, sweep, ReconcileHandler};
use crate::store::{now_ms, Store};

#[derive(Debug, Args)]
pub(crate) struct CatchUpArgs {
    /// Events created at or after: RFC 3339, unix seconds, or an age (6h, 3d); at most 30 days.
    #[arg(long, value_parser = super::ops::parse_time, default_value = "3d")]
    pub since: i64,
    /// Only the events whose delivery failed (delivery_success=false).
    #[arg(long)]
    pub only_failed: bool,
    /// Report what is missing without storing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

fn setup(
    config: &Config,
) -> anyhow::Result<(Arc<ReconcileHandler>, Store, tokio::runtime::Runtime)> {
    let handler = app::reconcile_handler(config)?
        .context("no Stripe API key: set STRIPE_API_KEY (sk_test_… or sk_live_…, or a restricted rk_… key with read access)")?;
    let store = Store::open(&config.database_url(), &config.database.store_options())
        .context("cannot open the database")?;
    store.check_ready().context("the database is not ready")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok((handler, store, runtime))
}

pub(super) fn resync(
    config: &Config,
    ids: Vec<String>,
    account: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    if ids.is_empty() {
        anyhow::bail!("name the objects to resync: cus_…, sub_…, in_…, pi_…, ch_…, dp_…, cs_…");
    }
    let (handler, store, runtime) = setup(config)?;
    runtime.block_on(async {
        for id in ids {
            let records = handler.resync_in(&store, &id, account.as_deref()).await?;
            let written: Vec<String> = records.iter().map(|r| r.describe()).collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"resynced": id, "written": written})
                );
            } else {
                println!("resynced {id}: {}", written.join(", "));
            }
        }
        Ok(())
    })
}

/// The drift sweep. The report shows counts and the first
/// [`sweep::DRIFT_SHOWN`] drifted fields; `all` lists every one.
/// The drift sweep from the command line; `Ok(false)` when a part failed
/// (the others ran and are reported: exit status 3, "partial").
pub(super) fn reconcile(
    config: &Config,
    dry_run: bool,
    all: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let (handler, store, runtime) = setup(config)?;
    let bar = if std::io::stderr().is_terminal() && !json {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Some(bar)
    } else {
        None
    };
    let progress = |p: &sweep::SweepProgress| match &bar {
        Some(bar) => bar.set_message(format!(
            "{}: {} checked, {} drifted",
            p.phase, p.checked, p.drifted
        )),
        None if !json => eprintln!("{}: {} checked, {} drifted", p.phase, p.checked, p.drifted),
        None => {}
    };
    let mut report = runtime.block_on(sweep::run(&handler, &store, dry_run, &progress))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if all {
        report.drift = std::mem::take(&mut report.all_drift);
        report.drift_truncated = false;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(!report.partial);
    }
    println!(
        "checked {} subscriptions, {} customers, {} charges and {} customers' features; {} field(s) of {} object(s) drifted{}",
        report.subscriptions_checked,
        report.customers_checked,
        report.charges_checked,
        report.customer_features_checked,
        report.drift_total,
        report.drifted_objects,
        if dry_run {
            " (dry run: nothing changed)".to_owned()
        } else {
            format!("; {} object(s) fixed", report.fixed)
        }
    );
    for skipped in &report.skipped {
        println!("skipped: {skipped}");
    }
    for failed in &report.failed {
        println!("failed: {failed}");
    }
    if !report.drift_by_field.is_empty() {
        let by_field: Vec<String> = report
            .drift_by_field
            .iter()
            .map(|(field, n)| format!("{field} {n}"))
            .collect();
        println!("by field: {}", by_field.join(", "));
    }
    for d in &report.drift {
        println!(
            "  {:<32} {:<22} local={:<24} stripe={}",
            d.object,
            d.field,
            d.local.as_deref().unwrap_or("∅"),
            d.stripe.as_deref().unwrap_or("∅")
        );
    }
    if report.drift_truncated {
        println!(
            "  … the first {} of {}; --all lists every one",
            report.drift.len(),
            report.drift_total
        );
    }
    if report.partial {
        eprintln!(
            "stripe-hookd: partial sweep: {} part(s) failed (above); the others were checked{}",
            report.failed.len(),
            if dry_run { "" } else { " and repaired" }
        );
    }
    Ok(!report.partial)
}

pub(super) fn catch_up(config: &Config, args: CatchUpArgs) -> anyhow::Result<()> {
    let (handler, store, runtime) = setup(config)?;
    let options = catchup::CatchUpOptions {
        since: args.since / 1000,
        only_failed: args.only_failed,
        dry_run: args.dry_run,
        thin: handler.lists_thin_events(),
    };
    let report = runtime.block_on(crate::reconcile::connect::catch_up(
        &handler, &store, &options,
    ))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let since = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(
                u64::try_from(options.since.max(now_ms() / 1000 - catchup::MAX_AGE_SECS))
                    .unwrap_or(0),
            ),
    );
    println!(
        "listed {} event(s) since {since}: {} already stored, {} missing{}",
        report.listed,
        report.already_stored,
        report.missing.len(),
        if args.dry_run {
            " (dry run: nothing stored)"
        } else {
            " (now stored; the runner applies them)"
        }
    );
    for id in &report.missing {
        println!("  {id}");
    }
    for id in &report.skipped {
        println!("  skipped (not a storable event): {id}");
    }
    for failure in &report.failed_accounts {
        println!(
            "  connected account {} failed (the others were caught up): {}",
            failure.account, failure.error
        );
    }
    if !report.failed_accounts.is_empty() {
        anyhow::bail!(
            "catch-up was partial: {} connected account(s) failed",
            report.failed_accounts.len()
        );
    }
    Ok(())
}
