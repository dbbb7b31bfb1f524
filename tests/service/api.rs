//! The HTTP API through `app().oneshot(...)`: every route, every error code in
//! the OpenAPI spec, and the certificate profile of DESIGN.md, checked by
//! parsing the certificate and by rustls-webpki.

use crate::common;

use std::collections::BTreeSet;

use ::time::format_description::well_known::Rfc3339;
use ::time::{Duration, OffsetDateTime};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use serde_json::{json, Value};
use session_ca::verify_client_certificate;
use session_ca::KeyType;
use x509_parser::prelude::*;

fn parse_time(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

fn cert_der(reply: &Value) -> Vec<u8> {
    let pem = reply["certificate"].as_str().unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    pem.contents
}

#[tokio::test]
async fn issues_a_certificate_per_the_profile_for_every_key_type() {
    for ca_key in KeyType::ALL {
        let service = TestService::with(ca_key, false, t0() - Duration::days(1), 365, t0()).await;
        for key_type in KeyType::ALL {
            let reply = issue_json(
                &service.state,
                json!({
                    "session_id": SESSION_ID,
                    "transaction_id": "tx-2018-11-08-0001",
                    "key_type": key_type.as_str(),
                    "claims": {"agent": "iOS Agent String", "geo": {"lat": "52.15", "lon": "4.49"}},
                    "csr": null,
                    "pkcs12": false
                }),
            )
            .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
            assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
            let body = reply.json();
            check_certificate(&service, &body, key_type);
        }
    }
}

/// The one extension with `oid`; panics on duplicates (RFC 5280 §4.2).
fn only_extension<'a>(cert: &'a X509Certificate<'a>, oid: &str) -> Option<&'a X509Extension<'a>> {
    let found: Vec<_> = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string() == oid)
        .collect();
    assert!(found.len() <= 1, "{oid} appears {} times", found.len());
    found.into_iter().next()
}

fn check_certificate(service: &TestService, body: &Value, key_type: KeyType) {
    let der = cert_der(body);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let ca_pem = std::fs::read(service.ca_dir().join("ca-cert.pem")).unwrap();
    let (_, ca_pem) = x509_parser::pem::parse_x509_pem(&ca_pem).unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_pem.contents).unwrap();

    // §4.1.2.1 v3; §4.1.2.2 serial: 16 octets, positive.
    assert_eq!(cert.version(), X509Version::V3);
    let serial = cert.raw_serial();
    assert!((1..=16).contains(&serial.len()), "serial {serial:02x?}");
    assert_eq!(
        serial[0] & 0x80,
        0,
        "positive without a sign octet: at most 127 bits"
    );
    assert_eq!(body["serial"], crate::common::hex(serial));

    // §4.1.2.5 validity: now - 30 s .. now + 300 s.
    assert_eq!(
        cert.validity().not_before.to_datetime(),
        t0() - Duration::seconds(30)
    );
    assert_eq!(
        cert.validity().not_after.to_datetime(),
        t0() + Duration::seconds(300)
    );
    assert_eq!(
        parse_time(&body["not_before"]),
        t0() - Duration::seconds(30)
    );
    assert_eq!(
        parse_time(&body["not_after"]),
        t0() + Duration::seconds(300)
    );
    assert_eq!(
        parse_time(&body["renew_after"]),
        t0() + Duration::seconds(210)
    );

    // §4.1.2.4/6 names.
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
    assert_eq!(
        cert.subject().to_string(),
        format!("C=NL, ST=ZH, L=Rotterdam, O=Your Bank, CN={SESSION_ID}")
    );

    // §4.2.1.9 BasicConstraints CA:FALSE critical.
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca);
    // §4.2.1.3 KeyUsage digitalSignature only, critical.
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature());
    assert_eq!(ku.value.flags, 1, "only digitalSignature");
    // §4.2.1.12 EKU clientAuth only.
    let eku = cert.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.client_auth && !eku.value.server_auth && eku.value.other.is_empty());
    // §4.2.1.1/2 AKI = the CA's SKI; SKI present.
    let ca_ski = match ca
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::SubjectKeyIdentifier(k) => k.0.to_vec(),
        other => panic!("{other:?}"),
    };
    let aki = match cert
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    {
        ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().unwrap().0.to_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(aki, ca_ski);
    assert!(cert
        .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .is_some());
    // §4.2.1.6 URI SAN from the template.
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(&format!("urn:uuid:{SESSION_ID}"))]
    );

    // Claims: non-critical, DER UTF8String, one extension each.
    let expected = [
        ("1.3.6.1.4.1.32473.1.1", SESSION_ID.to_owned()),
        ("1.3.6.1.4.1.32473.1.2", "tx-2018-11-08-0001".to_owned()),
        (
            "1.3.6.1.4.1.32473.1.4",
            body["request_id"].as_str().unwrap().to_owned(),
        ),
        ("1.3.6.1.4.1.32473.1.100", "iOS Agent String".to_owned()),
        (
            "1.3.6.1.4.1.32473.1.101",
            r#"{"lat":"52.15","lon":"4.49"}"#.to_owned(),
        ),
    ];
    for (oid, value) in &expected {
        let ext = only_extension(&cert, oid).unwrap_or_else(|| panic!("{oid} missing"));
        assert!(!ext.critical, "{oid} must be non-critical");
        assert_eq!(
            &session_ca_verify::decode_claim_value(ext.value).unwrap(),
            value
        );
    }
    assert!(
        only_extension(&cert, "1.3.6.1.4.1.32473.1.3").is_none(),
        "no requester when anonymous"
    );
    assert_eq!(cert.extensions().len(), 6 + expected.len());

    // The key is fresh PKCS#8 of the requested type and matches the certificate.
    let key = rcgen::KeyPair::from_pem(body["private_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        key.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref()
    );
    assert_eq!(body["key_type"], key_type.as_str());
    assert_eq!(body["profile"], "default");

    // Fingerprint and chain.
    let digest = session_ca::crypto::sha256(&der);
    assert_eq!(
        body["fingerprint_sha256"],
        crate::common::hex(digest.as_ref())
    );
    // RFC 8705 §3.1: x5t#S256 is the same digest, base64url without padding.
    use base64::Engine as _;
    let x5t = body["x5t#S256"].as_str().unwrap();
    assert_eq!(x5t.len(), 43, "{x5t}");
    assert_eq!(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x5t)
            .unwrap(),
        digest.as_ref()
    );
    let chain = chain_of(body);
    assert_eq!(
        chain,
        std::fs::read_to_string(service.ca_dir().join("chain.pem")).unwrap()
    );

    // An independent verifier (rustls-webpki) accepts it for client auth now.
    let leaf = rustls_pki_types::CertificateDer::from(der);
    verify_client_certificate(&leaf, chain.as_bytes(), t0()).unwrap();
    // ... and not after it expired, nor before it started.
    assert!(
        verify_client_certificate(&leaf, chain.as_bytes(), t0() + Duration::seconds(301)).is_err()
    );
    assert!(
        verify_client_certificate(&leaf, chain.as_bytes(), t0() - Duration::seconds(31)).is_err()
    );
}

