//! The handler: an event group's object re-fetched from Stripe and turned
//! into records ([`records`]), written in the finishing transaction
//! ([`writes`]); thin events ([`thin`]), the types we take
//! ([`event_types`]), a delivery's sequence ([`sequence`]).

pub mod event_types;
pub(crate) mod fetching;
pub mod records;
pub mod sequence;
pub mod thin;
pub mod writes;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;

use crate::config::Mode;
use crate::queue::{Apply, EventGroup, Handler, HandlerContext, HandlerError};
use crate::reconcile::access::features;
use crate::store::{now_ms, Store};
use crate::stripe::{Priority, StripeClient, StripeError};
use crate::util::Clock;
pub use fetching::fetch_stamp;
pub(crate) use fetching::handler_error;
use records::{Record, Stamp};

/// The object families we reconcile (declared with their tables in
/// [`crate::store::records`]; what Stripe calls them is here).
pub use crate::store::records::Family;

impl Family {
    /// The family an event type belongs to, if we handle it.
    pub fn of_event(event_type: &str) -> Option<Family> {
        if event_type.starts_with("payment_intent.") {
            Some(Family::PaymentIntent)
        } else if event_type.starts_with("customer.subscription.") {
            Some(Family::Subscription)
        } else if event_type.starts_with("invoice.") && event_type != "invoice.upcoming" {
            Some(Family::Invoice)
        } else if event_type.starts_with("charge.dispute.") {
            Some(Family::Dispute)
        } else if event_type.starts_with("charge.") || event_type.starts_with("refund.") {
            // `charge.refund.updated` and `refund.*` carry a refund: its
            // charge is fetched.
            Some(Family::Charge)
        } else if event_type.starts_with("checkout.session.") {
            Some(Family::CheckoutSession)
        } else if matches!(
            event_type,
            "customer.created" | "customer.updated" | "customer.deleted"
        ) {
            Some(Family::Customer)
        } else {
            None
        }
    }

    /// The family of a Stripe object type (`subscription`, `checkout.session`, …).
    pub fn of_object(object: &str) -> Option<Family> {
        match object {
            "payment_intent" => Some(Family::PaymentIntent),
            "subscription" => Some(Family::Subscription),
            "invoice" => Some(Family::Invoice),
            "dispute" => Some(Family::Dispute),
            "checkout.session" => Some(Family::CheckoutSession),
            "customer" => Some(Family::Customer),
            "charge" => Some(Family::Charge),
            _ => None,
        }
    }

    /// The family of an id, by Stripe's prefixes (for `resync`).
    pub fn of_id(id: &str) -> Option<Family> {
        // A subscription schedule is no subscription (`sub_sched_…`).
        if id.starts_with("sub_sched_") {
            return None;
        }
        let prefix = id.split('_').next().unwrap_or("");
        match prefix {
            "pi" => Some(Family::PaymentIntent),
            "sub" => Some(Family::Subscription),
            "in" => Some(Family::Invoice),
            "dp" | "du" => Some(Family::Dispute),
            "cs" => Some(Family::CheckoutSession),
            "cus" => Some(Family::Customer),
            "ch" | "py" => Some(Family::Charge),
            _ => None,
        }
    }

    pub fn path(self, id: &str) -> String {
        let base = match self {
            Family::PaymentIntent => "/v1/payment_intents",
            Family::Subscription => "/v1/subscriptions",
            Family::Invoice => "/v1/invoices",
            Family::Dispute => "/v1/disputes",
            Family::CheckoutSession => "/v1/checkout/sessions",
            Family::Customer => "/v1/customers",
            Family::Charge => "/v1/charges",
        };
        format!("{base}/{id}")
    }

    /// Expansions worth having in the stored JSON.
    pub fn expand(self) -> &'static [&'static str] {
        match self {
            Family::PaymentIntent => &["latest_charge"],
            Family::Subscription => &["latest_invoice"],
            _ => &[],
        }
    }
}

/// Reconcile settings.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// The pinned `Stripe-Version`: events at another version are warned about.
    pub api_version: String,
    pub past_due_grace: Duration,
    /// An endpoint is configured `thin = true`: catch-up lists
    /// `/v2/core/events` too.
    pub thin_catch_up: bool,
    /// A Connect endpoint is configured: the sweep and catch-up also go
    /// through every connected account Stripe lists (`GET /v1/accounts`).
    pub connect: bool,
    /// How far back (by `created`) the drift sweep compares charges; `None`:
    /// it compares none (`schedule.sweep_charge_window_days`).
    pub charge_window: Option<Duration>,
}

/// The queue handler for every family above.
pub struct ReconcileHandler {
    client: StripeClient,
    options: ReconcileOptions,
}

