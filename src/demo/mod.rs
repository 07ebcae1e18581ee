//! The offline demo: the real daemon against a Stripe stand-in, no account
//! needed (`stripe-hookd demo`, docs/demo.md).
//!
//! ```text
//!  story.rs ──changes──▶ FakeStripe (127.0.0.1:0, sk_test_demo_… key)
//!     │                        ▲
//!     │ signed events          │ re-fetch (stripe.api_base = the fake)
//!     ▼                        │
//!  intake ──▶ outbox ──▶ runner ──▶ records, entitlements (throwaway SQLite)
//!     ▲                                  │
//!     ▲                                  │       │ forwarder (destination demo-app)
//!     │                                  │       ▼
//!     │                                  │    app.rs: the receiving app
//!     │                                  │    (127.0.0.1:0; verifies, dedups, orders)
//!     └──── narration ◀── admin API ◀────┘ (events, deliveries), the store
//!                                           (access) and what the app received
//! ```
//!
//! [`Demo::start`] builds the daemon exactly as `serve` does
//! ([`crate::app::Application`]) from the built-in defaults only — never the
//! operator's config, environment or database — with a fresh SQLite file in
//! a temporary directory, the admin listener on with a one-time token, a
//! random endpoint secret, and `stripe.api_base` pointing at the stand-in.
//! [`Demo::run_story`] plays the script ([`story`]); [`run`] is the whole
//! command.
//!
//! [`fake_stripe`] is the one Stripe stand-in, shared by `demo` and the
//! tests. Only `demo` starts it; `serve` has no way to reach it (its API
//! base is configured, defaulting to api.stripe.com, and the stand-in lives
//! on a random port inside this process, expecting a key made up per run).
//! The demo refuses to run when a live key is given or configured
//! ([`refuse_live_keys`]).

mod app;
pub(crate) mod fake_stripe;
mod outcome;
mod story;
mod view;

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::Application;
use crate::config::{self, Mode, Signature};
use crate::store::Store;
use crate::stripe::key_mode;
use crate::trigger::scenario::new_id;
use fake_stripe::FakeStripe;

pub use app::{Handled, Received, DESTINATION as APP_DESTINATION};
pub use outcome::{Delivered, StepReport, StoryOutcome};

/// Where demo narration goes: stdout for the command, a buffer in tests.
pub type Out<'a> = &'a mut (dyn Write + Send);

/// Writes one line of narration. A closed or failing stdout is no reason to
/// stop the daemon or the story, so write errors are dropped here.
pub(crate) fn say(out: Out<'_>, line: impl std::fmt::Display) {
    let _ = writeln!(out, "{line}");
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The pause between two steps of the story (for a human to follow).
    pub step_delay: Duration,
    /// The key the stand-in expects (`sk_test_…`/`rk_test_…`); `None`: a
    /// fresh `sk_test_demo_…`. A live key is refused ([`refuse_live_keys`]).
    pub api_key: Option<String>,
    /// The database (tests give a Postgres one); `None`: a throwaway SQLite
    /// file in the demo's temporary directory.
    pub database_url: Option<String>,
    /// The scheme the daemon signs the demo app's deliveries with (and the
    /// app verifies).
    pub signature: Signature,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            step_delay: Duration::from_millis(1500),
            api_key: None,
            database_url: None,
            signature: Signature::Stripe,
        }
    }
}

/// Why the demo does not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("refusing to run: {origin} is a live Stripe key (sk_live_/rk_live_). The demo talks only to its built-in stand-in and never needs a real key; unset it (or give --api-key sk_test_…) and run `stripe-hookd demo` again")]
    LiveKey { origin: String },
    #[error("--api-key is not a Stripe test key: expected sk_test_… or rk_test_… (or leave it out: the demo makes one up)")]
    NotATestKey,
}

