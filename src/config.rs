//! Configuration: defaults → TOML file → environment → systemd credentials,
//! then `validate()` into the settings the daemon runs with.
//!
//! Unknown keys and invalid values stop the start with a message that names
//! the key and says what to fix. Secrets are `SecretString`s: they never
//! appear in `Debug` output or logs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Where `serve` looks for a config file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/stripe-hookd/config.toml";
/// Prefix of every environment variable that maps onto a config key
/// (`STRIPE_HOOKD_INTAKE__MAX_BODY_BYTES` → `intake.max_body_bytes`).
pub const ENV_PREFIX: &str = "STRIPE_HOOKD_";
/// The path of the endpoint that `STRIPE_WEBHOOK_SECRET` defines.
pub const DEFAULT_ENDPOINT_PATH: &str = "/webhooks/stripe";

/// Files read from `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`), and
/// the key each one sets.
pub const CREDENTIALS: &[(&str, &str)] = &[
    ("webhook_secret", "webhook_secret"),
    ("stripe_api_key", "stripe.api_key"),
    ("admin_token", "admin_token"),
    ("database_url", "database.url"),
];

/// The configuration as written by the operator (file, env, credentials).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    #[serde(default)]
    pub admin_token: Option<SecretString>,
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// One or more `whsec_…` secrets, comma-separated, for the endpoint at
    /// `/webhooks/stripe` (env `STRIPE_WEBHOOK_SECRET`).
    #[serde(default)]
    pub webhook_secret: Option<SecretString>,
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub stripe: StripeConfig,
    #[serde(default)]
    pub intake: IntakeConfig,
    #[serde(default)]
    pub runner: RunnerConfig,
    #[serde(default)]
    pub entitlements: EntitlementsConfig,
    #[serde(default)]
    pub schedule: ScheduleConfig,
    #[serde(default)]
    pub log: LogConfig,
}

/// Background catch-up and drift sweep (need an API key).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Pull recent events from Stripe and ingest the missing ones; 0 = off.
    #[serde(default = "default_catch_up_interval_mins")]
    pub catch_up_interval_mins: u64,
    /// Only events whose delivery Stripe marked failed.
    #[serde(default)]
    pub catch_up_only_failed: bool,
    /// Compare every subscription and customer with Stripe and fix drift; 0 = off.
    #[serde(default)]
    pub sweep_interval_hours: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            catch_up_interval_mins: default_catch_up_interval_mins(),
            catch_up_only_failed: false,
            sweep_interval_hours: 0,
        }
    }
}

fn default_catch_up_interval_mins() -> u64 {
    60
}

/// Who has access (see docs/entitlements.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsConfig {
    /// How long a `past_due` subscription keeps access, from when it was
    /// first seen past_due.
    #[serde(default = "default_past_due_grace_hours")]
    pub past_due_grace_hours: u64,
}

impl Default for EntitlementsConfig {
    fn default() -> Self {
        EntitlementsConfig {
            past_due_grace_hours: default_past_due_grace_hours(),
        }
    }
}

fn default_past_due_grace_hours() -> u64 {
    72
}

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// A short name for logs and metrics; defaults to the path.
    #[serde(default)]
    pub name: Option<String>,
    pub path: String,
    /// `test` or `live`; defaults to the mode of `stripe.api_key`.
    #[serde(default)]
    pub mode: Option<Mode>,
    pub secrets: Vec<SecretString>,
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH`, a plain file path, or `postgres://…` (env `DATABASE_URL`).
    #[serde(default)]
    pub url: Option<SecretString>,
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            pool_size: default_pool_size(),
            busy_timeout_ms: default_busy_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// `sk_test_…`, `sk_live_…` or a restricted `rk_…` key (env `STRIPE_API_KEY`).
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// Env `STRIPE_API_BASE`; tests point it at a fake.
    #[serde(default = "default_api_base")]
    pub api_base: String,
    /// The pinned `Stripe-Version` of every API call.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Time-out of one API call.
    #[serde(default = "default_stripe_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of one call (409, 429, 5xx, network), before the runner's own backoff.
    #[serde(default = "default_stripe_max_retries")]
    pub max_retries: u32,
    /// Client-side rate limit; default 20/s for test keys, 80/s for live (Stripe: 25 and 100).
    #[serde(default)]
    pub requests_per_sec: Option<u32>,
}

