//! Thin events (`"object":"v2.core.event"`): which ones the reconcile
//! handler takes, and the object a health alert names.
//!
//! A thin event of an API v1 resource (`v1.customer.subscription.updated`)
//! is routed by its `related_object.type` — stored as the event's object
//! type — to the family that reconciles that type, never by a list of
//! event names: the handler then re-fetches the object like for a snapshot
//! event (with `context` as `Stripe-Account`). A snapshot event and its
//! thin twin name the same object, so they share an object key; waiting
//! together they are one group and one fetch, and processed apart the
//! second fetch reads the same current object and its write is a no-op or a
//! newer state (the writes are guarded by the order of fetches): either
//! way the twin applies once. See docs/thin-events.md.
//!
//! A refund (`charge.refund.updated`, `refund.*`, and their thin `v1.`
//! twins) is not a record of ours: its charge is. A snapshot event carries the refund
//! and so its `charge`; a thin one names only the refund, which is fetched
//! (`GET /v1/refunds/{id}`, as the `context` account) for its `charge`, and
//! that charge is reconciled like for any `charge.*` event
//! ([`charge_of_refund`]).
//!
//! Stripe's thin `v1.entitlements.active_entitlement_summary.updated`
//! carries no `related_object` (the summary has no id or URL of its own)
//! and its full event no `data`. Since thin events of API v1 resources are
//! generally available (`2026-09-30.endive`), every one of them names its v1
//! snapshot event in `snapshot_event`, and the snapshot event's object (the
//! summary) names the customer: [`customer_of_summary`] reads
//! `snapshot_event` (from the stored event, else from the full event,
//! `GET /v2/core/events/{id}`), fetches that event (`GET /v1/events/{id}`,
//! as the `context` account) and takes its `data.object.customer`, whose
//! features the handler then re-fetches like for the snapshot summary.

use serde::Deserialize;

use super::{handler_error, object_field, Family};
use crate::queue::{ClaimedEvent, HandlerError};
use crate::stripe::{Priority, StripeClient};

/// Sent by Stripe to test an event destination: answered 200, then ignored.
pub const PING: &str = "v2.core.event_destination.ping";
/// Stripe could not generate an event and now has: the object it names is
/// re-fetched (a resync), since its missed event will never come.
pub const GENERATION_FAILURE_RESOLVED: &str = "v2.core.health.event_generation_failure.resolved";

/// The prefix of thin events about API v1 resources.
const V1_PREFIX: &str = "v1.";

/// The object of `charge.refund.updated` (`data.object.object`, or the
/// thin event's `related_object.type`): reconciled as its charge.
pub const REFUND_OBJECT: &str = "refund";

/// The thin twin of `entitlements.active_entitlement_summary.updated`.
/// Unlike every other `v1.` notification it has no `related_object` (the
/// summary has no id or URL), and its full event declares no `data`: the
/// customer is found through its `snapshot_event` ([`customer_of_summary`]).
pub const SUMMARY_THIN: &str = "v1.entitlements.active_entitlement_summary.updated";

/// The family that reconciles an object type: [`Family::of_object`], and a
/// refund's charge.
fn family_of_object(object_type: &str) -> Option<Family> {
    Family::of_object(object_type)
        .or_else(|| (object_type == REFUND_OBJECT).then_some(Family::Charge))
}

/// Whether an event type is a thin event's (`v1.…`, `v2.…`).
pub fn is_thin_type(event_type: &str) -> bool {
    event_type.starts_with(V1_PREFIX) || event_type.starts_with("v2.")
}

/// The family of a stored event: by the object it names (a thin event's
/// `related_object.type`, a snapshot event's `data.object.object`), else by
/// its type. `None`: no handler takes it (it ends `ignored`).
pub fn family_of(event: &ClaimedEvent) -> Option<Family> {
    if is_thin_type(&event.event_type) {
        // v2 resources (accounts, meters, the destination's ping …) have
        // types we do not reconcile, so they end ignored here too.
        if !event.event_type.starts_with(V1_PREFIX) {
            return None;
        }
        return event.object_type.as_deref().and_then(family_of_object);
    }
    event
        .object_type
        .as_deref()
        .and_then(family_of_object)
        .or_else(|| Family::of_event(&event.event_type))
}

