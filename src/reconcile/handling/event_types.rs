//! The event types the handlers use: what `setup` subscribes an endpoint to
//! and what `check` expects it to receive. Snapshot names; a thin event
//! destination gets the same names with the `v1.` prefix.

/// Every snapshot event type a handler takes (each maps to its family by
/// [`super::Family::of_event`]; a unit test holds them to it).
pub const SUBSCRIBED: &[&str] = &[
    "charge.captured",
    "charge.expired",
    "charge.failed",
    "charge.pending",
    "charge.refund.updated",
    "charge.refunded",
    "charge.succeeded",
    "charge.updated",
    "checkout.session.async_payment_failed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.completed",
    "checkout.session.expired",
    "charge.dispute.closed",
    "charge.dispute.created",
    "charge.dispute.funds_reinstated",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.updated",
    "customer.created",
    "customer.deleted",
    "customer.updated",
    "customer.subscription.created",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "customer.subscription.updated",
    "invoice.created",
    "invoice.deleted",
    "invoice.finalization_failed",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.overdue",
    "invoice.paid",
    "invoice.payment_action_required",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.updated",
    "invoice.voided",
    "invoice.will_be_due",
    "payment_intent.amount_capturable_updated",
    "payment_intent.canceled",
    "payment_intent.created",
    "payment_intent.partially_funded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.succeeded",
];

/// Types taken by the reconcile handler with no family of their own (the
/// summary's object has no id: it names its customer). A thin destination
/// is subscribed to their `v1.` twins too: the thin summary's customer is
/// found through its snapshot event ([`super::thin::customer_of_summary`]).
pub const NOT_A_FAMILY: &[&str] = &[crate::reconcile::access::features::SUMMARY_EVENT];

/// The thin events a destination is subscribed to besides the `v1.` ones:
/// Stripe's notice that an event it could not generate is resolved.
pub const THIN_EXTRA: &[&str] = &[super::thin::GENERATION_FAILURE_RESOLVED];

/// The types an endpoint should be subscribed to: snapshot names, or for
/// a thin destination `v1.` names and [`THIN_EXTRA`]. Sorted.
pub fn wanted(thin: bool) -> Vec<String> {
    let mut types: Vec<String> = if thin {
        SUBSCRIBED
            .iter()
            .chain(NOT_A_FAMILY)
            .map(|t| format!("v1.{t}"))
            .chain(THIN_EXTRA.iter().map(|t| (*t).to_owned()))
            .collect()
    } else {
        SUBSCRIBED
            .iter()
            .chain(NOT_A_FAMILY)
            .map(|t| (*t).to_owned())
            .collect()
    };
    types.sort();
    types
}

#[cfg(test)]
mod tests {
    use super::super::Family;
    use super::*;

    #[test]
    fn every_subscribed_type_has_a_handler() {
        for t in SUBSCRIBED {
            assert!(Family::of_event(t).is_some(), "{t} has no family");
        }
        let thin = wanted(true);
        assert!(thin
            .iter()
            .all(|t| t.starts_with("v1.") || t.starts_with("v2.")));
        assert_eq!(
            thin.len(),
            SUBSCRIBED.len() + NOT_A_FAMILY.len() + THIN_EXTRA.len()
        );
        // The thin summary is taken (through its snapshot event): a
        // destination is subscribed to it, like an endpoint to its twin.
        assert!(thin.contains(&super::super::thin::SUMMARY_THIN.to_owned()));
        assert!(
            wanted(false).contains(&crate::reconcile::access::features::SUMMARY_EVENT.to_owned())
        );
    }
}
