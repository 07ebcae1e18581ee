//! `stripe-hookd setup --url https://host/webhooks/stripe [--thin]`: creates
//! or updates the Stripe side of an endpoint — a webhook endpoint
//! (`/v1/webhook_endpoints`, snapshot events at the pinned API version) or,
//! with `--thin`, an event destination (`/v2/core/event_destinations`, thin
//! events) — subscribed to exactly the event types the handlers use
//! ([`crate::reconcile::event_types`]).
//!
//! Idempotent: it finds its own endpoint again (the one with its metadata
//! and this URL) and creates one only when none exists. It only ever adds:
//! an event type the handlers need and the endpoint lacks, and turning a
//! disabled endpoint on again. It never removes a type, never narrows `*`
//! (the app behind a destination may want every type), and never touches
//! an endpoint with this URL that it did not create unless told to
//! (`--adopt`). The dry run and the normal run print the exact change.
//!
//! Stripe shows a signing secret only in the answer that creates the
//! endpoint, so the secret is printed (or written with `--secret-file`)
//! then, and never again: the file's directory is checked before anything
//! is created, and if the write still fails the secret is printed instead.
//!
//! The comparison of a Stripe-side endpoint with what the daemon needs is
//! shared with `check`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;
use crate::reconcile::event_types;
use crate::stripe::{Priority, StripeClient, StripeError};

/// The metadata every endpoint made by `setup` carries.
pub const METADATA_KEY: &str = "managed_by";
pub const METADATA_VALUE: &str = "stripe-hookd";

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The public URL Stripe delivers to, e.g. https://hooks.example.com/webhooks/stripe.
    #[arg(long)]
    pub url: String,
    /// An event destination with thin events (set `thin = true` on the endpoint in the config).
    #[arg(long)]
    pub thin: bool,
    /// Write the new signing secret here (mode 0600) instead of printing it, e.g.
    /// /etc/stripe-hookd/credentials/webhook_secret (the systemd unit's credential).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Show what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Let setup add what it lacks to an endpoint with this URL that it did
    /// not create (it never removes a type), and mark it as setup's.
    #[arg(long)]
    pub adopt: bool,
    #[arg(long)]
    pub json: bool,
}

/// A webhook endpoint or event destination as Stripe holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Remote {
    pub id: String,
    pub url: String,
    pub enabled_events: Vec<String>,
    /// Webhook endpoints only (thin payloads are unversioned).
    pub api_version: Option<String>,
    pub disabled: bool,
    /// Why Stripe says it is disabled (an event destination's
    /// `status_details.disabled.reason`: `user`, …); webhook endpoints say
    /// nothing.
    pub disabled_reason: Option<String>,
    /// Any other `status_details` Stripe reports for an event destination
    /// (none are published besides `disabled` today): shown by `check`.
    pub status_details: Option<Value>,
    pub thin: bool,
    /// Made by `setup` (carries its metadata).
    pub ours: bool,
}

