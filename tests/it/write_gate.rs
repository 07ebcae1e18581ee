//! Every write that can run while the intake is busy passes SQLite's write
//! gate (src/store/gate.rs): here the ones that used to be single
//! autocommit statements, outside it — a destination's pause and resume
//! (forwarder on a 410, admin API, CLI) and the inspector's sessions.

use stripe_hookd::testing::admin::ui::sessions::{self, Session};
use stripe_hookd::testing::store::deliveries::pauses;
use stripe_hookd::testing::store::DbConnection;

use crate::harness::*;

/// The gate's turns taken by `write`, and what it returned.
fn turns_of<T>(c: &mut DbConnection, write: impl FnOnce(&mut DbConnection) -> T) -> (u64, T) {
    let before = c.write_gate_turns().expect("a SQLite gate");
    let result = write(c);
    (
        c.write_gate_turns().expect("a SQLite gate") - before,
        result,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_and_sessions_wait_their_turn_at_the_write_gate() {
    let db = TestDb::new(Backend::Sqlite);
    // Runner off, no destinations, nothing delivered: no other writer.
    let app = TestApp::spawn(&db).await;
    app.db(|c| {
        let now = now();
        let (turns, newly) = turns_of(c, |c| pauses::pause(c, "app", now, "test").unwrap());
        assert!(newly);
        assert_eq!(turns, 1, "pause");
        let (turns, was) = turns_of(c, |c| pauses::resume(c, "app", now).unwrap());
        assert!(was);
        assert_eq!(turns, 1, "resume");

        let session = Session {
            id_hash: sessions::hash_id("session"),
            csrf_token: "csrf".to_owned(),
            created_at: now,
            expires_at: now + 3_600_000,
            token_fingerprint: "fp".to_owned(),
        };
        let (turns, ()) = turns_of(c, |c| sessions::create(c, &session, now).unwrap());
        assert_eq!(
            turns, 1,
            "a session stored (and the expired ones dropped) in one turn"
        );
        assert!(sessions::find(c, &session.id_hash, "fp", now)
            .unwrap()
            .is_some());
        let (turns, existed) = turns_of(c, |c| sessions::delete(c, &session.id_hash).unwrap());
        assert!(existed);
        assert_eq!(turns, 1, "sign-out");
    })
    .await;
    app.stop().await;
}