impl ReconcileHandler {
    pub fn new(client: StripeClient, options: ReconcileOptions) -> Arc<Self> {
        Arc::new(ReconcileHandler { client, options })
    }

    /// Fetches one object now and turns it into records (used by the
    /// handler, and by `resync`). Each request to Stripe is stamped with its
    /// place in the order of fetches, taken from the database just before it
    /// starts (see [`crate::store::fetch_order`]).
    pub async fn fetch(
        &self,
        cx: &HandlerContext,
        family: Family,
        id: &str,
        account: Option<&str>,
    ) -> Result<Vec<Record>, HandlerError> {
        let stamp = fetch_stamp(cx).await?;
        let Some(primary) = fetch_record(&self.client, family, id, account, stamp).await? else {
            return Ok(vec![Record::Gone(family, id.to_owned(), stamp)]);
        };
        let mut records = Vec::new();
        // A completed Checkout links the application's user to a customer
        // and a subscription that may not exist locally yet: fetch them too.
        // A dispute changes its charge (`disputed`, the link): fetch it too.
        let related = match &primary {
            Record::CheckoutSession(session) => vec![
                (Family::Customer, session.customer_id.clone()),
                (Family::Subscription, session.subscription_id.clone()),
            ],
            Record::Dispute(dispute) => vec![(Family::Charge, dispute.charge_id.clone())],
            _ => Vec::new(),
        };
        {
            for (family, id) in related {
                // An Accounts v2 customer (`acct_…`) is no /v1/customers object.
                if let Some(id) = id.filter(|id| Family::of_id(id) == Some(family)) {
                    let stamp = fetch_stamp(cx).await?;
                    match fetch_record(&self.client, family, &id, account, stamp).await? {
                        Some(record) => records.push(record),
                        None => records.push(Record::Gone(family, id, stamp)),
                    }
                }
            }
        }
        records.insert(0, primary);
        Ok(records)
    }

    pub fn client(&self) -> &StripeClient {
        &self.client
    }

    /// Whether catch-up lists thin events too (an endpoint is `thin`).
    pub fn lists_thin_events(&self) -> bool {
        self.options.thin_catch_up
    }

    pub fn options(&self) -> &ReconcileOptions {
        &self.options
    }

    /// Fetches one object from Stripe now and writes it, whether or not an
    /// event ever named it (`resync`). A stored record is fetched from the
    /// Connect account it came from (`Stripe-Account`). Returns what was
    /// written.
    pub async fn resync(&self, store: &Store, id: &str) -> Result<Vec<Record>, ResyncError> {
        self.resync_in(store, id, None).await
    }

    /// [`Self::resync`] from a given Connect account (`Some`: an object of a
    /// connected account that is not stored yet, or stored without it);
    /// `None`: the account the record was fetched from, else the platform.
    pub async fn resync_in(
        &self,
        store: &Store,
        id: &str,
        account: Option<&str>,
    ) -> Result<Vec<Record>, ResyncError> {
        let family = Family::of_id(id).ok_or_else(|| ResyncError::UnknownId(id.to_owned()))?;
        let account = if let Some(account) = account {
            Some(account.to_owned())
        } else {
            let (store, id) = (store.clone(), id.to_owned());
            tokio::task::spawn_blocking(move || -> Result<Option<String>, ResyncError> {
                let mut conn = store
                    .conn()
                    .map_err(|e| ResyncError::Store(e.to_string()))?;
                records::account_of(&mut conn, family, &id)
                    .map_err(|e| ResyncError::Store(e.to_string()))
            })
            .await
            .map_err(|e| ResyncError::Store(e.to_string()))??
        };
        let cx = HandlerContext {
            store: store.clone(),
            clock: Clock::default(),
        };
        let records = self
            .fetch(&cx, family, id, account.as_deref())
            .await
            .map_err(ResyncError::Fetch)?;
        self.write(store, records.clone(), account).await?;
        Ok(records)
    }

    /// Writes records fetched from `account` (`None`: the platform) in one
    /// transaction (on a blocking thread).
    pub async fn write(
        &self,
        store: &Store,
        records: Vec<Record>,
        account: Option<String>,
    ) -> Result<(), ResyncError> {
        let apply = self.apply(records, Clock::default(), account);
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ResyncError> {
            let mut conn = store
                .conn()
                .map_err(|e| ResyncError::Store(e.to_string()))?;
            crate::store::write_transaction(&mut conn, |tx| apply.write(tx))
                .map_err(|e| ResyncError::Store(e.to_string()))
        })
        .await
        .map_err(|e| ResyncError::Store(e.to_string()))?
    }

    /// An `Apply` that writes `records`, each guarded by its fetch's stamp,
    /// as fetched from `account` (`None`: the platform).
    pub fn apply(&self, records: Vec<Record>, clock: Clock, account: Option<String>) -> Apply {
        let grace_ms = i64::try_from(self.options.past_due_grace.as_millis()).unwrap_or(i64::MAX);
        Box::new(writes::RecordWrites::new(records, clock, account, grace_ms))
    }
}

