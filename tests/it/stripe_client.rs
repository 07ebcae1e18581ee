//! The Stripe client against the fake Stripe API: headers, errors, retries
//! as Stripe's SDKs do, and the client-side rate limit. No database, no daemon.

use std::time::{Duration, Instant};

use crate::harness::API_VERSION;

use secrecy::SecretString;
use stripe_hookd::testing::config::Mode;
use stripe_hookd::testing::stripe::{ClientOptions, StripeClient, StripeError};
use stripe_hookd::testing::trigger::Scenario;

use crate::fake_stripe::{FakeStripe, Fault, KEY};

const VERSION: &str = API_VERSION;

fn options(fake: &FakeStripe) -> ClientOptions {
    ClientOptions {
        api_base: fake.base_url().to_owned(),
        api_key: SecretString::from(KEY),
        api_version: VERSION.to_owned(),
        timeout: Duration::from_secs(5),
        max_retries: 2,
        requests_per_sec: 1000,
    }
}

fn client(fake: &FakeStripe) -> StripeClient {
    StripeClient::new(options(fake)).unwrap()
}

#[tokio::test]
async fn get_sends_key_version_account_and_expand() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = Scenario::new(false, VERSION);
    fake.invoice(&s, "paid");
    fake.subscription(&s, "active");
    let client = client(&fake);
    assert_eq!(client.mode(), Mode::Test);

    let path = format!("/v1/subscriptions/{}", s.subscription);
    let res = client
        .get(&path, &["latest_invoice"], Some("acct_connected"))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.json["id"], s.subscription.as_str());
    assert_eq!(
        res.json["latest_invoice"]["id"],
        s.invoice.as_str(),
        "expanded"
    );
    assert!(res.request_id.unwrap().starts_with("req_"));

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, path);
    assert_eq!(seen[0].query, "expand%5B%5D=latest_invoice");
    assert_eq!(seen[0].version.as_deref(), Some(VERSION));
    assert_eq!(seen[0].account.as_deref(), Some("acct_connected"));

    fake.customer(&s);
    client
        .get(&format!("/v1/customers/{}", s.customer), &[], None)
        .await
        .unwrap();
    let seen = fake.requests();
    assert_eq!((seen[1].query.as_str(), &seen[1].account), ("", &None));
    fake.stop().await;
}

