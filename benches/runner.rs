//! Runner throughput with a no-op handler (every event ends `done`, nothing
//! else written): the cost of the queue itself — claim, lease, finish,
//! attempt rows — on SQLite (`synchronous=FULL`) and on Postgres.
//!
//! ```sh
//! cargo bench --bench runner                                   # SQLite
//! BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench runner             # both
//! cargo bench --bench runner -- --events 20000 --concurrency 16
//! # several instances (own pool and runner each) on one database, events
//! # arriving over 30 objects while a 20 ms handler (a Stripe stand-in) runs:
//! cargo bench --bench runner -- --events 3000 --objects 30 --delay-ms 20 --instances 3
//! # the same on Postgres alone:
//! BENCH_POSTGRES_URL=… cargo bench --features postgres --bench runner -- --postgres-only …
//! ```
//! With `--objects` the events are fed in while the runners work (one per
//! object per batch, as deliveries arrive), not stored up front. Every
//! ERROR the runners log (a failed claim, a deadlock) is counted and shown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use stripe_hookd::testing::queue::{
    self, apply_fn, Apply, BenchSwitches, EventGroup, Handler, HandlerError, Runner,
};
use stripe_hookd::testing::store::outbox;
use stripe_hookd::testing::store::{now_ms, Store};
use stripe_hookd::testing::util::Clock;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Applies nothing; waits `delay` first (a Stripe API stand-in).
struct Noop {
    delay: Duration,
}

impl Handler for Noop {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn handle(
        &self,
        _: EventGroup,
        _: &stripe_hookd::testing::queue::HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        let delay = self.delay;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let apply: Apply = apply_fn(|_| Ok(()));
            Ok(apply)
        }
        .boxed()
    }
}

/// Counts the ERROR events logged (and lets the fmt layer print them).
struct CountErrors(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CountErrors {
    // Only errors are built at all: the other logs would cost the runner time.
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if *meta.level() == tracing::Level::ERROR {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        *meta.level() == tracing::Level::ERROR
    }
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Run {
    events: usize,
    concurrency: usize,
    /// 0: one object per event, stored before the runners start.
    objects: usize,
    delay: Duration,
    instances: usize,
    bench: BenchSwitches,
}

async fn run(label: &str, url: &str, run: &Run, errors: &AtomicUsize) -> anyhow::Result<()> {
    let n = run.events;
    // The built-in configuration, with this run's concurrency.
    let config = stripe_hookd::testing::config::from_toml_str(&format!(
        "[database]\npool_size = {}\n[runner]\nconcurrency = {}\npoll_interval_ms = 50",
        run.concurrency + 4,
        run.concurrency
    ))?;
    let store_options = config.database.store_options();
    let store = Store::open(url, &store_options)?;
    store.migrate()?;
    let mut events = common::events(
        "bench",
        "customer.subscription.updated",
        "sub",
        0..n,
        now_ms(),
        "{}",
    );
    if run.objects > 0 {
        for (i, e) in events.iter_mut().enumerate() {
            e.object_key = format!("sub_bench_{}", i % run.objects);
            e.object_id = Some(e.object_key.clone());
        }
    } else {
        let mut conn = store.conn()?;
        for chunk in events.chunks(500) {
            outbox::insert_batch(&mut conn, chunk)?;
        }
        events.clear();
    }
    let mut options = config.runner.options();
    options.bench = run.bench;
    let errors_before = errors.load(Ordering::Relaxed);
    let token = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..run.instances.max(1) {
        let runner = Arc::new(Runner::new(
            Store::open(url, &store_options)?,
            Arc::new(Noop { delay: run.delay }),
            options.clone(),
            Clock::default(),
        )?);
        workers.push(tokio::spawn(queue::worker::run(
            runner,
            Arc::clone(&wake),
            Arc::new(|| {}),
            token.clone(),
        )));
    }
    // Deliveries arriving: one event per object per batch, waking the runners.
    let feeder = {
        let (store, wake, objects) = (store.clone(), Arc::clone(&wake), run.objects.max(1));
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut conn = store.conn()?;
            for chunk in events.chunks(objects) {
                outbox::insert_batch(&mut conn, chunk)?;
                wake.notify_waiters();
            }
            Ok(())
        })
    };
    feeder.await??;
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
    for worker in workers {
        worker.await??;
    }
    println!(
        "runner {label:8}{} events={n} objects={} delay={}ms instances={} concurrency={} elapsed={:.2}s throughput={:.0} events/s errors_logged={}",
        match (
            std::env::args().any(|a| a == "--per-group"),
            std::env::args().any(|a| a == "--portable-claim"),
        ) {
            (false, false) => "",
            (true, false) => " (finishing per group)",
            (false, true) => " (portable claim)",
            (true, true) => " (finishing per group, portable claim)",
        },
        run.objects,
        run.delay.as_millis(),
        run.instances,
        run.concurrency,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        errors.load(Ordering::Relaxed) - errors_before,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let run_options = Run {
        events: common::arg("--events", 10_000),
        concurrency: common::arg("--concurrency", 8),
        objects: common::arg("--objects", 0),
        delay: Duration::from_millis(common::arg("--delay-ms", 0) as u64),
        instances: common::arg("--instances", 1),
        // The ways of running to compare with the default in one build:
        // `--per-group` (finish each group in its own savepoint on
        // Postgres too, before set-based finishing), `--portable-claim`
        // (claim on Postgres with one statement per step and a synchronous
        // commit, before `claim_pg`), `--finisher-threads N` (finishing
        // threads on Postgres, default 2).
        bench: BenchSwitches {
            finish_per_group: std::env::args().any(|a| a == "--per-group"),
            portable_claim: std::env::args().any(|a| a == "--portable-claim"),
            pg_finisher_threads: Some(common::arg("--finisher-threads", 0)).filter(|&n| n > 0),
        },
    };
    let errors = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry()
        .with(CountErrors(Arc::clone(&errors)))
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::ERROR),
        );
    tracing::subscriber::set_global_default(subscriber)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        // `--postgres-only`: skip the SQLite run (several instances are a
        // Postgres setup).
        if !std::env::args().any(|a| a == "--postgres-only") {
            run("sqlite", &url, &run_options, &errors).await?;
        }
        if let Ok(base) = std::env::var("BENCH_POSTGRES_URL") {
            if cfg!(feature = "postgres") {
                run(
                    "postgres",
                    &common::fresh_pg(&base, "runner")?,
                    &run_options,
                    &errors,
                )
                .await?;
            } else {
                eprintln!("BENCH_POSTGRES_URL given but built without --features postgres");
            }
        }
        Ok(())
    })
}
