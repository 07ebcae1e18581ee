//! What the demo's story produced: each event as it was sent and left,
//! each step as it ended, and the objects the story created. The story
//! (`story.rs`) fills it; the view (`view.rs`) prints it.

/// One event as the story sent it and the daemon left it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub event_id: String,
    pub event_type: String,
    /// The intake's answer (200 expected).
    pub http_status: u16,
    /// The intake recognised a redelivery (stored once).
    pub duplicate: bool,
    /// The event's status once the step settled (`done`, `ignored`, …).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// One step of the story, as it ended.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub title: String,
    pub deliveries: Vec<Delivered>,
    /// The local subscription's status after the step (None: not yet known).
    pub subscription_status: Option<String>,
    /// Whether the customer has access now, by the entitlements.
    pub access: bool,
    /// When the access runs out, if it is time-limited (past_due grace).
    pub access_until: Option<i64>,
    /// What the demo's app received during the step, in arrival order.
    pub app: Vec<super::Received>,
}

/// What the story created, and how each step ended.
#[derive(Debug, Clone)]
pub struct StoryOutcome {
    pub customer: String,
    pub client_reference_id: String,
    pub subscription: String,
    pub checkout_session: String,
    /// The first invoice, then the renewal.
    pub invoices: Vec<String>,
    pub payment_intent: String,
    pub dispute: String,
    pub steps: Vec<StepReport>,
}
