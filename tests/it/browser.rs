//! The browser inspector: its sessions and CSRF check over plain HTTP (both
//! backends), and the pages in a real headless Chromium driven through
//! chromedriver (fantoccini).
//!
//! The browser tests need `chromedriver` and `chromium` (Debian's
//! `chromium-driver` and `chromium`). Without them they print that they
//! skipped, unless `HOOKD_BROWSER_TESTS=required` (CI), where they
//! fail. One chromedriver and one browser session at a time (a lock); a
//! failing step saves a screenshot under `<target>/browser-screenshots/`.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::harness::*;

backend_tests!(
    a_session_cookie_opens_the_data_and_csrf_guards_every_change,
    sessions_are_stored_hashed_survive_a_restart_and_end_at_sign_out,
    sign_in_attempts_are_rate_limited,
    the_stream_sends_each_new_event,
    an_event_shows_its_deliveries_and_an_object_its_events,
    rotating_the_admin_token_by_restart_ends_older_sessions,
    sign_out_everywhere_ends_every_session_and_its_stream,
    an_expired_session_ends_its_stream_within_seconds,
);

const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

// ---- HTTP-level: sessions and CSRF --------------------------------------

/// Signs in with `token`: the status, the `Set-Cookie` value and the body.
async fn login(app: &TestApp, token: &str, proto: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = app
        .client
        .post(app.admin_url("/ui/login"))
        .json(&json!({"token": token}));
    if let Some(p) = proto {
        req = req.header("x-forwarded-proto", p);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let cookie = res
        .headers()
        .get(SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, cookie, res.json().await.unwrap_or(Value::Null))
}

/// `name=value` of a `Set-Cookie` header, as a `Cookie` header sends it.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

async fn with_cookie(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.admin_url(path))
        .header(COOKIE, cookie);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    let res = req.json(&json!({})).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn a_session_cookie_opens_the_data_and_csrf_guards_every_change(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .admin()
            .config(|c| c.admin_session_hours = 2),
    )
    .await;
    let id = app
        .deliver_ok(&snapshot_event(
            "invoice.paid",
            json!({"id": "in_csrf", "object": "invoice"}),
        ))
        .await;

    // Without a session: the page, but no data.
    let page = app.client.get(app.admin_url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("type=\"password\"") && !html.contains(&id));
    for path in [
        "/ui/events",
        "/ui/session",
        "/ui/health",
        "/v1/events",
        "/ui/stream",
    ] {
        let res = app.client.get(app.admin_url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // A wrong token is refused and sets no cookie.
    let (status, cookie, body) = login(&app, "not-the-admin-token-at-all", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["reason"], "wrong_token");
    assert!(cookie.is_empty(), "{cookie}");

    // The right one: an HttpOnly, SameSite=Strict, expiring cookie, not
    // Secure over plain HTTP, and Secure when the local proxy says https.
    let (status, set, body) = login(&app, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=7200"] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let expires_in = body["expires_at"].as_i64().unwrap() - now() * 1000;
    assert!(
        (7_100_000..=7_201_000).contains(&expires_in),
        "admin_session_hours: {expires_in}"
    );
    assert!(!set.contains(ADMIN_TOKEN));
    let (_, behind_proxy, _) = login(&app, ADMIN_TOKEN, Some("https")).await;
    assert!(behind_proxy.ends_with("; Secure"), "{behind_proxy}");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = cookie_pair(&set);

    // With the cookie: the data.
    let (status, listed) =
        with_cookie(&app, reqwest::Method::GET, "/v1/events", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["events"][0]["event_id"], id.as_str());
    let (status, newest) = with_cookie(
        &app,
        reqwest::Method::GET,
        "/ui/events?type=invoice.",
        &cookie,
        None,
    )
    .await;
    assert_eq!(
        (status, newest["events"][0]["event_id"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );
    let (_, session) = with_cookie(&app, reqwest::Method::GET, "/ui/session", &cookie, None).await;
    assert_eq!(session["csrf_token"], csrf.as_str());
    let (status, health) =
        with_cookie(&app, reqwest::Method::GET, "/ui/health", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["outbox"]["pending"], 1, "{health}");

    // A change on the cookie without the CSRF token, or with another, is refused.
    let replay = format!("/v1/events/{id}/replay");
    for wrong in [None, Some("0".repeat(64).as_str()), Some("")] {
        let (status, body) =
            with_cookie(&app, reqwest::Method::POST, &replay, &cookie, wrong).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{wrong:?}: {body}");
        assert_eq!(body["error"]["reason"], "csrf_token_required");
    }
    let (status, body) =
        with_cookie(&app, reqwest::Method::POST, &replay, &cookie, Some(&csrf)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["in_flight"], json!([]), "{body}");

    // The bearer API is unchanged: no CSRF token needed; a wrong bearer
    // token is refused even beside a valid cookie.
    let res = app
        .client
        .post(app.admin_url(&replay))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .get(app.admin_url("/v1/events"))
        .bearer_auth("wrong-admin-token-0123456789")
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn sessions_are_stored_hashed_survive_a_restart_and_end_at_sign_out(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let (_, set, body) = login(&app, ADMIN_TOKEN, None).await;
    let cookie = cookie_pair(&set);
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let raw_id = cookie.split_once('=').unwrap().1.to_owned();
    let stored: Vec<String> = app
        .db(|c| {
            use diesel::prelude::*;
            use stripe_hookd::testing::store::schema::admin_sessions;
            stripe_hookd::testing::with_conn!(c, c => admin_sessions::table
                .select(admin_sessions::id_hash)
                .load(c))
            .unwrap()
        })
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], raw_id, "the id itself is never stored");
    assert_eq!(
        stored[0],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw_id.as_bytes()))
    );

    // Another daemon on the same database knows the session.
    app.stop().await;
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/events", &cookie, None).await;
    assert_eq!(status, StatusCode::OK);

    // Sign-out needs the CSRF token, then the cookie opens nothing.
    let (status, _) = with_cookie(&app, reqwest::Method::POST, "/ui/logout", &cookie, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let res = app
        .client
        .post(app.admin_url("/ui/logout"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cleared = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("hookd_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/events", &cookie, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Another admin token than [`ADMIN_TOKEN`].
const ROTATED_TOKEN: &str = "rotated-admin-token-9876543210";

/// A session signed in with `token`: its `Cookie` pair and CSRF token.
async fn signed_in(app: &TestApp, token: &str) -> (String, String) {
    let (status, set, body) = login(app, token, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    (cookie_pair(&set), csrf)
}

async fn rotating_the_admin_token_by_restart_ends_older_sessions(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let (old, _) = signed_in(&app, ADMIN_TOKEN).await;
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/events", &old, None).await;
    assert_eq!(status, StatusCode::OK);
    let stored: Vec<String> = app
        .db(|c| {
            use diesel::prelude::*;
            use stripe_hookd::testing::store::schema::admin_sessions;
            stripe_hookd::testing::with_conn!(c, c => admin_sessions::table
                .select(admin_sessions::token_fingerprint)
                .load(c))
            .unwrap()
        })
        .await;
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].len() == 64 && !stored[0].contains(ADMIN_TOKEN),
        "a fingerprint, never the token: {stored:?}"
    );
    app.stop().await;

    // The operator rotates the token and restarts (on the same database).
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().config(|c| c.admin_token = Some(ROTATED_TOKEN.into())),
    )
    .await;
    let (status, body) = with_cookie(&app, reqwest::Method::GET, "/v1/events", &old, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a session of the old token opens nothing: {body}"
    );
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/ui/session", &old, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = login(&app, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nor does the old token");
    let (new, _) = signed_in(&app, ROTATED_TOKEN).await;
    let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/events", &new, None).await;
    assert_eq!(status, StatusCode::OK, "the new token's session works");
    app.stop().await;
}

/// Opens the live stream with `cookie`.
async fn stream_with_cookie(app: &TestApp, cookie: &str) -> reqwest::Response {
    let res = app
        .client
        .get(app.admin_url("/ui/stream"))
        .header(COOKIE, cookie)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res
}

/// Reads the stream until it ends; what it sent and how long that took.
async fn until_the_stream_ends(mut res: reqwest::Response, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut text = String::new();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, res.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) | Ok(Err(_)) => return (text, started.elapsed()),
            Err(_) => panic!("the stream is still open after {limit:?}: {text}"),
        }
    }
}

/// A stream's session re-checks every 2 s: ended within this (the machine
/// is shared and busy), far below the stream's 5-minute lifetime.
const STREAM_ENDS_WITHIN: Duration = Duration::from_secs(15);

async fn sign_out_everywhere_ends_every_session_and_its_stream(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let (here, csrf) = signed_in(&app, ADMIN_TOKEN).await;
    let (elsewhere, _) = signed_in(&app, ADMIN_TOKEN).await;
    let stream = stream_with_cookie(&app, &elsewhere).await;

    // Sign-out everywhere needs the CSRF token like every change.
    let (status, _) = with_cookie(
        &app,
        reqwest::Method::POST,
        "/ui/logout-everywhere",
        &here,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = with_cookie(
        &app,
        reqwest::Method::POST,
        "/ui/logout-everywhere",
        &here,
        Some(&csrf),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["signed_out"], 2, "{body}");
    for cookie in [&here, &elsewhere] {
        let (status, _) = with_cookie(&app, reqwest::Method::GET, "/v1/events", cookie, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (text, took) = until_the_stream_ends(stream, STREAM_ENDS_WITHIN).await;
    assert!(
        text.contains("event: signed_out\n"),
        "the stream says why it ends: {text}"
    );
    assert!(took < STREAM_ENDS_WITHIN, "{took:?}");

    // The CLI's `sign-out-everywhere` (on the database, as the daemon runs).
    let (cli_session, _) = signed_in(&app, ADMIN_TOKEN).await;
    let (url, dir) = (db.url.clone(), db.dir().to_owned());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .args(["sign-out-everywhere", "--json"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_API_KEY", "sk_test_sign_out_cli")
            .env("STRIPE_HOOKD_STATE_DIR", dir)
            .env("DATABASE_URL", url)
            .output()
            .expect("run stripe-hookd")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The log shares stdout: the answer is the last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON");
    assert_eq!(printed["signed_out"], 1, "{printed}");
    let (status, _) =
        with_cookie(&app, reqwest::Method::GET, "/v1/events", &cli_session, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn an_expired_session_ends_its_stream_within_seconds(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let (cookie, _) = signed_in(&app, ADMIN_TOKEN).await;
    let stream = stream_with_cookie(&app, &cookie).await;
    // The session reaches its expiry while the stream is open.
    app.db(|c| {
        use diesel::prelude::*;
        use stripe_hookd::testing::store::schema::admin_sessions;
        let now = stripe_hookd::testing::store::now_ms();
        stripe_hookd::testing::with_conn!(c, c => diesel::update(admin_sessions::table)
            .set(admin_sessions::expires_at.eq(now))
            .execute(c))
        .unwrap()
    })
    .await;
    let (text, took) = until_the_stream_ends(stream, STREAM_ENDS_WITHIN).await;
    assert!(text.contains("event: signed_out\n"), "{text}");
    assert!(took < STREAM_ENDS_WITHIN, "{took:?}");
    app.stop().await;
}

async fn sign_in_attempts_are_rate_limited(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let mut limited = None;
    for attempt in 1..=40 {
        let (status, _, body) = login(&app, "guessing-the-admin-token", None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"]["reason"], "rate_limited");
            limited = Some(attempt);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let limited = limited.expect("sign-in attempts are limited");
    assert!(
        limited > 10,
        "the first ten attempts are answered ({limited})"
    );
    // The right token is refused too while the peer is limited.
    let (status, _, _) = login(&app, ADMIN_TOKEN, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

async fn the_stream_sends_each_new_event(backend: Backend) {
    let db = TestDb::new(backend);
    let app = TestApp::spawn_with(&db, AppOptions::default().admin()).await;
    let mut res = app
        .client
        .get(app.admin_url("/ui/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let id = app
        .deliver_ok(&snapshot_event(
            "customer.updated",
            json!({"id": "cus_stream", "object": "customer"}),
        ))
        .await;
    let deadline = Instant::now() + DEADLINE;
    let mut text = String::new();
    while !text.contains(&id) {
        assert!(Instant::now() < deadline, "no event in the stream: {text}");
        let chunk = tokio::time::timeout(DEADLINE, res.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("retry: 1000\n"), "{text}");
    let message = text.split("\n\n").find(|m| m.contains(&id)).unwrap();
    assert!(
        message.starts_with("id: ") && message.contains("event: event\n"),
        "{message}"
    );
    // Resuming after that id (Last-Event-ID) sends only what came later.
    let last: i64 = message.lines().next().unwrap()[4..].parse().unwrap();
    let later = app
        .deliver_ok(&snapshot_event(
            "customer.updated",
            json!({"id": "cus_stream_2", "object": "customer"}),
        ))
        .await;
    let mut res = app
        .client
        .get(app.admin_url("/ui/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains(&later) {
        assert!(Instant::now() < deadline, "no resumed event: {text}");
        let chunk = tokio::time::timeout(DEADLINE, res.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains(&id), "{text}");
    drop(res);
    app.stop().await;
}

async fn an_event_shows_its_deliveries_and_an_object_its_events(backend: Backend) {
    let db = TestDb::new(backend);
    let destinations = stripe_hookd::testing::config::from_toml_str(
        "[[destinations]]\nname = \"app\"\nurl = \"http://127.0.0.1:9/hooks\"\nsecret = \"whsec_inspector_destination\"\nafter = \"received\"\n",
    )
    .unwrap()
    .destinations;
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default().admin().config(move |c| {
            c.destinations = destinations.clone();
            c.forward.enabled = false;
        }),
    )
    .await;
    let id = app
        .deliver_ok(&snapshot_event(
            "customer.updated",
            json!({"id": "cus_inspected", "object": "customer"}),
        ))
        .await;
    let get = |path: String| {
        let req = app
            .client
            .get(app.admin_url(&path))
            .bearer_auth(ADMIN_TOKEN);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = get(format!("/ui/events/{id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(
        (rows[0]["destination"].as_str(), rows[0]["status"].as_str()),
        (Some("app"), Some("pending"))
    );
    let (_, health) = get("/ui/health".to_owned()).await;
    assert_eq!(health["destinations"]["app"]["pending"], 1, "{health}");

    let (status, object) = get("/ui/objects/cus_inspected".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{object}");
    assert_eq!(object["events"][0]["event_id"], id.as_str());
    let (status, _) = get("/ui/objects/cus_nobody".to_owned()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get("/ui/events?status=nonsense".to_owned()).await;
    assert_eq!(
        (status, body["error"]["reason"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_filter"))
    );
    app.stop().await;
}

// ---- the browser -----------------------------------------------------------

/// One chromedriver and one browser session at a time.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn find_program(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The chromedriver process this test started; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port, or says why the test is skipped.
async fn driver() -> Option<Driver> {
    let required = std::env::var("HOOKD_BROWSER_TESTS").is_ok_and(|v| v == "required");
    let Some(path) = find_program("chromedriver") else {
        assert!(
            !required,
            "HOOKD_BROWSER_TESTS=required but chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!("browser test skipped: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(POLL).await;
    }
    Some(driver)
}

/// A fresh headless browser (its own profile: no cookies).
async fn browser(driver: &Driver) -> Client {
    let mut options = json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--window-size=1280,1000", "--no-first-run", "--password-store=basic",
    ]});
    if let Some(chromium) = find_program("chromium") {
        options["binary"] = chromium.display().to_string().into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

type Step = anyhow::Result<()>;

/// Runs a scenario; when it fails, saves a screenshot and fails the test.
async fn scenario<F, Fut>(name: &str, client: &Client, f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Step>,
{
    if let Err(e) = f().await {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
            .join("browser-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let shot = dir.join(format!("{name}.png"));
        match client.screenshot().await {
            Ok(png) => {
                let _ = std::fs::write(&shot, png);
            }
            Err(err) => eprintln!("no screenshot: {err}"),
        }
        let url = client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let _ = client.clone().close().await;
        panic!(
            "{name} failed at {url}: {e:#}\nscreenshot: {}",
            shot.display()
        );
    }
}

/// Waits (generously) until `check` says yes.
async fn until<F, Fut>(what: &str, mut check: F) -> Step
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn element(client: &Client, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
    client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
        .map_err(|e| anyhow::anyhow!("no {css}: {e}"))
}

async fn text_of(client: &Client, css: &str) -> anyhow::Result<String> {
    Ok(client.find(Locator::Css(css)).await?.text().await?)
}

async fn count(client: &Client, css: &str) -> anyhow::Result<usize> {
    Ok(client.find_all(Locator::Css(css)).await?.len())
}

/// Clicks the button whose text is exactly `label` inside `within`.
async fn click_button(client: &Client, within: &str, label: &str) -> Step {
    let xpath = format!("//*[@id='{within}']//button[normalize-space(.)='{label}']");
    let button = client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::XPath(&xpath))
        .await
        .map_err(|e| anyhow::anyhow!("no button {label:?} in {within}: {e}"))?;
    button.click().await?;
    Ok(())
}

/// An event that fails at once (one attempt allowed): it goes dead.
struct Fails;

impl stripe_hookd::testing::queue::Handler for Fails {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn handle(
        &self,
        _: stripe_hookd::testing::queue::EventGroup,
        _: &stripe_hookd::testing::queue::HandlerContext,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<stripe_hookd::testing::queue::Apply, stripe_hookd::testing::queue::HandlerError>,
    > {
        Box::pin(async {
            Err(stripe_hookd::testing::queue::HandlerError::retry(
                "the app is down",
            ))
        })
    }
}

async fn event_status(app: &TestApp, id: &str) -> String {
    let id = id.to_owned();
    app.db(move |c| {
        stripe_hookd::testing::store::outbox::get(c, &id)
            .unwrap()
            .unwrap()
            .status
            .as_str()
            .to_owned()
    })
    .await
}

/// Sign-in (a wrong token, then the right one with Enter), an event
/// arriving live, its page with payload and attempts, a replay that adds an
/// attempt, a dead-letter retry; then a second browser without a session
/// sees no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_in_a_real_browser() {
    let _one_at_a_time = BROWSER.lock().await;
    let Some(driver) = driver().await else {
        return;
    };
    let db = TestDb::new(Backend::Sqlite);
    let app = TestApp::spawn_with(
        &db,
        AppOptions::default()
            .admin()
            .handler(std::sync::Arc::new(Fails))
            .config(|c| c.runner.max_attempts = 1),
    )
    .await;
    let client = browser(&driver).await;
    let home = app.admin_url("/");
    let event = snapshot_event(
        "invoice.payment_failed",
        json!({"id": "in_browser_1", "object": "invoice", "customer": "cus_browser"}),
    );
    let id = event["id"].as_str().unwrap().to_owned();

    scenario("sign_in_live_event_replay_dead_letter", &client, || async {
        client.goto(&home).await?;
        // A wrong token is refused.
        let token = element(&client, "#token").await?;
        token.send_keys("not-the-admin-token\u{E007}").await?;
        until("the wrong token refused", || async {
            Ok(text_of(&client, "#signin-error").await? == "Wrong token.")
        })
        .await?;
        anyhow::ensure!(
            !client.find(Locator::Css("#nav")).await?.is_displayed().await?,
            "no navigation before sign-in"
        );
        // The right one, Enter submits.
        token.send_keys(&format!("{ADMIN_TOKEN}\u{E007}")).await?;
        element(&client, "#events table, #events p").await?;
        let stored = client
            .execute(
                "return document.cookie + '|' + JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + '|' + location.href",
                vec![],
            )
            .await?;
        let stored = stored.as_str().unwrap_or_default().to_owned();
        anyhow::ensure!(
            !stored.contains(ADMIN_TOKEN) && !stored.contains("hookd_session"),
            "the token is in no URL or storage, the cookie is HttpOnly: {stored}"
        );

        // An event delivered to the intake appears without a reload.
        app.deliver_ok(&event).await;
        let row = format!("#events tr[data-event='{id}']");
        element(&client, &row).await?;

        // Open it: payload and attempts (none yet, then one).
        client
            .find(Locator::Css(&format!("{row} a[href^='#/event/']")))
            .await?
            .click()
            .await?;
        until("the payload", || async {
            Ok(text_of(&client, "#payload").await?.contains("in_browser_1"))
        })
        .await?;
        app.runner.run_pending().await?;
        until("the first attempt", || async {
            Ok(count(&client, "#attempts tr.attempt").await? == 1
                && text_of(&client, "#attempts").await?.contains("the app is down"))
        })
        .await?;

        // Replay, confirmed: a second attempt appears.
        click_button(&client, "main", "Replay").await?;
        click_button(&client, "main", "Yes, replay").await?;
        until("the event re-queued", || async {
            Ok(event_status(&app, &id).await == "pending")
        })
        .await?;
        app.runner.run_pending().await?;
        // The replay shows as its own row (outcome "replayed"), then the
        // second real attempt.
        until("the second attempt", || async {
            let failed = client
                .find_all(Locator::XPath(
                    "//*[@id='attempts']//tr[contains(., 'the app is down')]",
                ))
                .await?
                .len();
            Ok(failed == 2 && text_of(&client, "#attempts").await?.contains("replayed"))
        })
        .await?;

        // Dead letters: retry, confirmed.
        anyhow::ensure!(event_status(&app, &id).await == "dead");
        client.find(Locator::Css("#nav a[href='#/dead']")).await?.click().await?;
        element(&client, &format!("#dead tr[data-event='{id}']")).await?;
        click_button(&client, "dead", "Retry").await?;
        click_button(&client, "dead", "Yes, retry").await?;
        until("the dead letter re-queued", || async {
            Ok(event_status(&app, &id).await == "pending")
        })
        .await?;
        until("the dead list emptied", || async {
            Ok(text_of(&client, "#dead").await?.contains("No dead letters."))
        })
        .await?;
        Ok(())
    })
    .await;
    client.close().await.expect("the first browser closes");

    // A second browser, without a session: the sign-in page and no data.
    let second = browser(&driver).await;
    scenario("no_session_no_data", &second, || async {
        second.goto(&home).await?;
        element(&second, "#token").await?;
        let statuses = second
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 Promise.all(['/ui/events', '/v1/events', '/v1/events/' + arguments[0], '/ui/health']
                   .map((p) => fetch(p).then((r) => r.status))).then(done);",
                vec![json!(id)],
            )
            .await?;
        anyhow::ensure!(statuses == json!([401, 401, 401, 401]), "{statuses}");
        let page = second.source().await?;
        anyhow::ensure!(!page.contains(&id), "the event is not on the page");
        anyhow::ensure!(
            !second.find(Locator::Css("#view")).await?.is_displayed().await?,
            "no view without a session"
        );
        Ok(())
    })
    .await;
    second.close().await.expect("the second browser closes");
    drop(driver);
    app.stop().await;
}

/// Signs in through the page with the admin token.
async fn sign_in(client: &Client, home: &str) -> Step {
    client.goto(home).await?;
    element(client, "#token")
        .await?
        .send_keys(&format!("{ADMIN_TOKEN}\u{E007}"))
        .await?;
    element(client, "#events table, #events p").await?;
    Ok(())
}

/// A customer's page (subscription, access now, its events), then a drift
/// sweep's dry run that reports what changed at Stripe, and the health strip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_and_sweep_views_in_a_real_browser() {
    use crate::fake_stripe::FakeStripe;
    use stripe_hookd::testing::trigger::scenario::Scenario;

    let _one_at_a_time = BROWSER.lock().await;
    let Some(driver) = driver().await else {
        return;
    };
    let db = TestDb::new(Backend::Sqlite);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let app = TestApp::spawn_with(&db, AppOptions::default().admin().stripe(fake.base_url())).await;
    let s = Scenario::new(false, API_VERSION);
    fake.customer(&s);
    let sub = fake.subscription(&s, "active");
    app.deliver_ok(&snapshot_event("customer.subscription.created", sub))
        .await;
    app.deliver_ok(&snapshot_event(
        "customer.created",
        fake.get(&s.customer).unwrap(),
    ))
    .await;
    app.runner.run_pending().await.unwrap();
    let client = browser(&driver).await;
    let home = app.admin_url("/");

    scenario("object_and_sweep", &client, || async {
        sign_in(&client, &home).await?;
        until("the health strip", || async {
            Ok(text_of(&client, "#health").await?.contains("done 2"))
        })
        .await?;
        client
            .goto(&format!("{home}#/object/{}", s.customer))
            .await?;
        until("the customer's subscription and access", || async {
            let page = text_of(&client, "#view").await?;
            Ok(page.contains(&s.subscription)
                && page.contains("Access now")
                && page.contains("customer.subscription.created"))
        })
        .await?;
        let access = text_of(&client, "#view table").await?;
        anyhow::ensure!(
            access.contains(&s.product) && access.contains("yes"),
            "{access}"
        );

        // The upgrade happened at Stripe; the event never arrived.
        fake.update(&s.subscription, |v| {
            let item = &mut v["items"]["data"][0];
            item["price"]["id"] = json!("price_upgraded");
            item["price"]["product"] = json!("prod_upgraded");
        });
        client
            .find(Locator::Css("#nav a[href='#/sweep']"))
            .await?
            .click()
            .await?;
        click_button(&client, "main", "Dry run").await?;
        until("the sweep's drift", || async {
            let out = text_of(&client, "#sweep").await?;
            Ok(out.contains("done") && out.contains("prod_upgraded"))
        })
        .await?;
        Ok(())
    })
    .await;
    client.close().await.expect("the browser closes");
    drop(driver);
    app.stop().await;
    fake.stop().await;
}

/// The daemon restarts on the same address: the page's session still holds
/// (it is in the database), and its live stream reconnects by itself and
/// shows the events stored after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_reconnects_after_a_restart() {
    let _one_at_a_time = BROWSER.lock().await;
    let Some(driver) = driver().await else {
        return;
    };
    let db = TestDb::new(Backend::Sqlite);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = AppOptions::default()
        .admin()
        .config(move |c| c.admin_listen = ([127, 0, 0, 1], port).into());
    let app = TestApp::spawn_with(&db, options.clone()).await;
    let home = app.admin_url("/");
    let client = browser(&driver).await;
    let before = snapshot_event(
        "customer.updated",
        json!({"id": "cus_before", "object": "customer"}),
    );
    let after = snapshot_event(
        "customer.updated",
        json!({"id": "cus_after", "object": "customer"}),
    );
    let mut app = Some(app);

    scenario("reconnect_after_restart", &client, || async {
        sign_in(&client, &home).await?;
        let first = app.as_ref().unwrap();
        first.deliver_ok(&before).await;
        element(&client, &format!("#events tr[data-event='{}']", before["id"].as_str().unwrap())).await?;
        app.take().unwrap().stop().await;
        let second = TestApp::spawn_with(&db, options.clone()).await;
        second.deliver_ok(&after).await;
        // The periodic refresh would also show it; the stream's reconnection
        // is checked by the stream's own state.
        element(&client, &format!("#events tr[data-event='{}']", after["id"].as_str().unwrap())).await?;
        until("the stream open again", || async {
            let state = client
                .execute(
                    "return [document.body.classList.contains('offline'), Number(document.body.dataset.streamOpens)]",
                    vec![],
                )
                .await?;
            Ok(state[0] == json!(false) && state[1].as_u64().unwrap_or(0) >= 2)
        })
        .await?;
        anyhow::ensure!(
            client.find(Locator::Css("#nav")).await?.is_displayed().await?,
            "still signed in after the restart"
        );
        app = Some(second);
        Ok(())
    })
    .await;
    client.close().await.expect("the browser closes");
    drop(driver);
    if let Some(app) = app {
        app.stop().await;
    }
}
