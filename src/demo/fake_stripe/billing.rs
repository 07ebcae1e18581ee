//! The fake's billing routes beyond the core families: charges (retrieve
//! and list), refunds, a customer's active entitlements and the account's
//! features (Stripe's Entitlements product), the platform's connected
//! accounts, and a connected account's events.
//!
//! Active entitlements have no customer field of their own: the fake keeps
//! each customer's list under a private key in its object map
//! ([`entitlements_key`]), visible to the account the customer lives in.

use std::collections::{BTreeSet, HashMap};

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::{list, lock, no_such, request_id, retrieve, visible, FakeStripe, State};
use crate::trigger::scenario::{fixture, new_id};
use crate::trigger::Scenario;

/// Where a customer's active entitlements are kept in the object map.
fn entitlements_key(customer: &str) -> String {
    format!("active_entitlements/{customer}")
}

/// Where a connected account's events are kept in the object map.
fn account_events_key(account: &str) -> String {
    format!("account_events/{account}")
}

/// A charge of the scenario's payment intent and customer in `status`
/// (`succeeded`, `pending`, `failed`), from Stripe's published example.
pub fn charge_shape(s: &Scenario, status: &str) -> Value {
    let mut c = fixture("charge").unwrap_or_else(|| json!({"object": "charge"}));
    c["id"] = json!(s.charge);
    c["customer"] = json!(s.customer);
    c["payment_intent"] = json!(s.payment_intent);
    c["livemode"] = json!(s.livemode);
    c["created"] = json!(crate::store::now_ms() / 1000);
    c["amount"] = json!(2000);
    c["currency"] = json!("usd");
    c["status"] = json!(status);
    let ok = status == "succeeded";
    c["paid"] = json!(ok);
    c["captured"] = json!(ok);
    c["amount_captured"] = json!(if ok { 2000 } else { 0 });
    c["amount_refunded"] = json!(0);
    c["refunded"] = json!(false);
    c["disputed"] = json!(false);
    if status == "failed" {
        c["failure_code"] = json!("card_declined");
        c["failure_message"] = json!("Your card was declined.");
    }
    c
}

impl FakeStripe {
    /// Stores the scenario's charge in `status` (see [`charge_shape`]).
    pub fn charge(&self, s: &Scenario, status: &str) -> Value {
        self.put(charge_shape(s, status))
    }

    /// Refunds `amount` of a stored charge, as Stripe shows it afterwards.
    pub fn refund_charge(&self, id: &str, amount: i64) {
        self.update(id, |c| {
            let refunded = c["amount_refunded"].as_i64().unwrap_or(0) + amount;
            c["amount_refunded"] = json!(refunded);
            c["refunded"] = json!(refunded >= c["amount"].as_i64().unwrap_or(0));
        });
    }

    /// Refunds `amount` of a stored charge as Stripe does: the charge shows
    /// it ([`FakeStripe::refund_charge`]) and a refund object (Stripe's
    /// published shape) is stored in the charge's account and returned.
    pub fn refund(&self, charge: &str, amount: i64) -> Value {
        self.refund_charge(charge, amount);
        let c = self.get(charge).unwrap_or_else(|| json!({}));
        let refund = json!({
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": new_id("txn"),
            "charge": charge,
            "created": crate::store::now_ms() / 1000,
            "currency": c["currency"].as_str().unwrap_or("usd"),
            "destination_details": null,
            "metadata": {},
            "payment_intent": c["payment_intent"].clone(),
            "reason": null,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": "succeeded",
            "transfer_reversal": null,
        });
        let owner = lock(&self.state.accounts).get(charge).cloned();
        match owner {
            Some(account) => self.put_in(&account, refund),
            None => self.put(refund),
        }
    }

    /// Sets a customer's active entitlements: `(lookup_key, feature id)`
    /// pairs (an empty list: none). `account`: the connected account the
    /// customer lives in (`None`: the platform).
    pub fn set_active_entitlements(
        &self,
        customer: &str,
        account: Option<&str>,
        features: &[(&str, &str)],
    ) {
        let livemode = self
            .get(customer)
            .is_some_and(|c| c["livemode"] == json!(true));
        let list: Vec<Value> = features
            .iter()
            .map(|(lookup_key, feature)| {
                json!({"id": new_id("ent"), "object": "entitlements.active_entitlement",
                       "feature": feature, "livemode": livemode, "lookup_key": lookup_key})
            })
            .collect();
        let object = json!({"id": entitlements_key(customer), "object": "fake.active_entitlements", "data": list});
        match account {
            Some(account) => self.put_in(account, object),
            None => self.put(object),
        };
    }

    /// An event as a connected account's `GET /v1/events` lists it (a
    /// platform request does not see it). Newest last.
    pub fn push_account_event(&self, account: &str, event: Value) {
        let mut objects = lock(&self.state.objects);
        let events = objects
            .entry(account_events_key(account))
            .or_insert_with(|| json!({"object": "fake.account_events", "data": []}));
        if let Some(list) = events["data"].as_array_mut() {
            list.push(event);
        }
    }

