//! The rows of the local billing tables, built from Stripe's objects (see
//! [`crate::stripe::objects`]) and the [`Stamp`] of the fetch that read them;
//! [`super::records`] writes them.

use diesel::prelude::*;

use crate::store::schema::{
    charges, checkout_sessions, customers, disputes, invoices, payment_intents, subscription_items,
    subscriptions,
};
use crate::stripe::objects::{self, ms};

/// Where a fetch stands: its place in the order of fetches, taken from the
/// database when it started (the overwrite guard), and when it started by
/// this machine's clock (informational: `fetched_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: i64,
    pub at: i64,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = customers, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

impl CustomerRow {
    pub fn new(c: &objects::Customer, raw: String, stamp: Stamp, now: i64) -> Self {
        CustomerRow {
            id: c.id.clone(),
            livemode: c.livemode,
            email: c.email.clone(),
            name: c.name.clone(),
            deleted: c.deleted,
            metadata: metadata(&c.metadata),
            raw,
            gone: false,
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = subscriptions, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = subscription_items, treat_none_as_default_value = false)]
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
#[diesel(table_name = invoices, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

impl InvoiceRow {
    pub fn new(i: &objects::Invoice, raw: String, stamp: Stamp, now: i64) -> Self {
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
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = payment_intents, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

impl PaymentIntentRow {
    pub fn new(p: &objects::PaymentIntent, raw: String, stamp: Stamp, now: i64) -> Self {
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
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = checkout_sessions, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

impl CheckoutSessionRow {
    pub fn new(s: &objects::CheckoutSession, raw: String, stamp: Stamp, now: i64) -> Self {
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
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = disputes, treat_none_as_null = true, treat_none_as_default_value = false)]
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
    pub fetch_seq: i64,
}

impl DisputeRow {
    pub fn new(d: &objects::Dispute, raw: String, stamp: Stamp, now: i64) -> Self {
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
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = charges, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct ChargeRow {
    pub id: String,
    pub customer_id: Option<String>,
    pub payment_intent_id: Option<String>,
    pub status: Option<String>,
    pub livemode: bool,
    pub amount: Option<i64>,
    pub amount_captured: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub currency: Option<String>,
    pub captured: bool,
    pub paid: bool,
    pub refunded: bool,
    pub disputed: bool,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub metadata: String,
    pub raw: String,
    pub gone: bool,
    pub fetched_at: i64,
    pub updated_at: i64,
    pub fetch_seq: i64,
}

impl ChargeRow {
    pub fn new(c: &objects::Charge, raw: String, stamp: Stamp, now: i64) -> Self {
        ChargeRow {
            id: c.id.clone(),
            customer_id: c.customer_id(),
            payment_intent_id: c.payment_intent_id(),
            status: c.status.clone(),
            livemode: c.livemode,
            amount: c.amount,
            amount_captured: c.amount_captured,
            amount_refunded: c.amount_refunded,
            currency: c.currency.clone(),
            captured: c.captured,
            paid: c.paid,
            refunded: c.refunded,
            disputed: c.disputed,
            failure_code: c.failure_code.clone(),
            failure_message: c.failure_message.clone(),
            metadata: metadata(&c.metadata),
            raw,
            gone: false,
            fetched_at: stamp.at,
            updated_at: now,
            fetch_seq: stamp.seq,
        }
    }
}

pub(super) fn metadata(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .filter(|v| !v.is_null())
        .map_or_else(|| "{}".to_owned(), |v| v.to_string())
}
