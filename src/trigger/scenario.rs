//! Realistic events without a Stripe account: Stripe's own published example
//! objects (`openapi-fixtures.json`, from stripe/openapi, MIT) with fresh ids
//! that are consistent across one scenario (one customer, its subscription,
//! invoice, payment, checkout session and dispute), the current time, and the
//! fields each event type implies (a failed payment has a
//! `last_payment_error`, a deleted subscription is `canceled`, …).

use serde_json::{json, Map, Value};

use crate::store::now_ms;

const FIXTURES: &str = include_str!("openapi-fixtures.json");

/// The fixtures, parsed once.
fn fixtures() -> &'static Value {
    static PARSED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(FIXTURES).unwrap_or(Value::Null))
}

/// One of Stripe's published example objects by its object name
/// (`charge`, `customer`, …), for shapes `Scenario::object` does not build.
pub(crate) fn fixture(name: &str) -> Option<Value> {
    fixtures().get(name).cloned()
}

/// The event types `trigger` can build.
pub const TYPES: &[(&str, &str)] = &[
    ("payment_intent.succeeded", "a one-off payment succeeded"),
    (
        "payment_intent.payment_failed",
        "a payment attempt failed (card declined)",
    ),
    ("customer.created", "a customer was created"),
    ("customer.updated", "a customer's details changed"),
    (
        "customer.subscription.created",
        "a subscription started (active)",
    ),
    (
        "customer.subscription.updated",
        "a subscription changed (e.g. past_due)",
    ),
    (
        "customer.subscription.deleted",
        "a subscription was canceled",
    ),
    ("invoice.paid", "an invoice was paid"),
    (
        "invoice.payment_succeeded",
        "a subscription renewal was paid",
    ),
    ("invoice.payment_failed", "a subscription renewal failed"),
    ("charge.dispute.created", "a customer disputed a charge"),
    (
        "checkout.session.completed",
        "a Checkout Session completed (subscription mode)",
    ),
];

/// Ids shared by every object of one scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub customer: String,
    pub subscription: String,
    pub subscription_item: String,
    pub invoice: String,
    pub payment_intent: String,
    pub charge: String,
    pub dispute: String,
    pub checkout_session: String,
    pub price: String,
    pub product: String,
    pub client_reference_id: String,
    pub livemode: bool,
    pub api_version: String,
}

/// A Stripe-looking id: prefix + 24 random alphanumerics.
pub fn new_id(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 24)
    )
}

impl Scenario {
    pub fn new(livemode: bool, api_version: &str) -> Scenario {
        Scenario {
            customer: new_id("cus"),
            subscription: new_id("sub"),
            subscription_item: new_id("si"),
            invoice: new_id("in"),
            payment_intent: new_id("pi"),
            charge: new_id("ch"),
            dispute: new_id("dp"),
            checkout_session: new_id("cs_test"),
            price: new_id("price"),
            product: new_id("prod"),
            client_reference_id: format!("user_{}", rand::random::<u32>()),
            livemode,
            api_version: api_version.to_owned(),
        }
    }

