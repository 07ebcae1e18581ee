//! What the demo shows: the banner, each event's state and the app's
//! pending deliveries (read through the admin API, as an operator would),
//! the customer's access (read from the store, as an application would:
//! docs/entitlements.md), what the demo's app received, and the summary
//! at the end.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use serde::Deserialize;

use super::app::{Handled, Received, DESTINATION};
use super::outcome::{Delivered, StoryOutcome};
use super::{say, Demo, Out};
use crate::config::Signature;
use crate::reconcile::entitlements::{self, Entitlement};
use crate::store::inspect::{record_status as status_of, RecordTable as Table};
use crate::store::now_ms;

/// An event as the admin API shows it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct EventState {
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    #[serde(default)]
    pub received_at: Option<i64>,
}

impl EventState {
    /// Nothing more will happen to it without an operator.
    pub(super) fn finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "done" | "ignored" | "dead" | "discarded"
        )
    }
}

/// `GET {admin}/v1/…` with the demo's token.
async fn admin_get(demo: &Demo, path: &str) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}{path}", demo.admin_url);
    let res = demo
        .client
        .get(&url)
        .bearer_auth(&demo.admin_token)
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("the admin API answered {status} to GET {path}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON"))
}

/// `POST /v1/deliveries/{id}/redeliver` with the demo's token.
pub(super) async fn redeliver(demo: &Demo, delivery_id: &str) -> anyhow::Result<()> {
    let path = format!("/v1/deliveries/{delivery_id}/redeliver");
    let url = format!("{}{path}", demo.admin_url);
    let res = demo
        .client
        .post(&url)
        .bearer_auth(&demo.admin_token)
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {url}"))?;
    let status = res.status();
    if !status.is_success() {
        let body = res.text().await.unwrap_or_default();
        anyhow::bail!("the admin API answered {status} to POST {path}: {body}");
    }
    Ok(())
}

/// One event's state: `GET /v1/events/{id}`.
pub(super) async fn event_state(demo: &Demo, event_id: &str) -> anyhow::Result<EventState> {
    let shown = admin_get(demo, &format!("/v1/events/{event_id}")).await?;
    serde_json::from_value(shown["event"].clone())
        .with_context(|| format!("the admin API's event {event_id}"))
}

/// How many of the app's deliveries are pending or being sent:
/// `GET /v1/deliveries?destination=demo-app&status=…`.
pub(super) async fn deliveries_in_flight(demo: &Demo) -> anyhow::Result<usize> {
    let mut n = 0;
    for status in ["pending", "delivering"] {
        let listed = admin_get(
            demo,
            &format!("/v1/deliveries?destination={DESTINATION}&status={status}&limit=1000"),
        )
        .await?;
        n += listed["deliveries"].as_array().map_or(0, Vec::len);
    }
    Ok(n)
}

pub(super) fn scheme_name(scheme: Signature) -> &'static str {
    match scheme {
        Signature::Stripe => "Stripe's",
        Signature::Standard => "Standard Webhooks'",
    }
}

/// One request the app received, and what it did with it.
pub(super) fn describe_received(r: &Received) -> String {
    let sequence = r
        .sequence
        .map(|s| format!("seq {s}"))
        .unwrap_or_else(|| "-".to_owned());
    let what = match &r.handled {
        Handled::Applied if r.attempt > 1 => "handled: the retry succeeded, same delivery id",
        Handled::Applied => "handled",
        Handled::FailedOnPurpose => "answered 500 (on purpose): stripe-hookd retries it",
        Handled::Duplicate => "a delivery id handled before: answered 200, not handled again",
        Handled::Stale { .. } => "older than the sequence applied: answered 200, dropped",
        Handled::Refused(_) => "signature refused: answered 400",
    };
    let access = match r.has_access {
        Some(true) => " · has_access: true",
        Some(false) => " · has_access: false",
        None => "",
    };
    format!(
        "← {:<34} try {} {:<7} {what}{access}",
        r.event_type, r.attempt, sequence
    )
}

/// The customer's access, and the subscription's status, now.
pub(super) struct Access {
    pub subscription_status: Option<String>,
    pub rows: Vec<Entitlement>,
    pub now: i64,
}

impl Access {
    pub(super) fn granted(&self) -> bool {
        self.rows.iter().any(|e| e.active_at(self.now))
    }

    /// The end of a time-limited access (a past_due grace).
    pub(super) fn until(&self) -> Option<i64> {
        self.rows
            .iter()
            .filter(|e| e.active_at(self.now) && e.status == "past_due")
            .filter_map(|e| e.access_until)
            .max()
    }