impl Remote {
    /// A `/v1/webhook_endpoints` object.
    pub fn from_v1(v: &Value) -> Option<Remote> {
        Some(Remote {
            id: v.get("id")?.as_str()?.to_owned(),
            url: v.get("url")?.as_str()?.to_owned(),
            enabled_events: strings(v.get("enabled_events")),
            api_version: v
                .get("api_version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            disabled: v.get("status").and_then(Value::as_str) == Some("disabled"),
            disabled_reason: None,
            status_details: None,
            thin: false,
            ours: is_ours(v),
        })
    }

    /// A `/v2/core/event_destinations` object of type `webhook_endpoint`,
    /// retrieved or listed with `include=webhook_endpoint.url` (without it
    /// Stripe answers `url: null`, and this is `None`).
    pub fn from_v2(v: &Value) -> Option<Remote> {
        if v.get("type").and_then(Value::as_str) != Some("webhook_endpoint") {
            return None;
        }
        let details = v.get("status_details").filter(|d| !d.is_null());
        let disabled_reason = details
            .and_then(|d| d.pointer("/disabled/reason"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        // What else Stripe says about its status (a key other than
        // `disabled`, with a value).
        let status_details = details
            .and_then(Value::as_object)
            .map(|d| {
                d.iter()
                    .filter(|(k, v)| k.as_str() != "disabled" && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<serde_json::Map<String, Value>>()
            })
            .filter(|d| !d.is_empty())
            .map(Value::Object);
        Some(Remote {
            id: v.get("id")?.as_str()?.to_owned(),
            url: v.pointer("/webhook_endpoint/url")?.as_str()?.to_owned(),
            enabled_events: strings(v.get("enabled_events")),
            api_version: v
                .get("snapshot_api_version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            disabled: v.get("status").and_then(Value::as_str) == Some("disabled"),
            disabled_reason,
            status_details,
            thin: v.get("event_payload").and_then(Value::as_str) == Some("thin"),
            ours: is_ours(v),
        })
    }

    /// The URL's path (`/webhooks/stripe`), to match a configured endpoint.
    pub fn path(&self) -> &str {
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        rest.find('/').map_or("/", |i| &rest[i..])
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn is_ours(v: &Value) -> bool {
    v.pointer(&format!("/metadata/{METADATA_KEY}"))
        .and_then(Value::as_str)
        == Some(METADATA_VALUE)
}

/// How a Stripe-side endpoint differs from what the daemon needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// Handled types it is not subscribed to.
    pub missing: Vec<String>,
    /// Types it sends that no handler takes (stored and ignored).
    pub extra: Vec<String>,
    /// `*`: every type.
    pub all_events: bool,
    /// Its API version, when it is not the pin.
    pub other_version: Option<String>,
    pub disabled: bool,
    /// Stripe's reason, when it is a disabled event destination.
    pub disabled_reason: Option<String>,
}

/// What `setup` changes on an endpoint that exists: it only adds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Handled types it lacks, added to the ones it has.
    pub add_events: Vec<String>,
    /// It is disabled: turn it on again.
    pub enable: bool,
    /// Made elsewhere, taken over with `--adopt`: setup's metadata is added
    /// (its description and other metadata are left as they are).
    pub adopt: bool,
}

impl Change {
    /// What `setup` would change on `remote`, given how it compares.
    pub fn of(remote: &Remote, findings: &Findings) -> Change {
        Change {
            add_events: findings.missing.clone(),
            enable: findings.disabled,
            adopt: !remote.ours,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.add_events.is_empty() && !self.enable && !self.adopt
    }

    /// The endpoint's event types after the change: the ones it has (`*`
    /// included), then the added ones.
    fn enabled_events(&self, remote: &Remote) -> Vec<String> {
        let mut events = remote.enabled_events.clone();
        events.extend(self.add_events.iter().cloned());
        events
    }

    /// One line per part of the change (`would` in a dry run).
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let (add, enable, adopt) = if dry_run {
            ("would add", "would enable it again", "would adopt it")
        } else {
            ("added", "enabled it again", "adopted it")
        };
        let mut out = Vec::new();
        if !self.add_events.is_empty() {
            out.push(format!(
                "{add} {} event type(s): {}",
                self.add_events.len(),
                self.add_events.join(", ")
            ));
        }
        if self.enable {
            out.push(enable.to_owned());
        }
        if self.adopt {
            out.push(format!(
                "{adopt} (metadata {METADATA_KEY}={METADATA_VALUE})"
            ));
        }
        out
    }
}

/// Compares `remote` with the types of [`event_types::wanted`] and the pin.
pub(crate) fn compare(remote: &Remote, pin: &str) -> Findings {
    let wanted = event_types::wanted(remote.thin);
    let all_events = remote.enabled_events.iter().any(|e| e == "*");
    Findings {
        missing: if all_events {
            Vec::new()
        } else {
            wanted
                .iter()
                .filter(|w| !remote.enabled_events.contains(w))
                .cloned()
                .collect()
        },
        extra: remote
            .enabled_events
            .iter()
            .filter(|e| *e != "*" && !wanted.contains(e))
            .cloned()
            .collect(),
        all_events,
        other_version: remote
            .api_version
            .clone()
            .filter(|v| !remote.thin && v != pin),
        disabled: remote.disabled,
        disabled_reason: remote.disabled_reason.clone().filter(|_| remote.disabled),
    }
}

/// Stripe's event destinations (v2).
const DESTINATIONS: &str = "/v2/core/event_destinations";
/// The `include` that makes Stripe show a destination's URL.
const INCLUDE_URL: &str = "webhook_endpoint.url";

fn is_webhook_destination(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("webhook_endpoint")
}

/// The Stripe-side endpoints of one kind (webhook endpoints, or thin event
/// destinations).
pub(crate) async fn list_remote(
    client: &StripeClient,
    thin: bool,
) -> Result<Vec<Remote>, StripeError> {
    let mut out = Vec::new();
    if thin {
        // Stripe shows a destination's URL only when asked to.
        let include = [("include", INCLUDE_URL)];
        let mut pages = client.v2_pages(DESTINATIONS, &include, Priority::Live);
        while let Some(page) = pages.next().await? {
            for v in &page {
                match Remote::from_v2(v) {
                    Some(remote) => out.push(remote),
                    // A page without the URL (a later page whose link
                    // dropped `include`): retrieve the destination itself.
                    None if is_webhook_destination(v) => {
                        if let Some(id) = v.get("id").and_then(Value::as_str) {
                            let one = client
                                .get_v2(
                                    &format!("{DESTINATIONS}/{id}"),
                                    &include,
                                    None,
                                    Priority::Live,
                                )
                                .await?;
                            out.extend(Remote::from_v2(&one.json));
                        }
                    }
                    None => {}
                }
            }
        }
    } else {
        let mut pages = client.pages("/v1/webhook_endpoints", &[], Priority::Live);
        while let Some(page) = pages.next().await? {
            out.extend(page.iter().filter_map(Remote::from_v1));
        }
    }
    Ok(out)
}

/// The endpoint for `url` among `remotes`: the one `setup` made, else any
/// with this URL (which `setup` touches only with `--adopt`).
pub(crate) fn find<'a>(remotes: &'a [Remote], url: &str) -> Option<&'a Remote> {
    remotes
        .iter()
        .find(|r| r.ours && r.url == url)
        .or_else(|| remotes.iter().find(|r| r.url == url))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    UpToDate,
    /// `--dry-run`: this would be done.
    WouldCreate,
    WouldUpdate,
}

#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub action: Action,
    /// `we_…` or `ed_…` (None in a dry run that would create).
    pub id: Option<String>,
    pub kind: &'static str,
    pub url: String,
    pub enabled_events: usize,
    pub api_version: Option<String>,
    /// How the endpoint compared with what the daemon needs.
    pub findings: Option<Findings>,
    /// What was changed (or would be, in a dry run).
    pub change: Option<Change>,
    pub warnings: Vec<String>,
    /// Where the new secret was written.
    pub secret_file: Option<PathBuf>,
    /// Why it could not be written there (the secret is printed instead).
    pub secret_file_error: Option<String>,
    /// Only on create; never serialised.
    #[serde(skip)]
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub url: String,
    pub thin: bool,
    pub dry_run: bool,
    /// Change an endpoint with this URL that `setup` did not create.
    pub adopt: bool,
    /// The pinned API version (a new webhook endpoint is created at it).
    pub api_version: String,
}

/// Creates or updates the endpoint for `options.url` (see the module doc).
pub async fn run(client: &StripeClient, options: &SetupOptions) -> anyhow::Result<SetupReport> {
    check_url(&options.url)?;
    let remotes = list_remote(client, options.thin)
        .await
        .context("cannot list the endpoints at Stripe")?;
    let wanted = event_types::wanted(options.thin);
    let kind = if options.thin {
        "event_destination"
    } else {
        "webhook_endpoint"
    };
    let mut report = SetupReport {
        action: Action::UpToDate,
        id: None,
        kind,
        url: options.url.clone(),
        enabled_events: wanted.len(),
        api_version: (!options.thin).then(|| options.api_version.clone()),
        findings: None,
        change: None,
        warnings: Vec::new(),
        secret_file: None,
        secret_file_error: None,
        secret: None,
    };
    match find(&remotes, &options.url) {
        Some(remote) => {
            anyhow::ensure!(
                remote.ours || options.adopt,
                "the {kind} {} already delivers to {} and setup did not create it, so setup changes nothing on it; `stripe-hookd check` shows what it lacks, and `setup --adopt` adds that (it never removes an event type)",
                remote.id,
                options.url
            );
            let findings = compare(remote, &options.api_version);
            report.id = Some(remote.id.clone());
            report.api_version = remote.api_version.clone();
            report.enabled_events = remote.enabled_events.len();
            if let Some(version) = &findings.other_version {
                report.warnings.push(format!(
                    "the endpoint sends events at API version {version}, not the pinned {}; Stripe cannot change an endpoint's version (objects are re-fetched at the pin, so reconciling is not affected): docs/upgrading.md says how to move it",
                    options.api_version
                ));
            }
            let change = Change::of(remote, &findings);
            report.findings = Some(findings);
            if change.is_empty() {
                return Ok(report);
            }
            report.enabled_events = change.enabled_events(remote).len();
            report.change = Some(change.clone());
            if options.dry_run {
                report.action = Action::WouldUpdate;
                return Ok(report);
            }
            update(client, remote, &change).await?;
            report.action = Action::Updated;
        }
        None if options.dry_run => report.action = Action::WouldCreate,
        None => {
            let (id, secret) = create(client, options, &wanted).await?;
            report.id = Some(id);
            report.secret = secret;
            report.action = Action::Created;
            if report.secret.is_none() {
                report.warnings.push(
                    "Stripe's answer carried no signing secret: reveal it in the Dashboard (Developers → Webhooks → the endpoint)"
                        .to_owned(),
                );
            }
        }
    }
    Ok(report)
}

fn check_url(url: &str) -> anyhow::Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace)
        && url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|host| !host.is_empty()));
    anyhow::ensure!(
        ok,
        "--url {url:?} is not an absolute http(s) URL such as https://hooks.example.com/webhooks/stripe"
    );
    if url.starts_with("http://") {
        tracing::warn!(
            url,
            "Stripe delivers live-mode events only to https:// URLs"
        );
    }
    Ok(())
}

