//! Fills an outbox with N finished events (for the "1,000,000 events already
//! stored" intake benchmark): `cargo bench --bench fill -- DATABASE_URL N`.

mod common;

use std::time::Instant;

use stripe_hookd::store::outbox;
use stripe_hookd::store::{now_ms, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let url = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fill DATABASE_URL N"))?;
    let n: usize = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let defaults = stripe_hookd::config::from_toml_str("")?;
    let store = Store::open(url, &defaults.database.store_options())?;
    store.migrate()?;
    let mut conn = store.conn()?;
    let started = Instant::now();
    let now = now_ms();
    let payload = Scenario::payload();
    for start in (0..n).step_by(5_000) {
        let batch = common::events(
            "fill",
            "invoice.paid",
            "in",
            start..(start + 5_000).min(n),
            now,
            &payload,
        );
        outbox::insert_batch(&mut conn, &batch)?;
    }
    conn.batch_execute("UPDATE webhook_events SET status = 'done', processed_at = received_at WHERE endpoint = 'fill'")?;
    println!(
        "filled {n} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

struct Scenario;

impl Scenario {
    /// A realistic-size payload (~3 KB, like Stripe's invoice events).
    fn payload() -> String {
        stripe_hookd::trigger::Scenario::new(false, "2025-03-31.basil")
            .event("invoice.paid")
            .map(|e| e.to_string())
            .unwrap_or_default()
    }
}
