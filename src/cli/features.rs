//! `stripe-hookd features CUSTOMER [LOOKUP_KEY]`: a customer's Stripe
//! Entitlements features as stored (read from the database; the daemon keeps
//! them current from `entitlements.active_entitlement_summary.updated`).

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::reconcile::features;
use crate::store::Store;

#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    /// The customer (cus_…).
    pub customer: String,
    /// Ask about one feature: exit status 0 if the customer has it, 1 if not.
    pub lookup_key: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Prints the features; `Ok(false)` when one was asked about and is absent.
pub(super) fn run(config: &Config, args: &FeaturesArgs) -> anyhow::Result<bool> {
    let store = Store::open(&config.database_url(), &config.database.store_options())
        .context("cannot open the database")?;
    store.check_ready().context("the database is not ready")?;
    let mut conn = store.conn()?;
    let fetched_at = features::fetched_at(&mut conn, &args.customer)?;
    if let Some(key) = &args.lookup_key {
        let row = features::has_feature(&mut conn, &args.customer, key)?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"customer": args.customer, "lookup_key": key,
                                   "active": row.is_some(), "feature": row, "fetched_at": fetched_at})
            );
        } else {
            let answer = if row.is_some() { "yes" } else { "no" };
            println!("{} {key}: {answer}", args.customer);
        }
        return Ok(row.is_some());
    }
    let rows = features::for_customer(&mut conn, &args.customer)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"customer": args.customer, "features": rows, "fetched_at": fetched_at})
        );
    } else if fetched_at.is_none() {
        println!("{}: no active entitlements fetched yet", args.customer);
    } else {
        println!("{:<32} {:<32} ACCOUNT", "LOOKUP_KEY", "FEATURE");
        for f in &rows {
            println!(
                "{:<32} {:<32} {}",
                f.lookup_key,
                f.feature_id,
                f.account.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(true)
}
