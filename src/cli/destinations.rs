//! `stripe-hookd destinations …`: a fresh signing secret, and a signed ping
//! to a configured destination.

use clap::Subcommand;

use crate::config::{Config, ConfigError};

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// Print a fresh random signing secret (whsec_…) for a destination.
    Secret,
    /// Send a destination a signed stripe_hookd.ping event and show what it answered.
    Test {
        /// The destination's name.
        name: String,
    },
}

/// A fresh secret: `whsec_` and 192 random bits, hex.
pub fn secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>()))
}

pub fn run(
    config: Result<Config, ConfigError>,
    command: DestinationsCommand,
) -> anyhow::Result<()> {
    match command {
        DestinationsCommand::Secret => {
            println!("{}", secret());
            Ok(())
        }
        DestinationsCommand::Test { name } => {
            let config = config?;
            let Some(d) = config.destinations.iter().find(|d| d.name == name) else {
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
                );
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let ping = runtime.block_on(crate::forward::ping(d))?;
            println!(
                "POST {} → {} in {} ms",
                d.url, ping.status, ping.duration_ms
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

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_fresh_whsec_strings() {
        let (a, b) = (super::secret(), super::secret());
        assert!(a.starts_with("whsec_") && a.len() == 6 + 48, "{a}");
        assert_ne!(a, b);
    }
}
