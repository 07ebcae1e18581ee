//! Writing local billing records. Every write is an upsert guarded by
//! `fetched_at` (when the fetch STARTED): a fetch that started earlier never
//! overwrites one that started later. Stripe's `event.created` is not used as
//! the guard: it has one-second resolution, and same-second events would be
//! dropped by a strict comparison.

use diesel::prelude::*;

use super::entitlements;
use super::models::{self, ms};
use crate::store::schema::{
    checkout_sessions, customers, disputes, invoices, payment_intents, subscription_items,
    subscriptions,
};
use crate::store::{with_tx, Tx};

/// Inserts `$row`, or updates the existing row only if its `fetched_at` is
/// not newer than ours. Evaluates to the number of rows written (0: a newer
/// fetch is already stored).
macro_rules! upsert_guarded {
    ($c:ident, $table:ident, $row:expr) => {{
        let row = $row;
        let inserted = diesel::insert_into($table::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute($c)?;
        if inserted == 1 {
            1
        } else {
            diesel::update(
                $table::table
                    .filter($table::id.eq(&row.id))
                    .filter($table::fetched_at.le(row.fetched_at)),
            )
            .set(row)
            .execute($c)?
        }
    }};
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = customers, treat_none_as_null = true)]
pub struct CustomerRow {
    pub id: String,
    pub livemode: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    pub deleted: bool,
    pub metadata: String,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl CustomerRow {
    pub fn new(c: &models::Customer, raw: String, fetched_at: i64, now: i64) -> Self {
        CustomerRow {
            id: c.id.clone(),
            livemode: c.livemode,
            email: c.email.clone(),
            name: c.name.clone(),
            deleted: c.deleted,
            metadata: metadata(&c.metadata),
            raw,
            gone: false,
            fetched_at,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions, treat_none_as_null = true)]
pub struct SubscriptionRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: String,
    pub livemode: bool,
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
    pub latest_invoice_id: Option<String>,
    pub past_due_since: Option<i64>,
    pub metadata: String,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = subscription_items)]
