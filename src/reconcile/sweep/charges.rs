//! The drift sweep's charges: every charge created in the window
//! (`schedule.sweep_charge_window_days`, default 180 days;
//! [`crate::reconcile::ReconcileOptions::charge_window`]; `GET
//! /v1/charges?created[gte]=…`, page by page at background priority, as the
//! account), compared with the local row —
//! `status`, `amount_refunded`, `refunded`, `disputed`, and whether the row
//! exists and is not marked gone — and written when it drifted (unless dry
//! run), guarded by the page's fetch stamp like every other record.
//!
//! Bounded by the window: a charge is refunded or disputed within months
//! of its creation (card networks allow disputes for about 120 days), and
//! listing every charge an account ever made would cost a page per hundred
//! of them at every sweep. An older charge is brought in step by its own
//! events, or by `resync ch_…`. A window of 0 days compares no charges.

use super::compare::{next_stamped_page, s, settle, Differ};
use super::report::{Drift, SweepError, SweepProgress, SweepReport};
use crate::queue::HandlerContext;
use crate::reconcile::handling::records::Record;
use crate::reconcile::handling::{record_from_json, Family, ReconcileHandler};
use crate::store::records::charges::compared;
use crate::store::{Store, StoreError};
use crate::stripe::Priority;
use crate::util::Clock;

const PHASE: &str = "charges";

/// Sweeps `account`'s charges of the window into `report`.
pub(super) async fn sweep(
    handler: &ReconcileHandler,
    store: &Store,
    account: Option<&str>,
    report: &mut SweepReport,
    progress: &(dyn Fn(&SweepProgress) + Send + Sync),
) -> Result<(), SweepError> {
    let Some(window) = handler.options().charge_window else {
        return Ok(());
    };
    let cx = HandlerContext {
        store: store.clone(),
        clock: Clock::default(),
    };
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let since = (cx.clock.now_ms() / 1000)
        .saturating_sub(window_secs)
        .to_string();
    let params = [("created[gte]", since.as_str())];
    let mut pages = handler
        .client()
        .pages("/v1/charges", &params, Priority::Background)
        .account(account);
    while let Some((data, stamp)) = next_stamped_page(&mut pages, &cx).await? {
        for object in &data {
            let record = record_from_json(Family::Charge, object, stamp)
                .map_err(|e| SweepError::Other(e.message))?;
            let drift = compare(store, &record).await?;
            report.charges_checked += 1;
            settle(handler, store, account, report, PHASE, drift, record).await?;
        }
        progress(&SweepProgress {
            phase: PHASE,
            checked: report.checked(),
            drifted: report.drifted_objects,
        });
    }
    Ok(())
}

/// Compares a charge as Stripe lists it with the local row.
async fn compare(store: &Store, record: &Record) -> Result<Vec<Drift>, SweepError> {
    let Record::Charge(row) = record else {
        return Ok(Vec::new());
    };
    let store = store.clone();
    let row = row.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Drift>, SweepError> {
        let mut conn = store.conn()?;
        let local = compared(&mut conn, &row.id).map_err(StoreError::from)?;
        let mut d = Differ::default();
        let id = row.id.as_str();
        match local {
            None => d.push(id, "(record)", None, Some("present".to_owned())),
            Some(l) => {
                d.push(id, "status", l.status, row.status.clone());
                d.push(
                    id,
                    "amount_refunded",
                    s(l.amount_refunded),
                    s(row.amount_refunded),
                );
                d.push(id, "refunded", s(Some(l.refunded)), s(Some(row.refunded)));
                d.push(id, "disputed", s(Some(l.disputed)), s(Some(row.disputed)));
                d.push(id, "gone", s(Some(l.gone)), s(Some(false)));
            }
        }
        Ok(d.drift)
    })
    .await
    .map_err(|e| SweepError::Other(e.to_string()))?
}
