//! What to write for a fetched object: its rows, and the entitlement rows
//! derived from a subscription by [`super::access`]'s rule; the SQL that
//! writes them is [`crate::store::records`]'. Every write is an upsert
//! guarded by the fetch's place in the order of fetches ([`Stamp::seq`], a
//! number the database hands out when the fetch starts, see
//! [`crate::store::fetch_order`]): a fetch that started earlier never
//! overwrites one that started later, whichever instance made them and
//! whatever their clocks say. Neither a wall clock (instances' clocks
//! differ, and clocks step) nor Stripe's `event.created` (one-second
//! resolution, and the same object changes within a second) can order
//! fetches.

use diesel::QueryResult;

use crate::reconcile::access::entitlements::Entitlement;
use crate::reconcile::access::features::{self, CustomerFeatures};
use crate::reconcile::access::{self, Facts};
use crate::store::records::entitlements::Owner;
use crate::store::records::rows::metadata;
#[cfg(feature = "postgres")]
use crate::store::records::GuardedRow;
pub use crate::store::records::{
    ChargeRow, CheckoutSessionRow, CustomerRow, DisputeRow, InvoiceRow, ItemRow, PaymentIntentRow,
    Stamp, SubscriptionRow,
};
use crate::store::{records as store, Tx};
use crate::stripe::objects::{self, ms, SubscriptionStatus};

/// A fetched object, ready to be written.
#[derive(Debug, Clone)]
pub enum Record {
    Customer(CustomerRow),
    /// A subscription is written from Stripe's object (its items and
    /// entitlement rows follow from it), with the JSON it came as.
    Subscription {
        sub: Box<objects::Subscription>,
        raw: String,
        stamp: Stamp,
    },
    Invoice(InvoiceRow),
    PaymentIntent(PaymentIntentRow),
    CheckoutSession(CheckoutSessionRow),
    Dispute(DisputeRow),
    Charge(ChargeRow),
    /// A customer's active entitlements (Stripe's Entitlements product).
    Features(CustomerFeatures),
    /// Stripe answered `resource_missing` for this object: deleted, or not
    /// visible to this key/account.
    Gone(super::Family, String, Stamp),
}

impl Record {
    /// `kind id` for reports.
    pub fn describe(&self) -> String {
        match self {
            Record::Customer(r) => format!("customer {}", r.id),
            Record::Subscription { sub: s, .. } => format!("subscription {} ({})", s.id, s.status),
            Record::Invoice(r) => format!("invoice {}", r.id),
            Record::PaymentIntent(r) => format!("payment_intent {}", r.id),
            Record::CheckoutSession(r) => format!("checkout.session {}", r.id),
            Record::Dispute(r) => format!("dispute {}", r.id),
            Record::Charge(r) => format!("charge {}", r.id),
            Record::Features(f) => {
                format!("features of {} ({})", f.customer_id, f.entitlements.len())
            }
            Record::Gone(f, id, _) => format!("{f:?} {id} (gone)"),
        }
    }
}

/// Settings the writes need.
#[derive(Debug, Clone)]
pub struct WriteContext {
    /// Now (epoch ms).
    pub now: i64,
    pub past_due_grace_ms: i64,
    /// The Connect account the records were fetched from (`None`: the platform).
    pub account: Option<String>,
}

/// Writes one record, with the Connect account it was fetched from
/// (`cx.account`); returns whether it changed the stored state (false: a
/// newer fetch was already stored).
pub fn write(tx: &mut Tx<'_>, record: &Record, cx: &WriteContext) -> QueryResult<bool> {
    let account = cx.account.as_deref();
    let written = match record {
        Record::Customer(row) => row.upsert(tx, account)?,
        Record::Invoice(row) => row.upsert(tx, account)?,
        Record::PaymentIntent(row) => row.upsert(tx, account)?,
        Record::CheckoutSession(row) => row.upsert(tx, account)?,
        Record::Dispute(row) => row.upsert(tx, account)?,
        Record::Charge(row) => row.upsert(tx, account)?,
        Record::Subscription { .. } | Record::Gone(..) | Record::Features(..) => false,
    };
    match record {
        Record::Charge(row) if written => store::charges::link_dispute(tx, &row.id, None)?,
        Record::Dispute(row) if written => {
            if let Some(charge) = &row.charge_id {
                store::charges::link_dispute(tx, charge, Some(&row.id))?;
            }
        }
        _ => {}
    }
    match record {
        Record::Subscription { sub, raw, stamp } => write_subscription(tx, sub, raw, *stamp, cx),
        Record::Gone(family, id, stamp) => {
            let marked = store::gone::mark(tx, *family, id, *stamp, cx.now)?;
            if marked {
                store::accounts::set(tx, *family, id, account)?;
            }
            Ok(marked)
        }
        Record::Features(f) => features::write(tx, f, account, cx.now),
        _ => Ok(written),
    }
}

