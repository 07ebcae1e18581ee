//! Test harness: the real application on port 0, a fresh database per test
//! (a SQLite file in a temp dir, or a new Postgres database), a signer that
//! computes Stripe's signature independently of the daemon's code.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stripe_hookd::testing::app::Application;
use stripe_hookd::testing::config;
pub use stripe_hookd::testing::config::{Config, Mode, RunnerConfig};
use stripe_hookd::testing::store::{DbConnection, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend that calls `$body(backend)`:
/// `name::sqlite` always, `name::postgres` when built with `--features postgres`
/// (it then needs `TEST_POSTGRES_URL`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::harness::Backend::Sqlite).await
            }
            #[cfg(feature = "postgres")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::harness::Backend::Postgres).await
            }
        }
    )*};
}

pub const SECRET: &str = "whsec_test_harness_secret";
pub const OLD_SECRET: &str = "whsec_test_harness_old_secret";

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    #[cfg(feature = "postgres")]
    pg_name: Option<(String, String)>,
}

#[cfg(feature = "postgres")]
static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => TestDb {
                url: format!("sqlite://{}", dir.path().join("hookd.db").display()),
                backend,
                _dir: dir,
                #[cfg(feature = "postgres")]
                pg_name: None,
            },
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                use diesel::{Connection, RunQueryDsl};
                let base = std::env::var("TEST_POSTGRES_URL").expect(
                    "the postgres tests need TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test",
                );
                let name = format!(
                    "hookd_t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .expect("clock")
                        .subsec_nanos()
                );
                let mut admin =
                    diesel::PgConnection::establish(&base).expect("connect to TEST_POSTGRES_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                let (prefix, _) = base.rsplit_once('/').expect("URL with a database name");
                // The whole Postgres suite through the pooler, by hand
                // (docs/testing.md): the daemon's own connections then go
                // through PgBouncer, the tests' set-up straight to Postgres.
                let daemon_prefix = match (
                    std::env::var("TEST_POSTGRES_THROUGH_PGBOUNCER").as_deref(),
                    std::env::var("TEST_PGBOUNCER_URL"),
                ) {
                    (Ok("1"), Ok(pooler)) => pooler
                        .rsplit_once('/')
                        .map(|(p, _)| p.to_owned())
                        .expect("TEST_PGBOUNCER_URL with a database name"),
                    _ => prefix.to_owned(),
                };
                TestDb {
                    url: format!("{daemon_prefix}/{name}"),
                    backend,
                    _dir: dir,
                    pg_name: Some((base, name)),
                }
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => {
                unreachable!("postgres tests are only generated with the postgres feature")
            }
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

#[cfg(feature = "postgres")]
impl TestDb {
    /// A new Postgres database reached through PgBouncer in transaction
    /// mode: `TEST_PGBOUNCER_URL` (e.g. `postgres://postgres@127.0.0.1:6433/test`,
    /// scripts/pgbouncer.sh) with this database's name. `None`, with a
    /// note, when the variable is unset (`.ci/run` sets it).
    pub fn through_pgbouncer() -> Option<TestDb> {
        let Ok(pooler) = std::env::var("TEST_PGBOUNCER_URL") else {
            eprintln!(
                "TEST_PGBOUNCER_URL unset: skipped (scripts/pgbouncer.sh start DIR starts one on port 6433)"
            );
            return None;
        };
        let mut db = TestDb::new(Backend::Postgres);
        let (prefix, _) = pooler
            .rsplit_once('/')
            .expect("TEST_PGBOUNCER_URL with a database name");
        let name = db.pg_name.as_ref().map(|(_, name)| name.clone())?;
        db.url = format!("{prefix}/{name}");
        Some(db)
    }

    /// This Postgres database straight on the server (not through a pooler).
    pub fn direct_url(&self) -> String {
        match &self.pg_name {
            Some((base, name)) => match base.rsplit_once('/') {
                Some((prefix, _)) => format!("{prefix}/{name}"),
                None => self.url.clone(),
            },
            None => self.url.clone(),
        }
    }
}

#[cfg(feature = "postgres")]
impl Drop for TestDb {
    fn drop(&mut self) {
        use diesel::{Connection, RunQueryDsl};
        if let Some((base, name)) = &self.pg_name {
            if let Ok(mut admin) = diesel::PgConnection::establish(base) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

/// What a test changes in the config (a closure over the typed config).
pub type ConfigEdit = std::sync::Arc<dyn Fn(&mut Config) + Send + Sync>;

/// Options for [`TestApp::spawn_with`].
#[derive(Clone, Default)]
pub struct AppOptions {
    /// The handler the runner uses (default: none, events end `ignored`).
    pub handler: Option<std::sync::Arc<dyn stripe_hookd::testing::queue::Handler>>,
    pub clock: stripe_hookd::testing::util::Clock,
    /// A fake Stripe's base URL: configures the API client and runs the
    /// reconcile handler (unless `handler` is given).
    pub stripe: Option<String>,
    /// Edits applied, in order, after the harness's settings.
    pub edits: Vec<ConfigEdit>,
}

impl AppOptions {
    /// Adds an edit of the config: `options.config(|c| c.runner.max_attempts = 1)`.
    pub fn config(mut self, edit: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.edits.push(std::sync::Arc::new(edit));
        self
    }

    /// With the admin API on ([`ADMIN_TOKEN`]).
    pub fn admin(self) -> Self {
        self.config(|c| c.admin_token = Some(ADMIN_TOKEN.into()))
    }

    /// With the fake Stripe at `base_url`.
    pub fn stripe(mut self, base_url: &str) -> Self {
        self.stripe = Some(base_url.to_owned());
        self
    }

    pub fn handler(
        mut self,
        handler: std::sync::Arc<dyn stripe_hookd::testing::queue::Handler>,
    ) -> Self {
        self.handler = Some(handler);
        self
    }
}

/// A fresh database, the fake Stripe, and the daemon against it with
/// `options` applied (e.g. `AppOptions::admin`, or `|o| o.config(quick_retries)`).
pub async fn with_fake_stripe(
    backend: Backend,
    options: impl FnOnce(AppOptions) -> AppOptions,
) -> (TestDb, crate::fake_stripe::FakeStripe, TestApp) {
    let db = TestDb::new(backend);
    let fake = crate::fake_stripe::FakeStripe::start()
        .await
        .expect("fake stripe");
    let app = TestApp::spawn_with(&db, options(AppOptions::default().stripe(&fake.base_url))).await;
    (db, fake, app)
}

/// Retries that a test can wait for: the runner's backoff from 1 s, at most 10 s.
pub fn quick_retries(c: &mut Config) {
    c.runner.backoff_base_ms = 1000;
    c.runner.backoff_max_secs = 10;
}

/// The harness's config before a test's edits: the documented defaults,
/// port 0, the test's database, two HTTP workers, workers off, one test-mode
/// endpoint at `/webhooks/stripe` signed with [`SECRET`].
fn base_config(db: &TestDb) -> Config {
    let endpoint = format!(
        "[[endpoints]]\nname = \"default\"\npath = \"/webhooks/stripe\"\nmode = \"test\"\nsecrets = [\"{SECRET}\"]\n"
    );
    let mut config = config::from_toml_str(&endpoint).expect("the harness config");
    config.listen = ([127, 0, 0, 1], 0).into();
    config.admin_listen = ([127, 0, 0, 1], 0).into();
    config.state_dir = db.dir().to_owned();
    config.database.url = Some(db.url.clone().into());
    config.database.busy_timeout_ms = 2000;
    config.intake.http_workers = Some(2);
    config.intake.write_timeout_ms = 5000;
    config.runner.enabled = false;
    config
}

/// An endpoint like the harness's default one, with another name, mode
/// and secrets.
pub fn endpoint(
    config: &Config,
    name: &str,
    mode: config::Mode,
    secrets: &[&str],
) -> config::Endpoint {
    let mut endpoint = config.endpoints[0].clone();
    endpoint.name = name.to_owned();
    endpoint.mode = mode;
    endpoint.secrets = secrets.iter().map(|s| (*s).into()).collect();
    endpoint
}

/// The daemon, running in this process on port 0.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener, when `admin_token` is configured.
    pub admin: Option<SocketAddr>,
    pub store: Store,
    pub runner: std::sync::Arc<stripe_hookd::testing::queue::Runner>,
    /// With destinations configured (step it when `forward.enabled` is off).
    pub forwarder: Option<std::sync::Arc<stripe_hookd::testing::forward::Forwarder>>,
    /// What a configuration reload swaps (tests build a `Reloader` on it).
    pub reload_targets: stripe_hookd::testing::app::reload::Targets,
    pub client: reqwest::Client,
    token: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl TestApp {
    pub async fn spawn(db: &TestDb) -> TestApp {
        TestApp::spawn_with(db, AppOptions::default()).await
    }

    pub async fn spawn_with(db: &TestDb, options: AppOptions) -> TestApp {
        // TEST_LOG=debug shows the daemon's logs when a test fails.
        if let Ok(level) = std::env::var("TEST_LOG") {
            stripe_hookd::testing::telemetry::init(
                stripe_hookd::testing::config::LogFormat::Text,
                &level,
            );
        }
        let mut config = base_config(db);
        if let Some(base) = &options.stripe {
            config.stripe.api_key = Some(crate::fake_stripe::KEY.into());
            config.stripe.api_base = base.clone();
            config.stripe.requests_per_sec = Some(1000);
            config.stripe.timeout_secs = 1;
        }
        for edit in &options.edits {
            edit(&mut config);
        }
        // With the fake Stripe and no handler of the test's, the
        // application builds the reconcile handler itself, as `serve` does:
        // one API client (one budget) for the runner, whose groups in
        // flight then follow it, and the admin operations.
        let mut builder = Application::builder(config).clock(options.clock.clone());
        builder = match (&options.handler, &options.stripe) {
            (Some(h), _) => builder.handler(h.clone()),
            (None, Some(_)) => builder,
            (None, None) => builder.handler(stripe_hookd::testing::app::default_handler()),
        };
        let app = builder.build().await.expect("application starts");
        let runner = app.runner();
        let forwarder = app.forwarder();
        let reload_targets = app.reload_targets();
        let addr = app.public_addr();
        let admin = app.admin_addr();
        let store = app.store().clone();
        let token = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            admin,
            store,
            runner,
            forwarder,
            reload_targets,
            client: client(),
            token,
            task: Some(task),
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin.expect("admin API enabled"), path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a body with the given `Stripe-Signature` (None: no header).
    pub async fn post_raw(
        &self,
        path: &str,
        body: &str,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json; charset=utf-8")
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(body.to_owned());
        if let Some(sig) = signature {
            req = req.header("stripe-signature", sig);
        }
        req.send().await.expect("request sent")
    }

    /// POSTs a body signed now with `SECRET` to the default endpoint.
    pub async fn deliver(&self, body: &str) -> reqwest::Response {
        self.post_raw(
            "/webhooks/stripe",
            body,
            Some(&signature_header(&[SECRET], now(), body)),
        )
        .await
    }

    /// Delivers `event` signed now and asserts that the intake stored it
    /// (200); returns the event's id.
    pub async fn deliver_ok(&self, event: &serde_json::Value) -> String {
        let res = self.deliver(&event.to_string()).await;
        assert_eq!(res.status(), 200, "delivery of {}", event["type"]);
        event["id"].as_str().expect("an event id").to_owned()
    }

    /// Runs `f` with a database connection, on a blocking thread.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> T + Send + 'static,
    ) -> T {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = store.conn().expect("db connection");
            f(&mut conn)
        })
        .await
        .expect("db task")
    }

    pub async fn count(&self) -> i64 {
        self.db(|c| stripe_hookd::testing::store::outbox::count(c).expect("count"))
            .await
    }

    /// Asks the application to stop (as SIGTERM does) without waiting;
    /// [`TestApp::stop`] then waits for it.
    pub fn begin_stop(&self) {
        self.token.cancel();
    }

    /// Whether the application has ended (after [`TestApp::begin_stop`]).
    pub fn has_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the application gracefully and waits for it.
    pub async fn stop(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("app task").expect("app stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Stripe's scheme, computed here independently of the daemon:
/// HMAC-SHA256 over "{t}.{body}", keyed by the whole whsec_ string, hex.
pub fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(format!("{t}.{body}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `t=…,v1=…` with one v1 per secret, as Stripe sends while secrets roll.
pub fn signature_header(secrets: &[&str], t: i64, body: &str) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        header.push_str(&format!(",v1={}", sign(secret, t, body)));
    }
    header
}

/// The API version of the tests' events and of the fake Stripe's objects.
pub const API_VERSION: &str = "2026-11-18.endive";

/// A snapshot event around `object` (fresh id, created now, test mode,
/// [`API_VERSION`]); tests change fields with `event["id"] = …`.
pub fn snapshot_event(event_type: &str, object: serde_json::Value) -> serde_json::Value {
    stripe_hookd::testing::trigger::scenario::envelope(
        event_type,
        object,
        API_VERSION,
        false,
        now(),
    )
}

/// A minimal but complete snapshot event, serialised.
pub fn event_body(id: &str, event_type: &str, object_id: &str, livemode: bool) -> String {
    let object = event_type.split('.').next().unwrap_or("customer");
    let mut event = snapshot_event(
        event_type,
        serde_json::json!({"id": object_id, "object": object}),
    );
    event["id"] = id.into();
    event["livemode"] = livemode.into();
    event.to_string()
}

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// An outbox row for `object` (a subscription event), received and due at
/// `now` (epoch ms): bulk loading without HTTP.
pub fn stored_event(
    id: &str,
    object: &str,
    now: i64,
) -> stripe_hookd::testing::store::outbox::NewEvent {
    use stripe_hookd::testing::store::{outbox, EpochMs};
    outbox::NewEvent {
        event_id: id.to_owned(),
        endpoint: "default".into(),
        event_type: "customer.subscription.updated".into(),
        api_version: None,
        livemode: false,
        account: None,
        object_type: Some("subscription".into()),
        object_id: Some(object.to_owned()),
        object_key: object.to_owned(),
        stripe_created: now / 1000,
        received_at: EpochMs(now),
        queued_at: EpochMs(now),
        payload: "{}".into(),
        headers: "{}".into(),
        secret_index: 0,
        next_attempt_at: EpochMs(now),
        priority: outbox::LIVE,
    }
}

/// A store on `url` with the default options, not migrated (blocking: call
/// from `spawn_blocking`).
pub fn open_store(url: &str) -> Store {
    let defaults = config::from_toml_str("").expect("default config");
    Store::open(url, &defaults.database.store_options()).expect("open the store")
}

/// Runs `f` on a blocking thread with a connection of a migrated store on a
/// fresh database of `backend` (the store and the database are kept until
/// `f` returns): the set-up of the store-level tests.
pub async fn on_migrated_db<T: Send + 'static>(
    backend: Backend,
    f: impl FnOnce(stripe_hookd::testing::store::PooledConnection) -> T + Send + 'static,
) -> T {
    let db = TestDb::new(backend);
    let url = db.url.clone();
    let result = tokio::task::spawn_blocking(move || {
        let store = open_store(&url);
        store.migrate().expect("migrations");
        let conn = store.conn().expect("a connection");
        f(conn)
    })
    .await
    .expect("the test's blocking part");
    drop(db);
    result
}
