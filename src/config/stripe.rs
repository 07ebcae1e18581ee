//! `[stripe]`: the API client's key, base URL, pinned version, time-outs,
//! retries and rate limit. The client itself (`crate::stripe`) knows nothing
//! of this file: [`StripeConfig::client_options`] builds its plain options.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::stripe::{key_mode, ClientOptions, Mode};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// `sk_test_…`, `sk_live_…` or a restricted `rk_…` key (env `STRIPE_API_KEY`).
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Env `STRIPE_API_BASE`; tests point it at a fake.
    pub api_base: String,
    /// The pinned `Stripe-Version` of every API call.
    pub api_version: String,
    /// Time-out of one API call.
    pub timeout_secs: u64,
    /// Retries of one call (409, 429, 5xx, network), before the runner's own backoff.
    pub max_retries: u32,
    /// Client-side rate limit; unset: [`Mode::default_requests_per_sec`].
    #[serde(default)]
    pub requests_per_sec: Option<u32>,
}

const API_KEY: &str = "stripe.api_key (STRIPE_API_KEY)";

impl StripeConfig {
    /// Checks the section; returns the API key's mode (`None` without a key).
    pub(super) fn validate(&self) -> Result<Option<Mode>, ConfigError> {
        if !self.api_base.starts_with("http://") && !self.api_base.starts_with("https://") {
            return Err(invalid(
                "stripe.api_base (STRIPE_API_BASE)",
                format!("{:?} is not an http(s) URL", self.api_base),
            ));
        }
        match &self.api_key {
            Some(key) => check_api_key(key.expose_secret()).map(Some),
            None => Ok(None),
        }
    }

    /// The client's settings; `None` without an API key.
    pub fn client_options(&self) -> Option<ClientOptions> {
        let api_key = self.api_key.clone()?;
        let mode = key_mode(api_key.expose_secret()).unwrap_or(Mode::Test);
        Some(ClientOptions {
            api_base: self.api_base.trim_end_matches('/').to_owned(),
            api_key,
            api_version: self.api_version.clone(),
            timeout: Duration::from_secs(self.timeout_secs),
            max_retries: self.max_retries,
            requests_per_sec: self
                .requests_per_sec
                .unwrap_or_else(|| mode.default_requests_per_sec()),
        })
    }
}

/// A secret or restricted key, and its mode; a message for the keys that
/// are often pasted here by mistake.
fn check_api_key(key: &str) -> Result<Mode, ConfigError> {
    if key.is_empty() {
        return Err(invalid(
            API_KEY,
            "is empty: set it to a secret key from the Stripe Dashboard (sk_test_… or sk_live_…) or leave it unset",
        ));
    }
    if key.starts_with("pk_") {
        return Err(invalid(
            API_KEY,
            "is a publishable key (pk_…): use a secret key (sk_…) or a restricted key (rk_…)",
        ));
    }
    if key.starts_with("whsec_") {
        return Err(invalid(
            API_KEY,
            "is a webhook signing secret (whsec_…): that belongs in STRIPE_WEBHOOK_SECRET; the API key starts with sk_ or rk_",
        ));
    }
    key_mode(key).ok_or_else(|| {
        invalid(
            API_KEY,
            "is not a Stripe secret key: expected sk_test_…, sk_live_…, rk_test_… or rk_live_…",
        )
    })
}