/// Refuses every live key among `keys` (`(where it came from, the key)`):
/// the demo must never run where a live key could be picked up. Keys that
/// are not live are the caller's business (the demo ignores the
/// configured one and checks `--api-key` itself).
pub fn refuse_live_keys<'a>(
    keys: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<(), DemoError> {
    for (origin, key) in keys {
        if key.and_then(key_mode) == Some(Mode::Live) {
            return Err(DemoError::LiveKey {
                origin: origin.to_owned(),
            });
        }
    }
    Ok(())
}

/// The daemon and its stand-in, running in this process.
pub struct Demo {
    intake_url: String,
    admin_url: String,
    admin_token: String,
    secret: String,
    database_url: String,
    api_version: String,
    store: Store,
    fake: FakeStripe,
    app: app::DemoApp,
    client: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts the stand-in, then the daemon (migrated, listening on random
    /// loopback ports, workers on) pointed at it.
    pub async fn start(options: &Options) -> anyhow::Result<Demo> {
        refuse_live_keys([("--api-key", options.api_key.as_deref())])?;
        let key = match &options.api_key {
            Some(key) if key_mode(key) == Some(Mode::Test) => key.clone(),
            Some(_) => return Err(DemoError::NotATestKey.into()),
            None => new_id("sk_test_demo"),
        };
        let dir = tempfile::Builder::new()
            .prefix("stripe-hookd-demo-")
            .tempdir()
            .context("cannot create the demo's temporary directory")?;
        let fake = FakeStripe::start_with_key(&key)
            .await
            .context("cannot start the Stripe stand-in")?;
        let receiving = app::DemoApp::start(options.signature)?;
        let secret = new_id("whsec");
        let admin_token = hex::encode(rand::random::<[u8; 16]>());
        let database_url = options.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", dir.path().join("demo.db").to_string_lossy())
        });
        // The built-in defaults only: nothing of the operator's config,
        // environment or credentials reaches the demo's daemon.
        let endpoint = format!(
            "[[endpoints]]\nname = \"demo\"\npath = \"{}\"\nmode = \"test\"\nsecrets = [\"{secret}\"]\n{}",
            config::DEFAULT_ENDPOINT_PATH,
            receiving.destination_toml()
        );
        let mut config = config::from_toml_str(&endpoint).context("the demo's configuration")?;
        config.listen = ([127, 0, 0, 1], 0).into();
        config.admin_listen = ([127, 0, 0, 1], 0).into();
        config.admin_token = Some(admin_token.clone().into());
        config.state_dir = dir.path().to_owned();
        config.database.url = Some(database_url.clone().into());
        config.stripe.api_key = Some(key.into());
        config.stripe.api_base = fake.base_url().to_owned();
        config.stripe.requests_per_sec = Some(100);
        config.stripe.timeout_secs = 10;
        config.runner.poll_interval_ms = 200;
        config.runner.backoff_base_ms = 500;
        config.runner.backoff_max_secs = 5;
        config.intake.http_workers = Some(2);
        // The app's failed delivery is retried about a second later.
        config.forward.poll_interval_ms = 200;
        config.forward.backoff_base_ms = 1000;
        config.forward.backoff_max_secs = 5;
        // Catch-up would list the stand-in's events in the middle of the story.
        config.schedule.catch_up_interval_mins = 0;
        let api_version = config.stripe.api_version.clone();
        let app = Application::builder(config).build().await?;
        let intake_url = format!(
            "http://{}{}",
            app.public_addr(),
            config::DEFAULT_ENDPOINT_PATH
        );
        let admin = app
            .admin_addr()
            .context("the admin listener did not start")?;
        let store = app.store().clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Demo {
            intake_url,
            admin_url: format!("http://{admin}"),
            admin_token,
            secret,
            database_url,
            api_version,
            store,
            fake,
            app: receiving,
            client: crate::trigger::http_client(4)?,
            shutdown,
            task,
            _dir: dir,
        })
    }

    /// The inspector: the admin listener's `/`.
    pub fn inspector_url(&self) -> String {
        format!("{}/", self.admin_url)
    }

    /// The admin listener, `http://127.0.0.1:<port>` (JSON API under `/v1/`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The one-time admin token of this run.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// `http://127.0.0.1:<port>/webhooks/stripe`.
    pub fn intake_url(&self) -> &str {
        &self.intake_url
    }

    /// The endpoint's signing secret of this run.
    pub fn webhook_secret(&self) -> &str {
        &self.secret
    }

    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn fake(&self) -> &FakeStripe {
        &self.fake
    }

    /// Plays the story, narrating each step on `out`, `step_delay` apart.
    pub async fn run_story(
        &self,
        out: Out<'_>,
        step_delay: Duration,
    ) -> anyhow::Result<StoryOutcome> {
        story::Story::new(self, out, step_delay).play().await
    }

    /// The end of the story: the event list and the access view.
    pub async fn print_summary(&self, out: Out<'_>, outcome: &StoryOutcome) -> anyhow::Result<()> {
        view::summary(self, out, outcome).await
    }

    /// Stops the daemon (gracefully) and the stand-in; the temporary
    /// directory and its database go with `self`.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let stopped = self
            .task
            .await
            .context("the daemon's task failed")
            .and_then(|r| r);
        self.fake.stop().await;
        self.app.stop().await;
        stopped
    }
}

