//! Runner throughput with a no-op handler (every event ends `done`, nothing
//! else written): the cost of the queue itself — claim, lease, finish,
//! attempt rows — on SQLite (`synchronous=FULL`) and on Postgres.
//!
//! ```sh
//! cargo bench --bench runner                                   # SQLite
//! BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench runner             # both
//! cargo bench --bench runner -- --events 20000 --concurrency 16
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use stripe_hookd::queue::{self, Apply, Clock, EventGroup, Handler, HandlerError, Runner};
use stripe_hookd::store::outbox;
use stripe_hookd::store::{now_ms, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct Noop;

impl Handler for Noop {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn handle(
        &self,
        _: EventGroup,
        _: &stripe_hookd::queue::HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        let apply: Apply = Box::new(|_| Ok(()));
        futures_util::future::ready(Ok(apply)).boxed()
    }
}

async fn run(label: &str, url: &str, n: usize, concurrency: usize) -> anyhow::Result<()> {
    // The built-in configuration, with this run's concurrency.
    let config = stripe_hookd::config::from_toml_str(&format!(
        "[database]\npool_size = {}\n[runner]\nconcurrency = {concurrency}\npoll_interval_ms = 50",
        concurrency + 4
    ))?;
    let store = Store::open(url, &config.database.store_options())?;
    store.migrate()?;
    {
        let mut conn = store.conn()?;
        for chunk in common::events(
            "bench",
            "customer.subscription.updated",
            "sub",
            0..n,
            now_ms(),
            "{}",
        )
        .chunks(500)
        {
            outbox::insert_batch(&mut conn, chunk)?;
        }
    }
    let runner = Arc::new(Runner::new(
        store.clone(),
        Arc::new(Noop),
        config.runner.options(),
        Clock::default(),
    )?);
    let token = CancellationToken::new();
    let started = Instant::now();
    let worker = tokio::spawn(queue::worker::run(
        runner,
        Arc::new(Notify::new()),
        Arc::new(|| {}),
        token.clone(),
    ));
    loop {
        let s = store.clone();
        let done = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let counts = outbox::count_by_status(&mut *s.conn()?)?;
            Ok(counts
                .iter()
                .filter(|(st, _)| st == "done")
                .map(|(_, n)| *n)
                .sum())
        })
        .await??;
        if done as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    token.cancel();
    worker.await??;
    println!(
        "runner {label:8} events={n} concurrency={concurrency} elapsed={:.2}s throughput={:.0} events/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n = common::arg("--events", 10_000);
    let concurrency = common::arg("--concurrency", 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, n, concurrency).await?;
        if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
            if cfg!(feature = "postgres") {
                run(
                    "postgres",
                    &common::fresh_pg(&base, "runner")?,
                    n,
                    concurrency,
                )
                .await?;
            } else {
                eprintln!("BENCH_POSTGRES_URL given but built without --features postgres");
            }
        }
        Ok(())
    })
}