fn default_stripe_timeout_secs() -> u64 {
    20
}
fn default_stripe_max_retries() -> u32 {
    2
}

impl Default for StripeConfig {
    fn default() -> Self {
        StripeConfig {
            api_key: None,
            api_base: default_api_base(),
            api_version: default_api_version(),
            timeout_secs: default_stripe_timeout_secs(),
            max_retries: default_stripe_max_retries(),
            requests_per_sec: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Largest body accepted; beyond it the answer is 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a delivery waits for its commit before it is answered 503.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// The `Retry-After` sent with a 503.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u64,
    /// Most deliveries committed in one transaction (group commit).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Deliveries waiting for a writer before new ones are answered 503.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Writer threads; default 1 on SQLite (one writer at a time anyway), 2 on Postgres.
    #[serde(default)]
    pub writers: Option<usize>,
    /// HTTP worker threads; default: one per CPU core.
    #[serde(default)]
    pub http_workers: Option<usize>,
    /// Seconds in-flight requests get to finish on shutdown.
    #[serde(default = "default_shutdown_timeout_secs")]
    pub shutdown_timeout_secs: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            max_body_bytes: default_max_body_bytes(),
            write_timeout_ms: default_write_timeout_ms(),
            retry_after_secs: default_retry_after_secs(),
            max_batch: default_max_batch(),
            queue_capacity: default_queue_capacity(),
            writers: None,
            http_workers: None,
            shutdown_timeout_secs: default_shutdown_timeout_secs(),
        }
    }
}

