//! `stripe-hookd serve` with the effects handler instead of reconcile: the
//! binary the process-level tests run (feature `test-hooks`; never built
//! for release). Each applied event adds one row to `test_effects`, so an
//! effect applied twice shows as two rows. `HOOKD_TEST_HANDLER_DELAY_MS`
//! makes every call slow (to be killed mid-event).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stripe_hookd::testing::app::{self, Application};
use stripe_hookd::testing::queue::test_hooks::EffectsHandler;

fn main() -> anyhow::Result<()> {
    let loaded = app::reload::load(None)?;
    let config = loaded.config.clone();
    stripe_hookd::testing::telemetry::init(config.log.format, &config.log.level);
    let delay = match std::env::var("HOOKD_TEST_HANDLER_DELAY_MS") {
        Ok(ms) => Duration::from_millis(ms.parse().context("HOOKD_TEST_HANDLER_DELAY_MS")?),
        Err(_) => Duration::ZERO,
    };
    let store = app::open_store(&config)?;
    EffectsHandler::prepare(&mut *store.conn()?)?;
    drop(store);
    let handler = Arc::new(EffectsHandler::new(delay));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(app::serve(
            Application::builder(config)
                .handler(handler)
                .reload_on_hangup(None, loaded),
        ))
}
