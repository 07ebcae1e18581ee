//! Migrations over data already stored: what an upgrade finds in a
//! database written by the version before.

use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use stripe_hookd::testing::store::deliveries;

use crate::backend_tests;
use crate::harness::{open_store, Backend, TestDb};

backend_tests!(a_delivery_queued_before_its_body_moved_keeps_its_body);

/// Applies this backend's migrations up to, not including, `version`
/// (e.g. "20261201000001").
fn migrate_before<C>(conn: &mut C, folder: &str, version: &str)
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let dir = format!("{}/migrations/{folder}", env!("CARGO_MANIFEST_DIR"));
    let migrations = FileBasedMigrations::from_path(&dir).unwrap();
    loop {
        let pending = conn.pending_migrations(migrations.clone()).unwrap();
        let next = pending.first().expect("the migration under test exists");
        if next.name().version().to_string() == version {
            break;
        }
        conn.run_next_migration(migrations.clone()).unwrap();
    }
}

/// A delivery recorded (body inside its row) by the version before
/// `delivery_payloads`: after the upgrade it is read, and so sent, with the
/// same body byte for byte, and one body row per delivery.
async fn a_delivery_queued_before_its_body_moved_keeps_its_body(backend: Backend) {
    let db = TestDb::new(backend);
    let url = db.url.clone();
    let body = r#"{"id":"evt_old","object":"event","type":"customer.updated","data":{"object":{"id":"cus_1","name":"Zoë \"quoted\""}}}"#;
    let delivery_id = deliveries::delivery_id("app", "evt_old");
    let insert = format!(
        "INSERT INTO deliveries (delivery_id, destination, event_id, event_type, object_key, payload, next_attempt_at, created_at) \
         VALUES ('{delivery_id}', 'app', 'evt_old', 'customer.updated', 'customer:cus_1', '{}', 1, 1)",
        body.replace('\'', "''")
    );
    tokio::task::spawn_blocking(move || {
        match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                migrate_before(&mut c, "sqlite", "20261201000001");
                diesel::sql_query(&insert).execute(&mut c).unwrap();
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                let mut c = diesel::PgConnection::establish(&url).unwrap();
                migrate_before(&mut c, "postgres", "20261201000001");
                diesel::sql_query(&insert).execute(&mut c).unwrap();
            }
            #[cfg(not(feature = "postgres"))]
            Backend::Postgres => {
                unreachable!("postgres tests are only generated with the postgres feature")
            }
        }
        let store = open_store(&url);
        let applied = store.migrate().unwrap();
        assert_eq!(
            applied.first().map(String::as_str),
            Some("20261201000001"),
            "the migration under test first: {applied:?}"
        );
        let mut conn = store.conn().unwrap();
        let row = deliveries::get(&mut conn, &delivery_id).unwrap().unwrap();
        assert_eq!(row.payload.as_deref(), Some(body));
        assert_eq!(row.status, "pending");
        assert_eq!(deliveries::list(&mut conn).unwrap().len(), 1);
    })
    .await
    .unwrap();
}
