//! Revocation by fact and the CRL: a rule refuses issuance for what it
//! names and puts every unexpired certificate it matches on the issuing
//! CA's CRL; the CRL is an RFC 5280 v2 CRL that openssl and pkilint accept
//! and nginx enforces; every error of the two routes.

use crate::common::{get, issue_json, send, t0, tools, Reply, TestService, SESSION_ID};

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};
use session_ca::{AppState, FixedClock, Ledger, SqliteStore};
use x509_parser::prelude::{CertificateRevocationList, FromDer};

/// A loopback signer (the local user is the administrator) with an SQLite
/// ledger in its directory.
async fn with_ledger() -> (TestService, AppState) {
    let service = TestService::new().await;
    let mut state = service.state.clone();
    let store = SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    state.ledger = Ledger::new(Arc::new(store));
    (service, state)
}

async fn revoke(state: &AppState, body: Value) -> Reply {
    send(
        state,
        Request::post("/v1/revocations")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn issue_for(state: &AppState, session: &str, transaction: &str) -> Reply {
    issue_json(
        state,
        json!({"session_id": session, "transaction_id": transaction}),
    )
    .await
}

fn serial_of(reply: &Reply) -> String {
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["serial"].as_str().unwrap().to_owned()
}

/// Serials as hex without DER's leading zero octet, to compare with a CRL's.
fn bare(serial: &str) -> String {
    serial.trim_start_matches("00").to_ascii_lowercase()
}

/// The CRL's entries (bare serial, reason code) and its CRL number.
fn read_crl(der: &[u8]) -> (Vec<(String, Option<u8>)>, u64) {
    let (rest, crl) = CertificateRevocationList::from_der(der).expect("a DER CRL");
    assert!(rest.is_empty());
    let entries = crl
        .iter_revoked_certificates()
        .map(|entry| {
            (
                bare(&crate::common::hex(entry.raw_serial())),
                entry.reason_code().map(|(_, code)| code.0),
            )
        })
        .collect();
    let number = crl
        .crl_number()
        .and_then(|n| u64::try_from(n.clone()).ok())
        .expect("a CRL number");
    (entries, number)
}

#[tokio::test]
async fn a_revocation_refuses_what_it_names_and_lists_what_it_matches() {
    let (_service, state) = with_ledger().await;
    let other_session = "0f2c9f0e-5b7a-4e8e-9d51-3d3b2b7f6a10";
    let third_session = "7d1c5c8e-0b7e-4f61-8f7c-6f0e2f7e9a11";
    let first = issue_for(&state, SESSION_ID, "tx-a").await;
    let revoked_a = serial_of(&first);
    let first_not_after = time::OffsetDateTime::parse(
        first.json()["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let revoked_b = serial_of(&issue_for(&state, SESSION_ID, "tx-b").await);
    let by_serial = serial_of(&issue_for(&state, other_session, "tx-c").await);
    let untouched = serial_of(&issue_for(&state, third_session, "tx-d").await);

    // A session: both of its certificates, and its requests from now on.
    let reply = revoke(
        &state,
        json!({"session_id": SESSION_ID, "reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let answer = reply.json();
    assert_eq!(answer["matched"], 2);
    assert_eq!(answer["truncated"], false);
    assert_eq!(answer["revocation"]["session_id"], SESSION_ID);
    assert_eq!(answer["revocation"]["reason"], "keyCompromise");
    assert_eq!(answer["revocation"]["revoked_at"], "2026-01-01T00:00:00Z");
    assert_eq!(answer["revocation"]["expires"], Value::Null);
    assert_eq!(answer["revocation"]["revoked_by"], "anonymous");
    let mut listed: Vec<&str> = answer["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected = vec![revoked_a.as_str(), revoked_b.as_str()];
    expected.sort();
    assert_eq!(listed, expected);

    let refused = issue_for(&state, SESSION_ID, "tx-e").await;
    assert_eq!(
        (refused.status.as_u16(), refused.code().as_str()),
        (403, "revoked")
    );
    assert!(
        refused.message().contains("session_id") && refused.message().contains("keyCompromise"),
        "{}",
        refused.message()
    );
    assert!(refused.json().get("certificate").is_none());
    // A dry run says so too.
    let dry = send(
        &state,
        Request::post("/v1/certificates?dry_run=true")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"session_id": SESSION_ID}).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(dry.code(), "revoked");

    // One certificate by serial (any case, DER's leading 00 or not):
    // listed, its session still served.
    let reply = revoke(
        &state,
        json!({"serial": bare(&by_serial).to_ascii_uppercase(), "reason": "superseded"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["matched"], 1);
    serial_of(&issue_for(&state, other_session, "tx-f").await);

    // A transaction, for a while: refused until `expires`, served after.
    let reply = revoke(
        &state,
        json!({"transaction_id": "tx-held", "reason": "certificateHold",
               "expires": "2026-01-01T00:02:00Z"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["matched"], 0);
    assert_eq!(
        reply.json()["revocation"]["expires"],
        "2026-01-01T00:02:00Z"
    );
    assert_eq!(
        issue_for(&state, third_session, "tx-held").await.code(),
        "revoked"
    );
    let mut later = state.clone();
    later.clock = Arc::new(FixedClock::new(t0() + time::Duration::minutes(3)));
    serial_of(&issue_for(&later, third_session, "tx-held").await);

    // The CRL: the three revoked certificates with their reasons, not the rest.
    let crl = get(&state, "/v1/crl").await;
    assert_eq!(crl.status, 200);
    assert_eq!(crl.headers[header::CONTENT_TYPE], "application/pkix-crl");
    let (mut entries, number) = read_crl(&crl.body);
    entries.sort();
    let mut expected = vec![
        (bare(&revoked_a), Some(1)),
        (bare(&revoked_b), Some(1)),
        (bare(&by_serial), Some(4)),
    ];
    expected.sort();
    assert_eq!(entries, expected);
    assert!(!entries.iter().any(|(s, _)| *s == bare(&untouched)));
    // A CRL signed within the store's index lag of its newest rule (a
    // DynamoDB index may not hold every match yet) is reused only until the
    // lag has passed since the rule, then signed again, and cached while
    // nothing changes; signed afresh, with a greater number, after a
    // revocation.
    assert_eq!(get(&state, "/v1/crl?ca=default").await.body, crl.body);
    let mut settled = state.clone();
    settled.clock = Arc::new(FixedClock::new(
        t0() + time::Duration::seconds(session_ca::CRL_INDEX_LAG),
    ));
    let cached = get(&settled, "/v1/crl").await.body;
    assert!(read_crl(&cached).1 > number, "signed again after the lag");
    assert_eq!(get(&settled, "/v1/crl?ca=default").await.body, cached);
    let reply = revoke(
        &state,
        json!({"serial": untouched, "reason": "unspecified"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let (entries, next_number) = read_crl(&get(&state, "/v1/crl").await.body);
    assert!(next_number > number, "{next_number} after {number}");
    // RFC 5280 §5.3.1: the reason unspecified is left out.
    assert!(entries.contains(&(bare(&untouched), None)));
    assert!(entries.contains(&(bare(&by_serial), Some(4))));
    // A compromise found later outranks the milder reason given first,
    // and the revocation date stays the first one's.
    let reply = revoke(
        &later_by(&state, 1),
        json!({"transaction_id": "tx-c", "reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let crl = get(&later_by(&state, 2), "/v1/crl").await.body;
    let (_, parsed) = CertificateRevocationList::from_der(&crl).unwrap();
    let entry = parsed
        .iter_revoked_certificates()
        .find(|e| bare(&crate::common::hex(e.raw_serial())) == bare(&by_serial))
        .expect("listed");
    assert_eq!(entry.revocation_date.timestamp(), t0().unix_timestamp());
    let (entries, _) = read_crl(&crl);
    assert!(
        entries.contains(&(bare(&by_serial), Some(1))),
        "{entries:?}"
    );
    assert!(
        !entries.contains(&(bare(&by_serial), Some(4))),
        "{entries:?}"
    );
    // A certificate that has expired stays listed for one `nextUpdate`
    // period (RFC 5280 §3.3: on a CRL issued after its validity ended),
    // then leaves.
    let next_update = state.config.crl.next_update;
    let minutes_after = |at: time::OffsetDateTime| (at - t0()).whole_minutes() + 1;
    let (entries, _) = read_crl(
        &get(&later_by(&state, minutes_after(first_not_after)), "/v1/crl")
            .await
            .body,
    );
    assert!(
        entries.contains(&(bare(&revoked_a), Some(1))),
        "{entries:?}"
    );
    let (entries, _) = read_crl(
        &get(
            &later_by(&state, minutes_after(first_not_after + next_update)),
            "/v1/crl",
        )
        .await
        .body,
    );
    assert!(entries.is_empty(), "{entries:?}");

    let pem = get(&state, "/v1/crl?format=pem").await;
    assert_eq!(pem.status, 200);
    let text = String::from_utf8(pem.body).unwrap();
    assert!(text.starts_with("-----BEGIN X509 CRL-----\n"), "{text}");
}

/// `state` with its clock `minutes` later.
fn later_by(state: &AppState, minutes: i64) -> AppState {
    let mut later = state.clone();
    later.clock = Arc::new(FixedClock::new(t0() + time::Duration::minutes(minutes)));
    later
}

#[tokio::test]
async fn every_revocation_and_crl_error_has_its_code() {
    let (service, state) = with_ledger().await;
    for (body, code, why) in [
        (
            json!({"reason": "keyCompromise"}),
            "invalid_request",
            "exactly one of",
        ),
        (
            json!({"session_id": "a", "serial": "01", "reason": "keyCompromise"}),
            "invalid_request",
            "exactly one of",
        ),
        (json!({"session_id": "a"}), "invalid_request", "reason"),
        (
            json!({"session_id": "a", "reason": "compromised"}),
            "invalid_request",
            "keyCompromise",
        ),
        (
            json!({"session_id": "a", "reason": "removeFromCRL"}),
            "invalid_request",
            "delta",
        ),
        (
            json!({"session_id": "a", "reason": "superseded", "expires": "2025-12-31T00:00:00Z"}),
            "invalid_request",
            "not in the future",
        ),
        (
            json!({"session_id": "a", "reason": "superseded", "expires": "tomorrow"}),
            "invalid_request",
            "RFC 3339",
        ),
        (
            json!({"serial": "not-hex", "reason": "superseded"}),
            "invalid_request",
            "hexadecimal",
        ),
        (
            json!({"session_id": "", "reason": "superseded"}),
            "invalid_request",
            "session_id",
        ),
        (
            json!({"session_id": "a", "serial": null, "reason": "superseded"}),
            "invalid_request",
            "null",
        ),
        (
            json!({"session_id": "a", "reason": "superseded", "why": "x"}),
            "invalid_request",
            "why",
        ),
    ] {
        let reply = revoke(&state, body.clone()).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (400, code),
            "{body}"
        );
        assert!(reply.message().contains(why), "{body}: {}", reply.message());
    }
    let not_json = send(
        &state,
        Request::post("/v1/revocations")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"session_id\":"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (not_json.status.as_u16(), not_json.code().as_str()),
        (400, "invalid_json")
    );
    let not_json_type = send(
        &state,
        Request::post("/v1/revocations")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(not_json_type.status, 415);
    let wrong_method = get(&state, "/v1/revocations").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.headers[header::ALLOW], "POST");

    for (path, status, code) in [
        ("/v1/crl?ca=nope", 404, "unknown_ca"),
        ("/v1/crl?format=xml", 400, "invalid_query"),
        ("/v1/crl?surprise=1", 400, "invalid_query"),
    ] {
        let reply = get(&state, path).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (status, code),
            "{path}"
        );
    }

    // Without a ledger there is nothing to revoke or list.
    let reply = revoke(
        &service.state,
        json!({"session_id": "a", "reason": "superseded"}),
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (404, "not_found")
    );
    let reply = get(&service.state, "/v1/crl").await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (404, "not_found")
    );
}

/// Writes the test service's chain and one issued certificate to `dir`.
fn write_pems(dir: &Path, issued: &Value) {
    std::fs::write(dir.join("chain.pem"), crate::common::chain_of(issued)).unwrap();
    std::fs::write(
        dir.join(format!("{}.pem", issued["serial"].as_str().unwrap())),
        issued["certificate"].as_str().unwrap(),
    )
    .unwrap();
}

#[ignore = "needs openssl and pkilint; run scripts/test"]
#[tokio::test]
async fn openssl_and_pkilint_accept_the_crl_and_openssl_refuses_what_it_lists() {
    let (service, state) = with_ledger().await;
    let dir = service.dir.path();
    let revoked = issue_for(&state, SESSION_ID, "tx-1").await.json();
    let other = issue_for(&state, "0f2c9f0e-5b7a-4e8e-9d51-3d3b2b7f6a10", "tx-2")
        .await
        .json();
    write_pems(dir, &revoked);
    write_pems(dir, &other);
    let reply = revoke(
        &state,
        json!({"session_id": SESSION_ID, "reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(reply.status, 201);
    std::fs::write(dir.join("crl.der"), get(&state, "/v1/crl").await.body).unwrap();
    std::fs::write(
        dir.join("crl.pem"),
        get(&state, "/v1/crl?format=pem").await.body,
    )
    .unwrap();

    // The CRL's signature, by the issuing CA.
    let out = tools::run(
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "chain.pem",
            "-noout",
            "-verify",
        ],
        dir,
    );
    assert!(
        tools::output_text(&out).contains("verify OK"),
        "{}",
        tools::output_text(&out)
    );
    let out = tools::run(
        "openssl",
        &["crl", "-in", "crl.pem", "-noout", "-text"],
        dir,
    );
    let text = tools::output_text(&out);
    for expected in [
        "Version 2",
        "X509v3 Authority Key Identifier",
        "X509v3 CRL Number",
        "Key Compromise",
        "Last Update: Jan  1 00:00:00 2026 GMT",
        "Next Update: Jan  1 00:05:00 2026 GMT",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }

    // A verifier we did not write: the revoked certificate is refused, the
    // other accepted, at a time within the CRL's validity.
    let verify = |serial: &str| {
        let out = tools::run(
            "openssl",
            &[
                "verify",
                "-crl_check",
                "-attime",
                &(t0().unix_timestamp() + 60).to_string(),
                "-purpose",
                "sslclient",
                "-CAfile",
                "chain.pem",
                "-CRLfile",
                "crl.pem",
                &format!("{serial}.pem"),
            ],
            dir,
        );
        tools::output_text(&out)
    };
    let refused = verify(revoked["serial"].as_str().unwrap());
    assert!(refused.contains("certificate revoked"), "{refused}");
    let accepted = verify(other["serial"].as_str().unwrap());
    assert!(accepted.contains(": OK"), "{accepted}");

    // pkilint's RFC 5280 CRL linter: nothing at WARNING or above.
    let out = tools::run(
        "lint_crl",
        &[
            "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", "crl.pem",
        ],
        dir,
    );
    let findings = tools::output_text(&out);
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "pkilint: {findings}"
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

/// Issues a certificate from a running `serve` and writes `NAME.pem` and
/// `NAME-key.pem`; returns the issuance answer.
fn issue_to_files(dir: &Path, port: u16, name: &str) -> Value {
    let (status, text) = tools::http(
        port,
        "POST",
        "/v1/certificates",
        r#"{"key_type":"ecdsa-p256"}"#,
    );
    assert_eq!(status, 201, "{text}");
    let issued: Value = serde_json::from_str(&text).unwrap();
    std::fs::write(
        dir.join(format!("{name}.pem")),
        issued["certificate"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{name}-key.pem")),
        issued["private_key"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("chain.pem"), crate::common::chain_of(&issued)).unwrap();
    issued
}

#[ignore = "needs nginx and curl; run scripts/test"]
#[test]
fn nginx_with_the_crl_refuses_a_revoked_certificate_and_accepts_another() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The embedded default: a development CA and the SQLite ledger.
    let (_server, port) = tools::start_serve(BIN, dir);
    let revoked = issue_to_files(dir, port, "revoked");
    issue_to_files(dir, port, "kept");

    // `session-ca revoke`, as an operator runs it.
    let url = format!("http://127.0.0.1:{port}");
    let serial = revoked["serial"].as_str().unwrap();
    let out = tools::session_ca_in(
        BIN,
        dir,
        &[
            "revoke",
            "--url",
            &url,
            "--serial",
            serial,
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["matched"], 1);
    assert_eq!(answer["certificates"][0]["serial"], serial);
    let out = tools::session_ca_in(
        BIN,
        dir,
        &["revoke", "--url", &url, "--reason", "keyCompromise"],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a key is required: {}",
        tools::output_text(&out)
    );
    let out = tools::session_ca_in(
        BIN,
        dir,
        &[
            "revoke",
            "--url",
            &url,
            "--session-id",
            "s",
            "--reason",
            "bad",
        ],
    );
    assert!(!out.status.success());
    assert!(
        tools::output_text(&out).contains("keyCompromise"),
        "the signer's error, shown: {}",
        tools::output_text(&out)
    );

    let (status, crl) = tools::http(port, "GET", "/v1/crl?format=pem", "");
    assert_eq!(status, 200, "{crl}");
    std::fs::write(dir.join("crl.pem"), crl).unwrap();
    tools::write_server_identity(dir);
    let (_nginx, nginx_port) = tools::start_nginx(
        dir,
        &format!(
            r#"ssl_client_certificate {d}/chain.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl {d}/crl.pem;
        location / {{ return 200 "verified $ssl_client_serial\n"; }}"#,
            d = dir.display()
        ),
    );
    let (_, refused) = tools::curl_mtls(dir, nginx_port, "revoked.pem", "revoked-key.pem");
    assert!(
        refused.contains("400") && !refused.contains("verified"),
        "nginx refuses the revoked certificate: {refused}"
    );
    let log = std::fs::read_to_string(dir.join("nginx-error.log")).unwrap();
    assert!(log.contains("certificate revoked"), "{log}");
    let (ok, accepted) = tools::curl_mtls(dir, nginx_port, "kept.pem", "kept-key.pem");
    assert!(ok && accepted.starts_with("verified "), "{accepted}");

    // The verifier crate with the same CRL: its own error for the revoked one.
    let verifier = session_ca_verify::Verifier::builder()
        .ca_pem(std::fs::read(dir.join("chain.pem")).unwrap())
        .crl_pem(std::fs::read(dir.join("crl.pem")).unwrap())
        .build()
        .unwrap();
    let leaf = |name: &str| {
        use rustls_pki_types::pem::PemObject as _;
        rustls_pki_types::CertificateDer::from_pem_file(dir.join(name)).unwrap()
    };
    match verifier.verify(&[leaf("revoked.pem")]) {
        Err(session_ca_verify::VerifyError::Revoked { serial: s, .. }) => {
            assert_eq!(bare(&s), bare(serial))
        }
        other => panic!("the revoked certificate: {other:?}"),
    }
    verifier.verify(&[leaf("kept.pem")]).unwrap();
}

/// The bare serials on a CRL and its number.
fn crl_of(port: u16) -> (Vec<String>, u64) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read as _, Write as _};
    write!(
        stream,
        "GET /v1/crl HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let start = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
    let (entries, number) = read_crl(&response[start..]);
    (
        entries.into_iter().map(|(serial, _)| serial).collect(),
        number,
    )
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signers_sharing_a_dynamodb_ledger_enforce_one_revocation() {
    let moto = crate::common::moto::Moto::start();
    session_ca::create_dynamodb_table(&moto.dynamodb_client().await, "shared-ledger")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("SESSION_CA_STORE__URL", "dynamodb:shared-ledger".to_owned()),
    ];
    // The first makes the development CA; the second shares it.
    let (_a, a, _) = tools::start_serve_logged_env(BIN, dir.path(), &[], &env);
    let (_b, b, _) = tools::start_serve_logged_env(BIN, dir.path(), &[], &env);
    let body = json!({"session_id": SESSION_ID}).to_string();
    let mut serials = Vec::new();
    for port in [a, b] {
        let (status, text) = tools::http(port, "POST", "/v1/certificates", &body);
        assert_eq!(status, 201, "{text}");
        let issued: Value = serde_json::from_str(&text).unwrap();
        serials.push(bare(issued["serial"].as_str().unwrap()));
    }
    serials.sort();

    let (status, text) = tools::http(
        a,
        "POST",
        "/v1/revocations",
        &json!({"session_id": SESSION_ID, "reason": "keyCompromise"}).to_string(),
    );
    assert_eq!(status, 201, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["matched"], 2, "{answer}");
    // The very next request to the other signer is refused.
    let (status, text) = tools::http(b, "POST", "/v1/certificates", &body);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("\"revoked\""), "{text}");

    // Both CRLs list both certificates; the numbers grow across the two.
    let (mut on_a, first) = crl_of(a);
    let (mut on_b, second) = crl_of(b);
    on_a.sort();
    on_b.sort();
    assert_eq!((on_a, on_b), (serials.clone(), serials));
    assert!(second > first, "{second} after {first}");
}

/// An SQLite store with what a test arranges: with `revoke_while_signing`,
/// a rule revoking the session of every certificate lands while it is
/// being signed (after the check before signing, just before its record
/// and the check that follows it: the SQLite store's own); every ledger
/// query takes `query_delay` (a slow index), and is counted in `queried`
/// once answered.
#[derive(Debug)]
struct Arranged {
    store: SqliteStore,
    revoke_while_signing: bool,
    query_delay: Duration,
    queried: std::sync::atomic::AtomicUsize,
}

impl session_ca::Store for Arranged {
    fn describe(&self) -> String {
        self.store.describe()
    }
    fn record<'a>(
        &'a self,
        record: &'a session_ca::LedgerRecord,
    ) -> session_ca::BoxFuture<'a, Result<(), session_ca::StoreError>> {
        self.store.record(record)
    }
    fn record_then_revoked<'a>(
        &'a self,
        record: session_ca::LedgerRecord,
        keys: &'a [session_ca::LedgerKey],
        now: i64,
    ) -> session_ca::BoxFuture<'a, Result<Option<session_ca::Revocation>, session_ca::StoreError>>
    {
        Box::pin(async move {
            if self.revoke_while_signing {
                let rule = session_ca::store_conformance::rule(
                    session_ca::LedgerKey::SessionId(record.session_id.clone()),
                    record.issued_at,
                    None,
                );
                self.store.revoke(&rule).await?;
            }
            self.store.record_then_revoked(record, keys, now).await
        })
    }
    fn query<'a>(
        &'a self,
        query: &'a session_ca::LedgerQuery,
    ) -> session_ca::BoxFuture<'a, Result<session_ca::LedgerPage, session_ca::StoreError>> {
        Box::pin(async move {
            tokio::time::sleep(self.query_delay).await;
            let page = self.store.query(query).await;
            self.queried
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            page
        })
    }
    fn revoke<'a>(
        &'a self,
        rule: &'a session_ca::Revocation,
    ) -> session_ca::BoxFuture<'a, Result<(), session_ca::StoreError>> {
        self.store.revoke(rule)
    }
    fn revoked<'a>(
        &'a self,
        keys: &'a [session_ca::LedgerKey],
        now: i64,
    ) -> session_ca::BoxFuture<'a, Result<Option<session_ca::Revocation>, session_ca::StoreError>>
    {
        self.store.revoked(keys, now)
    }
    fn revocations_since(
        &self,
        since: i64,
    ) -> session_ca::BoxFuture<'_, Result<Vec<session_ca::Revocation>, session_ca::StoreError>>
    {
        self.store.revocations_since(since)
    }
    fn revision(&self) -> session_ca::BoxFuture<'_, Result<u64, session_ca::StoreError>> {
        self.store.revision()
    }
    fn next_crl_number<'a>(
        &'a self,
        ca: &'a str,
    ) -> session_ca::BoxFuture<'a, Result<u64, session_ca::StoreError>> {
        self.store.next_crl_number(ca)
    }
    fn count<'a>(
        &'a self,
        hits: &'a [session_ca::Hit],
    ) -> session_ca::BoxFuture<'a, Result<Vec<u64>, session_ca::StoreError>> {
        self.store.count(hits)
    }
    fn claim<'a>(
        &'a self,
        name: &'a str,
        now: i64,
        expires: i64,
    ) -> session_ca::BoxFuture<'a, Result<bool, session_ca::StoreError>> {
        self.store.claim(name, now, expires)
    }
    fn begin<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
    ) -> session_ca::BoxFuture<'a, Result<session_ca::Begun, session_ca::StoreError>> {
        self.store.begin(lease)
    }
    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> session_ca::BoxFuture<'a, Result<Option<session_ca::Idempotent>, session_ca::StoreError>>
    {
        self.store.idempotent(id, now)
    }
    fn finish<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
        sealed: &'a [u8],
    ) -> session_ca::BoxFuture<'a, Result<(), session_ca::StoreError>> {
        self.store.finish(lease, sealed)
    }
    fn abandon<'a>(
        &'a self,
        lease: &'a session_ca::Lease,
    ) -> session_ca::BoxFuture<'a, Result<(), session_ca::StoreError>> {
        self.store.abandon(lease)
    }
}

