//! Writing local billing records, and the entitlement rows derived from a
//! subscription by [`super::access`]'s rule. Every write is an upsert guarded by
//! the fetch's place in the order of fetches ([`Stamp::seq`], a number the
//! database hands out when the fetch starts, see [`crate::store::fetch_order`]): a fetch
//! that started earlier never overwrites one that started later, whichever
//! instance made them and whatever their clocks say. Neither a wall clock
//! (instances' clocks differ, and clocks step) nor Stripe's `event.created`
//! (one-second resolution, and the same object changes within a second) can
//! order fetches.

use diesel::prelude::*;

use super::access::{self, Facts};
use super::entitlements::Entitlement;
use crate::store::access_changes::{self, Cause};
use crate::store::schema::{
    charges, checkout_sessions, customers, disputes, entitlements, invoices, payment_intents,
    subscription_items, subscriptions,
};
use crate::store::{with_tx, Tx};
use crate::stripe::objects::{self, ms, SubscriptionStatus};

use super::rows::metadata;
#[cfg(feature = "postgres")]
use super::rows::GuardedRow;
pub use super::rows::{
    ChargeRow, CheckoutSessionRow, CustomerRow, DisputeRow, InvoiceRow, ItemRow, PaymentIntentRow,
    Stamp, SubscriptionRow,
};

/// Inserts `$row` with the Connect account it was fetched from (`None`:
/// the platform; written with the row, no statement of its own), or
/// updates the existing row only if its `fetch_seq` is not newer than ours.
/// Evaluates to the number of rows written (0: a newer fetch is already
/// stored).
macro_rules! upsert_guarded {
    ($c:ident, $table:ident, $row:expr, $account:expr) => {{
        let row = $row;
        let with_account = (row, $table::account.eq($account));
        let inserted = diesel::insert_into($table::table)
            .values(with_account)
            .on_conflict_do_nothing()
            .execute($c)?;
        if inserted == 1 {
            1
        } else {
            diesel::update(
                $table::table
                    .filter($table::id.eq(&row.id))
                    .filter($table::fetch_seq.le(row.fetch_seq)),
            )
            .set(with_account)
            .execute($c)?
        }
    }};
}

/// Inserts `$rows` (a slice). One row, the usual case (a subscription of
/// one item), is a statement diesel prepares once per connection; several
/// rows are one statement of their own shape, planned on every call.
macro_rules! insert_rows {
    ($c:ident, $table:ident, $rows:expr) => {{
        let rows: &[_] = $rows;
        match rows {
            [] => Ok(0),
            [one] => diesel::insert_into($table::table).values(one).execute($c),
            many => diesel::insert_into($table::table).values(many).execute($c),
        }
    }};
}

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
    Features(super::features::CustomerFeatures),
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
    let written = with_tx!(tx, c => match record {
        Record::Customer(row) => upsert_guarded!(c, customers, row, account),
        Record::Invoice(row) => upsert_guarded!(c, invoices, row, account),
        Record::PaymentIntent(row) => upsert_guarded!(c, payment_intents, row, account),
        Record::CheckoutSession(row) => upsert_guarded!(c, checkout_sessions, row, account),
        Record::Dispute(row) => upsert_guarded!(c, disputes, row, account),
        Record::Charge(row) => upsert_guarded!(c, charges, row, account),
        Record::Subscription { .. } | Record::Gone(..) | Record::Features(..) => 0,
    });
    match record {
        Record::Charge(row) if written > 0 => link_dispute_to_charge(tx, &row.id, None)?,
        Record::Dispute(row) if written > 0 => {
            if let Some(charge) = &row.charge_id {
                link_dispute_to_charge(tx, charge, Some(&row.id))?;
            }
        }
        _ => {}
    }
    match record {
        Record::Subscription { sub, raw, stamp } => write_subscription(tx, sub, raw, *stamp, cx),
        Record::Gone(family, id, stamp) => {
            let marked = mark_gone(tx, *family, id, *stamp, cx)?;
            if marked {
                set_account(tx, *family, id, cx.account.as_deref())?;
            }
            Ok(marked)
        }
        Record::Features(f) => super::features::write(tx, f, cx.account.as_deref(), cx.now),
        _ => Ok(written > 0),
    }
}

