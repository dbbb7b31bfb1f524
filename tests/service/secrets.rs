//! Secrets never leak: a real `serve` with trace-level JSON logs issues
//! server-side keys, PKCS#12 key stores and CSR certificates to HMAC-signed
//! requests (and refuses forged ones), and `session-ca request` runs at
//! trace level too; no private key, PKCS#12 password or HMAC secret may
//! appear in any log line, error body or `Debug` output.

use crate::common::tools;

use std::path::Path;
use std::process::{Command, Stdio};

use session_ca_client::hmac::Secret;
use session_ca_client::{CertificateRequest, SignerClient};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const HMAC_SECRET: &str = "s3cr3t-hmac-key-that-must-never-be-logged-0123456789";

/// Every fragment of a secret worth searching for: the whole text, each
/// line of a PEM body, and the hex of its DER.
fn fragments(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_owned()];
    if secret.contains("-----BEGIN") {
        out.extend(
            secret
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_owned),
        );
        let der = pem::parse(secret).unwrap().into_contents();
        out.push(crate::common::hex(&der));
        out.push(format!("{der:?}").trim_matches(['[', ']']).to_owned());
    }
    out
}

fn assert_free_of(haystack: &str, secrets: &[String], what: &str) {
    for secret in secrets {
        for fragment in fragments(secret) {
            assert!(
                !haystack.contains(&fragment),
                "{what} contains a secret fragment {:?}…",
                &fragment[..fragment.len().min(24)]
            );
        }
    }
}

fn write_config(dir: &Path) {
    std::fs::write(
        dir.join("session-ca.toml"),
        r#"
[server]
auth = "hmac"
[hmac_keys.payments-fn]
secret_env = "LEAK_TEST_HMAC_SECRET"
[cas.default]
source = "file:ca"
[profiles.default]
"#,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_an_error_body_or_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let out = tools::session_ca_in(BIN, dir, &["init", "--dir", "ca", "--intermediate"]);
    assert!(out.status.success(), "{}", tools::output_text(&out));
    write_config(dir);
    let port = tools::free_port();
    let log_path = dir.join("serve.log");
    let mut server = tools::Guard(
        Command::new(BIN)
            .args([
                "serve",
                "--config",
                "session-ca.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("LEAK_TEST_HMAC_SECRET", HMAC_SECRET)
            .env("SESSION_CA_LOG", "trace")
            .env("SESSION_CA_LOG_FORMAT", "json")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    tools::wait_for_port(port, &mut server.0);
    let url = format!("http://127.0.0.1:{port}");

    let mut secrets = vec![
        HMAC_SECRET.to_owned(),
        std::fs::read_to_string(dir.join("ca/ca-key.pem")).unwrap(),
        std::fs::read_to_string(dir.join("ca/root-key.pem")).unwrap(),
    ];
    let mut bodies = String::new();
    let mut debug = String::new();

    let secret = Secret::new(HMAC_SECRET.as_bytes()).unwrap();
    let signer = SignerClient::new(&url, None)
        .unwrap()
        .with_hmac("payments-fn", secret.clone());
    debug.push_str(&format!("{signer:?}{secret:?}"));
    for key_type in ["ecdsa-p256", "ecdsa-p384", "ed25519"] {
        let issued = signer
            .issue(&CertificateRequest {
                key_type: Some(key_type.into()),
                // A FIPS build refuses key stores (their encryption would
                // run outside the FIPS module).
                pkcs12: !cfg!(feature = "fips"),
                ..Default::default()
            })
            .await
            .unwrap();
        secrets.push(issued.private_key.clone().unwrap());
        assert_eq!(issued.pkcs12.is_some(), !cfg!(feature = "fips"));
        if let Some(store) = &issued.pkcs12 {
            secrets.push(store.password.clone());
        }
        debug.push_str(&format!("{issued:?}"));
    }
    let csr_key = rcgen::KeyPair::generate().unwrap();
    secrets.push(csr_key.serialize_pem());
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&csr_key)
        .unwrap()
        .pem()
        .unwrap();
    signer
        .issue(&CertificateRequest {
            csr: Some(csr),
            ..Default::default()
        })
        .await
        .unwrap();

    // Forged, tampered and unsigned requests: their error bodies.
    session_ca::crypto::install_rustls_provider();
    let http = reqwest::Client::new();
    let wrong = Secret::new(&[b'x'; 40]).unwrap();
    for authorization in [
        session_ca_client::hmac::authorization(
            "payments-fn",
            &wrong,
            "POST",
            "/v1/certificates",
            time::OffsetDateTime::now_utc().unix_timestamp(),
            b"{}",
        )
        .unwrap(),
        format!("SESSION-CA-HMAC-SHA256 KeyId=payments-fn, Timestamp=1, Nonce=0123456789abcdef, Signature={}", "ab".repeat(32)),
        HMAC_SECRET.to_owned(),
    ] {
        let reply = http
            .post(format!("{url}/v1/certificates"))
            .header("content-type", "application/json")
            .header("authorization", authorization)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 401);
        bodies.push_str(&reply.text().await.unwrap());
    }

    // The client at trace level, writing a key store (PEM files on a FIPS
    // build, which refuses key stores).
    let output: &[&str] = if cfg!(feature = "fips") {
        &["--out", "client"]
    } else {
        &["--pkcs12", "client.p12"]
    };
    let client = Command::new(BIN)
        .args(["request", "--url", &url, "--hmac-key-id", "payments-fn"])
        .args(output)
        .env("SESSION_CA_HMAC_SECRET", HMAC_SECRET)
        .env("SESSION_CA_LOG", "trace")
        .env("SESSION_CA_LOG_FORMAT", "json")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(client.status.success(), "{}", tools::output_text(&client));
    let written_secret = if cfg!(feature = "fips") {
        "client/key.pem"
    } else {
        "client.p12.password"
    };
    secrets.push(
        std::fs::read_to_string(dir.join(written_secret))
            .unwrap()
            .trim()
            .to_owned(),
    );
    let client_output = tools::output_text(&client);

    // A configuration whose secret is wrong is reported without it.
    let short = Command::new(BIN)
        .args([
            "serve",
            "--config",
            "session-ca.toml",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("LEAK_TEST_HMAC_SECRET", "short-secret-7")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!short.status.success());
    let short_output = tools::output_text(&short);
    assert!(short_output.contains("at least 32 bytes"), "{short_output}");
    secrets.push("short-secret-7".to_owned());

    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    // The log really is at trace level (the server traces each accepted
    // connection) and covers the issuances.
    for level in ["TRACE", "DEBUG"] {
        assert!(
            log.contains(&format!("\"level\":\"{level}\"")),
            "no {level} events logged"
        );
    }
    assert_eq!(log.matches("\"event\":\"certificate_issued\"").count(), 5);
    assert!(log.contains("\"event\":\"issuance_denied\""));

    assert_free_of(&log, &secrets, "the signer's trace log");
    assert_free_of(&bodies, &secrets, "an error body");
    assert_free_of(&client_output, &secrets, "the request client's output");
    assert_free_of(&short_output, &secrets, "a configuration error");
    assert_free_of(&debug, &secrets, "a Debug output");
}
