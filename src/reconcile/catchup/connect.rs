//! Connect: the connected accounts whose objects we keep, and catch-up per
//! account. Records carry the account they were fetched from (`account`,
//! NULL for the platform) and every later fetch of them sends it as
//! `Stripe-Account` (resync, replay, the sweep). The drift sweep and
//! catch-up go through the platform and then every connected account: those
//! that records came from and, when a Connect endpoint is configured
//! (`[[endpoints]] connect = true`), every account Stripe lists for the
//! platform (`GET /v1/accounts`) — so an account whose events were all
//! missed is still found. An account that fails (a deauthorized account
//! answers 401/403) is reported in the catch-up's `failed_accounts` and the
//! sweep's `failed` parts, and the others go on; its customers' access
//! stays as last written (nothing is revoked on a failed read: the access
//! rule's clock-bound ends still apply).

use std::collections::BTreeSet;

use super::{self as catchup, CatchUpError, CatchUpOptions, CatchUpReport};
use crate::reconcile::handling::ReconcileHandler;
use crate::store::{records, Store, StoreError};
use crate::stripe::{Priority, StripeClient, StripeError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("listing the connected accounts (GET /v1/accounts): {0}")]
    Stripe(#[from] StripeError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// The connected accounts to go through, sorted: those stored records came
/// from, and with `list_from_stripe` every account Stripe lists.
pub async fn accounts(
    client: &StripeClient,
    store: &Store,
    list_from_stripe: bool,
) -> Result<Vec<String>, ConnectError> {
    let mut all: BTreeSet<String> = stored_accounts(store).await?.into_iter().collect();
    if list_from_stripe {
        let mut pages = client.pages("/v1/accounts", &[], Priority::Background);
        while let Some(page) = pages.next().await? {
            all.extend(
                page.iter()
                    .filter_map(|a| a.get("id").and_then(serde_json::Value::as_str))
                    .map(str::to_owned),
            );
        }
    }
    Ok(all.into_iter().collect())
}

/// The accounts stored records came from (every record table).
async fn stored_accounts(store: &Store) -> Result<Vec<String>, ConnectError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, ConnectError> {
        let mut conn = store.conn()?;
        Ok(records::accounts::stored(&mut conn).map_err(StoreError::from)?)
    })
    .await
    .map_err(|e| ConnectError::Other(e.to_string()))?
}

/// Catch-up for the platform and then, with a Connect endpoint configured,
/// every connected account (each listed with its `Stripe-Account`); one
/// report for all.
pub async fn catch_up(
    handler: &ReconcileHandler,
    store: &Store,
    options: &CatchUpOptions,
) -> Result<CatchUpReport, CatchUpError> {
    let client = handler.client();
    let mut report = catchup::run(client, store, options).await?;
    if !handler.options().connect {
        return Ok(report);
    }
    let accounts = accounts(client, store, true)
        .await
        .map_err(|e| CatchUpError::Other(e.to_string()))?;
    // One account that cannot be listed (deauthorized: 401/403, or any
    // other failure) is reported and the next one goes on.
    for account in &accounts {
        match catchup::run_as(client, store, options, Some(account)).await {
            Ok(one) => {
                report.listed += one.listed;
                report.already_stored += one.already_stored;
                report.missing.extend(one.missing);
                report.skipped.extend(one.skipped);
            }
            Err(e) => {
                tracing::error!(account = %account, error = %e, "catch-up: a connected account failed; the others go on");
                report.failed_accounts.push(catchup::AccountFailure {
                    account: account.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(report)
}