/// Sets a charge's `dispute_id`: to `dispute` (a dispute of this charge was
/// just written), or, when `None`, to a stored dispute that names the
/// charge (the charge was just written). So the link holds whichever of the
/// two is fetched first; the charge row keeps it across its own rewrites
/// (its upsert does not touch the column).
fn link_dispute_to_charge(
    tx: &mut Tx<'_>,
    charge_id: &str,
    dispute: Option<&str>,
) -> QueryResult<()> {
    let dispute: Option<String> = match dispute {
        Some(d) => Some(d.to_owned()),
        None => with_tx!(tx, c => disputes::table
            .filter(disputes::charge_id.eq(charge_id))
            .select(disputes::id)
            .order(disputes::id.asc())
            .first::<String>(c)
            .optional())?,
    };
    if let Some(dispute) = dispute {
        with_tx!(tx, c => diesel::update(charges::table.filter(charges::id.eq(charge_id)))
            .set(charges::dispute_id.eq(&dispute))
            .execute(c))?;
    }
    Ok(())
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
    let previous: Option<(String, Option<i64>)> =
        if matches!(sub.status, SubscriptionStatus::PastDue) {
            with_tx!(tx, c => subscriptions::table
            .filter(subscriptions::id.eq(&sub.id))
            .select((subscriptions::status, subscriptions::past_due_since))
            .first(c)
            .optional())?
        } else {
            None
        };
    let row = subscription_row(sub, raw, stamp, previous, cx.now);
    let written = with_tx!(tx, c => upsert_guarded!(c, subscriptions, &row, cx.account.as_deref()));
    if written == 0 {
        return Ok(false);
    }
    let items = item_rows(sub);
    let payment_method = payment_method_on_file(tx, sub)?;
    let entitlements = entitlement_rows(&row, &items, cx, payment_method, failed_update(sub));
    with_tx!(tx, c => {
        diesel::delete(subscription_items::table.filter(subscription_items::subscription_id.eq(&sub.id))).execute(c)?;
        insert_rows!(c, subscription_items, &items)?;
        diesel::delete(entitlements::table.filter(entitlements::subscription_id.eq(&sub.id))).execute(c)?;
        insert_rows!(c, entitlements, &entitlements)
    })?;
    note_access(&row, stamp, cx.now)?;
    Ok(true)
}

