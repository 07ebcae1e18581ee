//! Typed views of the Stripe API's objects (shapes of the API, not database
//! rows: those are in `reconcile::records`): only the fields we keep, read
//! from the API's JSON (which is stored whole beside them). Both API shapes
//! are understood: before `2025-03-31.basil` (`current_period_*` on the
//! subscription, `invoice.subscription`) and after (`current_period_*` on the
//! items, `invoice.parent.subscription_details.subscription`).
//!
//! Since `2025-12-15.clover` a customer can be an Accounts v2 account: the
//! object's `customer` is then null and `customer_account` (`acct_…`) names
//! it; `customer_id()` gives that id. Nothing else we read changed up to the
//! pinned `2026-11-18.endive` (clover made flexible billing mode the default,
//! dahlia renamed Checkout's `ui_mode` values and typed decimals, endive
//! removed `payment_method_types` as a parameter and added `status_details`
//! to paused subscriptions and uncollectible invoices, `payment_record` and
//! `last_payment_error.payment_method_type` to payment intents: none of
//! these fields is read here, and a paused subscription grants nothing).
//! See docs/upgrading.md.

use serde::Deserialize;
use serde_json::Value;

/// A field that is an id, or the object itself when expanded.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    pub fn id(&self) -> &str {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

fn id_of(e: &Option<Expandable>) -> Option<String> {
    e.as_ref().map(|e| e.id().to_owned())
}

/// Stripe's unix seconds → our epoch milliseconds.
pub(crate) fn ms(secs: Option<i64>) -> Option<i64> {
    secs.map(|s| s.saturating_mul(1000))
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default)]
    pub livemode: bool,
    pub email: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub deleted: bool,
    pub metadata: Option<Value>,
}

/// A subscription's status in Stripe's words (stored as that word, TEXT).
/// A word Stripe adds later is kept as `Other` and grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(from = "String", into = "String")]
pub enum SubscriptionStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Canceled,
    Unpaid,
    Paused,
    Other(String),
}

impl SubscriptionStatus {
    /// Every status Stripe documents.
    pub const KNOWN: [SubscriptionStatus; 8] = [
        SubscriptionStatus::Incomplete,
        SubscriptionStatus::IncompleteExpired,
        SubscriptionStatus::Trialing,
        SubscriptionStatus::Active,
        SubscriptionStatus::PastDue,
        SubscriptionStatus::Canceled,
        SubscriptionStatus::Unpaid,
        SubscriptionStatus::Paused,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            SubscriptionStatus::Incomplete => "incomplete",
            SubscriptionStatus::IncompleteExpired => "incomplete_expired",
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Unpaid => "unpaid",
            SubscriptionStatus::Paused => "paused",
            SubscriptionStatus::Other(word) => word,
        }
    }
}

impl From<&str> for SubscriptionStatus {
    fn from(word: &str) -> Self {
        SubscriptionStatus::KNOWN
            .into_iter()
            .find(|s| s.as_str() == word)
            .unwrap_or_else(|| SubscriptionStatus::Other(word.to_owned()))
    }
}

impl From<String> for SubscriptionStatus {
    fn from(word: String) -> Self {
        SubscriptionStatus::from(word.as_str())
    }
}

impl From<SubscriptionStatus> for String {
    fn from(status: SubscriptionStatus) -> String {
        status.as_str().to_owned()
    }
}

impl std::fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub customer: Option<Expandable>,
    /// Since `2025-12-15.clover`: the Accounts v2 customer, when `customer` is null.
    #[serde(default)]
    pub customer_account: Option<String>,
    pub status: SubscriptionStatus,
    #[serde(default)]
    pub livemode: bool,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub cancel_at: Option<i64>,
    pub canceled_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub trial_start: Option<i64>,
    pub trial_end: Option<i64>,
    /// Pre-basil only.
    pub current_period_start: Option<i64>,
    /// Pre-basil only.
    pub current_period_end: Option<i64>,
    /// An id, or (expanded, as the reconcile fetch asks) the invoice.
    pub latest_invoice: Option<LatestInvoice>,
    pub metadata: Option<Value>,
    pub items: Option<List<SubscriptionItem>>,
    #[serde(default)]
    pub default_payment_method: Option<Expandable>,
    #[serde(default)]
    pub default_source: Option<Expandable>,
    /// `trial_settings.end_behavior.missing_payment_method`, kept whole.
    #[serde(default)]
    pub trial_settings: Option<Value>,
}

