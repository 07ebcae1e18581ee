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

use serde::Deserialize;

use super::Family;
use crate::queue::{ClaimedEvent, HandlerError};
use crate::stripe::{Priority, StripeClient};

/// Sent by Stripe to test an event destination: answered 200, then ignored.
pub const PING: &str = "v2.core.event_destination.ping";
/// Stripe could not generate an event and now has: the object it names is
/// re-fetched (a resync), since its missed event will never come.
pub const GENERATION_FAILURE_RESOLVED: &str = "v2.core.health.event_generation_failure.resolved";

/// The prefix of thin events about API v1 resources.
const V1_PREFIX: &str = "v1.";

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
        return event.object_type.as_deref().and_then(Family::of_object);
    }
    event
        .object_type
        .as_deref()
        .and_then(Family::of_object)
        .or_else(|| Family::of_event(&event.event_type))
}

/// Whether the reconcile handler takes `event` (see [`family_of`]).
pub fn handles(event: &ClaimedEvent, handles_type: impl Fn(&str) -> bool) -> bool {
    if event.event_type == GENERATION_FAILURE_RESOLVED {
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
    let Some(family) = Family::of_object(&related.object_type) else {
        tracing::info!(
            event_id = %event.event_id, object = %related.id, object_type = %related.object_type,
            "event generation failure resolved for an object type we do not reconcile"
        );
        return Ok(None);
    };
    let account = impact.context.filter(|c| !c.is_empty());
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
