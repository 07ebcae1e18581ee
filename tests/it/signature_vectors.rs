//! Stripe's signature test vectors (tests/data/signature-vectors.json,
//! cross-checked against the official stripe-python verifier) through the
//! daemon's verifier and envelope parser.

use stripe_hookd::testing::intake::signature;
use stripe_hookd::testing::stripe::envelope;

#[test]
fn every_vector_gets_its_expected_verdict() {
    let raw = include_str!("../data/signature-vectors.json");
    let doc: serde_json::Value = serde_json::from_str(raw).expect("vectors parse");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 20);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let header = case["header"].as_str().expect("header");
        let body = case["body"].as_str().expect("body");
        let secrets: Vec<&str> = case["secrets"]
            .as_array()
            .expect("secrets")
            .iter()
            .map(|s| s.as_str().expect("secret"))
            .collect();
        let now = case["now"].as_i64().expect("now");
        let tolerance = case["tolerance"].as_u64().expect("tolerance");
        let expect = case["expect"].as_str().expect("expect");
        let reason = case["reason"].as_str().expect("reason");

        let header = (!header.is_empty()).then_some(header);
        let verdict = signature::verify(header, body.as_bytes(), &secrets, now, tolerance)
            .map_err(|e| e.reason().to_owned())
            .and_then(|_| {
                envelope::parse(body.as_bytes())
                    .map(|_| ())
                    .map_err(|_| "not_an_event".to_owned())
            });
        match expect {
            "accept" => assert_eq!(verdict, Ok(()), "{name}"),
            _ => {
                let expected = match reason.split_whitespace().next().unwrap_or("") {
                    "missing" => "missing_signature",
                    "unparsable" => "unparsable_signature",
                    "no_v1" => "no_v1_signature",
                    "no_match" => "signature_mismatch",
                    "too_old" => "timestamp_too_old",
                    "too_new" => "timestamp_in_future",
                    "not" => "not_an_event",
                    other => panic!("{name}: unknown reason {other}"),
                };
                assert_eq!(verdict, Err(expected.to_owned()), "{name}");
            }
        }
    }
}
