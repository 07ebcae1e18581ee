//! Reload without restart: on SIGHUP (`systemctl reload stripe-hookd`) the
//! configuration is loaded again, by the same loader as at start (defaults →
//! file → environment → credentials), checked, and applied:
//!
//! ```text
//! SIGHUP ─▶ RELOADING=1 ─▶ load + validate ─▶ compare with what runs
//!             │                 │ error               │ a fixed key changed
//!             │                 ▼                     ▼
//!             │            refused: error log with the fix, the old
//!             │            configuration stays, reload failure counted
//!             ▼ ok
//!   log.level ─▶ endpoints' signing secrets ─▶ destinations ─▶ admin token ─▶ READY=1
//! ```
//!
//! What reloads: each endpoint's signing secrets (`[[endpoints]] secrets`,
//! `webhook_secret`), the destinations (the list, urls, secrets, headers,
//! event filters and every other destination key), `log.level` and the
//! admin token (`admin_token`: a rotation ends every inspector session
//! started with the old one). Each sits in a [`Live`] cell: a request or
//! delivery under way finishes with the values it started with, the next
//! one takes the new ones, and no listener or connection is touched.
//!
//! What does not: everything else (listeners, database, Stripe API key,
//! intake, runner, forward, schedule, log format, `admin_session_hours`,
//! turning the admin API on or off) and an endpoint's path, name, mode,
//! tolerance, `thin` and `connect` (catch-up and the drift sweep are set up
//! from them at start). A change to any of them is refused with the keys
//! named and "needs a restart"; nothing of that reload applies, and the
//! operator reverts it or restarts. Nothing is reported as reloaded that
//! did not change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use figment::value::{Dict, Value};
use figment::Figment;
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::auth::{AdminToken, LiveToken};
use crate::config::{self, After, Config, ConfigError, Destination, Endpoint};
use crate::forward::Forwarder;
use crate::intake::EndpointState;
use crate::live::Live;
use crate::systemd;
use crate::telemetry::{self, LevelChange, LevelError};

/// Reloads, by outcome (`applied`, `refused`).
pub(crate) const RELOADS: &str = "hookd_config_reloads_total";
/// Reloads refused (an invalid file, or a key that needs a restart).
pub(crate) const RELOAD_FAILURES: &str = "hookd_config_reload_failures_total";
/// When the configuration in force was loaded (start or last applied reload).
pub(crate) const LOADED_AT: &str = "hookd_config_loaded_timestamp_seconds";
/// 1 when the last reload was applied (or none was tried), 0 when refused.
pub(crate) const LAST_RELOAD_OK: &str = "hookd_config_last_reload_successful";

/// The keys a reload applies. Every other key of the merged configuration
/// must stay as it was at start.
/// Each is compared field by field in [`plan`].
const RELOADABLE: &[&str] = &[
    "webhook_secret",
    "endpoints",
    "destinations",
    "log.level",
    "admin_token",
];

/// A loaded, validated configuration with the merged values of its fixed
/// keys (to tell what a reload would change).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    fixed: Dict,
}

/// Loads the configuration like [`config::load`], keeping what a reload
/// compares against.
pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    Loaded::from_figment(config::figment(path)?)
}

impl Loaded {
    /// Validates `fig` (which starts from [`config::defaults`]).
    pub fn from_figment(fig: Figment) -> Result<Loaded, ConfigError> {
        let config = config::from_figment(fig.clone())?;
        let mut fixed: Dict = fig.extract().map_err(Box::new)?;
        for key in RELOADABLE {
            remove(&mut fixed, key);
        }
        Ok(Loaded { config, fixed })
    }
}

fn remove(dict: &mut Dict, dotted: &str) {
    match dotted.split_once('.') {
        None => {
            dict.remove(dotted);
        }
        Some((head, rest)) => {
            if let Some(Value::Dict(_, inner)) = dict.get_mut(head) {
                remove(inner, rest);
            }
        }
    }
}

