//! Reconciliation: the handlers that make local billing records match Stripe.
//!
//! For every event group (all waiting events of one object), the handler
//! re-fetches the CURRENT object from the Stripe API at the pinned version —
//! never trusting the payload's snapshot — and upserts it, guarded by the
//! fetch's place in the order of fetches, which the database hands out when
//! the fetch starts (so no instance's clock can reorder them). So duplicates,
//! late or out-of-order deliveries and replays weeks later all converge on
//! what Stripe says now.
//!
//! | events                                  | fetch                          |
//! |-----------------------------------------|--------------------------------|
//! | `payment_intent.*`                      | `/v1/payment_intents/{id}`     |
//! | `customer.subscription.*`               | `/v1/subscriptions/{id}`       |
//! | `invoice.*` (not `invoice.upcoming`)    | `/v1/invoices/{id}`            |
//! | `charge.dispute.*`                      | `/v1/disputes/{id}` (+ its charge) |
//! | `charge.*` (other), `charge.refund.updated`, `refund.*` | `/v1/charges/{id}` (a refund's: its `charge`; thin: `/v1/refunds/{id}` first) |
//! | `checkout.session.*`                    | `/v1/checkout/sessions/{id}` (+ its customer and subscription) |
//! | `customer.created/updated/deleted`      | `/v1/customers/{id}`           |
//! | `entitlements.active_entitlement_summary.updated` | `/v1/entitlements/active_entitlements?customer=` (every page; `access/features.rs`) |
//!
//! Thin events (`v1.…`) take the row of their `related_object.type`; the
//! thin summary, which has none, finds its customer through its snapshot
//! event (`/v2/core/events/{id}`, `/v1/events/{id}`); see [`thin`].
//!
//! Connect: records keep their account and are fetched with it; the sweep
//! and catch-up go through each connected account (`catchup/connect.rs`).
//!
//! Files: `handling/` (the handler: fetch, records, thin events, writes),
//! `access/` (the access rule in `mod.rs`, entitlements, the access
//! announcements, Stripe's Entitlements features), `catchup/` (catch-up,
//! per Connect account in `connect.rs`), `sweep/` (the drift sweep),
//! `schedule.rs` (when catch-up and the sweep run).

pub(crate) mod access;
pub(crate) mod catchup;
pub(crate) mod handling;
pub(crate) mod schedule;
pub(crate) mod sweep;

// The paths the other stages and the tests name.
pub use access::{entitlements, events as access_events, features};
pub use catchup::connect;
pub use handling::{event_types, records, sequence, thin, writes};
pub use handling::{
    fetch_stamp, record_from_json, Family, ReconcileHandler, ReconcileOptions, ResyncError,
};
