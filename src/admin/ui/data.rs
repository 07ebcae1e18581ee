//! The inspector's JSON routes that the admin API lacks: events newest
//! first, an event's deliveries, the health strip, a customer's records.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::super::{blocking, AdminError, AdminState};
use crate::reconcile::entitlements;
use crate::store::deliveries::DeliverySummary;
use crate::store::events::{self, EventFilter, EventSummary};
use crate::store::schema::{
    customers, deliveries, disputes, invoices, payment_intents, subscriptions, webhook_events,
};
use crate::store::{now_ms, outbox, with_conn, DbConnection, EpochMs, StoreError};

/// The live view's filter: like `GET /v1/events`, but paged backwards.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewestFilter {
    status: Option<String>,
    /// An exact type, or a prefix (with or without a trailing `*`).
    #[serde(rename = "type")]
    event_type: Option<String>,
    object: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
    /// Only rows with a smaller id (the next page down).
    before: Option<i64>,
    limit: Option<i64>,
}

fn like_prefix(prefix: &str) -> String {
    let escaped = prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("{escaped}%")
}

fn newest(conn: &mut DbConnection, f: &NewestFilter) -> Result<Vec<EventSummary>, StoreError> {
    let limit = f.limit.unwrap_or(100).clamp(1, 500);
    let rows = with_conn!(conn, c => {
        let mut q = webhook_events::table.into_boxed();
        if let Some(s) = f.status.as_deref().filter(|s| !s.is_empty()) {
            q = q.filter(webhook_events::status.eq(s.to_owned()));
        }
        if let Some(t) = f.event_type.as_deref().filter(|t| !t.is_empty()) {
            let prefix = t.strip_suffix('*').unwrap_or(t);
            q = q.filter(webhook_events::event_type.like(like_prefix(prefix)).escape('\\'));
        }
        if let Some(o) = f.object.as_deref().filter(|o| !o.is_empty()) {
            q = q.filter(webhook_events::object_id.eq(o.to_owned()));
        }
        if let Some(t) = f.since {
            q = q.filter(webhook_events::received_at.ge(t));
        }
        if let Some(t) = f.until {
            q = q.filter(webhook_events::received_at.lt(t));
        }
        if let Some(b) = f.before {
            q = q.filter(webhook_events::id.lt(b));
        }
        q.order(webhook_events::id.desc())
            .limit(limit)
            .select(EventSummary::as_select())
            .load(c)
    })?;
    Ok(rows)
}

/// `GET /ui/events`: events newest first, with the live view's filters.
pub async fn events(
    state: web::Data<AdminState>,
    query: web::Query<NewestFilter>,
) -> Result<HttpResponse, AdminError> {
    let filter = query.into_inner();
    if let Some(s) = filter.status.as_deref().filter(|s| !s.is_empty()) {
        s.parse::<outbox::EventStatus>()
            .map_err(|e| AdminError::InvalidFilter(e.to_string()))?;
    }
    let rows = blocking(&state, move |c| newest(c, &filter)).await?;
    Ok(HttpResponse::Ok().json(json!({"events": rows})))
}

/// `GET /ui/events/{id}/deliveries`: where the event was forwarded.
pub async fn deliveries(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let rows = blocking(&state, move |c| {
        with_conn!(c, c => deliveries::table
            .filter(deliveries::event_id.eq(id))
            .order(deliveries::id.asc())
            .select(DeliverySummary::as_select())
            .load(c))
        .map_err(StoreError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({"deliveries": rows})))
}

/// The `q`-quantile (0..1) of sorted values.
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// Stripe API calls by answer, from the Prometheus text (the counter is
/// `hookd_stripe_api_requests_total{status="…"}`).
fn stripe_calls(metrics: &str) -> (f64, f64) {
    let prefix = format!("{}{{", crate::metrics::STRIPE_REQUESTS);
    let (mut total, mut errors) = (0.0, 0.0);
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(n) = value.parse::<f64>() else {
            continue;
        };
        total += n;
        let status = labels
            .split("status=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("");
        if !status.starts_with('2') {
            errors += n;
        }
    }
    (total, errors)
}

struct Figures {
    counts: Vec<(String, i64)>,
    oldest_pending: Option<i64>,
    lags: Vec<i64>,
    backlog: Vec<(String, String, i64)>,
}

fn figures(conn: &mut DbConnection) -> Result<Figures, StoreError> {
    let counts = outbox::count_by_status(conn)?;
    let oldest_pending = events::oldest_pending(conn)?;
    let recent: Vec<(i64, Option<i64>)> = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::processed_at.is_not_null())
        .order(webhook_events::id.desc())
        .limit(1000)
        .select((webhook_events::received_at, webhook_events::processed_at))
        .load(c))?;
    let mut lags: Vec<i64> = recent
        .into_iter()
        .filter_map(|(r, p)| p.map(|p| (p - r).max(0)))
        .collect();
    lags.sort_unstable();
    let backlog = with_conn!(conn, c => deliveries::table
        .filter(deliveries::status.eq_any(["pending", "delivering", "dead"]))
        .group_by((deliveries::destination, deliveries::status))
        .select((deliveries::destination, deliveries::status, diesel::dsl::count_star()))
        .load(c))?;
    Ok(Figures {
        counts,
        oldest_pending,
        lags,
        backlog,
    })
}

