//! `[entitlements]`: who has access (see docs/entitlements.md).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// How long a `past_due` subscription keeps access, from when Stripe
    /// billed the unpaid invoice (or first seen past_due).
    pub past_due_grace_hours: u64,
}
