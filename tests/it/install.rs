//! What an operator installs and runs around the daemon — completions, the
//! man page, `--version`, `backup`, `migrate --dry-run` — on the real binary.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stripe_hookd::testing::store::{outbox, Store, StoreOptions};

use crate::backend_tests;
use crate::daemon::Daemon;
use crate::harness::*;

backend_tests!(migrate_dry_run_lists_pending_migrations_and_applies_none);

/// The binary as an operator runs it against `db`.
fn hookd_cmd(db: &TestDb, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stripe-hookd"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("STRIPE_API_KEY", "sk_test_install_tests")
        .env("STRIPE_HOOKD_STATE_DIR", db.dir())
        .env("DATABASE_URL", &db.url);
    cmd
}

fn hookd_on(db: &TestDb, args: &[&str]) -> Output {
    hookd_cmd(db, args).output().expect("run stripe-hookd")
}

fn open(url: &str) -> Store {
    Store::open(
        url,
        &StoreOptions {
            pool_size: 2,
            busy_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            pooler: stripe_hookd::testing::store::Pooler::Auto,
        },
    )
    .expect("open database")
}

fn hookd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stripe-hookd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run stripe-hookd")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn completions_cover_the_subcommands_for_bash_zsh_and_fish() {
    let bash = stdout(&hookd(&["completions", "bash"]));
    assert!(bash.contains("complete -F _stripe__hookd"), "{bash}");
    let zsh = stdout(&hookd(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef stripe-hookd"), "{zsh}");
    let fish = stdout(&hookd(&["completions", "fish"]));
    assert!(fish.contains("complete -c stripe-hookd"), "{fish}");
    for script in [&bash, &zsh, &fish] {
        for sub in ["serve", "migrate", "replay", "catch-up", "completions"] {
            assert!(script.contains(sub), "{sub} missing from {script}");
        }
    }
    let bad = hookd(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn the_man_page_is_roff_for_section_one_with_every_subcommand() {
    let page = stdout(&hookd(&["man"]));
    assert!(page.contains(".TH stripe-hookd 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in ["serve", "migrate", "check", "dead", "catch\\-up", "man"] {
        let entry = format!("stripe\\-hookd\\-{sub}(1)");
        assert!(page.contains(&entry), "{entry} missing: {page}");
    }
}

/// `cargo deb` alone packages the committed debian/assets/: each must be
/// what this build generates (the man page and completions from the clap
/// definition, the unit with the package's paths).
#[test]
fn debian_assets_are_what_the_binary_generates() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/stripe-hookd.service")).unwrap();
    let packaged_unit = unit
        .replace("/usr/local/bin/stripe-hookd", "/usr/bin/stripe-hookd")
        .replace(
            "file:///usr/local/share/doc/stripe-hookd/README.md",
            "man:stripe-hookd(1) file:///usr/share/doc/stripe-hookd/README.md",
        );
    assert!(packaged_unit.contains("\nExecStart=/usr/bin/stripe-hookd serve\n"));
    let expected = [
        ("stripe-hookd.1", stdout(&hookd(&["man"]))),
        (
            "stripe-hookd.bash",
            stdout(&hookd(&["completions", "bash"])),
        ),
        ("_stripe-hookd", stdout(&hookd(&["completions", "zsh"]))),
        (
            "stripe-hookd.fish",
            stdout(&hookd(&["completions", "fish"])),
        ),
        ("stripe-hookd.service", packaged_unit),
    ];
    for (name, generated) in expected {
        let committed =
            std::fs::read_to_string(root.join("debian/assets").join(name)).unwrap_or_default();
        assert!(
            committed == generated,
            "debian/assets/{name} is stale: run scripts/deb-assets.sh and commit what it writes"
        );
    }
}

#[test]
fn version_names_the_git_commit_it_was_built_from() {
    let version = stdout(&hookd(&["--version"]));
    assert!(
        version.starts_with(&format!("stripe-hookd {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from a git checkout (as the tests are): the commit is in it.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    match head {
        Ok(head) if head.status.success() => {
            let head = String::from_utf8(head.stdout).unwrap();
            assert!(
                version.contains(&format!("(git {})", head.trim())),
                "{version} lacks {head}"
            );
        }
        _ => eprintln!("not a git checkout: commit not checked"),
    }
}

async fn migrate_dry_run_lists_pending_migrations_and_applies_none(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let mut embedded: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + dir)
            .expect("migrations dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    embedded.sort();
    // An existing, empty database: everything is pending.
    drop(open(&db.url));
    let out = stdout(&hookd_on(&db, &["migrate", "--dry-run"]));
    assert!(
        out.contains(&format!("{} migration(s) pending:", embedded.len())),
        "{out}"
    );
    for name in &embedded {
        assert!(
            out.lines().any(|line| line == format!("  {name}")),
            "{name} missing: {out}"
        );
    }
    assert_eq!(
        open(&db.url).pending_migrations().unwrap().len(),
        embedded.len(),
        "dry run applied"
    );

    stdout(&hookd_on(&db, &["migrate"]));
    let out = stdout(&hookd_on(&db, &["migrate", "--dry-run"]));
    assert!(out.contains("0 migration(s) pending"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_sqlite_consistently_while_intake_writes() {
    let db = TestDb::new(Backend::Sqlite);
    let daemon = Daemon::spawn(&db, &[]);
    let url = daemon.url();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, accepted) = (Arc::clone(&stop), Arc::clone(&accepted));
        tokio::spawn(async move {
            let client = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = event_body(
                    &format!("evt_bk_{i}"),
                    "customer.created",
                    &format!("cus_{i}"),
                    false,
                );
                let res = client
                    .post(&url)
                    .header(
                        "stripe-signature",
                        signature_header(&[SECRET], now(), &body),
                    )
                    .body(body)
                    .send()
                    .await
                    .expect("deliver");
                assert!(res.status().is_success(), "{}", res.status());
                accepted.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    // Back up mid-stream: some events in, more arriving.
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "intake accepted nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copy = db.dir().join("backup").join("copy.db");
    std::fs::create_dir(copy.parent().unwrap()).unwrap();
    let copy_arg = copy.to_str().unwrap().to_owned();
    let mut backup = hookd_cmd(&db, &["backup", &copy_arg]);
    let out = tokio::task::spawn_blocking(move || backup.output().expect("run backup"))
        .await
        .unwrap();
    let before = accepted.load(Ordering::SeqCst);
    let printed = stdout(&out);
    assert!(printed.contains("backed up sqlite://"), "{printed}");
    // Intake keeps going after the copy.
    let deadline = Instant::now() + Duration::from_secs(60);
    while accepted.load(Ordering::SeqCst) < before + 10 {
        assert!(Instant::now() < deadline, "intake stalled after the backup");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    let leftovers: Vec<_> = std::fs::read_dir(copy.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("copy.db")],
        "partial files left"
    );
    let backup = open(&format!("sqlite://{copy_arg}"));
    assert!(
        backup.pending_migrations().unwrap().is_empty(),
        "copy lacks the schema"
    );
    let mut conn = backup.conn().unwrap();
    let copied = outbox::count(&mut conn).unwrap();
    assert!(copied >= 20, "copy holds {copied} events");
    let live = {
        let live = open(&db.url);
        let mut conn = live.conn().unwrap();
        outbox::count(&mut conn).unwrap()
    };
    assert!(
        copied < live,
        "copy {copied} vs live {live}: taken mid-stream"
    );
    // Every event in the copy is whole: ids 0..copied, a prefix of what was sent.
    for i in 0..copied {
        let event = outbox::get(&mut conn, &format!("evt_bk_{i}")).unwrap();
        assert!(
            event.is_some(),
            "evt_bk_{i} missing from the copy of {copied}"
        );
    }

    // Never overwrites.
    let again = hookd_on(&db, &["backup", &copy_arg]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        outbox::count(&mut conn).unwrap(),
        copied,
        "backup overwrote the copy"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn backup_on_postgres_points_to_pg_dump() {
    let db = TestDb::new(Backend::Postgres);
    let out = hookd_on(&db, &["backup", db.dir().join("x.db").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pg_dump"), "{err}");
    assert!(!db.dir().join("x.db").exists());
}

/// A short-lived command exits cleanly: no pool connection may still be
/// opening when the process exits (libpq's TLS exit handlers crashed with
/// SIGSEGV in about one `migrate` in six when the pool refilled itself in
/// the background).
#[cfg(feature = "postgres")]
#[test]
fn short_commands_on_postgres_exit_cleanly() {
    let db = TestDb::new(Backend::Postgres);
    for run in 0..25 {
        let out = hookd_on(&db, &["migrate"]);
        assert!(out.status.success(), "run {run}: {out:?}");
    }
}

/// `cargo run` and `cargo test` give the process the variables the build
/// script sets (`cargo:rustc-env`): none may look like a setting
/// (`STRIPE_HOOKD_…`), or the README's `cargo run --release -- serve`
/// refuses to start on an unknown key (it did, with the release name).
#[test]
fn the_config_loads_in_the_environment_cargo_run_gives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[[endpoints]]\nname = \"default\"\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [\"whsec_x\"]\n",
    )
    .unwrap();
    let leaked: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("STRIPE_HOOKD_"))
        .collect();
    if let Err(e) = stripe_hookd::testing::config::load(Some(&path)) {
        panic!("the config does not load in cargo's environment ({leaked:?}): {e}");
    }
}
