//! Helpers shared by the benchmarks.

#![allow(dead_code)]

use stripe_hookd::testing::store::outbox::{self, NewEvent};
use stripe_hookd::testing::store::{now_ms, DbConnection};

/// Distinct stored-event rows numbered `ids` (one object each), received `now`.
pub fn events(
    prefix: &str,
    event_type: &str,
    object: &str,
    ids: std::ops::Range<usize>,
    now: i64,
    payload: &str,
) -> Vec<NewEvent> {
    let at = stripe_hookd::testing::store::EpochMs(now);
    ids.map(|i| NewEvent {
        event_id: format!("evt_{prefix}_{i:09}"),
        endpoint: prefix.into(),
        event_type: event_type.into(),
        api_version: Some("2025-03-31.basil".into()),
        livemode: false,
        account: None,
        object_type: Some(object.into()),
        object_id: Some(format!("{object}_{prefix}_{i}")),
        object_key: format!("{object}_{prefix}_{i}"),
        stripe_created: now / 1000,
        received_at: at,
        queued_at: at,
        payload: payload.to_owned(),
        headers: "{}".into(),
        secret_index: 0,
        next_attempt_at: at,
        priority: stripe_hookd::testing::store::outbox::LIVE,
    })
    .collect()
}

/// A new database under `base`'s Postgres server, for one run.
pub fn fresh_pg(base: &str, tag: &str) -> anyhow::Result<String> {
    #[cfg(feature = "postgres")]
    {
        use diesel::{Connection, RunQueryDsl};
        let name = format!("hookd_bench_{tag}_{}", std::process::id());
        let mut admin = diesel::PgConnection::establish(base)?;
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)?;
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
        let (prefix, _) = base
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("URL without a database"))?;
        Ok(format!("{prefix}/{name}"))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = tag;
        anyhow::bail!("built without --features postgres: {base} cannot be used")
    }
}

/// The value of `--name N` on the command line.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Stores `n` finished `invoice.paid` events (endpoint `fill`) with a
/// realistic ~3 KB payload, 5,000 rows per insert.
pub fn fill_done(conn: &mut DbConnection, n: usize) -> anyhow::Result<()> {
    let payload = stripe_hookd::testing::trigger::Scenario::new(false, "2025-03-31.basil")
        .event("invoice.paid")
        .map(|e| e.to_string())
        .unwrap_or_default();
    let now = now_ms();
    for start in (0..n).step_by(5_000) {
        let batch = events(
            "fill",
            "invoice.paid",
            "in",
            start..(start + 5_000).min(n),
            now,
            &payload,
        );
        outbox::insert_batch(conn, &batch)?;
    }
    conn.batch_execute(
        "UPDATE webhook_events SET status = 'done', processed_at = received_at WHERE endpoint = 'fill'",
    )?;
    Ok(())
}

/// A fake Stripe for the benches: any object GET gets a realistic object of
/// that id (built from Stripe's fixtures) at once; the event list is empty.
pub async fn stripe_any_object(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    let path = req.path();
    if path == "/v1/events" {
        // The catch-up's listing: nothing missed.
        return actix_web::HttpResponse::Ok().json(serde_json::json!({
            "object": "list", "data": [], "has_more": false, "url": "/v1/events"
        }));
    }
    let id = path.rsplit('/').next().unwrap_or_default().to_owned();
    let s = stripe_hookd::testing::trigger::Scenario::new(false, "2025-03-31.basil");
    let kind = if path.starts_with("/v1/subscriptions/") {
        "customer.subscription.created"
    } else if path.starts_with("/v1/invoices/") {
        "invoice.paid"
    } else if path.starts_with("/v1/payment_intents/") {
        "payment_intent.succeeded"
    } else if path.starts_with("/v1/disputes/") {
        "charge.dispute.created"
    } else if path.starts_with("/v1/checkout/sessions/") {
        "checkout.session.completed"
    } else {
        "customer.created"
    };
    let mut object = s.object(kind).unwrap_or_default();
    object["id"] = serde_json::json!(id);
    actix_web::HttpResponse::Ok()
        .insert_header(("Request-Id", "req_bench"))
        .json(object)
}

/// Waits until `n` events have finished (`done` or `ignored`), polling every
/// `poll`; an error after `within`.
pub async fn finished(
    store: &stripe_hookd::testing::store::Store,
    n: usize,
    poll: std::time::Duration,
    within: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let s = store.clone();
        let done = tokio::task::spawn_blocking(move || -> anyhow::Result<i64> {
            let counts = outbox::count_by_status(&mut *s.conn()?)?;
            Ok(counts
                .iter()
                .filter(|(st, _)| st == "done" || st == "ignored")
                .map(|(_, n)| *n)
                .sum())
        })
        .await??;
        if done as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "events did not drain");
        tokio::time::sleep(poll).await;
    }
}
