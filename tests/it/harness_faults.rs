//! Faults that tests switch on and off in the database, checked: a
//! statement that failed (the database busy on a loaded machine) is tried
//! again until the fault is really there or really gone, never ignored.

use std::time::Duration;

use diesel::prelude::*;
use proptest::test_runner::TestCaseError;
use stripe_hookd::testing::store::with_conn;

use crate::harness::{Backend, TestApp};

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Whether the trigger refusing intake writes ([`crate::intake::refuse_inserts_sql`]) is there.
fn refusing(
    c: &mut stripe_hookd::testing::store::DbConnection,
    backend: Backend,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = match backend {
        Backend::Sqlite => "SELECT CAST(count(*) AS BIGINT) AS n FROM sqlite_master WHERE type = 'trigger' AND name = 'hookd_test_refuse'",
        Backend::Postgres => "SELECT CAST(count(*) AS BIGINT) AS n FROM pg_trigger WHERE tgname = 'hookd_test_refuse'",
    };
    let count: Count = with_conn!(c, c => diesel::sql_query(sql).get_result(c))?;
    Ok(count.n > 0)
}

/// Runs `sql` until the refusing trigger is there (`want`) or gone, and
/// checks it: a statement that failed (the database busy on a loaded
/// machine) is tried again, never ignored — a trigger left behind would
/// refuse every later delivery of the run, one installed by halves would
/// leave the fault out. Gives up after a generous deadline.
async fn set_refusing(
    app: &TestApp,
    backend: Backend,
    sql: &'static str,
    want: bool,
) -> Result<(), TestCaseError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outcome = app
            .db(move |c| {
                // The statement's own error is the answer only if the check disagrees.
                let ran = c.batch_execute(sql).map_err(|e| e.to_string());
                match refusing(c, backend) {
                    Ok(now) if now == want => Ok(()),
                    Ok(_) => Err(ran.err().unwrap_or_else(|| "no effect".into())),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(fail(format!(
                    "the trigger refusing intake writes could not be {}: {e}",
                    if want { "installed" } else { "dropped" }
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The database refuses intake writes from now on (503s).
pub(crate) async fn refuse_inserts(app: &TestApp, backend: Backend) -> Result<(), TestCaseError> {
    let sql = crate::intake::refuse_inserts_sql(backend);
    set_refusing(app, backend, sql, true).await
}

/// The database takes intake writes again; nothing happens if it did.
pub(crate) async fn accept_inserts(app: &TestApp, backend: Backend) -> Result<(), TestCaseError> {
    let sql = match backend {
        Backend::Sqlite => "DROP TRIGGER IF EXISTS hookd_test_refuse;",
        Backend::Postgres => "DROP TRIGGER IF EXISTS hookd_test_refuse ON webhook_events; DROP FUNCTION IF EXISTS hookd_test_refuse();",
    };
    set_refusing(app, backend, sql, false).await
}
