//! Forwarder throughput: deliveries per second to a local no-op receiver
//! (answers 200 at once), on SQLite (`synchronous=FULL`) and on Postgres.
//! The deliveries are recorded up front through the intake's hook (as with
//! `after = "received"`), then `Forwarder::run_pending` sends them all.
//!
//! ```sh
//! cargo bench --bench forward                                  # SQLite
//! BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench forward            # both
//! cargo bench --bench forward -- --deliveries 20000 --objects 200 --in-flight 32
//! cargo bench --bench forward -- --dead-app 100000 --dead-secs 20   # memory, app down
//! ```
//!
//! `--dead-app N`: N deliveries queued for an app that refuses connections;
//! the forwarder runs for `--dead-secs` seconds (claiming, failing, backing
//! off) and the process's resident memory is printed before and after:
//! it stays flat (the forwarder holds at most `max_in_flight` deliveries
//! per destination, whatever the backlog).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

mod common;

use actix_web::{web, App, HttpResponse, HttpServer};
use stripe_hookd::config::After;
use stripe_hookd::forward::{self, Forwarder};
use stripe_hookd::queue::Clock;
use stripe_hookd::store::{outbox, Store};

struct Run {
    deliveries: usize,
    objects: usize,
    in_flight: usize,
}

/// Resident memory of this process (Linux), in MiB.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Records `run.deliveries` deliveries to `receiver` (as at the intake
/// commit), on `run.objects` objects.
fn fill(store: &Store, receiver: &str, run: &Run) -> anyhow::Result<stripe_hookd::config::Config> {
    let config = stripe_hookd::config::from_toml_str(&format!(
        "[database]\npool_size = 8\n[forward]\nmax_in_flight = {}\n[[destinations]]\nname = \"bench\"\nurl = \"{receiver}\"\nsecret = \"whsec_bench\"\nafter = \"received\"\n",
        run.in_flight
    ))?;
    let hook = forward::hook(&config.destinations, After::Received)
        .ok_or_else(|| anyhow::anyhow!("no hook"))?;
    let now = stripe_hookd::store::now_ms();
    let payload = format!(
        "{{\"id\":\"evt\",\"object\":\"event\",\"pad\":\"{}\"}}",
        "x".repeat(1500)
    );
    let mut events = common::events(
        "bench",
        "customer.subscription.updated",
        "sub",
        0..run.deliveries,
        now,
        &payload,
    );
    for (i, e) in events.iter_mut().enumerate() {
        e.object_key = format!("sub_{}", i % run.objects.max(1));
    }
    let mut conn = store.conn()?;
    for chunk in events.chunks(500) {
        outbox::insert_batch_with(&mut conn, chunk, Some(&hook))?;
    }
    Ok(config)
}

/// `--dead-app`: memory with a large backlog for an app that is down.
async fn dead_app(url: &str, run: &Run, secs: u64) -> anyhow::Result<()> {
    // A port nothing listens on: every attempt is refused at once.
    let closed = TcpListener::bind("127.0.0.1:0")?;
    let receiver = format!("http://{}/hook", closed.local_addr()?);
    drop(closed);
    let store = Store::open(
        url,
        &stripe_hookd::config::from_toml_str("[database]\npool_size = 8\n")?
            .database
            .store_options(),
    )?;
    store.migrate()?;
    let config = fill(&store, &receiver, run)?;
    let before = rss_mib();
    let forwarder = Arc::new(Forwarder::new(
        store.clone(),
        config.destinations.clone(),
        config.forward.options(),
        Clock::default(),
    )?);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(
        Arc::clone(&forwarder).run(Arc::new(tokio::sync::Notify::new()), shutdown.clone()),
    );
    let mut peak = before;
    for _ in 0..secs {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        peak = peak.max(rss_mib());
    }
    shutdown.cancel();
    task.await??;
    // Before counting: the count below loads every row.
    let after = rss_mib();
    let attempts: i64 = {
        let mut conn = store.conn()?;
        stripe_hookd::store::deliveries::list(&mut conn)?
            .iter()
            .map(|d| i64::from(d.attempts))
            .sum()
    };
    println!(
        "dead app: {} deliveries queued over {} objects, forwarder ran {secs} s ({attempts} attempts, all refused): RSS {before:.1} MiB before, peak {peak:.1} MiB, after {after:.1} MiB",
        run.deliveries, run.objects
    );
    Ok(())
}

async fn run(label: &str, url: &str, receiver: &str, run: &Run) -> anyhow::Result<()> {
    let store = Store::open(
        url,
        &stripe_hookd::config::from_toml_str("[database]\npool_size = 8\n")?
            .database
            .store_options(),
    )?;
    store.migrate()?;
    let config = fill(&store, receiver, run)?;
    let forwarder = Arc::new(Forwarder::new(
        store.clone(),
        config.destinations.clone(),
        config.forward.options(),
        Clock::default(),
    )?);
    let started = Instant::now();
    let tally = forwarder.run_pending().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {} delivered of {} over {} objects, max_in_flight {}: {:.2} s, {:.0} deliveries/s",
        tally.delivered,
        run.deliveries,
        run.objects,
        run.in_flight,
        secs,
        tally.delivered as f64 / secs
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let options = Run {
        deliveries: common::arg("--deliveries", 5000),
        objects: common::arg("--objects", 5000),
        in_flight: common::arg("--in-flight", 32),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dead_secs = common::arg("--dead-secs", 20) as u64;
    let dead = common::arg("--dead-app", 0);
    runtime.block_on(async {
        if dead > 0 {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("dead.db").display());
            let run = Run {
                deliveries: dead,
                ..options
            };
            return dead_app(&url, &run, dead_secs).await;
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let receiver = format!("http://{}/hook", listener.local_addr()?);
        let server = HttpServer::new(|| {
            App::new().default_service(web::to(|| async { HttpResponse::Ok().finish() }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run("sqlite", &url, &receiver, &options).await?;
        if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
            if cfg!(feature = "postgres") {
                run(
                    "postgres",
                    &common::fresh_pg(&base, "forward")?,
                    &receiver,
                    &options,
                )
                .await?;
            }
        }
        Ok(())
    })
}
