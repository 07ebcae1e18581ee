//! Runner throughput with the reconcile handlers against a local fake Stripe
//! (rate limit lifted), and end-to-end lag (received → reconciled) at a fixed
//! offered rate through the real intake.
//!
//! ```sh
//! cargo bench --bench e2e                               # SQLite
//! BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench e2e           # both
//! cargo bench --bench e2e -- --events 5000 --rate 500
//! # the runner's throughput alone, on Postgres alone:
//! BENCH_POSTGRES_URL=… cargo bench --features postgres --bench e2e -- --postgres-only --runner-only
//! ```

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use stripe_hookd::testing::app::Application;
use stripe_hookd::testing::queue::BenchSwitches;
use stripe_hookd::testing::store::outbox;
use stripe_hookd::testing::store::{now_ms, Store};
use stripe_hookd::testing::trigger::{self, Intake, Load};

const KEY: &str = "sk_test_bench";
const SECRET: &str = "whsec_bench";

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize]
}

async fn drain(store: &Store, n: usize) -> anyhow::Result<()> {
    common::finished(
        store,
        n,
        Duration::from_millis(10),
        Duration::from_secs(600),
    )
    .await
}

async fn app(
    url: &str,
    fake: &str,
    runner: bool,
    dir: &std::path::Path,
) -> anyhow::Result<Application> {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nwebhook_secret = \"{SECRET}\"\n\
         [database]\nurl = \"{url}\"\npool_size = 24\n[stripe]\napi_key = \"{KEY}\"\napi_base = \"{fake}\"\nrequests_per_sec = 100000\n\
         [runner]\nenabled = {runner}\nconcurrency = 16\npoll_interval_ms = 50\n[schedule]\ncatch_up_interval_mins = 0\n[log]\nlevel = \"error\"\n",
        dir.display()
    );
    let config = stripe_hookd::testing::config::from_toml_str(&toml)?;
    Application::builder(config)
        .bench_switches(bench_switches())
        .build()
        .await
}

/// The runner's ways of running to compare, from the command line:
/// `--per-group` (Postgres finishes each group in its own savepoint, the
/// way before set-based finishing), `--finisher-threads N` (finishing
/// threads on Postgres; default 2).
fn bench_switches() -> BenchSwitches {
    BenchSwitches {
        finish_per_group: std::env::args().any(|a| a == "--per-group"),
        pg_finisher_threads: Some(common::arg("--finisher-threads", 0)).filter(|&n| n > 0),
        ..BenchSwitches::default()
    }
}

async fn run(label: &str, url: &str, fake: &str, n: usize, rate: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // 1. Runner throughput: n events waiting, distinct subscriptions.
    let application = app(url, fake, true, dir.path()).await?;
    let store = application.store().clone();
    {
        let events = common::events(
            "bench",
            "customer.subscription.updated",
            "sub",
            0..n,
            now_ms(),
            "{}",
        );
        let s = store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = s.conn()?;
            for chunk in events.chunks(500) {
                outbox::insert_batch(&mut conn, chunk)?;
            }
            Ok(())
        })
        .await??;
    }
    let token = application.shutdown_token();
    let started = Instant::now();
    let task = tokio::spawn(application.run_until_stopped());
    drain(&store, n).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let how = if std::env::args().any(|a| a == "--per-group") {
        " (finishing per group)"
    } else {
        ""
    };
    println!("runner   {label:8} reconcile handlers{how}, fake Stripe: {n} events in {elapsed:.2}s = {:.0} events/s", n as f64 / elapsed);
    token.cancel();
    task.await??;
    if std::env::args().any(|a| a == "--runner-only") {
        return Ok(());
    }

    // 2. End-to-end lag at a fixed offered rate through the real intake.
    let dir2 = tempfile::tempdir()?;
    let url2 = if url.starts_with("sqlite") {
        format!("sqlite://{}", dir2.path().join("lag.db").display())
    } else {
        url.to_owned()
    };
    let application = app(&url2, fake, true, dir2.path()).await?;
    let store = application.store().clone();
    let already = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || outbox::count(&mut *s.conn()?)).await??
    } as usize;
    let target = Intake {
        url: format!("http://{}/webhooks/stripe", application.public_addr()),
        secret: SECRET.to_owned(),
    };
    let token = application.shutdown_token();
    let task = tokio::spawn(application.run_until_stopped());
    let load = Load {
        count: n,
        concurrency: 32,
        rate: Some(rate as f64),
        duplicates_pct: 0.0,
        shuffle: false,
        livemode: false,
        api_version: "2025-03-31.basil".into(),
    };
    let report = trigger::run_load(&target, &load).await?;
    drain(&store, already + n).await?;
    let s = store.clone();
    let mut lags: Vec<i64> = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<i64>> {
        let rows = outbox::list_all(&mut *s.conn()?)?;
        Ok(rows
            .iter()
            .filter(|r| r.endpoint != "bench")
            .filter_map(|r| r.processed_at.map(|p| p.as_i64() - r.received_at.as_i64()))
            .collect())
    })
    .await??;
    lags.sort_unstable();
    println!(
        "e2e lag  {label:8} {} events offered at {rate}/s (intake p99 {:.2} ms): received→reconciled p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        report.latency_ms.p99,
        percentile(&lags, 50.0),
        percentile(&lags, 95.0),
        percentile(&lags, 99.0),
        percentile(&lags, 100.0)
    );
    token.cancel();
    task.await??;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n = common::arg("--events", 5_000);
    let rate = common::arg("--rate", 500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let fake = format!("http://{}", listener.local_addr()?);
        let server =
            HttpServer::new(|| App::new().default_service(web::to(common::stripe_any_object)))
                .workers(2)
                .disable_signals()
                .listen(listener)?
                .run();
        tokio::spawn(server);
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("e2e.db").display());
        if !std::env::args().any(|a| a == "--postgres-only") {
            run("sqlite", &url, &fake, n, rate).await?;
        }
        if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
            if cfg!(feature = "postgres") {
                run("postgres", &common::fresh_pg(&base, "e2e")?, &fake, n, rate).await?;
            }
        }
        Ok(())
    })
}