/// The whole `stripe-hookd demo`: start, banner, story, summary, then serve
/// until Ctrl-C (unless `exit`). Ctrl-C or SIGTERM at any point stops the
/// daemon and deletes the throwaway directory (the default handler would
/// kill the process and leave it behind).
pub async fn run(options: Options, open: bool, exit: bool, out: Out<'_>) -> anyhow::Result<()> {
    let interrupted = CancellationToken::new();
    // Polled once here, so the handlers are in place before anything starts.
    let mut signalled = Box::pin(crate::app::shutdown_signal());
    let _ = futures_util::FutureExt::now_or_never(&mut signalled);
    let signal = tokio::spawn({
        let interrupted = interrupted.clone();
        async move {
            signalled.await;
            interrupted.cancel();
        }
    });
    let demo = Demo::start(&options).await?;
    view::banner(&demo, out);
    if open {
        open_browser(&demo.inspector_url(), out);
    }
    let played = tokio::select! {
        played = demo.run_story(out, options.step_delay) => Some(played),
        () = interrupted.cancelled() => None,
    };
    let result = match played {
        None => {
            say(
                out,
                "\nInterrupted: stopping; the demo's database is deleted.",
            );
            Ok(())
        }
        Some(Err(e)) => Err(e.context("the demo story stopped")),
        Some(Ok(outcome)) => {
            let summary = demo.print_summary(out, &outcome).await;
            if summary.is_ok() && !exit {
                view::still_serving(&demo, out);
                let _ = out.flush();
                interrupted.cancelled().await;
                say(out, "\nStopping; the demo's database is deleted.");
            }
            summary
        }
    };
    signal.abort();
    let stopped = demo.stop().await;
    result.and(stopped)
}

/// Opens `url` in a browser; a failure is only a warning.
fn open_browser(url: &str, out: Out<'_>) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            // Reaped in the background: the opener may outlive a short demo.
            std::thread::spawn(move || child.wait());
        }
        Err(e) => say(
            out,
            format!("warning: cannot open a browser ({opener}: {e}); open {url} yourself"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_refused_wherever_they_come_from() {
        for key in ["sk_live_abc", "rk_live_abc"] {
            let err = refuse_live_keys([("--api-key", None), ("STRIPE_API_KEY", Some(key))])
                .expect_err("a live key");
            let message = err.to_string();
            assert!(message.contains("STRIPE_API_KEY"), "{message}");
            assert!(message.contains("live"), "{message}");
        }
        refuse_live_keys([
            ("a", Some("sk_test_x")),
            ("b", None),
            ("c", Some("rk_test_y")),
        ])
        .expect("test keys and no keys pass");
    }
}
