//! Configuration: built-in defaults → TOML file → environment → systemd
//! credentials, then [`RawConfig::validate`] into the settings the daemon
//! runs with.
//!
//! Every default is written once, in `defaults.toml` (compiled in, the first
//! layer). One file per section holds its struct, its checks and the
//! options it builds for the part it configures (`RunnerConfig::options`,
//! `StripeConfig::client_options`, `DatabaseConfig::store_options`), so the
//! runtime never carries defaults of its own.
//!
//! Unknown keys and invalid values stop the start with a message that names
//! the key and says what to fix. Secrets are `SecretString`s: they never
//! appear in `Debug` output or logs.

mod database;
mod destinations;
mod endpoints;
mod entitlements;
mod intake;
mod log;
mod runner;
mod schedule;
mod stripe;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use self::database::DatabaseConfig;
#[cfg(test)]
pub(crate) use self::destinations::standard_key;
pub(crate) use self::destinations::wildcard;
pub(crate) use self::destinations::DestinationConfig;
pub use self::destinations::{After, Destination, ForwardConfig, Signature};
pub use self::endpoints::Endpoint;
pub(crate) use self::endpoints::EndpointConfig;
pub(crate) use self::endpoints::DEFAULT_ENDPOINT_PATH;
#[cfg(test)]
use self::endpoints::DEFAULT_TOLERANCE_SECS;
pub use self::entitlements::EntitlementsConfig;
pub use self::intake::IntakeConfig;
pub use self::log::{LogConfig, LogFormat};
pub use self::runner::RunnerConfig;
pub use self::schedule::ScheduleConfig;
pub use self::stripe::StripeConfig;
pub(crate) use crate::stripe::key_mode;
pub use crate::stripe::Mode;

/// Every built-in default, once, with a comment per key: the first layer.
pub(crate) const DEFAULTS: &str = include_str!("defaults.toml");
/// Where `serve` looks for a config file when `--config` is not given.
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/etc/stripe-hookd/config.toml";
/// Prefix of every environment variable that maps onto a config key
/// (`STRIPE_HOOKD_INTAKE__MAX_BODY_BYTES` → `intake.max_body_bytes`).
pub(crate) const ENV_PREFIX: &str = "STRIPE_HOOKD_";

/// The conventional environment names, and the key each one sets.
const STRIPE_ENV: &[(&str, &str)] = &[
    ("STRIPE_WEBHOOK_SECRET", "webhook_secret"),
    ("STRIPE_API_KEY", "stripe.api_key"),
    ("STRIPE_API_BASE", "stripe.api_base"),
    ("DATABASE_URL", "database.url"),
];

/// Files read from `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`), and
/// the key each one sets.
pub(crate) const CREDENTIALS: &[(&str, &str)] = &[
    ("webhook_secret", "webhook_secret"),
    ("stripe_api_key", "stripe.api_key"),
    ("admin_token", "admin_token"),
    ("access_token", "access_token"),
    ("database_url", "database.url"),
];

/// The configuration as written by the operator (file, env, credentials)
/// over the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    /// Bearer token of the read-only `GET /v1/access` (on the admin
    /// listener), for applications; never the admin token.
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// How long an inspector session lasts (hours).
    pub admin_session_hours: u32,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// One or more `whsec_…` secrets, comma-separated, for the endpoint at
    /// `/webhooks/stripe` (env `STRIPE_WEBHOOK_SECRET`).
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    pub endpoints: Vec<EndpointConfig>,
    /// Where events are forwarded (env `STRIPE_HOOKD_DESTINATIONS`).
    pub destinations: Vec<DestinationConfig>,
    pub forward: ForwardConfig,
    pub database: DatabaseConfig,
    pub stripe: StripeConfig,
    pub intake: IntakeConfig,
    pub runner: RunnerConfig,
    pub entitlements: EntitlementsConfig,
    pub schedule: ScheduleConfig,
    pub log: LogConfig,
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("configuration: cannot read credential {path}: {source}")]
    Credential {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration: {key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The built-in defaults alone: the layer every other one goes over.
pub(crate) fn defaults() -> Figment {
    Figment::from(Toml::string(DEFAULTS))
}

/// Builds the layered provider: defaults → file (if any) → `STRIPE_HOOKD_*`
/// env → the conventional Stripe env names → systemd credentials.
///
/// `config_path`: `Some(p)` must exist; `None` uses
/// `/etc/stripe-hookd/config.toml` when it exists.
pub(crate) fn figment(config_path: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = defaults();
    match config_path {
        Some(path) if !path.exists() => {
            return Err(invalid(
                "--config",
                format!("{} does not exist", path.display()),
            ));
        }
        Some(path) => fig = fig.merge(Toml::file_exact(path)),
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            if default.exists() {
                fig = fig.merge(Toml::file_exact(default));
            }
        }
    }
    let names: Vec<&str> = STRIPE_ENV.iter().map(|(name, _)| *name).collect();
    fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__")).merge(
        Env::raw()
            .only(&names)
            .map(|name| {
                STRIPE_ENV
                    .iter()
                    .find(|(env, _)| name == *env)
                    .map_or(name.as_str(), |(_, key)| *key)
                    .to_owned()
                    .into()
            })
            .split("."),
    );
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        fig = merge_credentials(fig, Path::new(&dir))?;
    }
    Ok(fig)
}