pub struct ItemRow {
    pub id: String,
    pub subscription_id: String,
    pub price_id: Option<String>,
    pub product_id: Option<String>,
    pub quantity: Option<i64>,
    pub current_period_start: Option<i64>,
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = invoices, treat_none_as_null = true)]
pub struct InvoiceRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub livemode: bool,
    pub currency: Option<String>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    pub amount_remaining: Option<i64>,
    pub billing_reason: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl InvoiceRow {
    pub fn new(i: &models::Invoice, raw: String, fetched_at: i64, now: i64) -> Self {
        InvoiceRow {
            id: i.id.clone(),
            customer_id: i.customer_id(),
            subscription_id: i.subscription_id(),
            status: i.status.clone(),
            livemode: i.livemode,
            currency: i.currency.clone(),
            amount_due: i.amount_due,
            amount_paid: i.amount_paid,
            amount_remaining: i.amount_remaining,
            billing_reason: i.billing_reason.clone(),
            hosted_invoice_url: i.hosted_invoice_url.clone(),
            period_start: ms(i.period_start),
            period_end: ms(i.period_end),
            raw,
            gone: false,
            fetched_at,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = payment_intents, treat_none_as_null = true)]
pub struct PaymentIntentRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub status: Option<String>,
    pub livemode: bool,
    pub amount: Option<i64>,
    pub amount_received: Option<i64>,
    pub currency: Option<String>,
    pub latest_charge_id: Option<String>,
    pub last_payment_error: Option<String>,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl PaymentIntentRow {
    pub fn new(p: &models::PaymentIntent, raw: String, fetched_at: i64, now: i64) -> Self {
        PaymentIntentRow {
            id: p.id.clone(),
            customer_id: p.customer_id(),
            status: p.status.clone(),
            livemode: p.livemode,
            amount: p.amount,
            amount_received: p.amount_received,
            currency: p.currency.clone(),
            latest_charge_id: p.latest_charge_id(),
            last_payment_error: p.last_error(),
            raw,
            gone: false,
            fetched_at,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = checkout_sessions, treat_none_as_null = true)]
pub struct CheckoutSessionRow {
    pub id: String,
    pub client_reference_id: Option<String>,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub mode: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub livemode: bool,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl CheckoutSessionRow {
    pub fn new(s: &models::CheckoutSession, raw: String, fetched_at: i64, now: i64) -> Self {
        CheckoutSessionRow {
            id: s.id.clone(),
            client_reference_id: s.client_reference_id.clone(),
            customer_id: s.customer_id(),
            subscription_id: s.subscription_id(),
            payment_intent_id: s.payment_intent_id(),
            mode: s.mode.clone(),
            status: s.status.clone(),
            payment_status: s.payment_status.clone(),
            livemode: s.livemode,
            amount_total: s.amount_total,
            currency: s.currency.clone(),
            raw,
            gone: false,
            fetched_at,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = disputes, treat_none_as_null = true)]
pub struct DisputeRow {
    pub id: String,
    pub charge_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub livemode: bool,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
}

impl DisputeRow {
    pub fn new(d: &models::Dispute, raw: String, fetched_at: i64, now: i64) -> Self {
        DisputeRow {
            id: d.id.clone(),
            charge_id: d.charge_id(),
            payment_intent_id: d.payment_intent_id(),
            status: d.status.clone(),
            reason: d.reason.clone(),
            livemode: d.livemode,
            amount: d.amount,
            currency: d.currency.clone(),
            raw,
            gone: false,
            fetched_at,
            updated_at: now,
        }
    }
}

fn metadata(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .filter(|v| !v.is_null())
        .map_or_else(|| "{}".to_owned(), |v| v.to_string())
}

/// A fetched object, ready to be written.
#[derive(Debug, Clone)]
pub enum Record {
    Customer(CustomerRow),
    Subscription(Box<models::Subscription>, String),
    Invoice(InvoiceRow),
    PaymentIntent(PaymentIntentRow),
    CheckoutSession(CheckoutSessionRow),
    Dispute(DisputeRow),
    /// Stripe answered `resource_missing` for this object: deleted, or not
    /// visible to this key/account.
    Gone(super::Family, String),
}

impl Record {
    /// `kind id` for reports.
    pub fn describe(&self) -> String {
        match self {
            Record::Customer(r) => format!("customer {}", r.id),
            Record::Subscription(s, _) => format!("subscription {} ({})", s.id, s.status),
            Record::Invoice(r) => format!("invoice {}", r.id),
            Record::PaymentIntent(r) => format!("payment_intent {}", r.id),
            Record::CheckoutSession(r) => format!("checkout.session {}", r.id),
            Record::Dispute(r) => format!("dispute {}", r.id),
            Record::Gone(f, id) => format!("{f:?} {id} (gone)"),
        }
    }
}

/// Settings the writes need.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext {
    /// When the fetch started (epoch ms): the overwrite guard.
    pub fetched_at: i64,
    /// Now (epoch ms).
    pub now: i64,
    pub past_due_grace_ms: i64,
}

/// Writes one record; returns whether it changed the stored state (false:
/// a newer fetch was already stored).
pub fn write(tx: &mut Tx<'_>, record: &Record, cx: &WriteContext) -> QueryResult<bool> {
    let (fetched_at, now) = (cx.fetched_at, cx.now);
    let written = with_tx!(tx, c => match record {
        Record::Customer(row) => upsert_guarded!(c, customers, row),
        Record::Invoice(row) => upsert_guarded!(c, invoices, row),
        Record::PaymentIntent(row) => upsert_guarded!(c, payment_intents, row),
        Record::CheckoutSession(row) => upsert_guarded!(c, checkout_sessions, row),
        Record::Dispute(row) => upsert_guarded!(c, disputes, row),
        Record::Subscription(..) | Record::Gone(..) => 0,
    });
    match record {
        Record::Subscription(sub, raw) => write_subscription(tx, sub, raw, cx),
        Record::Gone(family, id) => mark_gone(tx, *family, id, fetched_at, now, cx),
        _ => Ok(written > 0),
    }
}

fn write_subscription(
    tx: &mut Tx<'_>,
    sub: &models::Subscription,
    raw: &str,
    cx: &WriteContext,
) -> QueryResult<bool> {
    let previous: Option<(String, Option<i64>)> = with_tx!(tx, c => subscriptions::table
        .filter(subscriptions::id.eq(&sub.id))
        .select((subscriptions::status, subscriptions::past_due_since))
        .first(c)
        .optional())?;
    let past_due_since = match (sub.status.as_str(), previous) {
        ("past_due", Some((prev, Some(since)))) if prev == "past_due" => Some(since),
        ("past_due", _) => Some(cx.now),
        _ => None,
    };
    let (period_start, period_end) = sub.current_period();
    let row = SubscriptionRow {
        id: sub.id.clone(),
        customer_id: sub.customer_id(),
        status: sub.status.clone(),
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
        fetched_at: cx.fetched_at,
        updated_at: cx.now,
    };
    let written = with_tx!(tx, c => upsert_guarded!(c, subscriptions, &row));
    if written == 0 {
        return Ok(false);
    }
    let items: Vec<ItemRow> = sub
        .items()
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
        .collect();
    with_tx!(tx, c => {
        diesel::delete(subscription_items::table.filter(subscription_items::subscription_id.eq(&sub.id))).execute(c)?;
        diesel::insert_into(subscription_items::table).values(&items).execute(c)
    })?;
    entitlements::recompute(tx, &row, &items, cx.past_due_grace_ms)?;
    Ok(true)
}

/// Records a `resource_missing`: the row is kept (or created) with `gone = true`; a gone
/// subscription grants nothing.
fn mark_gone(
    tx: &mut Tx<'_>,
    family: super::Family,
    id: &str,
    fetched_at: i64,
    now: i64,
    cx: &WriteContext,
) -> QueryResult<bool> {
    use super::Family;
    macro_rules! gone {
        ($c:ident, $table:ident, $insert:expr) => {{
            let updated = diesel::update(
                $table::table
                    .filter($table::id.eq(id))
                    .filter($table::fetched_at.le(fetched_at)),
            )
            .set((
                $table::gone.eq(true),
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
            customers::gone.eq(true), customers::fetched_at.eq(fetched_at), customers::updated_at.eq(now))),
        Family::Subscription => gone!(c, subscriptions, (
            subscriptions::id.eq(id), subscriptions::status.eq("unknown"), subscriptions::livemode.eq(false),
            subscriptions::raw.eq(&gone_raw), subscriptions::gone.eq(true),
            subscriptions::fetched_at.eq(fetched_at), subscriptions::updated_at.eq(now))),
        Family::Invoice => gone!(c, invoices, (
            invoices::id.eq(id), invoices::livemode.eq(false), invoices::raw.eq(&gone_raw),
            invoices::gone.eq(true), invoices::fetched_at.eq(fetched_at), invoices::updated_at.eq(now))),
        Family::PaymentIntent => gone!(c, payment_intents, (
            payment_intents::id.eq(id), payment_intents::livemode.eq(false), payment_intents::raw.eq(&gone_raw),
            payment_intents::gone.eq(true), payment_intents::fetched_at.eq(fetched_at), payment_intents::updated_at.eq(now))),
        Family::CheckoutSession => gone!(c, checkout_sessions, (
            checkout_sessions::id.eq(id), checkout_sessions::livemode.eq(false), checkout_sessions::raw.eq(&gone_raw),
            checkout_sessions::gone.eq(true), checkout_sessions::fetched_at.eq(fetched_at), checkout_sessions::updated_at.eq(now))),
        Family::Dispute => gone!(c, disputes, (
            disputes::id.eq(id), disputes::livemode.eq(false), disputes::raw.eq(&gone_raw),
            disputes::gone.eq(true), disputes::fetched_at.eq(fetched_at), disputes::updated_at.eq(now))),
    });
    if family == Family::Subscription && n > 0 {
        entitlements::revoke(tx, id, cx.now)?;
    }
    Ok(n > 0)
}

impl Record {
    /// The family and Stripe id of the object this record is about.
    pub fn key(&self) -> (super::Family, &str) {
        use super::Family;
        match self {
            Record::Customer(r) => (Family::Customer, &r.id),
            Record::Subscription(s, _) => (Family::Subscription, &s.id),
            Record::Invoice(r) => (Family::Invoice, &r.id),
            Record::PaymentIntent(r) => (Family::PaymentIntent, &r.id),
            Record::CheckoutSession(r) => (Family::CheckoutSession, &r.id),
            Record::Dispute(r) => (Family::Dispute, &r.id),
            Record::Gone(f, id) => (*f, id),
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
        }
    }};
}

/// Records the Connect account a record was fetched from (`None`: the
/// platform), so that later fetches of it send the same `Stripe-Account`.
/// Called after [`write`] changed the row.
pub fn set_account(tx: &mut Tx<'_>, record: &Record, account: Option<&str>) -> QueryResult<()> {
    let (family, id) = record.key();
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
