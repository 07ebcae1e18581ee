//! Comparing a listed object with its local record, field by field, and
//! settling it (reported, and written unless this is a dry run).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::report::{Drift, SweepError, SweepReport, DRIFT_SHOWN, PRIVATE_FIELDS};
use crate::queue::HandlerContext;
use crate::reconcile::handling::records::Record;
use crate::reconcile::handling::{fetch_stamp, ReconcileHandler};
use crate::store::records::Stamp;
use crate::store::records::{customers, entitlements, subscriptions};
use crate::store::{Store, StoreError};
use crate::stripe::{objects, Pager};

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
pub(super) async fn compare(store: &Store, record: &Record) -> Result<Vec<Drift>, SweepError> {
    let store = store.clone();
    let record = record.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Drift>, SweepError> {
        let mut conn = store.conn()?;
        let conn = &mut *conn;
        let mut d = Differ::default();
        match &record {
            Record::Subscription { sub, raw, .. } => compare_subscription(conn, sub, raw, &mut d)?,
            Record::Customer(row) => {
                let local = customers::compared(conn, &row.id).map_err(StoreError::from)?;
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
    let local = subscriptions::compared(conn, id).map_err(StoreError::from)?;
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
    type Item = subscriptions::ComparedItem;
    let local_items = subscriptions::compared_items(conn, id).map_err(StoreError::from)?;
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
    let rows = entitlements::products_of_subscription(conn, id).map_err(StoreError::from)?;
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
