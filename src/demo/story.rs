//! The demo's script: one customer's life as Stripe would report it.
//!
//! Each step changes the stand-in's objects (what Stripe holds), then sends
//! the signed snapshot events Stripe would send through the real intake —
//! sometimes out of order, sometimes twice, as Stripe does — waits until
//! the daemon has applied them and forwarded them to the demo's app, and
//! narrates the outcome: each event's status (from the admin API), the
//! customer's access now (from the store), and what the app received
//! (verified, de-duplicated, in order; `stripe_hookd.access.updated` when
//! access changed). In step 3 the app answers 500 to `invoice.paid` once,
//! on purpose, and the retry is shown.
//!
//! 1. checkout: `checkout.session.completed` (first, out of order),
//!    `customer.created`, `customer.subscription.created` (incomplete)
//! 2. the payment is confirmed: `customer.subscription.updated` → active
//! 3. the invoice is paid: `payment_intent.succeeded`, `invoice.paid`
//!    (twice), `invoice.payment_succeeded`
//! 4. the renewal fails: `customer.subscription.updated` → past_due (before
//!    its cause), `invoice.payment_failed`
//! 5. a new card: `payment_method.attached` (ignored), `customer.updated`,
//!    `invoice.paid`, `customer.subscription.updated` → active
//! 6. a dispute: `charge.dispute.created` (twice)
//! 7. the cancel: `customer.subscription.deleted`, then the older
//!    `customer.subscription.updated` (cancel at period end) late

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use super::fake_stripe::set_subscription_status;
use super::view::{self, Access};
use super::{say, Demo, Out};
use crate::store::now_ms;
use crate::trigger::scenario::{envelope, new_id};
use crate::trigger::{Intake, Scenario};

use super::outcome::{Delivered, StepReport, StoryOutcome};

/// How long one step's events may take to be applied before the story
/// moves on (and says so). Far above what they need: the machine may be busy.
const SETTLE_DEADLINE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(50);

/// One delivery of a step: the event, and what to say before it goes.
struct Outgoing {
    event: Value,
    note: Option<&'static str>,
}

fn send(event: &Value) -> Outgoing {
    Outgoing {
        event: event.clone(),
        note: None,
    }
}

fn send_noting(event: &Value, note: &'static str) -> Outgoing {
    Outgoing {
        event: event.clone(),
        note: Some(note),
    }
}

pub(super) struct Story<'a> {
    demo: &'a Demo,
    out: Out<'a>,
    delay: Duration,
    s: Scenario,
    renewal: String,
    target: Intake,
    steps: Vec<StepReport>,
    /// Once the step's deliveries are in, redeliver the app's delivery of
    /// this event type (as an operator would) to show its de-duplication.
    redeliver: Option<&'static str>,
}

