//! The access rule: what a subscription grants, from its facts alone. Pure —
//! no database, no clock — so that the product's core promise is tested case
//! by case; [`crate::reconcile::records`] makes the rows, [`entitlements`]
//! reads them back. Beside it: the access announcements ([`events`]) and
//! Stripe's Entitlements features ([`features`]).
//!
//! | subscription status | grants | `access_until`                          |
//! |---------------------|--------|-----------------------------------------|
//! | `active`, `trialing`| yes    | period end (informational), or the known end if sooner |
//! | `past_due`          | yes    | the grace's start + the grace period (the period end if later after a failed update), or the known end if sooner |
//!
//! The grace starts when Stripe billed the unpaid invoice, or when the
//! subscription was first seen past_due if that is earlier or the invoice
//! is unknown ([`past_due_since`]). A failed change mid-period (the unpaid
//! invoice's `billing_reason` is `subscription_update`) keeps the period
//! already paid for.
//! | anything else       | no     | —                                       |
//!
//! A **known end** (`ends_at`) bounds a granting status: `cancel_at` (Stripe
//! cancels then), and, while `trialing` with no payment method on file,
//! `trial_end` (nothing can pay for what follows). Access ends at it by the
//! clock even if the event that changes the status is late or lost.
//!
//! "Has access now" = grants, before the known end (if any), and
//! (active/trialing, or `access_until` > now). The view `entitlements_now`
//! (migrations) states the same rule in SQL. See docs/entitlements.md.

pub mod entitlements;
pub mod events;
pub mod features;

use crate::stripe::objects::SubscriptionStatus as Status;

/// Statuses whose access holds while the status does.
fn holds_while_status(status: &Status) -> bool {
    matches!(status, Status::Active | Status::Trialing)
}

/// What the rule needs to know about one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts<'a> {
    pub status: &'a Status,
    /// When its grace started (epoch ms), see [`past_due_since`].
    pub past_due_since: Option<i64>,
    /// The subscription's current period end (epoch ms).
    pub current_period_end: Option<i64>,
    /// How long `past_due` keeps access (ms).
    pub grace_ms: i64,
    /// When Stripe will cancel it (`cancel_at`, epoch ms).
    pub cancel_at: Option<i64>,
    /// Its `trial_end` (epoch ms).
    pub trial_end: Option<i64>,
    /// Whether a payment method is on file (the subscription's default, or
    /// its customer's; unknown counts as yes: no access is taken on a guess).
    pub payment_method: bool,
    /// `past_due` because a change mid-period failed to be paid (the
    /// latest invoice's `billing_reason` is `subscription_update`), not a
    /// renewal: the period already paid for is kept.
    pub failed_update: bool,
}

/// What one entitlement row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub grants: bool,
    pub access_until: Option<i64>,
    /// The known end: no access from then on, whatever the status.
    pub ends_at: Option<i64>,
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Facts<'_> {
    /// The known end of a granting status (see the module's doc).
    fn ends_at(&self) -> Option<i64> {
        let unpaid_trial_end = match self.status {
            Status::Trialing if !self.payment_method => self.trial_end,
            _ => None,
        };
        earliest(self.cancel_at, unpaid_trial_end)
    }

    /// The subscription as a whole (the one row of a subscription without
    /// items).
    pub(crate) fn access(&self) -> Access {
        self.bounded(self.current_period_end)
    }

    /// Grants and `access_until` with `period_end` as the period's end,
    /// bounded by the known end.
    fn bounded(&self, period_end: Option<i64>) -> Access {
        let (grants, until) = match self.status {
            s if holds_while_status(s) => (true, period_end),
            Status::PastDue => {
                let grace_end = self
                    .past_due_since
                    .map(|since| since.saturating_add(self.grace_ms));
                let kept = period_end.filter(|_| self.failed_update);
                (true, grace_end.max(kept))
            }
            _ => (false, None),
        };
        if !grants {
            return Access {
                grants,
                access_until: None,
                ends_at: None,
            };
        }
        let ends_at = self.ends_at();
        Access {
            grants,
            access_until: earliest(until, ends_at),
            ends_at,
        }
    }

    /// One item, whose own period end (basil and later) is the informational
    /// `access_until` while the status holds; a `past_due` grace is the
    /// subscription's, whatever the item's period.
    pub(crate) fn item_access(&self, item_period_end: Option<i64>) -> Access {
        self.bounded(item_period_end.or(self.current_period_end))
    }

    /// [`Self::item_access`] of an item with `quantity`: a licensed item of
    /// quantity 0 pays for nothing and grants nothing; a metered item has no
    /// quantity (`None`) and grants like any other.
    pub(crate) fn item_access_of(
        &self,
        item_period_end: Option<i64>,
        quantity: Option<i64>,
    ) -> Access {
        if quantity == Some(0) {
            return Access {
                grants: false,
                access_until: None,
                ends_at: None,
            };
        }
        self.item_access(item_period_end)
    }
}

