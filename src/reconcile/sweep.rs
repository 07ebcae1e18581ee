//! The drift sweep (`reconcile`): page through every subscription (all
//! statuses) and customer in Stripe — the platform's, and each connected
//! account's (see [`super::connect`]) — compare with the local records, fix
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
//! ([`super::ReconcileOptions::charge_window`]; `sweep_charges.rs`: status,
//! amount refunded, refunded, disputed) and, where Stripe's Entitlements
//! product is in use, each customer's active features (`sweep_features.rs`:
//! the set of lookup keys).
//!
//! The report is bounded: counts (objects, fields, per field) and the first
//! [`DRIFT_SHOWN`] drift entries; the whole list stays with the report
//! ([`SweepReport::all_drift`]) for the admin API to page through. Customer
//! email and name are compared but their values never appear in the report
//! or in logs (logs carry values only at debug level, and never those).

use std::collections::{BTreeMap, BTreeSet};

use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;

use super::records::Record;
use super::rows::Stamp;
use super::{fetch_stamp, record_from_json, with_every_item, Family, ReconcileHandler};
use crate::queue::HandlerContext;
use crate::store::schema::{customers, entitlements, subscription_items, subscriptions};
use crate::store::{with_conn, Store, StoreError};
use crate::stripe::{objects, Pager, Priority, StripeError};
use crate::util::Clock;

/// One field that differs between the local record and Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub object: String,
    pub field: String,
    pub local: Option<String>,
    pub stripe: Option<String>,
}

/// How many drift entries a report shows; the rest are counted (and paged
/// through the admin API: `GET /v1/jobs/{id}/items`).
pub const DRIFT_SHOWN: usize = 100;

/// Fields whose values are personal data: reported as differing, without
/// the values.
const PRIVATE_FIELDS: &[&str] = &["email", "name"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub dry_run: bool,
    pub subscriptions_checked: usize,
    pub customers_checked: usize,
    /// Charges created in the window ([`super::ReconcileOptions::charge_window`]).
    pub charges_checked: usize,
    /// Customers whose active features (Stripe's Entitlements) were compared.
    pub customer_features_checked: usize,
    /// Parts not run, and why (a restricted key that may not read them).
    pub skipped: Vec<String>,
    /// Parts that failed, each with its cause; the other parts still ran
    /// (and repaired what they found).
    pub failed: Vec<SweepFailure>,
    /// Whether a part failed (`failed` is not empty): the report covers
    /// only the parts that ran.
    pub partial: bool,
    /// Objects written (0 in a dry run).
    pub fixed: usize,
    /// Objects with at least one drifted field.
    pub drifted_objects: usize,
    /// Drifted fields, in all.
    pub drift_total: usize,
    /// Drifted fields by field name.
    pub drift_by_field: BTreeMap<String, usize>,
    /// The first [`DRIFT_SHOWN`] entries.
    pub drift: Vec<Drift>,
    /// Whether `drift` leaves entries out (`drift_total` > shown).
    pub drift_truncated: bool,
    /// Every entry, for paging; not serialised with the report.
    #[serde(skip)]
    pub all_drift: Vec<Drift>,
}

impl SweepReport {
    /// Objects checked, of every kind.
    pub fn checked(&self) -> usize {
        self.subscriptions_checked
            + self.customers_checked
            + self.charges_checked
            + self.customer_features_checked
    }

    /// Records that `part` (of `account`) failed.
    fn fail(&mut self, part: &str, account: Option<&str>, error: &str) {
        self.failed.push(SweepFailure {
            part: part.to_owned(),
            account: account.map(str::to_owned),
            error: error.to_owned(),
        });
        self.partial = true;
    }

    fn add(&mut self, drift: Vec<Drift>) {
        self.drifted_objects += 1;
        for d in drift {
            self.drift_total += 1;
            *self.drift_by_field.entry(d.field.clone()).or_default() += 1;
            if self.drift.len() < DRIFT_SHOWN {
                self.drift.push(d.clone());
            } else {
                self.drift_truncated = true;
            }
            self.all_drift.push(d);
        }
    }
}