    /// The event's `data.object` for `event_type`, or `None` if unknown.
    pub fn object(&self, event_type: &str) -> Option<Value> {
        let fixtures = fixtures();
        let fixture = |name: &str| fixtures.get(name).cloned().unwrap_or_else(|| json!({}));
        let now = now_ms() / 1000;
        let month = 30 * 24 * 3600;
        let mut object = match event_type {
            "payment_intent.succeeded" | "payment_intent.payment_failed" => {
                let mut pi = fixture("payment_intent");
                set(&mut pi, "id", json!(self.payment_intent));
                set(&mut pi, "customer", json!(self.customer));
                set(&mut pi, "amount", json!(2000));
                set(&mut pi, "currency", json!("usd"));
                if event_type.ends_with("succeeded") {
                    set(&mut pi, "status", json!("succeeded"));
                    set(&mut pi, "amount_received", json!(2000));
                    set(&mut pi, "latest_charge", json!(self.charge));
                    set(&mut pi, "last_payment_error", Value::Null);
                } else {
                    set(&mut pi, "status", json!("requires_payment_method"));
                    set(&mut pi, "amount_received", json!(0));
                    let mut error = json!({"code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined.", "type": "card_error"});
                    if self.endive() {
                        set(&mut error, "payment_method_type", json!("card"));
                    }
                    set(&mut pi, "last_payment_error", error);
                }
                if self.endive() {
                    set(&mut pi, "payment_record", Value::Null);
                }
                pi
            }
            "customer.created" | "customer.updated" => {
                let mut c = fixture("customer");
                set(&mut c, "id", json!(self.customer));
                set(
                    &mut c,
                    "email",
                    json!(format!("{}@example.com", self.client_reference_id)),
                );
                set(&mut c, "name", json!("Jenny Rosen"));
                c
            }
            t if t.starts_with("customer.subscription.") => {
                let mut s = fixture("subscription");
                set(&mut s, "id", json!(self.subscription));
                set(&mut s, "customer", json!(self.customer));
                set(&mut s, "latest_invoice", json!(self.invoice));
                set(&mut s, "currency", json!("usd"));
                let (status, canceled) = match t {
                    "customer.subscription.deleted" => ("canceled", true),
                    "customer.subscription.updated" => ("past_due", false),
                    _ => ("active", false),
                };
                set(&mut s, "status", json!(status));
                set(&mut s, "cancel_at_period_end", json!(false));
                set(
                    &mut s,
                    "canceled_at",
                    if canceled { json!(now) } else { Value::Null },
                );
                set(
                    &mut s,
                    "ended_at",
                    if canceled { json!(now) } else { Value::Null },
                );
                // The fixture's placeholders (2009) would be ends that
                // passed: an ordinary subscription has none.
                set(&mut s, "cancel_at", Value::Null);
                set(&mut s, "trial_start", Value::Null);
                set(&mut s, "trial_end", Value::Null);
                set(&mut s, "start_date", json!(now - month));
                set(&mut s, "created", json!(now - month));
                let mut item = fixture("subscription_item");
                set(&mut item, "id", json!(self.subscription_item));
                set(&mut item, "subscription", json!(self.subscription));
                set(&mut item, "quantity", json!(1));
                set(&mut item, "current_period_start", json!(now));
                set(&mut item, "current_period_end", json!(now + month));
                if let Some(price) = item.get_mut("price") {
                    set(price, "id", json!(self.price));
                    set(price, "product", json!(self.product));
                }
                set(
                    &mut s,
                    "items",
                    json!({"object": "list", "data": [item], "has_more": false, "url": format!("/v1/subscription_items?subscription={}", self.subscription)}),
                );
                if self.pre_basil() {
                    set(&mut s, "current_period_start", json!(now));
                    set(&mut s, "current_period_end", json!(now + month));
                }
                if self.endive() {
                    // Set while `paused` (Endive's pause on demand).
                    set(&mut s, "status_details", Value::Null);
                    if let Some(item) = s["items"]["data"].get_mut(0) {
                        set(item, "current_trial", Value::Null);
                    }
                }
                s
            }
            "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
                let mut i = fixture("invoice");
                set(&mut i, "id", json!(self.invoice));
                set(&mut i, "customer", json!(self.customer));
                set(&mut i, "currency", json!("usd"));
                set(&mut i, "amount_due", json!(2000));
                set(&mut i, "billing_reason", json!("subscription_cycle"));
                set(&mut i, "period_start", json!(now - month));
                set(&mut i, "period_end", json!(now));
                if event_type == "invoice.payment_failed" {
                    set(&mut i, "status", json!("open"));
                    set(&mut i, "amount_paid", json!(0));
                    set(&mut i, "amount_remaining", json!(2000));
                    set(&mut i, "attempt_count", json!(1));
                } else {
                    set(&mut i, "status", json!("paid"));
                    set(&mut i, "amount_paid", json!(2000));
                    set(&mut i, "amount_remaining", json!(0));
                }
                if self.pre_basil() {
                    set(&mut i, "subscription", json!(self.subscription));
                } else {
                    set(&mut i, "subscription", Value::Null);
                    set(
                        &mut i,
                        "parent",
                        json!({"type": "subscription_details", "quote_details": null,
                               "subscription_details": {"metadata": {}, "subscription": self.subscription}}),
                    );
                }
                i
            }
            "charge.dispute.created" => {
                let mut d = fixture("dispute");
                set(&mut d, "id", json!(self.dispute));
                set(&mut d, "charge", json!(self.charge));
                set(&mut d, "payment_intent", json!(self.payment_intent));
                set(&mut d, "status", json!("needs_response"));
                set(&mut d, "reason", json!("fraudulent"));
                set(&mut d, "amount", json!(2000));
                set(&mut d, "currency", json!("usd"));
                d
            }
            "checkout.session.completed" => {
                let mut s = fixture("checkout.session");
                set(&mut s, "id", json!(self.checkout_session));
                set(&mut s, "customer", json!(self.customer));
                set(&mut s, "subscription", json!(self.subscription));
                set(
                    &mut s,
                    "client_reference_id",
                    json!(self.client_reference_id),
                );
                set(&mut s, "mode", json!("subscription"));
                set(&mut s, "status", json!("complete"));
                set(&mut s, "payment_status", json!("paid"));
                set(&mut s, "payment_intent", Value::Null);
                set(&mut s, "amount_total", json!(2000));
                set(&mut s, "currency", json!("usd"));
                if self.endive() {
                    // `payment_method_types` is no longer a parameter:
                    // the session says which were allowed.
                    set(&mut s, "allowed_payment_method_types", Value::Null);
                }
                s
            }
            _ => return None,
        };
        set(&mut object, "livemode", json!(self.livemode));
        if object.get("created").is_some() && event_type != "customer.subscription.created" {
            set(&mut object, "created", json!(now));
        }
        Some(object)
    }

    /// A whole event envelope for `event_type`, as Stripe would send it.
    pub fn event(&self, event_type: &str) -> Option<Value> {
        let object = self.object(event_type)?;
        let mut event = envelope(
            event_type,
            object,
            &self.api_version,
            self.livemode,
            now_ms() / 1000,
        );
        if event_type.ends_with(".updated") {
            if let Some(data) = event.get_mut("data").and_then(Value::as_object_mut) {
                data.insert("previous_attributes".into(), json!({"status": "active"}));
            }
        }
        Some(event)
    }

    fn pre_basil(&self) -> bool {
        self.api_version.as_str() < "2025-03-31"
    }

    /// `2026-09-30.endive` or later: the fields Endive adds to the objects
    /// we build (docs/upgrading.md, the table).
    pub fn endive(&self) -> bool {
        self.api_version.as_str() >= "2026-09-30"
    }
}