/// A field of the event's `data.object` that names an object (an id, or the
/// expanded object's id).
fn object_field(payload: &str, field: &str) -> Option<String> {
    let event: serde_json::Value = serde_json::from_str(payload).ok()?;
    let value = &event["data"]["object"][field];
    value
        .as_str()
        .or_else(|| value["id"].as_str())
        .map(str::to_owned)
}

#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(
        "{0:?} is not an id of an object we reconcile (cus_, sub_, in_, pi_, ch_, py_, dp_, cs_)"
    )]
    UnknownId(String),
    #[error("{0}")]
    Fetch(HandlerError),
    #[error("database: {0}")]
    Store(String),
}

/// GETs one object; `Ok(None)` only when Stripe answers `resource_missing`
/// for this very id. Any other 404 (a wrong API base, a proxy, a missing
/// expansion) is an error that is retried: it says nothing about the object.
async fn fetch_record(
    client: &StripeClient,
    family: Family,
    id: &str,
    account: Option<&str>,
    stamp: Stamp,
) -> Result<Option<Record>, HandlerError> {
    let mut response = match client.get(&family.path(id), family.expand(), account).await {
        Ok(r) => r,
        Err(e) if e.is_missing(id) => {
            if let StripeError::NotFound {
                message,
                request_id,
            } = &e
            {
                tracing::warn!(object = id, account = account.unwrap_or(""), request_id = request_id.as_deref().unwrap_or(""), %message, "object not found at Stripe: recorded as gone");
            }
            return Ok(None);
        }
        Err(e) => return Err(handler_error(e)),
    };
    if family == Family::Subscription {
        with_every_item(client, &mut response.json, account, Priority::Live).await?;
    }
    let mut record = record_from_json(family, &response.json, stamp)?;
    // A deleted customer is `{"id", "object", "deleted": true}`: no
    // `livemode`. It is of the mode of the key that fetched it.
    if let Record::Customer(row) = &mut record {
        if response.json.get("livemode").is_none() {
            row.livemode = client.mode() == Mode::Live;
        }
    }
    Ok(Some(record))
}

/// Stripe embeds a subscription's first items only (`items.has_more`): the
/// rest are read from `/v1/subscription_items` and added to the object, so
/// that every item is stored and grants.
pub(crate) async fn with_every_item(
    client: &StripeClient,
    subscription: &mut serde_json::Value,
    account: Option<&str>,
    priority: Priority,
) -> Result<(), HandlerError> {
    let Some(id) = subscription["id"].as_str().map(str::to_owned) else {
        return Ok(());
    };
    while subscription["items"]["has_more"].as_bool() == Some(true) {
        let Some(last) = subscription["items"]["data"]
            .as_array()
            .and_then(|d| d.last())
            .and_then(|item| item["id"].as_str())
            .map(str::to_owned)
        else {
            break;
        };
        let page = client
            .request(
                "/v1/subscription_items",
                &[
                    ("subscription", id.as_str()),
                    ("limit", "100"),
                    ("starting_after", last.as_str()),
                ],
                account,
                priority,
            )
            .await
            .map_err(handler_error)?;
        let more = page.json["data"].as_array().cloned().unwrap_or_default();
        let has_more = page.json["has_more"].as_bool() == Some(true) && !more.is_empty();
        if let Some(data) = subscription["items"]["data"].as_array_mut() {
            data.extend(more);
        }
        subscription["items"]["has_more"] = serde_json::Value::Bool(has_more);
    }
    Ok(())
}

/// Turns an object's JSON (from a GET or a list page) into a record.
pub fn record_from_json(
    family: Family,
    json: &serde_json::Value,
    stamp: Stamp,
) -> Result<Record, HandlerError> {
    let raw = json.to_string();
    let now = now_ms();
    Ok(match family {
        Family::Customer => {
            Record::Customer(records::CustomerRow::new(&parse(json)?, raw, stamp, now))
        }
        Family::Subscription => Record::Subscription {
            sub: Box::new(parse(json)?),
            raw,
            stamp,
        },
        Family::Invoice => {
            Record::Invoice(records::InvoiceRow::new(&parse(json)?, raw, stamp, now))
        }
        Family::PaymentIntent => Record::PaymentIntent(records::PaymentIntentRow::new(
            &parse(json)?,
            raw,
            stamp,
            now,
        )),
        Family::CheckoutSession => Record::CheckoutSession(records::CheckoutSessionRow::new(
            &parse(json)?,
            raw,
            stamp,
            now,
        )),
        Family::Dispute => {
            Record::Dispute(records::DisputeRow::new(&parse(json)?, raw, stamp, now))
        }
        Family::Charge => Record::Charge(records::ChargeRow::new(&parse(json)?, raw, stamp, now)),
    })
}

