//! `stripe-hookd destinations …`: the configured destinations with their
//! health, pause / resume (every instance, kept across restarts), a fresh
//! signing secret, and a signed ping to a configured destination.

use clap::Subcommand;

use super::ops::fmt_time;
use crate::config::{Config, ConfigError, Destination};
use crate::forward::health;
use crate::store::deliveries::pauses;
use crate::store::EpochMs;

#[derive(Debug, Subcommand)]
pub(crate) enum DestinationsCommand {
    /// List the configured destinations: paused, backlog, dead, last success, failing since.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop sending to a destination (every instance), saying why.
    Pause {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// Send to a paused destination again (also one paused by a 410 Gone).
    Resume { name: String },
    /// Print a fresh random signing secret (whsec_…) for a destination.
    Secret {
        /// For `signature = "standard"`: `whsec_` and the base64 of 32
        /// random bytes (Standard Webhooks' form). Without it, hex, for
        /// Stripe's scheme.
        #[arg(long)]
        standard: bool,
    },
    /// Send a destination a signed stripe_hookd.ping event and show what it answered.
    Test {
        /// The destination's name.
        name: String,
    },
}

/// A fresh secret: `whsec_` and 192 random bits, hex.
pub(super) fn secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()))
}

/// A fresh Standard Webhooks secret: `whsec_` and the base64 of 32
/// random bytes (the spec asks for 24 to 64).
pub(super) fn standard_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

pub(super) fn run(
    config: Result<Config, ConfigError>,
    command: DestinationsCommand,
) -> anyhow::Result<()> {
    match command {
        DestinationsCommand::Secret { standard } => {
            println!(
                "{}",
                if standard {
                    standard_secret()
                } else {
                    secret()
                }
            );
            Ok(())
        }
        DestinationsCommand::List { json } => list(&config?, json),
        DestinationsCommand::Pause { name, reason } => {
            let config = config?;
            configured(&config, &name)?;
            if reason.trim().is_empty() {
                anyhow::bail!("say why: --reason \"…\"");
            }
            let store = super::ops::open(&config)?;
            let newly = pauses::pause(
                &mut *store.conn()?,
                &name,
                crate::store::now_ms(),
                &format!("paused by an operator: {reason}"),
            )?;
            tracing::warn!(destination = %name, reason = %reason, "destination paused from the command line");
            println!(
                "{name}: paused{}",
                if newly { "" } else { " (it already was)" }
            );
            Ok(())
        }
        DestinationsCommand::Resume { name } => {
            let config = config?;
            configured(&config, &name)?;
            let store = super::ops::open(&config)?;
            let was = pauses::resume(&mut *store.conn()?, &name, crate::store::now_ms())?;
            tracing::info!(destination = %name, was_paused = was, "destination resumed from the command line");
            println!("{name}: {}", if was { "resumed" } else { "was not paused" });
            Ok(())
        }
        DestinationsCommand::Test { name } => {
            let config = config?;
            let d = configured(&config, &name)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let ping = runtime.block_on(crate::forward::ping(d))?;
            println!(
                "POST {} → {} in {} ms",
                crate::redact::url(d.url.as_str()),
                ping.status,
                ping.duration_ms
            );
            println!("{}", ping.answer);
            if (200..300).contains(&ping.status) {
                Ok(())
            } else {
                anyhow::bail!("the destination answered {}", ping.status)
            }
        }
    }
}

/// The destination named `name`, or an error listing the configured ones.
fn configured<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a Destination> {
    if let Some(d) = config.destinations.iter().find(|d| d.name == name) {
        return Ok(d);
    }
    let names: Vec<&str> = config
        .destinations
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    anyhow::bail!(
        "no destination named {name:?} (configured: {})",
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    )
}

fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = super::ops::open(config)?;
    let views = health::overview(&mut *store.conn()?, &config.destinations)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if views.is_empty() {
        println!("no destinations configured ([[destinations]] in the config file)");
    }
    let at = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), |t| fmt_time(EpochMs(t)));
    for v in &views {
        let h = &v.health;
        let rolling = if v.signing_secrets > 1 {
            format!(
                ", signed with {} secrets: previous_secrets set",
                v.signing_secrets
            )
        } else {
            String::new()
        };
        println!(
            "{} → {} (after {}, {}, {} signature{rolling})",
            v.name,
            v.url,
            v.after,
            if v.ordered { "ordered" } else { "unordered" },
            v.signature
        );
        match &v.paused {
            Some(p) => println!(
                "  PAUSED since {}: {}",
                fmt_time(EpochMs(p.paused_at)),
                p.reason
            ),
            None => println!("  running"),
        }
        println!(
            "  backlog {} (oldest {}), dead {}",
            h.backlog,
            at(h.oldest_undelivered_at),
            h.dead
        );
        println!(
            "  last success {}, failing since {}",
            at(h.last_success_at),
            at(h.failing_since)
        );
        println!(
            "  last attempt {}: HTTP {}{}",
            at(h.last_attempt_at),
            h.last_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            h.last_error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_fresh_whsec_strings() {
        let (a, b) = (super::secret(), super::secret());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 48, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn standard_secrets_are_fresh_and_of_the_specs_form() {
        let (a, b) = (super::standard_secret(), super::standard_secret());
        assert_ne!(a, b);
        for s in [a, b] {
            let key = crate::config::standard_key(&s).expect("of the spec's form");
            assert_eq!(key.len(), 32, "{s}");
            standardwebhooks::Webhook::new(&s).expect("the spec's crate takes it");
        }
    }
}