fn write_subscription(
    tx: &mut Tx<'_>,
    sub: &objects::Subscription,
    raw: &str,
    stamp: Stamp,
    cx: &WriteContext,
) -> QueryResult<bool> {
    // Only a past_due subscription keeps something of the stored row (when
    // its grace began): no read for the others.
    let previous = if matches!(sub.status, SubscriptionStatus::PastDue) {
        store::subscriptions::previous(tx, &sub.id)?
    } else {
        None
    };
    let row = subscription_row(sub, raw, stamp, previous, cx.now);
    if !row.upsert(tx, cx.account.as_deref())? {
        return Ok(false);
    }
    let items = item_rows(sub);
    let payment_method = payment_method_on_file(tx, sub)?;
    let entitlements = entitlement_rows(&row, &items, cx, payment_method, failed_update(sub));
    store::subscriptions::replace_items(tx, &sub.id, &items)?;
    store::entitlements::replace(tx, &sub.id, &entitlements, owner(&row, stamp, cx.now))?;
    Ok(true)
}

/// Whose access the entitlement rows of `row` are: its customer's, noted
/// for the announcement by the write (see
/// [`crate::store::records::entitlements`]).
fn owner(row: &SubscriptionRow, stamp: Stamp, now: i64) -> Owner<'_> {
    Owner {
        customer: row.customer_id.as_deref(),
        livemode: row.livemode,
        fetch_seq: stamp.seq,
        now,
    }
}

/// The row of a fetched subscription; `previous` is the stored row's status
/// and grace start (read only when the subscription is `past_due`: when its
/// grace began is all a write keeps of the stored row).
fn subscription_row(
    sub: &objects::Subscription,
    raw: &str,
    stamp: Stamp,
    previous: Option<(String, Option<i64>)>,
    now: i64,
) -> SubscriptionRow {
    let previous = previous.map(|(status, since)| (SubscriptionStatus::from(status), since));
    let past_due_since = access::past_due_since(
        &sub.status,
        previous.as_ref().map(|(status, since)| (status, *since)),
        sub.failing_invoice().and_then(|i| i.billed_at()),
        now,
    );
    let (period_start, period_end) = sub.current_period();
    SubscriptionRow {
        id: sub.id.clone(),
        customer_id: sub.customer_id(),
        status: sub.status.to_string(),
        livemode: sub.livemode,
        cancel_at_period_end: sub.cancel_at_period_end,
        cancel_at: ms(sub.cancel_at),
        canceled_at: ms(sub.canceled_at),
        ended_at: ms(sub.ended_at),
        trial_start: ms(sub.trial_start),
        trial_end: ms(sub.trial_end),
        current_period_start: ms(period_start),
        current_period_end: ms(period_end),
        latest_invoice_id: sub.latest_invoice_id(),
        past_due_since,
        metadata: metadata(&sub.metadata),
        raw: raw.to_owned(),
        gone: false,
        fetched_at: stamp.at,
        updated_at: now,
        fetch_seq: stamp.seq,
    }
}

fn item_rows(sub: &objects::Subscription) -> Vec<ItemRow> {
    sub.items()
        .iter()
        .map(|i| ItemRow {
            id: i.id.clone(),
            subscription_id: sub.id.clone(),
            price_id: i.price_id(),
            product_id: i.product_id(),
            quantity: i.quantity,
            current_period_start: ms(i.current_period_start.or(sub.current_period_start)),
            current_period_end: ms(i.current_period_end.or(sub.current_period_end)),
        })
        .collect()
}

/// Whether a payment method is on file for `sub` ([`Facts::payment_method`]).
/// Looked up only where it matters: a trialing subscription with a trial end,
/// whose trial Stripe ends without one (`cancel`/`pause`) and that names none
/// of its own; then the stored customer's `invoice_settings.default_payment_method`
/// or `default_source` says. A customer not stored (or not readable) counts
/// as having one: no access is taken on a guess.
fn payment_method_on_file(tx: &mut Tx<'_>, sub: &objects::Subscription) -> QueryResult<bool> {
    let matters = matches!(sub.status, SubscriptionStatus::Trialing)
        && sub.trial_end.is_some()
        && sub.trial_ends_without_payment_method()
        && !sub.has_own_payment_method();
    let Some(customer) = sub.customer_id().filter(|_| matters) else {
        return Ok(true);
    };
    let raw = store::customers::raw(tx, &customer)?;
    Ok(raw.is_none_or(|raw| customer_can_pay(&raw)))
}