/// Why a reload was refused; the configuration in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("{} cannot change on reload: needs a restart", keys.join(", "))]
    NeedsRestart { keys: Vec<String> },
    #[error("log.level: {0}")]
    Level(#[from] LevelError),
}

impl ReloadError {
    /// What the operator does about it.
    pub fn fix(&self) -> &'static str {
        match self {
            ReloadError::Invalid(_) | ReloadError::Level(_) => {
                "fix the configuration and run `systemctl reload stripe-hookd` again (`stripe-hookd check` shows every problem)"
            }
            ReloadError::NeedsRestart { .. } => {
                "revert these keys and reload again, or apply them with `systemctl restart stripe-hookd` (a restart drops no event Stripe was answered 2xx for)"
            }
        }
    }
}

/// The parts of the running daemon that a reload swaps.
#[derive(Clone)]
pub struct Targets {
    /// Every endpoint, in configuration order.
    pub endpoints: Vec<Arc<EndpointState>>,
    /// The admin listener's token; `None` when it is off.
    pub admin_token: Option<LiveToken>,
    /// `None` when no destination was configured at start (then no
    /// forwarder runs and adding one needs a restart).
    pub destinations: Option<DestinationTargets>,
}

#[derive(Clone)]
pub struct DestinationTargets {
    /// What the intake's and runner's delivery hooks read.
    pub cell: Live<Vec<Destination>>,
    pub forwarder: Arc<Forwarder>,
    pub wake: Arc<Notify>,
}

/// How far back a switch to `received` looks for events finished under the
/// old setting (recording is once per event × destination: looking too far
/// back records nothing twice).
const SWITCH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// The new destinations that follow `received` where they followed
/// `reconciled`: the finish no longer records their deliveries, and the
/// intake recorded none for the events already in the outbox.
fn switched_to_received(old: &[Destination], new: &[Destination]) -> Vec<Destination> {
    new.iter()
        .filter(|d| d.after == After::Received)
        .filter(|d| {
            old.iter()
                .any(|o| o.name == d.name && o.after == After::Reconciled)
        })
        .cloned()
        .collect()
}

/// Records the deliveries of the events in flight for destinations that
/// switched to `received` (on a blocking thread; logged either way, as
/// nothing the operator asked for may vanish silently).
fn record_switched(store: crate::store::Store, switched: Vec<Destination>, since: i64) {
    let names: Vec<String> = switched.iter().map(|d| d.name.clone()).collect();
    let run = move || match crate::forward::record_switched(&store, &switched, since) {
        Ok(events) => tracing::info!(
            destinations = %names.join(","),
            events_looked_at = events,
            "destinations now follow received: the events in flight are recorded for them"
        ),
        Err(e) => tracing::error!(
            destinations = %names.join(","),
            error = %e,
            "destinations now follow received, but recording the events in flight for them failed: those events are not forwarded to them"
        ),
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(run)),
        Err(_) => run(),
    }
}

