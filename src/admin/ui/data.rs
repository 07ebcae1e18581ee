//! The inspector's JSON routes that the admin API lacks: events newest
//! first, an event's deliveries, the health strip, a customer's records.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::super::{blocking, AdminError, AdminState};
use crate::reconcile::entitlements;
use crate::store::events::{self, EventFilter};
use crate::store::inspect::{self, NewestFilter};
use crate::store::{now_ms, outbox, DbConnection, EpochMs, StoreError};

/// `GET /ui/events`: events newest first, with the live view's filters.
pub(crate) async fn events(
    state: web::Data<AdminState>,
    query: web::Query<NewestFilter>,
) -> Result<HttpResponse, AdminError> {
    let filter = query.into_inner();
    if let Some(s) = filter.status.as_deref().filter(|s| !s.is_empty()) {
        s.parse::<outbox::EventStatus>()
            .map_err(|e| AdminError::InvalidFilter(e.to_string()))?;
    }
    let rows = blocking(&state, move |c| inspect::newest_events(c, &filter)).await?;
    Ok(HttpResponse::Ok().json(json!({"events": rows})))
}

/// `GET /ui/events/{id}/deliveries`: where the event was forwarded.
pub(crate) async fn deliveries(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = id.into_inner();
    let rows = blocking(&state, move |c| inspect::deliveries_of(c, &id)).await?;
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

/// `GET /ui/health`: the health strip.
pub(crate) async fn health(state: web::Data<AdminState>) -> Result<HttpResponse, AdminError> {
    let now = now_ms();
    let f = blocking(&state, inspect::health_figures).await?;
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
/// invoice, payment or charge) and every event that touched those objects.
fn object_view(
    conn: &mut DbConnection,
    id: &str,
    now: i64,
) -> Result<Option<serde_json::Value>, StoreError> {
    let customer_id = inspect::customer_of(conn, id)?;
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
    let records = inspect::customer_records(conn, &cus)?;
    let access = entitlements::for_customer_all(conn, &cus)?;
    let touched = inspect::events_about(conn, &records.object_ids(&cus), 500)?;
    if records.customer.is_none()
        && records.subscriptions.is_empty()
        && records.charges.is_empty()
        && touched.is_empty()
    {
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
        "customer": match &records.customer {
            Some(c) => json!(c),
            None => json!({"id": cus}),
        },
        "subscriptions": records.subscriptions,
        "invoices": records.invoices,
        "payments": records.payments,
        "charges": records.charges,
        "disputes": records.disputes,
        "access": access,
        "events": touched,
    })))
}

/// `GET /ui/objects/{id}`: a customer's records, access now and events.
pub(crate) async fn object(
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