fn metadata() -> Value {
    json!({ METADATA_KEY: METADATA_VALUE })
}

const DESCRIPTION: &str = "stripe-hookd: billing events (made by stripe-hookd setup)";

async fn create(
    client: &StripeClient,
    options: &SetupOptions,
    wanted: &[String],
) -> anyhow::Result<(String, Option<SecretString>)> {
    let created = if options.thin {
        let body = json!({
            "name": "stripe-hookd",
            "description": DESCRIPTION,
            "type": "webhook_endpoint",
            "event_payload": "thin",
            "enabled_events": wanted,
            "webhook_endpoint": {"url": options.url},
            "metadata": metadata(),
            "include": ["webhook_endpoint.signing_secret"],
        });
        client
            .post_json("/v2/core/event_destinations", &body)
            .await
            .context("cannot create the event destination")?
    } else {
        let mut form = form_of(&options.url, wanted);
        form.push(("api_version".to_owned(), options.api_version.clone()));
        client
            .post_form("/v1/webhook_endpoints", &form)
            .await
            .context("cannot create the webhook endpoint")?
    };
    let id = created
        .json
        .get("id")
        .and_then(Value::as_str)
        .context("Stripe's answer names no id")?
        .to_owned();
    let secret = created
        .json
        .get("secret")
        .or_else(|| created.json.pointer("/webhook_endpoint/signing_secret"))
        .and_then(Value::as_str)
        .map(|s| SecretString::from(s.to_owned()));
    Ok((id, secret))
}

