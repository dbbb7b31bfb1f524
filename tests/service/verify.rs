//! The backend verifier (`session_ca::verify`) against certificates from the
//! crate's own signer and certificates crafted with rcgen under the same CA:
//! the trust decision is rustls-webpki's, the claims must come back exactly,
//! and malformed or duplicated claims are errors. The rustls adapter is
//! driven through a real in-memory TLS 1.3 handshake.

use crate::common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use axum::http::StatusCode;
use common::*;
use http_body_util::BodyExt;
use rcgen::{CustomExtension, ExtendedKeyUsagePurpose, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use session_ca::lambda_app;
use session_ca::FileCaSource;
use session_ca::{AppState, CaSource, FixedClock, KeyType, SharedClock};
use session_ca_verify::encode_claim_value;
use session_ca_verify::{ClaimType, Verifier, VerifyError, VerifyErrorKind};
use time::{Duration, OffsetDateTime};
use tower::ServiceExt;

const AGENT_OID: &str = "1.3.6.1.4.1.32473.1.100";
const GEO_OID: &str = "1.3.6.1.4.1.32473.1.101";
const PRINCIPAL: &str = "arn:aws:sts::123456789012:assumed-role/payments-api/session-1";
const ARC: [u64; 9] = [1, 3, 6, 1, 4, 1, 32473, 1, 0];

fn clock(at: OffsetDateTime) -> SharedClock {
    Arc::new(FixedClock::new(at))
}

/// A verifier for the test profile's claims, trusting `ca_pem`, at `at`.
fn verifier_at(ca_pem: &str, at: OffsetDateTime) -> Verifier {
    Verifier::builder()
        .ca_pem(ca_pem)
        .claim("agent", AGENT_OID, ClaimType::String)
        .claim("geo", GEO_OID, ClaimType::Json)
        .clock(clock(at))
        .build()
        .expect("verifier")
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

/// An issued certificate: its response, leaf and chain.
struct Issued {
    body: Value,
    leaf: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
}

impl Issued {
    fn from_body(body: Value) -> Issued {
        let leaf = pem_certs(body["certificate"].as_str().expect("certificate"))
            .pop()
            .expect("one certificate");
        let chain = pem_certs(&chain_of(&body));
        Issued { body, leaf, chain }
    }

    /// The leaf alone, as a chain.
    fn leaf_only(&self) -> &[CertificateDer<'static>] {
        std::slice::from_ref(&self.leaf)
    }

    /// The chain a TLS client sends: leaf, then the CA chain.
    fn presented(&self) -> Vec<CertificateDer<'static>> {
        std::iter::once(self.leaf.clone())
            .chain(self.chain.iter().cloned())
            .collect()
    }
}

/// Issues through the Lambda path with an IAM principal, so the
/// certificate carries a requester and a request id.
async fn issue_as_principal(state: &AppState, body: &Value) -> Issued {
    let path = format!(
        "{}/tests/fixtures/lambda/rest_v1_iam.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = body.to_string();
    event["headers"]["Content-Length"] = Value::String(text.len().to_string());
    event["body"] = Value::String(text);
    let request = session_ca::lambda_request_from_str(&event.to_string()).expect("event");
    let response = lambda_app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    Issued::from_body(serde_json::from_slice(&bytes).unwrap())
}

async fn ca_pem_of(state: &AppState) -> String {
    let reply = get(state, "/v1/ca").await;
    assert_eq!(reply.status, StatusCode::OK);
    String::from_utf8(reply.body).unwrap()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn issued_certificate_verifies_and_its_claims_come_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let issued = issue_as_principal(
        &state,
        &json!({
            "session_id": SESSION_ID,
            "transaction_id": "tx-2018-11-08-0001",
            "claims": {"agent": "iOS Agent String ✓", "geo": {"lat": "52.15", "lon": 4.49, "tags": [1, null]}}
        }),
    )
    .await;
    let ca_pem = ca_pem_of(&state).await;
    let verifier = verifier_at(&ca_pem, t0());

    let session = verifier.verify(issued.leaf_only()).expect("verifies");
    assert_eq!(session.session_id.as_deref(), Some(SESSION_ID));
    assert_eq!(
        session.transaction_id.as_deref(),
        Some("tx-2018-11-08-0001")
    );
    assert_eq!(session.requester.as_deref(), Some(PRINCIPAL));
    assert_eq!(
        session.request_id.as_deref(),
        Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    );
    assert_eq!(session.claims.len(), 2);
    assert_eq!(session.claims["agent"], json!("iOS Agent String ✓"));
    assert_eq!(
        session.claims["geo"],
        json!({"lat": "52.15", "lon": 4.49, "tags": [1, null]})
    );
    assert!(session.other.is_empty(), "{:?}", session.other);
    assert!(
        session.subject.contains(&format!("CN={SESSION_ID}")),
        "{}",
        session.subject
    );
    assert_eq!(session.serial, issued.body["serial"].as_str().unwrap());
    assert_eq!(
        session.fingerprint_sha256,
        issued.body["fingerprint_sha256"].as_str().unwrap()
    );
    assert_eq!(
        rfc3339(session.not_after),
        issued.body["not_after"].as_str().unwrap()
    );
    assert_eq!(
        rfc3339(session.not_before),
        issued.body["not_before"].as_str().unwrap()
    );

    // The same with the chain the client sends, and from DER anchors.
    assert_eq!(verifier.verify(&issued.presented()).unwrap(), session);
    let from_der = Verifier::builder()
        .ca_der(issued.chain[1].clone())
        .ca_der(issued.chain[0].clone())
        .claim("agent", AGENT_OID, ClaimType::String)
        .claim("geo", GEO_OID, ClaimType::Json)
        .clock(clock(t0()))
        .build()
        .unwrap();
    assert_eq!(from_der.verify(issued.leaf_only()).unwrap(), session);

    // A verifier told about no profile claims still verifies; the claims
    // under the arc come back by OID.
    let plain = Verifier::builder()
        .ca_pem(&ca_pem)
        .clock(clock(t0()))
        .build()
        .unwrap();
    let session = plain.verify(issued.leaf_only()).unwrap();
    assert!(session.claims.is_empty());
    assert_eq!(session.other[AGENT_OID], "iOS Agent String ✓");
    assert_eq!(
        serde_json::from_str::<Value>(&session.other[GEO_OID]).unwrap(),
        json!({"lat": "52.15", "lon": 4.49, "tags": [1, null]})
    );
}

#[tokio::test]
async fn absent_claims_are_none_and_the_anonymous_caller_has_no_requester() {
    let service = TestService::new().await;
    let body = issue_json(&service.state, json!({})).await.json();
    let issued = Issued::from_body(body);
    let verifier = verifier_at(&ca_pem_of(&service.state).await, t0());
    let session = verifier.verify(&[issued.leaf]).unwrap();
    // The signer makes up a session id when none is given.
    assert!(session.session_id.is_some());
    assert_eq!(session.transaction_id, None);
    assert_eq!(session.requester, None);
    assert!(session.claims.is_empty());
}

#[tokio::test]
async fn an_intermediate_is_found_in_the_configured_chain_or_in_what_the_peer_sends() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let issued = issue_as_principal(&state, &json!({"session_id": SESSION_ID})).await;
    assert_eq!(issued.chain.len(), 2, "issuing CA and root");

    // Trusting only the root: the leaf alone has no path, the leaf with the
    // intermediate the client sends does.
    let root_only = Verifier::builder()
        .ca_der(issued.chain[1].clone())
        .clock(clock(t0()))
        .build()
        .unwrap();
    let err = root_only.verify(issued.leaf_only()).unwrap_err();
    assert!(
        matches!(err, VerifyError::UntrustedIssuer { .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), VerifyErrorKind::NotTrusted);
    let session = root_only.verify(&issued.presented()).unwrap();
    assert_eq!(session.session_id.as_deref(), Some(SESSION_ID));

    // Given only the intermediate (not self-signed), it is the anchor.
    let intermediate_only = Verifier::builder()
        .ca_der(issued.chain[0].clone())
        .clock(clock(t0()))
        .build()
        .unwrap();
    intermediate_only.verify(issued.leaf_only()).unwrap();
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_not_trusted() {
    let ours = TestService::new().await;
    let verifier = verifier_at(&ca_pem_of(&ours.state).await, t0());

    // Another CA with another name: no path at all.
    let dir = tempfile::tempdir().unwrap();
    let other_dir = dir.path().join("other");
    session_ca::create_ca(
        &session_ca::InitOptions {
            dir: other_dir.clone(),
            key_type: KeyType::EcdsaP256,
            subject: "CN=Somebody Else's CA,O=elsewhere,C=NL".into(),
            validity_days: 30,
            intermediate: false,
            path_len: 0,
            force: true,
        },
        t0() - Duration::days(1),
    )
    .unwrap();
    let other = state_for(&other_dir, "", t0(), t0()).await;
    let foreign = Issued::from_body(
        issue_json(&other, json!({"session_id": SESSION_ID}))
            .await
            .json(),
    );
    let err = verifier.verify(foreign.leaf_only()).unwrap_err();
    assert!(
        matches!(err, VerifyError::UntrustedIssuer { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Somebody Else"), "{err}");
    // Sending the other CA along does not help: it is not an anchor.
    assert!(verifier.verify(&foreign.presented()).is_err());

    // Another CA with the same name as ours: the path exists by name, but
    // the signature does not verify with our CA's key.
    let twin = TestService::new().await;
    let twin_cert = Issued::from_body(
        issue_json(&twin.state, json!({"session_id": SESSION_ID}))
            .await
            .json(),
    );
    let err = verifier.verify(&[twin_cert.leaf]).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
    assert_eq!(err.kind(), VerifyErrorKind::NotTrusted);
}

#[tokio::test]
async fn validity_is_checked_at_the_verifier_clock_with_the_skew() {
    let service = TestService::new().await;
    let issued = Issued::from_body(
        issue_json(
            &service.state,
            json!({"session_id": SESSION_ID, "ttl_seconds": 300}),
        )
        .await
        .json(),
    );
    let ca_pem = ca_pem_of(&service.state).await;
    let not_after = t0() + Duration::seconds(300);
    let not_before = t0() - Duration::seconds(30);
    let leaf = [issued.leaf.clone()];

    // Inside the default 60 s skew on both sides.
    verifier_at(&ca_pem, not_after + Duration::seconds(60))
        .verify(&leaf)
        .expect("60 s after notAfter is within the skew");
    verifier_at(&ca_pem, not_before - Duration::seconds(60))
        .verify(&leaf)
        .expect("60 s before notBefore is within the skew");

    let checked = not_after + Duration::seconds(61);
    let err = verifier_at(&ca_pem, checked).verify(&leaf).unwrap_err();
    match &err {
        VerifyError::Expired {
            certificate,
            not_after: reported,
            checked_at,
            skew,
        } => {
            assert_eq!(certificate, "the certificate");
            assert_eq!(*reported, not_after);
            assert_eq!(*checked_at, checked);
            assert_eq!(*skew, StdDuration::from_secs(60));
        }
        other => panic!("want Expired, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("expired at 2026-01-01T00:05:00Z")
            && text.contains("checked at 2026-01-01T00:06:01Z"),
        "{text}"
    );

    let checked = not_before - Duration::seconds(61);
    let err = verifier_at(&ca_pem, checked).verify(&leaf).unwrap_err();
    assert!(
        matches!(&err, VerifyError::NotYetValid { not_before: nb, checked_at, .. }
            if *nb == not_before && *checked_at == checked),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("not valid before 2025-12-31T23:59:30Z"),
        "{err}"
    );

    // With no skew, one second past notAfter is too late.
    let strict = Verifier::builder()
        .ca_pem(&ca_pem)
        .clock(clock(not_after + Duration::seconds(1)))
        .skew(StdDuration::ZERO)
        .build()
        .unwrap();
    assert!(matches!(
        strict.verify(&leaf),
        Err(VerifyError::Expired { .. })
    ));

    // An expired CA is named as such.
    let err = verifier_at(&ca_pem, t0() + Duration::days(400))
        .verify(&leaf)
        .unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err:?}");
}

/// The skew widens a certificate's validity, never a CRL's: a leaf expired
/// (or not yet valid) within the skew is checked again at the shifted
/// instant, and a CRL's nextUpdate is still checked at the real time. A CRL document with
/// text before its PEM block is read as PEM.
#[tokio::test]
async fn the_skew_never_stretches_a_crl_past_its_next_update() {
    let service = TestService::new().await;
    let issued = Issued::from_body(
        issue_json(
            &service.state,
            json!({"session_id": SESSION_ID, "ttl_seconds": 300}),
        )
        .await
        .json(),
    );
    let ca_pem = ca_pem_of(&service.state).await;
    let not_after = t0() + Duration::seconds(300);
    let issuer = rcgen_issuer(&service).await;
    let crl_until = |next_update: OffsetDateTime, number: u64| {
        rcgen::CertificateRevocationListParams {
            this_update: t0() - Duration::minutes(10),
            next_update,
            crl_number: rcgen::SerialNumber::from(number.to_be_bytes().to_vec()),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&issuer)
        .unwrap()
        .pem()
        .unwrap()
    };
    // Checked 45 s after the leaf's notAfter (inside the 60 s skew).
    let checked = not_after + Duration::seconds(45);
    let with_crl = |pem: &str| {
        Verifier::builder()
            .ca_pem(&ca_pem)
            .crl_pem(pem)
            .clock(clock(checked))
            .build()
            .unwrap()
    };
    let leaf = [issued.leaf.clone()];
    with_crl(&crl_until(not_after + Duration::seconds(120), 1))
        .verify(&leaf)
        .expect("a fresh CRL, and the leaf within the skew");
    // The CRL's nextUpdate passed 15 s ago: stale, though the shifted
    // instant the leaf is checked at lies before it.
    let stale_at = not_after + Duration::seconds(30);
    let verifier = with_crl(&crl_until(stale_at, 1));
    match verifier.verify(&leaf) {
        Err(VerifyError::StaleCrl {
            next_update,
            checked_at,
            ..
        }) => assert_eq!((next_update, checked_at), (stale_at, checked)),
        other => panic!("want StaleCrl, got {other:?}"),
    }
    // A newer CRL, as `openssl crl -text` writes it (text first), replaces it.
    let newer = crl_until(not_after + Duration::seconds(120), 2);
    verifier
        .crls()
        .update(format!(
            "Certificate Revocation List (CRL):\n        Version 2 (0x1)\n{newer}"
        ))
        .unwrap();
    verifier.verify(&leaf).expect("the newer CRL is fresh");

    // Nor is a CRL cut short: a leaf not yet valid (within the skew) is
    // checked at an instant ahead, where a CRL still fresh now would be
    // past its nextUpdate.
    let not_before = t0() - Duration::seconds(30);
    let early = not_before - Duration::seconds(45);
    let ahead = Verifier::builder()
        .ca_pem(&ca_pem)
        .crl_pem(crl_until(early + Duration::seconds(30), 3))
        .clock(clock(early))
        .build()
        .unwrap();
    ahead
        .verify(&leaf)
        .expect("a CRL fresh now, and the leaf within the skew");
}

/// The test CA of a [`TestService`] as an rcgen issuer, to sign crafted
/// certificates that the signer itself would never produce.
async fn rcgen_issuer(service: &TestService) -> rcgen::Issuer<'static, KeyPair> {
    let material = FileCaSource::new(service.ca_dir()).load().await.unwrap();
    let key = KeyPair::from_pem(material.key_pem().unwrap().expose()).unwrap();
    rcgen::Issuer::from_ca_cert_pem(&material.cert_pem, key).unwrap()
}

fn claim_ext(arc: u64, content: Vec<u8>) -> CustomExtension {
    let mut oid = ARC;
    oid[8] = arc;
    CustomExtension::from_oid_content(&oid, content)
}

/// A client certificate signed by `issuer` with the given EKUs and
/// extensions, valid from a minute before t0 for five minutes.
fn crafted(
    issuer: &rcgen::Issuer<'_, KeyPair>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    extensions: Vec<CustomExtension>,
) -> (CertificateDer<'static>, KeyPair) {
    crafted_until(issuer, ekus, extensions, t0() + Duration::minutes(5))
}

fn crafted_until(
    issuer: &rcgen::Issuer<'_, KeyPair>,
    ekus: Vec<ExtendedKeyUsagePurpose>,
    extensions: Vec<CustomExtension>,
    not_after: OffsetDateTime,
) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SESSION_ID);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42; 16]));
    params.not_before = t0() - Duration::minutes(1);
    params.not_after = not_after;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = ekus;
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = extensions;
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.der().clone(), key)
}

