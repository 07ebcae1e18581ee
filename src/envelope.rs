//! The parts of a Stripe event envelope that the outbox indexes, and the
//! outbox row built from them. Pure: used by the intake (verified
//! deliveries) and by catch-up (events listed from the API).
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
    #[error("Thin events (object \"v2.core.event\") are not supported: configure this endpoint with a snapshot payload")]
    ThinEvent,
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

/// Parses the envelope of a (snapshot) Stripe event.
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
        Some("v2.core.event") => return Err(EnvelopeError::ThinEvent),
        Some(_) => return Err(EnvelopeError::Invalid("\"object\" is not \"event\"")),
        None => return Err(EnvelopeError::Invalid("\"object\" is missing")),
    }
    let id = raw.id.ok_or(EnvelopeError::Invalid("\"id\" is missing"))?;
    if !id.starts_with("evt_") || id.len() > MAX_ID_LEN {
        return Err(EnvelopeError::Invalid("\"id\" is not an event id (evt_…)"));
    }
    let event_type = raw
        .event_type
        .filter(|t| !t.is_empty() && t.len() <= MAX_ID_LEN)
        .ok_or(EnvelopeError::Invalid("\"type\" is missing or empty"))?;
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

impl Envelope {
    /// The outbox row for this event: `payload` is the raw JSON as received.
    pub fn into_new_event(
        self,
        endpoint: &str,
        payload: String,
        headers: String,
        secret_index: i32,
        received_at: crate::store::EpochMs,
        priority: i32,
    ) -> crate::store::outbox::NewEvent {
        crate::store::outbox::NewEvent {
            object_key: self.object_id.clone().unwrap_or_else(|| self.id.clone()),
            event_id: self.id,
            endpoint: endpoint.to_owned(),
            event_type: self.event_type,
            api_version: self.api_version,
            livemode: self.livemode,
            account: self.account,
            object_type: self.object_type,
            object_id: self.object_id,
            stripe_created: self.created,
            received_at,
            queued_at: received_at,
            payload,
            headers,
            secret_index,
            next_attempt_at: received_at,
            priority,
        }
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
        assert_eq!(
            parse(br#"{"id":"evt_1","object":"v2.core.event"}"#),
            Err(EnvelopeError::ThinEvent)
        );
        assert!(matches!(
            parse(br#"{"id":"evt_1","object":"event","type":"x","created":"soon","livemode":false,"data":{"object":{}}}"#),
            Err(EnvelopeError::Invalid(_))
        ));
    }
}
