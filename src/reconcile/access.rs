//! The access rule: what a subscription grants, from its facts alone. Pure —
//! no database, no clock — so that the product's core promise is tested case
//! by case; [`super::records`] writes the result, [`super::entitlements`]
//! reads it back.
//!
//! | subscription status | grants | `access_until`                          |
//! |---------------------|--------|-----------------------------------------|
//! | `active`, `trialing`| yes    | period end (informational)              |
//! | `past_due`          | yes    | first seen past_due + the grace period  |
//! | anything else       | no     | —                                       |
//!
//! "Has access now" = grants and (active/trialing, or `access_until` > now).
//! The view `entitlements_now` (migrations) states the same rule in SQL.
//! See docs/entitlements.md.

use crate::stripe::objects::SubscriptionStatus as Status;

/// Statuses whose access holds while the status does.
fn holds_while_status(status: &Status) -> bool {
    matches!(status, Status::Active | Status::Trialing)
}

/// What the rule needs to know about one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    pub status: &'a Status,
    /// When it was first seen `past_due` (epoch ms), see [`past_due_since`].
    pub past_due_since: Option<i64>,
    /// The subscription's current period end (epoch ms).
    pub current_period_end: Option<i64>,
    /// How long `past_due` keeps access (ms).
    pub grace_ms: i64,
}

/// What one entitlement row says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub grants: bool,
    pub access_until: Option<i64>,
}

impl Facts<'_> {
    /// The subscription as a whole (the one row of a subscription without
    /// items).
    pub fn access(&self) -> Access {
        match self.status {
            s if holds_while_status(s) => Access {
                grants: true,
                access_until: self.current_period_end,
            },
            Status::PastDue => Access {
                grants: true,
                access_until: self
                    .past_due_since
                    .map(|since| since.saturating_add(self.grace_ms)),
            },
            _ => Access {
                grants: false,
                access_until: None,
            },
        }
    }

    /// One item, whose own period end (basil and later) is the informational
    /// `access_until` while the status holds; a `past_due` grace is the
    /// subscription's, whatever the item's period.
    pub fn item_access(&self, item_period_end: Option<i64>) -> Access {
        let access = self.access();
        if *self.status == Status::PastDue {
            access
        } else {
            Access {
                access_until: item_period_end.or(access.access_until),
                ..access
            }
        }
    }
}

/// Whether a row gives access at `now` (epoch ms).
pub fn has_access(status: &Status, grants: bool, access_until: Option<i64>, now: i64) -> bool {
    grants && (holds_while_status(status) || access_until.is_some_and(|t| t > now))
}

/// When the grace period starts: the first write that saw the subscription
/// `past_due` (kept while it stays `past_due`, cleared when it leaves).
/// `previous` is the stored `(status, past_due_since)`, if any.
pub fn past_due_since(
    status: &Status,
    previous: Option<(&Status, Option<i64>)>,
    now: i64,
) -> Option<i64> {
    match (status, previous) {
        (Status::PastDue, Some((Status::PastDue, Some(since)))) => Some(since),
        (Status::PastDue, _) => Some(now),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// First seen past_due.
    const SINCE: i64 = 1_800_000_000_000;
    /// The period ends a day after the subscription went past_due.
    const PERIOD_END: i64 = SINCE + 24 * HOUR;

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
                    past_due_since: past_due_since(status, None, SINCE),
                    current_period_end: Some(PERIOD_END),
                    grace_ms,
                };
                for ((moment, now), want) in moments(grace_ms).into_iter().zip(expected) {
                    // The subscription's own row, and an item with its own
                    // (later) period end, say the same.
                    for access in [facts.access(), facts.item_access(Some(PERIOD_END + HOUR))] {
                        assert_eq!(
                            has_access(status, access.grants, access.access_until, now),
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
            SINCE
        ));
    }

    #[test]
    fn the_grace_starts_when_past_due_is_first_seen() {
        let later = SINCE + HOUR;
        assert_eq!(past_due_since(&Status::PastDue, None, later), Some(later));
        assert_eq!(
            past_due_since(&Status::PastDue, Some((&Status::Active, None)), later),
            Some(later)
        );
        assert_eq!(
            past_due_since(
                &Status::PastDue,
                Some((&Status::PastDue, Some(SINCE))),
                later
            ),
            Some(SINCE),
            "a second past_due write keeps the start"
        );
        assert_eq!(
            past_due_since(&Status::PastDue, Some((&Status::PastDue, None)), later),
            Some(later)
        );
        assert_eq!(
            past_due_since(
                &Status::Active,
                Some((&Status::PastDue, Some(SINCE))),
                later
            ),
            None
        );
    }
}
