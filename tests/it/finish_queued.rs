//! A worker's slot is free once its group's finish is QUEUED, not
//! committed (`Runner::start`): the worker takes its next group while the
//! finish waits, and whatever needs the finish's outcome still sees the
//! real one — a finish whose COMMIT fails is a failed attempt, run again,
//! never counted done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use stripe_hookd::testing::queue::{
    apply_fn, Apply, EventGroup, Handler, HandlerContext, HandlerError, QUEUED_FINISHES_PER_WORKER,
};
use stripe_hookd::testing::store::outbox::{self, StoredEvent};
use stripe_hookd::testing::store::with_tx;

use crate::backend_tests;
use crate::harness::*;

backend_tests!(
    a_finish_whose_commit_fails_is_a_failed_attempt_and_runs_again,
    shutdown_commits_the_finishes_already_queued,
);

diesel::table! {
    test_children (rowid) {
        rowid -> BigInt,
        parent -> Text,
    }
}

/// A child row per applied event, whose parent (named after the event) must
/// exist when the transaction COMMITs (a deferred foreign key): without it
/// every statement succeeds and the COMMIT fails.
const SCHEMA_SQLITE: &str = "CREATE TABLE test_parents (id TEXT PRIMARY KEY); \
     CREATE TABLE test_children (rowid INTEGER PRIMARY KEY, parent TEXT NOT NULL \
       REFERENCES test_parents(id) DEFERRABLE INITIALLY DEFERRED)";
const SCHEMA_POSTGRES: &str = "CREATE TABLE test_parents (id TEXT PRIMARY KEY); \
     CREATE TABLE test_children (rowid BIGSERIAL PRIMARY KEY, parent TEXT NOT NULL \
       REFERENCES test_parents(id) DEFERRABLE INITIALLY DEFERRED)";

/// A gate the applies of the gated objects wait at (on a finisher's thread,
/// inside the finishing transaction) until the test opens it.
#[derive(Default)]
struct ApplyGate {
    open: Mutex<bool>,
    opened: Condvar,
    /// How many applies are waiting (or have waited) at it.
    waiting: AtomicUsize,
}

