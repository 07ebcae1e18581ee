//! Forwarding: a receiving app inside the test verifies every request with
//! an independent HMAC; the daemon forwards after the finish (or the
//! intake), re-signed, in order per object, and retries, dies and pauses
//! as documented.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::json;
use stripe_hookd::testing::config::{self, After, Destination};
use stripe_hookd::testing::store::deliveries::{self, history, Delivery};

use crate::backend_tests;
use crate::fake_stripe::{set_subscription_status, FakeStripe};
use crate::harness::{sign, snapshot_event, AppOptions, Backend, TestApp, TestDb};

pub(crate) const APP_SECRET: &str = "whsec_the_apps_own_secret";

/// One request the app received, already verified.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    pub event_id: String,
    pub event_type: String,
    pub object_id: String,
    pub delivery: String,
    pub attempt: u32,
}

pub(crate) type Answer = Arc<dyn Fn(Received) -> BoxFuture<'static, u16> + Send + Sync>;

/// The application: checks `Stripe-Signature` with its own HMAC code and
/// [`APP_SECRET`] (within Stripe's 300 s tolerance), records the request
/// and answers what `answer` says.
pub(crate) struct Receiver {
    pub url: String,
    /// Requests answered 2xx, in the order they were answered.
    delivered: Arc<Mutex<Vec<Received>>>,
    /// Every verified request, in arrival order.
    seen: Arc<Mutex<Vec<Received>>>,
    /// Requests whose signature did not verify.
    pub forged: Arc<Mutex<usize>>,
}

#[derive(Clone)]
struct ReceiverState {
    answer: Answer,
    delivered: Arc<Mutex<Vec<Received>>>,
    seen: Arc<Mutex<Vec<Received>>>,
    forged: Arc<Mutex<usize>>,
}

impl Receiver {
    pub(crate) fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let state = ReceiverState {
            answer,
            delivered: Arc::default(),
            seen: Arc::default(),
            forged: Arc::default(),
        };
        let receiver = Receiver {
            url: format!("http://{addr}/webhooks/stripe"),
            delivered: state.delivered.clone(),
            seen: state.seen.clone(),
            forged: state.forged.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .route("/webhooks/stripe", web::post().to(receive))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        receiver
    }

    pub(crate) fn always(status: u16) -> Receiver {
        Receiver::start(Arc::new(move |_| async move { status }.boxed()))
    }

    pub(crate) fn delivered(&self) -> Vec<Received> {
        self.delivered.lock().unwrap().clone()
    }
    pub(crate) fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
    /// Delivered event ids of one object, in the order answered.
    fn order_of(&self, object_id: &str) -> Vec<String> {
        self.delivered()
            .into_iter()
            .filter(|r| r.object_id == object_id)
            .map(|r| r.event_id)
            .collect()
    }
}

async fn receive(state: web::Data<ReceiverState>, req: HttpRequest, body: String) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    // Stripe's verification, written here independently of the daemon.
    let signature = header("stripe-signature");
    let t: i64 = signature
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let fresh = (crate::harness::now() - t).abs() <= 300;
    let expected = sign(APP_SECRET, t, &body);
    let valid = signature
        .split(',')
        .filter_map(|p| p.strip_prefix("v1="))
        .any(|v1| v1 == expected);
    if !(fresh && valid) || header("content-type") != "application/json" {
        *state.forged.lock().unwrap() += 1;
        return HttpResponse::BadRequest().body("bad signature");
    }
    let event: serde_json::Value = serde_json::from_str(&body).expect("json body");
    let received = Received {
        event_id: event["id"].as_str().unwrap_or("").to_owned(),
        event_type: event["type"].as_str().unwrap_or("").to_owned(),
        object_id: event["data"]["object"]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        delivery: header("stripe-hookd-delivery"),
        attempt: header("stripe-hookd-attempt").parse().unwrap_or(0),
        body,
    };
    state.seen.lock().unwrap().push(received.clone());
    let status = (state.answer)(received.clone()).await;
    if (200..300).contains(&status) {
        state.delivered.lock().unwrap().push(received);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status"))
        .body("answer")
}

/// A destination named `app` at `url`, with the documented defaults.
pub(crate) fn destination(url: &str, edit: impl FnOnce(&mut Destination)) -> Destination {
    let toml =
        format!("[[destinations]]\nname = \"app\"\nurl = \"{url}\"\nsecret = \"{APP_SECRET}\"\n");
    let mut d = config::from_toml_str(&toml)
        .expect("destination config")
        .destinations
        .remove(0);
    edit(&mut d);
    d
}

