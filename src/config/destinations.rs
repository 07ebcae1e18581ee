//! `[[destinations]]` and `[forward]`: where each event is forwarded to
//! once it is reconciled (or received), and how the forwarder retries.
//!
//! A layer cannot give defaults to the entries of a list, so a destination's
//! optional keys (`timeout_secs`, `max_attempts`, `max_age_hours`,
//! `max_in_flight`) take theirs from `[forward]` in `defaults.toml`.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{invalid, ConfigError};

/// When a destination's delivery is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Once the event is applied and its records committed (ignored types
    /// count as applied), in the transaction that finishes it.
    Reconciled,
    /// Right after the outbox commit, in the intake's transaction.
    Received,
}

/// How a destination's requests are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    /// Stripe's own scheme (`Stripe-Signature: t=…,v1=…`): the app's
    /// Stripe SDK verifies it unchanged.
    Stripe,
    /// Standard Webhooks v1 (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature: v1,…`), verified by the spec's libraries.
    Standard,
}

impl Signature {
    pub fn as_str(self) -> &'static str {
        match self {
            Signature::Stripe => "stripe",
            Signature::Standard => "standard",
        }
    }
}

impl After {
    pub fn as_str(self) -> &'static str {
        match self {
            After::Reconciled => "reconciled",
            After::Received => "received",
        }
    }
}

/// `[forward]`: the forwarder, and the defaults of every destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Run the forwarder in this process.
    pub enabled: bool,
    /// How often an idle forwarder looks for due retries.
    pub poll_interval_ms: u64,
    /// How long a claimed delivery is ours before another worker may take it.
    pub lease_secs: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_secs: u64,
    /// Destination defaults.
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub max_age_hours: u64,
    pub max_in_flight: usize,
}

impl ForwardConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_interval_ms == 0 || self.backoff_base_ms == 0 || self.max_in_flight == 0 {
            return Err(invalid(
                "forward",
                "poll_interval_ms, backoff_base_ms and max_in_flight must be at least 1",
            ));
        }
        if self.lease_secs <= self.timeout_secs {
            return Err(invalid(
                "forward.lease_secs",
                "must be longer than forward.timeout_secs (a delivery's request must end within its lease)",
            ));
        }
        Ok(())
    }
}

/// A destination as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationConfig {
    pub name: String,
    pub url: String,
    pub secret: Option<SecretString>,
    /// Secrets the app may still verify with while it moves to `secret`:
    /// every request is signed with `secret` and with each of these.
    #[serde(default)]
    pub previous_secrets: Vec<SecretString>,
    /// Event types, `*` matching any run of characters; default: all.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub after: Option<After>,
    /// `"stripe"` (default) or `"standard"`.
    #[serde(default)]
    pub signature: Option<Signature>,
    #[serde(default)]
    pub ordered: Option<bool>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub max_age_hours: Option<u64>,
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Extra request headers (e.g. an `Authorization` for the app).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
}

/// A validated destination.
#[derive(Debug, Clone)]
pub struct Destination {
    pub name: String,
    pub url: reqwest::Url,
    /// The current secret.
    pub secret: SecretString,
    /// Older secrets still signed with while a secret rolls
    /// (docs/forwarding.md, "Rolling a secret").
    pub previous_secrets: Vec<SecretString>,
    pub events: Vec<String>,
    pub after: After,
    pub signature: Signature,
    pub ordered: bool,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub max_in_flight: usize,
    pub headers: BTreeMap<String, SecretString>,
}

impl Destination {
    /// Whether this destination takes `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|p| wildcard(p, event_type))
    }

    /// Every secret a request is signed with: the current one first, then
    /// the previous ones.
    pub fn signing_secrets(&self) -> impl Iterator<Item = &SecretString> {
        std::iter::once(&self.secret).chain(&self.previous_secrets)
    }
}

/// `*` matches any run of characters (also none); everything else itself.
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