/// What a reload would change, or why it cannot.
pub(crate) fn plan(
    current: &Loaded,
    new: &Loaded,
    can_forward: bool,
) -> Result<Vec<String>, ReloadError> {
    let mut fixed = Vec::new();
    diff(&current.fixed, &new.fixed, "", &mut fixed);
    let (old_eps, new_eps) = (&current.config.endpoints, &new.config.endpoints);
    if old_eps.len() != new_eps.len() || old_eps.iter().zip(new_eps).any(|(a, b)| a.path != b.path)
    {
        fixed.push(format!(
            "the endpoints' paths (were {}, now {})",
            paths(old_eps),
            paths(new_eps)
        ));
    } else {
        for (a, b) in old_eps.iter().zip(new_eps) {
            for field in fixed_endpoint_fields(a, b) {
                fixed.push(format!("endpoint {}: {field}", a.path));
            }
        }
    }
    let (old_dests, new_dests) = (&current.config.destinations, &new.config.destinations);
    if !can_forward && !new_dests.is_empty() {
        fixed.push("destinations (none was configured at start: the first one needs a restart to start the forwarder)".to_owned());
    }
    let token_rotated = match (&current.config.admin_token, &new.config.admin_token) {
        (Some(a), Some(b)) => a.expose_secret() != b.expose_secret(),
        (None, None) => false,
        (None, Some(_)) => {
            fixed.push(
                "admin_token (the admin API was off at start: turning it on needs a restart)"
                    .to_owned(),
            );
            false
        }
        (Some(_), None) => {
            fixed.push(
                "admin_token (removing it turns the admin API off: that needs a restart)"
                    .to_owned(),
            );
            false
        }
    };
    if !fixed.is_empty() {
        return Err(ReloadError::NeedsRestart { keys: fixed });
    }

    let mut changes = Vec::new();
    for (a, b) in old_eps.iter().zip(new_eps) {
        if secrets(&a.secrets) != secrets(&b.secrets) {
            changes.push(format!(
                "endpoint {}: {} signing secret(s)",
                b.name,
                b.secrets.len()
            ));
        }
    }
    for d in new_dests {
        match old_dests.iter().find(|o| o.name == d.name) {
            None => changes.push(format!("destination {}: added", d.name)),
            Some(o) if fingerprint(o) != fingerprint(d) => {
                changes.push(format!("destination {}: changed", d.name));
            }
            Some(_) => {}
        }
    }
    for o in old_dests {
        if !new_dests.iter().any(|d| d.name == o.name) {
            changes.push(format!("destination {}: removed", o.name));
        }
    }
    if current.config.log.level != new.config.log.level {
        changes.push(format!("log.level: {}", new.config.log.level));
    }
    if token_rotated {
        changes.push(
            "admin_token: rotated (inspector sessions started with the old one end)".to_owned(),
        );
    }
    Ok(changes)
}

/// The fields of an endpoint that cannot change on reload and did. Every
/// field is named here (the destructuring does not compile without a new
/// one): a field is either applied by [`Reloader::reload`] or refused.
fn fixed_endpoint_fields(a: &Endpoint, b: &Endpoint) -> Vec<&'static str> {
    let Endpoint {
        name,
        // Compared as the list of paths by the caller.
        path: _,
        mode,
        // Applied live (`EndpointState::set_secrets`).
        secrets: _,
        tolerance_secs,
        thin,
        connect,
    } = a;
    [
        ("name", *name == b.name),
        ("mode", *mode == b.mode),
        ("tolerance_secs", *tolerance_secs == b.tolerance_secs),
        // Catch-up's and the drift sweep's sources are set up at start.
        ("thin", *thin == b.thin),
        ("connect", *connect == b.connect),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(field, _)| field)
    .collect()
}

/// The dotted keys whose merged values differ.
fn diff(old: &Dict, new: &Dict, prefix: &str, out: &mut Vec<String>) {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let dotted = format!("{prefix}{key}");
        match (old.get(key), new.get(key)) {
            (Some(Value::Dict(_, a)), Some(Value::Dict(_, b))) => {
                diff(a, b, &format!("{dotted}."), out);
            }
            (a, b) if a != b => out.push(dotted),
            _ => {}
        }
    }
}

fn paths(endpoints: &[Endpoint]) -> String {
    let paths: Vec<&str> = endpoints.iter().map(|e| e.path.as_str()).collect();
    paths.join(" ")
}

fn secrets(secrets: &[secrecy::SecretString]) -> Vec<&str> {
    secrets.iter().map(|s| s.expose_secret()).collect()
}

/// Everything of a destination, secrets included, to tell a change.
fn fingerprint(d: &Destination) -> String {
    let headers: Vec<(&String, &str)> = d
        .headers
        .iter()
        .map(|(k, v)| (k, v.expose_secret()))
        .collect();
    let signing: Vec<&str> = d.signing_secrets().map(|s| s.expose_secret()).collect();
    format!("{d:?} {signing:?} {headers:?}")
}

/// Applies reloads to the running daemon.
pub struct Reloader {
    path: Option<PathBuf>,
    current: Loaded,
    targets: Targets,
    /// [`load`]; unit tests load without the process environment.
    loader: fn(Option<&Path>) -> Result<Loaded, ConfigError>,
}

