//! `GET /v1/access` (docs/entitlements.md, "Asking over HTTP"): the
//! application's read of who has access now, behind its own token, the same
//! answer as the `entitlements_now` view.

use diesel::prelude::*;
use serde_json::Value;
use stripe_hookd::testing::store::{with_conn, DbConnection};
use stripe_hookd::testing::trigger::Scenario;

use crate::backend_tests;
use crate::fake_stripe::FakeStripe;
use crate::harness::*;

backend_tests!(
    the_access_api_answers_what_the_view_says,
    the_access_api_opens_only_with_its_own_token,
    a_reference_is_one_accounts,
);

pub const ACCESS_TOKEN: &str = "test-access-token-0123456789";

/// The daemon with the admin listener and the access token.
pub async fn setup(backend: Backend) -> (TestDb, FakeStripe, TestApp) {
    with_fake_stripe(backend, |o| {
        o.admin()
            .config(|c| c.access_token = Some(ACCESS_TOKEN.into()))
    })
    .await
}

/// `GET /v1/access?{query}` with `token`: status and body.
pub async fn ask(app: &TestApp, query: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app
        .client
        .get(app.admin_url(&format!("/v1/access?{query}")));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// One row of the view, as the API shows it.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ViewRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    customer_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    subscription_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    product_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    price_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    access_until: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    account: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    livemode: Option<bool>,
}

/// The view's rows `WHERE {column} = '{value}'` (each entitlement once).
pub async fn view_rows(app: &TestApp, column: &'static str, value: &str) -> Vec<ViewRow> {
    view_rows_where(app, format!("{column} = '{value}'")).await
}

/// The view's rows `WHERE {clause}` (each entitlement once).
pub async fn view_rows_where(app: &TestApp, clause: String) -> Vec<ViewRow> {
    let mut rows = app
        .db(move |c: &mut DbConnection| {
            with_conn!(c, c => diesel::sql_query(format!(
                "SELECT DISTINCT customer_id, subscription_id, product_id, price_id, status, \
                 access_until, account, livemode FROM entitlements_now WHERE {clause}"
            ))
            .load::<ViewRow>(c)
            .unwrap())
        })
        .await;
    rows.sort();
    rows
}

/// The API's `entitlements`, as view rows.
pub fn api_rows(body: &Value) -> Vec<ViewRow> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let mut rows: Vec<ViewRow> = body["entitlements"]
        .as_array()
        .expect("entitlements")
        .iter()
        .map(|e| ViewRow {
            customer_id: text(&e["customer_id"]),
            subscription_id: text(&e["subscription_id"]).expect("a subscription"),
            product_id: text(&e["product_id"]),
            price_id: text(&e["price_id"]),
            status: text(&e["status"]).expect("a status"),
            access_until: e["access_until"].as_i64(),
            account: text(&e["account"]),
            livemode: e["mode"].as_str().map(|m| m == "live"),
        })
        .collect();
    rows.sort();
    rows
}

/// A customer with a subscription in `status`, bought through Checkout
/// (so its `client_reference_id` is known), reconciled.
pub async fn bought(fake: &FakeStripe, app: &TestApp, status: &str) -> Scenario {
    let s = Scenario::new(false, API_VERSION);
    fake.customer(&s);
    fake.subscription(&s, status);
    let session = fake.checkout_session(&s);
    app.deliver_ok(&snapshot_event("checkout.session.completed", session))
        .await;
    app.runner.run_pending().await.unwrap();
    s
}

/// Active, past_due (in its grace) and canceled customers, each asked for
/// by customer id and by reference: the API's rows are the view's, with
/// products and prices; an unknown customer is 200 with no access.
async fn the_access_api_answers_what_the_view_says(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    for (status, grants) in [("active", true), ("past_due", true), ("canceled", false)] {
        let s = bought(&fake, &app, status).await;
        for (param, column, value) in [
            ("customer", "customer_id", &s.customer),
            ("reference", "client_reference_id", &s.client_reference_id),
        ] {
            let (code, body) = ask(&app, &format!("{param}={value}"), Some(ACCESS_TOKEN)).await;
            assert_eq!(code, 200, "{status} by {param}: {body}");
            assert_eq!(body[param], value.as_str(), "{body}");
            assert_eq!(body["access"], grants, "{status} by {param}: {body}");
            let view = view_rows(&app, column, value).await;
            assert_eq!(api_rows(&body), view, "{status} by {param}: {body}");
            assert_eq!(view.len(), usize::from(grants), "{status}: {view:?}");
            if grants {
                assert_eq!(body["products"], serde_json::json!([s.product]), "{body}");
                assert_eq!(body["prices"], serde_json::json!([s.price]), "{body}");
                let row = &body["entitlements"][0];
                assert_eq!(row["status"], status, "{body}");
                assert_eq!(row["mode"], "test", "{body}");
                assert_eq!(row["account"], Value::Null, "{body}");
                assert!(row["access_until"].as_i64().is_some(), "{body}");
            } else {
                assert_eq!(body["products"], serde_json::json!([]), "{body}");
                assert_eq!(body["entitlements"], serde_json::json!([]), "{body}");
            }
        }
    }
    for query in ["customer=cus_nobody", "reference=nobody"] {
        let (code, body) = ask(&app, query, Some(ACCESS_TOKEN)).await;
        assert_eq!(code, 200, "{query}: {body}");
        assert_eq!(body["access"], false, "{body}");
        assert_eq!(body["entitlements"], serde_json::json!([]), "{body}");
    }
    app.stop().await;
    fake.stop().await;
}

