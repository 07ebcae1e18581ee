//! The real binary as a child process, configured through its environment
//! like systemd or a container would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::*;

/// The daemon as a child process.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    /// Everything the daemon wrote: its log (JSON lines) on stdout, then
    /// anything on stderr.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    pub fn spawn(db: &TestDb, extra_env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with(db, extra_env, &[])
    }

    /// `remove`: default variables to leave out (e.g. STRIPE_WEBHOOK_SECRET).
    pub fn spawn_with(db: &TestDb, extra_env: &[(&str, &str)], remove: &[&str]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"));
        cmd.arg("serve");
        Daemon::start(cmd, db, extra_env, remove)
    }

    /// The daemon with the effects handler (the `test-hooks` test binary).
    #[cfg(feature = "test-hooks")]
    pub fn effects(db: &TestDb, extra_env: &[(&str, &str)]) -> Daemon {
        let cmd = Command::new(env!("CARGO_BIN_EXE_stripe-hookd-effects"));
        Daemon::start(cmd, db, extra_env, &[])
    }

    fn start(mut cmd: Command, db: &TestDb, extra_env: &[(&str, &str)], remove: &[&str]) -> Daemon {
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .env("STRIPE_HOOKD_LISTEN", "127.0.0.1:0")
            .env("STRIPE_HOOKD_ADMIN_LISTEN", "127.0.0.1:0")
            .env("STRIPE_HOOKD_STATE_DIR", db.dir())
            .env("STRIPE_HOOKD_LOG__FORMAT", "json")
            .env("DATABASE_URL", &db.url)
            .env("STRIPE_API_KEY", "sk_test_process_tests")
            .env("STRIPE_API_BASE", "http://127.0.0.1:9")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in remove {
            cmd.env_remove(name);
        }
        let mut child = cmd.spawn().expect("spawn stripe-hookd");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push(line);
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !sent {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let Some(addr) = v["public_addr"].as_str() {
                            let _ = tx.send(addr.to_owned());
                            sent = true;
                        }
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "daemon did not report its address: {:?}",
                    lines.lock().unwrap()
                )
            });
        Daemon {
            child,
            addr: addr.parse().expect("socket address"),
            lines,
        }
    }

    /// The admin listener, once the daemon logged it.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.lines.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v["admin_addr"].as_str()?.parse().ok()
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/webhooks/stripe", self.addr)
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no lease released.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        self.child.wait().expect("exit").code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
