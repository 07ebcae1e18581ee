//! `stripe-hookd check`: a self-diagnosis an operator runs after install or
//! when something is off. Each check prints ok / warn / FAIL with the fix;
//! the exit code is non-zero when any check failed.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, ConfigError, Mode};
use crate::store::{DatabaseUrl, Store, StoreOptions};
use crate::stripe::{ClientOptions, StripeClient, StripeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    pub fix: Option<String>,
}

fn check(
    name: &'static str,
    verdict: Verdict,
    detail: impl Into<String>,
    fix: Option<&str>,
) -> Check {
    Check {
        name,
        verdict,
        detail: detail.into(),
        fix: fix.map(str::to_owned),
    }
}

/// Runs every check.
pub async fn run(config: Result<Config, ConfigError>) -> Vec<Check> {
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            return vec![check(
                "config",
                Verdict::Fail,
                e.to_string(),
                Some("correct the key named above in the config file or environment (docs/configuration.md lists every key)"),
            )]
        }
    };
    let mut checks = vec![check(
        "config",
        Verdict::Ok,
        format!(
            "{} endpoint(s), public {}, admin {}",
            config.endpoints.len(),
            config.listen,
            config.admin_listen
        ),
        None,
    )];
    checks.extend(endpoints(&config));
    checks.extend(database(&config).await);
    checks.extend(api_base(&config.stripe.api_base));
    let api = stripe_api(&config).await;
    let api_ok = api.verdict != Verdict::Fail;
    checks.push(api);
    if api_ok {
        checks.extend(stripe_endpoints(&config).await);
    }
    if config.admin_token.is_none() {
        checks.push(check(
            "admin",
            Verdict::Warn,
            "no admin token: the admin API and /metrics are off",
            Some("set STRIPE_HOOKD_ADMIN_TOKEN (or the admin_token credential) to a long random string: openssl rand -hex 32"),
        ));
    } else {
        checks.push(check(
            "admin",
            Verdict::Ok,
            format!("admin API on {}", config.admin_listen),
            None,
        ));
    }
    checks
}

fn endpoints(config: &Config) -> Vec<Check> {
    if config.endpoints.is_empty() {
        return vec![check(
            "endpoints",
            Verdict::Fail,
            "no webhook endpoint is configured",
            Some("set STRIPE_WEBHOOK_SECRET=whsec_… (Dashboard → Developers → Webhooks → your endpoint → Signing secret)"),
        )];
    }
    let key_mode = config.api_key_mode();
    config
        .endpoints
        .iter()
        .map(|ep| {
            let detail = format!("{} {} mode, {} secret(s), tolerance {} s", ep.path, ep.mode.as_str(), ep.secrets.len(), ep.tolerance_secs);
            match key_mode {
                Some(m) if m != ep.mode => check(
                    "endpoint",
                    Verdict::Fail,
                    format!("{detail}; but the API key is a {} key", m.as_str()),
                    Some("use the API key and the endpoint secret of the same mode (test and live have different keys and secrets)"),
                ),
                _ => check("endpoint", Verdict::Ok, detail, None),
            }
        })
        .collect()
}

async fn database(config: &Config) -> Vec<Check> {
    let url = config.database_url();
    // A check must not create what it checks: opening a SQLite file that
    // is not there would create it (and its directory), and a mistyped
    // path would then pass as an empty, freshly made database.
    if let Ok(DatabaseUrl::Sqlite(path)) = DatabaseUrl::parse(&url) {
        if !path.exists() {
            return vec![sqlite_not_yet_created(&path)];
        }
    }
    let options = StoreOptions {
        pool_size: 1,
        ..config.database.store_options()
    };
    let result = tokio::task::spawn_blocking(move || {
        let store = Store::open(&url, &options)?;
        let pending = store.pending_migrations()?;
        let through = match store.pooling() {
            Some(crate::store::Pooling::Transaction) => " (through a transaction pooler)",
            _ => "",
        };
        Ok::<_, crate::store::StoreError>((
            format!("{}{through}", store.target().redacted()),
            store.backend().as_str(),
            pending,
        ))
    })
    .await;
    match result {
        Ok(Ok((target, backend, pending))) => {
            let mut out = vec![check("database", Verdict::Ok, format!("{backend} at {target}"), None)];
            out.push(if pending.is_empty() {
                check("migrations", Verdict::Ok, "up to date", None)
            } else {
                check(
                    "migrations",
                    Verdict::Warn,
                    format!("{} pending: {}", pending.len(), pending.join(", ")),
                    Some("`stripe-hookd migrate` applies them (serve also applies them at start)"),
                )
            });
            out
        }
        Ok(Err(e)) => vec![check(
            "database",
            Verdict::Fail,
            e.to_string(),
            Some("check DATABASE_URL: that the Postgres server runs and accepts this user, or that the SQLite file's directory exists and is writable"),
        )],
        Err(e) => vec![check("database", Verdict::Fail, e.to_string(), None)],
    }
}