impl Reloader {
    /// `current` is what the daemon runs with; `path` the `--config` it
    /// was started with (`None`: the default file when it exists).
    pub fn new(path: Option<PathBuf>, current: Loaded, targets: Targets) -> Reloader {
        metrics::gauge!(LOADED_AT).set(crate::store::now_ms() as f64 / 1000.0);
        metrics::gauge!(LAST_RELOAD_OK).set(1.0);
        Reloader {
            path,
            current,
            targets,
            loader: load,
        }
    }

    /// Loads the configuration again and applies it, or refuses it and
    /// leaves everything as it was. Returns what changed.
    pub fn reload(&mut self) -> Result<Vec<String>, ReloadError> {
        let new = (self.loader)(self.path.as_deref())?;
        let changes = plan(&self.current, &new, self.targets.destinations.is_some())?;
        // The only step that can fail goes first, so a failure changes nothing.
        match telemetry::set_level(&new.config.log.level)? {
            LevelChange::RustLogWins if self.current.config.log.level != new.config.log.level => {
                tracing::warn!("log.level changed but RUST_LOG is set and wins: unset it (and restart) to use log.level");
            }
            _ => {}
        }
        for (state, endpoint) in self.targets.endpoints.iter().zip(&new.config.endpoints) {
            state.set_secrets(&endpoint.secrets);
        }
        if let Some(d) = &self.targets.destinations {
            let switched =
                switched_to_received(&self.current.config.destinations, &new.config.destinations);
            let since = crate::store::now_ms() - SWITCH_MARGIN_MS;
            d.cell.set(new.config.destinations.clone());
            d.forwarder
                .set_destinations(new.config.destinations.clone());
            if !switched.is_empty() {
                record_switched(d.forwarder.store().clone(), switched, since);
            }
            d.wake.notify_one();
        }
        if let (Some(cell), Some(token)) = (&self.targets.admin_token, &new.config.admin_token) {
            let token = AdminToken::new(token.expose_secret());
            if *cell.get() != token {
                cell.set(token);
            }
        }
        self.current = new;
        Ok(changes)
    }