    /// A connected account the platform lists (`GET /v1/accounts`) even if
    /// it holds no object yet.
    pub fn add_account(&self, account: &str) {
        self.put(json!({"id": account, "object": "account", "type": "standard"}));
    }
}

/// The answer for the routes of this file, or `None` for the core router.
pub(super) fn answer(
    state: &State,
    path: &str,
    query: &HashMap<String, String>,
    expand: &[String],
    account: Option<&str>,
) -> Option<HttpResponse> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["v1", "charges", id] => retrieve(state, "charge", id, expand, account),
        ["v1", "refunds", id] => retrieve(state, "refund", id, expand, account),
        // The account's charges (`created[gte]` honoured), oldest id first.
        ["v1", "charges"] => {
            let gte = query
                .get("created[gte]")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(i64::MIN);
            let mut items = owned_by(state, account, "charge");
            items.retain(|c| c["created"].as_i64().unwrap_or(0) >= gte);
            list(items, "/v1/charges", query)
        }
        // The account's features: here, every feature one of its
        // customers' active entitlements names (Stripe keeps features
        // apart from customers; the fake has no other use for them).
        ["v1", "entitlements", "features"] => {
            let mut features: Vec<Value> = Vec::new();
            for lists in owned_by(state, account, "fake.active_entitlements") {
                for e in lists["data"].as_array().into_iter().flatten() {
                    if features.iter().all(|f| f["id"] != e["feature"]) {
                        features.push(json!({
                            "id": e["feature"], "object": "entitlements.feature", "active": true,
                            "livemode": e["livemode"], "lookup_key": e["lookup_key"],
                            "metadata": {}, "name": e["lookup_key"],
                        }));
                    }
                }
            }
            features.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            list(features, "/v1/entitlements/features", query)
        }
        ["v1", "entitlements", "active_entitlements"] => {
            let Some(customer) = query.get("customer") else {
                return Some(super::stripe_error(
                    400,
                    "invalid_request_error",
                    Some("parameter_missing"),
                    "Missing required param: customer.",
                ));
            };
            let known = lock(&state.objects).contains_key(customer.as_str());
            if !known || !visible(state, customer, account) {
                return Some(super::no_such("customer", customer));
            }
            let key = entitlements_key(customer);
            let data = if visible(state, &key, account) {
                lock(&state.objects)
                    .get(&key)
                    .and_then(|o| o["data"].as_array().cloned())
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            list(data, "/v1/entitlements/active_entitlements", query)
        }
        ["v1", "accounts"] if account.is_none() => {
            let mut ids: BTreeSet<String> = lock(&state.accounts).values().cloned().collect();
            ids.extend(
                lock(&state.objects)
                    .values()
                    .filter(|o| o["object"] == json!("account"))
                    .filter_map(|o| o["id"].as_str().map(str::to_owned)),
            );
            let accounts = ids
                .into_iter()
                .map(|id| json!({"id": id, "object": "account", "type": "standard"}))
                .collect();
            list(accounts, "/v1/accounts", query)
        }
        // A connected account's events; the platform's are the core router's.
        ["v1", "events"] if account.is_some() => {
            let key = account_events_key(account.unwrap_or_default());
            let mut events: Vec<Value> = lock(&state.objects)
                .get(&key)
                .and_then(|o| o["data"].as_array().cloned())
                .unwrap_or_default();
            events.reverse(); // newest first, as Stripe lists them
            if let Some(gte) = query
                .get("created[gte]")
                .and_then(|v| v.parse::<i64>().ok())
            {
                events.retain(|e| e["created"].as_i64().unwrap_or(0) >= gte);
            }
            list(events, "/v1/events", query)
        }
        // One of a connected account's events.
        ["v1", "events", id] if account.is_some() => {
            let key = account_events_key(account.unwrap_or_default());
            let found = lock(&state.objects)
                .get(&key)
                .and_then(|o| o["data"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .find(|e| e["id"] == json!(id));
            match found {
                Some(event) => HttpResponse::Ok()
                    .insert_header(("Request-Id", request_id()))
                    .json(event),
                None => no_such("event", id),
            }
        }
        _ => return None,
    })
}

/// The stored objects of type `object` that live in `account` (`None`: the
/// platform's own), sorted by id.
fn owned_by(state: &State, account: Option<&str>, object: &str) -> Vec<Value> {
    let owners = lock(&state.accounts).clone();
    let mut items: Vec<Value> = lock(&state.objects)
        .values()
        .filter(|o| o["object"] == json!(object))
        .filter(|o| {
            owners
                .get(o["id"].as_str().unwrap_or(""))
                .map(String::as_str)
                == account
        })
        .cloned()
        .collect();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    items
}