/// The SQLite file does not exist: whether `serve` could create it.
fn sqlite_not_yet_created(path: &Path) -> Check {
    let shown = format!("sqlite://{}", path.display());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // serve creates the missing directories below the nearest existing one.
    let Some(existing) = dir
        .ancestors()
        .find(|a| a.exists() || a.as_os_str().is_empty())
    else {
        return check(
            "database",
            Verdict::Fail,
            format!("{shown}: no directory above it exists"),
            Some(SQLITE_FIX),
        );
    };
    let existing = if existing.as_os_str().is_empty() {
        Path::new(".")
    } else {
        existing
    };
    if !existing.is_dir() {
        return check(
            "database",
            Verdict::Fail,
            format!(
                "{shown} cannot be created: {} is not a directory",
                existing.display()
            ),
            Some(SQLITE_FIX),
        );
    }
    match probe_writable(existing) {
        Ok(()) => check(
            "database",
            Verdict::Warn,
            format!("{shown} does not exist yet; `stripe-hookd serve` (or `migrate`) creates it and applies every migration"),
            Some("nothing to do before the first start; if the service has run before, DATABASE_URL points at the wrong file"),
        ),
        Err(e) => check(
            "database",
            Verdict::Fail,
            format!("{shown} cannot be created: {} is not writable: {e}", existing.display()),
            Some(SQLITE_FIX),
        ),
    }
}

const SQLITE_FIX: &str = "check DATABASE_URL: under systemd the database belongs in $STATE_DIRECTORY (/var/lib/stripe-hookd, StateDirectory=); elsewhere the SQLite file's directory must exist or be creatable, and be writable";

/// Whether a file can be created in `dir` (made and removed at once).
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".stripe-hookd-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// A warning when the API base has a path: the client appends `/v1/…`
/// itself, so `https://api.stripe.com/v1` sends every call to `/v1/v1/…`,
/// which Stripe answers with 404 (retried, but nothing is ever processed).
fn api_base(base: &str) -> Option<Check> {
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("", |i| &after_scheme[i..])
        .trim_end_matches('/');
    (!path.is_empty()).then(|| {
        check(
            "api-base",
            Verdict::Warn,
            format!("STRIPE_API_BASE {base} has a path ({path}): every call goes to {path}/v1/…, which Stripe answers with 404"),
            Some("set STRIPE_API_BASE to the scheme and host only, e.g. https://api.stripe.com (the /v1 is added per call)"),
        )
    })
}

