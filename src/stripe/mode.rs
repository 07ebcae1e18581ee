//! Test or live: Stripe keeps the two apart (keys, webhook secrets, objects,
//! rate limits), and a key's prefix says which one it belongs to.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn is_live(self) -> bool {
        self == Mode::Live
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    /// The client-side rate limit when none is configured: below Stripe's
    /// own limits of 25 requests/s in test mode and 100 in live mode.
    pub fn default_requests_per_sec(self) -> u32 {
        match self {
            Mode::Test => 20,
            Mode::Live => 80,
        }
    }
}

/// `sk_test_…`/`rk_test_…` → test, `sk_live_…`/`rk_live_…` → live.
pub(crate) fn key_mode(key: &str) -> Option<Mode> {
    if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        Some(Mode::Test)
    } else if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        Some(Mode::Live)
    } else {
        None
    }
}
