//! The rows of the local billing tables, built from Stripe's objects (see
//! [`crate::stripe::objects`]) and the [`Stamp`] of the fetch that read them.
//! Each table's row is declared once ([`guarded_row!`]): its struct, its
//! single-row upsert and its Postgres batch upsert all come from it.

use diesel::prelude::*;

use crate::store::schema::{
    charges, checkout_sessions, customers, disputes, invoices, payment_intents, subscription_items,
    subscriptions,
};
use crate::store::{with_tx, Tx};
use crate::stripe::objects::{self, ms};

/// A row written under the fetch-order guard: its id and the place of the
/// fetch that read it.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) trait GuardedRow {
    fn id(&self) -> &str;
    fn fetch_seq(&self) -> i64;
}

/// Declares the row of a table upserted by id under the fetch-order guard
/// (`fetch_seq`): the struct, its single-row [`upsert`](CustomerRow::upsert)
/// (the struct through `AsChangeset`), and on Postgres its batch upsert,
/// whose column list comes from the same fields, so the batch path cannot
/// drift from the row.
macro_rules! guarded_row {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:ident {
            pub id: String,
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Insertable, AsChangeset)]
        #[diesel(table_name = $table, treat_none_as_null = true, treat_none_as_default_value = false)]
        pub struct $name {
            pub id: String,
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl GuardedRow for $name {
            fn id(&self) -> &str {
                &self.id
            }
            fn fetch_seq(&self) -> i64 {
                self.fetch_seq
            }
        }

        impl $name {
            /// Inserts the row with the Connect account it was fetched
            /// from (`None`: the platform; written with the row, no
            /// statement of its own), or updates the stored row only if
            /// its `fetch_seq` is not newer than ours. Returns whether it
            /// wrote (false: a newer fetch is already stored).
            pub fn upsert(&self, tx: &mut Tx<'_>, account: Option<&str>) -> QueryResult<bool> {
                let with_account = (self, $table::account.eq(account));
                let written = with_tx!(tx, c => {
                    let inserted = diesel::insert_into($table::table)
                        .values(with_account)
                        .on_conflict_do_nothing()
                        .execute(c)?;
                    if inserted == 1 {
                        1
                    } else {
                        diesel::update(
                            $table::table
                                .filter($table::id.eq(&self.id))
                                .filter($table::fetch_seq.le(self.fetch_seq)),
                        )
                        .set(with_account)
                        .execute(c)?
                    }
                });
                Ok(written > 0)
            }
        }

        #[cfg(feature = "postgres")]
        impl $name {
            /// Upserts `rows` (each with its Connect account) in one
            /// statement: `ON CONFLICT (id) DO UPDATE` every column, `WHERE`
            /// the stored fetch is not newer. Returns the ids written. One
            /// row per id: keep the latest fetch of each first.
            pub fn upsert_batch(
                c: &mut diesel::PgConnection,
                rows: &[(&$name, Option<&str>)],
            ) -> QueryResult<Vec<String>> {
                use diesel::upsert::excluded;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let values: Vec<_> = rows
                    .iter()
                    .map(|(row, account)| (*row, $table::account.eq(*account)))
                    .collect();
                let upsert = diesel::insert_into($table::table)
                    .values(values)
                    .on_conflict($table::id)
                    .do_update()
                    .set((
                        $( $table::$field.eq(excluded($table::$field)), )+
                        $table::account.eq(excluded($table::account)),
                    ));
                diesel::query_dsl::methods::FilterDsl::filter(
                    upsert,
                    $table::fetch_seq.le(excluded($table::fetch_seq)),
                )
                .returning($table::id)
                .get_results::<String>(c)
            }
        }
    };
}

/// Where a fetch stands: its place in the order of fetches, taken from the
/// database when it started (the overwrite guard), and when it started by
/// this machine's clock (informational: `fetched_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: i64,
    pub at: i64,
}

guarded_row! {
    pub struct CustomerRow in customers {
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

guarded_row! {
    pub struct SubscriptionRow in subscriptions {
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

guarded_row! {
    pub struct InvoiceRow in invoices {
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

guarded_row! {
    pub struct PaymentIntentRow in payment_intents {
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

guarded_row! {
    pub struct CheckoutSessionRow in checkout_sessions {
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

guarded_row! {
    pub struct DisputeRow in disputes {
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

guarded_row! {
    pub struct ChargeRow in charges {
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

/// An object's `metadata` as stored: its JSON, `{}` when absent.
pub(crate) fn metadata(v: &Option<serde_json::Value>) -> String {
    v.as_ref()
        .filter(|v| !v.is_null())
        .map_or_else(|| "{}".to_owned(), |v| v.to_string())
}