#[tokio::test]
async fn a_certificate_without_client_auth_is_refused() {
    let service = TestService::new().await;
    let issuer = rcgen_issuer(&service).await;
    let verifier = verifier_at(&ca_pem_of(&service.state).await, t0());
    let session_id = || claim_ext(1, encode_claim_value(SESSION_ID));

    // The control: the same certificate with clientAuth verifies.
    let (good, _) = crafted(
        &issuer,
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        vec![session_id()],
    );
    assert_eq!(
        verifier.verify(&[good]).unwrap().session_id.as_deref(),
        Some(SESSION_ID)
    );

    for (ekus, want) in [
        (
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            "ExtendedKeyUsage (serverAuth) does not include clientAuth",
        ),
        (vec![], "no ExtendedKeyUsage extension"),
    ] {
        let (cert, _) = crafted(&issuer, ekus, vec![session_id()]);
        let err = verifier.verify(&[cert]).unwrap_err();
        assert!(matches!(err, VerifyError::NotClientAuth(_)), "{err:?}");
        assert!(err.to_string().contains(want), "{err}");
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted);
    }
}

#[tokio::test]
async fn duplicate_and_malformed_claims_are_errors() {
    let service = TestService::new().await;
    let issuer = rcgen_issuer(&service).await;
    let verifier = verifier_at(&ca_pem_of(&service.state).await, t0());
    let client = vec![ExtendedKeyUsagePurpose::ClientAuth];

    let cases: Vec<(Vec<CustomExtension>, &str)> = vec![
        (
            vec![
                claim_ext(1, encode_claim_value(SESSION_ID)),
                claim_ext(1, encode_claim_value("another session")),
            ],
            "claim session_id (1.3.6.1.4.1.32473.1.1) appears more than once",
        ),
        (
            vec![
                claim_ext(100, encode_claim_value("a")),
                claim_ext(100, encode_claim_value("a")),
            ],
            "claim agent (1.3.6.1.4.1.32473.1.100) appears more than once",
        ),
        (
            vec![
                claim_ext(7, encode_claim_value("x")),
                claim_ext(7, encode_claim_value("y")),
            ],
            "claim (unnamed) (1.3.6.1.4.1.32473.1.7) appears more than once",
        ),
        (
            // PrintableString, not UTF8String.
            vec![claim_ext(1, vec![0x13, 0x03, b'a', b'b', b'c'])],
            "claim session_id (1.3.6.1.4.1.32473.1.1) is malformed: a PrintableString",
        ),
        (
            vec![claim_ext(2, vec![0x0c, 0x02, 0xc3, 0x28])],
            "claim transaction_id (1.3.6.1.4.1.32473.1.2) is malformed: a UTF8String whose bytes are not UTF-8",
        ),
        (
            vec![claim_ext(100, vec![0x0c, 0x05, b'a'])],
            "claim agent (1.3.6.1.4.1.32473.1.100) is malformed: not DER",
        ),
        (
            vec![claim_ext(101, encode_claim_value("{\"lat\": "))],
            "claim geo (1.3.6.1.4.1.32473.1.101) is malformed: not valid JSON",
        ),
        (
            vec![claim_ext(9, vec![0x04, 0x01, 0x00])],
            "claim (unnamed) (1.3.6.1.4.1.32473.1.9) is malformed",
        ),
    ];
    for (extensions, want) in cases {
        let (cert, _) = crafted(&issuer, client.clone(), extensions);
        let err = verifier.verify(&[cert]).unwrap_err();
        // Malformed claims are reported only after the trust check passed.
        assert_eq!(err.kind(), VerifyErrorKind::MalformedClaims, "{err:?}");
        assert!(
            err.to_string().starts_with(want),
            "want {want:?}, got {err}"
        );
    }

    // A missing session id is absent, not an error; a string claim holding
    // JSON text stays a string.
    let (cert, _) = crafted(
        &issuer,
        client.clone(),
        vec![claim_ext(100, encode_claim_value("{\"not\":\"parsed\"}"))],
    );
    let session = verifier.verify(&[cert]).unwrap();
    assert_eq!(session.session_id, None);
    assert_eq!(session.claims["agent"], json!("{\"not\":\"parsed\"}"));

    // An extension outside the arc that nobody named is not a claim.
    let (cert, _) = crafted(
        &issuer,
        client,
        vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            vec![0x04, 0x00],
        )],
    );
    let session = verifier.verify(&[cert]).unwrap();
    assert!(session.other.is_empty());
}