impl<'a> Story<'a> {
    pub(super) fn new(demo: &'a Demo, out: Out<'a>, delay: Duration) -> Story<'a> {
        Story {
            demo,
            out,
            delay,
            s: Scenario::new(false, &demo.api_version),
            renewal: new_id("in"),
            target: Intake {
                url: demo.intake_url.clone(),
                secret: demo.secret.clone(),
            },
            steps: Vec::new(),
            redeliver: None,
        }
    }

    pub(super) async fn play(mut self) -> anyhow::Result<StoryOutcome> {
        self.checkout().await?;
        self.activated().await?;
        self.invoice_paid().await?;
        self.renewal_fails().await?;
        self.card_updated().await?;
        self.dispute().await?;
        self.cancel().await?;
        Ok(StoryOutcome {
            customer: self.s.customer.clone(),
            client_reference_id: self.s.client_reference_id.clone(),
            subscription: self.s.subscription.clone(),
            checkout_session: self.s.checkout_session.clone(),
            invoices: vec![self.s.invoice.clone(), self.renewal.clone()],
            payment_intent: self.s.payment_intent.clone(),
            dispute: self.s.dispute.clone(),
            steps: self.steps,
        })
    }

    // --- the steps ---

    async fn checkout(&mut self) -> anyhow::Result<()> {
        let fake = &self.demo.fake;
        let customer = fake.customer(&self.s);
        let subscription = fake.subscription(&self.s, "incomplete");
        let session = fake.checkout_session(&self.s);
        fake.invoice(&self.s, "open");
        let who = self.s.client_reference_id.clone();
        self.step(
            "A customer checks out",
            &[
                &format!("Jenny (your user {who}) pays for a plan on a Stripe Checkout page."),
                "Stripe creates her customer and a subscription, incomplete while the first payment is confirmed.",
            ],
            vec![
                send_noting(
                    &self.event("checkout.session.completed", session),
                    "out of order: Checkout's event comes before the customer and subscription it names",
                ),
                send(&self.event("customer.created", customer)),
                send(&self.event("customer.subscription.created", subscription)),
            ],
            &[
                "The order did no harm: the daemon fetches each object from Stripe and links them.",
            ],
        )
        .await
    }

    async fn activated(&mut self) -> anyhow::Result<()> {
        let sub = self.change(&self.s.subscription.clone(), |v| {
            set_subscription_status(v, "active")
        })?;
        self.step(
            "The first payment is confirmed: the subscription goes active",
            &["Stripe marks the subscription active."],
            vec![send(&self.updated(
                "customer.subscription.updated",
                sub,
                json!({"status": "incomplete"}),
            ))],
            &["Access is granted: the entitlement row was written in the same transaction as the subscription."],
        )
        .await
    }

    async fn invoice_paid(&mut self) -> anyhow::Result<()> {
        let fake = &self.demo.fake;
        let payment = fake.payment_intent(&self.s, true);
        let invoice = fake.invoice(&self.s, "paid");
        let paid = self.event("invoice.paid", invoice.clone());
        self.demo.app.fail_next("invoice.paid");
        self.step(
            "The invoice is paid",
            &[
                "The first invoice's payment succeeds.",
                "(your app will answer 500 to invoice.paid once, on purpose: watch the retry)",
            ],
            vec![
                send(&self.event("payment_intent.succeeded", payment)),
                send(&paid),
                send(&self.event("invoice.payment_succeeded", invoice)),
                send_noting(
                    &paid,
                    "twice: Stripe did not see our answer in time and sends invoice.paid again, same event id",
                ),
            ],
            &[
                "The repeat was answered 200 and stored once: the event id is unique in the outbox.",
                "The app's 500 held the invoice's next event back until the retry succeeded: one object's deliveries go in order.",
            ],
        )
        .await
    }

    async fn renewal_fails(&mut self) -> anyhow::Result<()> {
        let mut renewal = self
            .s
            .object("invoice.payment_failed")
            .context("the scenario's failed invoice")?;
        renewal["id"] = json!(self.renewal);
        renewal["attempt_count"] = json!(1);
        let renewal = self.demo.fake.put(renewal);
        let renewal_id = self.renewal.clone();
        let sub = self.change(&self.s.subscription.clone(), |v| {
            set_subscription_status(v, "past_due");
            v["latest_invoice"] = json!(renewal_id);
        })?;
        self.step(
            "A month later the renewal fails: past_due",
            &["The card is declined on the renewal invoice; Stripe marks the subscription past_due."],
            vec![
                send_noting(
                    &self.updated(
                        "customer.subscription.updated",
                        sub,
                        json!({"status": "active"}),
                    ),
                    "out of order: the subscription's change arrives before the failed payment that caused it",
                ),
                send(&self.event("invoice.payment_failed", renewal)),
            ],
            &["past_due keeps access for a grace period (entitlements.past_due_grace_hours), counted from when it was first seen."],
        )
        .await
    }

    async fn card_updated(&mut self) -> anyhow::Result<()> {
        let fake = &self.demo.fake;
        let card = fake.put(json!({
            "id": new_id("pm"), "object": "payment_method", "type": "card",
            "customer": self.s.customer, "livemode": false, "created": now_ms() / 1000,
            "billing_details": {"email": null, "name": "Jenny Rosen"},
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030, "funding": "credit"},
        }));
        let customer = self.change(&self.s.customer.clone(), |v| {
            v["invoice_settings"]["default_payment_method"] = card["id"].clone();
        })?;
        let renewal = self.change(&self.renewal.clone(), |v| {
            v["status"] = json!("paid");
            v["amount_paid"] = v["amount_due"].clone();
            v["amount_remaining"] = json!(0);
            v["attempt_count"] = json!(2);
        })?;
        let sub = self.change(&self.s.subscription.clone(), |v| {
            set_subscription_status(v, "active")
        })?;
        self.step(
            "Jenny updates her card; the retry succeeds: active again",
            &["She adds a new card; Stripe retries the renewal invoice, which is paid."],
            vec![
                send_noting(
                    &self.event("payment_method.attached", card),
                    "a type the daemon does not reconcile: stored and marked ignored, never failed",
                ),
                send(&self.updated(
                    "customer.updated",
                    customer,
                    json!({"invoice_settings": {"default_payment_method": null}}),
                )),
                send(&self.event("invoice.paid", renewal)),
                send(&self.updated(
                    "customer.subscription.updated",
                    sub,
                    json!({"status": "past_due"}),
                )),
            ],
            &["Active again: access no longer depends on the grace clock."],
        )
        .await
    }

    async fn dispute(&mut self) -> anyhow::Result<()> {
        // The disputed charge exists at Stripe as the dispute does (the
        // reconcile fetches it with the dispute).
        self.demo.fake.charge(&self.s, "succeeded");
        let dispute = self.demo.fake.dispute(&self.s, "needs_response");
        let opened = self.event("charge.dispute.created", dispute);
        self.redeliver = Some("charge.dispute.created");
        self.step(
            "A dispute opens on the first payment",
            &["Jenny's bank disputes the first charge."],
            vec![
                send(&opened),
                send_noting(&opened, "twice: the same event delivered again"),
            ],
            &[
                "The dispute is recorded. Access follows the subscription only: what a dispute means for access is your application's call.",
                "The app did not handle the redelivery again: it keeps the delivery ids it handled (a unique key in your database).",
            ],
        )
        .await
    }

    async fn cancel(&mut self) -> anyhow::Result<()> {
        let at_period_end = self.change(&self.s.subscription.clone(), |v| {
            v["cancel_at_period_end"] = json!(true);
        })?;
        let scheduled = self.updated(
            "customer.subscription.updated",
            at_period_end,
            json!({"cancel_at_period_end": false}),
        );
        let canceled = self.change(&self.s.subscription.clone(), |v| {
            v["cancel_at_period_end"] = json!(false);
            set_subscription_status(v, "canceled");
        })?;
        self.step(
            "Jenny cancels",
            &["She first schedules the cancel for the period's end, then cancels at once."],
            vec![
                send(&self.event("customer.subscription.deleted", canceled)),
                send_noting(
                    &scheduled,
                    "out of order: the older update (cancel at period end) arrives after the deletion",
                ),
            ],
            &[
                "The late update did not bring the subscription back: the daemon fetched it, still canceled. Access is revoked.",
                "Your app got the late update after the deletion (one object's deliveries go in order), but its body is the older snapshot: read the subscription's state from stripe-hookd's tables (canceled), not from the body.",
            ],
        )
        .await
    }

    // --- the machinery of a step ---

    /// Pauses (after the first), narrates, sends, waits for the daemon, reports.
    async fn step(
        &mut self,
        title: &str,
        intro: &[&str],
        sends: Vec<Outgoing>,
        outro: &[&str],
    ) -> anyhow::Result<()> {
        if !self.steps.is_empty() {
            tokio::time::sleep(self.delay).await;
        }
        let n = self.steps.len() + 1;
        let mark = self.demo.app.count();
        say(self.out, format!("\n── Step {n}: {title}"));
        for line in intro {
            say(self.out, format!("   {line}"));
        }
        let mut deliveries: Vec<Delivered> = Vec::new();
        for Outgoing { event, note } in sends {
            if let Some(note) = note {
                say(self.out, format!("   ({note})"));
            }
            deliveries.push(self.deliver(&event).await?);
        }
        let ids: Vec<String> = deliveries.iter().map(|d| d.event_id.clone()).collect();
        let settled = self.settle(&ids).await?;
        say(self.out, "   the daemon:");
        let mut reported = std::collections::HashSet::new();
        for d in &mut deliveries {
            if let Some(state) = settled.iter().find(|s| s.event_id == d.event_id) {
                d.status = state.status.clone();
                d.attempts = state.attempts;
                d.last_error = state.last_error.clone();
            }
            if reported.insert(d.event_id.clone()) {
                say(self.out, format!("     {}", view::describe_status(d)));
            }
        }
        let access = view::access(self.demo, &self.s.customer, &self.s.subscription).await?;
        say(self.out, format!("   {}", access.describe()));
        let mut forwarded = self.forwarded().await?;
        if let Some(event_type) = self.redeliver.take() {
            forwarded = self.redeliver_to_the_app(mark, event_type).await? && forwarded;
        }
        let app = self.demo.app.since(mark);
        say(
            self.out,
            format!(
                "   your app ({}, verifying {} signature) received:",
                super::app::DESTINATION,
                view::scheme_name(self.demo.app.scheme())
            ),
        );
        for r in &app {
            say(self.out, format!("     {}", view::describe_received(r)));
        }
        if !forwarded {
            say(
                self.out,
                "     (some deliveries are still pending: see `stripe-hookd deliveries list`)",
            );
        }
        for line in outro {
            say(self.out, format!("   {line}"));
        }
        self.steps.push(report(title, deliveries, &access, app));
        Ok(())
    }

    /// Signs and POSTs one event to the intake, as Stripe does.
    async fn deliver(&mut self, event: &Value) -> anyhow::Result<Delivered> {
        let body = event.to_string();
        let (status, answer) = crate::trigger::send(&self.demo.client, &self.target, &body).await?;
        let event_id = event["id"].as_str().unwrap_or_default().to_owned();
        let event_type = event["type"].as_str().unwrap_or_default().to_owned();
        if status != 200 {
            anyhow::bail!("the intake answered {status} to {event_type} {event_id}: {answer}");
        }
        let duplicate =
            serde_json::from_str::<Value>(&answer).is_ok_and(|a| a["duplicate"] == json!(true));
        if !duplicate {
            // What Stripe lists at GET /v1/events (for `catch-up`).
            self.demo.fake.push_event(event.clone());
        }
        let answer = if duplicate {
            "200, a duplicate: stored once"
        } else {
            "200, stored"
        };
        say(
            self.out,
            format!("   → {event_type:<34} {event_id}  {answer}"),
        );
        Ok(Delivered {
            event_id,
            event_type,
            http_status: status,
            duplicate,
            status: "pending".to_owned(),
            attempts: 0,
            last_error: None,
        })
    }

    /// Waits until every event is finished (done, ignored, dead or
    /// discarded), or the deadline passes; returns their states either way.
    async fn settle(&self, ids: &[String]) -> anyhow::Result<Vec<view::EventState>> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            let mut states = Vec::with_capacity(ids.len());
            for id in ids {
                states.push(view::event_state(self.demo, id).await?);
            }
            if states.iter().all(view::EventState::finished) || Instant::now() > deadline {
                return Ok(states);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the app's destination has nothing pending or being
    /// sent (the step's deliveries exist once its events are finished), or
    /// the deadline passes: whether it got there.
    async fn forwarded(&self) -> anyhow::Result<bool> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        loop {
            if view::deliveries_in_flight(self.demo).await? == 0 {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Redelivers the app's delivery of `event_type` received since
    /// `mark` (the admin API's redeliver, as an operator would) and waits
    /// for it: whether it got there.
    async fn redeliver_to_the_app(
        &mut self,
        mark: usize,
        event_type: &str,
    ) -> anyhow::Result<bool> {
        let Some(delivery_id) = self
            .demo
            .app
            .since(mark)
            .into_iter()
            .find(|r| r.event_type == event_type && r.handled == super::Handled::Applied)
            .map(|r| r.delivery_id)
        else {
            return Ok(false);
        };
        say(
            self.out,
            format!("   (then you redeliver {event_type} to your app, as from the inspector or `stripe-hookd deliveries redeliver {delivery_id}`: the same delivery id again)"),
        );
        view::redeliver(self.demo, &delivery_id).await?;
        self.forwarded().await
    }

    /// Changes an object in the stand-in; returns it as it is now.
    fn change(&self, id: &str, f: impl FnOnce(&mut Value)) -> anyhow::Result<Value> {
        self.demo.fake.update(id, f);
        self.demo
            .fake
            .get(id)
            .with_context(|| format!("the stand-in lost {id}"))
    }

    /// A snapshot event around `object`, created now.
    fn event(&self, event_type: &str, object: Value) -> Value {
        envelope(
            event_type,
            object,
            &self.demo.api_version,
            false,
            now_ms() / 1000,
        )
    }

    /// An `*.updated` event with the fields' previous values.
    fn updated(&self, event_type: &str, object: Value, previous: Value) -> Value {
        let mut event = self.event(event_type, object);
        event["data"]["previous_attributes"] = previous;
        event
    }
}

fn report(
    title: &str,
    deliveries: Vec<Delivered>,
    access: &Access,
    app: Vec<super::Received>,
) -> StepReport {
    StepReport {
        title: title.to_owned(),
        deliveries,
        subscription_status: access.subscription_status.clone(),
        access: access.granted(),
        access_until: access.until(),
        app,
    }
}