/// The charge a refund belongs to, `None` when there is none to reconcile.
/// A snapshot event among `events` carries the refund, and a refund never
/// changes its charge, so its `charge` is taken as it is; otherwise (thin
/// events only) the refund is fetched as `account` and its `charge` read.
/// A refund Stripe does not know (`resource_missing`), or one without a
/// charge, names nothing: logged, and `None`.
pub async fn charge_of_refund(
    client: &StripeClient,
    refund: &str,
    account: Option<&str>,
    events: &[ClaimedEvent],
) -> Result<Option<String>, HandlerError> {
    if let Some(charge) = events
        .iter()
        .filter(|e| !is_thin_type(&e.event_type))
        .find_map(|e| object_field(&e.payload, "charge"))
    {
        return Ok(Some(charge));
    }
    let path = format!("/v1/refunds/{refund}");
    let response = match client.get(&path, &[], account).await {
        Ok(response) => response,
        Err(e) if e.is_missing(refund) => {
            tracing::warn!(
                refund, account = account.unwrap_or(""), error = %e,
                "refund not found at Stripe: no charge to reconcile"
            );
            return Ok(None);
        }
        Err(e) => return Err(handler_error(e)),
    };
    let charge = &response.json["charge"];
    let charge = charge
        .as_str()
        .or_else(|| charge["id"].as_str())
        .map(str::to_owned);
    if charge.is_none() {
        tracing::warn!(
            refund,
            account = account.unwrap_or(""),
            "the refund names no charge: nothing to reconcile"
        );
    }
    Ok(charge)
}

/// The customer of a thin `v1.entitlements.active_entitlement_summary.updated`
/// (`None`: it cannot be told, nothing to fetch). The v1 snapshot event it
/// stands for is named by `snapshot_event` — in the stored payload when it
/// is a full event (catch-up lists those), else in the full event
/// (`GET /v2/core/events/{id}`) — and that event (`GET /v1/events/{id}`)
/// carries the summary, whose `customer` is the answer. Both are fetched as
/// the event's `context` account. An event Stripe no longer keeps (v1
/// events are kept 30 days) names nothing: logged, and `None`.
pub async fn customer_of_summary(
    client: &StripeClient,
    event: &ClaimedEvent,
) -> Result<Option<String>, HandlerError> {
    let account = event.account.as_deref();
    let stored: serde_json::Value = serde_json::from_str(&event.payload)
        .map_err(|e| HandlerError::permanent(format!("the stored event is not JSON: {e}")))?;
    // A notification has no `snapshot_event` key; a full event has it,
    // possibly null (then there is none to ask for again).
    let snapshot = match stored.get("snapshot_event") {
        Some(id) => id.as_str().map(str::to_owned),
        None => {
            let path = format!("/v2/core/events/{}", event.event_id);
            match client.get_v2(&path, &[], account, Priority::Live).await {
                Ok(full) => full.json["snapshot_event"].as_str().map(str::to_owned),
                Err(e) if e.is_missing(&event.event_id) => None,
                Err(e) => return Err(handler_error(e)),
            }
        }
    };
    let Some(snapshot) = snapshot.filter(|id| !id.is_empty()) else {
        tracing::warn!(
            event_id = %event.event_id, account = account.unwrap_or(""),
            "the thin entitlements summary names no snapshot event: its customer cannot be told"
        );
        return Ok(None);
    };
    let path = format!("/v1/events/{snapshot}");
    let response = match client.get(&path, &[], account).await {
        Ok(response) => response,
        Err(e) if e.is_missing(&snapshot) => {
            tracing::warn!(
                event_id = %event.event_id, snapshot_event = %snapshot, error = %e,
                "the summary's snapshot event is gone at Stripe: its customer cannot be told"
            );
            return Ok(None);
        }
        Err(e) => return Err(handler_error(e)),
    };
    let customer = &response.json["data"]["object"]["customer"];
    Ok(customer
        .as_str()
        .or_else(|| customer["id"].as_str())
        .map(str::to_owned))
}

/// Whether the reconcile handler takes `event` (see [`family_of`]).
pub fn handles(event: &ClaimedEvent, handles_type: impl Fn(&str) -> bool) -> bool {
    if event.event_type == GENERATION_FAILURE_RESOLVED || event.event_type == SUMMARY_THIN {
        return true;
    }
    if is_thin_type(&event.event_type) {
        return family_of(event).is_some();
    }
    handles_type(&event.event_type)
}

/// What a `v2.core.health.event_generation_failure.resolved` event names:
/// `data.impact.related_object` and `data.impact.context` of the full event.
#[derive(Debug, Deserialize)]
struct HealthEvent {
    data: Option<HealthData>,
}

#[derive(Debug, Deserialize)]
struct HealthData {
    impact: Option<Impact>,
}

#[derive(Debug, Deserialize)]
struct Impact {
    context: Option<String>,
    related_object: Option<Related>,
}