/// `GET /ui/health`: the health strip.
pub async fn health(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let now = now_ms();
    let f = blocking(&state, figures).await?;
    let mut by_status: BTreeMap<&str, i64> = outbox::status::ALL.iter().map(|s| (*s, 0)).collect();
    for (s, n) in &f.counts {
        if let Some(slot) = by_status.get_mut(s.as_str()) {
            *slot = *n;
        }
    }
    let mut silence = state.activity.silence(now);
    silence.sort_by(|a, b| a.0.cmp(&b.0));
    let (calls, errors) = stripe_calls(&state.metrics.render());
    let mut backlog: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (dest, status, n) in f.backlog {
        backlog.entry(dest).or_default().insert(status, n);
    }
    Ok(HttpResponse::Ok().json(json!({
        "now": now,
        "outbox": by_status,
        "oldest_pending_at": f.oldest_pending,
        "oldest_pending_secs": f.oldest_pending.map(|t| (now - t).max(0) as f64 / 1000.0),
        "lag_ms": {"p50": quantile(&f.lags, 0.5), "p99": quantile(&f.lags, 0.99), "of": f.lags.len()},
        "since_verified_secs": silence.into_iter().collect::<BTreeMap<_, _>>(),
        "stripe_api": {"calls": calls, "errors": errors,
            "error_rate": if calls > 0.0 { Some(errors / calls) } else { None },
            "budget": state.reconcile.as_ref().map(|ops| ops.client().budget())},
        "destinations": backlog,
    })))
}

