//! `stripe-hookd trigger`: fire realistic signed events at an endpoint.

use anyhow::Context;
use clap::Args;
use secrecy::ExposeSecret;

use crate::config::{Config, ConfigError, Mode};
use crate::trigger::{self, Intake, Load, Scenario, TYPES};

#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// The event type to send (see --list).
    pub event_type: Option<String>,
    /// List the event types and exit.
    #[arg(long)]
    pub list: bool,
    /// Endpoint URL (default: this daemon's first endpoint on its listen address).
    #[arg(long)]
    pub url: Option<String>,
    /// Signing secret (default: the endpoint's first secret).
    #[arg(long)]
    pub secret: Option<String>,
    /// test or live (default: the endpoint's mode).
    #[arg(long)]
    pub mode: Option<String>,
    /// API version of the payload (default: the pinned stripe.api_version).
    #[arg(long)]
    pub api_version: Option<String>,
    /// Print the signed request instead of sending it.
    #[arg(long)]
    pub print: bool,
    /// Load mode: this many distinct events (cycling through every type).
    #[arg(long)]
    pub count: Option<usize>,
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Offered requests per second (default: as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Extra redeliveries of sent events, in percent of --count.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Send in random order.
    #[arg(long)]
    pub shuffle: bool,
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(config: Result<Config, ConfigError>, args: TriggerArgs) -> anyhow::Result<()> {
    if args.list {
        for (t, what) in TYPES {
            println!("{t:<34} {what}");
        }
        return Ok(());
    }
    let config = config.ok();
    let endpoint = config.as_ref().and_then(|c| c.endpoints.first());
    let url = match (&args.url, &config, endpoint) {
        (Some(url), _, _) => url.clone(),
        (None, Some(c), Some(ep)) => {
            let mut addr = c.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}{}", ep.path)
        }
        _ => anyhow::bail!("no endpoint to send to: pass --url (and --secret), or run where the daemon's config is"),
    };
    let secret = match (&args.secret, endpoint) {
        (Some(s), _) => s.clone(),
        (None, Some(ep)) => ep
            .secrets
            .first()
            .map(|s| s.expose_secret().to_owned())
            .context("the endpoint has no secret")?,
        (None, None) => {
            anyhow::bail!("no signing secret: pass --secret whsec_… or set STRIPE_WEBHOOK_SECRET")
        }
    };
    let livemode = match args.mode.as_deref() {
        Some("live") => true,
        Some("test") => false,
        Some(other) => anyhow::bail!("--mode {other:?}: use test or live"),
        None => endpoint.is_some_and(|ep| ep.mode == Mode::Live),
    };
    let api_version = match args
        .api_version
        .clone()
        .or_else(|| config.as_ref().map(|c| c.stripe.api_version.clone()))
    {
        Some(version) => version,
        None => crate::config::defaults()
            .extract_inner("stripe.api_version")
            .context("the built-in stripe.api_version")?,
    };
    let target = Intake { url, secret };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    if let Some(count) = args.count {
        let load = Load {
            count,
            concurrency: args.concurrency,
            rate: args.rate,
            duplicates_pct: args.duplicates,
            shuffle: args.shuffle,
            livemode,
            api_version,
        };
        let report = runtime.block_on(trigger::run_load(&target, &load))?;
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "{} requests ({} distinct events) in {:.2}s: {:.0} req/s",
                report.requests,
                report.distinct_events,
                report.elapsed_secs,
                report.requests_per_sec
            );
            println!(
                "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
                report.latency_ms.p50,
                report.latency_ms.p95,
                report.latency_ms.p99,
                report.latency_ms.max
            );
            for (status, n) in &report.statuses {
                println!("  {status}: {n}");
            }
        }
        let failed: usize = report
            .statuses
            .iter()
            .filter(|(s, _)| !s.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        if failed > 0 {
            anyhow::bail!("{failed} request(s) were not answered 2xx");
        }
        return Ok(());
    }

    let event_type = args
        .event_type
        .as_deref()
        .context("name an event type (stripe-hookd trigger --list shows them), or use --count for a load test")?;
    let event = Scenario::new(livemode, &api_version)
        .event(event_type)
        .with_context(|| {
            format!("unknown event type {event_type:?}: see stripe-hookd trigger --list")
        })?;
    let body = event.to_string();
    if args.print {
        println!("POST {}", target.url);
        println!(
            "Stripe-Signature: {}",
            trigger::signature_header(&target.secret, &body)
        );
        println!("Content-Type: application/json; charset=utf-8\n");
        println!("{body}");
        return Ok(());
    }
    let (status, response) = runtime.block_on(async {
        let client = trigger::http_client(1)?;
        trigger::send(&client, &target, &body).await
    })?;
    let id = event["id"].as_str().unwrap_or_default();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"event_id": id, "type": event_type, "status": status, "response": response})
        );
    } else {
        println!("sent {event_type} {id} to {}", target.url);
        println!("→ {status} {response}");
    }
    if !(200..300).contains(&status) {
        anyhow::bail!("the endpoint answered {status}");
    }
    Ok(())
}
