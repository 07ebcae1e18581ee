//! `[[endpoints]]` and `webhook_secret`: the Stripe webhook endpoints the
//! intake serves, each with its path, mode and signing secrets.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::stripe::Mode;

/// The path of the endpoint that `webhook_secret` (`STRIPE_WEBHOOK_SECRET`)
/// defines.
pub(crate) const DEFAULT_ENDPOINT_PATH: &str = "/webhooks/stripe";
/// Accepted age of a signature's timestamp when an endpoint does not say
/// (Stripe's SDKs use the same).
pub(super) const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// An endpoint as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointConfig {
    /// A short name for logs and metrics; defaults to the path.
    #[serde(default)]
    pub name: Option<String>,
    pub path: String,
    /// `test` or `live`; defaults to the mode of `stripe.api_key`.
    #[serde(default)]
    pub mode: Option<Mode>,
    pub secrets: Vec<SecretString>,
    /// Defaults to [`DEFAULT_TOLERANCE_SECS`].
    #[serde(default)]
    pub tolerance_secs: Option<u64>,
    /// Stripe sends this endpoint thin events (an event destination with
    /// the thin payload). Every endpoint accepts both styles; the flag
    /// chooses what catch-up lists (`/v2/core/events` too) and what
    /// `setup` and `check` expect at Stripe.
    #[serde(default)]
    pub thin: bool,
    /// A Connect endpoint (events of connected accounts): the drift sweep
    /// and catch-up also go through every connected account.
    #[serde(default)]
    pub connect: bool,
}

/// A validated endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub path: String,
    pub mode: Mode,
    pub secrets: Vec<SecretString>,
    pub tolerance_secs: u64,
    /// See [`EndpointConfig::thin`].
    pub thin: bool,
    /// A Connect endpoint (see [`EndpointConfig::connect`]).
    pub connect: bool,
}

/// The endpoints to serve: the `[[endpoints]]` tables, with `webhook_secret`
/// setting (or adding) the one at [`DEFAULT_ENDPOINT_PATH`]. An endpoint
/// without a mode takes the API key's.
pub(super) fn resolve(
    mut raw: Vec<EndpointConfig>,
    webhook_secret: Option<&SecretString>,
    key_mode: Option<Mode>,
) -> Result<Vec<Endpoint>, ConfigError> {
    if let Some(secret) = webhook_secret {
        set_default_endpoint(&mut raw, secret);
    }
    let mut endpoints: Vec<Endpoint> = Vec::with_capacity(raw.len());
    for (i, ep) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("endpoints[{i}].{field}");
        check_path(&ep.path, &endpoints, key("path"))?;
        check_secrets(i, &ep.secrets)?;
        let tolerance_secs = ep.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
        if tolerance_secs == 0 {
            return Err(invalid(
                key("tolerance_secs"),
                "must be at least 1 (0 would turn replay protection off); Stripe's SDKs use 300",
            ));
        }
        let mode = ep.mode.or(key_mode).ok_or_else(|| {
            invalid(
                key("mode"),
                "is not set and cannot be derived: set mode = \"test\" or \"live\", or set STRIPE_API_KEY (its sk_test_/sk_live_ prefix gives the mode)",
            )
        })?;
        endpoints.push(Endpoint {
            name: ep.name.unwrap_or_else(|| ep.path.clone()),
            path: ep.path,
            mode,
            secrets: ep.secrets,
            tolerance_secs,
            thin: ep.thin,
            connect: ep.connect,
        });
    }
    Ok(endpoints)
}

/// `webhook_secret` is one or more secrets, comma-separated.
fn set_default_endpoint(raw: &mut Vec<EndpointConfig>, secret: &SecretString) {
    let secrets: Vec<SecretString> = secret
        .expose_secret()
        .split(',')
        .map(|s| SecretString::from(s.trim().to_owned()))
        .collect();
    match raw.iter_mut().find(|e| e.path == DEFAULT_ENDPOINT_PATH) {
        Some(existing) => existing.secrets = secrets,
        None => raw.push(EndpointConfig {
            name: Some("default".to_owned()),
            path: DEFAULT_ENDPOINT_PATH.to_owned(),
            mode: None,
            secrets,
            tolerance_secs: None,
            thin: false,
            connect: false,
        }),
    }
}

fn check_path(path: &str, earlier: &[Endpoint], key: String) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(invalid(
            key,
            format!("{path:?} must be an absolute URL path such as /webhooks/stripe"),
        ));
    }
    if ["/healthz", "/readyz"].contains(&path) {
        return Err(invalid(
            key,
            format!("{path} is reserved for health checks"),
        ));
    }
    if earlier.iter().any(|e| e.path == path) {
        return Err(invalid(key, format!("{path} is configured twice")));
    }
    Ok(())
}

fn check_secrets(i: usize, secrets: &[SecretString]) -> Result<(), ConfigError> {
    if secrets.is_empty() {
        return Err(invalid(
            format!("endpoints[{i}].secrets"),
            "No webhook secret value was provided. It should start with `whsec_` (Stripe Dashboard → Developers → Webhooks → your endpoint → Signing secret)",
        ));
    }
    for (j, s) in secrets.iter().enumerate() {
        let key = format!("endpoints[{i}].secrets[{j}]");
        let s = s.expose_secret();
        if s.is_empty() {
            return Err(invalid(
                key,
                "No webhook secret value was provided. It should start with `whsec_`",
            ));
        }
        if !s.starts_with("whsec_") {
            let hint = if s.starts_with("sk_") || s.starts_with("rk_") {
                " (this looks like an API key: the signing secret is on the webhook endpoint's page)"
            } else {
                ""
            };
            return Err(invalid(
                key,
                format!("a webhook signing secret starts with `whsec_`{hint}"),
            ));
        }
    }
    Ok(())
}