#[derive(Debug, Deserialize)]
struct Related {
    id: String,
    #[serde(rename = "type")]
    object_type: String,
}

/// The object to resync for a generation-failure event: from its payload
/// when the notification carries `data`, else from the full event
/// (`GET /v2/core/events/{id}`, as the account of its `context`).
/// `Ok(None)`: it names no object we reconcile (nothing to do).
pub async fn failed_object(
    client: &StripeClient,
    event: &ClaimedEvent,
) -> Result<Option<(Family, String, Option<String>)>, HandlerError> {
    let mut parsed: HealthEvent = serde_json::from_str(&event.payload)
        .map_err(|e| HandlerError::permanent(format!("the stored event is not JSON: {e}")))?;
    if parsed.data.is_none() {
        let full = client
            .get_v2(
                &format!("/v2/core/events/{}", event.event_id),
                &[],
                event.account.as_deref(),
                Priority::Live,
            )
            .await
            .map_err(|e| HandlerError::retry(format!("Stripe API (the full event): {e}")))?;
        parsed = HealthEvent::deserialize(&full.json).map_err(|e| {
            HandlerError::retry(format!("unexpected event from the Stripe API: {e}"))
        })?;
    }
    let Some(impact) = parsed.data.and_then(|d| d.impact) else {
        return Ok(None);
    };
    let Some(related) = impact.related_object else {
        return Ok(None);
    };
    let Some(family) = family_of_object(&related.object_type) else {
        tracing::info!(
            event_id = %event.event_id, object = %related.id, object_type = %related.object_type,
            "event generation failure resolved for an object type we do not reconcile"
        );
        return Ok(None);
    };
    let account = impact.context.filter(|c| !c.is_empty());
    if related.object_type == REFUND_OBJECT {
        let charge = charge_of_refund(client, &related.id, account.as_deref(), &[]).await?;
        return Ok(charge.map(|charge| (family, charge, account)));
    }
    Ok(Some((family, related.id, account)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, object_type: Option<&str>) -> ClaimedEvent {
        ClaimedEvent {
            id: 1,
            event_id: "evt_1".into(),
            event_type: event_type.into(),
            api_version: None,
            livemode: false,
            account: None,
            object_type: object_type.map(str::to_owned),
            object_id: Some("x_1".into()),
            object_key: "x_1".into(),
            stripe_created: 0,
            received_at: 0,
            queued_at: 0,
            payload: "{}".into(),
            attempts: 0,
        }
    }

    #[test]
    fn thin_events_route_by_the_related_objects_type() {
        let all = |_: &str| true;
        let sub = event("v1.customer.subscription.updated", Some("subscription"));
        assert_eq!(family_of(&sub), Some(Family::Subscription));
        assert!(handles(&sub, all));
        // A name we have never listed still routes by its object.
        let odd = event("v1.invoice.some_new_thing", Some("invoice"));
        assert_eq!(family_of(&odd), Some(Family::Invoice));
        // A refund is reconciled as its charge, in either style.
        let refund = event("v1.charge.refund.updated", Some(REFUND_OBJECT));
        assert_eq!(family_of(&refund), Some(Family::Charge));
        assert!(handles(&refund, |_| false));
        let snapshot = event("charge.refund.updated", Some(REFUND_OBJECT));
        assert_eq!(family_of(&snapshot), Some(Family::Charge));
        // So are the `refund.*` events, by their object or their name.
        assert_eq!(
            family_of(&event("v1.refund.updated", Some(REFUND_OBJECT))),
            Some(Family::Charge)
        );
        assert!(handles(
            &event("refund.created", Some(REFUND_OBJECT)),
            |t| { Family::of_event(t).is_some() }
        ));
        // The thin entitlements summary names no object, but is taken (its
        // customer is found through its snapshot event).
        assert!(handles(&event(SUMMARY_THIN, None), |_| false));
        assert_eq!(family_of(&event(SUMMARY_THIN, None)), None);
        // v1 resources we do not reconcile, v2 resources and the ping: ignored.
        assert!(!handles(&event("v1.product.updated", Some("product")), all));
        assert!(!handles(
            &event("v2.core.account.updated", Some("v2.core.account")),
            all
        ));
        assert!(!handles(
            &event(PING, Some("v2.core.event_destination")),
            all
        ));
        assert!(handles(&event(GENERATION_FAILURE_RESOLVED, None), |_| {
            false
        }));
        // Snapshot events keep their type-based routing.
        assert!(!handles(&event("invoice.upcoming", None), |t| t
            != "invoice.upcoming"));
    }
}
