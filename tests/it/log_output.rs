//! What the real binary writes to a pipe or a file: plain text, no terminal
//! colour codes.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::fake_stripe::{FakeStripe, KEY};
use crate::harness::*;

const ESC: &str = "\x1b[";

#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let db = TestDb::new(Backend::Sqlite);
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("STRIPE_HOOKD_LISTEN", "127.0.0.1:0")
        .env("STRIPE_HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
        .env("STRIPE_HOOKD_STATE_DIR", db.dir())
        .env("STRIPE_HOOKD_LOG__FORMAT", "text")
        .env("DATABASE_URL", &db.url)
        .env("STRIPE_API_KEY", "sk_test_log_output")
        .env("STRIPE_API_BASE", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stripe-hookd");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(());
            }
            lines.push(line);
        }
        lines
    });
    let started = rx.recv_timeout(Duration::from_secs(30));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let stdout = reader.join().expect("reader").join("\n");
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    assert!(started.is_ok(), "the daemon did not start: {stdout}\n{err}");
    assert!(stdout.contains("listening"), "{stdout}");
    assert!(
        !stdout.contains(ESC) && !err.contains(ESC),
        "colour codes in piped output:\n{stdout:?}\n{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_about_an_api_base_with_a_path() {
    let db = TestDb::new(Backend::Sqlite);
    let fake = FakeStripe::start().await.expect("fake stripe");
    let base = format!("{}/v1", fake.base_url);
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
            .arg("check")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STRIPE_HOOKD_STATE_DIR", db.dir())
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("DATABASE_URL", &db.url)
            .env("STRIPE_API_KEY", KEY)
            .env("STRIPE_API_BASE", &base)
            .output()
            .expect("run check")
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("warn  api-base") && stdout.contains("/v1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  stripe-api"),
        "the 404 itself: {stdout}"
    );
    assert!(
        !stdout.contains(ESC) && !stderr.contains(ESC),
        "{stdout:?}\n{stderr:?}"
    );
    fake.stop().await;
}

/// Requests whose head is over actix's limit are refused before any
/// handler: counted by reason, not one ERROR line each (a hostile client
/// flooded the journal with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_heads_are_counted_not_logged_one_by_one() {
    use std::io::Write;

    let db = TestDb::new(Backend::Sqlite);
    let daemon = crate::daemon::Daemon::spawn(&db, &[("STRIPE_HOOKD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let addr = daemon.addr;
    const REQUESTS: usize = 20;
    tokio::task::spawn_blocking(move || {
        let head = format!(
            "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
            "a".repeat(300 * 1024)
        );
        for _ in 0..REQUESTS {
            let mut stream = std::net::TcpStream::connect(addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            // The server may close before the whole head is written.
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    })
    .await
    .unwrap();
    let client = client();
    let series = "hookd_http_refused_total{reason=\"head_too_large\"}";
    // Counted as actix refuses them: wait for the last (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counted = loop {
        let value = crate::reload::metric(&client, &daemon, series).await;
        if value == Some(REQUESTS as f64) || std::time::Instant::now() > deadline {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(counted, Some(REQUESTS as f64), "{}", daemon.log());
    let log = daemon.log();
    assert!(
        !log.contains("stream error") && !log.contains("\"level\":\"ERROR\""),
        "refusals logged one by one:\n{log}"
    );
}
