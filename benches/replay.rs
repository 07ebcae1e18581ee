//! A bulk replay under live traffic: fills the outbox with N finished events,
//! then replays them all through the admin API (`POST /v1/replay
//! {"status":"done"}`) while signed deliveries hit the intake at a fixed
//! rate, and prints the intake's latency and 503s during the replay (and
//! without one, for comparison). The runner is off, so only the replay and
//! the intake write.
//!
//! ```sh
//! cargo bench --bench replay                                   # SQLite
//! BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench replay               # both
//! cargo bench --bench replay -- --events 100000 --rate 500
//! ```

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stripe_hookd::testing::app::Application;
use stripe_hookd::testing::store::Store;
use stripe_hookd::testing::trigger::{self, Intake, Scenario, TYPES};

const SECRET: &str = "whsec_bench";
const TOKEN: &str = "bench-admin-token-0123456789";

/// One delivery: when it was sent (since the load started), how long the
/// answer took, and its status (0: no answer).
type Sample = (Duration, Duration, u16);

async fn app(url: &str, dir: &std::path::Path) -> anyhow::Result<Application> {
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nadmin_token = \"{TOKEN}\"\n\
         [database]\nurl = \"{url}\"\n[runner]\nenabled = false\n[log]\nlevel = \"error\"\n\
         [[endpoints]]\nname = \"default\"\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [\"{SECRET}\"]\n",
        dir.display()
    );
    Application::builder(stripe_hookd::testing::config::from_toml_str(&toml)?)
        .build()
        .await
}

async fn fill(store: &Store, n: usize) -> anyhow::Result<()> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        common::fill_done(&mut *store.conn()?, n)?;
        Ok(())
    })
    .await?
}

/// Sends deliveries at `rate` per second until `stop` is set.
async fn load(target: Intake, rate: usize, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<Sample>> {
    let concurrency = 32;
    let client = trigger::http_client(concurrency)?;
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let pace = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, target, next, stop, samples) = (
                client.clone(),
                target.clone(),
                Arc::clone(&next),
                Arc::clone(&stop),
                Arc::clone(&samples),
            );
            tokio::spawn(async move {
                let mut scenario = Scenario::new(false, "2025-03-31.basil");
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i % TYPES.len() == 0 {
                        scenario = Scenario::new(false, "2025-03-31.basil");
                    }
                    let Some(body) = scenario.event(TYPES[i % TYPES.len()].0) else {
                        continue;
                    };
                    tokio::time::sleep_until((started + pace.mul_f64(i as f64)).into()).await;
                    let sent = started.elapsed();
                    let t0 = Instant::now();
                    let status = trigger::send(&client, &target, &body.to_string())
                        .await
                        .map_or(0, |(s, _)| s);
                    if let Ok(mut s) = samples.lock() {
                        s.push((sent, t0.elapsed(), status));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(samples)
}

fn summary(samples: &[Sample]) -> String {
    let mut ms: Vec<f64> = samples
        .iter()
        .map(|(_, d, _)| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        ms.get(((p / 100.0) * (ms.len().max(1) - 1) as f64).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let unavailable = samples.iter().filter(|(_, _, s)| *s == 503).count();
    let other = samples
        .iter()
        .filter(|(_, _, s)| *s != 200 && *s != 503)
        .count();
    format!(
        "{} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; 503s: {unavailable}; other non-200: {other}",
        samples.len(),
        pct(50.0),
        pct(99.0),
        pct(100.0)
    )
}

async fn run(label: &str, url: &str, n: usize, rate: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let application = app(url, dir.path()).await?;
    let store = application.store().clone();
    let t = Instant::now();
    fill(&store, n).await?;
    println!(
        "replay {label:8} filled {n} finished events in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let target = Intake {
        url: format!("http://{}/webhooks/stripe", application.public_addr()),
        secret: SECRET.to_owned(),
    };
    let admin = application
        .admin_addr()
        .ok_or_else(|| anyhow::anyhow!("the admin API is off"))?;
    let token = application.shutdown_token();
    let task = tokio::spawn(application.run_until_stopped());

    // Without a replay, for comparison.
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = tokio::spawn(load(target.clone(), rate, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    println!(
        "replay {label:8} intake at {rate}/s, no replay: {}",
        summary(&quiet.await??)
    );

    // During a replay of all N.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let busy = tokio::spawn(load(target.clone(), rate, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = started.elapsed();
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?
        .post(format!("http://{admin}/v1/replay"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"status": "done"}))
        .send()
        .await?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await?;
    let until = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = busy.await??;
    let during: Vec<Sample> = samples
        .into_iter()
        .filter(|(sent, _, _)| *sent >= from && *sent <= until)
        .collect();
    println!(
        "replay {label:8} POST /v1/replay {{\"status\":\"done\"}}: {status}, {} events re-queued in {:.2}s",
        body["replayed"].as_array().map_or(0, Vec::len),
        (until - from).as_secs_f64()
    );
    println!(
        "replay {label:8} intake at {rate}/s during the replay: {}",
        summary(&during)
    );
    token.cancel();
    task.await??;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let n = common::arg("--events", 100_000);
    let rate = common::arg("--rate", 500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("replay.db").display());
        run("sqlite", &url, n, rate).await?;
        if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
            if cfg!(feature = "postgres") {
                run("postgres", &common::fresh_pg(&base, "replay")?, n, rate).await?;
            }
        }
        Ok(())
    })
}
