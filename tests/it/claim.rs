//! The claim itself (`store::outbox::claim::claim`), on both backends: which events
//! of an object a claim takes.

use stripe_hookd::testing::store::outbox::claim;
use stripe_hookd::testing::store::outbox::{self, NewEvent};
use stripe_hookd::testing::store::{now_ms, EpochMs};

use crate::backend_tests;
use crate::harness::{on_migrated_db, stored_event, Backend};

backend_tests!(a_claim_takes_only_the_due_events_of_an_object);

fn event(id: &str, object: &str, now: i64, due: i64) -> NewEvent {
    NewEvent {
        next_attempt_at: EpochMs(due),
        ..stored_event(id, object, now)
    }
}

/// An object with a retry waiting out its backoff and a new event due now:
/// the claim takes the new event and leaves the retry for its time (the
/// backoff holds even when the object is claimed for another event).
async fn a_claim_takes_only_the_due_events_of_an_object(backend: Backend) {
    on_migrated_db(backend, move |mut conn| {
        let now = now_ms();
        let events = [
            event("evt_backoff", "sub_x", now - 10_000, now + 3_600_000),
            event("evt_due", "sub_x", now, now),
        ];
        outbox::insert_batch(&mut conn, &events).unwrap();
        let mut token = || "test-worker/1".to_owned();
        let groups = claim::claim(&mut conn, "test-worker", &mut token, now, 60_000, 10).unwrap();
        assert_eq!(groups.len(), 1);
        let ids: Vec<&str> = groups[0]
            .events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect();
        assert_eq!(ids, ["evt_due"], "the retry in backoff was taken early");
        let backoff = outbox::get(&mut conn, "evt_backoff").unwrap().unwrap();
        assert_eq!(backoff.status.as_str(), "pending");
        assert_eq!(backoff.attempts, 0);
    })
    .await;
}