/// A part of the sweep that failed: the family (and account) it covers,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepFailure {
    /// `subscriptions`, `customers`, `charges`, `customer features` or
    /// `connected accounts`.
    pub part: String,
    /// The Connect account it was run for (`None`: the platform).
    pub account: Option<String>,
    pub error: String,
}

impl std::fmt::Display for SweepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{} of {account}: {}", self.part, self.error),
            None => write!(f, "{}: {}", self.part, self.error),
        }
    }
}

/// Progress as the sweep goes (for bars, logs and the admin API).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepProgress {
    pub phase: &'static str,
    pub checked: usize,
    pub drifted: usize,
}

/// Why a part of the sweep failed. The cause is in the message, not also
/// a `source` (a report printed with its chain named it twice).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("Stripe API: {0}")]
    Stripe(StripeError),
    #[error("database: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<StripeError> for SweepError {
    fn from(e: StripeError) -> Self {
        SweepError::Stripe(e)
    }
}

impl From<StoreError> for SweepError {
    fn from(e: StoreError) -> Self {
        SweepError::Store(e)
    }
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
    // The platform's objects, then each connected account's (those records
    // came from; with a Connect endpoint, every account Stripe lists),
    // listed with its `Stripe-Account`.
    let mut accounts = vec![None];
    match super::connect::accounts(handler.client(), store, handler.options().connect).await {
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
    if let Err(e) = super::sweep_charges::sweep(handler, store, account, report, progress).await {
        report.fail("charges", account, &e.to_string());
    }
    let features =
        super::sweep_features::sweep(handler, store, account, &customer_ids, report, progress);
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

/// One checked object of `kind`: counted; its drift (if any) logged and
/// reported, and — unless this is a dry run — `record` (fetched from
/// `account`, stamped before its fetch) written, guarded by that stamp.
pub(super) async fn settle(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    report: &mut SweepReport,
    kind: &'static str,
    drift: Vec<Drift>,
    record: Record,
) -> Result<(), SweepError> {
    let dry_run = report.dry_run;
    metrics::counter!(crate::metrics::SWEEP_OBJECTS, "kind" => kind).increment(1);
    if drift.is_empty() {
        return Ok(());
    }
    for d in &drift {
        metrics::counter!(crate::metrics::SWEEP_DRIFT, "field" => d.field.clone()).increment(1);
        tracing::debug!(object = %d.object, field = %d.field, local = ?d.local, stripe = ?d.stripe, dry_run, "drift found");
    }
    if report.drifted_objects < DRIFT_SHOWN {
        let fields: Vec<&str> = drift.iter().map(|d| d.field.as_str()).collect();
        tracing::warn!(object = %drift[0].object, account = account.unwrap_or(""), fields = %fields.join(","), dry_run, "drift found");
    }
    report.add(drift);
    if !dry_run {
        handler
            .write(store, vec![record], account.map(str::to_owned))
            .await
            .map_err(|e| SweepError::Other(e.to_string()))?;
        report.fixed += 1;
    }
    Ok(())
}

/// The columns of a local subscription the sweep compares.
#[derive(Queryable, Selectable)]
#[diesel(table_name = subscriptions)]
struct LocalSubscription {
    customer_id: Option<String>,
    status: String,
    livemode: bool,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    trial_start: Option<i64>,
    trial_end: Option<i64>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    latest_invoice_id: Option<String>,
    metadata: String,
    raw: String,
    gone: bool,
}

/// The columns of a local customer the sweep compares.
#[derive(Queryable, Selectable)]
#[diesel(table_name = customers)]
struct LocalCustomer {
    livemode: bool,
    email: Option<String>,
    name: Option<String>,
    deleted: bool,
    metadata: String,
    gone: bool,
}

pub(super) fn s<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

/// A JSON value as compared: absent and null are the same.
fn json_field(v: Option<&Value>) -> Option<String> {
    v.filter(|v| !v.is_null()).map(Value::to_string)
}

/// Metadata as compared: null and `{}` are the same.
fn metadata(v: Option<&Value>) -> Option<String> {
    v.filter(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()))
        .map(Value::to_string)
}

fn raw_field(raw: &str, field: &str) -> Option<String> {
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| json_field(v.get(field)))
}

