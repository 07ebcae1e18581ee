//! Operator subcommands that work on the database directly (the daemon may
//! be running or not): inspect events, replay, dead letters. Human-readable
//! output by default, `--json` for scripts.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::store::events::{self, EventFilter, EventSummary};
use crate::store::outbox::EventStatus;
use crate::store::{EpochMs, Store};

#[derive(Debug, Clone, Args)]
pub(crate) struct FilterArgs {
    /// pending, processing, done, ignored, dead or discarded.
    #[arg(long)]
    pub status: Option<String>,
    /// An event type, or a prefix ending in `*` (quote it: 'invoice.*').
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// A Stripe object id (sub_…, in_…, cus_…).
    #[arg(long)]
    pub object: Option<String>,
    /// Received at or after: RFC 3339 (2026-11-20T10:00:00Z), unix seconds, or an age (90m, 2h, 3d).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Received before (same forms as --since).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
}

impl FilterArgs {
    pub(crate) fn to_filter(&self) -> EventFilter {
        EventFilter {
            status: self.status.clone(),
            event_type: self.event_type.clone(),
            object: self.object.clone(),
            since: self.since.map(EpochMs),
            until: self.until.map(EpochMs),
            ..EventFilter::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.event_type.is_none()
            && self.object.is_none()
            && self.since.is_none()
            && self.until.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events (oldest first), with filters and pages.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Show events after this row id (the `next` of the previous page).
        #[arg(long)]
        after: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Show one event: its fields, payload and every attempt.
    Show {
        event_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeadCommand {
    /// List dead events.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one dead event with its attempts.
    Show {
        event_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-queue dead events (by id, or every one with --all), with a fresh retry budget.
    Retry {
        event_ids: Vec<String>,
        #[arg(long, conflicts_with = "event_ids")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Give up on a dead event, saying why (kept, never retried).
    Discard {
        event_id: String,
        #[arg(long)]
        reason: String,
    },
}

/// Parses RFC 3339, unix seconds, or an age ("90m", "2h", "3d" ago) into epoch ms.
pub(super) fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis();
        return i64::try_from(ms).map_err(|e| e.to_string());
    }
    if let Ok(age) = humantime::parse_duration(s) {
        return Ok(EpochMs::now().saturating_sub(age).as_i64().max(0));
    }
    Err(format!("{s:?} is not a time: use RFC 3339 (2026-11-20T10:00:00Z), unix seconds, or an age such as 2h or 3d"))
}

pub(super) fn open(config: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&config.database_url(), &config.database.store_options())
        .context("cannot open the database")?;
    store.check_ready().context("the database is not ready")?;
    Ok(store)
}

pub(super) fn fmt_time(at: EpochMs) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(at.as_i64()).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn print_events(rows: &[EventSummary]) {
    println!(
        "{:<8} {:<32} {:<40} {:<11} {:>3} {:<20} error",
        "row", "event", "type", "status", "try", "received"
    );
    for r in rows {
        println!(
            "{:<8} {:<32} {:<40} {:<11} {:>3} {:<20} {}",
            r.id,
            r.event_id,
            r.event_type,
            r.status,
            r.attempts,
            fmt_time(r.received_at),
            r.last_error.as_deref().unwrap_or("")
        );
    }
}

fn show(store: &Store, event_id: &str, json: bool) -> anyhow::Result<()> {
    let (event, attempts) = events::show(&mut *store.conn()?, event_id)?
        .ok_or_else(|| anyhow::anyhow!("no event {event_id}"))?;
    if json {
        let payload: serde_json::Value =
            serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null);
        println!(
            "{}",
            serde_json::json!({"event": event, "payload": payload, "attempts": attempts})
        );
        return Ok(());
    }
    println!("event      {}", event.event_id);
    println!("type       {}", event.event_type);
    println!(
        "object     {} {}",
        event.object_type.as_deref().unwrap_or("-"),
        event.object_id.as_deref().unwrap_or("-")
    );
    println!("status     {} (attempts {})", event.status, event.attempts);
    println!(
        "received   {} on endpoint {}",
        fmt_time(event.received_at),
        event.endpoint
    );
    println!(
        "livemode   {}   api_version {}",
        event.livemode,
        event.api_version.as_deref().unwrap_or("-")
    );
    if let Some(e) = &event.last_error {
        println!("last error {e}");
    }
    println!("attempts:");
    for a in attempts {
        println!(
            "  #{:<3} {:<10} {} → {}  {}  {}",
            a.attempt,
            a.outcome.as_deref().unwrap_or("running"),
            fmt_time(a.started_at),
            a.finished_at
                .map(fmt_time)
                .unwrap_or_else(|| "-".to_owned()),
            a.worker,
            a.error.as_deref().unwrap_or("")
        );
    }
    println!("payload:\n{}", event.payload);
    Ok(())
}

pub(super) fn events(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    match command {
        EventsCommand::List {
            filter,
            limit,
            after,
            json,
        } => {
            let mut f = filter.to_filter();
            f.limit = Some(limit);
            f.after = after;
            f.validate().map_err(|e| anyhow::anyhow!(e))?;
            let rows = events::list(&mut *store.conn()?, &f)?;
            let next = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| r.id))
                .flatten();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"events": rows, "next_after": next})
                );
            } else {
                print_events(&rows);
                if let Some(next) = next {
                    println!("more: --after {next}");
                }
            }
            Ok(())
        }
        EventsCommand::Show { event_id, json } => show(&store, &event_id, json),
    }
}

