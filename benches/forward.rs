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
//! cargo bench --bench forward -- --dead-app 100000 --objects 100000 --speed 1000   # memory, app down
//! ```
//!
//! `--dead-app N`: N deliveries queued for an app that refuses connections,
//! sent until every one is `dead`: the forwarder's clock runs `--speed`
//! times as fast as the wall clock (default 1000: the 72 h retry budget of
//! `forward.max_age_hours` elapses in about 4 1/2 minutes), so each
//! delivery goes through its backoff cycles until its budget is spent.
//! Every `--sample-secs` (5) the process's resident memory, the attempts
//! made, the backlog and the dead are printed; at the end the minimum,
//! maximum and last RSS. `--dead-secs` (900) bounds the run (wall clock).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use actix_web::{web, App, HttpResponse, HttpServer};
use stripe_hookd::testing::config::After;
use stripe_hookd::testing::forward::{self, Forwarder};
use stripe_hookd::testing::store::{outbox, Store};
use stripe_hookd::testing::util::Clock;

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
fn fill(
    store: &Store,
    receiver: &str,
    run: &Run,
) -> anyhow::Result<stripe_hookd::testing::config::Config> {
    let config = stripe_hookd::testing::config::from_toml_str(&format!(
        "[database]\npool_size = 8\n[forward]\nmax_in_flight = {}\n[[destinations]]\nname = \"bench\"\nurl = \"{receiver}\"\nsecret = \"whsec_bench\"\nafter = \"received\"\n",
        run.in_flight
    ))?;
    let hook = forward::hook(&config.destinations, After::Received)
        .ok_or_else(|| anyhow::anyhow!("no hook"))?;
    store.hooks().set_received(hook);
    let now = stripe_hookd::testing::store::now_ms();
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
        outbox::insert_batch(&mut conn, chunk)?;
    }
    Ok(config)
}

/// `--dead-app`: how long and how fast the app-down run goes.
struct DeadApp {
    /// Wall-clock bound of the run.
    secs: u64,
    /// How many times as fast as the wall clock the forwarder's clock runs.
    speed: u64,
    sample_secs: u64,
}

/// Attempts made (counted at claim), deliveries not yet finished, dead.
#[derive(diesel::QueryableByName)]
struct Progress {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    attempts: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    backlog: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    dead: i64,
}

fn progress(store: &Store) -> anyhow::Result<Progress> {
    use diesel::RunQueryDsl;
    let mut conn = store.conn()?;
    let query = diesel::sql_query(
        "SELECT CAST(COALESCE(SUM(attempts), 0) AS BIGINT) AS attempts, \
                CAST(COALESCE(SUM(CASE WHEN status IN ('pending', 'delivering') THEN 1 ELSE 0 END), 0) AS BIGINT) AS backlog, \
                CAST(COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0) AS BIGINT) AS dead \
         FROM deliveries",
    );
    Ok(stripe_hookd::testing::store::with_conn!(&mut *conn, c => query.get_result::<Progress>(c))?)
}

/// `--dead-app`: memory with a large backlog for an app that is down, over
/// the whole retry budget (a fast clock), until every delivery is dead.
async fn dead_app(url: &str, run: &Run, dead: &DeadApp) -> anyhow::Result<()> {
    // A port nothing listens on: every attempt is refused at once.
    let closed = TcpListener::bind("127.0.0.1:0")?;
    let receiver = format!("http://{}/hook", closed.local_addr()?);
    drop(closed);
    let store = Store::open(
        url,
        &stripe_hookd::testing::config::from_toml_str("[database]\npool_size = 8\n")?
            .database
            .store_options(),
    )?;
    store.migrate()?;
    let config = fill(&store, &receiver, run)?;
    let destination = &config.destinations[0];
    let before = rss_mib();
    let clock = Clock::default();
    let forwarder = Arc::new(Forwarder::new(
        store.clone(),
        config.destinations.clone(),
        stripe_hookd::testing::forward::ForwardOptions::from_config(&config.forward),
        clock.clone(),
    )?);
    // The fast clock: every 50 ms of wall time, 50 ms x speed of clock time.
    let ticker = {
        let (clock, speed) = (clock.clone(), dead.speed.max(1));
        tokio::spawn(async move {
            let tick = Duration::from_millis(50);
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                clock.advance(tick * u32::try_from(speed - 1).unwrap_or(u32::MAX));
            }
        })
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(
        Arc::clone(&forwarder).run(Arc::new(tokio::sync::Notify::new()), shutdown.clone()),
    );
    println!(
        "dead app: {} deliveries over {} objects, max_in_flight {}, budget {} attempts / {} h, clock x{}; RSS before {before:.1} MiB",
        run.deliveries,
        run.objects,
        destination.max_in_flight,
        destination.max_attempts,
        destination.max_age.as_secs() / 3600,
        dead.speed
    );
    let started = Instant::now();
    let clock_started = clock.now_ms();
    let mut series: Vec<f64> = Vec::new();
    let last = loop {
        tokio::time::sleep(Duration::from_secs(dead.sample_secs.max(1))).await;
        let rss = rss_mib();
        series.push(rss);
        let p = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || progress(&store)).await??
        };
        println!(
            "  t={:>4} s  clock +{:>5.1} h  RSS {rss:>6.1} MiB  attempts {:>8}  backlog {:>6}  dead {:>6}",
            started.elapsed().as_secs(),
            (clock.now_ms() - clock_started) as f64 / 3_600_000.0,
            p.attempts,
            p.backlog,
            p.dead
        );
        if p.backlog == 0 || started.elapsed() >= Duration::from_secs(dead.secs) {
            break p;
        }
    };
    shutdown.cancel();
    task.await??;
    ticker.abort();
    let min = series.iter().copied().fold(f64::INFINITY, f64::min);
    let max = series.iter().copied().fold(0.0, f64::max);
    println!(
        "dead app: {} s, {} attempts (all refused, each recorded with its history row), {} dead, {} left; RSS before {before:.1} MiB, while running min {min:.1} / max {max:.1} / last {:.1} MiB",
        started.elapsed().as_secs(),
        last.attempts,
        last.dead,
        last.backlog,
        series.last().copied().unwrap_or(0.0)
    );
    println!(
        "RSS series (MiB, every {} s): {}",
        dead.sample_secs,
        series
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

async fn run(label: &str, url: &str, receiver: &str, run: &Run) -> anyhow::Result<()> {
    let store = Store::open(
        url,
        &stripe_hookd::testing::config::from_toml_str("[database]\npool_size = 8\n")?
            .database
            .store_options(),
    )?;
    store.migrate()?;
    let config = fill(&store, receiver, run)?;
    let forwarder = Arc::new(Forwarder::new(
        store.clone(),
        config.destinations.clone(),
        stripe_hookd::testing::forward::ForwardOptions::from_config(&config.forward),
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
    let dead_app_run = DeadApp {
        secs: common::arg("--dead-secs", 900) as u64,
        speed: common::arg("--speed", 1000) as u64,
        sample_secs: common::arg("--sample-secs", 5) as u64,
    };
    let dead = common::arg("--dead-app", 0);
    runtime.block_on(async {
        if dead > 0 {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}", dir.path().join("dead.db").display());
            let run = Run {
                deliveries: dead,
                ..options
            };
            return dead_app(&url, &run, &dead_app_run).await;
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