/// The v1 form for `url` and `events` (and our metadata).
fn form_of(url: &str, events: &[String]) -> Vec<(String, String)> {
    let mut form = vec![
        ("url".to_owned(), url.to_owned()),
        ("description".to_owned(), DESCRIPTION.to_owned()),
        (
            format!("metadata[{METADATA_KEY}]"),
            METADATA_VALUE.to_owned(),
        ),
    ];
    form.extend(
        events
            .iter()
            .map(|e| ("enabled_events[]".to_owned(), e.clone())),
    );
    form
}

/// Applies `change` to `remote`: only what it names is sent, so the rest of
/// the endpoint (its other types, description, metadata) stays as it is.
async fn update(client: &StripeClient, remote: &Remote, change: &Change) -> anyhow::Result<()> {
    let events = change.enabled_events(remote);
    if remote.thin {
        let mut body = serde_json::Map::new();
        if !change.add_events.is_empty() {
            body.insert("enabled_events".to_owned(), json!(events));
        }
        if change.adopt {
            body.insert("metadata".to_owned(), metadata());
        }
        if !body.is_empty() {
            client
                .post_json(
                    &format!("/v2/core/event_destinations/{}", remote.id),
                    &Value::Object(body),
                )
                .await
                .context("cannot update the event destination")?;
        }
        if change.enable {
            client
                .post_json(
                    &format!("/v2/core/event_destinations/{}/enable", remote.id),
                    &json!({}),
                )
                .await
                .context("cannot enable the event destination")?;
        }
    } else {
        let mut form = Vec::new();
        if !change.add_events.is_empty() {
            form.extend(
                events
                    .iter()
                    .map(|e| ("enabled_events[]".to_owned(), e.clone())),
            );
        }
        if change.adopt {
            form.push((
                format!("metadata[{METADATA_KEY}]"),
                METADATA_VALUE.to_owned(),
            ));
        }
        if change.enable {
            form.push(("disabled".to_owned(), "false".to_owned()));
        }
        client
            .post_form(&format!("/v1/webhook_endpoints/{}", remote.id), &form)
            .await
            .context("cannot update the webhook endpoint")?;
    }
    Ok(())
}