/// A snapshot event around `object`, as Stripe sends it: a fresh id,
/// `created` in Unix seconds, one pending webhook.
pub fn envelope(
    event_type: &str,
    object: Value,
    api_version: &str,
    livemode: bool,
    created: i64,
) -> Value {
    json!({
        "id": new_id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": {"object": object},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": new_id("req"), "idempotency_key": null},
        "type": event_type,
    })
}

fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(map) = v.as_object_mut() {
        map.insert(key.to_owned(), value);
    } else {
        let mut map = Map::new();
        map.insert(key.to_owned(), value);
        *v = Value::Object(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stripe::envelope;

    #[test]
    fn every_listed_type_builds_a_parseable_consistent_event() {
        let s = Scenario::new(false, "2025-03-31.basil");
        for (t, _) in TYPES {
            let event = s.event(t).expect("known type");
            let body = event.to_string();
            let env = envelope::parse(body.as_bytes()).expect("an event");
            assert_eq!(env.event_type, *t);
            assert!(!env.livemode);
            let object = &event["data"]["object"];
            assert_eq!(object["livemode"], false);
            if let Some(customer) = object.get("customer").and_then(Value::as_str) {
                assert_eq!(
                    customer, s.customer,
                    "{t}: one customer across the scenario"
                );
            }
        }
        assert!(s.event("made.up").is_none());
    }

    #[test]
    fn both_api_shapes_are_produced() {
        let basil = Scenario::new(false, "2025-03-31.basil")
            .object("invoice.paid")
            .expect("invoice");
        assert!(basil["subscription"].is_null());
        assert!(basil["parent"]["subscription_details"]["subscription"]
            .as_str()
            .is_some());
        let old = Scenario::new(false, "2024-06-20")
            .object("customer.subscription.created")
            .expect("sub");
        assert!(old["current_period_end"].as_i64().is_some());
        let endive = Scenario::new(false, "2026-11-18.endive");
        let failed = endive.object("payment_intent.payment_failed").expect("pi");
        assert_eq!(failed["last_payment_error"]["payment_method_type"], "card");
        assert!(failed.get("payment_record").is_some());
        let sub = endive.object("customer.subscription.created").expect("sub");
        assert!(sub.get("status_details").is_some());
        let dahlia = Scenario::new(false, "2026-07-29.dahlia")
            .object("customer.subscription.created")
            .expect("sub");
        assert!(dahlia.get("status_details").is_none());
    }
}