#[test]
fn caller_misuse_is_its_own_kind() {
    let cases: Vec<(Result<Verifier, VerifyError>, &str)> = vec![
        (Verifier::from_pem(""), "no CA certificate given"),
        (
            Verifier::from_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            "CA certificates: certificate 1: malformed PEM",
        ),
        (
            Verifier::from_der(&[CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])]),
            "CA certificate 1: not an X.509 certificate",
        ),
        (
            Verifier::builder()
                .ca_der(CertificateDer::from(vec![0x30, 0x00]))
                .build(),
            "CA certificate 1",
        ),
    ];
    for (result, want) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::Misuse, "{err:?}");
        assert!(
            err.to_string().starts_with(want),
            "want {want:?}, got {err}"
        );
    }
}

/// A TLS 1.3 handshake in memory: a rustls server using the adapter, a
/// rustls client presenting `chain`/`key`. Returns the server's result.
async fn handshake(
    verifier: &Verifier,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = session_ca::crypto::rustls_provider();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&server_key)
        .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(
            verifier.rustls_client_verifier(&session_ca::crypto::rustls_provider()),
        )
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::try_from(server_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut stream = acceptor.accept(server_io).await?;
        stream.write_all(b"ok").await?;
        stream.shutdown().await
    });
    let client = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = connector.connect(name, client_io).await?;
        let mut text = Vec::new();
        stream.read_to_end(&mut text).await.map(|_| text)
    });
    let server = server.await.unwrap();
    let _ = client.await.unwrap();
    server.map_err(|e| e.to_string())
}