async fn stripe_api(config: &Config) -> Check {
    let Some(options) = config.stripe.client_options() else {
        return check(
            "stripe-api",
            Verdict::Fail,
            "no API key: events are verified and stored but never processed",
            Some("set STRIPE_API_KEY to a secret key (sk_…) or a restricted key (rk_…) with read access"),
        );
    };
    let options = ClientOptions {
        max_retries: 0,
        timeout: Duration::from_secs(10),
        ..options
    };
    let client = match StripeClient::new(options) {
        Ok(c) => c,
        Err(e) => {
            return check(
                "stripe-api",
                Verdict::Fail,
                e.to_string(),
                Some("check STRIPE_API_KEY"),
            )
        }
    };
    let mode = match client.mode() {
        Mode::Test => "test mode",
        Mode::Live => "live mode",
    };
    match client.get("/v1/account", &[], None).await {
        Ok(res) => {
            let id = res.json.get("id").and_then(|v| v.as_str()).unwrap_or("?");
            let name = res
                .json
                .pointer("/settings/dashboard/display_name")
                .and_then(|v| v.as_str())
                .or_else(|| res.json.pointer("/business_profile/name").and_then(|v| v.as_str()));
            check(
                "stripe-api",
                Verdict::Ok,
                format!("{mode} key of account {id}{} at {}", name.map(|n| format!(" ({n})")).unwrap_or_default(), config.stripe.api_base),
                None,
            )
        }
        Err(StripeError::Forbidden { .. }) => check(
            "stripe-api",
            Verdict::Warn,
            format!("{mode} restricted key; it may not read the account (403), which is fine"),
            Some("make sure the key can read customers, subscriptions, invoices, payment intents, disputes, checkout sessions and events"),
        ),
        Err(e @ StripeError::Unauthorized { .. }) => check(
            "stripe-api",
            Verdict::Fail,
            format!("API key rejected: {e}"),
            Some("copy a current secret key from Dashboard → Developers → API keys (test and live keys differ)"),
        ),
        Err(e) => check(
            "stripe-api",
            Verdict::Fail,
            e.to_string(),
            Some("check STRIPE_API_BASE and that this machine can reach api.stripe.com over HTTPS (port 443)"),
        ),
    }
}

/// Compares the Stripe-side endpoint of each configured endpoint (found by
/// its URL's path; a thin endpoint among the event destinations) with what
/// the daemon needs: subscribed to every handled event type, enabled, at
/// the pinned API version (see `stripe-hookd setup`).
async fn stripe_endpoints(config: &Config) -> Vec<Check> {
    use crate::cli::setup::{compare, list_remote, Remote};
    let Some(options) = config.stripe.client_options() else {
        return Vec::new();
    };
    let options = ClientOptions {
        max_retries: 0,
        timeout: Duration::from_secs(10),
        ..options
    };
    let Ok(client) = StripeClient::new(options) else {
        return Vec::new();
    };
    let mut lists: [Option<Result<Vec<Remote>, StripeError>>; 2] = [None, None];
    let mut out = Vec::new();
    for ep in &config.endpoints {
        let slot = usize::from(ep.thin);
        if lists[slot].is_none() {
            lists[slot] = Some(list_remote(&client, ep.thin).await);
        }
        let kind = if ep.thin {
            "event destination"
        } else {
            "webhook endpoint"
        };
        let setup_fix = format!(
            "stripe-hookd setup --url https://<public host>{}{}",
            ep.path,
            if ep.thin { " --thin" } else { "" }
        );
        let remotes = match &lists[slot] {
            Some(Ok(remotes)) => remotes,
            Some(Err(e)) => {
                out.push(check(
                    "stripe-endpoint",
                    Verdict::Warn,
                    format!("{}: cannot list the {kind}s at Stripe: {e}", ep.path),
                    Some("a restricted key needs read access to webhook endpoints (and event destinations) for this check"),
                ));
                continue;
            }
            None => continue,
        };
        let mut candidates: Vec<&Remote> = remotes.iter().filter(|r| r.path() == ep.path).collect();
        candidates.sort_by_key(|r| !r.ours);
        let Some(remote) = candidates.first() else {
            out.push(check(
                "stripe-endpoint",
                Verdict::Warn,
                format!(
                    "no {kind} at Stripe delivers to a URL ending in {}",
                    ep.path
                ),
                Some(&setup_fix),
            ));
            continue;
        };
        let f = compare(remote, &config.stripe.api_version);
        let name = format!("{} {} ({})", kind, remote.id, remote.url);
        if f.disabled {
            let (detail, fix) = disabled(&name, remote, &setup_fix);
            out.push(check("stripe-endpoint", Verdict::Fail, detail, Some(&fix)));
        } else if !f.missing.is_empty() {
            out.push(check(
                "stripe-endpoint",
                Verdict::Fail,
                format!(
                    "{name} is not subscribed to {} event type(s) the handlers use: {}",
                    f.missing.len(),
                    f.missing.join(", ")
                ),
                Some(&setup_fix),
            ));
        } else if let Some(version) = &f.other_version {
            out.push(check(
                "stripe-endpoint",
                Verdict::Warn,
                format!(
                    "{name} sends events at API version {version}, the pin is {} (objects are re-fetched at the pin; forwarded payloads keep {version})",
                    config.stripe.api_version
                ),
                Some("docs/upgrading.md, \"Moving the Stripe API version pin\""),
            ));
        } else if let Some(details) = &remote.status_details {
            out.push(check(
                "stripe-endpoint",
                Verdict::Warn,
                format!("{name} is enabled, and Stripe reports status details for it: {details}"),
                Some("read them in the Dashboard (Developers → Event destinations → this destination) and act on what they say"),
            ));
        } else if f.all_events || !f.extra.is_empty() {
            // More than the handlers need is not a fault (a destination may
            // forward them to the app), and `setup` never narrows it.
            out.push(check(
                "stripe-endpoint",
                Verdict::Ok,
                if f.all_events {
                    format!("{name}: enabled, every event type (*): those no handler takes are stored, ignored, and forwarded to destinations that list them")
                } else {
                    format!("{name}: enabled, every handled event type, and {} more that no handler takes (stored, ignored, and forwarded to destinations that list them): {}", f.extra.len(), f.extra.join(", "))
                },
                None,
            ));
        } else {
            out.push(check(
                "stripe-endpoint",
                Verdict::Ok,
                format!(
                    "{name}: enabled, every handled event type{}",
                    remote
                        .api_version
                        .as_deref()
                        .map(|v| format!(", API version {v}"))
                        .unwrap_or_default()
                ),
                None,
            ));
        }
    }
    out
}