fn parse<T: DeserializeOwned>(json: &serde_json::Value) -> Result<T, HandlerError> {
    T::deserialize(json)
        .map_err(|e| HandlerError::retry(format!("unexpected object from the Stripe API: {e}")))
}

impl Handler for ReconcileHandler {
    fn handles(&self, event_type: &str) -> bool {
        Family::of_event(event_type).is_some() || event_type == features::SUMMARY_EVENT
    }

    fn handles_event(&self, event: &crate::queue::ClaimedEvent) -> bool {
        thin::handles(event, |t| self.handles(t))
    }

    fn handle(
        &self,
        group: EventGroup,
        cx: &HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        let cx = cx.clone();
        let client = self.client.clone();
        let options = self.options.clone();
        let this = ReconcileHandler { client, options };
        async move {
            let first = group
                .events
                .first()
                .ok_or_else(|| HandlerError::permanent("empty event group"))?;
            let key_mode = this.client.mode();
            if first.livemode != (key_mode == Mode::Live) {
                return Err(HandlerError::permanent(format!(
                    "the event is a {} event but the API key is a {} key: configure the {}-mode API key (STRIPE_API_KEY) for this endpoint",
                    if first.livemode { "live-mode" } else { "test-mode" },
                    key_mode.as_str(),
                    if first.livemode { "live" } else { "test" },
                )));
            }
            if first.event_type == thin::GENERATION_FAILURE_RESOLVED {
                // Keyed by its own id: alone in its group.
                let Some((family, id, account)) = thin::failed_object(&this.client, first).await?
                else {
                    return Ok(crate::queue::apply_fn(|_| Ok(())));
                };
                let records = this.fetch(&cx, family, &id, account.as_deref()).await?;
                return Ok(this.apply(records, cx.clock, account));
            }
            if first.event_type == features::SUMMARY_EVENT
                || first.event_type == thin::SUMMARY_THIN
                || first.object_type.as_deref() == Some(features::SUMMARY_OBJECT)
            {
                let customer = if first.event_type == thin::SUMMARY_THIN {
                    // Names no object: its snapshot event names the customer.
                    thin::customer_of_summary(&this.client, first).await?
                } else {
                    object_field(&first.payload, "customer")
                };
                let Some(customer) = customer else {
                    // `customer: null` (no customer of /v1/customers owns
                    // it), or a thin summary whose snapshot event is not
                    // known: nothing to re-fetch, and retrying cannot help.
                    tracing::warn!(
                        event_id = %first.event_id,
                        "the active entitlement summary names no customer: nothing to fetch"
                    );
                    return Ok(crate::queue::apply_fn(|_| Ok(())));
                };
                let account = first.account.clone();
                let f = features::fetch(&this.client, &cx, &customer, account.as_deref()).await?;
                return Ok(this.apply(vec![Record::Features(f)], cx.clock, account));
            }
            let family = thin::family_of(first).ok_or_else(|| {
                HandlerError::permanent(format!("no handler for {}", first.event_type))
            })?;
            let object_id = first
                .object_id
                .clone()
                .ok_or_else(|| HandlerError::permanent("the event names no object id"))?;
            let id = if first.object_type.as_deref() == Some(thin::REFUND_OBJECT) {
                // `charge.refund.updated` (either style): the refund's charge is the record.
                let account = first.account.as_deref();
                match thin::charge_of_refund(&this.client, &object_id, account, &group.events)
                    .await?
                {
                    Some(charge) => charge,
                    None => {
                        tracing::info!(
                            event_id = %first.event_id, refund = %object_id,
                            "the refund names no charge Stripe knows: nothing written"
                        );
                        return Ok(crate::queue::apply_fn(|_| Ok(())));
                    }
                }
            } else {
                object_id
            };
            for event in &group.events {
                if let Some(version) = &event.api_version {
                    if *version != this.options.api_version {
                        tracing::warn!(
                            event_id = %event.event_id, event_api_version = %version,
                            pinned_api_version = %this.options.api_version,
                            "event payload is at another API version; the re-fetch at the pinned version is stored"
                        );
                    }
                }
            }
            let account = first.account.clone();
            let records = this.fetch(&cx, family, &id, account.as_deref()).await?;
            Ok(this.apply(records, cx.clock, account))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::Family;

    #[test]
    fn a_subscription_schedule_is_not_a_subscription() {
        assert_eq!(Family::of_id("sub_1Qx"), Some(Family::Subscription));
        assert_eq!(Family::of_id("sub_sched_1Qx"), None);
    }
}