#[tokio::test]
async fn get_with_pages_through_a_list() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let (a, b) = (Scenario::new(false, VERSION), Scenario::new(false, VERSION));
    fake.subscription(&a, "active");
    fake.subscription(&b, "canceled");
    let client = client(&fake);

    let open = client
        .get_with("/v1/subscriptions", &[], None)
        .await
        .unwrap();
    assert_eq!(open.json["object"], "list");
    assert_eq!(open.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(open.json["data"][0]["id"], a.subscription.as_str());

    let first = client
        .get_with(
            "/v1/subscriptions",
            &[("status", "all"), ("limit", "1")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(first.json["has_more"], true);
    let after = first.json["data"][0]["id"].as_str().unwrap().to_owned();
    let second = client
        .get_with(
            "/v1/subscriptions",
            &[
                ("status", "all"),
                ("limit", "1"),
                ("starting_after", &after),
            ],
            None,
        )
        .await
        .unwrap();
    assert_eq!(second.json["has_more"], false);
    let mut ids = vec![after, second.json["data"][0]["id"].as_str().unwrap().into()];
    ids.sort();
    let mut want = vec![a.subscription, b.subscription];
    want.sort();
    assert_eq!(ids, want, "status=all includes the canceled one");
    fake.stop().await;
}

#[tokio::test]
async fn a_deleted_customer_retrieves_and_a_removed_object_is_not_found() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = Scenario::new(false, VERSION);
    fake.customer(&s);
    fake.payment_intent(&s, true);
    let client = client(&fake);

    fake.delete_customer(&s.customer);
    let res = client
        .get(&format!("/v1/customers/{}", s.customer), &[], None)
        .await
        .unwrap();
    assert_eq!(res.json["deleted"], true);

    fake.remove(&s.payment_intent);
    let path = format!("/v1/payment_intents/{}", s.payment_intent);
    match client.get(&path, &[], None).await {
        Err(e @ StripeError::NotFound { .. }) => {
            assert!(!e.is_retryable());
            let StripeError::NotFound {
                message,
                request_id,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(
                message,
                format!("No such payment_intent: '{}'", s.payment_intent)
            );
            assert!(request_id.unwrap().starts_with("req_"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(fake.count(&path), 1, "a 404 is not retried");
    fake.stop().await;
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let fake = FakeStripe::start_with_key("sk_test_the_right_one")
        .await
        .expect("fake stripe");
    let client = client(&fake); // sends KEY
    let err = client.get("/v1/account", &[], None).await.unwrap_err();
    match &err {
        StripeError::Unauthorized { message } => {
            assert!(message.starts_with("Invalid API Key provided"), "{message}");
            assert!(!message.contains(KEY), "the key is masked: {message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert!(!err.to_string().contains(KEY));
    assert_eq!(fake.count("/v1/account"), 1);
    assert!(!format!("{client:?}").contains(KEY), "Debug hides the key");
    fake.stop().await;
}

#[tokio::test]
async fn stripe_should_retry_false_is_not_retried() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    fake.fail_next(
        1,
        "/v1/account",
        Fault::RateLimited {
            should_retry: Some(false),
            retry_after: Some(7),
        },
    );
    let err = client(&fake)
        .get("/v1/account", &[], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StripeError::RateLimited { .. }),
        "got {err:?}"
    );
    assert!(err.is_retryable(), "the job runner may try later");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(fake.count("/v1/account"), 1, "one request, no retry");
    fake.stop().await;
}

/// `fault` once, then success: the call succeeds after exactly one retry.
async fn retried_once(fault: Fault, tweak: impl FnOnce(&mut ClientOptions)) {
    let fake = FakeStripe::start().await.expect("fake stripe");
    fake.fail_next(1, "/v1/account", fault.clone());
    let mut opts = options(&fake);
    tweak(&mut opts);
    let res = StripeClient::new(opts)
        .unwrap()
        .get("/v1/account", &[], None)
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    assert_eq!(res.json["object"], "account", "{fault:?}");
    assert_eq!(
        fake.count("/v1/account"),
        2,
        "{fault:?}: one failure, one retry"
    );
    fake.stop().await;
}

#[tokio::test]
async fn a_429_without_should_retry_is_retried() {
    retried_once(
        Fault::RateLimited {
            should_retry: None,
            retry_after: None,
        },
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn a_429_with_should_retry_true_and_retry_after_waits_then_retries() {
    let started = Instant::now();
    retried_once(
        Fault::RateLimited {
            should_retry: Some(true),
            retry_after: Some(1),
        },
        |_| {},
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 is honoured"
    );
}

#[tokio::test]
async fn a_500_is_retried() {
    retried_once(Fault::ServerError(500), |_| {}).await;
}

#[tokio::test]
async fn a_time_out_is_retried() {
    retried_once(Fault::Slow(Duration::from_secs(2)), |o| {
        o.timeout = Duration::from_millis(300)
    })
    .await;
}

#[tokio::test]
async fn a_body_cut_off_is_retried() {
    retried_once(Fault::CutBody, |_| {}).await;
}

#[tokio::test]
async fn retries_stop_at_max_retries() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    fake.fail_next(5, "", Fault::ServerError(503));
    let mut opts = options(&fake);
    opts.max_retries = 1;
    let err = StripeClient::new(opts)
        .unwrap()
        .get("/v1/account", &[], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StripeError::Server { status: 503, .. }),
        "got {err:?}"
    );
    assert_eq!(fake.count("/v1/account"), 2, "the call and one retry");
    fake.stop().await;
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let mut opts = options(&fake);
    opts.requests_per_sec = 5;
    let client = StripeClient::new(opts).unwrap();
    let started = Instant::now();
    let calls = (0..10).map(|_| client.get("/v1/account", &[], None));
    for res in futures_util::future::join_all(calls).await {
        res.unwrap();
    }
    // 10 calls at 5/s with a burst of 1: the 10th waits 9 × 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(1700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.count("/v1/account"), 10);
    fake.stop().await;
}

#[test]
fn options_from_config_pick_the_rate_by_key_mode() {
    let options = |toml: &str| {
        stripe_hookd::testing::config::from_toml_str(&format!("[stripe]\n{toml}"))
            .unwrap()
            .stripe
            .client_options()
    };
    assert!(options("").is_none());
    let test = options("api_key = \"sk_test_x\"").unwrap();
    assert_eq!(
        (test.requests_per_sec, test.max_retries, test.timeout),
        (20, 2, Duration::from_secs(20))
    );
    let restricted = options("api_key = \"rk_test_x\"").unwrap();
    assert_eq!(restricted.requests_per_sec, 20);
    let live = options("api_key = \"sk_live_x\"").unwrap();
    assert_eq!(live.requests_per_sec, 80);
    let configured = options("api_key = \"sk_live_x\"\nrequests_per_sec = 7").unwrap();
    assert_eq!(configured.requests_per_sec, 7);
}

#[tokio::test]
async fn the_event_list_filters_and_pages() {
    let fake = FakeStripe::start().await.expect("fake stripe");
    let s = Scenario::new(false, VERSION);
    let mut ids = Vec::new();
    for (created, delivered) in [(100, true), (200, false), (300, false), (400, true)] {
        let mut event = s.event("customer.created").unwrap();
        event["created"] = created.into();
        event["delivery_success"] = delivered.into();
        ids.push(event["id"].as_str().unwrap().to_owned());
        fake.push_event(event);
    }
    let client = client(&fake);
    let listed = |json: &serde_json::Value| -> Vec<String> {
        json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let failed = client
        .get_with(
            "/v1/events",
            &[("delivery_success", "false"), ("created[gte]", "250")],
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed(&failed.json), vec![ids[2].clone()]);

    let first = client
        .get_with("/v1/events", &[("limit", "3")], None)
        .await
        .unwrap();
    assert_eq!(
        listed(&first.json),
        vec![ids[3].clone(), ids[2].clone(), ids[1].clone()],
        "newest first"
    );
    assert_eq!(first.json["has_more"], true);
    let rest = client
        .get_with(
            "/v1/events",
            &[("limit", "3"), ("starting_after", &ids[1])],
            None,
        )
        .await
        .unwrap();
    assert_eq!(listed(&rest.json), vec![ids[0].clone()]);
    assert_eq!(rest.json["has_more"], false);
    assert_eq!(rest.json["url"], "/v1/events");
    fake.stop().await;
}