pub(super) fn resolve(
    raw: Vec<DestinationConfig>,
    forward: &ForwardConfig,
) -> Result<Vec<Destination>, ConfigError> {
    let mut out: Vec<Destination> = Vec::with_capacity(raw.len());
    for (i, d) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("destinations[{i}].{field}");
        if d.name.is_empty()
            || !d
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                key("name"),
                format!(
                    "{:?} must be a short name of letters, digits, - and _ (it names the destination in logs, metrics and the CLI)",
                    d.name
                ),
            ));
        }
        if out.iter().any(|o| o.name == d.name) {
            return Err(invalid(
                key("name"),
                format!("{} is configured twice", d.name),
            ));
        }
        let url = reqwest::Url::parse(&d.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid(
                    key("url"),
                    format!(
                        "{:?} is not an http(s) URL; write the full address of the app's webhook handler, such as http://127.0.0.1:3000/webhooks/stripe",
                        crate::redact::url(&d.url)
                    ),
                )
            })?;
        let signature = d.signature.unwrap_or(Signature::Stripe);
        let secret = d
            .secret
            .filter(|s| s.expose_secret().starts_with("whsec_") && s.expose_secret().len() > 6)
            .ok_or_else(|| {
                invalid(
                    key("secret"),
                    match signature {
                        Signature::Stripe => "a destination needs the signing secret its app verifies with, starting with `whsec_`: `stripe-hookd destinations secret` prints a fresh one",
                        Signature::Standard => "a destination needs the signing secret its app verifies with, `whsec_` and the base64 of 24 to 64 random bytes: `stripe-hookd destinations secret --standard` prints a fresh one",
                    },
                )
            })?;
        if signature == Signature::Standard {
            standard_key(secret.expose_secret())
                .map_err(|problem| invalid(key("secret"), problem.to_string()))?;
        }
        check_previous_secrets(&d.previous_secrets, &secret, signature, |j| {
            key(&format!("previous_secrets[{j}]"))
        })?;
        let events = d.events.unwrap_or_else(|| vec!["*".to_owned()]);
        if events.is_empty() || events.iter().any(|e| e.is_empty()) {
            return Err(invalid(
                key("events"),
                "list event types such as \"customer.subscription.*\", or leave the key out for all",
            ));
        }
        for name in d.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || [
                    "content-type",
                    "stripe-signature",
                    "host",
                    "content-length",
                    "webhook-id",
                    "webhook-timestamp",
                    "webhook-signature",
                ]
                .contains(&name.to_ascii_lowercase().as_str())
                || name.to_ascii_lowercase().starts_with("stripe-hookd-")
            {
                return Err(invalid(
                    key(&format!("headers.{name}")),
                    "is not a header name stripe-hookd may set (it sets Content-Type, Stripe-Signature, webhook-id, webhook-timestamp, webhook-signature and Stripe-Hookd-* itself)",
                ));
            }
        }
        let timeout_secs = d.timeout_secs.unwrap_or(forward.timeout_secs);
        if timeout_secs == 0 || timeout_secs >= forward.lease_secs {
            return Err(invalid(
                key("timeout_secs"),
                format!(
                    "must be at least 1 and shorter than forward.lease_secs ({})",
                    forward.lease_secs
                ),
            ));
        }
        let max_attempts = d.max_attempts.unwrap_or(forward.max_attempts);
        let max_in_flight = d.max_in_flight.unwrap_or(forward.max_in_flight);
        if max_attempts == 0 || max_in_flight == 0 {
            return Err(invalid(
                key("max_attempts"),
                "max_attempts and max_in_flight must be at least 1",
            ));
        }
        out.push(Destination {
            name: d.name,
            url,
            secret,
            previous_secrets: d.previous_secrets,
            events,
            after: d.after.unwrap_or(After::Reconciled),
            signature,
            ordered: d.ordered.unwrap_or(true),
            timeout: Duration::from_secs(timeout_secs),
            max_attempts,
            max_age: Duration::from_secs(
                d.max_age_hours
                    .unwrap_or(forward.max_age_hours)
                    .saturating_mul(3600),
            ),
            max_in_flight,
            headers: d.headers,
        });
    }
    Ok(out)
}

