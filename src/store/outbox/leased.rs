//! What a claim hands out: the leased events, grouped by object, and the
//! advisory-lock class of objects (claim, finish and release share it).

use diesel::prelude::*;

use crate::store::schema::webhook_events;

/// The first key of the two-key advisory locks on objects ("hk" in ASCII):
/// the two-key space does not overlap the one-key migration lock.
#[cfg(feature = "postgres")]
pub(crate) const OBJECT_LOCK_CLASS: i32 = 0x686b;

/// One claimed event, as a handler sees it.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct ClaimedEvent {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub api_version: Option<String>,
    pub livemode: bool,
    pub account: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub object_key: String,
    pub stripe_created: i64,
    pub received_at: i64,
    pub queued_at: i64,
    pub payload: String,
    pub attempts: i32,
}

/// The events of one object claimed together: one handler call serves all.
#[derive(Debug, Clone)]
pub struct EventGroup {
    /// The object key (`object_id`, or the event id).
    pub key: String,
    /// The lease token of the claim (the groups of one claim share it).
    pub token: String,
    /// Oldest first.
    pub events: Vec<ClaimedEvent>,
}

impl EventGroup {
    /// The claimed `events` (sorted by id) as one group per object, in the
    /// order of their oldest event, all under the claim's `token`.
    pub(super) fn by_object(events: Vec<ClaimedEvent>, token: &str) -> Vec<EventGroup> {
        let mut groups: Vec<EventGroup> = Vec::new();
        for event in events {
            match groups.iter_mut().find(|g| g.key == event.object_key) {
                Some(group) => group.events.push(event),
                None => groups.push(EventGroup {
                    key: event.object_key.clone(),
                    token: token.to_owned(),
                    events: vec![event],
                }),
            }
        }
        groups
    }
}

/// What one claim attempt found.
pub(super) enum Claimed {
    Groups(Vec<EventGroup>),
    Nothing,
    /// There was work, but concurrent claims held every key.
    Contended,
}
