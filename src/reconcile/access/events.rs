//! `stripe_hookd.access.updated`: when applying an event group changed a
//! customer's access (the entitlements granting access now), an event of
//! stripe-hookd's own, shaped like a Stripe event, for the forwarder.
//!
//! Runs in the transaction that finishes the group, after its records were
//! written ([`derive`], called through the forwarder's finish hook), so the
//! event exists exactly when the change does. Each customer's access as
//! last announced is kept in `access_snapshots`; an event is made when the
//! access now differs from it (no snapshot: as if no access).
//!
//! Only customers the group's events name (`data.object.customer`, or the
//! customer itself; for a thin event, its related customer or the
//! subscription's customer) are looked at. Access that ends by the clock alone (a
//! `past_due` grace running out) is found by [`expired`], which the
//! forwarder runs now and then.
//!
//! Once per change, also with several Postgres instances: two transactions
//! finishing events of one customer at once (a subscription's and an
//! invoice's), or two instances' expiry sweeps, could both read the old
//! snapshot and both announce. A change is therefore written only under
//! the customer's transaction-scoped advisory lock, and compared again once
//! the lock is held ([`snapshots::lock`]; SQLite's single writer serialises
//! already).

use diesel::QueryResult;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::entitlements::Entitlement;
use crate::store::access_changes::{self, AccessChange, Cause};
use crate::store::deliveries::HookEvent;
use crate::store::records::access_snapshots::{self as snapshots, lock_key};
use crate::store::records::{entitlements, subscriptions};
use crate::store::Tx;

/// The event type.
pub const ACCESS_UPDATED: &str = "stripe_hookd.access.updated";

/// The customers `events` name, each with what the event says of it (its
/// mode, its API version, the ids of the events naming it).
fn changes_of(tx: &mut Tx<'_>, events: &[HookEvent<'_>]) -> QueryResult<Vec<AccessChange>> {
    let mut customers: Vec<AccessChange> = Vec::new();
    for event in events {
        let Ok(body) = serde_json::from_str::<Value>(&event.payload) else {
            continue;
        };
        let customer = match customer_of(&body) {
            Some(customer) => customer,
            None => match thin_customer(tx, &body)? {
                Some(customer) => customer,
                None => continue,
            },
        };
        let id = event.event_id.to_string();
        match customers.iter_mut().find(|c| c.customer == customer) {
            Some(change) => change.causes.push(id),
            None => customers.push(AccessChange {
                customer,
                livemode: body["livemode"].as_bool().unwrap_or(false),
                api_version: body["api_version"].as_str().map(str::to_owned),
                causes: vec![id],
            }),
        }
    }
    Ok(customers)
}

/// Notes the customers that `events` name as changed in the open
/// transaction (the runner's finish: their records were just written),
/// so that the transaction's end compares their access and announces a
/// change with these events as its cause ([`crate::store::hooks`]).
pub fn note_events(tx: &mut Tx<'_>, events: &[HookEvent<'_>], now: i64) -> QueryResult<()> {
    for change in changes_of(tx, events)? {
        for id in &change.causes {
            let cause = Cause::Event {
                id,
                api_version: change.api_version.as_deref(),
            };
            access_changes::note(&change.customer, change.livemode, cause, now)?;
        }
    }
    Ok(())
}

/// The access.updated events for the customers of `events` whose access
/// changed, recording the new access as announced ([`announce_changes`]
/// of the customers they name).
pub fn derive(
    tx: &mut Tx<'_>,
    events: &[HookEvent<'_>],
    now: i64,
) -> QueryResult<Vec<HookEvent<'static>>> {
    let changes = changes_of(tx, events)?;
    announce_changes(tx, &changes, now)
}

/// The access.updated events for the customers of `changes` whose access
/// now differs from the access last announced, recording it as announced:
/// what ends every transaction that wrote entitlement rows
/// ([`crate::store::hooks::AccessHook`]).
pub fn announce_changes(
    tx: &mut Tx<'_>,
    changes: &[AccessChange],
    now: i64,
) -> QueryResult<Vec<HookEvent<'static>>> {
    let mut changes: Vec<&AccessChange> = changes.iter().collect();
    // Locks in key order (see `snapshots::lock`).
    changes.sort_by_key(|c| lock_key(&c.customer));
    let mut out = Vec::new();
    for change in changes {
        let api_version = change
            .api_version
            .as_deref()
            .map_or(Value::Null, |v| Value::String(v.to_owned()));
        let causes: Vec<&str> = change.causes.iter().map(String::as_str).collect();
        out.extend(announce(
            tx,
            &change.customer,
            change.livemode,
            api_version,
            &causes,
            now,
        )?);
    }
    Ok(out)
}

