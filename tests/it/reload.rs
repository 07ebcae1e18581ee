//! Reload without restart, on the real binary: the config file rewritten,
//! SIGHUP sent (what `systemctl reload` does), and systemd's notify socket
//! read to know when the reload is over (RELOADING=1 … READY=1).

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::backend_tests;
use crate::daemon::Daemon;
use crate::harness::*;

const A: &str = "whsec_reload_secret_a";
const B: &str = "whsec_reload_secret_b";
/// Generous: the machine is shared and busy.
const DEADLINE: Duration = Duration::from_secs(60);

/// The config file: `extra` (top-level keys and tables) and the one
/// endpoint at /webhooks/stripe with `secrets`.
fn config(secrets: &[&str], extra: &str) -> String {
    let secrets: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "{extra}\n[[endpoints]]\npath = \"/webhooks/stripe\"\nsecrets = [{}]\n",
        secrets.join(", ")
    )
}

/// systemd's side of the notify socket.
struct Notices {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notices {
    fn bind(dir: &Path) -> (Notices, String) {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let notices = Notices {
            socket,
            seen: Vec::new(),
        };
        (notices, path.to_string_lossy().into_owned())
    }

    /// Reads datagrams until one has the line `want`; returns that datagram.
    fn wait(&mut self, want: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
        }
        panic!("no {want} within {DEADLINE:?}; got {:?}", self.seen);
    }
}

/// Rewrites the file, sends SIGHUP and waits until the daemon says the
/// reload is over (the socket is read on a blocking thread: whatever else
/// the test runs goes on meanwhile).
async fn reload(daemon: &Daemon, mut notices: Notices, path: &Path, contents: &str) -> Notices {
    std::fs::write(path, contents).expect("rewrite the config file");
    let status = Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success(), "kill -HUP");
    tokio::task::spawn_blocking(move || {
        let reloading = notices.wait("RELOADING=1");
        assert!(
            reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
            "RELOADING=1 comes with MONOTONIC_USEC: {reloading:?}"
        );
        notices.wait("READY=1");
        notices
    })
    .await
    .expect("the notify socket")
}

/// Waits for the READY=1 of the start.
async fn ready(mut notices: Notices) -> Notices {
    tokio::task::spawn_blocking(move || {
        notices.wait("READY=1");
        notices
    })
    .await
    .expect("the notify socket")
}

async fn deliver(client: &reqwest::Client, url: &str, secret: &str, id: &str) -> u16 {
    let body = event_body(id, "customer.updated", "cus_reload", false);
    client
        .post(url)
        .header(
            "stripe-signature",
            signature_header(&[secret], now(), &body),
        )
        .body(body)
        .send()
        .await
        .expect("the daemon answers")
        .status()
        .as_u16()
}