fn key_of(body: &Value) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(body["private_key"].as_str().unwrap().as_bytes()).unwrap()
}

#[tokio::test]
async fn the_rustls_adapter_decides_the_handshake_with_the_verifier_clock() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let issued = issue_as_principal(&state, &json!({"session_id": SESSION_ID})).await;
    let ca_pem = ca_pem_of(&state).await;

    // The rustls adapter asks for a certificate, hints our CAs, and insists.
    let verifier = verifier_at(&ca_pem, t0());
    let adapter = verifier.rustls_client_verifier(&session_ca::crypto::rustls_provider());
    use rustls::server::danger::ClientCertVerifier;
    assert!(adapter.offer_client_auth() && adapter.client_auth_mandatory());
    assert_eq!(adapter.root_hint_subjects().len(), 2);

    handshake(&verifier, issued.presented(), key_of(&issued.body))
        .await
        .expect("a good certificate completes the handshake");

    // The verifier's fixed clock, not the wall clock, decides: an hour after
    // t0 the five-minute certificate has expired.
    let late = verifier_at(&ca_pem, t0() + Duration::hours(1));
    let err = handshake(&late, issued.presented(), key_of(&issued.body))
        .await
        .unwrap_err();
    assert!(err.contains("expired"), "{err}");

    // A certificate from another CA of the same name fails the handshake:
    // webpki finds the issuer by name and the signature does not verify.
    let other = TestService::with(
        KeyType::EcdsaP256,
        false,
        t0() - Duration::days(1),
        30,
        t0(),
    )
    .await;
    let verifier_other = verifier_at(&ca_pem_of(&other.state).await, t0());
    let err = handshake(&verifier_other, issued.presented(), key_of(&issued.body))
        .await
        .unwrap_err();
    assert!(err.contains("BadSignature"), "{err}");
}