/// The job runner (see `src/queue/`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnerConfig {
    /// Run workers in this process; `false` makes an intake-only instance.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Objects processed at once by this process.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How often idle workers look for due retries and other instances' events.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long a claim lasts before another worker may take the event.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// Attempts before an event is `dead`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Age (since received) after which a failing event is `dead`.
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u64,
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_secs")]
    pub backoff_max_secs: u64,
    /// On SIGTERM, how long in-flight events get before their leases are released.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Finished (`done`/`ignored`) events are deleted after this many days.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
    #[serde(default = "default_prune_interval_secs")]
    pub prune_interval_secs: u64,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            enabled: true,
            concurrency: default_concurrency(),
            poll_interval_ms: default_poll_interval_ms(),
            lease_secs: default_lease_secs(),
            max_attempts: default_max_attempts(),
            max_age_hours: default_max_age_hours(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_secs: default_backoff_max_secs(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            retention_days: default_retention_days(),
            prune_interval_secs: default_prune_interval_secs(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_concurrency() -> usize {
    8
}
fn default_poll_interval_ms() -> u64 {
    1_000
}
fn default_lease_secs() -> u64 {
    60
}
fn default_max_attempts() -> u32 {
    80
}
fn default_max_age_hours() -> u64 {
    72
}
fn default_backoff_base_ms() -> u64 {
    2_000
}
fn default_backoff_max_secs() -> u64 {
    3_600
}
fn default_shutdown_grace_secs() -> u64 {
    20
}
fn default_retention_days() -> u64 {
    30
}
fn default_prune_interval_secs() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when `JOURNAL_STREAM` says stderr is the journal, else text.
    #[default]
    Auto,
    Text,
    Json,
    Journald,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `stripe_hookd=debug`; `RUST_LOG` wins.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9091))
}
fn default_tolerance() -> u64 {
    300
}
fn default_pool_size() -> u32 {
    8
}
fn default_busy_timeout_ms() -> u64 {
    5_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_api_base() -> String {
    "https://api.stripe.com".to_owned()
}
fn default_api_version() -> String {
    "2025-03-31.basil".to_owned()
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_write_timeout_ms() -> u64 {
    10_000
}
fn default_retry_after_secs() -> u64 {
    10
}
fn default_max_batch() -> usize {
    512
}
fn default_queue_capacity() -> usize {
    8_192
}
fn default_shutdown_timeout_secs() -> u64 {
    30
}
fn default_log_level() -> String {
    "info".to_owned()
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

/// Builds the layered provider: file (if any) → `STRIPE_HOOKD_*` env → the
/// conventional Stripe env names → systemd credentials.
///
/// `config_path`: `Some(p)` must exist; `None` uses
/// `/etc/stripe-hookd/config.toml` when it exists.
pub fn figment(config_path: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut fig = Figment::new();
    match config_path {
        Some(path) => {
            if !path.exists() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            if default.exists() {
                fig = fig.merge(Toml::file_exact(default));
            }
        }
    }
    fig = fig.merge(Env::prefixed(ENV_PREFIX).split("__")).merge(
        Env::raw()
            .only(&[
                "STRIPE_WEBHOOK_SECRET",
                "STRIPE_API_KEY",
                "STRIPE_API_BASE",
                "DATABASE_URL",
            ])
            .map(|key| {
                match key.as_str() {
                    "STRIPE_WEBHOOK_SECRET" => "webhook_secret",
                    "STRIPE_API_KEY" => "stripe.api_key",
                    "STRIPE_API_BASE" => "stripe.api_base",
                    "DATABASE_URL" => "database.url",
                    other => other,
                }
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
pub fn merge_credentials(mut fig: Figment, dir: &Path) -> Result<Figment, ConfigError> {
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

/// Extracts and validates; tests use this with a TOML string.
pub fn from_figment(fig: Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = fig.extract().map_err(Box::new)?;
    raw.validate()
}

/// Parses a TOML document alone (no env): for tests and `check`.
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(Figment::from(Toml::string(toml)))
}

/// A validated endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub path: String,
    pub mode: Mode,
    pub secrets: Vec<SecretString>,
    pub tolerance_secs: u64,
}

/// The validated configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub admin_token: Option<SecretString>,
    pub state_dir: PathBuf,
    pub endpoints: Vec<Endpoint>,
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

/// `sk_test_…`/`rk_test_…` → test, `sk_live_…`/`rk_live_…` → live.
pub fn key_mode(key: &str) -> Option<Mode> {
    if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        Some(Mode::Test)
    } else if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        Some(Mode::Live)
    } else {
        None
    }
}

/// The state directory: systemd's `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/stripe-hookd`, else `~/.local/state/stripe-hookd`, else
/// `/var/lib/stripe-hookd`.
pub fn default_state_dir() -> PathBuf {
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
    pub fn validate(self) -> Result<Config, ConfigError> {
        let key_mode = match &self.stripe.api_key {
            Some(key) => {
                let key = key.expose_secret();
                if key.is_empty() {
                    return Err(invalid(
                        "stripe.api_key (STRIPE_API_KEY)",
                        "is empty: set it to a secret key from the Stripe Dashboard (sk_test_… or sk_live_…) or leave it unset",
                    ));
                }
                if key.starts_with("pk_") {
                    return Err(invalid(
                        "stripe.api_key (STRIPE_API_KEY)",
                        "is a publishable key (pk_…): use a secret key (sk_…) or a restricted key (rk_…)",
                    ));
                }
                if key.starts_with("whsec_") {
                    return Err(invalid(
                        "stripe.api_key (STRIPE_API_KEY)",
                        "is a webhook signing secret (whsec_…): that belongs in STRIPE_WEBHOOK_SECRET; the API key starts with sk_ or rk_",
                    ));
                }
                let mode = key_mode(key);
                if mode.is_none() {
                    return Err(invalid(
                        "stripe.api_key (STRIPE_API_KEY)",
                        "is not a Stripe secret key: expected sk_test_…, sk_live_…, rk_test_… or rk_live_…",
                    ));
                }
                mode
            }
            None => None,
        };

        let mut raw_endpoints = self.endpoints;
        if let Some(secret) = &self.webhook_secret {
            let secrets: Vec<SecretString> = secret
                .expose_secret()
                .split(',')
                .map(|s| SecretString::from(s.trim().to_owned()))
                .collect();
            match raw_endpoints
                .iter_mut()
                .find(|e| e.path == DEFAULT_ENDPOINT_PATH)
            {
                Some(existing) => existing.secrets = secrets,
                None => raw_endpoints.push(EndpointConfig {
                    name: Some("default".to_owned()),
                    path: DEFAULT_ENDPOINT_PATH.to_owned(),
                    mode: None,
                    secrets,
                    tolerance_secs: default_tolerance(),
                }),
            }
        }

        let mut endpoints: Vec<Endpoint> = Vec::with_capacity(raw_endpoints.len());
        for (i, ep) in raw_endpoints.into_iter().enumerate() {
            let key = |field: &str| format!("endpoints[{i}].{field}");
            if !ep.path.starts_with('/') || ep.path.contains(char::is_whitespace) {
                return Err(invalid(
                    key("path"),
                    format!(
                        "{:?} must be an absolute URL path such as /webhooks/stripe",
                        ep.path
                    ),
                ));
            }
            if ["/healthz", "/readyz"].contains(&ep.path.as_str()) {
                return Err(invalid(
                    key("path"),
                    format!("{} is reserved for health checks", ep.path),
                ));
            }
            if endpoints.iter().any(|e| e.path == ep.path) {
                return Err(invalid(
                    key("path"),
                    format!("{} is configured twice", ep.path),
                ));
            }
            if ep.secrets.is_empty() {
                return Err(invalid(
                    key("secrets"),
                    "No webhook secret value was provided. It should start with `whsec_` (Stripe Dashboard → Developers → Webhooks → your endpoint → Signing secret)",
                ));
            }
            for (j, s) in ep.secrets.iter().enumerate() {
                let s = s.expose_secret();
                if s.is_empty() {
                    return Err(invalid(
                        format!("endpoints[{i}].secrets[{j}]"),
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
                        format!("endpoints[{i}].secrets[{j}]"),
                        format!("a webhook signing secret starts with `whsec_`{hint}"),
                    ));
                }
            }
            if ep.tolerance_secs == 0 {
                return Err(invalid(
                    key("tolerance_secs"),
                    "must be at least 1 (0 would turn replay protection off); Stripe's SDKs use 300",
                ));
            }
            let mode = match (ep.mode, key_mode) {
                (Some(m), _) => m,
                (None, Some(m)) => m,
                (None, None) => {
                    return Err(invalid(
                        key("mode"),
                        "is not set and cannot be derived: set mode = \"test\" or \"live\", or set STRIPE_API_KEY (its sk_test_/sk_live_ prefix gives the mode)",
                    ))
                }
            };
            endpoints.push(Endpoint {
                name: ep.name.unwrap_or_else(|| ep.path.clone()),
                path: ep.path,
                mode,
                secrets: ep.secrets,
                tolerance_secs: ep.tolerance_secs,
            });
        }

        if let Some(token) = &self.admin_token {
            if token.expose_secret().len() < 16 {
                return Err(invalid(
                    "admin_token (STRIPE_HOOKD_ADMIN_TOKEN)",
                    "must be at least 16 characters; generate one with `openssl rand -hex 32`",
                ));
            }
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            return Err(invalid(
                "admin_listen (STRIPE_HOOKD_ADMIN_LISTEN)",
                "must differ from listen: the admin API is never served on the public listener",
            ));
        }
        if !self.stripe.api_base.starts_with("http://")
            && !self.stripe.api_base.starts_with("https://")
        {
            return Err(invalid(
                "stripe.api_base (STRIPE_API_BASE)",
                format!("{:?} is not an http(s) URL", self.stripe.api_base),
            ));
        }
        let intake = &self.intake;
        if intake.max_body_bytes < 1024 {
            return Err(invalid("intake.max_body_bytes", "must be at least 1024"));
        }
        if intake.max_batch == 0 || intake.queue_capacity == 0 || intake.writers == Some(0) {
            return Err(invalid(
                "intake",
                "max_batch, queue_capacity and writers must be at least 1",
            ));
        }
        if intake.write_timeout_ms == 0 {
            return Err(invalid("intake.write_timeout_ms", "must be at least 1"));
        }
        let runner = &self.runner;
        if runner.concurrency == 0 || runner.max_attempts == 0 || runner.poll_interval_ms == 0 {
            return Err(invalid(
                "runner",
                "concurrency, max_attempts and poll_interval_ms must be at least 1",
            ));
        }
        if runner.lease_secs < 2 {
            return Err(invalid(
                "runner.lease_secs",
                "must be at least 2 (a handler gets half the lease)",
            ));
        }
        if self.database.pool_size == 0 {
            return Err(invalid("database.pool_size", "must be at least 1"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(invalid(
                "log.level (STRIPE_HOOKD_LOG__LEVEL)",
                format!(
                    "{:?} is not a log filter such as \"info\" or \"stripe_hookd=debug\"",
                    self.log.level
                ),
            ));
        }

        Ok(Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            admin_token: self.admin_token,
            state_dir: self.state_dir.unwrap_or_else(default_state_dir),
            endpoints,
            database: self.database,
            stripe: self.stripe,
            intake: self.intake,
            runner: self.runner,
            entitlements: self.entitlements,
            schedule: self.schedule,
            log: self.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gives_the_documented_defaults() {
        let cfg = from_toml_str(
            r#"
            [[endpoints]]
            path = "/hooks"
            mode = "live"
            secrets = ["whsec_a", "whsec_b"]
            "#,
        )
        .expect("valid");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:9091");
        assert_eq!(cfg.endpoints[0].tolerance_secs, 300);
        assert_eq!(cfg.endpoints[0].secrets.len(), 2);
        assert_eq!(cfg.intake.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = from_toml_str("lisen = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn webhook_secret_defines_the_default_endpoint_with_the_key_mode() {
        let cfg = from_toml_str(
            r#"
            webhook_secret = "whsec_old, whsec_new"
            [stripe]
            api_key = "sk_live_abc"
            "#,
        )
        .expect("valid");
        let ep = &cfg.endpoints[0];
        assert_eq!(ep.path, DEFAULT_ENDPOINT_PATH);
        assert_eq!(ep.mode, Mode::Live);
        assert_eq!(ep.secrets.len(), 2);
        assert_eq!(ep.secrets[1].expose_secret(), "whsec_new");
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let cases = [
            ("webhook_secret = \"sk_test_x\"\n[stripe]\napi_key = \"sk_test_y\"", "whsec_"),
            ("webhook_secret = \"\"\n[stripe]\napi_key = \"sk_test_y\"", "No webhook secret value was provided"),
            ("webhook_secret = \"whsec_x\"", "mode"),
            ("[stripe]\napi_key = \"pk_test_x\"", "publishable"),
            (
                "[[endpoints]]\npath = \"/a\"\nmode = \"test\"\nsecrets = [\"whsec_a\"]\ntolerance_secs = 0",
                "tolerance_secs",
            ),
            ("listen = \"not an address\"", "listen"),
            ("admin_token = \"short\"", "16 characters"),
        ];
        for (toml, expected) in cases {
            let err = from_toml_str(toml).unwrap_err().to_string();
            assert!(err.contains(expected), "{toml:?} → {err}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let cfg = from_toml_str(
            "webhook_secret = \"whsec_topsecret\"\nadmin_token = \"0123456789abcdef-admin\"\n[stripe]\napi_key = \"sk_test_hidden\"\n[database]\nurl = \"postgres://u:pw@h/db\"",
        )
        .expect("valid");
        let debug = format!("{cfg:?}");
        for secret in [
            "whsec_topsecret",
            "0123456789abcdef-admin",
            "sk_test_hidden",
            "pw@h",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }

    #[test]
    fn credentials_override_file_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("webhook_secret"), "whsec_from_credential\n")
            .expect("write");
        std::fs::write(dir.path().join("stripe_api_key"), "sk_live_cred").expect("write");
        let fig = Figment::from(Toml::string("webhook_secret = \"whsec_from_file\""));
        let cfg = from_figment(merge_credentials(fig, dir.path()).expect("read")).expect("valid");
        assert_eq!(
            cfg.endpoints[0].secrets[0].expose_secret(),
            "whsec_from_credential"
        );
        assert_eq!(cfg.endpoints[0].mode, Mode::Live);
    }
}