    /// One reload as SIGHUP runs it: systemd told, the outcome logged and
    /// counted. Returns whether it was applied.
    pub fn reload_and_report(&mut self) -> bool {
        let started = Instant::now();
        let config = self
            .path
            .as_deref()
            .unwrap_or(Path::new(config::DEFAULT_CONFIG_PATH))
            .display()
            .to_string();
        tracing::info!(config = %config, "reloading the configuration");
        systemd::reloading();
        // Loading reads a few small files: quick enough for the reactor.
        let result = self.reload();
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(changes) => {
                metrics::counter!(RELOADS, "outcome" => "applied").increment(1);
                metrics::gauge!(LOADED_AT).set(crate::store::now_ms() as f64 / 1000.0);
                metrics::gauge!(LAST_RELOAD_OK).set(1.0);
                let changes = if changes.is_empty() {
                    "nothing".to_owned()
                } else {
                    changes.join("; ")
                };
                tracing::info!(config = %config, changes = %changes, duration_ms, "configuration reloaded");
                systemd::reloaded("accepting webhooks; configuration reloaded");
                true
            }
            Err(e) => {
                metrics::counter!(RELOADS, "outcome" => "refused").increment(1);
                metrics::counter!(RELOAD_FAILURES).increment(1);
                metrics::gauge!(LAST_RELOAD_OK).set(0.0);
                tracing::error!(
                    config = %config,
                    error = %e,
                    fix = e.fix(),
                    duration_ms,
                    "configuration reload refused, still running with the previous configuration: {e}; {}",
                    e.fix()
                );
                systemd::reloaded("accepting webhooks; the last reload was refused (see the log)");
                false
            }
        }
    }

    /// Reloads on every SIGHUP until `shutdown`. `hangup` is installed
    /// before the daemon says it is ready (SIGHUP's default would end it).
    pub async fn run(
        mut self,
        mut hangup: tokio::signal::unix::Signal,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                got = hangup.recv() => {
                    if got.is_none() {
                        return Ok(());
                    }
                    tracing::info!(signal = "SIGHUP", "signal received");
                    self.reload_and_report();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Toml};

    use super::*;

    const A: &str = "whsec_aaaaaaaa";
    const B: &str = "whsec_bbbbbbbb";

    fn loaded(toml: &str) -> Loaded {
        Loaded::from_figment(config::defaults().merge(Toml::string(toml))).expect("valid config")
    }

    fn endpoint(secrets: &str) -> String {
        format!(
            "[[endpoints]]\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [{secrets}]\n"
        )
    }

    #[test]
    fn secrets_destinations_and_the_log_level_reload() {
        let old = loaded(&endpoint(&format!("\"{A}\"")));
        let new = loaded(&format!(
            "{}[log]\nlevel = \"debug\"\n",
            endpoint(&format!("\"{A}\", \"{B}\""))
        ));
        let changes = plan(&old, &new, true).expect("reloadable");
        assert_eq!(
            changes,
            vec![
                "endpoint /webhooks/stripe: 2 signing secret(s)".to_owned(),
                "log.level: debug".to_owned()
            ]
        );
        assert_eq!(plan(&old, &old, true).expect("same"), Vec::<String>::new());
    }

    #[test]
    fn a_destination_added_changed_or_removed_is_named() {
        let dest = |name: &str, url: &str, secret: &str| {
            format!("[[destinations]]\nname = \"{name}\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n")
        };
        let ep = endpoint(&format!("\"{A}\""));
        let old = loaded(&format!(
            "{ep}{}{}",
            dest("app", "http://127.0.0.1:1/a", "whsec_app1"),
            dest("gone", "http://127.0.0.1:1/g", "whsec_gone")
        ));
        let new = loaded(&format!(
            "{ep}{}{}",
            dest("app", "http://127.0.0.1:1/a", "whsec_app2"),
            dest("new", "http://127.0.0.1:1/n", "whsec_new1")
        ));
        let changes = plan(&old, &new, true).expect("reloadable");
        assert_eq!(
            changes,
            vec![
                "destination app: changed".to_owned(),
                "destination new: added".to_owned(),
                "destination gone: removed".to_owned(),
            ],
            "a changed secret alone counts as a change"
        );
        // Rolling: the new secret with the old one kept as a previous
        // secret, then a previous secret replaced: each a change.
        let rolling = |previous: &str| {
            loaded(&format!(
                "{ep}{}previous_secrets = [\"{previous}\"]\n",
                dest("app", "http://127.0.0.1:1/a", "whsec_app2")
            ))
        };
        let only_new = loaded(&format!(
            "{ep}{}",
            dest("app", "http://127.0.0.1:1/a", "whsec_app2")
        ));
        for (from, to) in [
            (&only_new, &rolling("whsec_app1")),
            (&rolling("whsec_app1"), &rolling("whsec_app0")),
            (&rolling("whsec_app1"), &only_new),
        ] {
            assert_eq!(
                plan(from, to, true).expect("reloadable"),
                vec!["destination app: changed".to_owned()]
            );
        }
        let none = loaded(&ep);
        match plan(&none, &new, false) {
            Err(ReloadError::NeedsRestart { keys }) => {
                assert!(keys[0].starts_with("destinations"), "{keys:?}");
            }
            other => panic!("the first destination needs a restart: {other:?}"),
        }
    }

    #[test]
    fn fixed_keys_are_refused_by_name_secrets_included() {
        let ep = endpoint(&format!("\"{A}\""));
        let old = loaded(&format!(
            "listen = \"127.0.0.1:8080\"\n{ep}[stripe]\napi_key = \"sk_test_one\"\n"
        ));
        let new = loaded(&format!(
            "listen = \"127.0.0.1:8081\"\n{ep}[stripe]\napi_key = \"sk_test_two\"\n[intake]\nmax_batch = 7\n"
        ));
        match plan(&old, &new, true) {
            Err(ReloadError::NeedsRestart { keys }) => assert_eq!(
                keys,
                vec!["intake.max_batch", "listen", "stripe.api_key"],
                "every changed fixed key, the API key (a secret) too"
            ),
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn an_endpoints_path_or_mode_is_fixed() {
        let old = loaded(&endpoint(&format!("\"{A}\"")));
        let moved = loaded(&format!(
            "[[endpoints]]\npath = \"/hooks\"\nmode = \"test\"\nsecrets = [\"{A}\"]\n"
        ));
        let live = loaded(&format!(
            "[[endpoints]]\npath = \"/webhooks/stripe\"\nmode = \"live\"\nsecrets = [\"{A}\"]\n"
        ));
        for (new, want) in [
            (moved, "the endpoints' paths"),
            (live, "endpoint /webhooks/stripe: mode"),
        ] {
            match plan(&old, &new, true) {
                Err(ReloadError::NeedsRestart { keys }) => {
                    assert!(keys[0].starts_with(want), "{keys:?}");
                }
                other => panic!("refused: {other:?}"),
            }
        }
    }

    #[test]
    fn an_endpoints_thin_or_connect_is_fixed() {
        let old = loaded(&endpoint(&format!("\"{A}\"")));
        for key in ["thin", "connect"] {
            let new = loaded(&format!("{}{key} = true\n", endpoint(&format!("\"{A}\""))));
            match plan(&old, &new, true) {
                Err(e @ ReloadError::NeedsRestart { .. }) => {
                    assert_eq!(
                        e.to_string(),
                        format!("endpoint /webhooks/stripe: {key} cannot change on reload: needs a restart")
                    );
                }
                other => panic!("{key} refused: {other:?}"),
            }
        }
    }

    #[test]
    fn the_admin_token_rotates_but_is_not_turned_on_or_off() {
        let ep = endpoint(&format!("\"{A}\""));
        let with = |token: &str| loaded(&format!("admin_token = \"{token}\"\n{ep}"));
        let (one, two, none) = (
            with("admin-token-one-0123456789"),
            with("admin-token-two-0123456789"),
            loaded(&ep),
        );
        let changes = plan(&one, &two, true).expect("a rotation reloads");
        assert_eq!(
            changes,
            vec!["admin_token: rotated (inspector sessions started with the old one end)"]
        );
        assert!(!changes[0].contains("admin-token"), "never the token");
        for (from, to) in [(&none, &one), (&one, &none)] {
            match plan(from, to, true) {
                Err(ReloadError::NeedsRestart { keys }) => {
                    assert!(keys[0].starts_with("admin_token ("), "{keys:?}");
                }
                other => panic!("needs a restart: {other:?}"),
            }
        }
    }

    #[test]
    fn an_invalid_file_is_refused_with_the_key_to_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, endpoint(&format!("\"{A}\""))).expect("write");
        // The file over the defaults, without the process environment.
        fn file_only(path: Option<&Path>) -> Result<Loaded, ConfigError> {
            let path = path.expect("a path");
            Loaded::from_figment(config::defaults().merge(Toml::file_exact(path)))
        }
        let current = file_only(Some(&path)).expect("valid");
        let state = Arc::new(EndpointState::new(current.config.endpoints[0].clone()));
        let mut reloader = Reloader::new(
            Some(path.clone()),
            current,
            Targets {
                endpoints: vec![Arc::clone(&state)],
                admin_token: None,
                destinations: None,
            },
        );
        reloader.loader = file_only;
        std::fs::write(&path, endpoint("\"sk_test_oops\"")).expect("write");
        let error = reloader.reload().expect_err("refused");
        assert!(
            error.to_string().contains("endpoints[0].secrets[0]"),
            "{error}"
        );
        assert!(!reloader.reload_and_report(), "reported as refused");

        std::fs::write(&path, endpoint(&format!("\"{B}\""))).expect("write");
        let changes = reloader.reload().expect("applied");
        assert_eq!(
            changes,
            vec!["endpoint /webhooks/stripe: 1 signing secret(s)"]
        );
    }
}
