//! The per-object sequence of a delivery recorded after the reconcile
//! (`Stripe-Hookd-Sequence`, docs/forwarding.md): the number of the fetch
//! that the event's object's record was last written from, read in the
//! transaction that finishes the event and records its deliveries.

use diesel::QueryResult;

use super::Family;
use crate::store::fetch_order::{self, RecordTable};
use crate::store::Tx;

impl Family {
    /// The table this family's records are written to.
    pub fn record_table(self) -> RecordTable {
        match self {
            Family::Customer => RecordTable::Customers,
            Family::Subscription => RecordTable::Subscriptions,
            Family::Invoice => RecordTable::Invoices,
            Family::PaymentIntent => RecordTable::PaymentIntents,
            Family::CheckoutSession => RecordTable::CheckoutSessions,
            Family::Dispute => RecordTable::Disputes,
            Family::Charge => RecordTable::Charges,
        }
    }
}

/// The sequence of an event of `event_type` about `object_key`, finished
/// in `tx`: the `fetch_seq` of the object's record, when the event's type
/// is one stripe-hookd reconciles (a snapshot type, or its thin `v1.`
/// twin) and the object is the record itself (not, say, a refund whose
/// charge is what is fetched). `None` otherwise, and when no record is
/// stored.
pub fn of_event(tx: &mut Tx<'_>, event_type: &str, object_key: &str) -> QueryResult<Option<i64>> {
    let snapshot_type = event_type.strip_prefix("v1.").unwrap_or(event_type);
    match (Family::of_event(snapshot_type), Family::of_id(object_key)) {
        (Some(by_type), Some(by_id)) if by_type == by_id => {
            fetch_order::of_record(tx, by_id.record_table(), object_key)
        }
        _ => Ok(None),
    }
}