/// Merges the credential files present in `dir` over `fig`.
pub(crate) fn merge_credentials(mut fig: Figment, dir: &Path) -> Result<Figment, ConfigError> {
    for (file, key) in CREDENTIALS {
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(value) => {
                fig = fig.merge(Serialized::default(key, value.trim().to_owned()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(ConfigError::Credential { path, source }),
        }
    }
    Ok(fig)
}

/// Loads the configuration the binary runs with.
pub fn load(config_path: Option<&Path>) -> Result<Config, ConfigError> {
    from_figment(figment(config_path)?)
}

/// Extracts and validates `fig`, which starts from [`defaults`].
pub(crate) fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = fig.extract().map_err(Box::new)?;
    raw.validate()
}

/// A TOML document over the defaults (no env): for tests and tools.
/// `from_toml_str("")` is the built-in configuration.
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(defaults().merge(Toml::string(toml)))
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<SecretString>,
    /// Bearer token of `GET /v1/access` (read-only; needs the admin listener).
    pub access_token: Option<SecretString>,
    /// How long an inspector session lasts (hours, 1 to 720).
    pub admin_session_hours: u32,
    pub state_dir: PathBuf,
    pub endpoints: Vec<Endpoint>,
    pub destinations: Vec<Destination>,
    pub forward: ForwardConfig,
    pub database: DatabaseConfig,
    pub stripe: StripeConfig,
    pub intake: IntakeConfig,
    pub runner: RunnerConfig,
    pub entitlements: EntitlementsConfig,
    pub schedule: ScheduleConfig,
    pub log: LogConfig,
}

impl Config {
    /// The database URL to use: the configured one, else `stripe-hookd.db`
    /// in the state directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.expose_secret().to_owned(),
            None => self
                .state_dir
                .join("stripe-hookd.db")
                .to_string_lossy()
                .into_owned(),
        }
    }

    /// The mode of the API key, if one is configured and recognisable.
    pub fn api_key_mode(&self) -> Option<Mode> {
        self.stripe
            .api_key
            .as_ref()
            .and_then(|k| key_mode(k.expose_secret()))
    }
}

/// The state directory: systemd's `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/stripe-hookd`, else `~/.local/state/stripe-hookd`, else
/// `/var/lib/stripe-hookd`.
pub(crate) fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several, colon-separated: the first is ours.
        let dir = dir.to_string_lossy().into_owned();
        if let Some(first) = dir.split(':').next().filter(|d| !d.is_empty()) {
            return PathBuf::from(first);
        }
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("stripe-hookd");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty() && v != "/") {
        return PathBuf::from(home).join(".local/state/stripe-hookd");
    }
    PathBuf::from("/var/lib/stripe-hookd")
}

impl RawConfig {
    /// Checks every section (each in its own file) and resolves the
    /// endpoints and the state directory.
    pub(crate) fn validate(self) -> Result<Config, ConfigError> {
        let key_mode = self.stripe.validate()?;
        self.check_listeners()?;
        self.intake.validate()?;
        self.runner.validate()?;
        runner::check_retention(&self.runner, &self.schedule)?;
        self.schedule.validate()?;
        self.database.validate()?;
        self.log.validate()?;
        self.forward.validate()?;
        let destinations = destinations::resolve(self.destinations, &self.forward)?;
        let endpoints = endpoints::resolve(self.endpoints, self.webhook_secret.as_ref(), key_mode)?;
        Ok(Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            admin_token: self.admin_token,
            access_token: self.access_token,
            admin_session_hours: self.admin_session_hours,
            state_dir: self.state_dir.unwrap_or_else(default_state_dir),
            endpoints,
            destinations,
            forward: self.forward,
            database: self.database,
            stripe: self.stripe,
            intake: self.intake,
            runner: self.runner,
            entitlements: self.entitlements,
            schedule: self.schedule,
            log: self.log,
        })
    }

    /// The top-level keys: the admin token and the two listeners.
    fn check_listeners(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin_token {
            if token.expose_secret().len() < 16 {
                return Err(invalid(
                    "admin_token (STRIPE_HOOKD_ADMIN_TOKEN)",
                    "must be at least 16 characters; generate one with `openssl rand -hex 32`",
                ));
            }
        }
        if let Some(token) = &self.access_token {
            let key = "access_token (STRIPE_HOOKD_ACCESS_TOKEN)";
            if token.expose_secret().len() < 16 {
                return Err(invalid(
                    key,
                    "must be at least 16 characters; generate one with `openssl rand -hex 32`",
                ));
            }
            match &self.admin_token {
                None => {
                    return Err(invalid(
                        key,
                        "GET /v1/access is served on the admin listener, which runs only with admin_token set: set admin_token too",
                    ))
                }
                Some(admin) if admin.expose_secret() == token.expose_secret() => {
                    return Err(invalid(
                        key,
                        "must differ from admin_token: applications get a token that can only read access",
                    ))
                }
                Some(_) => {}
            }
        }
        if !(1..=720).contains(&self.admin_session_hours) {
            return Err(invalid(
                "admin_session_hours (STRIPE_HOOKD_ADMIN_SESSION_HOURS)",
                "must be between 1 and 720 (30 days)",
            ));
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(invalid(
                "admin_listen (STRIPE_HOOKD_ADMIN_LISTEN)",
                "must differ from listen: the admin API is never served on the public listener",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
