//! The drift sweep's customer features (Stripe's Entitlements product): for
//! each customer, the set of lookup keys of its active entitlements at
//! Stripe (every page of `GET /v1/entitlements/active_entitlements`, at
//! background priority, as the account) against the local
//! `customer_features` rows; on drift the whole set is replaced (unless
//! dry run), guarded by the fetch's stamp like the event handler's writes.
//!
//! Customers compared: those the sweep listed for the account, and those
//! with local features that Stripe no longer lists (a deleted customer has
//! none). A customer never fetched and with no features at Stripe is in
//! step. Reported per customer as the field `features`: `local` the keys
//! only the local rows have, `stripe` the keys only Stripe lists.
//!
//! Bounded: an account that does not use Entitlements (Stripe lists no
//! feature, `GET /v1/entitlements/features?limit=1`, and no local row is
//! of it) costs that one request; otherwise one request (a page of up to
//! 100 features) per customer, at the client's background rate. A key
//! that may not read entitlements (403) skips this part, said in the
//! report's `skipped`.

use std::collections::BTreeSet;

use super::compare::{settle, Differ};
use super::report::{Drift, SweepError, SweepProgress, SweepReport};
use crate::queue::HandlerContext;
use crate::reconcile::access::features::{self, CustomerFeatures};
use crate::reconcile::handling::records::Record;
use crate::reconcile::handling::ReconcileHandler;
use crate::store::records::features as stored;
use crate::store::Store;
use crate::stripe::{Priority, StripeError};
use crate::util::Clock;

const PHASE: &str = "customer features";

/// How often progress is reported (customers).
const PROGRESS_EVERY: usize = 100;

/// Sweeps the features of `listed` customers (and of local customers with
/// features Stripe did not list) of `account` into `report`.
pub(super) async fn sweep(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    listed: &[String],
    report: &mut SweepReport,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<(), SweepError> {
    let local_customers = customers_with_features(store, account).await?;
    let in_use = match handler
        .client()
        .request(
            "/v1/entitlements/features",
            &[("limit", "1")],
            account,
            Priority::Background,
        )
        .await
    {
        Ok(page) => page.json["data"].as_array().is_some_and(|d| !d.is_empty()),
        Err(e @ StripeError::Forbidden { .. }) => {
            let why = format!(
                "customer features of {}: the API key may not read entitlements ({e})",
                account.unwrap_or("the platform")
            );
            tracing::warn!(account = account.unwrap_or(""), error = %e, "drift sweep skips customer features: the API key may not read entitlements");
            report.skipped.push(why);
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !in_use && local_customers.is_empty() {
        return Ok(());
    }
    let mut customers: Vec<&str> = listed.iter().map(String::as_str).collect();
    let seen: BTreeSet<&str> = customers.iter().copied().collect();
    customers.extend(
        local_customers
            .iter()
            .map(String::as_str)
            .filter(|c| !seen.contains(c)),
    );
    let cx = HandlerContext {
        store: store.clone(),
        clock: Clock::default(),
    };
    for (i, customer) in customers.iter().enumerate() {
        let fetched = features::fetch_at(
            handler.client(),
            &cx,
            customer,
            account,
            Priority::Background,
        )
        .await
        .map_err(|e| SweepError::Other(format!("the features of {customer}: {}", e.message)))?;
        let drift = compare(store, &fetched).await?;
        report.customer_features_checked += 1;
        settle(
            handler,
            store,
            account,
            report,
            "customer_features",
            drift,
            Record::Features(fetched),
        )
        .await?;
        if (i + 1) % PROGRESS_EVERY == 0 || i + 1 == customers.len() {
            progress(&SweepProgress {
                phase: PHASE,
                checked: report.checked(),
                drifted: report.drifted_objects,
            });
        }
    }
    Ok(())
}

/// The customers of `account` with local features (or a local fetch).
async fn customers_with_features(
    store: &Store,
    account: Option<&str>,
) -> Result<Vec<String>, SweepError> {
    let store = store.clone();
    let account = account.map(str::to_owned);
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, SweepError> {
        let mut conn = store.conn()?;
        let ids = stored::customers_fetched(&mut conn, account.as_deref())?;
        Ok(ids)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}

/// The lookup keys only one side has.
async fn compare(store: &Store, fetched: &CustomerFeatures) -> Result<Vec<Drift>, SweepError> {
    let store = store.clone();
    let customer = fetched.customer_id.clone();
    let stripe: BTreeSet<String> = fetched
        .entitlements
        .iter()
        .filter(|e| e.feature_id().is_some())
        .map(|e| e.lookup_key.clone().unwrap_or_default())
        .collect();
    tokio::task::spawn_blocking(move || -> Result<Vec<Drift>, SweepError> {
        let mut conn = store.conn()?;
        let local = stored::lookup_keys(&mut conn, &customer)?;
        let local: BTreeSet<String> = local.into_iter().collect();
        let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
            let keys: Vec<&str> = a.difference(b).map(String::as_str).collect();
            (!keys.is_empty()).then(|| keys.join(","))
        };
        let mut d = Differ::default();
        d.push(
            &customer,
            "features",
            only(&local, &stripe),
            only(&stripe, &local),
        );
        Ok(d.drift)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}