pub(crate) fn with_destination(d: Destination) -> AppOptions {
    AppOptions::default().config(move |c| {
        c.destinations = vec![d.clone()];
        c.forward.enabled = false;
    })
}

pub(crate) fn customer_event(event_type: &str, customer: &str) -> serde_json::Value {
    snapshot_event(event_type, json!({"id": customer, "object": "customer"}))
}

pub(crate) async fn rows(app: &TestApp) -> Vec<Delivery> {
    app.db(|c| deliveries::list(c).expect("deliveries")).await
}

pub(crate) fn forwarder(app: &TestApp) -> Arc<stripe_hookd::testing::forward::Forwarder> {
    app.forwarder.clone().expect("a forwarder")
}

backend_tests!(
    delivered_after_the_finish_byte_for_byte_and_verifiably_signed,
    received_destinations_get_the_event_at_the_intake_commit,
    app_down_then_back_gets_everything_in_order_per_object,
    one_type_failing_forever_ends_dead_while_others_flow,
    event_filters_choose_what_is_recorded,
    gone_pauses_the_destination,
    a_slow_delivery_holds_back_only_its_own_object,
    while_the_app_handles_an_update_the_new_state_is_already_committed,
    a_worker_killed_mid_delivery_leaves_it_to_be_sent_again,
    a_claim_records_the_attempts_that_ended_first,
    redirects_are_not_followed,
    dead_deliveries_are_listed_redelivered_and_discarded_through_the_admin_api,
);

async fn delivered_after_the_finish_byte_for_byte_and_verifiably_signed(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let app = TestApp::spawn_with(&db, with_destination(destination(&app_side.url, |_| {}))).await;
    let sent = customer_event("customer.created", "cus_fwd1");
    let body = sent.to_string();
    assert_eq!(app.deliver(&body).await.status(), 200);

    // Not before the event is finished.
    assert!(rows(&app).await.is_empty(), "recorded before the finish");
    forwarder(&app).run_pending().await.unwrap();
    assert!(app_side.seen().is_empty());

    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 1, "{tally:?}");
    let got = app_side.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body, "the original body, byte for byte");
    assert_eq!(got[0].attempt, 1);
    assert_eq!(
        got[0].delivery,
        deliveries::delivery_id("app", sent["id"].as_str().unwrap())
    );
    assert_eq!(*app_side.forged.lock().unwrap(), 0);
    let row = &rows(&app).await[0];
    assert_eq!(row.status, "delivered");
    assert_eq!(row.last_status, Some(200));

    // Nothing is sent twice.
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.seen().len(), 1);
}

async fn received_destinations_get_the_event_at_the_intake_commit(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| d.after = After::Received);
    let app = TestApp::spawn_with(&db, with_destination(d)).await;
    let id = app
        .deliver_ok(&customer_event("customer.created", "cus_fwd2"))
        .await;
    // The runner has not run: the delivery exists already.
    let rows = rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event_id, id);
    forwarder(&app).run_pending().await.unwrap();
    assert_eq!(app_side.delivered().len(), 1);
}

async fn app_down_then_back_gets_everything_in_order_per_object(backend: Backend) {
    let db = TestDb::new(backend);
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app_side = {
        let up = up.clone();
        Receiver::start(Arc::new(move |_| {
            let status = if up.load(std::sync::atomic::Ordering::SeqCst) {
                200
            } else {
                503
            };
            async move { status }.boxed()
        }))
    };
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let mut sent: Vec<(String, &str)> = Vec::new();
    for (event_type, customer) in [
        ("customer.created", "cus_a"),
        ("customer.created", "cus_b"),
        ("customer.updated", "cus_a"),
        ("customer.updated", "cus_b"),
        ("customer.deleted", "cus_a"),
    ] {
        let id = app.deliver_ok(&customer_event(event_type, customer)).await;
        // One finish per event: the order deliveries are recorded in.
        app.runner.run_pending().await.unwrap();
        sent.push((id, customer));
    }
    // Down: each object's first delivery is tried, the later ones wait.
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.retried, 2, "{tally:?}");
    let mut tried: Vec<String> = app_side.seen().into_iter().map(|r| r.event_id).collect();
    tried.sort();
    let mut heads = vec![sent[0].0.clone(), sent[1].0.clone()];
    heads.sort();
    assert_eq!(tried, heads);

    // Down for a few hours: retries keep failing, still nothing else tried.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(3600));
        forwarder(&app).run_pending().await.unwrap();
    }
    assert!(app_side
        .seen()
        .iter()
        .all(|r| r.event_id == sent[0].0 || r.event_id == sent[1].0));

    up.store(true, std::sync::atomic::Ordering::SeqCst);
    clock.advance(Duration::from_secs(3600));
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 5, "{tally:?}");
    for customer in ["cus_a", "cus_b"] {
        let expected: Vec<String> = sent
            .iter()
            .filter(|(_, c)| *c == customer)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(app_side.order_of(customer), expected, "{customer}");
    }
    assert!(rows(&app).await.iter().all(|r| r.status == "delivered"));
    assert_eq!(*app_side.forged.lock().unwrap(), 0);
}