/// The access.updated events for access that ended by the clock alone
/// between `since` and `now` (a `past_due` grace or a canceled
/// subscription's paid period running out): no Stripe event marks that
/// moment, so the forwarder calls this now and then. A customer whose
/// access as last announced is already the access now gets none, so a
/// window looked at twice (or by two instances) announces once.
pub fn expired(tx: &mut Tx<'_>, since: i64, now: i64) -> QueryResult<Vec<HookEvent<'static>>> {
    let mut customers = entitlements::customers_expired(tx, since, now)?;
    // Locks in key order (see `snapshots::lock`).
    customers.sort_by_key(|customer| lock_key(customer));
    let mut out = Vec::new();
    for customer in customers {
        let livemode = subscriptions::livemode_of_customer(tx, &customer)?;
        // The moment makes the id: the same access reached again later is
        // another change, not a duplicate.
        let cause = format!("clock:{now}");
        out.extend(announce(
            tx,
            &customer,
            livemode.unwrap_or(false),
            Value::Null,
            &[cause.as_str()],
            now,
        )?);
    }
    Ok(out)
}

/// The event for `customer` when the access now differs from the access
/// last announced (recorded as announced), or `None`. A change is looked
/// at again under the customer's lock: another transaction may have
/// announced it meanwhile (then it is not announced twice).
fn announce(
    tx: &mut Tx<'_>,
    customer: &str,
    livemode: bool,
    api_version: Value,
    sources: &[&str],
    now: i64,
) -> QueryResult<Option<HookEvent<'static>>> {
    let (mut access, mut previous) = compare(tx, customer, now)?;
    if previous.is_empty() {
        return Ok(None);
    }
    if snapshots::lock(tx, customer)? {
        // Statements from now on see what the lock's last holder committed.
        (access, previous) = compare(tx, customer, now)?;
        if previous.is_empty() {
            return Ok(None);
        }
    }
    let text = access.to_string();
    snapshots::record(tx, customer, &text, now)?;
    let id = event_id(customer, sources, &text);
    let body = json!({
        "id": id,
        "object": "event",
        // The causing event's: stripe-go's ConstructEvent compares it
        // with the version it pins (null for a change by the clock).
        "api_version": api_version,
        "created": now / 1000,
        "livemode": livemode,
        "pending_webhooks": 0,
        "request": {"id": null, "idempotency_key": null},
        "type": ACCESS_UPDATED,
        "data": {"object": access, "previous_attributes": Value::Object(previous)},
    });
    Ok(Some(HookEvent {
        event_id: id.into(),
        event_type: ACCESS_UPDATED.into(),
        // Ordered among themselves only, not behind the `customer.*` events
        // of the same customer (their object key is the customer id).
        object_key: format!("{ACCESS_UPDATED}:{customer}").into(),
        payload: body.to_string().into(),
        in_outbox: false,
    }))
}

/// The customer's access now, and the fields in which it differs from the
/// access last announced (empty: no change).
fn compare(tx: &mut Tx<'_>, customer: &str, now: i64) -> QueryResult<(Value, Map<String, Value>)> {
    let rows = entitlements::of_customer_in(tx, customer)?;
    let access = access_now(customer, &rows, now);
    let stored = snapshots::announced(tx, customer)?;
    let before = stored
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .unwrap_or_else(|| access_now(customer, &[], now));
    let previous = changed_fields(&before, &access);
    Ok((access, previous))
}

/// The customer an event is about: its `data.object.customer` (an id or an
/// expanded object), or the object itself when it is a customer.
fn customer_of(event: &Value) -> Option<String> {
    let object = &event["data"]["object"];
    if object["object"] == "customer" {
        return object["id"].as_str().map(str::to_owned);
    }
    match &object["customer"] {
        Value::String(id) => Some(id.clone()),
        Value::Object(expanded) => expanded
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        // An Accounts v2 customer: `customer` null, `customer_account` names it.
        _ => object["customer_account"].as_str().map(str::to_owned),
    }
}

