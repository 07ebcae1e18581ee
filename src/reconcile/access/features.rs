//! Stripe's Entitlements product: the features a customer is entitled to
//! now. On `entitlements.active_entitlement_summary.updated` (whose object
//! has no id: it names the customer) the handler re-fetches the customer's
//! active entitlements — every page of
//! `GET /v1/entitlements/active_entitlements?customer=…`, with the event's
//! `Stripe-Account` — and replaces the customer's rows in
//! `customer_features` in the finishing transaction, guarded by the fetch's
//! place in the order of fetches (`customer_feature_fetches.fetch_seq`), like
//! every other record. Applications ask [`has_feature`] (admin:
//! `GET /v1/customers/{id}/features/{lookup_key}`).
//!
//! This sits beside our own access view (`entitlements`, derived from
//! subscriptions): Stripe's list is what the products' features say, ours is
//! what the subscription's status says. See docs/entitlements.md.

use diesel::QueryResult;

use crate::queue::{HandlerContext, HandlerError};
use crate::reconcile::handling::fetching::{fetch_stamp, handler_error};
use crate::store::records::features::{self as stored, FeatureFetch};
use crate::store::records::Stamp;
use crate::store::Tx;
use crate::stripe::objects::ActiveEntitlement;
use crate::stripe::{Priority, StripeClient};

/// The event that says a customer's active entitlements changed.
pub const SUMMARY_EVENT: &str = "entitlements.active_entitlement_summary.updated";
/// Its object's type.
pub const SUMMARY_OBJECT: &str = "entitlements.active_entitlement_summary";
/// The list of a customer's active entitlements.
pub const PATH: &str = "/v1/entitlements/active_entitlements";

/// The stored features and their reads (declared with their table in
/// [`crate::store::records::features`]).
pub use crate::store::records::features::{fetched_at, for_customer, has_feature, Feature};

/// A customer's active entitlements as one fetch saw them (all pages).
#[derive(Debug, Clone)]
pub struct CustomerFeatures {
    pub customer_id: String,
    pub entitlements: Vec<ActiveEntitlement>,
    pub stamp: Stamp,
}

/// Fetches every page of the customer's active entitlements, stamped before
/// the first page (so a fetch that started later wins). A customer Stripe
/// does not know (`resource_missing`) has none.
pub async fn fetch(
    client: &StripeClient,
    cx: &HandlerContext,
    customer: &str,
    account: Option<&str>,
) -> Result<CustomerFeatures, HandlerError> {
    fetch_at(client, cx, customer, account, Priority::Live).await
}

/// [`fetch`] at a priority (the drift sweep's are background calls).
pub async fn fetch_at(
    client: &StripeClient,
    cx: &HandlerContext,
    customer: &str,
    account: Option<&str>,
    priority: Priority,
) -> Result<CustomerFeatures, HandlerError> {
    let stamp = fetch_stamp(cx).await?;
    let params = [("customer", customer)];
    let mut pages = client.pages(PATH, &params, priority).account(account);
    let mut entitlements = Vec::new();
    loop {
        match pages.next().await {
            Ok(Some(page)) => {
                for object in page {
                    let entitlement: ActiveEntitlement =
                        serde_json::from_value(object).map_err(|e| {
                            HandlerError::retry(format!(
                                "unexpected active entitlement from the Stripe API: {e}"
                            ))
                        })?;
                    entitlements.push(entitlement);
                }
            }
            Ok(None) => break,
            Err(e) if e.is_missing(customer) => {
                tracing::warn!(
                    customer,
                    account = account.unwrap_or(""),
                    "customer not found at Stripe: no active features"
                );
                entitlements.clear();
                break;
            }
            Err(e) => return Err(handler_error(e)),
        }
    }
    Ok(CustomerFeatures {
        customer_id: customer.to_owned(),
        entitlements,
        stamp,
    })
}

/// Replaces the customer's rows ([`stored::replace`]), unless a newer fetch
/// is already stored; returns whether it wrote.
pub fn write(
    tx: &mut Tx<'_>,
    f: &CustomerFeatures,
    account: Option<&str>,
    now: i64,
) -> QueryResult<bool> {
    let mut rows: Vec<Feature> = Vec::new();
    for e in &f.entitlements {
        let Some(feature_id) = e.feature_id() else {
            continue;
        };
        // One row per feature (Stripe lists each once; keep the first).
        if rows.iter().any(|r| r.feature_id == feature_id) {
            continue;
        }
        rows.push(Feature {
            customer_id: f.customer_id.clone(),
            feature_id,
            lookup_key: e.lookup_key.clone().unwrap_or_default(),
            entitlement_id: e.id.clone(),
            livemode: e.livemode,
            account: account.map(str::to_owned),
            updated_at: now,
        });
    }
    let fetch = FeatureFetch {
        customer_id: &f.customer_id,
        account,
        listed: i64::try_from(f.entitlements.len()).unwrap_or(i64::MAX),
        stamp: f.stamp,
        now,
    };
    stored::replace(tx, fetch, &rows)
}