async fn one_type_failing_forever_ends_dead_while_others_flow(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::start(Arc::new(|r: Received| {
        let status = if r.event_type == "customer.deleted" {
            500
        } else {
            200
        };
        async move { status }.boxed()
    }));
    let options = with_destination(destination(&app_side.url, |d| d.max_attempts = 3));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let doomed = app
        .deliver_ok(&customer_event("customer.deleted", "cus_x"))
        .await;
    app.runner.run_pending().await.unwrap();
    // A later event of the same object waits behind it until it is dead.
    let behind = app
        .deliver_ok(&customer_event("customer.updated", "cus_x"))
        .await;
    app.runner.run_pending().await.unwrap();
    for n in 0..3 {
        app.deliver_ok(&customer_event("customer.created", &format!("cus_ok{n}")))
            .await;
        app.runner.run_pending().await.unwrap();
        forwarder(&app).run_pending().await.unwrap();
        clock.advance(Duration::from_secs(2 * 3600));
    }
    forwarder(&app).run_pending().await.unwrap();
    let rows = rows(&app).await;
    let dead: Vec<&Delivery> = rows.iter().filter(|r| r.status == "dead").collect();
    assert_eq!(dead.len(), 1, "{rows:?}");
    assert_eq!(dead[0].event_id, doomed);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_status, Some(500));
    let seen: Vec<String> = app_side.seen().into_iter().map(|r| r.event_id).collect();
    assert_eq!(seen.iter().filter(|id| **id == doomed).count(), 3);
    assert_eq!(app_side.delivered().len(), 4, "the others flowed");
    let last_doomed = seen.iter().rposition(|id| *id == doomed).unwrap();
    let follow_up = seen.iter().position(|id| *id == behind).expect("unblocked");
    assert!(
        follow_up > last_doomed,
        "sent before the earlier one ended: {seen:?}"
    );
}