pub(super) fn replay(
    config: &Config,
    event_ids: Vec<String>,
    filter: FilterArgs,
    json: bool,
) -> anyhow::Result<()> {
    let store = open(config)?;
    if event_ids.is_empty() && filter.is_empty() {
        anyhow::bail!("say what to replay: event ids, or a filter such as --status dead or --type 'invoice.*' --since 2d");
    }
    let mut conn = store.conn()?;
    let mut done = events::Replayed::default();
    if event_ids.is_empty() {
        let f = filter.to_filter();
        f.validate().map_err(|e| anyhow::anyhow!(e))?;
        done = events::replay(&mut conn, &f, "cli", EpochMs::now())?;
    } else {
        for id in event_ids {
            if crate::store::outbox::get(&mut conn, &id)?.is_none() {
                anyhow::bail!("no event {id}");
            }
            let f = EventFilter {
                event_id: Some(id),
                ..filter.to_filter()
            };
            let one = events::replay(&mut conn, &f, "cli", EpochMs::now())?;
            done.replayed.extend(one.replayed);
            done.in_flight.extend(one.in_flight);
        }
    }
    report_replay(&done, json);
    Ok(())
}

fn report_replay(done: &events::Replayed, json: bool) {
    if json {
        println!("{}", serde_json::json!(done));
        return;
    }
    println!(
        "replayed {} event(s); the runner picks them up within its poll interval",
        done.replayed.len()
    );
    for id in &done.replayed {
        println!("  {id}");
    }
    if !done.in_flight.is_empty() {
        println!(
            "skipped {} event(s) a worker holds right now:",
            done.in_flight.len()
        );
        for id in &done.in_flight {
            println!("  {id}");
        }
    }
}

/// `sign-out-everywhere`: deletes every inspector session (the admin
/// listener finds none from then on, on any instance; open live streams
/// end at their next check).
pub(super) fn sign_out_everywhere(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = open(config)?;
    let ended = crate::admin::ui::sessions::delete_all(&mut *store.conn()?)
        .context("cannot delete the inspector sessions")?;
    tracing::info!(
        outcome = "signed_out_everywhere",
        sessions = ended,
        via = "cli",
        "every inspector session ended"
    );
    if json {
        println!("{}", serde_json::json!({"signed_out": ended}));
    } else {
        println!(
            "ended {ended} inspector session(s); every browser signs in again with the admin token"
        );
    }
    Ok(())
}

pub(super) fn dead(config: &Config, command: DeadCommand) -> anyhow::Result<()> {
    let store = open(config)?;
    match command {
        DeadCommand::List { limit, json } => {
            let f = EventFilter {
                status: Some(EventStatus::Dead.as_str().to_owned()),
                limit: Some(limit),
                ..EventFilter::default()
            };
            let rows = events::list(&mut *store.conn()?, &f)?;
            if json {
                println!("{}", serde_json::json!({"events": rows}));
            } else if rows.is_empty() {
                println!("no dead events");
            } else {
                print_events(&rows);
            }
            Ok(())
        }
        DeadCommand::Show { event_id, json } => show(&store, &event_id, json),
        DeadCommand::Retry {
            event_ids,
            all,
            json,
        } => {
            let mut conn = store.conn()?;
            let dead_only = EventFilter {
                status: Some(EventStatus::Dead.as_str().to_owned()),
                ..EventFilter::default()
            };
            let done = if all {
                events::replay(&mut conn, &dead_only, "cli", EpochMs::now())?
            } else if event_ids.is_empty() {
                anyhow::bail!("name the dead events to retry, or pass --all");
            } else {
                let mut done = events::Replayed::default();
                for id in event_ids {
                    let f = EventFilter {
                        event_id: Some(id.clone()),
                        ..dead_only.clone()
                    };
                    let one = events::replay(&mut conn, &f, "cli", EpochMs::now())?;
                    if one.replayed.is_empty() {
                        anyhow::bail!(
                            "{id} is not a dead event (see `stripe-hookd events show {id}`)"
                        );
                    }
                    done.replayed.extend(one.replayed);
                }
                done
            };
            report_replay(&done, json);
            Ok(())
        }
        DeadCommand::Discard { event_id, reason } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why the event is discarded");
            }
            events::discard(
                &mut *store.conn()?,
                &event_id,
                &reason,
                "cli",
                EpochMs::now(),
            )?;
            println!("discarded {event_id}: {reason}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        let two_hours_ago = parse_time("2h").expect("age");
        let expected = now_ms() - 2 * 3600 * 1000;
        assert!((two_hours_ago - expected).abs() < 5_000);
        assert!(parse_time("yesterday-ish").is_err());
    }
}
