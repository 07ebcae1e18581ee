//! Stripe-Signature verification: a small pure function, no I/O, no clock.
//!
//! Stripe signs `"{t}.{raw_body}"` with HMAC-SHA256, keyed by the whole
//! `whsec_…` string, and sends `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`.
//! We accept when any `v1` matches under any of the endpoint's secrets
//! (secrets roll), compared in constant time; `v0` and unknown schemes are
//! ignored; a timestamp further than the tolerance in the past *or* the future
//! is refused (stricter than the SDKs, which only refuse old ones).

use hmac::Mac;

use crate::util::signing::mac;

/// The only live signature scheme.
pub(crate) const EXPECTED_SCHEME: &str = "v1";

/// Why a delivery's signature was refused. `Display` uses the words of
/// Stripe's own SDKs, so that an operator searching the message finds the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("No stripe-signature header value was provided.")]
    MissingHeader,
    #[error("Unable to extract timestamp and signatures from header")]
    Unparsable,
    #[error("No signatures found with expected scheme")]
    NoV1,
    #[error("No signatures found matching the expected signature for payload. Are you passing the raw request body you received from Stripe?")]
    NoMatch,
    #[error("Timestamp outside the tolerance zone ({timestamp})")]
    TooOld { timestamp: i64 },
    #[error("Timestamp outside the tolerance zone ({timestamp}, in the future)")]
    TooNew { timestamp: i64 },
}

impl SignatureError {
    /// Stable machine-readable reason, used in responses, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader => "missing_signature",
            SignatureError::Unparsable => "unparsable_signature",
            SignatureError::NoV1 => "no_v1_signature",
            SignatureError::NoMatch => "signature_mismatch",
            SignatureError::TooOld { .. } => "timestamp_too_old",
            SignatureError::TooNew { .. } => "timestamp_in_future",
        }
    }
}

/// A verified delivery: its signed timestamp and which secret matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    /// Index into the endpoint's secrets (0 = the first configured).
    pub secret_index: usize,
}

/// The parsed header: the timestamp and the decodable `v1` signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedHeader {
    pub timestamp: i64,
    /// Raw `v1` values as sent (including non-hex ones, which never match).
    pub v1: Vec<String>,
}

/// Parses `t=…,v1=…,…`. Unknown keys are ignored; a missing or non-integer
/// `t` makes the header unparsable.
pub(crate) fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => timestamp = value.trim().parse::<i64>().ok(),
            EXPECTED_SCHEME => v1.push(value.trim().to_owned()),
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) => Ok(ParsedHeader { timestamp, v1 }),
        None => Err(SignatureError::Unparsable),
    }
}

/// Verifies a `Stripe-Signature` header against the exact bytes received.
///
/// `now` is the verifier's clock in unix seconds; `tolerance_secs` must be
/// positive (configuration refuses 0, so "off" can never happen silently).
pub fn verify<S: AsRef<[u8]>>(
    header: Option<&str>,
    body: &[u8],
    secrets: &[S],
    now: i64,
    tolerance_secs: u64,
) -> Result<Verified, SignatureError> {
    let parsed = parse_header(header.unwrap_or(""))?;
    if parsed.v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    let candidates: Vec<Vec<u8>> = parsed
        .v1
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .collect();
    let secret_index = secrets
        .iter()
        .position(|secret| {
            let expected = mac(secret.as_ref(), parsed.timestamp, body);
            candidates
                .iter()
                .any(|candidate| expected.clone().verify_slice(candidate).is_ok())
        })
        .ok_or(SignatureError::NoMatch)?;
    let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
    if parsed.timestamp < now.saturating_sub(tolerance) {
        return Err(SignatureError::TooOld {
            timestamp: parsed.timestamp,
        });
    }
    if parsed.timestamp > now.saturating_add(tolerance) {
        return Err(SignatureError::TooNew {
            timestamp: parsed.timestamp,
        });
    }
    Ok(Verified {
        timestamp: parsed.timestamp,
        secret_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::signing::sign;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test_secret_one";
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;

    #[test]
    fn accepts_its_own_signature_and_reports_the_secret() {
        let header = format!("t=1000,v1={}", sign(SECRET.as_bytes(), 1000, BODY));
        let ok = verify(Some(&header), BODY, &["whsec_other", SECRET], 1000, 300);
        assert_eq!(
            ok,
            Ok(Verified {
                timestamp: 1000,
                secret_index: 1
            })
        );
    }

    #[test]
    fn signature_is_checked_before_the_clock() {
        // As in the SDKs: a wrong signature is reported as such even when old.
        let header = "t=1,v1=00";
        assert_eq!(
            verify(Some(header), BODY, &[SECRET], 100_000, 300),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn messages_are_the_sdk_words() {
        assert_eq!(
            SignatureError::NoMatch.to_string(),
            "No signatures found matching the expected signature for payload. Are you passing the raw request body you received from Stripe?"
        );
        assert_eq!(
            verify::<&str>(None, BODY, &[SECRET], 0, 300)
                .unwrap_err()
                .to_string(),
            "No stripe-signature header value was provided."
        );
    }

    proptest! {
        #[test]
        fn random_headers_never_panic_and_never_verify(
            header in ".{0,200}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            now in any::<i64>(),
            tolerance in any::<u64>(),
        ) {
            // Without the secret, an arbitrary header cannot verify.
            prop_assert!(verify(Some(&header), &body, &[SECRET], now, tolerance).is_err());
        }

        #[test]
        fn structured_headers_without_the_secret_never_verify(
            t in any::<i64>(),
            sigs in proptest::collection::vec("[0-9a-f]{64}", 0..4),
            v0 in proptest::option::of("[0-9a-f]{64}"),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut header = format!("t={t}");
            for s in &sigs { header.push_str(&format!(",v1={s}")); }
            if let Some(v0) = v0 { header.push_str(&format!(",v0={v0}")); }
            prop_assert!(verify(Some(&header), &body, &[SECRET], t, 300).is_err());
        }

        #[test]
        fn signed_with_another_secret_never_verifies(
            other in "whsec_[a-zA-Z0-9]{1,40}",
            body in proptest::collection::vec(any::<u8>(), 0..256),
            t in 0i64..4_000_000_000,
        ) {
            prop_assume!(other != SECRET);
            let header = format!("t={t},v1={}", sign(other.as_bytes(), t, &body));
            prop_assert_eq!(verify(Some(&header), &body, &[SECRET], t, 300), Err(SignatureError::NoMatch));
            // ... and the same header verifies under the secret that made it.
            prop_assert!(verify(Some(&header), &body, &[other.as_str()], t, 300).is_ok());
        }

        #[test]
        fn any_change_to_the_body_breaks_the_signature(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            flip in any::<usize>(),
        ) {
            let header = format!("t=5,v1={}", sign(SECRET.as_bytes(), 5, &body));
            let mut tampered = body.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 0x01;
            prop_assert_eq!(verify(Some(&header), &tampered, &[SECRET], 5, 300), Err(SignatureError::NoMatch));
        }
    }
}
