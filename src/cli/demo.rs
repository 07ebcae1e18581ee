//! `stripe-hookd demo`: the whole loop offline (src/demo/, docs/demo.md).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::{self, Signature};
use crate::demo::{self, Options};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Pause between the story's steps (humantime: 1.5s, 300ms, 0s).
    #[arg(long, default_value = "1.5s", value_parser = humantime::parse_duration)]
    pub step_delay: Duration,
    /// Open the inspector in a browser (xdg-open; a failure is only a warning).
    #[arg(long)]
    pub open: bool,
    /// Exit after the story instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// The key the Stripe stand-in expects: a test key (default: a made-up sk_test_demo_…). A live key is refused.
    #[arg(long)]
    pub api_key: Option<String>,
    /// How the demo's app is signed for: Stripe's scheme or Standard Webhooks (docs/forwarding.md).
    #[arg(long, value_enum, default_value = "stripe")]
    pub signature: SignatureArg,
}

/// `--signature`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SignatureArg {
    Stripe,
    Standard,
}

impl From<SignatureArg> for Signature {
    fn from(arg: SignatureArg) -> Signature {
        match arg {
            SignatureArg::Stripe => Signature::Stripe,
            SignatureArg::Standard => Signature::Standard,
        }
    }
}

/// Refuses a live key given or configured (file, environment, credentials),
/// then runs the demo on its own runtime. The demo's daemon takes nothing
/// else from the config.
pub(super) fn run(config_path: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    let configured = config::figment(config_path)?
        .extract_inner::<String>("stripe.api_key")
        .ok();
    demo::refuse_live_keys([
        ("--api-key", args.api_key.as_deref()),
        (
            "the configured stripe.api_key (STRIPE_API_KEY, config file or credential)",
            configured.as_deref(),
        ),
    ])?;
    let options = Options {
        step_delay: args.step_delay,
        api_key: args.api_key,
        database_url: None,
        signature: args.signature.into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut stdout = std::io::stdout();
    runtime.block_on(demo::run(options, args.open, args.exit, &mut stdout))
}