/// Notes that the entitlement rows of `row`'s customer were written (see
/// [`crate::store::access_changes`]): every write of entitlement rows
/// ends here, so the transaction announces the change whoever wrote it.
fn note_access(row: &SubscriptionRow, stamp: Stamp, now: i64) -> QueryResult<()> {
    match &row.customer_id {
        Some(customer) => {
            access_changes::note(customer, row.livemode, Cause::Fetch(stamp.seq), now)
        }
        None => Ok(()),
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
    let raw: Option<String> = with_tx!(tx, c => customers::table
        .filter(customers::id.eq(&customer))
        .select(customers::raw)
        .first(c)
        .optional())?;
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
    use crate::store::prepared::{Bind, Cached};
    use std::collections::{HashMap, HashSet};

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
    let mut previous: HashMap<String, (String, Option<i64>)> = if past_due.is_empty() {
        HashMap::new()
    } else {
        // By the primary key: an index scan whatever the statistics.
        subscriptions::table
            .filter(subscriptions::id.eq_any(&past_due))
            .select((
                subscriptions::id,
                subscriptions::status,
                subscriptions::past_due_since,
            ))
            .load::<(String, String, Option<i64>)>(c)?
            .into_iter()
            .map(|(id, status, since)| (id, (status, since)))
            .collect()
    };
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
        }
    }
    let written: Vec<&str> = written.iter().map(String::as_str).collect();
    // Each subscription's rows through the index, one subscription at a
    // time (`LATERAL … OFFSET 0` is not flattened into a join): without
    // statistics (a new database, until autovacuum's first ANALYZE) the
    // planner takes `= ANY` of a dozen ids for a few percent of the table
    // and scans it whole.
    macro_rules! delete_rows_of {
        ($marker:ident, $table:literal) => {{
            struct $marker;
            Cached::<$marker>::new(
                concat!(
                    "DELETE FROM ",
                    $table,
                    " WHERE subscription_id = ANY($1::text[]) ",
                    "AND ctid = ANY(ARRAY(SELECT r.ctid FROM unnest($1::text[]) AS k(id), ",
                    "LATERAL (SELECT ctid FROM ",
                    $table,
                    " WHERE subscription_id = k.id OFFSET 0) AS r))"
                ),
                vec![Bind::TextRefs(&written)],
            )
            .execute(c)
        }};
    }
    delete_rows_of!(DeleteItems, "subscription_items")?;
    insert_rows!(c, subscription_items, &items)?;
    delete_rows_of!(DeleteEntitlements, "entitlements")?;
    insert_rows!(c, entitlements, &entitlements)?;
    for (row, w) in rows.iter().zip(&fetches) {
        if written.contains(&row.id.as_str()) {
            note_access(row, w.stamp, w.cx.now)?;
        }
    }
    Ok(())
}

/// A subscription Stripe no longer shows grants nothing.
fn revoke_entitlements(
    tx: &mut Tx<'_>,
    subscription_id: &str,
    stamp: Stamp,
    now: i64,
) -> QueryResult<()> {
    with_tx!(tx, c => diesel::update(entitlements::table.filter(entitlements::subscription_id.eq(subscription_id)))
        .set((entitlements::grants.eq(false), entitlements::status.eq("gone"), entitlements::access_until.eq(None::<i64>), entitlements::updated_at.eq(now)))
        .execute(c))?;
    let owner: Option<(Option<String>, bool)> = with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::id.eq(subscription_id))
        .select((subscriptions::customer_id, subscriptions::livemode))
        .first(c)
        .optional())?;
    if let Some((Some(customer), livemode)) = owner {
        access_changes::note(&customer, livemode, Cause::Fetch(stamp.seq), now)?;
    }
    Ok(())
}