    pub(super) fn describe(&self) -> String {
        let sub = self
            .subscription_status
            .as_deref()
            .unwrap_or("not known yet");
        let access = match (self.granted(), self.until()) {
            (true, Some(until)) => format!("yes, until {} (grace)", fmt_time(until)),
            (true, None) => "yes".to_owned(),
            (false, _) => "none".to_owned(),
        };
        format!("subscription: {sub} · access now: {access}")
    }
}

/// Reads the access of `customer` and the status of `subscription`.
pub(super) async fn access(
    demo: &Demo,
    customer: &str,
    subscription: &str,
) -> anyhow::Result<Access> {
    let (store, customer, subscription) = (
        demo.store.clone(),
        customer.to_owned(),
        subscription.to_owned(),
    );
    tokio::task::spawn_blocking(move || -> anyhow::Result<Access> {
        let mut conn = store.conn()?;
        let rows = entitlements::for_customer_all(&mut conn, &customer)?;
        let subscription_status = status_of(&mut conn, Table::Subscription, &subscription)?;
        Ok(Access {
            subscription_status,
            rows,
            now: now_ms(),
        })
    })
    .await
    .context("the database task failed")?
}

/// `done (1 attempt)`, `ignored`, `pending (retrying: …)`.
pub(super) fn describe_status(d: &Delivered) -> String {
    let what = match d.status.as_str() {
        "done" => format!(
            "done: fetched from Stripe and applied ({} attempt{})",
            d.attempts,
            if d.attempts == 1 { "" } else { "s" }
        ),
        "ignored" => "ignored: a type no handler takes".to_owned(),
        other => format!(
            "{other} after {} attempt(s){}",
            d.attempts,
            d.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
    };
    format!("{:<34} {what}", d.event_type)
}

pub(super) fn fmt_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Where everything is, printed first.
pub(super) fn banner(demo: &Demo, out: Out<'_>) {
    say(
        out,
        "stripe-hookd demo: the real daemon against a Stripe stand-in (test mode, no account, nothing leaves this machine)",
    );
    say(out, "");
    say(out, format!("  inspector    {}", demo.inspector_url()));
    say(
        out,
        format!(
            "  admin token  {}   (one-time: made up for this run)",
            demo.admin_token
        ),
    );
    say(
        out,
        format!(
            "  intake       {}   (signing secret {})",
            demo.intake_url, demo.secret
        ),
    );
    say(
        out,
        format!(
            "  Stripe       a stand-in at {}, reachable only from this demo",
            demo.fake.base_url()
        ),
    );
    say(
        out,
        format!(
            "  your app     {}   (destination {DESTINATION}: {} signature, secret {})",
            demo.app.url(),
            scheme_name(demo.app.scheme()),
            demo.app.secret()
        ),
    );
    say(
        out,
        format!(
            "  database     {}   (deleted when the demo stops)",
            demo.database_url
        ),
    );
}

/// The end of the story: the event list, the records and the access view.
pub(super) async fn summary(
    demo: &Demo,
    out: Out<'_>,
    outcome: &StoryOutcome,
) -> anyhow::Result<()> {
    say(
        out,
        "\n── The events (as `stripe-hookd events list` shows them)",
    );
    let listed = admin_get(demo, "/v1/events?limit=1000").await?;
    let events: Vec<EventState> =
        serde_json::from_value(listed["events"].clone()).context("the admin API's event list")?;
    say(
        out,
        format!(
            "{:<32} {:<34} {:<9} {:>3} {:<20} object",
            "event", "type", "status", "try", "received"
        ),
    );
    for e in &events {
        say(
            out,
            format!(
                "{:<32} {:<34} {:<9} {:>3} {:<20} {}",
                e.event_id,
                e.event_type,
                e.status,
                e.attempts,
                e.received_at.map(fmt_time).unwrap_or_default(),
                e.object_id.as_deref().unwrap_or("-")
            ),
        );
    }
    let sent = outcome
        .steps
        .iter()
        .flat_map(|s| &s.deliveries)
        .filter(|d| !d.duplicate)
        .count();
    let deliveries: usize = outcome.steps.iter().map(|s| s.deliveries.len()).sum();
    say(
        out,
        format!(
            "{deliveries} deliveries, {sent} distinct events, {} stored.",
            events.len()
        ),
    );

    let got: Vec<&Received> = outcome.steps.iter().flat_map(|s| &s.app).collect();
    let count = |f: &dyn Fn(&Handled) -> bool| got.iter().filter(|r| f(&r.handled)).count();
    say(
        out,
        format!(
            "\n── Your app ({} signature)\n  {} requests: {} verified and handled once each; {} answered 500 on purpose, then retried; {} redelivered, not handled again; {} out of sequence; {} refused (bad signature).\n  The inspector's page of each event lists its deliveries to {DESTINATION}, with every attempt.",
            scheme_name(demo.app.scheme()),
            got.len(),
            count(&|h| *h == Handled::Applied),
            count(&|h| *h == Handled::FailedOnPurpose),
            count(&|h| *h == Handled::Duplicate),
            count(&|h| matches!(h, Handled::Stale { .. })),
            count(&|h| matches!(h, Handled::Refused(_))),
        ),
    );

    let records = records(demo, outcome).await?;
    say(
        out,
        "\n── The local records (re-fetched from Stripe, one row each)",
    );
    for (kind, id, status) in &records {
        say(
            out,
            format!(
                "  {kind:<17} {id:<34} {}",
                status.as_deref().unwrap_or("(absent)")
            ),
        );
    }

    let access = access(demo, &outcome.customer, &outcome.subscription).await?;
    say(
        out,
        "\n── Access now (the entitlements; docs/entitlements.md)",
    );
    say(
        out,
        format!(
            "  {:<30} {:<30} {:<10} {:<7} {:<21} access now",
            "subscription", "price", "status", "grants", "access until"
        ),
    );
    for e in &access.rows {
        say(
            out,
            format!(
                "  {:<30} {:<30} {:<10} {:<7} {:<21} {}",
                e.subscription_id,
                e.price_id.as_deref().unwrap_or("-"),
                e.status,
                e.grants,
                e.access_until
                    .filter(|_| e.grants)
                    .map(fmt_time)
                    .unwrap_or_else(|| "-".to_owned()),
                if e.active_at(access.now) { "yes" } else { "no" }
            ),
        );
    }
    say(
        out,
        format!(
            "  customer {} (your user {}): {}",
            outcome.customer,
            outcome.client_reference_id,
            if access.granted() {
                "has access"
            } else {
                "no access"
            }
        ),
    );
    Ok(())
}

/// Every record the story touched: (kind, id, local status).
async fn records(
    demo: &Demo,
    outcome: &StoryOutcome,
) -> anyhow::Result<Vec<(&'static str, String, Option<String>)>> {
    let mut wanted = vec![
        ("customer", Table::Customer, outcome.customer.clone()),
        (
            "checkout session",
            Table::CheckoutSession,
            outcome.checkout_session.clone(),
        ),
        (
            "subscription",
            Table::Subscription,
            outcome.subscription.clone(),
        ),
    ];
    for (i, invoice) in outcome.invoices.iter().enumerate() {
        let kind = if i == 0 {
            "invoice"
        } else {
            "invoice (renewal)"
        };
        wanted.push((kind, Table::Invoice, invoice.clone()));
    }
    wanted.push((
        "payment intent",
        Table::PaymentIntent,
        outcome.payment_intent.clone(),
    ));
    wanted.push(("dispute", Table::Dispute, outcome.dispute.clone()));
    let store = demo.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = store.conn()?;
        wanted
            .into_iter()
            .map(|(kind, table, id)| {
                let status = status_of(&mut conn, table, &id)?;
                Ok((kind, id, status))
            })
            .collect()
    })
    .await
    .context("the database task failed")?
}

/// What to try while the daemon keeps serving.
pub(super) fn still_serving(demo: &Demo, out: Out<'_>) {
    say(
        out,
        "\nThe daemon keeps serving until Ctrl-C. Meanwhile, from another terminal:",
    );
    say(
        out,
        format!(
            "  curl -H 'Authorization: Bearer {}' {}/v1/events",
            demo.admin_token, demo.admin_url
        ),
    );
    say(
        out,
        format!(
            "  DATABASE_URL={} stripe-hookd events list",
            demo.database_url
        ),
    );
    say(
        out,
        format!(
            "  DATABASE_URL={} stripe-hookd deliveries list --destination {DESTINATION}",
            demo.database_url
        ),
    );
    say(
        out,
        format!(
            "  stripe-hookd trigger invoice.paid --url {} --secret {}   (an invoice the stand-in does not know: recorded as gone)",
            demo.intake_url, demo.secret
        ),
    );
}