/// 401 without a token, with a wrong one and with the admin token; the
/// access token opens no admin route; 400 for neither or both parameters.
async fn the_access_api_opens_only_with_its_own_token(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let s = bought(&fake, &app, "active").await;
    let query = format!("customer={}", s.customer);
    for token in [None, Some("wrong-token-0123456789"), Some(ADMIN_TOKEN)] {
        let (code, body) = ask(&app, &query, token).await;
        assert_eq!(code, 401, "{token:?}: {body}");
        assert_eq!(body["error"]["reason"], "unauthorized", "{body}");
    }
    for path in ["/v1/events", "/v1/dead", "/metrics"] {
        let res = app
            .client
            .get(app.admin_url(path))
            .bearer_auth(ACCESS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{path} with the access token");
    }
    let replay = app
        .client
        .post(app.admin_url("/v1/replay"))
        .bearer_auth(ACCESS_TOKEN)
        .json(&serde_json::json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status().as_u16(),
        401,
        "replay with the access token"
    );
    for bad in [
        String::new(),
        "customer=".to_owned(),
        format!(
            "customer={}&reference={}",
            s.customer, s.client_reference_id
        ),
    ] {
        let (code, body) = ask(&app, &bad, Some(ACCESS_TOKEN)).await;
        assert_eq!(code, 400, "{bad:?}: {body}");
        assert_eq!(body["error"]["reason"], "invalid_query", "{body}");
    }
    let (code, body) = ask(&app, "user=1", Some(ACCESS_TOKEN)).await;
    assert_eq!(code, 400, "an unknown parameter: {body}");
    let (code, body) = ask(&app, &query, Some(ACCESS_TOKEN)).await;
    assert_eq!((code, &body["access"]), (200, &Value::Bool(true)), "{body}");
    app.stop().await;
    fake.stop().await;
}

/// The same `client_reference_id` in the platform's Checkout and in a
/// connected account's names two users: each is answered alone (the
/// platform's by default, the account's with `&account=`), as the view
/// scoped by its `account` column says.
async fn a_reference_is_one_accounts(backend: Backend) {
    let (_db, fake, app) = setup(backend).await;
    let own = bought(&fake, &app, "active").await;
    let account = "acct_1Connected";
    let mut theirs = Scenario::new(false, API_VERSION);
    theirs.client_reference_id = own.client_reference_id.clone();
    fake.put_in(account, theirs.object("customer.created").unwrap());
    fake.put_in(account, {
        let mut sub = theirs.object("customer.subscription.created").unwrap();
        crate::fake_stripe::set_subscription_status(&mut sub, "active");
        sub
    });
    let session = fake.put_in(
        account,
        theirs.object("checkout.session.completed").unwrap(),
    );
    let mut event = snapshot_event("checkout.session.completed", session);
    event["account"] = serde_json::json!(account);
    app.deliver_ok(&event).await;
    app.runner.run_pending().await.unwrap();

    let reference = &own.client_reference_id;
    for (query, clause, customer) in [
        (
            format!("reference={reference}"),
            format!("client_reference_id = '{reference}' AND account IS NULL"),
            &own.customer,
        ),
        (
            format!("reference={reference}&account={account}"),
            format!("client_reference_id = '{reference}' AND account = '{account}'"),
            &theirs.customer,
        ),
    ] {
        let (code, body) = ask(&app, &query, Some(ACCESS_TOKEN)).await;
        assert_eq!(code, 200, "{query}: {body}");
        let rows = api_rows(&body);
        assert_eq!(rows.len(), 1, "{query}: one user's access: {body}");
        assert_eq!(
            body["entitlements"][0]["customer_id"],
            customer.as_str(),
            "{body}"
        );
        assert_eq!(rows, view_rows_where(&app, clause).await, "{query}: {body}");
    }
    let (code, body) = ask(
        &app,
        &format!("customer={}&account={account}", own.customer),
        Some(ACCESS_TOKEN),
    )
    .await;
    assert_eq!(code, 400, "account goes with reference: {body}");
    app.stop().await;
    fake.stop().await;
}
