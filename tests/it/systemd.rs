//! systemd notification, credentials, and `check` — on the real
//! binary.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::fake_stripe::{FakeStripe, KEY};
use crate::harness::*;

/// Reads notify datagrams until `want` arrives (or fails after `secs`).
fn wait_for(socket: &UnixDatagram, want: &str, secs: u64, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return;
            }
        }
    }
    panic!("no {want} within {secs}s; got {seen:?}");
}

#[test]
fn systemd_is_told_ready_fed_the_watchdog_and_told_stopping() {
    let db = TestDb::new(Backend::Sqlite);
    let path = db.dir().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let notify = path.to_string_lossy().to_string();
    let mut daemon = Daemon::spawn(
        &db,
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "400000"),
            ("STRIPE_HOOKD_RUNNER__POLL_INTERVAL_MS", "100"),
        ],
    );
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", 20, &mut seen);
    std::net::TcpStream::connect(daemon.addr).expect("READY=1 means connections are accepted");
    for _ in 0..3 {
        wait_for(&socket, "WATCHDOG=1", 5, &mut seen);
    }
    assert_eq!(daemon.terminate(), Some(0), "SIGTERM exits 0");
    wait_for(&socket, "STOPPING=1", 5, &mut seen);
    let ready = seen.iter().position(|m| m.contains("READY=1")).unwrap();
    let stopping = seen.iter().position(|m| m.contains("STOPPING=1")).unwrap();
    assert!(ready < stopping);
}

/// A Stripe API that accepts connections and never answers; counts them.
fn unanswering_stripe() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    // Lives as long as the test process; holds every connection open.
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            count.fetch_add(1, Ordering::SeqCst);
            open.push(stream);
        }
    });
    (base, accepted)
}