impl ApplyGate {
    fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut open = self.open.lock().unwrap();
        while !*open && Instant::now() < deadline {
            open = self
                .opened
                .wait_timeout(open, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
    fn is_waiting(&self) -> bool {
        self.waiting() > 0
    }
    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

/// Writes a child row per event in the finishing transaction; records the
/// objects it was called for; the applies of the objects whose key starts
/// with `gated`'s prefix wait at its gate. The handler of the object
/// `hold`'s key returns only once that many applies wait at the gate.
#[derive(Clone, Default)]
struct ChildHandler {
    calls: Arc<Mutex<Vec<String>>>,
    /// Handlers that returned (their finish is queued right after).
    returned: Arc<AtomicUsize>,
    gated: Option<(String, Arc<ApplyGate>)>,
    hold: Option<(String, usize)>,
}

impl Handler for ChildHandler {
    fn handles(&self, _: &str) -> bool {
        true
    }
    fn handle(
        &self,
        group: EventGroup,
        _: &HandlerContext,
    ) -> BoxFuture<'static, Result<Apply, HandlerError>> {
        self.calls.lock().unwrap().push(group.key.clone());
        let gate = self
            .gated
            .as_ref()
            .filter(|(prefix, _)| group.key.starts_with(prefix.as_str()))
            .map(|(_, gate)| Arc::clone(gate));
        let hold = self
            .hold
            .as_ref()
            .filter(|(key, _)| *key == group.key)
            .map(|(_, n)| *n)
            .zip(self.gated.as_ref().map(|(_, gate)| Arc::clone(gate)));
        let returned = Arc::clone(&self.returned);
        let ids: Vec<String> = group.events.iter().map(|e| e.event_id.clone()).collect();
        async move {
            if let Some((n, gate)) = hold {
                let deadline = Instant::now() + Duration::from_secs(60);
                while gate.waiting() < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let apply: Apply = apply_fn(move |tx| {
                if let Some(gate) = &gate {
                    gate.wait();
                }
                for id in &ids {
                    with_tx!(tx, c => diesel::insert_into(test_children::table)
                        .values(test_children::parent.eq(id))
                        .execute(c))?;
                }
                Ok(())
            });
            returned.fetch_add(1, Ordering::SeqCst);
            Ok(apply)
        }
        .boxed()
    }
}

async fn app(db: &TestDb, handler: &ChildHandler, concurrency: usize) -> TestApp {
    let app = TestApp::spawn_with(
        db,
        AppOptions::default()
            .handler(Arc::new(handler.clone()))
            .config(move |c| {
                quick_retries(c);
                c.runner.enabled = true;
                c.runner.concurrency = concurrency;
                c.runner.poll_interval_ms = 50;
            }),
    )
    .await;
    let backend = db.backend;
    app.db(move |c| {
        c.batch_execute(match backend {
            Backend::Sqlite => SCHEMA_SQLITE,
            Backend::Postgres => SCHEMA_POSTGRES,
        })
        .expect("test tables")
    })
    .await;
    app
}

async fn deliver(app: &TestApp, id: &str, object: &str) {
    let res = app
        .deliver(&event_body(id, "invoice.paid", object, false))
        .await;
    assert_eq!(res.status(), 200, "{id}");
}

async fn rows(app: &TestApp) -> HashMap<String, StoredEvent> {
    app.db(|c| outbox::list_all(c).unwrap())
        .await
        .into_iter()
        .map(|r| (r.event_id.clone(), r))
        .collect()
}

/// `(attempt, outcome, error)` rows of an event, in order.
async fn attempts(app: &TestApp, id: &str) -> Vec<(i32, Option<String>, Option<String>)> {
    use stripe_hookd::testing::store::schema::event_attempts as a;
    let id = id.to_owned();
    app.db(move |c| {
        stripe_hookd::testing::store::with_conn!(c, c => a::table
            .filter(a::event_id.eq(&id))
            .order(a::id.asc())
            .select((a::attempt, a::outcome, a::error))
            .load(c)
            .unwrap())
    })
    .await
}

async fn children(app: &TestApp) -> Vec<String> {
    app.db(|c| {
        stripe_hookd::testing::store::with_conn!(c, c => test_children::table
            .select(test_children::parent)
            .load(c)
            .unwrap())
    })
    .await
}

/// Polls until `check` holds, or fails with `what` after a generous deadline.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The workers' finish fails at COMMIT (the handler's write breaks a
/// deferred constraint): the event is not done, its attempt is recorded as
/// failed with the commit's error, and once the cause is gone it runs again
/// and is applied exactly once.
async fn a_finish_whose_commit_fails_is_a_failed_attempt_and_runs_again(backend: Backend) {
    let db = TestDb::new(backend);
    let handler = ChildHandler::default();
    let app = app(&db, &handler, 2).await;
    deliver(&app, "evt_orphan", "in_orphan").await;

    let t = &app;
    eventually("the failed attempt", move || async move {
        attempts(t, "evt_orphan")
            .await
            .first()
            .is_some_and(|a| a.1.is_some())
    })
    .await;
    let history = attempts(t, "evt_orphan").await;
    assert_eq!(history[0].1.as_deref(), Some("failed"), "{history:?}");
    let error = history[0].2.clone().unwrap_or_default();
    assert!(
        error.contains("did not commit") && error.to_lowercase().contains("foreign key"),
        "the attempt says the commit failed, and why: {error}"
    );
    let row = rows(t).await.remove("evt_orphan").unwrap();
    assert_ne!(row.status, "done", "{row:?}");
    assert!(
        children(t).await.is_empty(),
        "the commit's writes were undone"
    );

    // The cause goes: the next attempt commits.
    app.db(|c| {
        c.batch_execute("INSERT INTO test_parents (id) VALUES ('evt_orphan')")
            .unwrap()
    })
    .await;
    eventually("evt_orphan done", move || async move {
        rows(t).await["evt_orphan"].status == "done"
    })
    .await;
    assert_eq!(children(t).await, ["evt_orphan"], "applied exactly once");
    let history = attempts(t, "evt_orphan").await;
    assert_eq!(
        history.last().and_then(|a| a.1.as_deref()),
        Some("done"),
        "{history:?}"
    );
    app.stop().await;
}

/// One worker: while its first group's finish is held inside the finishing
/// transaction (uncommitted), the worker already runs the handler of its
/// next group; the first group stays `processing` (leased) until its
/// finish commits, then both are done. Postgres: on SQLite the held
/// finish keeps the only write lock, so no claim could run meanwhile.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_takes_its_next_group_while_its_finish_is_queued() {
    let db = TestDb::new(Backend::Postgres);
    let gate = Arc::new(ApplyGate::default());
    let handler = ChildHandler {
        gated: Some(("in_first".to_owned(), Arc::clone(&gate))),
        ..ChildHandler::default()
    };
    let app = app(&db, &handler, 1).await;
    app.db(|c| {
        c.batch_execute("INSERT INTO test_parents (id) VALUES ('evt_first'), ('evt_next')")
            .unwrap()
    })
    .await;
    deliver(&app, "evt_first", "in_first").await;
    let (t, gate_ref, calls) = (&app, &gate, &handler.calls);
    eventually("the first finish held open", move || async move {
        gate_ref.is_waiting()
    })
    .await;
    deliver(t, "evt_next", "in_next").await;

    eventually("the next group's handler", move || async move {
        calls.lock().unwrap().iter().any(|k| k == "in_next")
    })
    .await;
    let now = rows(t).await;
    assert_eq!(
        now["evt_first"].status, "processing",
        "the first finish has not committed: its event is still leased"
    );
    gate.open();
    eventually("both done", move || async move {
        let rows = rows(t).await;
        rows.len() == 2 && rows.values().all(|r| r.status == "done")
    })
    .await;
    let mut applied = children(t).await;
    applied.sort();
    assert_eq!(applied, ["evt_first", "evt_next"]);
    app.stop().await;
}

/// Inserts the parents the children of `ids` need to commit.
async fn parents(app: &TestApp, ids: &[String]) {
    let values: Vec<String> = ids.iter().map(|id| format!("('{id}')")).collect();
    let sql = format!("INSERT INTO test_parents (id) VALUES {}", values.join(", "));
    app.db(move |c| c.batch_execute(&sql).unwrap()).await;
}

/// Whether an attempt of `id` ended `released` (given back at shutdown).
async fn released(app: &TestApp, id: &str) -> bool {
    attempts(app, id)
        .await
        .iter()
        .any(|a| a.1.as_deref() == Some("released"))
}

/// Every event done, each with one attempt (done, never released), each
/// applied exactly once.
async fn all_done_once(app: &TestApp, ids: &[String]) {
    let rows = rows(app).await;
    for id in ids {
        assert_eq!(rows[id].status, "done", "{:?}", rows[id]);
        let history = attempts(app, id).await;
        assert_eq!(history.len(), 1, "{id}: {history:?}");
        assert_eq!(history[0].1.as_deref(), Some("done"), "{id}: {history:?}");
    }
    let mut applied = children(app).await;
    applied.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(applied, expected, "each applied exactly once");
}

/// Shutdown waits (within the grace period) for the finishes its workers
/// already queued: a group whose finish is queued but not yet committed is
/// committed, not released as unfinished (and then lost to its own
/// finish, which finds its lease gone). The finishes of `in_held*` are
/// held uncommitted inside their transactions, one per finishing thread
/// (`group_commit::threads`: one on SQLite, two on Postgres), so
/// that the finish of `in_queued` waits in the finisher's queue, not in a
/// transaction, when the shutdown begins.
async fn shutdown_commits_the_finishes_already_queued(backend: Backend) {
    let finishing_threads = stripe_hookd::testing::queue::group_commit::threads(match backend {
        Backend::Sqlite => stripe_hookd::testing::store::Backend::Sqlite,
        Backend::Postgres => stripe_hookd::testing::store::Backend::Postgres,
    });
    let db = TestDb::new(backend);
    let gate = Arc::new(ApplyGate::default());
    let handler = ChildHandler {
        gated: Some(("in_held".to_owned(), Arc::clone(&gate))),
        hold: Some(("in_queued".to_owned(), finishing_threads)),
        ..ChildHandler::default()
    };
    let app = app(&db, &handler, 2).await;
    let mut ids = vec!["evt_queued".to_owned()];
    ids.extend((0..finishing_threads).map(|n| format!("evt_held{n}")));
    parents(&app, &ids).await;
    let (t, gate_ref, h) = (&app, &gate, &handler);

    // Claimed first, so a shutdown that did not wait would release it first.
    deliver(t, "evt_queued", "in_queued").await;
    eventually("the handler of in_queued", move || async move {
        h.calls.lock().unwrap().iter().any(|k| k == "in_queued")
    })
    .await;
    for n in 0..finishing_threads {
        deliver(t, &format!("evt_held{n}"), &format!("in_held{n}")).await;
        eventually(
            "a finish held open on each finishing thread (did their number change?)",
            move || async move { gate_ref.waiting() == n + 1 },
        )
        .await;
    }
    // in_queued's handler returns now; its finish is queued (a permit taken).
    eventually("in_queued's finish queued", move || async move {
        h.returned.load(Ordering::SeqCst) == finishing_threads + 1
            && t.runner.finishing() == finishing_threads + 1
    })
    .await;

    t.begin_stop();
    eventually(
        "the shutdown to wait for the queued finishes (or to go on without them)",
        move || async move {
            t.runner.settling() || t.has_stopped() || released(t, "evt_queued").await
        },
    )
    .await;
    assert!(
        !t.has_stopped(),
        "the shutdown ended while finishes it had queued were uncommitted"
    );
    assert!(
        !released(t, "evt_queued").await,
        "the shutdown released a group whose finish was queued: {:?}",
        attempts(t, "evt_queued").await
    );
    gate.open();
    eventually(
        "the shutdown to end",
        move || async move { t.has_stopped() },
    )
    .await;
    all_done_once(t, &ids).await;
    app.stop().await;
}

/// At most `QUEUED_FINISHES_PER_WORKER` × concurrency finishes wait at
/// once: with every finish held uncommitted, the workers run that many
/// handlers and one more each (whose finish then waits for a place), and
/// no further one until a finish commits. Postgres: on SQLite a held
/// finish keeps the only write lock, so no claim could run meanwhile and
/// the cap is never reached.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_four_finishes_per_worker_wait_at_once() {
    let concurrency = 2;
    let cap = QUEUED_FINISHES_PER_WORKER * concurrency;
    let db = TestDb::new(Backend::Postgres);
    let gate = Arc::new(ApplyGate::default());
    let handler = ChildHandler {
        gated: Some(("in_".to_owned(), Arc::clone(&gate))),
        ..ChildHandler::default()
    };
    let app = app(&db, &handler, concurrency).await;
    let ids: Vec<String> = (0..cap + concurrency + 6)
        .map(|n| format!("evt_{n:02}"))
        .collect();
    parents(&app, &ids).await;
    for id in &ids {
        deliver(&app, id, &id.replace("evt_", "in_")).await;
    }
    let (t, h) = (&app, &handler);
    eventually("the handlers of the first groups", move || async move {
        h.returned.load(Ordering::SeqCst) >= cap + concurrency
    })
    .await;
    // Handlers take no time here: without the cap the workers would go on
    // at once. The pause only decides how surely a missing cap is caught;
    // a working one passes however long it is.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = handler.calls.lock().unwrap().len();
    assert_eq!(
        started,
        cap + concurrency,
        "with every finish held, {cap} finishes queued and {concurrency} workers waiting for a place"
    );
    assert_eq!(app.runner.finishing(), cap);

    gate.open();
    let n = ids.len();
    eventually("all done", move || async move {
        let rows = rows(t).await;
        rows.len() == n && rows.values().all(|r| r.status == "done")
    })
    .await;
    all_done_once(&app, &ids).await;
    app.stop().await;
}
