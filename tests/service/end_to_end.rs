//! Both ends of the mTLS call as real processes: `session-ca serve`, the
//! `mtls_backend` example verifying with `session_ca::verify`, and as
//! clients the `mtls_client` example (certificate in memory only) and curl
//! with the files `session-ca request` writes. Then the README's "two
//! identities, two backends" recipe. Run by scripts/test.

use crate::common::examples;
use crate::common::tools;

use std::path::Path;
use std::process::{Command, Output};

use examples::{example_bin, Backend, CLAIMS};
use serde_json::Value;
use tools::{readme_block, run, start_serve, write_server_identity};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

fn session_ca(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("SESSION_CA_LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "session-ca {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `curl --cert --key --cacert` against a backend; (success, stdout, stderr).
fn curl(dir: &Path, backend: &Backend, creds: &str) -> (bool, String, String) {
    let out = run(
        "curl",
        &[
            "-sS",
            "--fail-with-body",
            "--max-time",
            "10",
            "--cacert",
            "server.pem",
            "--cert",
            &format!("{creds}/cert.pem"),
            "--key",
            &format!("{creds}/key.pem"),
            &backend.url(),
        ],
        dir,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn get_chain(dir: &Path, port: u16, query: &str, file: &str) {
    let out = run(
        "curl",
        &[
            "-sS",
            "--fail",
            "-o",
            file,
            &format!("http://127.0.0.1:{port}/v1/ca{query}"),
        ],
        dir,
    );
    assert!(out.status.success(), "GET /v1/ca{query}");
}

#[test]
#[ignore = "needs curl; run scripts/test"]
fn signer_backend_and_clients_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_signer, port) = start_serve(BIN, dir);
    let signer = format!("http://127.0.0.1:{port}");
    write_server_identity(dir);
    get_chain(dir, port, "", "ca.pem");
    let backend = Backend::start(dir, "backend", "ca.pem", &CLAIMS);

    // The Rust client: certificate and key never touch the disk.
    let session_id = "0b5a2a4e-9b1f-4a57-8d0c-0c6e6d1f2a31";
    let out = Command::new(example_bin("mtls_client"))
        .args([
            "--signer",
            &signer,
            "--backend",
            &backend.url(),
            "--backend-ca",
            "server.pem",
            "--session-id",
            session_id,
            "--transaction-id",
            "tx-e2e-0001",
            "--claim",
            "agent=mtls_client example",
            "--calls",
            "3",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mtls_client: {}{}\nbackend log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&backend.log).unwrap_or_default()
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Three invocations of a warm caller, one certificate (renew_after is minutes away).
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 call(s) with 1 certificate(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reply["session_id"], session_id);
    assert_eq!(reply["transaction_id"], "tx-e2e-0001");
    assert_eq!(reply["claims"]["agent"], "mtls_client example");
    assert_eq!(reply["requester"], Value::Null, "auth none: anonymous");
    assert!(reply["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // curl with the files `session-ca request` wrote.
    session_ca(
        dir,
        &[
            "request",
            "--url",
            &signer,
            "--out",
            "creds",
            "--transaction-id",
            "tx-e2e-0002",
            "--claim",
            r#"geo:={"lat":"52.15","lon":"4.49"}"#,
        ],
    );
    let (ok, stdout, stderr) = curl(dir, &backend, "creds");
    assert!(ok, "curl: {stderr}{stdout}");
    let reply: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(reply["transaction_id"], "tx-e2e-0002");
    assert_eq!(
        reply["claims"]["geo"],
        serde_json::json!({"lat": "52.15", "lon": "4.49"})
    );
    // The session id the signer generated is the subject CN the backend read.
    assert!(reply["subject"]
        .as_str()
        .unwrap()
        .ends_with(&format!("CN={}", reply["session_id"].as_str().unwrap())));
}

/// The README recipe: one signer, two profiles on two CAs, two backends
/// each trusting one of them.
#[test]
#[ignore = "needs curl; run scripts/test"]
fn two_identities_two_backends() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for (ca_dir, subject) in [
        ("payments-ca", "CN=Payments client CA,O=Your Bank"),
        ("ledger-ca", "CN=Ledger client CA,O=Your Bank"),
    ] {
        session_ca(dir, &["init", "--dir", ca_dir, "--subject", subject]);
    }
    std::fs::write(
        dir.join("session-ca.toml"),
        readme_block("two-identities-config", "toml"),
    )
    .unwrap();
    let (_signer, port) = tools::start_serve_with(BIN, dir, &["--config", "session-ca.toml"]);
    let signer_url = format!("http://127.0.0.1:{port}");
    write_server_identity(dir);
    get_chain(dir, port, "?profile=payments", "payments-trust.pem");
    get_chain(dir, port, "?profile=ledger", "ledger-trust.pem");
    let payments = Backend::start(dir, "payments", "payments-trust.pem", &[]);
    let ledger = Backend::start(dir, "ledger", "ledger-trust.pem", &[]);

    for profile in ["payments", "ledger"] {
        session_ca(
            dir,
            &[
                "request",
                "--url",
                &signer_url,
                "--profile",
                profile,
                "--out",
                &format!("{profile}-creds"),
            ],
        );
    }
    for (backend, creds, accepted) in [
        (&payments, "payments-creds", true),
        (&payments, "ledger-creds", false),
        (&ledger, "ledger-creds", true),
        (&ledger, "payments-creds", false),
    ] {
        let (ok, stdout, stderr) = curl(dir, backend, creds);
        assert_eq!(ok, accepted, "{creds}: {stdout}{stderr}");
        if accepted {
            let reply: Value = serde_json::from_str(&stdout).unwrap();
            assert!(reply["session_id"].as_str().is_some());
        } else {
            assert!(stdout.is_empty(), "no body for a refused handshake");
            assert!(stderr.contains("unknown ca"), "{creds}: {stderr}");
        }
    }
}
