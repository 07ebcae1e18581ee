//! The drift sweep (`reconcile`): page through every subscription (all
//! statuses) and customer in Stripe, compare with the local records, fix what
//! differs, and report what drifted. On an empty database it is the backfill
//! that brings a new install in step. It calls the API at background
//! priority: live events go first.

use diesel::prelude::*;
use serde::Serialize;

use super::models;
use super::records::Record;
use super::{record_from_json, Family, ReconcileHandler};
use crate::store::schema::{customers, subscriptions};
use crate::store::{now_ms, with_conn, Store, StoreError};
use crate::stripe::{Priority, StripeError};

/// One field that differs between the local record and Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub object: String,
    pub field: String,
    pub local: Option<String>,
    pub stripe: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    pub subscriptions_checked: usize,
    pub customers_checked: usize,
    /// Objects written (0 in a dry run).
    pub fixed: usize,
    pub drift: Vec<Drift>,
}

/// Progress as the sweep goes (for bars, logs and the admin API).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepProgress {
    pub phase: &'static str,
    pub checked: usize,
    pub drifted: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Runs the sweep; `progress` is called after every page.
pub async fn run(
    handler: &ReconcileHandler,
    store: &Store,
    dry_run: bool,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport {
        dry_run,
        ..SweepReport::default()
    };
    // The platform's objects, then each Connect account's that records
    // came from (listed with its `Stripe-Account`).
    let mut accounts = vec![None];
    accounts.extend(connected_accounts(store).await?.into_iter().map(Some));
    for account in &accounts {
        sweep_account(handler, store, account.as_deref(), &mut report, progress).await?;
    }
    Ok(report)
}

/// The Connect accounts that stored subscriptions and customers came from.
async fn connected_accounts(store: &Store) -> Result<Vec<String>, SweepError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<String>, SweepError> {
        let mut conn = store.conn()?;
        let conn = &mut *conn;
        let mut accounts: Vec<Option<String>> = with_conn!(conn, c => subscriptions::table
            .filter(subscriptions::account.is_not_null())
            .select(subscriptions::account)
            .distinct()
            .load(c))
        .map_err(StoreError::from)?;
        accounts.extend(
            with_conn!(conn, c => customers::table
                .filter(customers::account.is_not_null())
                .select(customers::account)
                .distinct()
                .load::<Option<String>>(c))
            .map_err(StoreError::from)?,
        );
        let mut accounts: Vec<String> = accounts.into_iter().flatten().collect();
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}

/// Sweeps one account's subscriptions and customers into `report`.
async fn sweep_account(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    report: &mut SweepReport,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<(), SweepError> {
    let dry_run = report.dry_run;
    for (family, path, extra) in [
        (
            Family::Subscription,
            "/v1/subscriptions",
            Some(("status", "all")),
        ),
        (Family::Customer, "/v1/customers", None),
    ] {
        let phase = if family == Family::Subscription {
            "subscriptions"
        } else {
            "customers"
        };
        let params: Vec<(&str, &str)> = extra.into_iter().collect();
        let mut pages = handler
            .client()
            .pages(path, &params, Priority::Background)
            .account(account);
        loop {
            // Taken before the page is fetched: the overwrite guard.
            let fetched_at = now_ms();
            let Some(data) = pages.next().await? else {
                break;
            };
            for object in &data {
                let record = record_from_json(family, object, fetched_at)
                    .map_err(|e| SweepError::Other(e.message))?;
                let drift = compare(store, &record).await?;
                match family {
                    Family::Subscription => report.subscriptions_checked += 1,
                    _ => report.customers_checked += 1,
                }
                metrics::counter!(crate::metrics::SWEEP_OBJECTS, "kind" => phase).increment(1);
                if !drift.is_empty() {
                    for d in &drift {
                        metrics::counter!(crate::metrics::SWEEP_DRIFT, "field" => d.field.clone())
                            .increment(1);
                        tracing::warn!(object = %d.object, field = %d.field, local = ?d.local, stripe = ?d.stripe, dry_run, "drift found");
                    }
                    report.drift.extend(drift);
                    if !dry_run {
                        handler
                            .write(store, vec![record], fetched_at, account.map(str::to_owned))
                            .await
                            .map_err(|e| SweepError::Other(e.to_string()))?;
                        report.fixed += 1;
                    }
                }
            }
            progress(&SweepProgress {
                phase,
                checked: report.subscriptions_checked + report.customers_checked,
                drifted: report.drift.len(),
            });
        }
    }
    Ok(())
}

/// status, customer, cancel_at_period_end, current_period_end, canceled_at, gone
type LocalSubscription = (String, Option<String>, bool, Option<i64>, Option<i64>, bool);

fn s<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// Compares a fetched record with the local row, field by field.
async fn compare(store: &Store, record: &Record) -> Result<Vec<Drift>, SweepError> {
    let store = store.clone();
    let record = record.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Drift>, SweepError> {
        let mut conn = store.conn()?;
        let conn = &mut *conn;
        let mut drift = Vec::new();
        let mut push = |object: &str, field: &str, local: Option<String>, stripe: Option<String>| {
            if local != stripe {
                drift.push(Drift {
                    object: object.to_owned(),
                    field: field.to_owned(),
                    local,
                    stripe,
                });
            }
        };
        match &record {
            Record::Subscription(sub, _) => {
                let local: Option<LocalSubscription> = with_conn!(conn, c => subscriptions::table
                    .filter(subscriptions::id.eq(&sub.id))
                    .select((subscriptions::status, subscriptions::customer_id, subscriptions::cancel_at_period_end,
                             subscriptions::current_period_end, subscriptions::canceled_at, subscriptions::gone))
                    .first(c)
                    .optional())
                .map_err(StoreError::from)?;
                let (_, period_end) = sub.current_period();
                match local {
                    None => push(&sub.id, "(record)", None, Some("present".to_owned())),
                    Some((status, customer, cape, cpe, canceled, gone)) => {
                        push(&sub.id, "status", Some(status), Some(sub.status.clone()));
                        push(&sub.id, "customer", customer, sub.customer_id());
                        push(&sub.id, "cancel_at_period_end", s(Some(cape)), s(Some(sub.cancel_at_period_end)));
                        push(&sub.id, "current_period_end", s(cpe), s(models::ms(period_end)));
                        push(&sub.id, "canceled_at", s(canceled), s(models::ms(sub.canceled_at)));
                        push(&sub.id, "gone", s(Some(gone)), s(Some(false)));
                    }
                }
            }
            Record::Customer(row) => {
                let local: Option<(Option<String>, Option<String>, bool)> = with_conn!(conn, c => customers::table
                    .filter(customers::id.eq(&row.id))
                    .select((customers::email, customers::name, customers::deleted))
                    .first(c)
                    .optional())
                .map_err(StoreError::from)?;
                match local {
                    None => push(&row.id, "(record)", None, Some("present".to_owned())),
                    Some((email, name, deleted)) => {
                        push(&row.id, "email", email, row.email.clone());
                        push(&row.id, "name", name, row.name.clone());
                        push(&row.id, "deleted", s(Some(deleted)), s(Some(row.deleted)));
                    }
                }
            }
            _ => {}
        }
        Ok(drift)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}