/// Everything stored about a customer (or the customer of a subscription,
/// invoice or payment) and every event that touched those objects.
fn object_view(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let customer_id: Option<String> = if id.starts_with("cus_") {
        Some(id.to_owned())
    } else {
        with_conn!(conn, c => {
            let from_sub = subscriptions::table
                .filter(subscriptions::id.eq(id))
                .select(subscriptions::customer_id)
                .first::<Option<String>>(c)
                .optional()?
                .flatten();
            let from_invoice = invoices::table
                .filter(invoices::id.eq(id))
                .select(invoices::customer_id)
                .first::<Option<String>>(c)
                .optional()?
                .flatten();
            let from_payment = payment_intents::table
                .filter(payment_intents::id.eq(id))
                .select(payment_intents::customer_id)
                .first::<Option<String>>(c)
                .optional()?
                .flatten();
            Ok::<_, diesel::result::Error>(from_sub.or(from_invoice).or(from_payment))
        })?
    };
    let Some(cus) = customer_id else {
        // Not a customer's object: just the events about it.
        let events = events::list(
            conn,
            &EventFilter {
                object: Some(id.to_owned()),
                limit: Some(500),
                ..EventFilter::default()
            },
        )?;
        if events.is_empty() {
            return Ok(None);
        }
        return Ok(Some(json!({"id": id, "customer": null, "events": events})));
    };
    type Sub = (String, String, Option<i64>, Option<i64>, bool, Option<i64>);
    type Inv = (
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<i64>,
    );
    type Pay = (
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    type Dis = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let (customer, subs, invs, pays) = with_conn!(conn, c => {
        let customer = customers::table
            .filter(customers::id.eq(&cus))
            .select((customers::id, customers::email, customers::name, customers::deleted))
            .first::<(String, Option<String>, Option<String>, bool)>(c)
            .optional()?;
        let subs: Vec<Sub> = subscriptions::table
            .filter(subscriptions::customer_id.eq(&cus))
            .order(subscriptions::id.asc())
            .select((subscriptions::id, subscriptions::status, subscriptions::current_period_end,
                subscriptions::past_due_since, subscriptions::cancel_at_period_end, subscriptions::canceled_at))
            .load(c)?;
        let invs: Vec<Inv> = invoices::table
            .filter(invoices::customer_id.eq(&cus))
            .order(invoices::id.asc())
            .select((invoices::id, invoices::subscription_id, invoices::status, invoices::amount_due,
                invoices::amount_paid, invoices::currency, invoices::period_end))
            .load(c)?;
        let pays: Vec<Pay> = payment_intents::table
            .filter(payment_intents::customer_id.eq(&cus))
            .order(payment_intents::id.asc())
            .select((payment_intents::id, payment_intents::status, payment_intents::amount,
                payment_intents::currency, payment_intents::last_payment_error))
            .load(c)?;
        Ok::<_, diesel::result::Error>((customer, subs, invs, pays))
    })?;
    let pay_ids: Vec<String> = pays.iter().map(|p| p.0.clone()).collect();
    let dis: Vec<Dis> = with_conn!(conn, c => disputes::table
        .filter(disputes::payment_intent_id.eq_any(&pay_ids))
        .order(disputes::id.asc())
        .select((disputes::id, disputes::payment_intent_id, disputes::status, disputes::reason,
            disputes::amount, disputes::currency))
        .load(c))?;
    let access = entitlements::for_customer_all(conn, &cus)?;
    let mut ids: Vec<String> = vec![cus.clone()];
    ids.extend(subs.iter().map(|s| s.0.clone()));
    ids.extend(invs.iter().map(|i| i.0.clone()));
    ids.extend(pay_ids.iter().cloned());
    ids.extend(dis.iter().map(|d| d.0.clone()));
    let touched: Vec<EventSummary> = with_conn!(conn, c => webhook_events::table
        .filter(webhook_events::object_id.eq_any(&ids))
        .order(webhook_events::id.desc())
        .limit(500)
        .select(EventSummary::as_select())
        .load(c))?;
    if customer.is_none() && subs.is_empty() && touched.is_empty() {
        return Ok(None);
    }
    let access: Vec<serde_json::Value> = access
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["active_now"] = e.active_at(now).into();
            v
        })
        .collect();
    Ok(Some(json!({
        "id": id,
        "customer": customer.map(|(id, email, name, deleted)| json!({"id": id, "email": email, "name": name, "deleted": deleted}))
            .unwrap_or_else(|| json!({"id": cus})),
        "subscriptions": subs.into_iter().map(|(id, status, end, pd, cape, canceled)| json!({
            "id": id, "status": status, "current_period_end": end, "past_due_since": pd,
            "cancel_at_period_end": cape, "canceled_at": canceled})).collect::<Vec<_>>(),
        "invoices": invs.into_iter().map(|(id, sub, status, due, paid, cur, end)| json!({
            "id": id, "subscription": sub, "status": status, "amount_due": due,
            "amount_paid": paid, "currency": cur, "period_end": end})).collect::<Vec<_>>(),
        "payments": pays.into_iter().map(|(id, status, amount, cur, err)| json!({
            "id": id, "status": status, "amount": amount, "currency": cur,
            "last_payment_error": err})).collect::<Vec<_>>(),
        "disputes": dis.into_iter().map(|(id, pi, status, reason, amount, cur)| json!({
            "id": id, "payment_intent": pi, "status": status, "reason": reason,
            "amount": amount, "currency": cur})).collect::<Vec<_>>(),
        "access": access,
        "events": touched,
    })))
}

/// `GET /ui/objects/{id}`: a customer's records, access now and events.
pub async fn object(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let lookup = id.clone();
    let now = EpochMs::now().as_i64();
    let view = blocking(&state, move |c| object_view(c, &lookup, now))
        .await?
        .ok_or(AdminError::NoSuchEvent(format!("or object {id}")))?;
    Ok(HttpResponse::Ok().json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_ranked_value() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn stripe_errors_are_the_non_2xx_calls() {
        let text = "hookd_stripe_api_requests_total{status=\"200\"} 8\nhookd_stripe_api_requests_total{status=\"500\"} 1\nhookd_stripe_api_requests_total{status=\"network\"} 1\nother 5\n";
        assert_eq!(stripe_calls(text), (10.0, 2.0));
    }
}