/// A subscription's `latest_invoice`: an id, or the expanded invoice.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LatestInvoice {
    Id(String),
    Object(InvoiceFacts),
}

/// What the access rule reads of a subscription's expanded latest invoice.
#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceFacts {
    pub id: String,
    pub status: Option<String>,
    /// `subscription_cycle` (a renewal), `subscription_update` (a change
    /// mid-period, e.g. an upgrade's proration), `subscription_create`, …
    pub billing_reason: Option<String>,
    pub created: Option<i64>,
    pub status_transitions: Option<StatusTransitions>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusTransitions {
    pub finalized_at: Option<i64>,
}

impl InvoiceFacts {
    /// When Stripe asked for the payment (epoch ms): finalised, else created.
    pub fn billed_at(&self) -> Option<i64> {
        ms(self
            .status_transitions
            .as_ref()
            .and_then(|t| t.finalized_at)
            .or(self.created))
    }

    /// A change mid-period (an upgrade's proration), not a renewal.
    pub fn is_update(&self) -> bool {
        self.billing_reason.as_deref() == Some("subscription_update")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub id: String,
    pub price: Option<Price>,
    pub quantity: Option<i64>,
    /// Basil and later.
    pub current_period_start: Option<i64>,
    /// Basil and later.
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    pub product: Option<Expandable>,
}

impl Subscription {
    pub fn customer_id(&self) -> Option<String> {
        id_of(&self.customer).or_else(|| self.customer_account.clone())
    }
    pub fn latest_invoice_id(&self) -> Option<String> {
        self.latest_invoice.as_ref().map(|i| match i {
            LatestInvoice::Id(id) => id.clone(),
            LatestInvoice::Object(invoice) => invoice.id.clone(),
        })
    }
    /// The latest invoice when it is expanded and unpaid (`open`): what a
    /// `past_due` subscription failed to pay.
    pub fn failing_invoice(&self) -> Option<&InvoiceFacts> {
        match &self.latest_invoice {
            Some(LatestInvoice::Object(invoice)) if invoice.status.as_deref() == Some("open") => {
                Some(invoice)
            }
            _ => None,
        }
    }
    /// Whether the subscription names a payment method of its own
    /// (`default_payment_method` or `default_source`; the customer's
    /// defaults are the customer object's).
    pub fn has_own_payment_method(&self) -> bool {
        self.default_payment_method.is_some() || self.default_source.is_some()
    }
    /// Whether Stripe ends the trial without a payment method on file
    /// (`trial_settings.end_behavior.missing_payment_method` is `cancel` or
    /// `pause`; `create_invoice`, the default, bills it instead).
    pub fn trial_ends_without_payment_method(&self) -> bool {
        self.trial_settings
            .as_ref()
            .and_then(|t| t["end_behavior"]["missing_payment_method"].as_str())
            .is_some_and(|b| matches!(b, "cancel" | "pause"))
    }
    pub fn items(&self) -> &[SubscriptionItem] {
        self.items
            .as_ref()
            .map(|l| l.data.as_slice())
            .unwrap_or(&[])
    }
    /// The current period: the subscription's own (pre-basil), else the
    /// items' (basil: the earliest start and the latest end).
    pub fn current_period(&self) -> (Option<i64>, Option<i64>) {
        if self.current_period_start.is_some() || self.current_period_end.is_some() {
            return (self.current_period_start, self.current_period_end);
        }
        let start = self
            .items()
            .iter()
            .filter_map(|i| i.current_period_start)
            .min();
        let end = self
            .items()
            .iter()
            .filter_map(|i| i.current_period_end)
            .max();
        (start, end)
    }
}

impl SubscriptionItem {
    pub fn price_id(&self) -> Option<String> {
        self.price.as_ref().map(|p| p.id.clone())
    }
    pub fn product_id(&self) -> Option<String> {
        self.price.as_ref().and_then(|p| id_of(&p.product))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub customer: Option<Expandable>,
    /// Since `2025-12-15.clover`: the Accounts v2 customer, when `customer` is null.
    #[serde(default)]
    pub customer_account: Option<String>,
    /// Pre-basil.
    pub subscription: Option<Expandable>,
    /// Basil: `parent.subscription_details.subscription`.
    pub parent: Option<InvoiceParent>,
    pub status: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub currency: Option<String>,
    pub amount_due: Option<i64>,
    pub amount_paid: Option<i64>,
    pub amount_remaining: Option<i64>,
    pub billing_reason: Option<String>,
    pub hosted_invoice_url: Option<String>,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionDetails {
    pub subscription: Option<Expandable>,
}

impl Invoice {
    pub fn customer_id(&self) -> Option<String> {
        id_of(&self.customer).or_else(|| self.customer_account.clone())
    }
    pub fn subscription_id(&self) -> Option<String> {
        id_of(&self.subscription).or_else(|| {
            self.parent
                .as_ref()
                .and_then(|p| p.subscription_details.as_ref())
                .and_then(|d| id_of(&d.subscription))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub customer: Option<Expandable>,
    /// Since `2025-12-15.clover`: the Accounts v2 customer, when `customer` is null.
    #[serde(default)]
    pub customer_account: Option<String>,
    pub status: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount: Option<i64>,
    pub amount_received: Option<i64>,
    pub currency: Option<String>,
    pub latest_charge: Option<Expandable>,
    pub last_payment_error: Option<Value>,
}

impl PaymentIntent {
    pub fn customer_id(&self) -> Option<String> {
        id_of(&self.customer).or_else(|| self.customer_account.clone())
    }
    pub fn latest_charge_id(&self) -> Option<String> {
        id_of(&self.latest_charge)
    }
    /// `last_payment_error.message` (or its code) when the last try failed.
    pub fn last_error(&self) -> Option<String> {
        let e = self.last_payment_error.as_ref().filter(|v| !v.is_null())?;
        e.get("message")
            .and_then(Value::as_str)
            .or_else(|| e.get("code").and_then(Value::as_str))
            .map(str::to_owned)
            .or_else(|| Some(e.to_string()))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub client_reference_id: Option<String>,
    pub customer: Option<Expandable>,
    /// Since `2025-12-15.clover`: the Accounts v2 customer, when `customer` is null.
    #[serde(default)]
    pub customer_account: Option<String>,
    pub subscription: Option<Expandable>,
    pub payment_intent: Option<Expandable>,
    pub mode: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount_total: Option<i64>,
    pub currency: Option<String>,
}

impl CheckoutSession {
    pub fn customer_id(&self) -> Option<String> {
        id_of(&self.customer).or_else(|| self.customer_account.clone())
    }
    pub fn subscription_id(&self) -> Option<String> {
        id_of(&self.subscription)
    }
    pub fn payment_intent_id(&self) -> Option<String> {
        id_of(&self.payment_intent)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dispute {
    pub id: String,
    pub charge: Option<Expandable>,
    pub payment_intent: Option<Expandable>,
    pub status: Option<String>,
    pub reason: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

impl Dispute {
    pub fn charge_id(&self) -> Option<String> {
        id_of(&self.charge)
    }
    pub fn payment_intent_id(&self) -> Option<String> {
        id_of(&self.payment_intent)
    }
}

/// A charge (`ch_…`, or `py_…` for some payment methods). The dispute link
/// is not on the charge (only `disputed`): it is the dispute's `charge`.
#[derive(Debug, Clone, Deserialize)]
pub struct Charge {
    pub id: String,
    pub customer: Option<Expandable>,
    /// Since `2025-12-15.clover`: the Accounts v2 customer, when `customer` is null.
    #[serde(default)]
    pub customer_account: Option<String>,
    pub payment_intent: Option<Expandable>,
    pub status: Option<String>,
    #[serde(default)]
    pub livemode: bool,
    pub amount: Option<i64>,
    pub amount_captured: Option<i64>,
    pub amount_refunded: Option<i64>,
    pub currency: Option<String>,
    #[serde(default)]
    pub captured: bool,
    #[serde(default)]
    pub paid: bool,
    #[serde(default)]
    pub refunded: bool,
    #[serde(default)]
    pub disputed: bool,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub metadata: Option<Value>,
}

impl Charge {
    pub fn customer_id(&self) -> Option<String> {
        id_of(&self.customer).or_else(|| self.customer_account.clone())
    }
    pub fn payment_intent_id(&self) -> Option<String> {
        id_of(&self.payment_intent)
    }
}

/// One of a customer's active entitlements (Stripe's Entitlements
/// product): the feature (`feat_…`, or the expanded feature) and its
/// `lookup_key`.
#[derive(Debug, Clone, Deserialize)]
pub struct ActiveEntitlement {
    pub id: String,
    pub feature: Option<Expandable>,
    pub lookup_key: Option<String>,
    #[serde(default)]
    pub livemode: bool,
}

impl ActiveEntitlement {
    pub fn feature_id(&self) -> Option<String> {
        id_of(&self.feature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_api_shapes_give_the_same_period_and_subscription() {
        let pre: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "active", "customer": "cus_1",
            "current_period_start": 100, "current_period_end": 200,
            "items": {"data": [{"id": "si_1", "price": {"id": "price_1", "product": "prod_1"}}]}
        }))
        .expect("pre-basil");
        let basil: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "active", "customer": {"id": "cus_1", "object": "customer"},
            "items": {"data": [{"id": "si_1", "current_period_start": 100, "current_period_end": 200,
                                "price": {"id": "price_1", "product": {"id": "prod_1"}}}]}
        }))
        .expect("basil");
        assert_eq!(pre.current_period(), (Some(100), Some(200)));
        assert_eq!(basil.current_period(), pre.current_period());
        assert_eq!(basil.customer_id(), pre.customer_id());
        assert_eq!(basil.items()[0].product_id(), Some("prod_1".to_owned()));

        let old: Invoice =
            serde_json::from_value(serde_json::json!({"id": "in_1", "subscription": "sub_1"}))
                .expect("old");
        let new: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_1", "subscription": null,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}
        }))
        .expect("new");
        assert_eq!(old.subscription_id().as_deref(), Some("sub_1"));
        assert_eq!(new.subscription_id().as_deref(), Some("sub_1"));
    }

    #[test]
    fn an_accounts_v2_customer_is_the_customer_account() {
        // 2025-12-15.clover and later: customer null, customer_account set.
        let sub: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "active", "customer": null, "customer_account": "acct_1",
            "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}},
            "items": {"data": [{"id": "si_1", "current_period_start": 100, "current_period_end": 200,
                                "price": {"id": "price_1", "product": "prod_1", "unit_amount_decimal": "9.99"}}]}
        }))
        .expect("dahlia subscription");
        assert_eq!(sub.customer_id().as_deref(), Some("acct_1"));
        assert_eq!(sub.current_period(), (Some(100), Some(200)));
        let invoice: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_1", "customer": "cus_1", "customer_account": null,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}
        }))
        .expect("dahlia invoice");
        assert_eq!(invoice.customer_id().as_deref(), Some("cus_1"));
        let session: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_1", "customer": null, "customer_account": "acct_2", "ui_mode": "hosted_page",
            "subscription": "sub_1", "mode": "subscription", "status": "complete", "payment_status": "paid"
        }))
        .expect("dahlia checkout session");
        assert_eq!(session.customer_id().as_deref(), Some("acct_2"));
        let charge: Charge = serde_json::from_value(serde_json::json!({
            "id": "ch_1", "object": "charge", "customer": null, "customer_account": "acct_3",
            "payment_intent": "pi_1", "status": "succeeded"
        }))
        .expect("dahlia charge");
        assert_eq!(charge.customer_id().as_deref(), Some("acct_3"));
        let intent: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "customer": null, "customer_account": "acct_3", "status": "succeeded"
        }))
        .expect("dahlia payment intent");
        assert_eq!(intent.customer_id().as_deref(), Some("acct_3"));
    }

    #[test]
    fn endive_shapes_read_like_dahlias() {
        // 2026-09-30.endive adds fields; none of those we read moved.
        let dahlia: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "paused", "customer": "cus_1",
            "items": {"data": [{"id": "si_1", "current_period_start": 100, "current_period_end": 200,
                                "price": {"id": "price_1", "product": "prod_1"}}]}
        }))
        .expect("dahlia subscription");
        let endive: Subscription = serde_json::from_value(serde_json::json!({
            "id": "sub_1", "status": "paused", "customer": "cus_1",
            // Set on a paused subscription (its content is not read here).
            "status_details": {"paused": {}},
            "billing_mode": {"type": "flexible"},
            "items": {"data": [{"id": "si_1", "current_period_start": 100, "current_period_end": 200,
                                "current_trial": null,
                                "price": {"id": "price_1", "product": "prod_1"}}]}
        }))
        .expect("endive subscription");
        assert_eq!(endive.status, SubscriptionStatus::Paused);
        assert_eq!(endive.status, dahlia.status);
        assert_eq!(endive.current_period(), dahlia.current_period());
        assert_eq!(
            endive.items()[0].product_id(),
            dahlia.items()[0].product_id()
        );

        let invoice: Invoice = serde_json::from_value(serde_json::json!({
            "id": "in_1", "customer": "cus_1", "status": "uncollectible",
            "status_details": {"uncollectible": {"reason": "max_payment_attempts"}},
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}
        }))
        .expect("endive invoice");
        assert_eq!(invoice.status.as_deref(), Some("uncollectible"));
        assert_eq!(invoice.subscription_id().as_deref(), Some("sub_1"));

        let error = serde_json::json!({"code": "card_declined", "message": "Your card was declined.",
                                       "type": "card_error"});
        let mut endive_error = error.clone();
        endive_error["payment_method_type"] = serde_json::json!("card");
        let dahlia: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "last_payment_error": error,
            "payment_method_types": ["card"]
        }))
        .expect("dahlia payment intent");
        let endive: PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "status": "requires_payment_method", "last_payment_error": endive_error,
            "payment_method_types": ["card"], "allowed_payment_method_types": ["card"],
            "payment_record": null
        }))
        .expect("endive payment intent");
        assert_eq!(endive.last_error(), dahlia.last_error());
        assert_eq!(
            endive.last_error().as_deref(),
            Some("Your card was declined.")
        );

        let session: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_1", "customer": "cus_1", "subscription": "sub_1", "mode": "subscription",
            "status": "complete", "payment_status": "paid",
            "payment_method_types": ["card"], "allowed_payment_method_types": ["card"]
        }))
        .expect("endive checkout session");
        assert_eq!(session.subscription_id().as_deref(), Some("sub_1"));
    }

    #[test]
    fn charges_and_active_entitlements_read_ids_or_expanded_objects() {
        let charge: Charge = serde_json::from_value(serde_json::json!({
            "id": "ch_1", "object": "charge", "amount": 2000, "amount_refunded": 500,
            "customer": {"id": "cus_1", "object": "customer"}, "payment_intent": "pi_1",
            "status": "succeeded", "refunded": false, "disputed": true, "paid": true
        }))
        .expect("charge");
        assert_eq!(charge.customer_id().as_deref(), Some("cus_1"));
        assert_eq!(charge.payment_intent_id().as_deref(), Some("pi_1"));
        assert!(charge.disputed && !charge.refunded && !charge.captured);
        let ent: ActiveEntitlement = serde_json::from_value(serde_json::json!({
            "id": "ent_1", "object": "entitlements.active_entitlement",
            "feature": {"id": "feat_1", "object": "entitlements.feature", "lookup_key": "pro"},
            "lookup_key": "pro", "livemode": false
        }))
        .expect("active entitlement");
        assert_eq!(ent.feature_id().as_deref(), Some("feat_1"));
    }
}
