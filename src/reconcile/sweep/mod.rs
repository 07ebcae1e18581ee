//! The drift sweep (`reconcile`): page through every subscription (all
//! statuses) and customer in Stripe — the platform's, and each connected
//! account's (see [`crate::reconcile::connect`]) — compare with the local records, fix
//! what differs, and report what drifted. On an empty database it is the
//! backfill that brings a new install in step. It calls the API at
//! background priority: live events go first.
//!
//! Compared: every column of the local record that is read from Stripe
//! (status, customer, periods, trial, cancellation, latest invoice,
//! metadata, livemode, gone), `pause_collection` (kept in the stored JSON),
//! the items (price, product, quantity) and the entitlements derived from
//! them (products, status) — everything access depends on.
//!
//! Then, per account, the charges created in the last
//! `schedule.sweep_charge_window_days` (default 180; 0: none) days
//! ([`crate::reconcile::ReconcileOptions::charge_window`]; `charges.rs`: status,
//! amount refunded, refunded, disputed) and, where Stripe's Entitlements
//! product is in use, each customer's active features (`features.rs`:
//! the set of lookup keys).
//!
//! The report is bounded: counts (objects, fields, per field) and the first
//! [`DRIFT_SHOWN`] drift entries; the whole list stays with the report
//! ([`SweepReport::all_drift`]) for the admin API to page through. Customer
//! email and name are compared but their values never appear in the report
//! or in logs (logs carry values only at debug level, and never those).

//!
//! Files: this one runs the sweep (accounts, families, pages); `report.rs`
//! is what it reports, `compare.rs` how a listed object is compared with
//! the local record and settled, `charges.rs` and `features.rs` the two
//! later parts.

mod charges;
mod compare;
mod features;
mod report;

use crate::queue::HandlerContext;
use crate::reconcile::catchup::connect;
use crate::reconcile::handling::records::Record;
use crate::reconcile::handling::{record_from_json, with_every_item, Family, ReconcileHandler};
use crate::store::Store;
use crate::stripe::Priority;
use crate::util::Clock;

use compare::{compare, next_stamped_page, settle};
pub(crate) use report::SweepError;
pub(crate) use report::SweepProgress;
pub(crate) use report::SweepReport;
pub use report::DRIFT_SHOWN;

/// Runs the sweep; `progress` is called after every page.
pub(crate) async fn run(
    handler: &ReconcileHandler,
    store: &Store,
    dry_run: bool,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport {
        dry_run,
        ..SweepReport::default()
    };
    // The platform's objects, then each connected account's (those records
    // came from; with a Connect endpoint, every account Stripe lists),
    // listed with its `Stripe-Account`.
    let mut accounts = vec![None];
    match connect::accounts(handler.client(), store, handler.options().connect).await {
        Ok(listed) => accounts.extend(listed.into_iter().map(Some)),
        Err(e) => report.fail("connected accounts", None, &e.to_string()),
    }
    for account in &accounts {
        sweep_account(handler, store, account.as_deref(), &mut report, progress).await;
    }
    for failure in &report.failed {
        tracing::error!(
            part = %failure.part,
            account = failure.account.as_deref().unwrap_or(""),
            error = %failure.error,
            "drift sweep: a part failed; the others ran"
        );
    }
    if report.drifted_objects > 0 {
        tracing::warn!(
            drifted_objects = report.drifted_objects,
            drift_total = report.drift_total,
            fixed = report.fixed,
            dry_run,
            "drift sweep found drift"
        );
    }
    Ok(report)
}

/// Sweeps one account's subscriptions, customers, charges and customer
/// features into `report`: a part that fails is recorded in
/// `report.failed` with its cause, and the next part runs.
async fn sweep_account(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    report: &mut SweepReport,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) {
    // The customers Stripe lists, whose features are compared after.
    let mut customer_ids: Vec<String> = Vec::new();
    for (family, part) in [
        (Family::Subscription, "subscriptions"),
        (Family::Customer, "customers"),
    ] {
        let listed = sweep_family(handler, store, account, family, part, report, progress);
        if let Err(e) = listed.await.map(|ids| customer_ids.extend(ids)) {
            report.fail(part, account, &e.to_string());
        }
    }
    if let Err(e) = charges::sweep(handler, store, account, report, progress).await {
        report.fail("charges", account, &e.to_string());
    }
    let features = features::sweep(handler, store, account, &customer_ids, report, progress);
    if let Err(e) = features.await {
        report.fail("customer features", account, &e.to_string());
    }
}

/// Lists one family of `account` at Stripe (subscriptions, all statuses, or
/// customers), compares and settles each object; returns the customer ids
/// listed (for the features' part).
async fn sweep_family(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    family: Family,
    phase: &'static str,
    report: &mut SweepReport,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<Vec<String>, SweepError> {
    let cx = HandlerContext {
        store: store.clone(),
        clock: Clock::default(),
    };
    let (path, params): (&str, Vec<(&str, &str)>) = match family {
        // The latest invoice expanded, as the re-fetch has it: a past_due
        // grace runs from its finalisation (docs/entitlements.md).
        Family::Subscription => (
            "/v1/subscriptions",
            vec![("status", "all"), ("expand[]", "data.latest_invoice")],
        ),
        _ => ("/v1/customers", Vec::new()),
    };
    let mut customer_ids = Vec::new();
    let mut pages = handler
        .client()
        .pages(path, &params, Priority::Background)
        .account(account);
    while let Some((data, stamp)) = next_stamped_page(&mut pages, &cx).await? {
        for mut object in data {
            if family == Family::Subscription {
                with_every_item(handler.client(), &mut object, account, Priority::Background)
                    .await
                    .map_err(|e| SweepError::Other(e.message))?;
            }
            let record = record_from_json(family, &object, stamp)
                .map_err(|e| SweepError::Other(e.message))?;
            let drift = compare(store, &record).await?;
            match &record {
                Record::Customer(row) => {
                    report.customers_checked += 1;
                    customer_ids.push(row.id.clone());
                }
                _ => report.subscriptions_checked += 1,
            }
            settle(handler, store, account, report, phase, drift, record).await?;
        }
        progress(&SweepProgress {
            phase,
            checked: report.checked(),
            drifted: report.drifted_objects,
        });
    }
    Ok(customer_ids)
}
