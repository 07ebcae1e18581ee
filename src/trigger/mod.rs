//! `stripe-hookd trigger`: realistic signed Stripe deliveries without a
//! Stripe account, one at a time or as a load test.
//!
//! Events come from [`scenario`]; each request is signed at send time exactly
//! as Stripe does (`t=<now>,v1=HMAC-SHA256(secret, "{t}.{body}")`).

pub(crate) mod scenario;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::Serialize;

use crate::store::now_ms;
use crate::util::signing;
pub use scenario::{Scenario, TYPES};

/// Where and how to send: an intake endpoint's URL and its signing secret.
#[derive(Debug, Clone)]
pub struct Intake {
    pub url: String,
    pub secret: String,
}

/// The `Stripe-Signature` header for `body` signed now under `secret`.
pub fn signature_header(secret: &str, body: &str) -> String {
    let t = now_ms() / 1000;
    format!(
        "t={t},v1={}",
        signing::sign(secret.as_bytes(), t, body.as_bytes())
    )
}

pub fn http_client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .timeout(Duration::from_secs(30))
        .user_agent("Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .build()
        .context("cannot build the HTTP client")
}

/// Sends one signed body; returns the status and the response text.
pub async fn send(
    client: &reqwest::Client,
    target: &Intake,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let res = client
        .post(&target.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature_header(&target.secret, body))
        .body(body.to_owned())
        .send()
        .await
        .with_context(|| format!("cannot reach {}", target.url))?;
    let status = res.status().as_u16();
    Ok((status, res.text().await.unwrap_or_default()))
}

/// Load-test settings.
#[derive(Debug, Clone)]
pub struct Load {
    pub count: usize,
    pub concurrency: usize,
    /// Offered requests per second (None: as fast as answers come).
    pub rate: Option<f64>,
    /// Extra deliveries of already-sent events, in percent of `count`.
    pub duplicates_pct: f64,
    pub shuffle: bool,
    pub livemode: bool,
    pub api_version: String,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub requests: usize,
    pub distinct_events: usize,
    pub elapsed_secs: f64,
    pub requests_per_sec: f64,
    pub latency_ms: Percentiles,
    /// Answers by HTTP status ("error" for connection failures).
    pub statuses: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// `count` distinct events over consecutive scenarios, plus duplicates.
pub(crate) fn load_bodies(load: &Load) -> Vec<String> {
    let mut bodies = Vec::with_capacity(load.count);
    let mut scenario = Scenario::new(load.livemode, &load.api_version);
    for i in 0..load.count {
        if i % TYPES.len() == 0 && i > 0 {
            scenario = Scenario::new(load.livemode, &load.api_version);
        }
        let (t, _) = TYPES[i % TYPES.len()];
        if let Some(event) = scenario.event(t) {
            bodies.push(event.to_string());
        }
    }
    let extra = ((load.count as f64) * load.duplicates_pct / 100.0).round() as usize;
    let mut rng = rand::rng();
    let dups: Vec<String> = (0..extra)
        .filter_map(|_| bodies.choose(&mut rng).cloned())
        .collect();
    bodies.extend(dups);
    if load.shuffle {
        bodies.shuffle(&mut rng);
    }
    bodies
}

/// Fires the load at `target` and measures it.
pub async fn run_load(target: &Intake, load: &Load) -> anyhow::Result<Report> {
    let bodies = Arc::new(load_bodies(load));
    let client = http_client(load.concurrency)?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let pace = load
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(1.0 / r));
    let tasks: Vec<_> = (0..load.concurrency.max(1))
        .map(|_| {
            let (bodies, next, client, target) = (
                Arc::clone(&bodies),
                Arc::clone(&next),
                client.clone(),
                target.clone(),
            );
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else {
                        return samples;
                    };
                    if let Some(pace) = pace {
                        // Request i is due at i × pace from the start: a fixed offered rate.
                        let due = started + pace.mul_f64(i as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let t0 = Instant::now();
                    let status = match send(&client, &target, body).await {
                        Ok((status, _)) => status.to_string(),
                        Err(_) => "error".to_owned(),
                    };
                    samples.push((t0.elapsed(), status));
                }
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(bodies.len());
    for t in tasks {
        samples.extend(t.await.context("a load task failed")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = samples
        .iter()
        .map(|(d, _)| d.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((p / 100.0) * (latencies.len() as f64 - 1.0)).round() as usize;
        (latencies[idx.min(latencies.len() - 1)] * 1000.0).round() / 1000.0
    };
    let mut statuses = std::collections::BTreeMap::new();
    for (_, s) in &samples {
        *statuses.entry(s.clone()).or_insert(0) += 1;
    }
    Ok(Report {
        requests: samples.len(),
        distinct_events: load.count,
        elapsed_secs: elapsed,
        requests_per_sec: samples.len() as f64 / elapsed.max(1e-9),
        latency_ms: Percentiles {
            p50: pct(50.0),
            p95: pct(95.0),
            p99: pct(99.0),
            max: pct(100.0),
        },
        statuses,
    })
}