async fn event_filters_choose_what_is_recorded(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let d = destination(&app_side.url, |d| {
        d.events = vec![
            "customer.subscription.*".to_owned(),
            "invoice.paid".to_owned(),
        ];
    });
    let app = TestApp::spawn_with(&db, with_destination(d)).await;
    let wanted = app
        .deliver_ok(&snapshot_event(
            "customer.subscription.updated",
            json!({"id": "sub_f", "object": "subscription"}),
        ))
        .await;
    app.deliver_ok(&customer_event("customer.created", "cus_f"))
        .await;
    app.deliver_ok(&snapshot_event(
        "invoice.payment_failed",
        json!({"id": "in_f", "object": "invoice"}),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    let rows = rows(&app).await;
    assert_eq!(
        rows.iter().map(|r| r.event_id.clone()).collect::<Vec<_>>(),
        vec![wanted]
    );
}

async fn gone_pauses_the_destination(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(410);
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    for customer in ["cus_g1", "cus_g2", "cus_g3"] {
        app.deliver_ok(&customer_event("customer.created", customer))
            .await;
    }
    app.runner.run_pending().await.unwrap();
    let fwd = forwarder(&app);
    fwd.run_pending().await.unwrap();
    assert!(fwd.is_paused("app"));
    let tried = app_side.seen().len();
    assert!(tried >= 1);
    clock.advance(Duration::from_secs(24 * 3600));
    fwd.run_pending().await.unwrap();
    assert_eq!(app_side.seen().len(), tried, "sent to a paused destination");
    assert!(rows(&app).await.iter().all(|r| r.status == "pending"));
}

async fn a_slow_delivery_holds_back_only_its_own_object(backend: Backend) {
    let db = TestDb::new(backend);
    // The first event of cus_slow is answered only once cus_fast's event
    // has arrived: proof that other objects flow while it is in flight.
    let fast_arrived = Arc::new(tokio::sync::Notify::new());
    let slow_answered = Arc::new(Mutex::new(None::<usize>));
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let app_side = {
        let (fast_arrived, slow_answered, order) =
            (fast_arrived.clone(), slow_answered.clone(), order.clone());
        Receiver::start(Arc::new(move |r: Received| {
            let (fast_arrived, slow_answered, order) =
                (fast_arrived.clone(), slow_answered.clone(), order.clone());
            async move {
                order.lock().unwrap().push(r.event_id.clone());
                if r.object_id == "cus_fast" {
                    fast_arrived.notify_one();
                } else if r.event_type == "customer.created" {
                    let waited =
                        tokio::time::timeout(Duration::from_secs(20), fast_arrived.notified())
                            .await;
                    assert!(waited.is_ok(), "cus_fast was held back by cus_slow");
                    // Time for a later delivery of cus_slow to arrive, were
                    // it (wrongly) sent while this one is in flight.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let n = order.lock().unwrap().len();
                    *slow_answered.lock().unwrap() = Some(n);
                }
                200
            }
            .boxed()
        }))
    };
    let app = TestApp::spawn_with(&db, with_destination(destination(&app_side.url, |_| {}))).await;
    let first = app
        .deliver_ok(&customer_event("customer.created", "cus_slow"))
        .await;
    app.runner.run_pending().await.unwrap();
    let second = app
        .deliver_ok(&customer_event("customer.updated", "cus_slow"))
        .await;
    let fast = app
        .deliver_ok(&customer_event("customer.created", "cus_fast"))
        .await;
    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.delivered, 3, "{tally:?}");
    let order = order.lock().unwrap().clone();
    let at = |id: &str| order.iter().position(|o| o == id).expect("arrived");
    let answered = slow_answered
        .lock()
        .unwrap()
        .expect("the slow one answered");
    assert_eq!(order.len(), 3, "{order:?}");
    assert!(at(&fast) < answered, "the other object waited: {order:?}");
    assert!(
        at(&second) >= answered,
        "sent before the earlier delivery of its object was answered: {order:?}"
    );
    assert_eq!(app_side.order_of("cus_slow"), vec![first, second]);
}

/// `after = "reconciled"`: the app, while it handles
/// `customer.subscription.updated`, reads the new status from
/// stripe-hookd's database (the background forwarder sends it).
async fn while_the_app_handles_an_update_the_new_state_is_already_committed(backend: Backend) {
    use diesel::prelude::*;
    use stripe_hookd::testing::store::schema::subscriptions;
    use stripe_hookd::testing::store::Store;

    let db = TestDb::new(backend);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = stripe_hookd::testing::trigger::Scenario::new(false, crate::harness::API_VERSION);
    let sub = fake.subscription(&s, "active");
    let store: Arc<std::sync::OnceLock<Store>> = Arc::default();
    let read: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let app_side = {
        let (store, read) = (store.clone(), read.clone());
        Receiver::start(Arc::new(move |r: Received| {
            let (store, read) = (store.clone(), read.clone());
            async move {
                let Some(store) = store.get().cloned() else {
                    return 503;
                };
                let id = r.object_id.clone();
                let status = tokio::task::spawn_blocking(move || {
                    let mut conn = store.conn().expect("conn");
                    stripe_hookd::testing::with_conn!(&mut *conn, c => subscriptions::table
                        .filter(subscriptions::id.eq(&id))
                        .select(subscriptions::status)
                        .first::<String>(c)
                        .optional()
                        .expect("query"))
                })
                .await
                .expect("read");
                read.lock()
                    .unwrap()
                    .push((r.event_type, status.unwrap_or_default()));
                200
            }
            .boxed()
        }))
    };
    let d = destination(&app_side.url, |d| {
        d.events = vec!["customer.subscription.*".to_owned()];
    });
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .stripe(fake.base_url())
            .config(move |c| {
                c.destinations = vec![d.clone()];
                c.forward.poll_interval_ms = 50;
            }),
    )
    .await;
    store.set(app.store.clone()).ok();
    let created = snapshot_event("customer.subscription.created", sub.clone());
    app.deliver_ok(&created).await;
    app.runner.run_pending().await.unwrap();
    wait_delivered(&app, &app_side, 1).await;
    // Stripe's object moves on; the event carries the old snapshot.
    fake.update(&s.subscription, |v| set_subscription_status(v, "past_due"));
    app.deliver_ok(&snapshot_event("customer.subscription.updated", sub))
        .await;
    app.runner.run_pending().await.unwrap();
    wait_delivered(&app, &app_side, 2).await;
    let read = read.lock().unwrap().clone();
    assert_eq!(
        read,
        vec![
            (
                "customer.subscription.created".to_owned(),
                "active".to_owned()
            ),
            (
                "customer.subscription.updated".to_owned(),
                "past_due".to_owned()
            ),
        ]
    );
    app.stop().await;
    fake.stop().await;
}

