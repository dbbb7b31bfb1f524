//! Issued certificates checked by independent verifiers: `openssl verify`,
//! `openssl x509 -text`, pkilint's `lint_pkix_cert`, and a real mTLS
//! handshake with `openssl s_server` and curl. Run by scripts/test.

use crate::common;
use crate::common::tools;

use std::path::Path;

use common::*;
use serde_json::{json, Value};
use session_ca::KeyType;
use time::{Duration, OffsetDateTime};
use tools::*;

fn write_reply(dir: &Path, body: &Value, prefix: &str) {
    std::fs::write(
        dir.join(format!("{prefix}cert.pem")),
        body["certificate"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{prefix}key.pem")),
        body["private_key"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{prefix}chain.pem")), chain_of(body)).unwrap();
}

#[tokio::test]
#[ignore = "needs openssl and pkilint; run scripts/test"]
async fn openssl_and_pkilint_accept_every_key_type() {
    let t0_epoch = t0().unix_timestamp().to_string();
    for intermediate in [false, true] {
        for ca_key in KeyType::ALL {
            let service =
                TestService::with(ca_key, intermediate, t0() - Duration::days(1), 365, t0()).await;
            let dir = service.dir.path();
            for key_type in KeyType::ALL {
                let case = format!("CA {ca_key} intermediate={intermediate} leaf {key_type}");
                // "default" last: the openssl -text check below reads its certificate.
                for (profile, session_id) in [
                    ("plain", "a session id with spaces"),
                    ("default", SESSION_ID),
                ] {
                    if profile == "plain" && key_type != KeyType::EcdsaP256 {
                        continue; // the plain profile allows P-256 only
                    }
                    let body = issue_json(
                        &service.state,
                        json!({
                            "profile": profile,
                            "session_id": session_id,
                            "transaction_id": "tx-2018-11-08-0001",
                            "key_type": key_type.as_str(),
                            "claims": if profile == "default" {
                                json!({"agent": "iOS Agent String", "geo": {"lat": "52.15", "lon": "4.49"}})
                            } else { json!({}) },
                        }),
                    )
                    .await
                    .json();
                    write_reply(dir, &body, "");

                    let out = run(
                        "openssl",
                        &[
                            "verify",
                            "-x509_strict",
                            "-purpose",
                            "sslclient",
                            "-attime",
                            &t0_epoch,
                            "-CAfile",
                            "chain.pem",
                            "cert.pem",
                        ],
                        dir,
                    );
                    assert!(
                        out.status.success()
                            && String::from_utf8_lossy(&out.stdout).contains("cert.pem: OK"),
                        "{case} {profile}: openssl verify: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );

                    // pkilint: no findings at WARNING or above. The one exception is its
                    // URI check, which only accepts web URLs (python `validators.url`),
                    // while RFC 5280 §4.2.1.6 allows any URI and RFC 4122 defines urn:uuid.
                    let findings = pkilint_findings(dir, "cert.pem");
                    let unexpected: Vec<_> = findings
                        .iter()
                        .filter(|(code, message)| {
                            !(code == "pkix.invalid_uri_syntax"
                                && message
                                    == &format!("Invalid URI syntax: \"urn:uuid:{SESSION_ID}\""))
                        })
                        .collect();
                    assert!(
                        unexpected.is_empty(),
                        "{case} {profile}: pkilint: {unexpected:?}"
                    );
                    if profile == "plain" {
                        assert!(
                            findings.is_empty(),
                            "{case}: a certificate without URN SAN lints clean: {findings:?}"
                        );
                    }
                }

                // openssl reads the private key (PKCS#8 v1, for Ed25519 too)
                // and finds it matches the certificate.
                let key_pub = run("openssl", &["pkey", "-in", "key.pem", "-pubout"], dir);
                let cert_pub = run(
                    "openssl",
                    &["x509", "-in", "cert.pem", "-noout", "-pubkey"],
                    dir,
                );
                assert!(
                    key_pub.status.success(),
                    "{case}: {}",
                    String::from_utf8_lossy(&key_pub.stderr)
                );
                assert_eq!(
                    key_pub.stdout, cert_pub.stdout,
                    "{case}: key matches certificate"
                );

                // openssl's own decoding shows each claim OID with its value.
                let out = run(
                    "openssl",
                    &["x509", "-in", "cert.pem", "-noout", "-text"],
                    dir,
                );
                let text = String::from_utf8_lossy(&out.stdout);
                for (oid, value) in [
                    ("1.3.6.1.4.1.32473.1.1", SESSION_ID),
                    ("1.3.6.1.4.1.32473.1.2", "tx-2018-11-08-0001"),
                    ("1.3.6.1.4.1.32473.1.100", "iOS Agent String"),
                    ("1.3.6.1.4.1.32473.1.101", r#"{"lat":"52.15","lon":"4.49"}"#),
                ] {
                    let at = text
                        .find(&format!("{oid}:"))
                        .unwrap_or_else(|| panic!("{case}: {oid} not in:\n{text}"));
                    let shown: String = text[at..].lines().nth(1).unwrap_or("").trim().to_owned();
                    assert!(
                        shown.ends_with(value),
                        "{case}: {oid} shows {shown:?}, want ..{value:?}"
                    );
                }
                assert!(
                    text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE"),
                    "{case}"
                );
                assert!(
                    text.contains(
                        "X509v3 Key Usage: critical\n                Digital Signature\n"
                    ),
                    "{case}"
                );
                assert!(text.contains("TLS Web Client Authentication"), "{case}");
                assert!(
                    text.contains(&format!("URI:urn:uuid:{SESSION_ID}")),
                    "{case}"
                );
            }
            // openssl reads the CA keys too (Ed25519 as PKCS#8 v1).
            let key = run(
                "openssl",
                &["pkey", "-in", "ca-key.pem", "-noout"],
                &service.ca_dir(),
            );
            assert!(
                key.status.success(),
                "CA {ca_key}: {}",
                String::from_utf8_lossy(&key.stderr)
            );
            // The CA certificates lint clean too.
            for file in ["ca-cert.pem", "root-cert.pem"] {
                if file == "root-cert.pem" && !intermediate {
                    continue;
                }
                let findings = pkilint_findings(&service.ca_dir(), file);
                assert!(findings.is_empty(), "CA {ca_key} {file}: {findings:?}");
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs openssl and curl; run scripts/test"]
async fn mtls_handshake_with_openssl_s_server() {
    let now = OffsetDateTime::now_utc();
    let ours = TestService::with(KeyType::EcdsaP256, true, now - Duration::hours(1), 30, now).await;
    let other =
        TestService::with(KeyType::EcdsaP256, false, now - Duration::hours(1), 30, now).await;
    let dir = ours.dir.path();
    let (server_cert, server_key) = write_server_identity(dir);

    // A certificate from our signer, another CA's, and one that expired (issued with a clock 1 h back).
    write_reply(
        dir,
        &issue_json(&ours.state, json!({"session_id": SESSION_ID}))
            .await
            .json(),
        "good-",
    );
    write_reply(
        dir,
        &issue_json(&other.state, json!({"session_id": SESSION_ID}))
            .await
            .json(),
        "other-",
    );
    let past = ours
        .at(now - Duration::minutes(50), now - Duration::minutes(30))
        .await;
    write_reply(
        dir,
        &issue_json(&past, json!({"session_id": SESSION_ID, "ttl_seconds": 60}))
            .await
            .json(),
        "expired-",
    );

    let (_server, port) = start_s_server(dir, server_cert, server_key, "good-chain.pem");

    let (ok, text) = curl_mtls(dir, port, "good-cert.pem", "good-key.pem");
    assert!(ok, "our certificate is accepted: {text}");
    assert!(
        text.contains("s_server"),
        "the s_server status page came back: {text}"
    );

    let (ok, text) = curl_mtls(dir, port, "other-cert.pem", "other-key.pem");
    assert!(!ok, "another CA's certificate is refused: {text}");
    assert!(
        text.contains("alert unknown ca"),
        "refused for the right reason: {text}"
    );

    let (ok, text) = curl_mtls(dir, port, "expired-cert.pem", "expired-key.pem");
    assert!(!ok, "an expired certificate is refused: {text}");
    assert!(
        text.contains("alert certificate expired"),
        "refused for the right reason: {text}"
    );

    // And the accepted one still works after the refusals (the server is alive).
    let (ok, text) = curl_mtls(dir, port, "good-cert.pem", "good-key.pem");
    assert!(ok, "{text}");
}

/// A CA made by openssl with a repeated attribute in its subject: rcgen would
/// re-encode the issuer name differently, so the signer must refuse it at load.
#[tokio::test]
#[ignore = "needs openssl; run scripts/test"]
async fn a_ca_whose_name_cannot_be_reproduced_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    std::fs::create_dir(&ca_dir).unwrap();
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/OU=payments/OU=cards/CN=Odd CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca-cert.pem",
        ],
        &ca_dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source: std::sync::Arc<dyn session_ca::CaSource> =
        std::sync::Arc::new(session_ca::FileCaSource::new(ca_dir.clone()));
    let clock: session_ca::SharedClock = std::sync::Arc::new(session_ca::SystemClock);
    let err = session_ca::CaStore::from_sources(
        vec![("odd".into(), source, std::time::Duration::from_secs(60))],
        &clock,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ca-cert.pem") && err.contains("would not name it as their issuer"),
        "{err}"
    );

    // The same CA with a simple subject loads.
    let out = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/O=payments/CN=Plain CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca-cert.pem",
        ],
        &ca_dir,
    );
    assert!(out.status.success());
    let source: std::sync::Arc<dyn session_ca::CaSource> =
        std::sync::Arc::new(session_ca::FileCaSource::new(ca_dir));
    session_ca::CaStore::from_sources(
        vec![("plain".into(), source, std::time::Duration::from_secs(60))],
        &clock,
    )
    .await
    .unwrap();
}

fn openssl_ok(args: &[&str], dir: &Path) -> String {
    let out = run("openssl", args, dir);
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A key and a CSR for it made by `openssl req`, asking for CA:TRUE and
/// keyCertSign, which the signer must ignore.
fn openssl_csr(dir: &Path, name: &str, genpkey: &[&str]) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let mut args = vec!["genpkey", "-out", key.as_str()];
    args.extend_from_slice(genpkey);
    openssl_ok(&args, dir);
    openssl_ok(
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=Evil Root CA/O=Not Your Bank",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectAltName=DNS:evil.example",
            "-out",
            &csr,
        ],
        dir,
    );
    std::fs::read_to_string(dir.join(csr)).unwrap()
}

#[tokio::test]
#[ignore = "needs openssl and pkilint; run scripts/test"]
async fn csr_mode_with_csrs_made_by_openssl_req() {
    let service = TestService::new().await;
    let dir = service.dir.path();
    let t0_epoch = t0().unix_timestamp().to_string();
    std::fs::write(
        dir.join("chain.pem"),
        std::fs::read(service.ca_dir().join("chain.pem")).unwrap(),
    )
    .unwrap();
    for (name, genpkey, key_type) in [
        (
            "p256",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            "ecdsa-p256",
        ),
        (
            "p384",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "ecdsa-p384",
        ),
        ("ed25519", &["-algorithm", "ED25519"], "ed25519"),
        (
            "rsa2048",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "rsa-2048",
        ),
        (
            "rsa3072",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            "rsa-3072",
        ),
        (
            "rsa4096",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
            "rsa-4096",
        ),
    ] {
        let csr = openssl_csr(dir, name, genpkey);
        let reply = issue_json(
            &service.state,
            json!({"session_id": SESSION_ID, "transaction_id": "tx-csr", "csr": csr}),
        )
        .await;
        assert_eq!(reply.status, 201, "{name}: {}", reply.json());
        let body = reply.json();
        assert_eq!(body["key_type"], key_type, "{name}");
        assert!(body.get("private_key").is_none(), "{name}");
        let cert = format!("{name}.pem");
        std::fs::write(dir.join(&cert), body["certificate"].as_str().unwrap()).unwrap();

        // An independent verifier accepts it as a client certificate ...
        let verified = openssl_ok(
            &[
                "verify",
                "-x509_strict",
                "-purpose",
                "sslclient",
                "-attime",
                &t0_epoch,
                "-CAfile",
                "chain.pem",
                &cert,
            ],
            dir,
        );
        assert!(verified.contains(&format!("{cert}: OK")), "{verified}");
        // ... for exactly the CSR's key ...
        let csr_key = openssl_ok(
            &["req", "-in", &format!("{name}.csr"), "-pubkey", "-noout"],
            dir,
        );
        let cert_key = openssl_ok(&["x509", "-in", &cert, "-pubkey", "-noout"], dir);
        assert_eq!(csr_key, cert_key, "{name}");
        // ... and with none of what the CSR asked for.
        let text = openssl_ok(&["x509", "-in", &cert, "-noout", "-text"], dir);
        assert!(text.contains("CA:FALSE"), "{name}: {text}");
        assert!(!text.contains("CA:TRUE"), "{name}: {text}");
        assert!(!text.contains("Certificate Sign"), "{name}: {text}");
        assert!(!text.contains("evil.example"), "{name}: {text}");
        assert!(!text.contains("Evil Root CA"), "{name}: {text}");
        assert!(
            text.contains(&format!("CN = {SESSION_ID}")),
            "{name}: {text}"
        );
        assert!(text.contains("TLS Web Client Authentication"), "{name}");

        let findings = pkilint_findings(dir, &cert);
        let unexpected: Vec<_> = findings
            .iter()
            .filter(|(code, _)| code != "pkix.invalid_uri_syntax")
            .collect();
        assert!(unexpected.is_empty(), "{name}: pkilint: {unexpected:?}");
    }
}

#[tokio::test]
#[ignore = "needs openssl; run scripts/test"]
async fn bad_csrs_get_a_400_that_says_why() {
    let service = TestService::new().await;
    let dir = service.dir.path();
    let good = openssl_csr(
        dir,
        "good",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );

    // Truncated: the PEM body cut in half.
    let lines: Vec<&str> = good.lines().collect();
    let truncated = format!(
        "{}\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines[0],
        lines[1..lines.len() / 2].join("\n")
    );
    // Wrong signature: one byte of the subject altered after signing.
    let mut der = ::pem::parse(&good).unwrap().into_contents();
    let at = der.windows(8).position(|w| w == b"Evil Roo").unwrap();
    der[at] = b'G';
    let altered = ::pem::encode(&::pem::Pem::new("CERTIFICATE REQUEST", der));
    let rsa1024 = openssl_csr(
        dir,
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    // A few bits over 2048: its modulus has 257 octets, the first below 0x80.
    let rsa2052 = openssl_csr(
        dir,
        "rsa2052",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2052"],
    );
    openssl_ok(
        &[
            "genpkey",
            "-genparam",
            "-algorithm",
            "DSA",
            "-pkeyopt",
            "dsa_paramgen_bits:2048",
            "-out",
            "dsa.param",
        ],
        dir,
    );
    let dsa = openssl_csr(dir, "dsa", &["-paramfile", "dsa.param"]);
    // SHA-1 signature.
    openssl_ok(
        &[
            "req", "-new", "-key", "good.key", "-subj", "/CN=x", "-sha1", "-out", "sha1.csr",
        ],
        dir,
    );
    let sha1 = std::fs::read_to_string(dir.join("sha1.csr")).unwrap();
    let cert_pem = std::fs::read_to_string(service.ca_dir().join("ca-cert.pem")).unwrap();

    for (case, csr, needle) in [
        ("truncated", truncated, "not a valid PKCS#10"),
        (
            "altered after signing",
            altered,
            "signature does not verify",
        ),
        (
            "RSA-1024",
            rsa1024,
            "RSA key of 1024 bits; RSA keys must be at least 2048 bits",
        ),
        (
            "RSA-2052",
            rsa2052,
            "an RSA key of 2052 bits (RSA keys must be 2048, 3072 or 4096 bits)",
        ),
        ("DSA", dsa, "DSA key"),
        ("SHA-1", sha1, "SHA-1"),
        ("a certificate", cert_pem, "not a CERTIFICATE REQUEST"),
        ("garbage", "garbage".to_owned(), "no PEM block"),
    ] {
        let reply = issue_json(&service.state, json!({"csr": csr})).await;
        assert_eq!(reply.status, 400, "{case}: {}", reply.json());
        assert_eq!(reply.code(), "invalid_csr", "{case}");
        assert!(
            reply.message().contains(needle),
            "{case}: {needle:?} in {:?}",
            reply.message()
        );
        assert!(reply.json().get("certificate").is_none());
    }
}