/// Whether the subscription is `past_due` for a change mid-period that
/// failed to be paid (its open latest invoice is a `subscription_update`).
fn failed_update(sub: &objects::Subscription) -> bool {
    matches!(sub.status, SubscriptionStatus::PastDue)
        && sub.failing_invoice().is_some_and(|i| i.is_update())
}

/// Whether a stored customer object names a default payment method.
fn customer_can_pay(raw: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(c) => {
            !c["invoice_settings"]["default_payment_method"].is_null()
                || !c["default_source"].is_null()
        }
        Err(_) => true,
    }
}

/// The entitlement rows of one subscription (one per item, or one with an
/// empty item id when it has none) by [`access`]'s rule.
fn entitlement_rows(
    sub: &SubscriptionRow,
    items: &[ItemRow],
    cx: &WriteContext,
    payment_method: bool,
    failed_update: bool,
) -> Vec<Entitlement> {
    let status = SubscriptionStatus::from(sub.status.as_str());
    let facts = Facts {
        status: &status,
        past_due_since: sub.past_due_since,
        current_period_end: sub.current_period_end,
        grace_ms: cx.past_due_grace_ms,
        cancel_at: sub.cancel_at,
        trial_end: sub.trial_end,
        payment_method,
        failed_update,
    };
    let row = |item_id: &str, price_id, product_id, access: access::Access| Entitlement {
        subscription_id: sub.id.clone(),
        item_id: item_id.to_owned(),
        customer_id: sub.customer_id.clone(),
        price_id,
        product_id,
        status: sub.status.clone(),
        grants: access.grants,
        access_until: access.access_until,
        updated_at: sub.updated_at,
        account: cx.account.clone(),
        livemode: Some(sub.livemode),
        ends_at: access.ends_at,
    };
    let mut rows: Vec<Entitlement> = items
        .iter()
        .map(|i| {
            row(
                &i.id,
                i.price_id.clone(),
                i.product_id.clone(),
                facts.item_access_of(i.current_period_end, i.quantity),
            )
        })
        .collect();
    if rows.is_empty() {
        rows.push(row("", None, None, facts.access()));
    }
    rows
}

/// A fetched subscription for [`write_subscriptions`], with the context of
/// the group that fetched it.
pub struct SubscriptionWrite<'a> {
    pub sub: &'a objects::Subscription,
    pub raw: &'a str,
    pub stamp: Stamp,
    pub cx: &'a WriteContext,
}

/// Of several fetches of one object, the latest (`key`: its id and fetch
/// seq), in first-seen order: the others would lose to it under the guard
/// in whatever order they were written, and one statement cannot write a
/// row twice.
#[cfg(feature = "postgres")]
fn latest<T>(items: Vec<T>, key: impl Fn(&T) -> (&str, i64)) -> Vec<T> {
    let mut kept: Vec<T> = Vec::with_capacity(items.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in items {
        let (id, seq) = key(&item);
        match at.get(id) {
            Some(&i) if key(&kept[i]).1 >= seq => {}
            Some(&i) => kept[i] = item,
            None => {
                at.insert(id.to_owned(), kept.len());
                kept.push(item);
            }
        }
    }
    kept
}

/// The latest fetch of each object of `rows` (`(row, account)` pairs,
/// [`latest`]), for a batch upsert.
#[cfg(feature = "postgres")]
fn latest_rows<'a, R: GuardedRow>(
    rows: Vec<(&'a R, Option<&'a str>)>,
) -> Vec<(&'a R, Option<&'a str>)> {
    latest(rows, |(row, _)| (row.id(), row.fetch_seq()))
}

/// Writes the records of several groups (a finish batch's, each with its
/// group's context) as [`write`] would one after the other: customers,
/// invoices, payment intents and Checkout Sessions one statement per
/// table, subscriptions as [`write_subscriptions`] says; charges, disputes
/// (their link), gone marks and features one by one, first. Records of
/// different objects do not depend on each other, and the guard orders
/// those of one whichever is written first.
#[cfg(feature = "postgres")]
pub fn write_many(
    c: &mut diesel::PgConnection,
    records: &[(&Record, &WriteContext)],
) -> QueryResult<()> {
    let mut customers = Vec::new();
    let mut invoices = Vec::new();
    let mut payment_intents = Vec::new();
    let mut sessions = Vec::new();
    let mut subscriptions = Vec::new();
    for (record, cx) in records {
        let account = cx.account.as_deref();
        match record {
            Record::Customer(row) => customers.push((row, account)),
            Record::Invoice(row) => invoices.push((row, account)),
            Record::PaymentIntent(row) => payment_intents.push((row, account)),
            Record::CheckoutSession(row) => sessions.push((row, account)),
            Record::Subscription { sub, raw, stamp } => subscriptions.push(SubscriptionWrite {
                sub,
                raw,
                stamp: *stamp,
                cx,
            }),
            other => {
                write(&mut Tx::Postgres(c), other, cx)?;
            }
        }
    }
    CustomerRow::upsert_batch(c, &latest_rows(customers))?;
    InvoiceRow::upsert_batch(c, &latest_rows(invoices))?;
    PaymentIntentRow::upsert_batch(c, &latest_rows(payment_intents))?;
    CheckoutSessionRow::upsert_batch(c, &latest_rows(sessions))?;
    write_subscriptions(c, &subscriptions)
}

