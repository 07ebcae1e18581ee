//! A burst drained at the speed the Stripe budget allows: the real daemon
//! (the reconcile handler, the runner's default settings) against a Stripe
//! stand-in that answers each re-fetch after a set latency; N events over N
//! distinct subscriptions stored up front; timed from start to drained.
//! Reports objects/s against the client's budget, the most requests the
//! stand-in held at once, and the most it received in any one second
//! (never above the budget + 1: the limiter's burst is one).
//!
//! ```sh
//! cargo bench --bench drain                                # 50, 250, 1000 ms × 20/s (test), 80/s (live)
//! cargo bench --bench drain -- --latency-ms 250 --budget 80 --seconds 15
//! cargo bench --bench drain -- --latency-ms 250 --budget 80 --fixed 8   # 8 groups at most, as before
//! BENCH_POSTGRES_URL=… cargo bench --features postgres --bench drain -- --postgres-only
//! ```
//! `--budget` 20 runs with a test key, anything else with a live key (the
//! budget is set explicitly either way); `--seconds` sets N = budget ×
//! seconds (default 15).

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use stripe_hookd::testing::app::Application;
use stripe_hookd::testing::store::outbox;
use stripe_hookd::testing::store::{now_ms, Store};

const SECRET: &str = "whsec_bench";

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    held: AtomicUsize,
    most_held: AtomicUsize,
    arrivals: Mutex<Vec<Instant>>,
}

impl Seen {
    fn reset(&self) {
        self.most_held.store(0, Ordering::SeqCst);
        self.arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// The most arrivals in any window of one second.
    fn peak_per_second(&self) -> usize {
        let arrivals = self
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut most = 0;
        let mut start = 0;
        for (end, t) in arrivals.iter().enumerate() {
            while *t - arrivals[start] >= Duration::from_secs(1) {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        most
    }
}

struct StandIn {
    latency: Mutex<Duration>,
    seen: Seen,
}

async fn answer(req: HttpRequest, state: web::Data<StandIn>) -> HttpResponse {
    let latency = *state
        .latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state
        .seen
        .arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Instant::now());
    let held = state.seen.held.fetch_add(1, Ordering::SeqCst) + 1;
    state.seen.most_held.fetch_max(held, Ordering::SeqCst);
    tokio::time::sleep(latency).await;
    state.seen.held.fetch_sub(1, Ordering::SeqCst);
    common::stripe_any_object(req).await
}

async fn drained(store: &Store, n: usize) -> anyhow::Result<()> {
    common::finished(
        store,
        n,
        Duration::from_millis(20),
        Duration::from_secs(900),
    )
    .await
}

struct Run {
    latency_ms: u64,
    budget: u32,
    events: usize,
    /// Some(n): at most n groups at once (concurrency = max_concurrency = n).
    fixed: Option<usize>,
}

async fn run(
    label: &str,
    url: &str,
    fake: &str,
    stand_in: &web::Data<StandIn>,
    r: &Run,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let live = r.budget != 20;
    let key = if live {
        "sk_live_bench"
    } else {
        "sk_test_bench"
    };
    let runner = match r.fixed {
        Some(n) => format!("concurrency = {n}\nmax_concurrency = {n}\n"),
        None => String::new(),
    };
    let toml = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\nwebhook_secret = \"{SECRET}\"\n\
         [database]\nurl = \"{url}\"\n[stripe]\napi_key = \"{key}\"\napi_base = \"{fake}\"\nrequests_per_sec = {}\n\
         [runner]\n{runner}[schedule]\ncatch_up_interval_mins = 0\n[log]\nlevel = \"error\"\n",
        dir.path().display(),
        r.budget,
    );
    let config = stripe_hookd::testing::config::from_toml_str(&toml)?;
    let application = Application::builder(config).build().await?;
    let store = application.store().clone();
    let mut events = common::events(
        "drain",
        "customer.subscription.updated",
        "sub",
        0..r.events,
        now_ms(),
        "{}",
    );
    for e in &mut events {
        e.livemode = live;
    }
    let s = store.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut conn = s.conn()?;
        for chunk in events.chunks(500) {
            outbox::insert_batch(&mut conn, chunk)?;
        }
        Ok(())
    })
    .await??;
    *stand_in
        .latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Duration::from_millis(r.latency_ms);
    stand_in.seen.reset();
    let token = application.shutdown_token();
    let runner = application.runner();
    let started = Instant::now();
    let task = tokio::spawn(application.run_until_stopped());
    // `--trace`: once a second, the runner's limit, groups running, groups
    // claimed and not finished, and the requests the stand-in holds.
    let trace = std::env::args().any(|a| a == "--trace").then(|| {
        let stand_in = stand_in.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let held = stand_in.seen.held.load(Ordering::SeqCst);
                eprintln!(
                    "  t={:5.1}s limit {:>3} running {:>3} claimed {:>3} at stand-in {:>3}",
                    started.elapsed().as_secs_f64(),
                    runner.limit(),
                    runner.active(),
                    runner.unfinished(),
                    held
                );
            }
        })
    });
    drained(&store, r.events).await?;
    if let Some(trace) = trace {
        trace.abort();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = r.events as f64 / elapsed;
    let how = match r.fixed {
        Some(n) => format!("fixed {n}"),
        None => "paced".to_owned(),
    };
    println!(
        "drain {label:8} {how:8} latency {:>5} ms  budget {:>3}/s  {} objects in {elapsed:6.2} s = {rate:6.1} objects/s = {:5.1} % of budget; at once at most {:>3}; most in one second {:>3}",
        r.latency_ms,
        r.budget,
        r.events,
        100.0 * rate / f64::from(r.budget),
        stand_in.seen.most_held.load(Ordering::SeqCst),
        stand_in.seen.peak_per_second(),
    );
    token.cancel();
    task.await??;
    Ok(())
}

fn list(name: &str, default: &[u64]) -> Vec<u64> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() -> anyhow::Result<()> {
    let latencies = list("--latency-ms", &[50, 250, 1000]);
    let budgets = list("--budget", &[20, 80]);
    let seconds = common::arg("--seconds", 15);
    let fixed = match common::arg("--fixed", 0) {
        0 => None,
        n => Some(n),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let fake = format!("http://{}", listener.local_addr()?);
        let stand_in = web::Data::new(StandIn {
            latency: Mutex::new(Duration::ZERO),
            seen: Seen::default(),
        });
        let data = stand_in.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        tokio::spawn(server);
        for &latency_ms in &latencies {
            for &budget in &budgets {
                let budget = u32::try_from(budget)?;
                let r = Run {
                    latency_ms,
                    budget,
                    events: usize::try_from(budget)? * seconds,
                    fixed,
                };
                if !std::env::args().any(|a| a == "--postgres-only") {
                    let dir = tempfile::tempdir()?;
                    let url = format!("sqlite://{}", dir.path().join("drain.db").display());
                    run("sqlite", &url, &fake, &stand_in, &r).await?;
                }
                if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
                    if cfg!(feature = "postgres") {
                        let url = common::fresh_pg(&base, "drain")?;
                        run("postgres", &url, &fake, &stand_in, &r).await?;
                    }
                }
            }
        }
        Ok(())
    })
}
