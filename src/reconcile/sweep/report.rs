//! What the sweep reports: the drift found, per object and field, bounded
//! for the admin API and logs, and why a part of it failed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::StoreError;
use crate::stripe::StripeError;

/// One field that differs between the local record and Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Drift {
    pub object: String,
    pub field: String,
    pub local: Option<String>,
    pub stripe: Option<String>,
}

/// How many drift entries a report shows; the rest are counted (and paged
/// through the admin API: `GET /v1/jobs/{id}/items`).
pub const DRIFT_SHOWN: usize = 100;

/// Fields whose values are personal data: reported as differing, without
/// the values.
pub(super) const PRIVATE_FIELDS: &[&str] = &["email", "name"];

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SweepReport {
    pub dry_run: bool,
    pub subscriptions_checked: usize,
    pub customers_checked: usize,
    /// Charges created in the window ([`super::ReconcileOptions::charge_window`]).
    pub charges_checked: usize,
    /// Customers whose active features (Stripe's Entitlements) were compared.
    pub customer_features_checked: usize,
    /// Parts not run, and why (a restricted key that may not read them).
    pub skipped: Vec<String>,
    /// Parts that failed, each with its cause; the other parts still ran
    /// (and repaired what they found).
    pub failed: Vec<SweepFailure>,
    /// Whether a part failed (`failed` is not empty): the report covers
    /// only the parts that ran.
    pub partial: bool,
    /// Objects written (0 in a dry run).
    pub fixed: usize,
    /// Objects with at least one drifted field.
    pub drifted_objects: usize,
    /// Drifted fields, in all.
    pub drift_total: usize,
    /// Drifted fields by field name.
    pub drift_by_field: BTreeMap<String, usize>,
    /// The first [`DRIFT_SHOWN`] entries.
    pub drift: Vec<Drift>,
    /// Whether `drift` leaves entries out (`drift_total` > shown).
    pub drift_truncated: bool,
    /// Every entry, for paging; not serialised with the report.
    #[serde(skip)]
    pub all_drift: Vec<Drift>,
}

impl SweepReport {
    /// Objects checked, of every kind.
    pub(crate) fn checked(&self) -> usize {
        self.subscriptions_checked
            + self.customers_checked
            + self.charges_checked
            + self.customer_features_checked
    }

    /// Records that `part` (of `account`) failed.
    pub(super) fn fail(&mut self, part: &str, account: Option<&str>, error: &str) {
        self.failed.push(SweepFailure {
            part: part.to_owned(),
            account: account.map(str::to_owned),
            error: error.to_owned(),
        });
        self.partial = true;
    }

    pub(super) fn add(&mut self, drift: Vec<Drift>) {
        self.drifted_objects += 1;
        for d in drift {
            self.drift_total += 1;
            *self.drift_by_field.entry(d.field.clone()).or_default() += 1;
            if self.drift.len() < DRIFT_SHOWN {
                self.drift.push(d.clone());
            } else {
                self.drift_truncated = true;
            }
            self.all_drift.push(d);
        }
    }
}

/// A part of the sweep that failed: the family (and account) it covers,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SweepFailure {
    /// `subscriptions`, `customers`, `charges`, `customer features` or
    /// `connected accounts`.
    pub part: String,
    /// The Connect account it was run for (`None`: the platform).
    pub account: Option<String>,
    pub error: String,
}

impl std::fmt::Display for SweepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.account {
            Some(account) => write!(f, "{} of {account}: {}", self.part, self.error),
            None => write!(f, "{}: {}", self.part, self.error),
        }
    }
}

/// Progress as the sweep goes (for bars, logs and the admin API).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct SweepProgress {
    pub phase: &'static str,
    pub checked: usize,
    pub drifted: usize,
}

/// Why a part of the sweep failed. The cause is in the message, not also
/// a `source` (a report printed with its chain named it twice).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SweepError {
    #[error("Stripe API: {0}")]
    Stripe(StripeError),
    #[error("database: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Other(String),
}

impl From<StripeError> for SweepError {
    fn from(e: StripeError) -> Self {
        SweepError::Stripe(e)
    }
}

impl From<StoreError> for SweepError {
    fn from(e: StoreError) -> Self {
        SweepError::Store(e)
    }
}