/// Writes the subscriptions of several groups (a finish batch's) as
/// [`write`] would one after the other, in five statements whatever their
/// number (six when one is `past_due`): the guarded upserts, then the items
/// and the entitlement rows of those written, each replaced.
///
/// Of several fetches of one subscription, only the latest is written
/// ([`latest`]). (A `past_due` one then takes its grace start from the
/// stored row, not from an earlier fetch of the same batch: the same
/// moment, to the millisecond.)
#[cfg(feature = "postgres")]
pub fn write_subscriptions(
    c: &mut diesel::PgConnection,
    subs: &[SubscriptionWrite<'_>],
) -> QueryResult<()> {
    use std::collections::HashSet;

    let fetches: Vec<&SubscriptionWrite<'_>> =
        latest(subs.iter().collect(), |w| (w.sub.id.as_str(), w.stamp.seq));
    if fetches.is_empty() {
        return Ok(());
    }
    let past_due: Vec<&str> = fetches
        .iter()
        .filter(|w| matches!(w.sub.status, SubscriptionStatus::PastDue))
        .map(|w| w.sub.id.as_str())
        .collect();
    let mut previous = store::subscriptions_pg::previous_many(c, &past_due)?;
    let rows: Vec<SubscriptionRow> = fetches
        .iter()
        .map(|w| {
            let previous = match w.sub.status {
                SubscriptionStatus::PastDue => previous.remove(&w.sub.id),
                _ => None,
            };
            subscription_row(w.sub, w.raw, w.stamp, previous, w.cx.now)
        })
        .collect();
    let rows_with_account: Vec<(&SubscriptionRow, Option<&str>)> = rows
        .iter()
        .zip(&fetches)
        .map(|(row, w)| (row, w.cx.account.as_deref()))
        .collect();
    let written: HashSet<String> =
        SubscriptionRow::upsert_batch(c, &latest_rows(rows_with_account))?
            .into_iter()
            .collect();
    if written.is_empty() {
        return Ok(());
    }
    let mut items = Vec::new();
    let mut entitlements = Vec::new();
    let mut owners = Vec::new();
    for (row, w) in rows.iter().zip(&fetches) {
        if written.contains(&row.id) {
            let own = item_rows(w.sub);
            let payment_method = payment_method_on_file(&mut Tx::Postgres(c), w.sub)?;
            entitlements.extend(entitlement_rows(
                row,
                &own,
                w.cx,
                payment_method,
                failed_update(w.sub),
            ));
            items.extend(own);
            owners.push(owner(row, w.stamp, w.cx.now));
        }
    }
    let written: Vec<&str> = written.iter().map(String::as_str).collect();
    store::subscriptions_pg::replace_items(c, &written, &items)?;
    store::entitlements_pg::replace_many(c, &written, &entitlements, &owners)
}

impl Record {
    /// The family and Stripe id of the object this record is about.
    pub fn key(&self) -> (super::Family, &str) {
        use super::Family;
        match self {
            Record::Customer(r) => (Family::Customer, &r.id),
            Record::Subscription { sub: s, .. } => (Family::Subscription, &s.id),
            Record::Invoice(r) => (Family::Invoice, &r.id),
            Record::PaymentIntent(r) => (Family::PaymentIntent, &r.id),
            Record::CheckoutSession(r) => (Family::CheckoutSession, &r.id),
            Record::Dispute(r) => (Family::Dispute, &r.id),
            Record::Charge(r) => (Family::Charge, &r.id),
            // Features are the customer's (their account is written with them).
            Record::Features(f) => (Family::Customer, &f.customer_id),
            Record::Gone(f, id, _) => (*f, id),
        }
    }
}

/// The Connect account a stored record was fetched from; `None` for the
/// platform's own objects and for objects not stored.
pub fn account_of(
    conn: &mut crate::store::DbConnection,
    family: super::Family,
    id: &str,
) -> QueryResult<Option<String>> {
    store::accounts::of(conn, family, id)
}
