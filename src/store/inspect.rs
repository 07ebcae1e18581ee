//! What the inspector (and the demo) read: events newest first, an
//! event's deliveries, the health strip's figures, and everything stored
//! about a customer. Read-only; the routes shape it into JSON.

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::deliveries::DeliverySummary;
use super::events::{self, EventSummary};
use super::schema::{
    charges, checkout_sessions, customers, deliveries, disputes, invoices, payment_intents,
    subscriptions, webhook_events,
};
use super::{outbox, with_conn, DbConnection, StoreError};

/// The live view's filter: like `GET /v1/events`, but paged backwards.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewestFilter {
    pub status: Option<String>,
    /// An exact type, or a prefix (with or without a trailing `*`).
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub object: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only rows with a smaller id (the next page down).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

fn like_prefix(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}%")
}

/// Events newest first (at most 500 a page).
pub(crate) fn newest_events(
    conn: &mut DbConnection,
    f: &NewestFilter,
) -> Result<Vec<EventSummary>, StoreError> {
    let limit = f.limit.unwrap_or(100).clamp(1, 500);
    let rows = with_conn!(conn, c => {
        let mut q = webhook_events::table.into_boxed();
        if let Some(s) = f.status.as_deref().filter(|s| !s.is_empty()) {
            q = q.filter(webhook_events::status.eq(s.to_owned()));
        }
        if let Some(t) = f.event_type.as_deref().filter(|t| !t.is_empty()) {
            let prefix = t.strip_suffix('*').unwrap_or(t);
            q = q.filter(webhook_events::event_type.like(like_prefix(prefix)).escape('\\'));
        }
        if let Some(o) = f.object.as_deref().filter(|o| !o.is_empty()) {
            q = q.filter(webhook_events::object_id.eq(o.to_owned()));
        }
        if let Some(t) = f.since {
            q = q.filter(webhook_events::received_at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(webhook_events::received_at.lt(t));
        }
        if let Some(b) = f.before {
            q = q.filter(webhook_events::id.lt(b));
        }
        q.order(webhook_events::id.desc())
            .limit(limit)
            .select(EventSummary::as_select())
            .load(c)
    })?;
    Ok(rows)
}

/// Where one event was forwarded, oldest delivery first.
pub(crate) fn deliveries_of(
    conn: &mut DbConnection,
    event_id: &str,
) -> Result<Vec<DeliverySummary>, StoreError> {
    Ok(with_conn!(conn, c => deliveries::table
        .filter(deliveries::event_id.eq(event_id))
        .order(deliveries::id.asc())
        .select(DeliverySummary::as_select())
        .load(c))?)
}

/// The health strip's figures.
pub(crate) struct HealthFigures {
    /// Events by status.
    pub counts: Vec<(String, i64)>,
    pub oldest_pending: Option<i64>,
    /// Received → processed of the last 1,000 processed events (ms), sorted.
    pub lags: Vec<i64>,
    /// Unfinished and dead deliveries: (destination, status, count).
    pub backlog: Vec<(String, String, i64)>,
}

pub(crate) fn health_figures(conn: &mut DbConnection) -> Result<HealthFigures, StoreError> {
    let counts = outbox::count_by_status(conn)?;
    let oldest_pending = events::oldest_pending(conn)?;
    let recent: Vec<(i64, Option<i64>)> = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::processed_at.is_not_null())
        .order(webhook_events::id.desc())
        .limit(1000)
        .select((webhook_events::received_at, webhook_events::processed_at))
        .load(c))?;
    let mut lags: Vec<i64> = recent
        .into_iter()
        .filter_map(|(r, p)| p.map(|p| (p - r).max(0)))
        .collect();
    lags.sort_unstable();
    let backlog = with_conn!(conn, c => deliveries::table
        .filter(deliveries::status.eq_any(["pending", "delivering", "dead"]))
        .group_by((deliveries::destination, deliveries::status))
        .select((deliveries::destination, deliveries::status, diesel::dsl::count_star()))
        .load(c))?;
    Ok(HealthFigures {
        counts,
        oldest_pending,
        lags,
        backlog,
    })
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct CustomerSummary {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub deleted: bool,
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct SubscriptionSummary {
    pub id: String,
    pub status: String,
    pub current_period_end: Option<i64>,
    pub past_due_since: Option<i64>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<i64>,
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct InvoiceSummary {
    pub id: String,
    #[serde(rename = "subscription")]
    pub subscription_id: Option<String>,
    pub status: Option<String>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    pub currency: Option<String>,
    pub period_end: Option<i64>,
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct PaymentSummary {
    pub id: String,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub last_payment_error: Option<String>,
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct ChargeSummary {
    pub id: String,
    #[serde(rename = "payment_intent")]
    pub payment_intent_id: Option<String>,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub currency: Option<String>,
    pub refunded: bool,
    pub disputed: bool,
}

#[derive(Debug, Queryable, Serialize)]
pub(crate) struct DisputeSummary {
    pub id: String,
    #[serde(rename = "charge")]
    pub charge_id: Option<String>,
    #[serde(rename = "payment_intent")]
    pub payment_intent_id: Option<String>,
    pub status: Option<String>,
    pub reason: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

/// Everything stored about one customer, each list by id.
pub(crate) struct CustomerRecords {
    pub customer: Option<CustomerSummary>,
    pub subscriptions: Vec<SubscriptionSummary>,
    pub invoices: Vec<InvoiceSummary>,
    pub payments: Vec<PaymentSummary>,
    pub charges: Vec<ChargeSummary>,
    pub disputes: Vec<DisputeSummary>,
}

impl CustomerRecords {
    /// The ids of every object here, the customer's first.
    pub(crate) fn object_ids(&self, customer: &str) -> Vec<String> {
        let mut ids = vec![customer.to_owned()];
        ids.extend(self.subscriptions.iter().map(|s| s.id.clone()));
        ids.extend(self.invoices.iter().map(|i| i.id.clone()));
        ids.extend(self.payments.iter().map(|p| p.id.clone()));
        ids.extend(self.charges.iter().map(|c| c.id.clone()));
        ids.extend(self.disputes.iter().map(|d| d.id.clone()));
        ids
    }
}

/// The customer an object belongs to: `id` itself for a customer (a
/// `cus_…`, or an Accounts v2 customer's `acct_…` that a stored record
/// names as its customer), else the customer of the subscription, invoice,
/// payment or charge of that id.
pub(crate) fn customer_of(conn: &mut DbConnection, id: &str) -> Result<Option<String>, StoreError> {
    if id.starts_with("cus_") {
        return Ok(Some(id.to_owned()));
    }
    Ok(with_conn!(conn, c => {
        let from_sub = subscriptions::table
            .filter(subscriptions::id.eq(id))
            .select(subscriptions::customer_id)
            .first::<Option<String>>(c)
            .optional()?
            .flatten();
        let from_invoice = invoices::table
            .filter(invoices::id.eq(id))
            .select(invoices::customer_id)
            .first::<Option<String>>(c)
            .optional()?
            .flatten();
        let from_payment = payment_intents::table
            .filter(payment_intents::id.eq(id))
            .select(payment_intents::customer_id)
            .first::<Option<String>>(c)
            .optional()?
            .flatten();
        let from_charge = charges::table
            .filter(charges::id.eq(id))
            .select(charges::customer_id)
            .first::<Option<String>>(c)
            .optional()?
            .flatten();
        // An `acct_…` is a customer only where a record names it so (it is
        // also how a Connect account is named).
        let v2_customer = if id.starts_with("acct_") {
            let named = |n: i64| n > 0;
            let as_customer = named(subscriptions::table
                .filter(subscriptions::customer_id.eq(id))
                .count()
                .get_result(c)?)
                || named(invoices::table.filter(invoices::customer_id.eq(id)).count().get_result(c)?)
                || named(payment_intents::table
                    .filter(payment_intents::customer_id.eq(id))
                    .count()
                    .get_result(c)?)
                || named(charges::table.filter(charges::customer_id.eq(id)).count().get_result(c)?);
            as_customer.then(|| id.to_owned())
        } else {
            None
        };
        Ok::<_, diesel::result::Error>(
            from_sub.or(from_invoice).or(from_payment).or(from_charge).or(v2_customer),
        )
    })?)
}

/// Everything stored about customer `cus` (a `cus_…` or an Accounts v2
/// `acct_…`): its disputes are those of its payments and of its charges.
pub(crate) fn customer_records(
    conn: &mut DbConnection,
    cus: &str,
) -> Result<CustomerRecords, StoreError> {
    let (customer, subscriptions, invoices, payments, charges) = with_conn!(conn, c => {
        let customer = customers::table
            .filter(customers::id.eq(cus))
            .select((customers::id, customers::email, customers::name, customers::deleted))
            .first::<CustomerSummary>(c)
            .optional()?;
        let subs: Vec<SubscriptionSummary> = subscriptions::table
            .filter(subscriptions::customer_id.eq(cus))
            .order(subscriptions::id.asc())
            .select((subscriptions::id, subscriptions::status, subscriptions::current_period_end,
                subscriptions::past_due_since, subscriptions::cancel_at_period_end, subscriptions::canceled_at))
            .load(c)?;
        let invs: Vec<InvoiceSummary> = invoices::table
            .filter(invoices::customer_id.eq(cus))
            .order(invoices::id.asc())
            .select((invoices::id, invoices::subscription_id, invoices::status, invoices::amount_due,
                invoices::amount_paid, invoices::currency, invoices::period_end))
            .load(c)?;
        let pays: Vec<PaymentSummary> = payment_intents::table
            .filter(payment_intents::customer_id.eq(cus))
            .order(payment_intents::id.asc())
            .select((payment_intents::id, payment_intents::status, payment_intents::amount,
                payment_intents::currency, payment_intents::last_payment_error))
            .load(c)?;
        let chs: Vec<ChargeSummary> = charges::table
            .filter(charges::customer_id.eq(cus))
            .order(charges::id.asc())
            .select((charges::id, charges::payment_intent_id, charges::status, charges::amount,
                charges::amount_refunded, charges::currency, charges::refunded, charges::disputed))
            .load(c)?;
        Ok::<_, diesel::result::Error>((customer, subs, invs, pays, chs))
    })?;
    let pay_ids: Vec<&str> = payments.iter().map(|p| p.id.as_str()).collect();
    let charge_ids: Vec<&str> = charges.iter().map(|c| c.id.as_str()).collect();
    let disputes: Vec<DisputeSummary> = with_conn!(conn, c => disputes::table
        .filter(disputes::payment_intent_id.eq_any(&pay_ids).or(disputes::charge_id.eq_any(&charge_ids)))
        .order(disputes::id.asc())
        .select((disputes::id, disputes::charge_id, disputes::payment_intent_id, disputes::status,
            disputes::reason, disputes::amount, disputes::currency))
        .load(c))?;
    Ok(CustomerRecords {
        customer,
        subscriptions,
        invoices,
        payments,
        charges,
        disputes,
    })
}

/// The newest `limit` events about any of `object_ids`, newest first.
pub(crate) fn events_about(
    conn: &mut DbConnection,
    object_ids: &[String],
    limit: i64,
) -> Result<Vec<EventSummary>, StoreError> {
    Ok(with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::object_id.eq_any(object_ids))
        .order(webhook_events::id.desc())
        .limit(limit)
        .select(EventSummary::as_select())
        .load(c))?)
}

/// A billing table whose records have a status to show.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordTable {
    Customer,
    Subscription,
    Invoice,
    PaymentIntent,
    Dispute,
    CheckoutSession,
}

/// The `status` of a local record (a customer: `present`/`deleted`; `-`:
/// no status stored); `None` when there is no such record.
pub(crate) fn record_status(
    conn: &mut DbConnection,
    table: RecordTable,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let found: Option<Option<String>> = with_conn!(conn, c => match table {
        RecordTable::Customer => customers::table
            .find(id)
            .select(customers::deleted)
            .first::<bool>(c)
            .optional()
            .map(|d| d.map(|deleted| Some(if deleted { "deleted" } else { "present" }.to_owned()))),
        RecordTable::Subscription => subscriptions::table
            .find(id)
            .select(subscriptions::status)
            .first::<String>(c)
            .optional()
            .map(|s| s.map(Some)),
        RecordTable::Invoice => invoices::table.find(id).select(invoices::status).first(c).optional(),
        RecordTable::PaymentIntent => payment_intents::table
            .find(id)
            .select(payment_intents::status)
            .first(c)
            .optional(),
        RecordTable::Dispute => disputes::table.find(id).select(disputes::status).first(c).optional(),
        RecordTable::CheckoutSession => checkout_sessions::table
            .find(id)
            .select(checkout_sessions::status)
            .first(c)
            .optional(),
    })?;
    Ok(found.map(|s| s.unwrap_or_else(|| "-".to_owned())))
}