/// Waits (generously) until the app has accepted `n` deliveries.
pub(crate) async fn wait_delivered(app: &TestApp, app_side: &Receiver, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app_side.delivered().len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "not forwarded: {:?}",
            rows(app).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A forwarder that claimed a delivery and died: once its lease expires the
/// delivery goes out again, with the same delivery id (at least once).
async fn a_worker_killed_mid_delivery_leaves_it_to_be_sent_again(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let id = app
        .deliver_ok(&customer_event("customer.created", "cus_k"))
        .await;
    app.runner.run_pending().await.unwrap();
    let now = clock.now_ms();
    let taken = app
        .db(move |c| deliveries::claim(c, &claim_for("killed-worker", now)).unwrap())
        .await;
    assert_eq!(taken.len(), 1);
    forwarder(&app).run_pending().await.unwrap();
    assert!(
        app_side.seen().is_empty(),
        "taken while another worker's lease is live"
    );
    clock.advance(Duration::from_secs(61));
    forwarder(&app).run_pending().await.unwrap();
    let got = app_side.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 2);
    assert_eq!(got[0].delivery, deliveries::delivery_id("app", &id));
    assert_eq!(rows(&app).await[0].status, "delivered");
}

/// What `owner` claims of destination `app` at `now` (ordered, up to 8).
fn claim_for(owner: &str, now: i64) -> deliveries::Claim<'_> {
    deliveries::Claim {
        destination: "app",
        ordered: true,
        owner,
        now,
        lease_ms: 60_000,
        limit: 8,
    }
}

/// The forwarder's claim records the attempts that ended meanwhile in its
/// own transaction, first: a delivery just delivered releases the next one
/// of its object in the same claim; an attempt whose lease another worker
/// holds is not recorded.
async fn a_claim_records_the_attempts_that_ended_first(backend: Backend) {
    let db = TestDb::new(backend);
    let app_side = Receiver::always(200);
    let options = with_destination(destination(&app_side.url, |_| {}));
    let clock = options.clock.clone();
    let app = TestApp::spawn_with(&db, options).await;
    let first = app
        .deliver_ok(&customer_event("customer.created", "cus_fc"))
        .await;
    let second = app
        .deliver_ok(&customer_event("customer.updated", "cus_fc"))
        .await;
    app.runner.run_pending().await.unwrap();
    let now = clock.now_ms();
    let taken = app
        .db(move |c| deliveries::claim(c, &claim_for("w", now)).unwrap())
        .await;
    assert_eq!(taken.len(), 1, "ordered: only the object's first");
    assert_eq!(taken[0].event_id, first);
    let attempt = |d: &deliveries::Delivery, owner_note: &str| deliveries::Finished {
        id: d.id,
        attempt: history::NewAttempt {
            delivery_id: d.delivery_id.clone(),
            destination: "app".into(),
            attempt: d.attempts,
            started_at: now,
            duration_ms: 1,
            outcome: "delivered".into(),
            http_status: Some(200),
            error: None,
            request_headers: "[]".into(),
            response_body: Some(owner_note.into()),
        },
        outcome: deliveries::Outcome::Delivered,
        now,
    };
    // Another worker's attempt of the same delivery: its lease is not held.
    let foreign = attempt(&taken[0], "foreign");
    let (recorded, claimed) = app
        .db(move |c| deliveries::finish_and_claim(c, &[foreign], &claim_for("other", now)).unwrap())
        .await;
    assert_eq!(recorded, vec![false], "not the lease holder");
    assert!(
        claimed.is_empty(),
        "the second still waits behind the first"
    );

    let mine = attempt(&taken[0], "mine");
    let (recorded, claimed) = app
        .db(move |c| deliveries::finish_and_claim(c, &[mine], &claim_for("w", now)).unwrap())
        .await;
    assert_eq!(recorded, vec![true]);
    assert_eq!(
        claimed.len(),
        1,
        "released by the finish in the same transaction"
    );
    assert_eq!(claimed[0].event_id, second);
    let rows = rows(&app).await;
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[1].status, "delivering");
    let id = deliveries::delivery_id("app", &first);
    let recorded = app
        .db(move |c| history::for_delivery(c, &id).unwrap())
        .await;
    assert_eq!(recorded.len(), 1, "one attempt recorded");
    assert_eq!(
        recorded[0].response_body.as_deref(),
        Some("mine"),
        "the lease holder's"
    );
}