/// Waits until a log line satisfies `pred`.
async fn wait_for_line(daemon: &Daemon, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(line) = daemon.lines.lock().unwrap().iter().find(|l| pred(l)) {
            return line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no log line {what}; log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The daemon with the admin API on (for `/metrics`), its secrets from
/// the config file alone.
fn start(db: &TestDb, file: &Path, contents: &str, notify: &str) -> Daemon {
    std::fs::write(file, contents).expect("write the config file");
    let file = file.to_string_lossy().into_owned();
    Daemon::spawn_with(
        db,
        &[
            ("STRIPE_HOOKD_CONFIG", file.as_str()),
            ("NOTIFY_SOCKET", notify),
            ("STRIPE_HOOKD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
        &["STRIPE_WEBHOOK_SECRET"],
    )
}

/// The value of one unlabelled metric (or of `name{labels}`) on /metrics.
pub(crate) async fn metric(client: &reqwest::Client, daemon: &Daemon, series: &str) -> Option<f64> {
    let deadline = Instant::now() + DEADLINE;
    let admin = loop {
        if let Some(addr) = daemon.admin_addr() {
            break addr;
        }
        assert!(Instant::now() < deadline, "no admin address in the log");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let text = client
        .get(format!("http://{admin}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

backend_tests!(a_signing_secret_rolls_on_sighup_without_a_failed_request);

/// A then A+B (the roll, while a stream of requests signed with A goes
/// on), then B alone: A is refused from then on.
async fn a_signing_secret_rolls_on_sighup_without_a_failed_request(backend: Backend) {
    let db = TestDb::new(backend);
    let file: PathBuf = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(&db, &file, &config(&[A], ""), &notify);
    let notices = ready(notices).await;
    let (client, url) = (client(), daemon.url());
    assert_eq!(deliver(&client, &url, A, "evt_roll_a").await, 200);
    assert_eq!(
        deliver(&client, &url, B, "evt_roll_b_early").await,
        400,
        "B is not configured yet"
    );

    // A stream of deliveries signed with A, across the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(Vec::<u16>::new()));
    let stream = tokio::spawn({
        let (client, url, stop, sent) = (
            client.clone(),
            url.clone(),
            Arc::clone(&stop),
            Arc::clone(&sent),
        );
        async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let status = deliver(&client, &url, A, &format!("evt_stream_{i}")).await;
                sent.lock().unwrap().push(status);
                i += 1;
            }
        }
    });
    let count = || sent.lock().unwrap().len();
    let wait_for_more = |n: usize| {
        let sent = Arc::clone(&sent);
        async move {
            let deadline = Instant::now() + DEADLINE;
            while sent.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "the stream stalled");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for_more(3).await;
    let before = count();
    let notices = reload(&daemon, notices, &file, &config(&[A, B], "")).await;
    wait_for_more(count() + 3).await;
    stop.store(true, Ordering::SeqCst);
    stream.await.expect("the stream");
    let statuses = sent.lock().unwrap().clone();
    assert!(statuses.len() > before, "requests went on after the reload");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every request of the stream was accepted: {statuses:?}"
    );
    wait_for_line(&daemon, "configuration reloaded", |l| {
        l.contains("configuration reloaded") && l.contains("2 signing secret(s)")
    })
    .await;

    // During the roll both are accepted.
    assert_eq!(deliver(&client, &url, B, "evt_roll_b").await, 200);
    assert_eq!(deliver(&client, &url, A, "evt_roll_a2").await, 200);

    // The roll ends: B alone.
    reload(&daemon, notices, &file, &config(&[B], "")).await;
    assert_eq!(deliver(&client, &url, B, "evt_roll_b2").await, 200);
    assert_eq!(
        deliver(&client, &url, A, "evt_roll_a3").await,
        400,
        "A is refused once it is no longer listed"
    );
}

backend_tests!(a_bad_config_on_sighup_is_refused_and_the_old_one_serves);

async fn a_bad_config_on_sighup_is_refused_and_the_old_one_serves(backend: Backend) {
    let db = TestDb::new(backend);
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(&db, &file, &config(&[A], ""), &notify);
    let notices = ready(notices).await;
    let (client, url) = (client(), daemon.url());

    // Invalid: an API key where the signing secret goes.
    let notices = reload(&daemon, notices, &file, &config(&["sk_test_oops"], "")).await;
    let refused = wait_for_line(&daemon, "refusing the invalid file", |l| {
        l.contains("configuration reload refused")
    })
    .await;
    assert!(refused.contains("endpoints[0].secrets[0]"), "{refused}");
    assert!(refused.contains("whsec_"), "says what to fix: {refused}");
    assert!(refused.contains("ERROR"), "logged at error: {refused}");
    assert_eq!(
        deliver(&client, &url, A, "evt_bad_a").await,
        200,
        "A still serves"
    );

    // Valid, but a key that needs a restart changed (with a new secret):
    // nothing of it applies.
    let notices = reload(
        &daemon,
        notices,
        &file,
        &config(&[B], "[intake]\nmax_batch = 7\n"),
    )
    .await;
    wait_for_line(&daemon, "naming intake.max_batch", |l| {
        l.contains("configuration reload refused") && l.contains("intake.max_batch")
    })
    .await;
    assert_eq!(deliver(&client, &url, A, "evt_fixed_a").await, 200);
    assert_eq!(
        deliver(&client, &url, B, "evt_fixed_b").await,
        400,
        "a refused reload applies nothing"
    );

    assert_eq!(
        metric(&client, &daemon, "hookd_config_reload_failures_total").await,
        Some(2.0)
    );
    assert_eq!(
        metric(&client, &daemon, "hookd_config_last_reload_successful").await,
        Some(0.0),
        "the file on disk is not what runs"
    );
    let loaded_at = metric(&client, &daemon, "hookd_config_loaded_timestamp_seconds")
        .await
        .expect("the load time");

    // Fixed again: applied.
    reload(&daemon, notices, &file, &config(&[B], "")).await;
    assert_eq!(deliver(&client, &url, B, "evt_good_b").await, 200);
    assert_eq!(
        metric(
            &client,
            &daemon,
            "hookd_config_reloads_total{outcome=\"applied\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(&client, &daemon, "hookd_config_last_reload_successful").await,
        Some(1.0)
    );
    let reloaded_at = metric(&client, &daemon, "hookd_config_loaded_timestamp_seconds")
        .await
        .expect("the load time");
    assert!(reloaded_at >= loaded_at, "{reloaded_at} < {loaded_at}");
}

/// `log.level` from info to warn (an info line is no longer written) and
/// back (it is again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_changes_on_sighup() {
    let db = TestDb::new(Backend::Sqlite);
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(&db, &file, &config(&[A], ""), &notify);
    let notices = ready(notices).await;
    let (client, url) = (client(), daemon.url());
    let stored = |id: &'static str| {
        move |l: &str| l.contains("webhook stored") && l.contains(&format!("\"{id}\""))
    };
    assert_eq!(deliver(&client, &url, A, "evt_level_info").await, 200);
    wait_for_line(&daemon, "for evt_level_info", stored("evt_level_info")).await;

    let notices = reload(
        &daemon,
        notices,
        &file,
        &config(&[A], "[log]\nlevel = \"warn\"\n"),
    )
    .await;
    assert_eq!(deliver(&client, &url, A, "evt_level_quiet").await, 200);

    reload(
        &daemon,
        notices,
        &file,
        &config(&[A], "[log]\nlevel = \"info\"\n"),
    )
    .await;
    assert_eq!(deliver(&client, &url, A, "evt_level_loud").await, 200);
    // The pipe keeps the daemon's order: once the later line is here, the
    // earlier one would be too.
    wait_for_line(&daemon, "for evt_level_loud", stored("evt_level_loud")).await;
    assert!(
        !daemon.log().contains("\"evt_level_quiet\""),
        "at warn, the delivery's info line is not written:\n{}",
        daemon.log()
    );
}

/// What a receiving app got: the path it was sent to and whether the
/// signature verified with the secret that path expects.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    path: String,
    event_id: String,
    verified: bool,
}

/// Two apps in one server: /one expects secret ONE, /two secret TWO.
fn receiver() -> (String, Arc<Mutex<Vec<Got>>>) {
    const SECRETS: [(&str, &str); 2] = [("/one", ONE), ("/two", TWO)];
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let server = HttpServer::new(move || {
        let sink = Arc::clone(&sink);
        App::new().default_service(web::to(move |req: HttpRequest, body: String| {
            let sink = Arc::clone(&sink);
            async move {
                let path = req.path().to_owned();
                let header = req
                    .headers()
                    .get("stripe-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let t: i64 = header
                    .split(',')
                    .find_map(|p| p.strip_prefix("t="))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let verified =
                    SECRETS
                        .iter()
                        .find(|(p, _)| *p == path)
                        .is_some_and(|(_, secret)| {
                            header.contains(&format!("v1={}", sign(secret, t, &body)))
                        });
                let event: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                sink.lock().unwrap().push(Got {
                    path,
                    event_id: event["id"].as_str().unwrap_or("").to_owned(),
                    verified,
                });
                HttpResponse::Ok().finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    (base, got)
}

const ONE: &str = "whsec_destination_one";
const TWO: &str = "whsec_destination_two";

fn destination(base: &str, path: &str, secret: &str) -> String {
    format!(
        "[[destinations]]\nname = \"app\"\nurl = \"{base}{path}\"\nsecret = \"{secret}\"\nafter = \"received\"\nevents = [\"customer.*\"]\n"
    )
}

backend_tests!(a_destinations_url_and_secret_change_on_sighup);

async fn a_destinations_url_and_secret_change_on_sighup(backend: Backend) {
    let db = TestDb::new(backend);
    let (base, got) = receiver();
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(
        &db,
        &file,
        &config(&[A], &destination(&base, "/one", ONE)),
        &notify,
    );
    let notices = ready(notices).await;
    let (client, url) = (client(), daemon.url());
    let wait_for = |id: &'static str| {
        let got = Arc::clone(&got);
        async move {
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Some(g) = got.lock().unwrap().iter().find(|g| g.event_id == id) {
                    return g.clone();
                }
                assert!(Instant::now() < deadline, "{id} was not forwarded");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };
    assert_eq!(deliver(&client, &url, A, "evt_dest_one").await, 200);
    let first = wait_for("evt_dest_one").await;
    assert_eq!((first.path.as_str(), first.verified), ("/one", true));

    reload(
        &daemon,
        notices,
        &file,
        &config(&[A], &destination(&base, "/two", TWO)),
    )
    .await;
    assert_eq!(deliver(&client, &url, A, "evt_dest_two").await, 200);
    let second = wait_for("evt_dest_two").await;
    assert_eq!(
        (second.path.as_str(), second.verified),
        ("/two", true),
        "sent to the new url, signed with the new secret"
    );
    wait_for_line(&daemon, "naming the destination", |l| {
        l.contains("configuration reloaded") && l.contains("destination app: changed")
    })
    .await;
}

backend_tests!(a_change_of_thin_or_connect_is_refused_on_sighup_naming_the_key);

/// `thin` and `connect` shape catch-up and the drift sweep, which are set
/// up at start: a reload that changes them is refused by name ("needs a
/// restart"), never reported as reloaded.
async fn a_change_of_thin_or_connect_is_refused_on_sighup_naming_the_key(backend: Backend) {
    let db = TestDb::new(backend);
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(&db, &file, &config(&[A], ""), &notify);
    let mut notices = ready(notices).await;
    let client = client();
    for (n, key) in ["thin", "connect"].into_iter().enumerate() {
        // The endpoint's table is the file's last: the key lands in it.
        let changed = format!("{}{key} = true\n", config(&[A], ""));
        notices = reload(&daemon, notices, &file, &changed).await;
        let refused = wait_for_line(&daemon, key, |l| {
            l.contains("configuration reload refused")
                && l.contains(&format!("endpoint /webhooks/stripe: {key}"))
        })
        .await;
        assert!(refused.contains("needs a restart"), "{refused}");
        assert!(refused.contains("ERROR"), "{refused}");
        assert!(
            !daemon.log().contains("configuration reloaded"),
            "never reported as reloaded:\n{}",
            daemon.log()
        );
        assert_eq!(
            metric(&client, &daemon, "hookd_config_reload_failures_total").await,
            Some(n as f64 + 1.0)
        );
        assert_eq!(
            metric(&client, &daemon, "hookd_config_last_reload_successful").await,
            Some(0.0)
        );
    }
}

/// The admin token in the config file (the environment would win over it).
const FILE_TOKEN: &str = "file-admin-token-0123456789";
const ROTATED_TOKEN: &str = "rotated-file-admin-token-0123456789";

backend_tests!(a_rotated_admin_token_on_sighup_ends_older_sessions_and_streams);

/// `admin_token` rotated by a reload: a session and a bearer stream of the
/// old token end, the old token opens nothing, the new one works.
async fn a_rotated_admin_token_on_sighup_ends_older_sessions_and_streams(backend: Backend) {
    use reqwest::header::{COOKIE, SET_COOKIE};
    let db = TestDb::new(backend);
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let with_token = |token: &str| config(&[A], &format!("admin_token = \"{token}\""));
    std::fs::write(&file, with_token(FILE_TOKEN)).expect("write the config file");
    let daemon = Daemon::spawn_with(
        &db,
        &[
            ("STRIPE_HOOKD_CONFIG", file.to_string_lossy().as_ref()),
            ("NOTIFY_SOCKET", notify.as_str()),
        ],
        &["STRIPE_WEBHOOK_SECRET"],
    );
    let notices = ready(notices).await;
    let client = client();
    let deadline = Instant::now() + DEADLINE;
    let admin = loop {
        if let Some(addr) = daemon.admin_addr() {
            break format!("http://{addr}");
        }
        assert!(Instant::now() < deadline, "no admin address in the log");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let signed_in = client
        .post(format!("{admin}/ui/login"))
        .json(&serde_json::json!({"token": FILE_TOKEN}))
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), 200);
    let cookie = signed_in.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let status = |req: reqwest::RequestBuilder| async move {
        req.send()
            .await
            .expect("the admin API answers")
            .status()
            .as_u16()
    };
    let events = format!("{admin}/v1/events");
    assert_eq!(
        status(client.get(&events).header(COOKIE, &cookie)).await,
        200
    );
    let mut stream = client
        .get(format!("{admin}/ui/stream"))
        .bearer_auth(FILE_TOKEN)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("the stream");
    assert_eq!(stream.status(), 200);

    reload(&daemon, notices, &file, &with_token(ROTATED_TOKEN)).await;
    let reloaded = wait_for_line(&daemon, "naming the rotation", |l| {
        l.contains("configuration reloaded") && l.contains("admin_token: rotated")
    })
    .await;
    assert!(
        !reloaded.contains(FILE_TOKEN) && !reloaded.contains(ROTATED_TOKEN),
        "no token in the log: {reloaded}"
    );
    assert_eq!(
        status(client.get(&events).header(COOKIE, &cookie)).await,
        401,
        "the old token's session ends"
    );
    assert_eq!(
        status(client.get(&events).bearer_auth(FILE_TOKEN)).await,
        401
    );
    assert_eq!(
        status(client.get(&events).bearer_auth(ROTATED_TOKEN)).await,
        200
    );

    // The old token's stream ends within seconds (it re-checks every 2 s).
    let started = Instant::now();
    let mut text = String::new();
    loop {
        let left = Duration::from_secs(15).saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("the old token's stream is still open: {text}"),
        }
    }
    assert!(text.contains("event: signed_out\n"), "{text}");
}

backend_tests!(a_destination_switched_to_standard_on_sighup_needs_a_secret_of_the_specs_form);

/// `signature = "standard"` with a secret not of the spec's form is
/// refused by name (the destination keeps Stripe's scheme); with one of
/// that form it applies, and the next request is a Standard Webhooks one
/// that the spec's Python library verifies.
async fn a_destination_switched_to_standard_on_sighup_needs_a_secret_of_the_specs_form(
    backend: Backend,
) {
    use crate::forward_standard::{python_verify, Recorder, STANDARD_SECRET};
    let db = TestDb::new(backend);
    let app_side = Recorder::start(Vec::new());
    let base = app_side.url("");
    let file = db.dir().join("config.toml");
    let (notices, notify) = Notices::bind(db.dir());
    let daemon = start(
        &db,
        &file,
        &config(&[A], &destination(&base, "/one", ONE)),
        &notify,
    );
    let notices = ready(notices).await;
    let (client, url) = (client(), daemon.url());
    let arrived = |id: &'static str| {
        let app_side = &app_side;
        async move {
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Some(r) = app_side
                    .got("/one")
                    .into_iter()
                    .find(|r| r.body.contains(id))
                {
                    return r;
                }
                assert!(Instant::now() < deadline, "{id} was not forwarded");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    };

    // 16 bytes: too short for the spec.
    let short = "whsec_MDEyMzQ1Njc4OWFiY2RlZg==";
    let standard = |secret: &str| {
        config(
            &[A],
            &format!(
                "{}signature = \"standard\"\n",
                destination(&base, "/one", secret)
            ),
        )
    };
    let notices = reload(&daemon, notices, &file, &standard(short)).await;
    let refused = wait_for_line(&daemon, "refusing the short secret", |l| {
        l.contains("configuration reload refused")
    })
    .await;
    assert!(refused.contains("destinations[0].secret"), "{refused}");
    assert!(refused.contains("decodes to 16 bytes"), "{refused}");
    assert!(refused.contains("24 to 64"), "{refused}");
    assert!(
        !refused.contains(short),
        "the secret is not logged: {refused}"
    );
    assert_eq!(deliver(&client, &url, A, "evt_still_stripe").await, 200);
    let before = arrived("evt_still_stripe").await;
    assert!(before.header("stripe-signature").is_some(), "{before:?}");
    assert!(before.header("webhook-signature").is_none(), "{before:?}");

    reload(&daemon, notices, &file, &standard(STANDARD_SECRET)).await;
    assert_eq!(deliver(&client, &url, A, "evt_now_standard").await, 200);
    let after = arrived("evt_now_standard").await;
    assert!(after.header("stripe-signature").is_none(), "{after:?}");
    assert_eq!(
        python_verify(STANDARD_SECRET, &[after]),
        Some(vec!["ok".to_owned()])
    );
}