/// Records a `resource_missing`: the row is kept (or created) with `gone = true`; a gone
/// subscription grants nothing.
fn mark_gone(
    tx: &mut Tx<'_>,
    family: super::Family,
    id: &str,
    stamp: Stamp,
    cx: &WriteContext,
) -> QueryResult<bool> {
    use super::Family;
    let (seq, fetched_at, now) = (stamp.seq, stamp.at, cx.now);
    macro_rules! gone {
        ($c:ident, $table:ident, $insert:expr) => {{
            let updated = diesel::update(
                $table::table
                    .filter($table::id.eq(id))
                    .filter($table::fetch_seq.le(seq)),
            )
            .set((
                $table::gone.eq(true),
                $table::fetch_seq.eq(seq),
                $table::fetched_at.eq(fetched_at),
                $table::updated_at.eq(now),
            ))
            .execute($c)?;
            if updated == 0 {
                diesel::insert_into($table::table)
                    .values($insert)
                    .on_conflict_do_nothing()
                    .execute($c)?
            } else {
                updated
            }
        }};
    }
    let gone_raw = format!(r#"{{"id":"{id}","gone":true}}"#);
    let n = with_tx!(tx, c => match family {
        Family::Customer => gone!(c, customers, (
            customers::id.eq(id), customers::livemode.eq(false), customers::raw.eq(&gone_raw),
            customers::gone.eq(true), customers::fetched_at.eq(fetched_at), customers::updated_at.eq(now), customers::fetch_seq.eq(seq))),
        Family::Subscription => gone!(c, subscriptions, (
            subscriptions::id.eq(id), subscriptions::status.eq("unknown"), subscriptions::livemode.eq(false),
            subscriptions::raw.eq(&gone_raw), subscriptions::gone.eq(true),
            subscriptions::fetched_at.eq(fetched_at), subscriptions::updated_at.eq(now), subscriptions::fetch_seq.eq(seq))),
        Family::Invoice => gone!(c, invoices, (
            invoices::id.eq(id), invoices::livemode.eq(false), invoices::raw.eq(&gone_raw),
            invoices::gone.eq(true), invoices::fetched_at.eq(fetched_at), invoices::updated_at.eq(now), invoices::fetch_seq.eq(seq))),
        Family::PaymentIntent => gone!(c, payment_intents, (
            payment_intents::id.eq(id), payment_intents::livemode.eq(false), payment_intents::raw.eq(&gone_raw),
            payment_intents::gone.eq(true), payment_intents::fetched_at.eq(fetched_at), payment_intents::updated_at.eq(now), payment_intents::fetch_seq.eq(seq))),
        Family::CheckoutSession => gone!(c, checkout_sessions, (
            checkout_sessions::id.eq(id), checkout_sessions::livemode.eq(false), checkout_sessions::raw.eq(&gone_raw),
            checkout_sessions::gone.eq(true), checkout_sessions::fetched_at.eq(fetched_at), checkout_sessions::updated_at.eq(now), checkout_sessions::fetch_seq.eq(seq))),
        Family::Dispute => gone!(c, disputes, (
            disputes::id.eq(id), disputes::livemode.eq(false), disputes::raw.eq(&gone_raw),
            disputes::gone.eq(true), disputes::fetched_at.eq(fetched_at), disputes::updated_at.eq(now), disputes::fetch_seq.eq(seq))),
        Family::Charge => gone!(c, charges, (
            charges::id.eq(id), charges::livemode.eq(false), charges::raw.eq(&gone_raw),
            charges::gone.eq(true), charges::fetched_at.eq(fetched_at), charges::updated_at.eq(now), charges::fetch_seq.eq(seq))),
    });
    if family == Family::Subscription && n > 0 {
        revoke_entitlements(tx, id, stamp, cx.now)?;
    }
    Ok(n > 0)
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

/// Expands `$body` with `$t` bound to the table module of `$family`.
macro_rules! per_family {
    ($family:expr, $t:ident => $body:expr) => {{
        use super::Family;
        match $family {
            Family::Customer => {
                use customers as $t;
                $body
            }
            Family::Subscription => {
                use subscriptions as $t;
                $body
            }
            Family::Invoice => {
                use invoices as $t;
                $body
            }
            Family::PaymentIntent => {
                use payment_intents as $t;
                $body
            }
            Family::CheckoutSession => {
                use checkout_sessions as $t;
                $body
            }
            Family::Dispute => {
                use disputes as $t;
                $body
            }
            Family::Charge => {
                use charges as $t;
                $body
            }
        }
    }};
}

/// Records the Connect account a record marked gone was fetched from
/// (`None`: the platform), so that later fetches of it send the same
/// `Stripe-Account`. The other records carry it in their rows.
fn set_account(
    tx: &mut Tx<'_>,
    family: super::Family,
    id: &str,
    account: Option<&str>,
) -> QueryResult<()> {
    with_tx!(tx, c => per_family!(family, t => diesel::update(t::table.filter(t::id.eq(id)))
        .set(t::account.eq(account))
        .execute(c)))?;
    Ok(())
}

/// The Connect account a stored record was fetched from; `None` for the
/// platform's own objects and for objects not stored.
pub fn account_of(
    conn: &mut crate::store::DbConnection,
    family: super::Family,
    id: &str,
) -> QueryResult<Option<String>> {
    let account: Option<Option<String>> = crate::store::with_conn!(conn, c => per_family!(family, t => t::table
        .filter(t::id.eq(id))
        .select(t::account)
        .first(c)
        .optional()))?;
    Ok(account.flatten())
}