#[tokio::test]
async fn intermediate_chains_verify() {
    let service =
        TestService::with(KeyType::EcdsaP384, true, t0() - Duration::days(1), 30, t0()).await;
    let reply = issue_json(&service.state, json!({"session_id": SESSION_ID})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let body = reply.json();
    let chain = body["ca_chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "issuing CA then root");
    let leaf = rustls_pki_types::CertificateDer::from(cert_der(&body));
    let bundle = chain_of(&body);
    verify_client_certificate(&leaf, bundle.as_bytes(), t0()).unwrap();
    // Trusting only the root (as a backend would) with the intermediate from the chain also works;
    // trusting a different root does not.
    let other = TestService::new().await;
    let other_chain = std::fs::read(other.ca_dir().join("chain.pem")).unwrap();
    assert!(verify_client_certificate(&leaf, &other_chain, t0()).is_err());
}

#[tokio::test]
async fn a_missing_session_id_becomes_a_fresh_uuid_v4() {
    let service = TestService::new().await;
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        let body = issue_json(&service.state, json!({})).await.json();
        let id = body["session_id"].as_str().unwrap().to_owned();
        assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
        let der = cert_der(&body);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(cn, id);
        seen.insert(id);
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn validity_follows_ttl_and_is_clamped_to_the_ca() {
    let service = TestService::new().await;
    for (ttl, expect) in [(1, 1), (60, 60), (900, 900)] {
        let body = issue_json(&service.state, json!({"ttl_seconds": ttl}))
            .await
            .json();
        assert_eq!(
            parse_time(&body["not_after"]),
            t0() + Duration::seconds(expect)
        );
        assert_eq!(
            parse_time(&body["not_before"]),
            t0() - Duration::seconds(30),
            "backdate does not eat the TTL"
        );
        assert_eq!(
            parse_time(&body["renew_after"]),
            t0() + Duration::seconds(expect * 7 / 10)
        );
    }

    // A CA that ends 100 s from now: the certificate ends with it.
    let created = t0() - Duration::days(1) + Duration::seconds(100);
    let short = TestService::with(KeyType::EcdsaP256, false, created, 1, t0()).await;
    let body = issue_json(&short.state, json!({"ttl_seconds": 600}))
        .await
        .json();
    assert_eq!(
        parse_time(&body["not_after"]),
        t0() + Duration::seconds(100)
    );
    assert_eq!(
        parse_time(&body["renew_after"]),
        t0() + Duration::seconds(70)
    );

    // A CA that started 10 s ago (init backdates a CA by 1 h): not_before is not before the CA's.
    let young = TestService::with(
        KeyType::EcdsaP256,
        false,
        t0() + Duration::hours(1) - Duration::seconds(10),
        1,
        t0(),
    )
    .await;
    let body = issue_json(&young.state, json!({})).await.json();
    assert_eq!(
        parse_time(&body["not_before"]),
        t0() - Duration::seconds(10)
    );
}

#[tokio::test]
async fn an_expired_ca_gives_503_and_an_unhealthy_healthz() {
    let service = TestService::new().await;
    let later = t0() + Duration::days(400);
    let state = service.at(t0(), later).await;
    let reply = issue_json(&state, json!({})).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "ca_unavailable");
    assert!(reply.message().contains("expired"), "{}", reply.message());
    let health = get(&state, "/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["status"], "unavailable");
    assert_eq!(health.json()["cas"][0]["usable"], false);
}

#[tokio::test]
async fn healthz_reports_the_ca() {
    let service = TestService::new().await;
    let reply = get(&service.state, "/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["cas"][0]["name"], "default");
    assert_eq!(
        body["cas"][0]["subject"],
        "C=NL, O=session-ca tests, CN=Test Issuing CA"
    );
    assert_eq!(
        parse_time(&body["cas"][0]["not_after"]),
        t0() + Duration::days(364)
    );
}

#[tokio::test]
async fn ca_route_serves_the_pem_chain() {
    let service =
        TestService::with(KeyType::Ed25519, true, t0() - Duration::days(1), 30, t0()).await;
    for path in ["/v1/ca", "/v1/ca?profile=plain"] {
        let reply = get(&service.state, path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            reply.headers[header::CONTENT_TYPE],
            "application/pem-certificate-chain"
        );
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            std::fs::read_to_string(service.ca_dir().join("chain.pem")).unwrap()
        );
    }
    let reply = get(&service.state, "/v1/ca?profile=nope").await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_profile")
    );
    let reply = get(&service.state, "/v1/ca?format=pem").await;
    assert_eq!(
        String::from_utf8(reply.body).unwrap(),
        std::fs::read_to_string(service.ca_dir().join("chain.pem")).unwrap()
    );
    let reply = get(&service.state, "/v1/ca?format=der").await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let service = TestService::new().await;
    for (method, path, status) in [
        ("GET", "/healthz", StatusCode::OK),
        ("GET", "/v1/ca", StatusCode::OK),
        ("GET", "/v1/ca?format=der", StatusCode::BAD_REQUEST),
        ("GET", "/nope", StatusCode::NOT_FOUND),
        ("DELETE", "/v1/ca", StatusCode::METHOD_NOT_ALLOWED),
        ("DELETE", "/v1/certificates", StatusCode::METHOD_NOT_ALLOWED),
        (
            "POST",
            "/v1/certificates",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ] {
        let reply = send(
            &service.state,
            Request::builder()
                .method(method)
                .uri(path)
                .header("x-request-id", "corr-7")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, status, "{method} {path}");
        assert_eq!(reply.headers["x-request-id"], "corr-7", "{method} {path}");
        let reply = send(
            &service.state,
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        let id = reply.headers["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{method} {path}: {id}");
    }
}

#[tokio::test]
async fn request_ids_are_echoed_and_sanitised() {
    let service = TestService::new().await;
    let send_with = |id: &'static str| {
        let state = service.state.clone();
        async move {
            send(
                &state,
                Request::post("/v1/certificates")
                    .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                    .header("x-request-id", id)
                    .body(Body::from("{}"))
                    .unwrap(),
            )
            .await
        }
    };
    let reply = send_with("corr-42").await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.headers["x-request-id"], "corr-42");
    assert_eq!(reply.json()["request_id"], "corr-42");
    let reply = send_with("bad id with spaces").await;
    let id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "replaced by a UUID: {id}"
    );
}

/// Every error the service can answer with, through the router.
/// Returns the codes seen, so the spec test can compare.
async fn error_table() -> BTreeSet<String> {
    let service = TestService::new().await;
    let s = &service.state;
    let mut seen = BTreeSet::new();
    let sid = SESSION_ID;
    let (csr_p256, _) = csr_asking_for_a_ca(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (csr_ed25519, _) = csr_asking_for_a_ca(&rcgen::PKCS_ED25519);
    let json_cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!([]), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!("string"), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            json!({"unknown": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"ttl_seconds": -1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"ttl_seconds": 1.5}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"ttl_seconds": "60"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"session_id": 5}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"claims": "agent"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"pkcs12": "yes"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"key_type": "rsa-1024"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"profile": "nope"}),
            StatusCode::NOT_FOUND,
            "unknown_profile",
        ),
        (
            json!({"profile": "../etc/passwd"}),
            StatusCode::NOT_FOUND,
            "unknown_profile",
        ),
        (
            json!({"profile": "strict"}),
            StatusCode::FORBIDDEN,
            "caller_not_allowed",
        ),
        (
            json!({"ttl_seconds": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl_too_short",
        ),
        (
            json!({"ttl_seconds": 901}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ttl_too_long",
        ),
        (
            json!({"profile": "plain", "key_type": "ed25519"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_type_not_allowed",
        ),
        (
            json!({"profile": "required", "transaction_id": "t", "claims": {"agent": "a"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
        ),
        (
            json!({"profile": "required", "session_id": "s", "claims": {"agent": "a"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_field",
        ),
        (
            json!({"profile": "required", "session_id": "s", "transaction_id": "t"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_claim",
        ),
        (
            json!({"session_id": "not-a-uuid"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"profile": "plain", "session_id": "x".repeat(65)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"profile": "plain", "session_id": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"profile": "plain", "transaction_id": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            json!({"claims": {"colour": "blue"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_claim",
        ),
        (
            json!({"profile": "plain", "claims": {"agent": "x"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_claim",
        ),
        (
            json!({"claims": {"agent": 42}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "claim_wrong_type",
        ),
        (
            json!({"claims": {"agent": {"nested": "no"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "claim_wrong_type",
        ),
        (
            json!({"claims": {"agent": "x".repeat(257)}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "claim_too_long",
        ),
        (
            json!({"claims": {"geo": {"a": "x".repeat(300)}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "claim_too_long",
        ),
        (
            json!({"claims": {"geo": {"a": {"b": {"c": {"d": {}}}}}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "claim_too_deep",
        ),
        (
            json!({"claims": {"agent": "nul\u{0}here"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_claim_value",
        ),
        (
            json!({"claims": {"agent": "bell\u{7}"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_claim_value",
        ),
        (
            json!({"claims": {"agent": "\u{202e}txt.exe"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_claim_value",
        ),
        (
            json!({"claims": {"geo": {"lat": "1\n2"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_claim_value",
        ),
        (
            json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----"}),
            StatusCode::BAD_REQUEST,
            "invalid_csr",
        ),
        (
            json!({"csr": csr_p256.replace("MII", "MIJ")}),
            StatusCode::BAD_REQUEST,
            "invalid_csr",
        ),
        (
            json!({"csr": csr_p256, "key_type": "ecdsa-p256"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"csr": csr_p256, "pkcs12": true}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"profile": "keysonly", "csr": csr_p256}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "csr_not_allowed",
        ),
        (
            json!({"profile": "csronly"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "server_keys_not_allowed",
        ),
        (
            json!({"profile": "csronly", "csr": csr_ed25519}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_type_not_allowed",
        ),
        (
            json!({"session_id": sid, "claims": {"geo": {"a": {"b": {"c": {}}}}}}),
            StatusCode::CREATED,
            "",
        ),
    ];
    for (body, status, code) in json_cases {
        let reply = issue_json(s, body.clone()).await;
        assert_eq!(
            reply.status,
            status,
            "{body}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        if status != StatusCode::CREATED {
            check_error(&reply, code, &body.to_string());
            seen.insert(code.to_owned());
        }
    }

    let raw_cases: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            b"not json".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (b"{".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            b"{\"a\":}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            b"{\"session_id\":\"\\ud800\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            vec![0xff, 0xfe, b'{', b'}'],
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            b"{\"ttl_seconds\":18446744073709551616}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            b"{\"profile\":\"default\",\"profile\":\"plain\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            b"{\"claims\":{\"agent\":\"a\",\"agent\":\"b\"}}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            vec![b' '; 64 * 1024 + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (body, status, code) in raw_cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let reply = issue(s, body).await;
        assert_eq!(
            reply.status,
            status,
            "{shown}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        check_error(&reply, code, &shown);
        seen.insert(code.to_owned());
    }

    // Content types.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::post("/v1/certificates");
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let reply = send(s, request.body(Body::from("{}")).unwrap()).await;
        assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        check_error(
            &reply,
            "unsupported_media_type",
            &format!("{content_type:?}"),
        );
        seen.insert("unsupported_media_type".into());
    }

    // Routes and methods.
    for (method, path, status, code) in [
        (
            "DELETE",
            "/v1/certificates",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "PUT",
            "/v1/certificates",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "POST",
            "/healthz",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/v1/ca",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        ("GET", "/", StatusCode::NOT_FOUND, "not_found"),
        (
            "GET",
            "/v2/certificates",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "POST",
            "/v1/certificates/../ca",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let reply = send(
            s,
            Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, status, "{method} {path}");
        check_error(&reply, code, path);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(reply.headers.contains_key(header::ALLOW));
        }
        seen.insert(code.to_owned());
    }

    let reply = get(s, "/v1/ca?format=der").await;
    check_error(&reply, "invalid_query", "unknown query parameter");
    seen.insert("invalid_query".into());

    // A body that breaks off while being read.
    let broken = futures_util::stream::iter(vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"session")),
        Err(std::io::Error::other("connection reset")),
    ]);
    let reply = send(
        s,
        Request::post("/v1/certificates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(broken))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    check_error(&reply, "invalid_body", "broken body stream");
    seen.insert("invalid_body".into());

    // Headers over server.max_header_bytes (16 KiB by default).
    let reply = send(
        s,
        Request::post("/v1/certificates")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-padding", "p".repeat(17 * 1024))
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    check_error(&reply, "headers_too_large", "17 KiB header");
    seen.insert("headers_too_large".into());

    // A body that never finishes arriving (slowloris) hits server.request_timeout.
    let slow = state_for(
        &service.ca_dir(),
        "[server]\nrequest_timeout = \"300ms\"\n",
        t0(),
        t0(),
    )
    .await;
    let stalled = futures_util::StreamExt::chain(
        futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            axum::body::Bytes::from_static(b"{"),
        )]),
        futures_util::stream::pending(),
    );
    let started = std::time::Instant::now();
    let reply = send(
        &slow,
        Request::post("/v1/certificates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stalled))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    check_error(&reply, "request_timeout", "stalled body");
    assert!(reply.message().contains("300 ms"), "{}", reply.message());
    seen.insert("request_timeout".into());

    // 401 when the auth mode needs an identity the request does not carry.
    let iam = iam_state(&service.ca_dir()).await;
    let reply = issue_json(&iam, json!({})).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    check_error(&reply, "unauthenticated", "auth iam without identity");
    seen.insert("unauthenticated".into());

    // 503 from an expired CA.
    let expired = service.at(t0(), t0() + Duration::days(365)).await;
    let reply = issue_json(&expired, json!({})).await;
    check_error(&reply, "ca_unavailable", "expired CA");
    seen.insert("ca_unavailable".into());

    // 503 when the ledger cannot record the certificate (its SQLite file
    // locked by another writer beyond the busy timeout): no certificate.
    let path = service.dir.path().join("ledger.sqlite3");
    let store = session_ca::SqliteStore::open(&path, session_ca::DEFAULT_RETENTION).unwrap();
    let mut with_ledger = s.clone();
    with_ledger.ledger = session_ca::Ledger::new(std::sync::Arc::new(store));
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let reply = issue_json(&with_ledger, json!({})).await;
    check_error(&reply, "ledger_unavailable", "locked ledger");
    seen.insert("ledger_unavailable".into());
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        issue_json(&with_ledger, json!({})).await.status,
        StatusCode::CREATED
    );

    // 403 for a revoked session; 404 for a CRL of no such CA.
    let revocation = send(
        &with_ledger,
        Request::post("/v1/revocations")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"session_id": sid, "reason": "privilegeWithdrawn"}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(revocation.status, StatusCode::CREATED);
    let reply = issue_json(&with_ledger, json!({"session_id": sid})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    check_error(&reply, "revoked", "revoked session");
    seen.insert("revoked".into());
    let reply = get(&with_ledger, "/v1/crl?ca=elsewhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    check_error(&reply, "unknown_ca", "CRL of an unknown CA");
    seen.insert("unknown_ca".into());

    // 503 from a Lambda whose configuration was refused at start-up.
    let reason = "the embedded default configuration: profiles.default.subject: not set";
    let reply = send_to(
        session_ca::misconfigured(reason, session_ca::Metrics::Off),
        Request::post("/v1/certificates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    check_error(&reply, "not_configured", "refused configuration");
    assert!(reply.message().contains(reason), "{}", reply.message());
    seen.insert("not_configured".into());
    seen
}

#[tokio::test]
async fn a_refused_configuration_is_named_on_every_path() {
    let reason = "the embedded default configuration: profiles.default.subject: not set";
    for path in ["/v1/ca", "/nope"] {
        let reply = send_to(
            session_ca::misconfigured(reason, session_ca::Metrics::Off),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.code(), "not_configured", "{path}");
        assert!(reply.headers.contains_key("x-request-id"), "{path}");
    }
    // Each refusal is counted, so an alarm sees a function that answers
    // but issues nothing.
    let capture = crate::common::Capture::default();
    let emf = session_ca::Emf::to_writer("SessionCA/test", Box::new(capture.clone()));
    let reply = send_to(
        session_ca::misconfigured(reason, session_ca::Metrics::Emf(std::sync::Arc::new(emf))),
        Request::post("/v1/certificates")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.code(), "not_configured");
    let lines = capture.text();
    let line: Value = serde_json::from_str(lines.lines().next().expect("an EMF line")).unwrap();
    assert_eq!(
        (&line["Refusals"], &line["ErrorCode"]),
        (&json!(1), &json!("not_configured")),
        "{line}"
    );
    let reply = send_to(
        session_ca::misconfigured(reason, session_ca::Metrics::Off),
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = reply.json();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["cas"], json!([]));
    assert!(
        health["reason"].as_str().unwrap().contains(reason),
        "{health}"
    );
}

/// The test CA with auth `iam` (every profile then needs allowed_callers).
async fn iam_state(ca_dir: &std::path::Path) -> session_ca::AppState {
    let text = format!(
        "[server]\nauth = \"iam\"\n[cas.default]\nsource = \"file:{}\"\n[profiles.default]\nallowed_callers = [\"*\"]\n",
        ca_dir.display()
    );
    state_from_toml(&text, t0(), t0()).await
}

fn check_error(reply: &Reply, code: &str, case: &str) {
    assert_eq!(reply.code(), code, "{case}: {}", reply.json());
    let message = reply.message();
    assert!(message.len() > 10, "{case}: message too vague: {message:?}");
    assert!(
        reply.json().get("certificate").is_none(),
        "{case}: no certificate on error"
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn every_error_code_in_the_spec_is_produced_and_no_other() {
    let mut seen = error_table().await;
    // A 500 cannot be caused from outside; its shape is tested in
    // src/http/error.rs (server_faults_say_nothing_of_their_cause).
    seen.insert("internal_error".into());
    // A KMS-delegated CA (moto): tests/service/kms_crl.rs.
    seen.insert("crl_unavailable".into());
    // A store shared by the requests (rate limits, idempotency).
    seen.extend(crate::fleet::store_error_codes().await);
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/api-spec/openapi.yaml"
    ))
    .unwrap();
    let spec_codes = spec_error_codes(&spec);
    assert_eq!(
        seen, spec_codes,
        "codes produced by tests vs. codes in the spec's ErrorCode enum"
    );
}

/// The values of `components.schemas.ErrorCode.enum` in the spec.
fn spec_error_codes(spec: &str) -> BTreeSet<String> {
    let mut lines = spec.lines().skip_while(|l| l.trim() != "ErrorCode:");
    let mut codes = BTreeSet::new();
    let mut in_enum = false;
    for line in lines.by_ref().skip(1) {
        let t = line.trim();
        if t == "enum:" {
            in_enum = true;
            continue;
        }
        if in_enum {
            match t.strip_prefix("- ") {
                Some(code) => {
                    codes.insert(code.trim().to_owned());
                }
                None => break,
            }
        }
    }
    assert!(!codes.is_empty(), "ErrorCode enum not found in the spec");
    codes
}

#[tokio::test]
async fn the_embedded_default_profile_issues_without_any_fields() {
    // As a newcomer's first `curl -d '{}'` would.
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("signer-key");
    make_ca(
        &ca_dir,
        KeyType::EcdsaP256,
        false,
        t0() - Duration::days(1),
        10,
    );
    let text = session_ca::DEFAULT_CONFIG
        .replace("file:signer-key", &format!("file:{}", ca_dir.display()));
    let state = state_from_toml(&text, t0(), t0()).await;
    let reply = issue(&state, "{}").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
}

#[tokio::test]
async fn csr_mode_certifies_only_the_csr_key() {
    let service = TestService::new().await;
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let (csr, key) = csr_asking_for_a_ca(alg);
        let reply = issue_json(
            &service.state,
            json!({"session_id": SESSION_ID, "csr": csr, "claims": {"agent": "csr"}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
        let body = reply.json();
        assert!(body.get("private_key").is_none(), "CSR mode returns no key");
        assert!(body.get("pkcs12").is_none());
        assert!(!String::from_utf8_lossy(&reply.body).contains("PRIVATE KEY"));
        let der = cert_der(&body);
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        // Only the CSR's key is used (RFC 5280 §4.1.2.7) ...
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        // ... never its subject, SANs or CA:TRUE.
        let bc = cert.basic_constraints().unwrap().unwrap().value;
        assert!(!bc.ca);
        assert_eq!(
            cert.subject().to_string(),
            format!("C=NL, ST=ZH, L=Rotterdam, O=Your Bank, CN={SESSION_ID}")
        );
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            format!("{:?}", san.general_names),
            format!("[URI(\"urn:uuid:{SESSION_ID}\")]")
        );
        assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
        let expected_type = match alg {
            a if *a == rcgen::PKCS_ECDSA_P256_SHA256 => "ecdsa-p256",
            a if *a == rcgen::PKCS_ECDSA_P384_SHA384 => "ecdsa-p384",
            _ => "ed25519",
        };
        assert_eq!(body["key_type"], expected_type);
        verify_client_certificate(
            &rustls_pki_types::CertificateDer::from(der.clone()),
            chain_of(&body).as_bytes(),
            t0(),
        )
        .unwrap();
    }
}

#[cfg(feature = "fips")]
#[tokio::test]
async fn pkcs12_output_is_refused_on_a_fips_build() {
    let service =
        TestService::with(KeyType::EcdsaP256, true, t0() - Duration::days(1), 30, t0()).await;
    let reply = issue_json(&service.state, json!({"pkcs12": true})).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("FIPS module"),
        "{body}"
    );
}

/// A PKCS#12 key store names each certificate by its subject in a
/// BMPString: a session id with a character outside the Basic Multilingual
/// Plane is refused before anything is signed (it was a 500 after signing),
/// and is fine without `pkcs12`.
#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn a_pkcs12_subject_outside_the_bmp_is_refused_before_signing() {
    let service = TestService::new().await;
    for session in ["\u{1F600}", "a\u{FFFF}"] {
        let body = json!({"profile": "plain", "session_id": session, "pkcs12": true});
        let reply = issue_json(&service.state, body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{session:?}"
        );
        check_error(&reply, "invalid_field", "a session id outside the BMP");
        assert!(
            reply.message().contains("Basic Multilingual Plane")
                && reply.message().contains("session_id"),
            "{}",
            reply.message()
        );
        let without = json!({"profile": "plain", "session_id": session});
        assert_eq!(
            issue_json(&service.state, without).await.status,
            StatusCode::CREATED
        );
    }
    // The highest BMP character a friendly name can hold is fine.
    let body = json!({"profile": "plain", "session_id": "a\u{FFFD}", "pkcs12": true});
    assert_eq!(
        issue_json(&service.state, body).await.status,
        StatusCode::CREATED
    );
}

// A FIPS build refuses `pkcs12: true` (above).
#[cfg(not(feature = "fips"))]
#[tokio::test]
async fn pkcs12_output_holds_the_returned_key_and_chain() {
    use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
    let service = TestService::with(
        KeyType::EcdsaP384,
        true,
        t0() - Duration::days(1),
        365,
        t0(),
    )
    .await;
    let reply = issue_json(
        &service.state,
        json!({"pkcs12": true, "key_type": "ed25519"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let body = reply.json();
    let password = body["pkcs12"]["password"].as_str().unwrap();
    assert_eq!(password.len(), 32);
    use base64::Engine as _;
    let file = base64::engine::general_purpose::STANDARD
        .decode(body["pkcs12"]["base64"].as_str().unwrap())
        .unwrap();
    let store = KeyStore::from_pkcs12(&file, password, Pkcs12ImportPolicy::Strict).unwrap();
    let (_, chain) = store.private_key_chain().unwrap();
    let key_pem = body["private_key"].as_str().unwrap();
    assert_eq!(
        chain.key().as_der(),
        ::pem::parse(key_pem).unwrap().contents(),
        "the same key as private_key"
    );
    let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    let mut expected = vec![cert_der(&body)];
    for pem in body["ca_chain"].as_array().unwrap() {
        expected.push(::pem::parse(pem.as_str().unwrap()).unwrap().into_contents());
    }
    assert_eq!(certs, expected, "leaf, intermediate, root");
    let again = issue_json(&service.state, json!({"pkcs12": true}))
        .await
        .json();
    assert_ne!(again["pkcs12"]["password"], body["pkcs12"]["password"]);
}

#[tokio::test]
async fn ca_route_serves_a_pkcs12_trust_store() {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
    let service =
        TestService::with(KeyType::EcdsaP256, true, t0() - Duration::days(1), 30, t0()).await;
    let reply = get(&service.state, "/v1/ca?format=pkcs12&profile=plain").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/pkcs12");
    let store = KeyStore::from_pkcs12(
        &reply.body,
        session_ca::TRUSTSTORE_PASSWORD,
        Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    let chain = std::fs::read(service.ca_dir().join("chain.pem")).unwrap();
    let expected: Vec<Vec<u8>> = ::pem::parse_many(&chain)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect();
    assert_eq!(expected.len(), 2);
    for (i, der) in expected.iter().enumerate() {
        match store.entry(&format!("session-ca-{i}")) {
            Some(KeyStoreEntry::Certificate(c)) => assert_eq!(c.as_der(), der),
            other => panic!("entry {i}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_ca_expiring_within_max_ttl_is_reported_and_shortens_certificates() {
    // The CA ends 10 minutes after t0; profiles allow up to 15 minutes.
    let created = t0() - Duration::days(1) + Duration::minutes(10);
    let service = TestService::with(KeyType::EcdsaP256, false, created, 1, t0()).await;
    let state = &service.state;
    let expiring = session_ca::expiring_cas(&state.config, &state.cas, t0());
    assert_eq!(
        expiring.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["default"]
    );
    assert_eq!(expiring[0].not_after, t0() + Duration::minutes(10));
    assert_eq!(expiring[0].max_ttl, std::time::Duration::from_secs(900));
    let body = issue_json(state, json!({"ttl_seconds": 900})).await.json();
    assert_eq!(parse_time(&body["not_after"]), t0() + Duration::minutes(10));
    // Still healthy: it can sign, only shorter.
    assert_eq!(get(state, "/healthz").await.status, StatusCode::OK);
    // Twenty minutes earlier it was not expiring yet.
    assert!(
        session_ca::expiring_cas(&state.config, &state.cas, t0() - Duration::minutes(20))
            .is_empty()
    );
}

#[tokio::test]
async fn json_claims_carry_exactly_the_numbers_sent() {
    let service = TestService::new().await;
    let reply = issue(
        &service.state,
        r#"{"claims": {"geo": {"n": 18446744073709551616, "f": 9007199254740993.0, "e": 1E2, "x": 0.1000}}}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    let der = cert_der(&reply.json());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let geo = only_extension(&cert, "1.3.6.1.4.1.32473.1.101").unwrap();
    assert_eq!(
        session_ca_verify::decode_claim_value(geo.value).unwrap(),
        r#"{"n":18446744073709551616,"f":9007199254740993.0,"e":1E2,"x":0.1000}"#
    );
}

async fn post_to(state: &session_ca::AppState, uri: &str, body: Value) -> Reply {
    send(
        state,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-request-id", "dry-1")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_dry_run_answers_the_plan_and_issues_nothing() {
    let service = TestService::new().await;
    let request = json!({
        "session_id": SESSION_ID,
        "transaction_id": "tx-dry",
        "ttl_seconds": 120,
        "key_type": "ecdsa-p384",
        "claims": {"agent": "CI check", "geo": {"lat": 52.150}}
    });
    let reply = post_to(
        &service.state,
        "/v1/certificates?dry_run=true",
        request.clone(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json());
    let plan = reply.json();
    assert_eq!(plan["dry_run"], true);
    for absent in ["certificate", "private_key", "serial", "ca_chain"] {
        assert!(
            plan.get(absent).is_none(),
            "a dry run has no {absent}: {plan}"
        );
    }
    assert_eq!(plan["key_source"], "generated");
    assert_eq!(plan["request_id"], "dry-1");

    // The same request issued for real: the plan said what it holds.
    let reply = post_to(&service.state, "/v1/certificates", request).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let issued = reply.json();
    let der = cert_der(&issued);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(plan["subject"], cert.subject().to_string());
    for field in [
        "profile",
        "session_id",
        "key_type",
        "not_before",
        "not_after",
        "renew_after",
    ] {
        assert_eq!(plan[field], issued[field], "{field}");
    }
    assert_eq!(plan["transaction_id"], "tx-dry");
    let san = cert.subject_alternative_name().unwrap().unwrap();
    match &san.value.general_names[..] {
        [GeneralName::URI(uri)] => assert_eq!(plan["uri_san"], *uri),
        other => panic!("one URI SAN expected: {other:?}"),
    }
    let claims = plan["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 5, "{plan}");
    for claim in claims {
        let oid = claim["oid"].as_str().unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == oid)
            .unwrap_or_else(|| panic!("{oid} planned but not in the certificate"));
        assert_eq!(
            session_ca_verify::decode_claim_value(ext.value).unwrap(),
            claim["value"].as_str().unwrap(),
            "{oid}"
        );
    }
    // In OID order; an anonymous caller has no requester claim.
    let names: Vec<&str> = claims.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["session_id", "transaction_id", "request_id", "agent", "geo"]
    );
    // A json claim keeps the text that was sent.
    let geo = claims.iter().find(|c| c["name"] == "geo").unwrap();
    assert_eq!(geo["value"], r#"{"lat":52.15}"#);
}

#[tokio::test]
async fn a_dry_run_is_refused_as_the_issuance_would_be() {
    let service = TestService::new().await;
    let reply = post_to(
        &service.state,
        "/v1/certificates?dry_run=true",
        json!({"ttl_seconds": 100_000}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "ttl_too_long")
    );
    let reply = post_to(&service.state, "/v1/certificates?dry_run=maybe", json!({})).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let reply = post_to(&service.state, "/v1/certificates?dry_run=false", json!({})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "dry_run=false issues");
    // A misspelt dry_run is refused, never taken for a real issuance.
    for query in ["dryrun=true", "dry-run=true", "dry_run=true&x=1"] {
        let reply = post_to(
            &service.state,
            &format!("/v1/certificates?{query}"),
            json!({}),
        )
        .await;
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{query}"
        );
        assert!(reply.json().get("certificate").is_none());
    }
}