fn secret_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A new temporary file beside `path`: mode 0600 from its creation, under a
/// name of its own (never a leftover of an earlier run, whose mode could be
/// wider), removed unless persisted.
fn secret_temp(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = secret_dir(path);
    tempfile::Builder::new()
        .prefix(".stripe-hookd-secret.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))
}

/// Checks, before anything is created at Stripe, that the secret can be
/// written to `path`: its directory takes a new file, and `path` is not a
/// directory.
pub(crate) fn check_secret_path(path: &Path) -> anyhow::Result<()> {
    secret_temp(path)?;
    anyhow::ensure!(!path.is_dir(), "{} is a directory", path.display());
    Ok(())
}

/// Writes `secret` to `path` with mode 0600 (through a new temporary file
/// in the same directory, renamed over it).
pub fn write_secret(path: &Path, secret: &SecretString) -> anyhow::Result<()> {
    let mut file = secret_temp(path)?;
    file.write_all(secret.expose_secret().as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write a file in {}", secret_dir(path).display()))?;
    file.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the secret into {}", path.display()))?;
    Ok(())
}

/// Writes a new endpoint's secret to `path`; when that fails (after the
/// endpoint was created, so the secret cannot be asked for again), keeps
/// why, and the secret stays in the report to be printed instead.
fn keep_secret(report: &mut SetupReport, path: &Path) {
    if let Some(secret) = &report.secret {
        match write_secret(path, secret) {
            Ok(()) => report.secret_file = Some(path.to_path_buf()),
            Err(e) => report.secret_file_error = Some(format!("{e:#}")),
        }
    }
}

/// The `setup` command.
pub(crate) fn command(config: &Config, args: SetupArgs) -> anyhow::Result<()> {
    let options = config.stripe.client_options().context(
        "no Stripe API key: set STRIPE_API_KEY to a secret key (sk_…) that may write webhook endpoints",
    )?;
    let client = StripeClient::new(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(path) = &args.secret_file {
        check_secret_path(path).with_context(|| {
            format!(
                "--secret-file {}: the new signing secret could not be written there (nothing was changed at Stripe)",
                path.display()
            )
        })?;
    }
    let setup = SetupOptions {
        url: args.url.clone(),
        thin: args.thin,
        dry_run: args.dry_run,
        adopt: args.adopt,
        api_version: config.stripe.api_version.clone(),
    };
    let mut report = runtime.block_on(run(&client, &setup))?;
    if let Some(path) = &args.secret_file {
        keep_secret(&mut report, path);
    }
    let unwritten = report.secret_file_error.as_ref().map(|e| {
        anyhow::anyhow!(
            "the endpoint was created, but its signing secret could not be written to {} ({e}): it was printed instead; store it now, Stripe shows it only once",
            args.secret_file.as_deref().unwrap_or(Path::new("")).display()
        )
    });
    if args.json {
        let mut out = serde_json::to_value(&report)?;
        if report.secret_file.is_none() {
            if let Some(secret) = &report.secret {
                out["secret"] = json!(secret.expose_secret());
            }
        }
        println!("{out}");
        return unwritten.map_or(Ok(()), Err);
    }
    let what = if args.thin {
        "event destination (thin events)"
    } else {
        "webhook endpoint"
    };
    let id = report.id.as_deref().unwrap_or("(new)");
    match report.action {
        Action::Created => println!("created the {what} {id} for {}", report.url),
        Action::Updated => println!("updated the {what} {id} for {}", report.url),
        Action::UpToDate => println!("the {what} {id} for {} is up to date", report.url),
        Action::WouldCreate => println!("would create a {what} for {}", report.url),
        Action::WouldUpdate => println!("would update the {what} {id} for {}", report.url),
    }
    if let Some(change) = &report.change {
        for line in change.lines(report.action == Action::WouldUpdate) {
            println!("  {line}");
        }
    }
    if let Some(f) = &report.findings {
        if let Some(reason) = f.disabled_reason.as_ref().filter(|_| f.disabled) {
            println!("  it was disabled (Stripe's reason: {reason})");
        }
        if f.all_events {
            println!("  it sends every event type (*); setup leaves that as it is");
        }
        if !f.extra.is_empty() {
            println!(
                "  it also sends {} type(s) no handler uses (stored and ignored; setup never removes a type): {}",
                f.extra.len(),
                f.extra.join(", ")
            );
        }
    }
    println!("  {} event types", report.enabled_events);
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    match (&report.secret, &report.secret_file) {
        (Some(_), Some(path)) => println!(
            "  signing secret written to {} (restart the service to load it)",
            path.display()
        ),
        (Some(secret), None) => println!(
            "  signing secret (shown only now): {}",
            secret.expose_secret()
        ),
        _ => {}
    }
    if let Some(unwritten) = unwritten {
        return Err(unwritten);
    }
    if args.thin {
        println!(
            "  set thin = true on this endpoint in the config (catch-up then lists thin events)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created() -> SetupReport {
        SetupReport {
            action: Action::Created,
            id: Some("we_1".to_owned()),
            kind: "webhook_endpoint",
            url: "https://hooks.example.com/webhooks/stripe".to_owned(),
            enabled_events: 1,
            api_version: None,
            findings: None,
            change: None,
            warnings: Vec::new(),
            secret_file: None,
            secret_file_error: None,
            secret: Some(SecretString::from("whsec_new".to_owned())),
        }
    }

    #[test]
    fn a_secret_that_cannot_be_written_stays_in_the_report_to_be_printed() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails.
        let path = dir.path().join("webhook_secret");
        std::fs::create_dir(&path).unwrap();
        let mut report = created();
        keep_secret(&mut report, &path);
        assert!(report.secret_file.is_none());
        assert!(report.secret.is_some(), "kept, to be printed");
        let why = report.secret_file_error.unwrap();
        assert!(why.contains("webhook_secret"), "{why}");
        assert!(check_secret_path(&path).is_err(), "found before creating");

        let path = dir.path().join("secret");
        let mut report = created();
        keep_secret(&mut report, &path);
        assert_eq!(report.secret_file.as_deref(), Some(path.as_path()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "whsec_new");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".stripe-hookd-secret.")
            })
            .collect();
        assert!(leftovers.is_empty(), "no temporary file left");
    }
}
