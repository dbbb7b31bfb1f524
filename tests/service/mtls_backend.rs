//! The `mtls_backend` example as a real server, called with curl: a
//! certificate from our signer gets its claims back; another CA's, an
//! expired one and one without clientAuth fail the TLS handshake. The curl
//! tests run with scripts/test; argument errors are checked without curl.

use crate::common;
use crate::common::examples;
use crate::common::tools;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use examples::{example_bin, Backend, CLAIMS};
use serde_json::{json, Value};
use session_ca::KeyType;
use session_ca_verify::encode_claim_value;
use time::{Duration, OffsetDateTime};
use tools::run;

/// Calls the backend with curl presenting `{prefix}cert.pem`/`{prefix}key.pem`.
fn curl(dir: &Path, port: u16, prefix: &str) -> Output {
    run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--cacert",
            "server.pem",
            "--cert",
            &format!("{prefix}cert.pem"),
            "--key",
            &format!("{prefix}key.pem"),
            &format!("https://localhost:{port}/any/path"),
        ],
        dir,
    )
}

fn write_reply(dir: &Path, body: &Value, prefix: &str) {
    for (field, file) in [("certificate", "cert"), ("private_key", "key")] {
        std::fs::write(
            dir.join(format!("{prefix}{file}.pem")),
            body[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {body}")),
        )
        .unwrap();
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Asserts curl failed in the handshake with `alert`, got no body, and the
/// backend logged `reason`.
fn assert_refused(dir: &Path, backend: &Backend, prefix: &str, alert: &str, reason: &str) {
    let out = curl(dir, backend.port, prefix);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{prefix}: curl succeeded: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{prefix}: a body came back: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr.contains(alert),
        "{prefix}: want {alert:?}, got {stderr}"
    );
    let log = backend.log_containing(reason);
    assert!(
        log.contains(reason),
        "{prefix}: backend log lacks {reason:?}: {log}"
    );
}

#[tokio::test]
#[ignore = "needs curl; run scripts/test"]
async fn the_backend_answers_trusted_callers_with_their_claims_and_refuses_the_rest() {
    let now = OffsetDateTime::now_utc();
    let ours = TestService::with(KeyType::EcdsaP256, true, now - Duration::hours(1), 30, now).await;
    let dir = ours.dir.path();
    tools::write_server_identity(dir);
    std::fs::write(dir.join("ca.pem"), get(&ours.state, "/v1/ca").await.body).unwrap();

    // Our signer's certificate, with claims.
    let good = issue_json(
        &ours.state,
        json!({
            "session_id": SESSION_ID,
            "transaction_id": "tx-2018-11-08-0001",
            "claims": {"agent": "iOS Agent String", "geo": {"lat": "52.15", "lon": "4.49"}}
        }),
    )
    .await
    .json();
    write_reply(dir, &good, "good-");

    // Another CA's (under another name, so no path at all).
    let other_dir = dir.join("other-ca");
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
        now - Duration::hours(1),
    )
    .unwrap();
    let other = state_for(&other_dir, "", now, now).await;
    write_reply(
        dir,
        &issue_json(&other, json!({"session_id": SESSION_ID}))
            .await
            .json(),
        "other-",
    );

    // Ours, but serverAuth only (crafted with rcgen under our issuing CA).
    let material = session_ca::CaSource::load(&session_ca::FileCaSource::new(ours.ca_dir()))
        .await
        .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &material.cert_pem,
        rcgen::KeyPair::from_pem(material.key_pem().unwrap().expose()).unwrap(),
    )
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SESSION_ID);
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + Duration::minutes(5);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 32473, 1, 1],
        encode_claim_value(SESSION_ID),
    )];
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("server-only-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server-only-key.pem"), key.serialize_pem()).unwrap();

    let backend = Backend::start(dir, "backend", "ca.pem", &CLAIMS);

    let out = curl(dir, backend.port, "good-");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(body["session_id"], SESSION_ID);
    assert_eq!(body["transaction_id"], "tx-2018-11-08-0001");
    assert_eq!(body["requester"], Value::Null, "anonymous signer");
    assert_eq!(body["request_id"], good["request_id"]);
    assert_eq!(
        body["claims"],
        json!({"agent": "iOS Agent String", "geo": {"lat": "52.15", "lon": "4.49"}})
    );
    assert_eq!(body["serial"], good["serial"]);
    assert_eq!(body["not_after"], good["not_after"]);
    assert!(
        body["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("CN={SESSION_ID}")),
        "{body}"
    );

    assert_refused(dir, &backend, "other-", "alert unknown ca", "UnknownIssuer");
    assert_refused(
        dir,
        &backend,
        "server-only-",
        "alert unsupported certificate",
        "InvalidPurpose",
    );

    // The same good certificate, to a backend whose clock is past its
    // notAfter by more than the 60 s skew.
    let not_after = time::OffsetDateTime::parse(
        good["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    );
    let late = match not_after {
        Ok(t) => t + Duration::seconds(120),
        Err(_) => now + Duration::hours(1),
    };
    let expired = Backend::start(
        dir,
        "expired",
        "ca.pem",
        &[&CLAIMS[..], &["--now", &rfc3339(late)]].concat(),
    );
    assert_refused(
        dir,
        &expired,
        "good-",
        "alert certificate expired",
        "certificate expired",
    );

    // And the first backend still serves after the refusals.
    assert!(curl(dir, backend.port, "good-").status.success());
}

#[test]
fn bad_arguments_are_clear_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    tools::write_server_identity(dir.path());
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    let backend = |args: &[&str]| {
        let out = Command::new(example_bin("mtls_backend"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };
    let base = ["--listen", "127.0.0.1:0", "--cert", "server.pem"];
    let key = ["--key", "server-key.pem"];
    for (extra, want) in [
        (
            &["--ca", "missing.pem", key[0], key[1]][..],
            "reading missing.pem",
        ),
        (
            &["--ca", "junk.pem", key[0], key[1]][..],
            "no CA certificate given",
        ),
        (
            &[
                "--ca",
                "server.pem",
                "--claim",
                "agent=1.2.3",
                key[0],
                key[1],
            ][..],
            "expected NAME=OID:TYPE",
        ),
        (
            &[
                "--ca",
                "server.pem",
                "--claim",
                "agent=1.2.x:string",
                key[0],
                key[1],
            ][..],
            "invalid OID",
        ),
        (
            &["--ca", "server.pem", "--now", "yesterday", key[0], key[1]][..],
            "--now",
        ),
        (
            &["--ca", "server.pem", "--key", "server.pem"][..],
            "private key from server.pem",
        ),
        (
            &["--ca", "server.pem", "--key", "junk.pem"][..],
            "private key from junk.pem",
        ),
    ] {
        let stderr = backend(&[&base[..], extra].concat());
        assert!(
            stderr.contains(want),
            "{extra:?}: want {want:?}, got {stderr}"
        );
    }
}
