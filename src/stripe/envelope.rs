//! The parts of a Stripe event envelope that the outbox indexes, and the
//! outbox row built from them. Pure: used by the intake (verified
//! deliveries) and by catch-up (events listed from the API).
//!
//! Both styles of event are read here, told apart by `object`:
//!
//! - snapshot events (`"object":"event"`): `created` is a unix timestamp and
//!   `data.object` is the resource (its `id` and `object` are indexed);
//! - thin events (`"object":"v2.core.event"`, event destinations): `created`
//!   is an RFC 3339 string, there is no `data.object` but a `related_object
//!   {id, type, url}` (indexed as the object), `context` names the connected
//!   account (indexed as the account) and there is no `api_version` (thin
//!   payloads are unversioned). See docs/thin-events.md.
//!
//! Only what routing and inspection need is parsed here; the raw body is
//! stored untouched beside it.

use serde::Deserialize;

/// Longest event id we accept (Stripe's are ~30 characters).
const MAX_ID_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub livemode: bool,
    pub api_version: Option<String>,
    pub account: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
}

/// Why a verified body is not a Stripe event we can store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("The body is not a Stripe event: {0}")]
    NotJson(String),
    #[error("The body is not a Stripe event: {0}")]
    Invalid(&'static str),
}

/// Which style of event a body is.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `"object":"event"`: the resource is in `data.object`.
    Snapshot,
    /// `"object":"v2.core.event"`: the resource is named by `related_object`.
    Thin,
}

#[derive(Deserialize)]
struct RawEnvelope {
    id: Option<String>,
    object: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    created: Option<serde_json::Value>,
    livemode: Option<bool>,
    api_version: Option<String>,
    account: Option<String>,
    data: Option<RawData>,
    /// Thin events: the connected account (`acct_…`), or null.
    context: Option<String>,
    /// Thin events: the resource the event is about.
    related_object: Option<RawRelated>,
}

#[derive(Deserialize)]
struct RawRelated {
    id: Option<String>,
    #[serde(rename = "type")]
    object_type: Option<String>,
}

#[derive(Deserialize)]
struct RawData {
    object: Option<RawObject>,
}

#[derive(Deserialize)]
struct RawObject {
    id: Option<String>,
    object: Option<String>,
}

/// The style of a stored or listed event's JSON, by its `object`.
#[cfg(test)]
pub fn style_of(payload: &str) -> Style {
    #[derive(Deserialize)]
    struct ObjectOnly<'a> {
        #[serde(borrow)]
        object: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_str::<ObjectOnly<'_>>(payload) {
        Ok(ObjectOnly {
            object: Some(object),
        }) if object == THIN_OBJECT => Style::Thin,
        _ => Style::Snapshot,
    }
}

/// The `object` of a thin event.
pub(crate) const THIN_OBJECT: &str = "v2.core.event";

