//! The local billing records: one file per table or concern. Every write is
//! guarded by the fetch's place in the order of fetches ([`Stamp::seq`], a
//! number the database hands out when the fetch starts, see
//! [`super::fetch_order`]): a fetch that started earlier never overwrites
//! one that started later, whichever instance made them and whatever their
//! clocks say.
//!
//! `reconcile` decides what to write (Stripe's objects, the access rule);
//! these functions are the SQL that writes and reads it. Postgres-only
//! batch writes sit in the `*_pg.rs` files.
//!
//! - [`rows`]: each table's row, declared once with its upserts;
//! - [`subscriptions`] (+ `subscriptions_pg`): a subscription's grace
//!   start and its items;
//! - [`entitlements`] (+ `entitlements_pg`): the entitlement rows, whose
//!   every write notes the customer for the access announcement;
//! - [`access_snapshots`] (+ `access_snapshots_pg`): each customer's access
//!   as last announced, and the lock a change is announced under;
//! - [`features`]: Stripe's Entitlements product (a customer's features);
//! - [`charges`]: the dispute ↔ charge link, the sweep's read;
//!   [`customers`]: a customer's stored object;
//! - [`gone`]: `resource_missing` marks; [`accounts`]: the Connect account
//!   of each record.

pub(crate) mod access_snapshots;
#[cfg(feature = "postgres")]
mod access_snapshots_pg;
pub(crate) mod accounts;
pub(crate) mod charges;
pub(crate) mod customers;
pub(crate) mod entitlements;
#[cfg(feature = "postgres")]
pub(crate) mod entitlements_pg;
pub(crate) mod features;
pub(crate) mod gone;
pub(crate) mod rows;
pub(crate) mod subscriptions;
#[cfg(feature = "postgres")]
pub(crate) mod subscriptions_pg;

#[cfg(feature = "postgres")]
pub(crate) use rows::GuardedRow;
pub use rows::{
    ChargeRow, CheckoutSessionRow, CustomerRow, DisputeRow, InvoiceRow, ItemRow, PaymentIntentRow,
    Stamp, SubscriptionRow,
};

/// The object families whose records we keep (one table each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    PaymentIntent,
    Subscription,
    Invoice,
    Dispute,
    CheckoutSession,
    Customer,
    Charge,
}

/// Expands `$body` with `$t` bound to the table module of `$family`.
macro_rules! per_family {
    ($family:expr, $t:ident => $body:expr) => {{
        use $crate::store::records::Family;
        use $crate::store::schema;
        match $family {
            Family::Customer => {
                use schema::customers as $t;
                $body
            }
            Family::Subscription => {
                use schema::subscriptions as $t;
                $body
            }
            Family::Invoice => {
                use schema::invoices as $t;
                $body
            }
            Family::PaymentIntent => {
                use schema::payment_intents as $t;
                $body
            }
            Family::CheckoutSession => {
                use schema::checkout_sessions as $t;
                $body
            }
            Family::Dispute => {
                use schema::disputes as $t;
                $body
            }
            Family::Charge => {
                use schema::charges as $t;
                $body
            }
        }
    }};
}
pub(crate) use per_family;

/// Inserts `$rows` (a slice). One row, the usual case (a subscription of
/// one item), is a statement diesel prepares once per connection; several
/// rows are one statement of their own shape, planned on every call.
macro_rules! insert_rows {
    ($c:ident, $table:path, $rows:expr) => {{
        let rows: &[_] = $rows;
        match rows {
            [] => Ok(0),
            [one] => diesel::insert_into($table).values(one).execute($c),
            many => diesel::insert_into($table).values(many).execute($c),
        }
    }};
}
pub(crate) use insert_rows;
