//! Fills an outbox with N finished events (for the "1,000,000 events already
//! stored" intake benchmark): `cargo bench --bench fill -- DATABASE_URL N`.

mod common;

use std::time::Instant;

use stripe_hookd::testing::store::Store;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let url = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fill DATABASE_URL N"))?;
    let n: usize = args
        .get(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let defaults = stripe_hookd::testing::config::from_toml_str("")?;
    let store = Store::open(url, &defaults.database.store_options())?;
    store.migrate()?;
    let mut conn = store.conn()?;
    let started = Instant::now();
    common::fill_done(&mut conn, n)?;
    println!(
        "filled {n} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