#[tokio::test]
async fn a_certificate_revoked_while_it_was_signed_is_never_returned_and_is_on_the_crl() {
    let service = TestService::new().await;
    let mut state = service.state.clone();
    let store = SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    state.ledger = Ledger::new(Arc::new(Arranged {
        store,
        revoke_while_signing: true,
        query_delay: Duration::ZERO,
        queried: Default::default(),
    }));
    let reply = issue_for(&state, SESSION_ID, "tx-race").await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (403, "revoked"),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.json().get("certificate").is_none());
    // It was signed and recorded, so the rule puts it on the CRL.
    let page = get(&state, &format!("/v1/certificates?session_id={SESSION_ID}"))
        .await
        .json();
    let serial = page["certificates"][0]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let (entries, _) = read_crl(&get(&state, "/v1/crl").await.body);
    assert_eq!(entries, [(bare(&serial), Some(1))]);
}

/// A CA rotated under the same name (another key): its CRL lists only the
/// certificates its own key issued, never the old key's (RFC 5280 §5: a
/// CRL lists its issuer's certificates), whatever the rule matches.
#[tokio::test]
async fn after_a_rotation_the_crl_lists_only_its_own_keys_certificates() {
    let (service, state) = with_ledger().await;
    let old = serial_of(&issue_for(&state, SESSION_ID, "tx-old").await);
    crate::common::make_ca(
        &service.ca_dir(),
        session_ca::KeyType::EcdsaP256,
        false,
        t0() - time::Duration::days(1),
        365,
    );
    assert!(state.cas.refresh("default", &state.clock).await.unwrap());
    let new = serial_of(&issue_for(&state, SESSION_ID, "tx-new").await);
    let reply = revoke(
        &state,
        json!({"session_id": SESSION_ID, "reason": "keyCompromise"}),
    )
    .await;
    assert_eq!(reply.json()["matched"], 2, "the ledger holds both");
    let reply = get(&state, "/v1/crl").await;
    assert_eq!(reply.status, 200);
    let (entries, _) = read_crl(&reply.body);
    let listed: Vec<&str> = entries.iter().map(|(serial, _)| serial.as_str()).collect();
    assert_eq!(listed, vec![bare(&new).as_str()], "not {old}");
}

/// A revocation is in force once stored, so its matching and its audit
/// event (written by the same task right after the matches are read) go on
/// when its request is dropped afterwards (its client gone, its time limit
/// hit). Observed through the store, not the log: the task's query is
/// answered after the request is gone.
#[tokio::test]
async fn a_revocation_dropped_after_it_was_stored_still_reads_its_matches() {
    let service = TestService::new().await;
    let mut state = service.state.clone();
    let store = SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    let arranged = Arc::new(Arranged {
        store,
        revoke_while_signing: false,
        query_delay: Duration::from_secs(2),
        queried: Default::default(),
    });
    state.ledger = Ledger::new(arranged.clone());
    let request = revoke(
        &state,
        json!({"session_id": SESSION_ID, "reason": "keyCompromise"}),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), request)
            .await
            .is_err(),
        "dropped while its matches are read"
    );
    let queried = || arranged.queried.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        queried(),
        0,
        "no match read yet when the request was dropped"
    );
    let refused = issue_for(&state, SESSION_ID, "tx-after").await;
    assert_eq!(refused.code(), "revoked", "the rule was stored");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queried() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation's matches were never read once its request was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
