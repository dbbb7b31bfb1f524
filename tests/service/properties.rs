//! Property tests through the router: arbitrary JSON and arbitrary bytes
//! never produce a 5xx or a panic, and valid random requests always produce
//! a certificate that parses, verifies and says what was asked.

use crate::common;

use axum::http::StatusCode;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use session_ca::verify_client_certificate;
use x509_parser::prelude::*;

/// One runtime and one signer for all cases: a CA per case would only add
/// key generation to every case.
fn shared() -> &'static (tokio::runtime::Runtime, TestService) {
    static SHARED: std::sync::OnceLock<(tokio::runtime::Runtime, TestService)> =
        std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let service = runtime.block_on(TestService::new());
        (runtime, service)
    })
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Field names and values the service knows, so random objects reach deep code paths.
        prop_oneof![
            Just("default"),
            Just("plain"),
            Just("strict"),
            Just("ecdsa-p256"),
            Just("ed25519"),
            Just(SESSION_ID),
            Just("agent"),
            Just("geo"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        let key = prop_oneof![
            Just("profile".to_owned()),
            Just("session_id".to_owned()),
            Just("transaction_id".to_owned()),
            Just("ttl_seconds".to_owned()),
            Just("key_type".to_owned()),
            Just("claims".to_owned()),
            Just("agent".to_owned()),
            Just("geo".to_owned()),
            Just("csr".to_owned()),
            Just("pkcs12".to_owned()),
            ".{0,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn check_no_server_error(reply: &Reply, shown: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !reply.status.is_server_error(),
        "{shown} -> {}",
        reply.status
    );
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| TestCaseError::fail(format!("{shown}: response is not JSON: {e}")))?;
    if reply.status == StatusCode::CREATED {
        prop_assert!(body["certificate"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE")));
    } else {
        prop_assert!(
            body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty()),
            "{shown}: {body}"
        );
        prop_assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{shown}: {body}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_gives_a_server_error(value in arbitrary_json()) {
        let (rt, service) = shared();
        let reply = rt.block_on(issue_json(&service.state, value.clone()));
        check_no_server_error(&reply, &value.to_string())?;
    }

    #[test]
    fn arbitrary_bytes_never_give_a_server_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (rt, service) = shared();
        let reply = rt.block_on(issue(&service.state, bytes.clone()));
        check_no_server_error(&reply, &format!("{bytes:02x?}"))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_requests_always_give_a_verifying_certificate(
        key_type in prop_oneof![Just("ecdsa-p256"), Just("ecdsa-p384"), Just("ed25519")],
        ttl in 1u64..=900,
        session in any::<[u8; 16]>(),
        transaction in "[A-Za-z0-9 ._:/-]{1,64}",
        agent in "\\PC{0,64}",
        lat in -90.0f64..90.0,
    ) {
        let session_id = uuid::Builder::from_random_bytes(session).into_uuid().to_string();
        let (rt, service) = shared();
        let request = json!({
            "session_id": session_id, "transaction_id": transaction, "ttl_seconds": ttl,
            "key_type": key_type, "claims": {"agent": agent, "geo": {"lat": lat}},
        });
        let reply = rt.block_on(issue_json(&service.state, request.clone()));
        prop_assert_eq!(reply.status, StatusCode::CREATED, "{} -> {}", request, String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        let (_, pem) = x509_parser::pem::parse_x509_pem(body["certificate"].as_str().unwrap().as_bytes()).unwrap();
        let chain = chain_of(&body);
        let verified = verify_client_certificate(&pem.contents.clone().into(), chain.as_bytes(), t0());
        prop_assert!(verified.is_ok(), "{:?}", verified);
        let (_, cert) = X509Certificate::from_der(&pem.contents).unwrap();
        prop_assert_eq!(cert.validity().not_after.to_datetime(), t0() + ::time::Duration::seconds(ttl as i64));
        let claim = |oid: &str| cert.extensions().iter().find(|e| e.oid.to_id_string() == oid)
            .map(|e| session_ca_verify::decode_claim_value(e.value).unwrap());
        prop_assert_eq!(claim("1.3.6.1.4.1.32473.1.1"), Some(session_id));
        prop_assert_eq!(claim("1.3.6.1.4.1.32473.1.2"), Some(transaction));
        prop_assert_eq!(claim("1.3.6.1.4.1.32473.1.100"), Some(agent));
        let geo: Value = serde_json::from_str(&claim("1.3.6.1.4.1.32473.1.101").unwrap()).unwrap();
        prop_assert_eq!(geo["lat"].as_f64(), Some(lat));
    }
}
