//! Catch-up: pull the events Stripe could not deliver (`GET /v1/events`,
//! `delivery_success=false` and/or a time range, 30 days at most) and ingest
//! the missing ones through the same outbox insert as the intake, so a
//! downtime leaves no hole. Background priority: live events go first.
//!
//! With a thin endpoint configured it lists the thin events too
//! (`GET /v2/core/events`, `created[gte]` as RFC 3339, paged by
//! `next_page_url`; v2 has no delivery filter, so every event of the range
//! is listed and the stored ones are skipped by id).

pub mod connect;

use serde::Serialize;
use serde_json::Value;

use crate::store::outbox::{self, Inserted, NewEvent};
use crate::store::{now_ms, EpochMs, Store, StoreError};
use crate::stripe::envelope;
use crate::stripe::{Priority, StripeClient, StripeError};

/// Stripe keeps events for 30 days.
pub(crate) const MAX_AGE_SECS: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct CatchUpOptions {
    /// Events created at or after (unix seconds); clamped to 30 days ago.
    pub since: i64,
    /// Only events whose delivery failed (`delivery_success=false`).
    pub only_failed: bool,
    pub dry_run: bool,
    /// Also list thin events (`GET /v2/core/events`): set when an endpoint
    /// is configured `thin = true`.
    pub thin: bool,
}

impl CatchUpOptions {
    /// Whether catch-up should list thin events for this configuration.
    pub fn thin_for(config: &crate::config::Config) -> bool {
        config.endpoints.iter().any(|e| e.thin)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CatchUpReport {
    pub dry_run: bool,
    pub listed: usize,
    pub already_stored: usize,
    /// Missing events, ingested (or, in a dry run, that would be).
    pub missing: Vec<String>,
    pub skipped: Vec<String>,
    /// Connected accounts whose events could not be listed (a deauthorized
    /// account's 401/403, …), with the cause: the others were caught up.
    pub failed_accounts: Vec<AccountFailure>,
}

/// A connected account that catch-up could not go through, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountFailure {
    pub account: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("Stripe API: {0}")]
    Stripe(#[from] StripeError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// The endpoint name recorded for events ingested by catch-up.
pub const ENDPOINT: &str = "catch-up";

pub async fn run(
    client: &StripeClient,
    store: &Store,
    options: &CatchUpOptions,
) -> Result<CatchUpReport, CatchUpError> {
    run_as(client, store, options, None).await
}

/// [`run`] over one Connect account's events (`Stripe-Account`; `None`: the
/// platform's). An event listed as a connected account is stored with that
/// `account`, as a Connect endpoint would have received it, so that its
/// processing fetches from the account (`connect::catch_up` runs it
/// for every connected account).
pub(crate) async fn run_as(
    client: &StripeClient,
    store: &Store,
    options: &CatchUpOptions,
    account: Option<&str>,
) -> Result<CatchUpReport, CatchUpError> {
    let since = options.since.max(now_ms() / 1000 - MAX_AGE_SECS);
    let since_param = since.to_string();
    let mut report = CatchUpReport {
        dry_run: options.dry_run,
        ..CatchUpReport::default()
    };
    let mut params: Vec<(&str, &str)> = vec![("created[gte]", since_param.as_str())];
    if options.only_failed {
        params.push(("delivery_success", "false"));
    }
    let mut pages = client
        .pages("/v1/events", &params, Priority::Background)
        .account(account);
    while let Some(data) = pages.next().await? {
        ingest(store, &data, account, options.dry_run, &mut report).await?;
    }
    // Thin events of connected accounts carry `context`; the platform
    // listing of /v2/core/events holds them all, so it runs once.
    if options.thin && account.is_none() {
        let since_rfc3339 = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.max(0).unsigned_abs()),
        )
        .to_string();
        let params = [("created[gte]", since_rfc3339.as_str())];
        let mut pages = client.v2_pages("/v2/core/events", &params, Priority::Background);
        while let Some(data) = pages.next().await? {
            ingest(store, &data, None, options.dry_run, &mut report).await?;
        }
    }
    Ok(report)
}

/// Stores the events of one listed page that are missing (or, in a dry
/// run, counts them), either style.
async fn ingest(
    store: &Store,
    data: &[Value],
    account: Option<&str>,
    dry_run: bool,
    report: &mut CatchUpReport,
) -> Result<(), CatchUpError> {
    report.listed += data.len();
    let mut batch: Vec<NewEvent> = Vec::new();
    for event in data {
        let payload = with_account(event, account).to_string();
        match envelope::parse(payload.as_bytes()) {
            Ok(env) => batch.push(NewEvent::from_envelope(
                env,
                ENDPOINT,
                payload,
                "{}".to_owned(),
                -1,
                EpochMs::now(),
                outbox::BACKGROUND,
            )),
            Err(e) => {
                let id = event
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned();
                tracing::warn!(event_id = %id, error = %e, "catch-up skipped an event it cannot store");
                report.skipped.push(id);
            }
        }
    }
    let store_ = store.clone();
    let outcomes =
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, bool)>, StoreError> {
            let mut conn = store_.conn()?;
            if dry_run {
                batch
                    .iter()
                    .map(|e| {
                        Ok((
                            e.event_id.clone(),
                            outbox::get(&mut conn, &e.event_id)?.is_some(),
                        ))
                    })
                    .collect()
            } else {
                let inserted = outbox::insert_batch(&mut conn, &batch)?;
                Ok(batch
                    .iter()
                    .zip(inserted)
                    .map(|(e, i)| (e.event_id.clone(), i == Inserted::Duplicate))
                    .collect())
            }
        })
        .await
        .map_err(|e| CatchUpError::Other(e.to_string()))??;
    for (id, existed) in outcomes {
        if existed {
            report.already_stored += 1;
        } else {
            tracing::info!(event_id = %id, dry_run, "catch-up: event was missing");
            report.missing.push(id);
        }
    }
    Ok(())
}

/// The event as a Connect endpoint receives it: with `account` when it was
/// listed as a connected account and does not say so itself.
fn with_account<'a>(event: &'a Value, account: Option<&str>) -> std::borrow::Cow<'a, Value> {
    match account {
        Some(account) if event.get("account").and_then(Value::as_str).is_none() => {
            let mut event = event.clone();
            if let Some(map) = event.as_object_mut() {
                map.insert("account".to_owned(), Value::from(account));
            }
            std::borrow::Cow::Owned(event)
        }
        _ => std::borrow::Cow::Borrowed(event),
    }
}