/// The customer a thin event is about (it has no `data.object`): its
/// related object when that is a customer, or the customer of the
/// subscription just written in this transaction.
fn thin_customer(tx: &mut Tx<'_>, event: &Value) -> QueryResult<Option<String>> {
    if event["object"] != "v2.core.event" {
        return Ok(None);
    }
    let related = &event["related_object"];
    let Some(id) = related["id"].as_str() else {
        return Ok(None);
    };
    match related["type"].as_str() {
        Some("customer") => Ok(Some(id.to_owned())),
        Some("subscription") => subscriptions::customer_of(tx, id),
        _ => Ok(None),
    }
}

/// The customer's access at `now`: the entitlement rows that grant it, as
/// the `data.object` of the event (times in epoch seconds, like Stripe's).
pub fn access_now(customer: &str, rows: &[Entitlement], now: i64) -> Value {
    let granted: Vec<Value> = rows
        .iter()
        .filter(|e| e.active_at(now))
        .map(|e| {
            json!({
                "subscription": e.subscription_id,
                "subscription_item": e.item_id,
                "product": e.product_id,
                "price": e.price_id,
                "status": e.status,
                "access_until": e.access_until.map(|t| t / 1000),
                "account": e.account,
            })
        })
        .collect();
    json!({
        "object": "stripe_hookd.access",
        "customer": customer,
        "has_access": !granted.is_empty(),
        "entitlements": granted,
    })
}

/// The fields of `before` that differ in `now`, with their old values
/// (Stripe's `previous_attributes`).
fn changed_fields(before: &Value, now: &Value) -> Map<String, Value> {
    let mut previous = Map::new();
    if let (Some(before), Some(now)) = (before.as_object(), now.as_object()) {
        for (key, value) in now {
            let old = before.get(key).cloned().unwrap_or(Value::Null);
            if old != *value {
                previous.insert(key.clone(), old);
            }
        }
    }
    previous
}

/// Stable for one change (the customer, the events that caused it, the
/// access it led to).
fn event_id(customer: &str, sources: &[&str], access: &str) -> String {
    let digest = Sha256::digest(format!("{customer}\0{}\0{access}", sources.join(",")));
    format!("evt_hookd_{}", &hex::encode(digest)[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, grants: bool) -> Entitlement {
        Entitlement {
            subscription_id: "sub_1".into(),
            item_id: "si_1".into(),
            customer_id: Some("cus_1".into()),
            price_id: Some("price_1".into()),
            product_id: Some("prod_1".into()),
            status: status.into(),
            grants,
            access_until: Some(2_000_000_000_000),
            updated_at: 0,
            account: None,
            livemode: Some(false),
            ends_at: None,
        }
    }

    #[test]
    fn only_changed_fields_are_previous_attributes() {
        let none = access_now("cus_1", &[], 0);
        let active = access_now("cus_1", &[row("active", true)], 0);
        let previous = changed_fields(&none, &active);
        assert_eq!(previous["has_access"], false);
        assert_eq!(previous["entitlements"], json!([]));
        assert!(!previous.contains_key("customer"));
        assert!(changed_fields(&active, &active).is_empty());
        let canceled = access_now("cus_1", &[row("canceled", false)], 0);
        assert_eq!(canceled, none, "a row that grants nothing is no access");
    }

    #[test]
    fn the_customer_is_found_in_the_event() {
        let sub = json!({"data": {"object": {"object": "subscription", "customer": "cus_9"}}});
        let cus = json!({"data": {"object": {"object": "customer", "id": "cus_8"}}});
        let expanded =
            json!({"data": {"object": {"object": "invoice", "customer": {"id": "cus_7"}}}});
        let none = json!({"data": {"object": {"object": "payment_intent", "customer": null}}});
        assert_eq!(customer_of(&sub).as_deref(), Some("cus_9"));
        assert_eq!(customer_of(&cus).as_deref(), Some("cus_8"));
        assert_eq!(customer_of(&expanded).as_deref(), Some("cus_7"));
        assert_eq!(customer_of(&none), None);
        // Accounts v2: the account is the customer.
        let v2 = json!({"data": {"object": {"object": "subscription", "customer": null, "customer_account": "acct_v2"}}});
        assert_eq!(customer_of(&v2).as_deref(), Some("acct_v2"));
    }
}