/// The most secrets a destination signs with besides `secret`: a roll
/// needs one; a long list is a forgotten clean-up (and a longer header).
pub(super) const MAX_PREVIOUS_SECRETS: usize = 4;

/// `previous_secrets`: each of the form `signature` needs, none equal to
/// the current secret or to another, at most [`MAX_PREVIOUS_SECRETS`].
fn check_previous_secrets(
    previous: &[SecretString],
    current: &SecretString,
    signature: Signature,
    key: impl Fn(usize) -> String,
) -> Result<(), ConfigError> {
    if previous.len() > MAX_PREVIOUS_SECRETS {
        return Err(invalid(
            key(MAX_PREVIOUS_SECRETS),
            format!(
                "a destination signs with at most {MAX_PREVIOUS_SECRETS} previous secrets (there are {}); remove those its app no longer verifies with",
                previous.len()
            ),
        ));
    }
    for (j, s) in previous.iter().enumerate() {
        let value = s.expose_secret();
        match signature {
            Signature::Stripe if !(value.starts_with("whsec_") && value.len() > 6) => {
                return Err(invalid(
                    key(j),
                    "a previous secret is a `whsec_…` secret the app verified with before `secret`",
                ));
            }
            Signature::Stripe => {}
            Signature::Standard => {
                standard_key(value).map_err(|problem| invalid(key(j), problem.to_string()))?;
            }
        }
        if value == current.expose_secret() {
            return Err(invalid(
                key(j),
                "is the same as `secret`: list only the older secrets the app may still verify with",
            ));
        }
        if previous[..j].iter().any(|o| o.expose_secret() == value) {
            return Err(invalid(key(j), "is listed twice"));
        }
    }
    Ok(())
}

/// What is wrong with a Standard Webhooks secret (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StandardSecretError {
    #[error("a signature = \"standard\" secret starts with `whsec_` (`stripe-hookd destinations secret --standard` prints a fresh one)")]
    NoPrefix,
    #[error("the part after `whsec_` is not padded standard base64 ({0}); a signature = \"standard\" secret is `whsec_` and the base64 of 24 to 64 random bytes (`stripe-hookd destinations secret --standard` prints a fresh one)")]
    NotBase64(base64::DecodeError),
    #[error("the part after `whsec_` decodes to {0} bytes; a signature = \"standard\" secret is `whsec_` and the base64 of 24 to 64 random bytes (`stripe-hookd destinations secret --standard` prints a fresh one)")]
    Length(usize),
}

/// The signing key of a Standard Webhooks secret: `whsec_` and the
/// base64 (standard alphabet, padded) of 24 to 64 bytes, which are
/// the key (the spec's "Signing secret" row).
pub(crate) fn standard_key(secret: &str) -> Result<Vec<u8>, StandardSecretError> {
    use base64::Engine;
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(StandardSecretError::NoPrefix)?;
    // Padded, as the spec's libraries (this crate's `standardwebhooks`,
    // Python's `base64.b64decode`) decode it.
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(StandardSecretError::NotBase64)?;
    if !(24..=64).contains(&key.len()) {
        return Err(StandardSecretError::Length(key.len()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard("*", "customer.created"));
        assert!(wildcard(
            "customer.subscription.*",
            "customer.subscription.updated"
        ));
        assert!(!wildcard("customer.subscription.*", "customer.created"));
        assert!(wildcard("invoice.*.failed", "invoice.payment.failed"));
        assert!(!wildcard("invoice.*.failed", "invoice.paid"));
        assert!(wildcard("*.deleted", "customer.deleted"));
        assert!(wildcard("customer.created", "customer.created"));
        assert!(!wildcard("customer.created", "customer.created2"));
        assert!(!wildcard("a*a", "a"));
    }
}