/// Parses the envelope of a Stripe event of either style.
pub fn parse(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    let raw: RawEnvelope = serde_json::from_slice(body).map_err(|e| {
        EnvelopeError::NotJson(format!(
            "invalid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    match raw.object.as_deref() {
        Some("event") => {}
        Some(THIN_OBJECT) => return parse_thin(raw),
        Some(_) => {
            return Err(EnvelopeError::Invalid(
                "\"object\" is neither \"event\" nor \"v2.core.event\"",
            ))
        }
        None => return Err(EnvelopeError::Invalid("\"object\" is missing")),
    }
    let (id, event_type) = id_and_type(raw.id, raw.event_type)?;
    let created = raw
        .created
        .and_then(|c| c.as_i64())
        .filter(|c| *c >= 0)
        .ok_or(EnvelopeError::Invalid(
            "\"created\" is not a unix timestamp",
        ))?;
    let livemode = raw
        .livemode
        .ok_or(EnvelopeError::Invalid("\"livemode\" is missing"))?;
    let object = raw
        .data
        .ok_or(EnvelopeError::Invalid("\"data\" is missing"))?
        .object
        .ok_or(EnvelopeError::Invalid("\"data.object\" is missing"))?;
    Ok(Envelope {
        id,
        event_type,
        created,
        livemode,
        api_version: raw.api_version,
        account: raw.account,
        object_type: object.object,
        object_id: object.id,
    })
}

fn id_and_type(
    id: Option<String>,
    event_type: Option<String>,
) -> Result<(String, String), EnvelopeError> {
    let id = id.ok_or(EnvelopeError::Invalid("\"id\" is missing"))?;
    if !id.starts_with("evt_") || id.len() > MAX_ID_LEN {
        return Err(EnvelopeError::Invalid("\"id\" is not an event id (evt_…)"));
    }
    let event_type = event_type
        .filter(|t| !t.is_empty() && t.len() <= MAX_ID_LEN)
        .ok_or(EnvelopeError::Invalid("\"type\" is missing or empty"))?;
    Ok((id, event_type))
}

/// A thin event (`"object":"v2.core.event"`). `created` (RFC 3339) is
/// stored as unix seconds, like a snapshot event's, so both styles sort
/// together; `context` is the connected account; `related_object` is the
/// object (absent on events about no object, such as Stripe's health
/// alerts, which are then keyed by their own id).
fn parse_thin(raw: RawEnvelope) -> Result<Envelope, EnvelopeError> {
    let (id, event_type) = id_and_type(raw.id, raw.event_type)?;
    let created = raw
        .created
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(rfc3339_secs)
        .ok_or(EnvelopeError::Invalid(
            "\"created\" is not an RFC 3339 time (thin event)",
        ))?;
    let livemode = raw
        .livemode
        .ok_or(EnvelopeError::Invalid("\"livemode\" is missing"))?;
    let (object_type, object_id) = match raw.related_object {
        Some(related) => {
            let id = related
                .id
                .filter(|i| !i.is_empty() && i.len() <= MAX_ID_LEN);
            let object_type = related.object_type.filter(|t| !t.is_empty());
            if id.is_none() || object_type.is_none() {
                return Err(EnvelopeError::Invalid(
                    "\"related_object\" has no \"id\" or \"type\"",
                ));
            }
            (object_type, id)
        }
        None => (None, None),
    };
    Ok(Envelope {
        id,
        event_type,
        created,
        livemode,
        api_version: None,
        account: raw.context.filter(|c| !c.is_empty()),
        object_type,
        object_id,
    })
}

/// `2026-11-23T16:00:00.000Z` → unix seconds (Stripe writes UTC, `Z`).
pub(crate) fn rfc3339_secs(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

impl Envelope {
    /// The outbox's ordering key: the object's id, or the event's own id
    /// when it is about no object.
    pub fn object_key(&self) -> String {
        self.object_id.clone().unwrap_or_else(|| self.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripes_example_event() {
        let body = br#"{"id":"evt_1","object":"event","api_version":"2025-03-31.basil","created":1700000000,
            "livemode":false,"type":"customer.subscription.updated","account":"acct_1",
            "data":{"object":{"id":"sub_1","object":"subscription"},"previous_attributes":{}}}"#;
        let env = parse(body).expect("valid event");
        assert_eq!(env.id, "evt_1");
        assert_eq!(env.event_type, "customer.subscription.updated");
        assert_eq!(env.created, 1_700_000_000);
        assert_eq!(env.object_type.as_deref(), Some("subscription"));
        assert_eq!(env.object_id.as_deref(), Some("sub_1"));
        assert_eq!(env.account.as_deref(), Some("acct_1"));
    }

    #[test]
    fn refuses_what_is_not_an_event() {
        assert!(matches!(parse(b""), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(parse(b"[]"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(
            parse(br#"{"id":"cus_1","object":"customer"}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"id":"evt_1","object":"v2.core.event"}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"id":"evt_1","object":"v2.core.event","type":"v1.customer.updated","created":1700000000,"livemode":false}"#),
            Err(EnvelopeError::Invalid(_))
        ));
        assert!(matches!(
            parse(br#"{"id":"evt_1","object":"event","type":"x","created":"soon","livemode":false,"data":{"object":{}}}"#),
            Err(EnvelopeError::Invalid(_))
        ));
    }

    #[test]
    fn parses_a_thin_event_keyed_by_its_related_object() {
        let body = br#"{"id":"evt_test_65R","object":"v2.core.event","type":"v1.customer.subscription.updated",
            "livemode":false,"created":"2026-11-23T16:00:00.000Z","context":"acct_9",
            "related_object":{"id":"sub_1","type":"subscription","url":"/v1/subscriptions/sub_1"},
            "reason":{"type":"request","request":{"id":"req_1","idempotency_key":null}}}"#;
        let env = parse(body).expect("valid thin event");
        assert_eq!(env.event_type, "v1.customer.subscription.updated");
        assert_eq!(env.created, 1_795_449_600);
        assert_eq!(env.api_version, None);
        assert_eq!(env.account.as_deref(), Some("acct_9"));
        assert_eq!(env.object_type.as_deref(), Some("subscription"));
        assert_eq!(env.object_id.as_deref(), Some("sub_1"));
        assert_eq!(style_of(std::str::from_utf8(body).unwrap()), Style::Thin);
        assert_eq!(env.object_key(), "sub_1");
    }

    #[test]
    fn a_thin_event_about_no_object_is_keyed_by_its_id() {
        let body = br#"{"id":"evt_2","object":"v2.core.event","type":"v2.core.health.event_generation_failure.resolved",
            "livemode":true,"created":"2026-11-23T16:00:00Z","context":null}"#;
        let env = parse(body).expect("valid thin event");
        assert_eq!(env.object_id, None);
        assert_eq!(env.account, None);
        assert_eq!(env.object_key(), "evt_2");
        assert!(matches!(
            parse(br#"{"id":"evt_3","object":"v2.core.event","type":"v1.customer.updated","created":"2026-11-23T16:00:00Z","livemode":false,"related_object":{"url":"/v1/customers/cus_1"}}"#),
            Err(EnvelopeError::Invalid(_))
        ));
    }
}