/// A 3xx is an error, not followed: the delivery is retried, and the
/// redirect's target never sees it.
async fn redirects_are_not_followed(backend: Backend) {
    let db = TestDb::new(backend);
    let target = Receiver::always(200);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let location = target.url.clone();
    let server = HttpServer::new(move || {
        let location = location.clone();
        App::new().default_service(web::to(move || {
            let location = location.clone();
            async move {
                HttpResponse::TemporaryRedirect()
                    .insert_header(("location", location))
                    .finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let url = format!("http://{addr}/webhooks/stripe");
    let app = TestApp::spawn_with(&db, with_destination(destination(&url, |_| {}))).await;
    app.deliver_ok(&customer_event("customer.created", "cus_r"))
        .await;
    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.retried, 1, "{tally:?}");
    assert!(target.seen().is_empty(), "the redirect was followed");
    let row = &rows(&app).await[0];
    assert_eq!(row.last_status, Some(307));
    assert!(row.last_error.as_deref().unwrap_or("").contains("redirect"));
}

/// `stripe-hookd destinations test NAME`: a signed ping the app verifies
/// like any event, and its answer.
#[tokio::test]
async fn a_ping_is_signed_like_an_event_and_shows_the_answer() {
    let app_side = Receiver::always(202);
    let d = destination(&app_side.url, |_| {});
    let ping = stripe_hookd::testing::forward::ping(&d)
        .await
        .expect("ping sent");
    assert_eq!(ping.status, 202);
    assert_eq!(ping.answer, "answer");
    let seen = app_side.seen();
    assert_eq!(seen.len(), 1, "the app refused the signature");
    assert_eq!(seen[0].event_type, "stripe_hookd.ping");
    assert_eq!(seen[0].body, ping.body);
}

async fn dead_deliveries_are_listed_redelivered_and_discarded_through_the_admin_api(
    backend: Backend,
) {
    let db = TestDb::new(backend);
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app_side = {
        let up = up.clone();
        Receiver::start(Arc::new(move |_| {
            let status = if up.load(std::sync::atomic::Ordering::SeqCst) {
                200
            } else {
                500
            };
            async move { status }.boxed()
        }))
    };
    let options = with_destination(destination(&app_side.url, |d| d.max_attempts = 1)).admin();
    let app = TestApp::spawn_with(&db, options).await;
    let first = app
        .deliver_ok(&customer_event("customer.created", "cus_d1"))
        .await;
    app.deliver_ok(&customer_event("customer.created", "cus_d2"))
        .await;
    app.runner.run_pending().await.unwrap();
    let tally = forwarder(&app).run_pending().await.unwrap();
    assert_eq!(tally.dead, 2, "{tally:?}");

    let admin = |path: &str| app.admin_url(path);
    let listed: serde_json::Value = app
        .client
        .get(admin("/v1/deliveries?status=dead&destination=app"))
        .bearer_auth(crate::harness::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed["deliveries"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].get("payload").is_none(), "bodies are not listed");
    let id_of = |event_id: &str| {
        listed.iter().find(|d| d["event_id"] == event_id).unwrap()["delivery_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let again = id_of(&first);
    let dropped = listed
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
        .find(|d| *d != again)
        .unwrap();

    up.store(true, std::sync::atomic::Ordering::SeqCst);
    for (path, expected) in [
        (format!("/v1/deliveries/{again}/redeliver"), 200),
        (format!("/v1/deliveries/{dropped}/discard"), 200),
        ("/v1/deliveries/dlv_none/redeliver".to_owned(), 404),
    ] {
        let res = app
            .client
            .post(admin(&path))
            .bearer_auth(crate::harness::ADMIN_TOKEN)
            .json(&json!({"reason": "the customer was merged"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "{path}");
    }
    forwarder(&app).run_pending().await.unwrap();
    let got = app_side.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event_id, first);
    assert_eq!(got[0].delivery, again, "the same delivery id");
    let rows = rows(&app).await;
    let status_of = |id: &str| {
        rows.iter()
            .find(|r| r.delivery_id == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(status_of(&again), "delivered");
    assert_eq!(status_of(&dropped), "discarded");
}