#[test]
fn rustls_errors_carry_the_reason() {
    let expired = VerifyError::Expired {
        certificate: "the certificate".into(),
        not_after: t0(),
        checked_at: t0() + Duration::minutes(2),
        skew: StdDuration::from_secs(60),
    };
    assert!(matches!(
        rustls::Error::from(expired),
        rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
    ));
    let untrusted = VerifyError::UntrustedIssuer {
        issuer: "CN=x".into(),
    };
    assert_eq!(
        rustls::Error::from(untrusted),
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    let claim = VerifyError::MalformedClaim {
        claim: "geo".into(),
        oid: GEO_OID.into(),
        why: "not valid JSON".into(),
    };
    // rustls prints `Other` with Debug: the variant and its fields survive.
    let text = rustls::Error::from(claim).to_string();
    assert!(
        text.contains("MalformedClaim") && text.contains("\"geo\""),
        "{text}"
    );
    assert_eq!(
        rustls::Error::from(VerifyError::NoCertificate),
        rustls::Error::NoCertificatesPresented
    );
}

#[test]
fn the_verifier_is_shareable() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Verifier>();
    shareable::<session_ca_verify::RustlsClientVerifier>();
}

#[tokio::test]
async fn an_expired_ca_is_named_in_the_error() {
    // The signer never issues past its CA's notAfter, so the leaf that
    // outlives its CA is crafted: CA valid until t0 + 1 day, leaf until t0 + 3 days.
    let service =
        TestService::with(KeyType::EcdsaP256, false, t0() - Duration::days(1), 2, t0()).await;
    let issuer = rcgen_issuer(&service).await;
    let (cert, _) = crafted_until(
        &issuer,
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        vec![],
        t0() + Duration::days(3),
    );
    let ca_pem = ca_pem_of(&service.state).await;
    verifier_at(&ca_pem, t0())
        .verify(std::slice::from_ref(&cert))
        .unwrap();
    let err = verifier_at(&ca_pem, t0() + Duration::days(2))
        .verify(&[cert])
        .unwrap_err();
    match &err {
        VerifyError::Expired { certificate, .. } => assert!(
            certificate.starts_with("the CA certificate")
                && certificate.contains("Test Issuing CA"),
            "{err}"
        ),
        other => panic!("want Expired, got {other:?}"),
    }
}