/// Collects the fields that differ.
#[derive(Default)]
pub(super) struct Differ {
    pub(super) drift: Vec<Drift>,
}

impl Differ {
    pub(super) fn push(
        &mut self,
        object: &str,
        field: &str,
        local: Option<String>,
        stripe: Option<String>,
    ) {
        if local == stripe {
            return;
        }
        let (local, stripe) = if PRIVATE_FIELDS.contains(&field) {
            let hide = |v: Option<String>| v.map(|_| "(private)".to_owned());
            (hide(local), hide(stripe))
        } else {
            (local, stripe)
        };
        self.drift.push(Drift {
            object: object.to_owned(),
            field: field.to_owned(),
            local,
            stripe,
        });
    }
}

/// Compares a fetched record with the local rows, field by field.
async fn compare(store: &Store, record: &Record) -> Result<Vec<Drift>, SweepError> {
    let store = store.clone();
    let record = record.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Drift>, SweepError> {
        let mut conn = store.conn()?;
        let conn = &mut *conn;
        let mut d = Differ::default();
        match &record {
            Record::Subscription { sub, raw, .. } => compare_subscription(conn, sub, raw, &mut d)?,
            Record::Customer(row) => {
                let local: Option<LocalCustomer> = with_conn!(conn, c => customers::table
                    .filter(customers::id.eq(&row.id))
                    .select(LocalCustomer::as_select())
                    .first(c)
                    .optional())
                .map_err(StoreError::from)?;
                let id = row.id.as_str();
                match local {
                    None => d.push(id, "(record)", None, Some("present".to_owned())),
                    Some(l) => {
                        let stripe_metadata: Option<Value> =
                            serde_json::from_str(&row.metadata).ok();
                        let local_metadata: Option<Value> = serde_json::from_str(&l.metadata).ok();
                        d.push(id, "email", l.email, row.email.clone());
                        d.push(id, "name", l.name, row.name.clone());
                        d.push(id, "deleted", s(Some(l.deleted)), s(Some(row.deleted)));
                        d.push(id, "livemode", s(Some(l.livemode)), s(Some(row.livemode)));
                        d.push(
                            id,
                            "metadata",
                            metadata(local_metadata.as_ref()),
                            metadata(stripe_metadata.as_ref()),
                        );
                        d.push(id, "gone", s(Some(l.gone)), s(Some(false)));
                    }
                }
            }
            _ => {}
        }
        Ok(d.drift)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}

fn compare_subscription(
    conn: &mut crate::store::DbConnection,
    sub: &objects::Subscription,
    raw: &str,
    d: &mut Differ,
) -> Result<(), SweepError> {
    let id = sub.id.as_str();
    let local: Option<LocalSubscription> = with_conn!(conn, c => subscriptions::table
        .filter(subscriptions::id.eq(id))
        .select(LocalSubscription::as_select())
        .first(c)
        .optional())
    .map_err(StoreError::from)?;
    let Some(l) = local else {
        d.push(id, "(record)", None, Some("present".to_owned()));
        return Ok(());
    };
    let ms = objects::ms;
    let (period_start, period_end) = sub.current_period();
    let local_metadata: Option<Value> = serde_json::from_str(&l.metadata).ok();
    d.push(id, "status", Some(l.status), Some(sub.status.to_string()));
    d.push(id, "customer", l.customer_id, sub.customer_id());
    d.push(id, "livemode", s(Some(l.livemode)), s(Some(sub.livemode)));
    d.push(
        id,
        "cancel_at_period_end",
        s(Some(l.cancel_at_period_end)),
        s(Some(sub.cancel_at_period_end)),
    );
    d.push(id, "cancel_at", s(l.cancel_at), s(ms(sub.cancel_at)));
    d.push(id, "canceled_at", s(l.canceled_at), s(ms(sub.canceled_at)));
    d.push(id, "ended_at", s(l.ended_at), s(ms(sub.ended_at)));
    d.push(id, "trial_start", s(l.trial_start), s(ms(sub.trial_start)));
    d.push(id, "trial_end", s(l.trial_end), s(ms(sub.trial_end)));
    d.push(
        id,
        "current_period_start",
        s(l.current_period_start),
        s(ms(period_start)),
    );
    d.push(
        id,
        "current_period_end",
        s(l.current_period_end),
        s(ms(period_end)),
    );
    d.push(
        id,
        "latest_invoice",
        l.latest_invoice_id,
        sub.latest_invoice_id(),
    );
    d.push(
        id,
        "metadata",
        metadata(local_metadata.as_ref()),
        metadata(sub.metadata.as_ref()),
    );
    d.push(
        id,
        "pause_collection",
        raw_field(&l.raw, "pause_collection"),
        raw_field(raw, "pause_collection"),
    );
    d.push(id, "gone", s(Some(l.gone)), s(Some(false)));

    // Items: what was bought (price, product) and how many.
    type Item = (String, Option<String>, Option<String>, Option<i64>);
    let local_items: Vec<Item> = with_conn!(conn, c => subscription_items::table
        .filter(subscription_items::subscription_id.eq(id))
        .select((subscription_items::id, subscription_items::price_id, subscription_items::product_id, subscription_items::quantity))
        .order(subscription_items::id.asc())
        .load(c))
    .map_err(StoreError::from)?;
    let local_items: BTreeMap<String, Item> =
        local_items.into_iter().map(|i| (i.0.clone(), i)).collect();
    let stripe_items: BTreeMap<String, Item> = sub
        .items()
        .iter()
        .map(|i| {
            (
                i.id.clone(),
                (i.id.clone(), i.price_id(), i.product_id(), i.quantity),
            )
        })
        .collect();
    let item_ids: BTreeSet<&String> = local_items.keys().chain(stripe_items.keys()).collect();
    for item in item_ids {
        let (local, stripe) = (local_items.get(item), stripe_items.get(item));
        if local.is_none() || stripe.is_none() {
            d.push(
                id,
                "item",
                local.map(|_| item.clone()),
                stripe.map(|_| item.clone()),
            );
            continue;
        }
        let tagged = |v: Option<String>| v.map(|v| format!("{item}: {v}"));
        d.push(
            id,
            "item.price",
            tagged(local.and_then(|i| i.1.clone())),
            tagged(stripe.and_then(|i| i.1.clone())),
        );
        d.push(
            id,
            "item.product",
            tagged(local.and_then(|i| i.2.clone())),
            tagged(stripe.and_then(|i| i.2.clone())),
        );
        d.push(
            id,
            "item.quantity",
            tagged(s(local.and_then(|i| i.3))),
            tagged(s(stripe.and_then(|i| i.3))),
        );
    }

    // Entitlements: the products access is granted to, and the status.
    let rows: Vec<(Option<String>, String)> = with_conn!(conn, c => entitlements::table
        .filter(entitlements::subscription_id.eq(id))
        .select((entitlements::product_id, entitlements::status))
        .load(c))
    .map_err(StoreError::from)?;
    let join = |set: BTreeSet<String>| {
        (!set.is_empty()).then(|| set.into_iter().collect::<Vec<_>>().join(","))
    };
    let local_products = join(rows.iter().filter_map(|r| r.0.clone()).collect());
    let stripe_products = join(sub.items().iter().filter_map(|i| i.product_id()).collect());
    d.push(id, "entitlement.products", local_products, stripe_products);
    let local_status = join(rows.into_iter().map(|r| r.1).collect());
    d.push(
        id,
        "entitlement.status",
        local_status,
        Some(sub.status.to_string()),
    );
    Ok(())
}
/// The next page of a listing with its fetch stamp, taken before the page
/// was fetched (the overwrite guard); `None` after the last page.
pub(super) async fn next_stamped_page(
    pages: &mut Pager<'_>,
    cx: &HandlerContext,
) -> Result<Option<(Vec<Value>, Stamp)>, SweepError> {
    let stamp = fetch_stamp(cx)
        .await
        .map_err(|e| SweepError::Other(e.message))?;
    Ok(pages.next().await?.map(|data| (data, stamp)))
}
