//! `stripe-hookd deliveries …`: forwarding deliveries on the database
//! directly (the daemon may be running or not): list, show with every
//! attempt, redeliver by id or filter (dead ones: `--status dead`),
//! discard with a reason.

use clap::{Args, Subcommand};

use super::ops::{fmt_time, open, parse_time};
use crate::config::Config;
use crate::store::deliveries::{self, history, Change, DeliveryFilter};
use crate::store::EpochMs;

#[derive(Debug, Subcommand)]
pub(crate) enum DeliveriesCommand {
    /// List deliveries (oldest first), optionally of one destination and status.
    List {
        #[arg(long)]
        destination: Option<String>,
        /// pending, delivering, delivered, dead or discarded.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Show deliveries after this row id (the `next` of the previous page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one delivery: its fields, body and every attempt (headers, status, answer).
    Show {
        delivery_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send deliveries again from attempt 1 (same delivery id): by id, or
    /// every one matching a filter (`--status dead` retries the dead ones).
    Redeliver {
        delivery_ids: Vec<String>,
        #[command(flatten)]
        filter: RedeliverFilter,
    },
    /// Give up on a dead or pending delivery, saying why.
    Discard {
        delivery_id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Args)]
pub(crate) struct RedeliverFilter {
    /// dead, delivered or discarded.
    #[arg(long, conflicts_with = "delivery_ids")]
    pub status: Option<String>,
    #[arg(long, requires = "status")]
    pub destination: Option<String>,
    /// An event type, or a prefix ending in `*` (quote it: 'invoice.*').
    #[arg(long = "type", requires = "status")]
    pub event_type: Option<String>,
    /// Recorded at or after: RFC 3339, unix seconds, or an age (90m, 2h, 3d).
    #[arg(long, value_parser = parse_time, requires = "status")]
    pub since: Option<i64>,
    #[arg(long, value_parser = parse_time, requires = "status")]
    pub until: Option<i64>,
}

/// Deliveries re-queued per transaction by a filter.
const BATCH: i64 = 500;

pub(super) fn run(config: &Config, command: DeliveriesCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    let mut conn = store.conn()?;
    let conn = &mut *conn;
    match command {
        DeliveriesCommand::List {
            destination,
            status,
            limit,
            after,
            json,
        } => {
            let rows = deliveries::list_filtered(
                conn,
                destination.as_deref(),
                status.as_deref(),
                after,
                limit.clamp(1, 1000),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:<8} {:<28} {:<12} {:<10} {:>3} {:<6} {:<32} event",
                "row", "delivery", "destination", "status", "try", "http", "type"
            );
            for r in &rows {
                println!(
                    "{:<8} {:<28} {:<12} {:<10} {:>3} {:<6} {:<32} {}",
                    r.id,
                    r.delivery_id,
                    r.destination,
                    r.status,
                    r.attempts,
                    r.last_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    r.event_type,
                    r.event_id
                );
            }
            if let Some(last) = rows.last().filter(|_| rows.len() as i64 == limit) {
                println!("next page: --after {}", last.id);
            }
            Ok(())
        }
        DeliveriesCommand::Show { delivery_id, json } => {
            let Some(d) = deliveries::get(conn, &delivery_id)? else {
                anyhow::bail!("no delivery {delivery_id}");
            };
            let attempts = history::for_delivery(conn, &delivery_id)?;
            if json {
                let attempts: Vec<serde_json::Value> = attempts
                    .iter()
                    .map(|a| {
                        let mut v = serde_json::to_value(a).unwrap_or_default();
                        v["request_headers"] = serde_json::json!(a.headers());
                        v
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"delivery": d, "attempts": attempts})
                    )?
                );
                return Ok(());
            }
            println!("delivery     {}", d.delivery_id);
            println!("destination  {}", d.destination);
            println!("event        {} ({})", d.event_id, d.event_type);
            println!("object       {}", d.object_key);
            println!("status       {} after {} attempt(s)", d.status, d.attempts);
            println!("recorded     {}", fmt_time(EpochMs(d.created_at)));
            if let Some(t) = d.delivered_at {
                println!("delivered    {}", fmt_time(EpochMs(t)));
            }
            if let Some(e) = &d.last_error {
                println!("last error   {e}");
            }
            for a in &attempts {
                println!(
                    "\nattempt {} at {}: {} in {} ms, HTTP {}{}",
                    a.attempt,
                    fmt_time(EpochMs(a.started_at)),
                    a.outcome,
                    a.duration_ms,
                    a.http_status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    a.error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
                for (name, value) in a.headers() {
                    println!("  > {name}: {value}");
                }
                if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
                    println!("  < {body}");
                }
            }
            match &d.payload {
                Some(body) => println!("\nbody\n{body}"),
                None => println!("\nbody\n({})", deliveries::BODY_MISSING),
            }
            Ok(())
        }
        DeliveriesCommand::Redeliver {
            delivery_ids,
            filter,
        } => {
            let now = crate::store::now_ms();
            if let Some(status) = filter.status {
                let filter = DeliveryFilter {
                    status,
                    destination: filter.destination,
                    event_type: filter.event_type,
                    since: filter.since,
                    until: filter.until,
                };
                filter.validate().map_err(anyhow::Error::msg)?;
                let mut total = 0;
                loop {
                    let n = deliveries::redeliver_matching(conn, &filter, now, BATCH)?;
                    total += n;
                    if (n as i64) < BATCH {
                        break;
                    }
                }
                println!("{total} deliveries re-queued");
                return Ok(());
            }
            if delivery_ids.is_empty() {
                anyhow::bail!("say what to redeliver: delivery ids, or a filter such as --status dead [--destination NAME]");
            }
            let mut failed = false;
            for id in delivery_ids {
                match deliveries::redeliver(conn, &id, now)? {
                    Change::Done(before) => println!("{id}: re-queued (was {before})"),
                    Change::Missing => {
                        eprintln!("{id}: no such delivery");
                        failed = true;
                    }
                    Change::Refused(_) => {
                        eprintln!("{id}: being sent right now, left alone");
                        failed = true;
                    }
                    Change::Busy(now) => {
                        eprintln!("{id}: changed meanwhile (now {now}), left alone; try again");
                        failed = true;
                    }
                }
            }
            if failed {
                anyhow::bail!("some deliveries were not re-queued");
            }
            Ok(())
        }
        DeliveriesCommand::Discard {
            delivery_id,
            reason,
        } => {
            if reason.trim().is_empty() {
                anyhow::bail!("say why: --reason \"…\"");
            }
            match deliveries::discard(conn, &delivery_id, &reason, crate::store::now_ms())? {
                Change::Missing => anyhow::bail!("no delivery {delivery_id}"),
                Change::Done(b) => {
                    tracing::info!(delivery_id = %delivery_id, before = %b, reason = %reason, "delivery discarded from the command line");
                    println!("{delivery_id}: discarded (was {b})");
                    Ok(())
                }
                Change::Refused(s) if s == deliveries::status::DELIVERING => anyhow::bail!(
                    "{delivery_id} is being sent right now: left alone; try again once the attempt ended"
                ),
                Change::Refused(other) => anyhow::bail!(
                    "{delivery_id} is {other}: only dead or pending deliveries can be discarded"
                ),
                Change::Busy(now) => anyhow::bail!(
                    "{delivery_id} changed meanwhile (now {now}): left alone; try again"
                ),
            }
        }
    }
}