/// A busy runner is not a stuck runner: with every worker waiting on a
/// Stripe API that does not answer (each handler runs into its time limit,
/// half the lease, longer than the watchdog interval), the watchdog keeps
/// being fed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_fed_while_workers_wait_on_a_slow_stripe() {
    let db = TestDb::new(Backend::Sqlite);
    let (stripe, connections) = unanswering_stripe();
    let path = db.dir().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let notify = path.to_string_lossy().to_string();
    let interval = Duration::from_secs(1);
    let mut daemon = Daemon::spawn(
        &db,
        &[
            ("NOTIFY_SOCKET", notify.as_str()),
            ("WATCHDOG_USEC", "1000000"),
            ("STRIPE_API_BASE", stripe.as_str()),
            ("STRIPE_HOOKD_RUNNER__CONCURRENCY", "1"),
            // A handler gets half the lease: 2 s, twice the watchdog interval.
            ("STRIPE_HOOKD_RUNNER__LEASE_SECS", "4"),
        ],
    );
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| wait_for(&socket, "READY=1", 20, &mut seen));
    let client = client();
    for i in 0..4 {
        let body = event_body(
            &format!("evt_slow_{i}"),
            "customer.created",
            &format!("cus_slow_{i}"),
            false,
        );
        let res = client
            .post(daemon.url())
            .header(
                "stripe-signature",
                signature_header(&[SECRET], now(), &body),
            )
            .body(body)
            .send()
            .await
            .expect("deliver");
        assert_eq!(res.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while connections.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the runner never called Stripe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Watch for 5 s: two handlers in a row run into their 2 s limit.
    let watched = Instant::now();
    let mut feeds = vec![watched];
    let mut buf = [0u8; 4096];
    tokio::task::block_in_place(|| {
        while watched.elapsed() < Duration::from_secs(5) {
            if let Ok(n) = socket.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "WATCHDOG=1")
                {
                    feeds.push(Instant::now());
                }
            }
        }
    });
    feeds.push(Instant::now());
    let longest = feeds
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "the runner was busy with Stripe calls throughout"
    );
    assert!(
        longest < interval,
        "the watchdog went unfed for {longest:?} (systemd restarts after {interval:?}): {} feeds in 5 s",
        feeds.len() - 2
    );
    assert_eq!(daemon.terminate(), Some(0), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_from_the_credentials_directory() {
    let db = TestDb::new(Backend::Sqlite);
    let creds = db.dir().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    let secret = "whsec_from_systemd_credential";
    std::fs::write(creds.join("webhook_secret"), format!("{secret}\n")).unwrap();
    std::fs::write(creds.join("admin_token"), ADMIN_TOKEN).unwrap();
    let creds = creds.to_string_lossy().to_string();
    let daemon = Daemon::spawn_with(
        &db,
        &[("CREDENTIALS_DIRECTORY", creds.as_str())],
        &["STRIPE_WEBHOOK_SECRET"],
    );
    let client = client();
    let body = event_body("evt_cred", "customer.created", "cus_1", false);
    let res = client
        .post(daemon.url())
        .header(
            "stripe-signature",
            signature_header(&[secret], now(), &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "signed with the credential's secret");
    let res = client
        .post(daemon.url())
        .header(
            "stripe-signature",
            signature_header(&[SECRET], now(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        400,
        "the harness's default secret is not configured"
    );
    let admin = daemon
        .admin_addr()
        .expect("admin API on: the token came from the credential");
    let res = client
        .get(format!("http://{admin}/v1/events"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let log = daemon.log();
    assert!(
        !log.contains(secret) && !log.contains(ADMIN_TOKEN),
        "secrets never reach the logs"
    );
}

/// Runs `stripe-hookd check` with `env` (and `args`); returns (exit code, stdout).
fn check(db: &TestDb, env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .args(args)
        .arg("check")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_HOOKD_STATE_DIR", db.dir())
        .envs(env.iter().copied())
        .output()
        .expect("run check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_failure_with_a_fix_and_a_non_zero_exit() {
    let db = TestDb::new(Backend::Sqlite);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let base = fake.base_url.clone();
    let sqlite = db.url.clone();
    let good = [
        ("STRIPE_WEBHOOK_SECRET", SECRET),
        ("STRIPE_API_BASE", base.as_str()),
        ("DATABASE_URL", sqlite.as_str()),
    ];
    let run = |extra: Vec<(&'static str, String)>| {
        let (db, good) = (&db, good);
        async move {
            let mut env: Vec<(&str, String)> =
                good.iter().map(|(k, v)| (*k, v.to_string())).collect();
            for (k, v) in extra {
                env.retain(|(name, _)| *name != k);
                env.push((k, v));
            }
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let db = db;
            tokio::task::block_in_place(|| check(db, &env, &[]))
        }
    };

    // Before the first start: no database yet, and check does not make one
    // (a mistyped path must not pass as a fresh, empty database).
    let file = db.dir().join("hookd.db");
    assert!(!file.exists());
    let (code, out) = run(vec![("STRIPE_API_KEY", KEY.to_owned())]).await;
    assert_eq!(
        code,
        Some(0),
        "a database serve will create is no failure: {out}"
    );
    assert!(
        out.contains("warn  database") && out.contains("does not exist yet"),
        "{out}"
    );
    assert!(!file.exists(), "check created the database");

    let migrate = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(good)
        .env("STRIPE_API_KEY", KEY)
        .output()
        .expect("run migrate");
    assert!(migrate.status.success(), "{migrate:?}");
    let (code, out) = run(vec![("STRIPE_API_KEY", KEY.to_owned())]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok    stripe-api  test mode key of account acct_fake (Fake Co)"),
        "{out}"
    );
    assert!(out.contains("ok    database"), "{out}");
    assert!(out.contains("ok    migrations  up to date"), "{out}");

    let (code, out) = run(vec![("STRIPE_API_KEY", "sk_test_wrong_key".to_owned())]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  stripe-api  API key rejected"), "{out}");
    assert!(out.contains("→ fix: copy a current secret key"), "{out}");

    // A database that cannot be reached: a SQLite path below a regular file.
    let blocker = db.dir().join("not-a-directory");
    std::fs::write(&blocker, "x").unwrap();
    let bad_db = format!("sqlite://{}/hookd.db", blocker.display());
    let (code, out) = run(vec![
        ("STRIPE_API_KEY", KEY.to_owned()),
        ("DATABASE_URL", bad_db),
    ])
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  database"), "{out}");
    assert!(out.contains("→ fix: check DATABASE_URL"), "{out}");
    #[cfg(feature = "postgres")]
    {
        let (code, out) = run(vec![
            ("STRIPE_API_KEY", KEY.to_owned()),
            (
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/nothing".to_owned(),
            ),
            (
                "STRIPE_HOOKD_DATABASE__CONNECT_TIMEOUT_MS",
                "1000".to_owned(),
            ),
        ])
        .await;
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("FAIL  database"), "{out}");
    }

    // A bad config: an unknown key in the file.
    let file = db.dir().join("config.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:8080\"\nwebhook_secrett = \"whsec_x\"\n",
    )
    .unwrap();
    let file = file.to_string_lossy().to_string();
    let env: Vec<(&str, &str)> = good.to_vec();
    let (code, out) = tokio::task::block_in_place(|| check(&db, &env, &["--config", &file]));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL  config") && out.contains("webhook_secrett"),
        "{out}"
    );
    fake.stop().await;
}

/// A charge window for the drift sweep out of range, or not a whole number
/// of days, stops `serve` before it listens, with the key's name; the same
/// environment with a window in range serves.
#[test]
fn serve_refuses_a_bad_sweep_charge_window() {
    let db = TestDb::new(Backend::Sqlite);
    const KEY: &str = "STRIPE_HOOKD_SCHEDULE__SWEEP_CHARGE_WINDOW_DAYS";
    // Serves: reports its address (Daemon::spawn waits for it).
    drop(Daemon::spawn(&db, &[(KEY, "365")]));
    for (value, says) in [
        ("366", "366 days is more than the 365 allowed"),
        ("half-a-year", "invalid type"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STRIPE_HOOKD_STATE_DIR", db.dir())
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("DATABASE_URL", &db.url)
            .env("STRIPE_HOOKD_LISTEN", "127.0.0.1:0")
            .env("STRIPE_HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
            .env("STRIPE_API_KEY", "sk_test_process_tests")
            .env("STRIPE_API_BASE", "http://127.0.0.1:9")
            .env(KEY, value)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("serve's status") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve went on with {KEY}={value}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
            .expect("read stderr");
        // A type error names the variable's key in capitals.
        let stderr = stderr.to_lowercase();
        assert!(!status.success(), "{value}: {status:?}");
        assert!(stderr.contains(says), "{value}: {stderr}");
        assert!(
            stderr.contains("schedule.sweep_charge_window_days"),
            "{value}: {stderr}"
        );
    }
}