/// Whether a row gives access at `now` (epoch ms).
pub(crate) fn has_access(
    status: &Status,
    grants: bool,
    access_until: Option<i64>,
    ends_at: Option<i64>,
    now: i64,
) -> bool {
    grants
        && ends_at.is_none_or(|end| end > now)
        && (holds_while_status(status) || access_until.is_some_and(|t| t > now))
}

/// When the grace period starts: when Stripe billed the unpaid invoice
/// (`billed`: its finalisation, else its creation), else the first write
/// that saw the subscription `past_due`; the earlier of the two, never
/// later than `now`; kept while it stays `past_due`, cleared when it
/// leaves. So a subscription found `past_due` late (a back-fill, a daemon
/// down for days) gets no new grace. `previous` is the stored `(status,
/// past_due_since)`, if any.
pub(crate) fn past_due_since(
    status: &Status,
    previous: Option<(&Status, Option<i64>)>,
    billed: Option<i64>,
    now: i64,
) -> Option<i64> {
    let seen = match (status, previous) {
        (Status::PastDue, Some((Status::PastDue, Some(since)))) => since,
        (Status::PastDue, _) => now,
        _ => return None,
    };
    earliest(Some(seen), billed.map(|b| b.min(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// First seen past_due.
    const SINCE: i64 = 1_800_000_000_000;
    /// The period ends a day after the subscription went past_due.
    const PERIOD_END: i64 = SINCE + 24 * HOUR;

    /// Facts of `status` with nothing else known (no known end).
    fn plain(status: &Status) -> Facts<'_> {
        Facts {
            status,
            past_due_since: None,
            current_period_end: None,
            grace_ms: 0,
            cancel_at: None,
            trial_end: None,
            payment_method: true,
            failed_update: false,
        }
    }

    /// The moments each case is checked at, for a grace of `grace_ms`.
    fn moments(grace_ms: i64) -> [(&'static str, i64); 6] {
        let grace_end = SINCE + grace_ms;
        [
            ("before period end", PERIOD_END - 1),
            ("at period end", PERIOD_END),
            ("after period end", PERIOD_END + 1),
            ("before grace end", grace_end - 1),
            ("at grace end", grace_end),
            ("after grace end", grace_end + 1),
        ]
    }

    /// Expected access per status, grace and moment (in [`moments`] order).
    /// With no grace, the grace ends when past_due starts (before the period
    /// end); with 72 h it ends after the period end.
    const T: bool = true;
    const F: bool = false;
    #[rustfmt::skip]
    const TABLE: [(&str, [bool; 6], [bool; 6]); 8] = [
        //                    grace 0:  before/at/after period end, before/at/after grace end
        //                                                          grace 72 h: same moments
        ("incomplete",         [F, F, F, F, F, F], [F, F, F, F, F, F]),
        ("incomplete_expired", [F, F, F, F, F, F], [F, F, F, F, F, F]),
        ("trialing",           [T, T, T, T, T, T], [T, T, T, T, T, T]),
        ("active",             [T, T, T, T, T, T], [T, T, T, T, T, T]),
        ("past_due",           [F, F, F, T, F, F], [T, T, T, T, F, F]),
        ("canceled",           [F, F, F, F, F, F], [F, F, F, F, F, F]),
        ("unpaid",             [F, F, F, F, F, F], [F, F, F, F, F, F]),
        ("paused",             [F, F, F, F, F, F], [F, F, F, F, F, F]),
    ];

    #[test]
    fn every_status_grace_and_moment() {
        assert_eq!(
            TABLE.map(|(s, ..)| Status::from(s)),
            Status::KNOWN,
            "the table covers every Stripe subscription status"
        );
        let mut cases = 0;
        for (name, no_grace, with_grace) in TABLE {
            let status = &Status::from(name);
            for (grace_ms, expected) in [(0, no_grace), (72 * HOUR, with_grace)] {
                let facts = Facts {
                    status,
                    past_due_since: past_due_since(status, None, None, SINCE),
                    current_period_end: Some(PERIOD_END),
                    grace_ms,
                    ..plain(status)
                };
                for ((moment, now), want) in moments(grace_ms).into_iter().zip(expected) {
                    // The subscription's own row, and an item with its own
                    // (later) period end, say the same.
                    for access in [facts.access(), facts.item_access(Some(PERIOD_END + HOUR))] {
                        assert_eq!(
                            has_access(
                                status,
                                access.grants,
                                access.access_until,
                                access.ends_at,
                                now
                            ),
                            want,
                            "{status}, grace {grace_ms} ms, {moment}: {access:?}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 8 * 2 * 6 * 2);
    }

    #[test]
    fn access_until_is_the_period_end_or_the_grace_end() {
        let statuses = Status::KNOWN;
        let facts = |name: &str| Facts {
            status: statuses
                .iter()
                .find(|s| s.as_str() == name)
                .expect("a known status"),
            past_due_since: Some(SINCE),
            current_period_end: Some(PERIOD_END),
            grace_ms: 72 * HOUR,
            cancel_at: None,
            trial_end: None,
            payment_method: true,
            failed_update: false,
        };
        let item_end = Some(PERIOD_END + HOUR);
        assert_eq!(facts("active").access().access_until, Some(PERIOD_END));
        assert_eq!(facts("active").item_access(item_end).access_until, item_end);
        assert_eq!(
            facts("trialing").item_access(None).access_until,
            Some(PERIOD_END)
        );
        assert_eq!(
            facts("past_due").item_access(item_end).access_until,
            Some(SINCE + 72 * HOUR)
        );
        assert!(!facts("canceled").access().grants);
        assert!(!facts("canceled").item_access(item_end).grants);
        // past_due without a known start grants nothing after all.
        let unknown = Facts {
            past_due_since: None,
            ..facts("past_due")
        };
        assert!(!has_access(
            &Status::PastDue,
            true,
            unknown.access().access_until,
            None,
            SINCE
        ));
    }

    #[test]
    fn the_grace_starts_when_past_due_is_first_seen() {
        let later = SINCE + HOUR;
        assert_eq!(
            past_due_since(&Status::PastDue, None, None, later),
            Some(later)
        );
        assert_eq!(
            past_due_since(&Status::PastDue, Some((&Status::Active, None)), None, later),
            Some(later)
        );
        assert_eq!(
            past_due_since(
                &Status::PastDue,
                Some((&Status::PastDue, Some(SINCE))),
                None,
                later
            ),
            Some(SINCE),
            "a second past_due write keeps the start"
        );
        assert_eq!(
            past_due_since(
                &Status::PastDue,
                Some((&Status::PastDue, None)),
                None,
                later
            ),
            Some(later)
        );
        assert_eq!(
            past_due_since(
                &Status::Active,
                Some((&Status::PastDue, Some(SINCE))),
                None,
                later
            ),
            None
        );
    }

    /// A known end, twelve hours into the period (before the period end and
    /// before a 72 h grace ends).
    const END: i64 = SINCE + 12 * HOUR;

    /// The known ends, per status and what is known: `(status, cancel_at,
    /// trial_end, payment method on file, [before, at, after END],
    /// access_until shown)`. `None` for access_until: the case grants
    /// nothing.
    type EndCase = (
        &'static str,
        Option<i64>,
        Option<i64>,
        bool,
        [bool; 3],
        Option<i64>,
    );
    #[rustfmt::skip]
    const ENDS: [EndCase; 14] = [
        // cancel_at bounds every granting status, passed or not
        ("active",   Some(END), None,      true,  [T, F, F], Some(END)),
        ("trialing", Some(END), None,      true,  [T, F, F], Some(END)),
        ("past_due", Some(END), None,      true,  [T, F, F], Some(END)),
        ("canceled", Some(END), None,      true,  [F, F, F], None),
        // a cancel_at after the period end: the period end is shown, access
        // holds while the status does
        ("active",   Some(PERIOD_END + HOUR), None, true, [T, T, T], Some(PERIOD_END)),
        // trial_end without a payment method ends a trial
        ("trialing", None,      Some(END), false, [T, F, F], Some(END)),
        // … not with one on file
        ("trialing", None,      Some(END), true,  [T, T, T], Some(PERIOD_END)),
        // … and not another status (an active subscription's old trial_end)
        ("active",   None,      Some(END), false, [T, T, T], Some(PERIOD_END)),
        ("past_due", None,      Some(END), false, [T, T, T], Some(SINCE + 72 * HOUR)),
        // the earlier of the two
        ("trialing", Some(END), Some(END + HOUR), false, [T, F, F], Some(END)),
        ("trialing", Some(END + HOUR), Some(END), false, [T, F, F], Some(END)),
        // nothing known: as before
        ("active",   None,      None,      false, [T, T, T], Some(PERIOD_END)),
        ("trialing", None,      None,      false, [T, T, T], Some(PERIOD_END)),
        ("unpaid",   Some(END), Some(END), false, [F, F, F], None),
    ];

    #[test]
    fn known_ends_bound_access_while_the_status_holds() {
        for (name, cancel_at, trial_end, payment_method, expected, shown) in ENDS {
            let status = &Status::from(name);
            let facts = Facts {
                status,
                past_due_since: past_due_since(status, None, None, SINCE),
                current_period_end: Some(PERIOD_END),
                grace_ms: 72 * HOUR,
                cancel_at,
                trial_end,
                payment_method,
                failed_update: false,
            };
            let case = format!("{name}, cancel_at {cancel_at:?}, trial_end {trial_end:?}, payment method {payment_method}");
            for access in [facts.access(), facts.item_access(Some(PERIOD_END))] {
                assert_eq!(access.access_until, shown, "{case}: {access:?}");
                for (now, want) in [END - 1, END, END + 1].into_iter().zip(expected) {
                    assert_eq!(
                        has_access(
                            status,
                            access.grants,
                            access.access_until,
                            access.ends_at,
                            now
                        ),
                        want,
                        "{case}, at END{:+}: {access:?}",
                        now - END
                    );
                }
            }
        }
    }

    #[test]
    fn the_grace_starts_when_stripe_billed_the_unpaid_invoice() {
        let (billed, seen) = (SINCE - 30 * 24 * HOUR, SINCE);
        let past_due = &Status::PastDue;
        assert_eq!(
            past_due_since(past_due, None, Some(billed), seen),
            Some(billed),
            "found past_due a month late: the grace ran out long ago"
        );
        assert_eq!(
            past_due_since(
                past_due,
                Some((past_due, Some(seen - HOUR))),
                Some(seen),
                seen
            ),
            Some(seen - HOUR),
            "a start already stored and earlier is kept"
        );
        assert_eq!(
            past_due_since(past_due, None, Some(seen + HOUR), seen),
            Some(seen),
            "never later than now"
        );
        assert_eq!(
            past_due_since(&Status::Active, None, Some(billed), seen),
            None
        );
        // Through the rule: no access at the first write.
        let facts = Facts {
            past_due_since: past_due_since(past_due, None, Some(billed), seen),
            current_period_end: Some(PERIOD_END),
            grace_ms: 72 * HOUR,
            ..plain(past_due)
        };
        let access = facts.access();
        assert!(!has_access(
            past_due,
            access.grants,
            access.access_until,
            access.ends_at,
            seen
        ));
    }

    /// past_due from a failed change mid-period (`subscription_update`)
    /// keeps the period paid for, or the grace if longer; a failed renewal
    /// has the grace alone. `(failed_update, grace hours, [before, at,
    /// after the period end], [before, at, after the grace end])`.
    #[rustfmt::skip]
    const UPDATES: [(bool, i64, [bool; 3], [bool; 3]); 4] = [
        (true,  0,  [T, F, F], [T, T, T]),
        (false, 0,  [F, F, F], [T, F, F]),
        (true,  72, [T, T, T], [T, F, F]),
        (false, 72, [T, T, T], [T, F, F]),
    ];

    #[test]
    fn a_failed_update_keeps_the_period_paid_for() {
        let status = &Status::PastDue;
        for (failed_update, grace_hours, around_period, around_grace) in UPDATES {
            let grace_ms = grace_hours * HOUR;
            let facts = Facts {
                past_due_since: Some(SINCE),
                current_period_end: Some(PERIOD_END),
                grace_ms,
                failed_update,
                ..plain(status)
            };
            let grace_end = SINCE + grace_ms;
            let moments = [PERIOD_END - 1, PERIOD_END, PERIOD_END + 1]
                .into_iter()
                .zip(around_period)
                .chain(
                    [grace_end - 1, grace_end, grace_end + 1]
                        .into_iter()
                        .zip(around_grace),
                );
            for (now, want) in moments {
                for access in [facts.access(), facts.item_access(Some(PERIOD_END))] {
                    assert_eq!(
                        has_access(status, access.grants, access.access_until, access.ends_at, now),
                        want,
                        "failed update {failed_update}, grace {grace_hours} h, at {now}: {access:?}"
                    );
                }
            }
        }
        // A known end still bounds it.
        let bounded = Facts {
            past_due_since: Some(SINCE),
            current_period_end: Some(PERIOD_END),
            failed_update: true,
            cancel_at: Some(END),
            ..plain(status)
        };
        assert_eq!(bounded.access().access_until, Some(END));
    }

    /// past_due found late: first seen (written) at `SINCE`, its unpaid
    /// invoice billed `billed_hours_before` earlier (`None`: no open
    /// invoice known), for a renewal or an update, with a 72 h grace:
    /// access at `[SINCE, PERIOD_END - 1, PERIOD_END, PERIOD_END + 1]`.
    #[rustfmt::skip]
    const FOUND_LATE: [(Option<i64>, bool, [bool; 4]); 6] = [
        // billed a week before it was found: the grace ran out…
        (Some(7 * 24), false, [F, F, F, F]),
        // … but a failed update keeps the period paid for
        (Some(7 * 24), true,  [T, T, F, F]),
        // billed an hour before: most of the grace is left
        (Some(1),      false, [T, T, T, T]),
        (Some(1),      true,  [T, T, T, T]),
        // nothing known of the invoice: the grace runs from the first sight
        (None,         false, [T, T, T, T]),
        (None,         true,  [T, T, T, T]),
    ];

    #[test]
    fn past_due_found_late_gets_no_new_grace() {
        let status = &Status::PastDue;
        for (billed_hours_before, failed_update, expected) in FOUND_LATE {
            let billed = billed_hours_before.map(|h| SINCE - h * HOUR);
            // The first write, and a second one an hour later, agree.
            let first = past_due_since(status, None, billed, SINCE);
            let again = past_due_since(status, Some((status, first)), billed, SINCE + HOUR);
            assert_eq!(first, again, "the start is kept");
            let facts = Facts {
                past_due_since: first,
                current_period_end: Some(PERIOD_END),
                grace_ms: 72 * HOUR,
                // Only an update's failure is told apart; a renewal's
                // `failed_update` is false whatever is known of the invoice.
                failed_update: failed_update && billed.is_some(),
                ..plain(status)
            };
            let moments = [SINCE, PERIOD_END - 1, PERIOD_END, PERIOD_END + 1];
            for (now, want) in moments.into_iter().zip(expected) {
                for access in [facts.access(), facts.item_access(Some(PERIOD_END))] {
                    assert_eq!(
                        has_access(status, access.grants, access.access_until, access.ends_at, now),
                        want,
                        "billed {billed_hours_before:?} h before, update {failed_update}, at {now}: {access:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_licensed_item_of_quantity_zero_grants_nothing() {
        let active = &Status::Active;
        let facts = Facts {
            current_period_end: Some(PERIOD_END),
            ..plain(active)
        };
        for (quantity, grants) in [
            (Some(0), false),
            (Some(1), true),
            (Some(5), true),
            (None, true),
        ] {
            let access = facts.item_access_of(Some(PERIOD_END), quantity);
            assert_eq!(
                has_access(
                    active,
                    access.grants,
                    access.access_until,
                    access.ends_at,
                    SINCE
                ),
                grants,
                "quantity {quantity:?} (None: metered): {access:?}"
            );
        }
    }
}