/// What `check` says of a disabled webhook endpoint or event destination:
/// why (an event destination's `status_details.disabled.reason`), and what
/// to do. Nothing is delivered while it is disabled; what Stripe sent
/// meanwhile is fetched by catch-up once it is enabled again.
fn disabled(name: &str, remote: &crate::cli::setup::Remote, setup_fix: &str) -> (String, String) {
    let catch_up = "then run `stripe-hookd catch-up` for the events of the time it was off";
    match remote.disabled_reason.as_deref() {
        Some("user") => (
            format!("{name} is disabled at Stripe (status_details.disabled.reason: user — someone turned it off in the Dashboard or through the API): nothing is delivered"),
            format!("if it was not turned off on purpose, enable it again ({setup_fix} does, or Dashboard → Developers → Event destinations → Enable), {catch_up}"),
        ),
        Some(reason) => (
            format!("{name} is disabled at Stripe (status_details.disabled.reason: {reason}): nothing is delivered"),
            format!("remove the cause Stripe names, enable it again ({setup_fix} does), {catch_up}"),
        ),
        None if remote.thin => (
            format!("{name} is disabled at Stripe (no reason given): nothing is delivered"),
            format!("enable it again ({setup_fix} does), {catch_up}"),
        ),
        None => (
            format!("{name} is disabled at Stripe: nothing is delivered (Stripe disables an endpoint that has failed deliveries for several days, or someone turned it off)"),
            format!("fix what made deliveries fail (journalctl -u stripe-hookd; the Dashboard shows the failed deliveries), enable it again ({setup_fix} does), {catch_up}"),
        ),
    }
}

/// Prints the checks; returns whether all passed (warnings pass).
pub(crate) fn print(checks: &[Check], json: bool) -> bool {
    if json {
        println!("{}", serde_json::to_string(checks).unwrap_or_default());
    } else {
        for c in checks {
            let tag = match c.verdict {
                Verdict::Ok => "ok  ",
                Verdict::Warn => "warn",
                Verdict::Fail => "FAIL",
            };
            println!("{tag}  {:<11} {}", c.name, c.detail);
            if let Some(fix) = &c.fix {
                if c.verdict != Verdict::Ok {
                    println!("      {:<11} → fix: {fix}", "");
                }
            }
        }
    }
    checks.iter().all(|c| c.verdict != Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_base_with_a_path_is_warned_about() {
        for base in [
            "https://api.stripe.com/v1",
            "https://api.stripe.com/v1/",
            "http://127.0.0.1:8080/stripe",
        ] {
            let c = api_base(base).unwrap_or_else(|| panic!("{base}: no warning"));
            assert_eq!(c.verdict, Verdict::Warn, "{base}");
        }
        for base in [
            "https://api.stripe.com",
            "https://api.stripe.com/",
            "http://127.0.0.1:8080",
        ] {
            assert!(api_base(base).is_none(), "{base}");
        }
    }
}
