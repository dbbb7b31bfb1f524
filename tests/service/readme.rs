//! The README's curl, jq and openssl examples, run verbatim (ports aside)
//! against a real `session-ca serve`. Run by scripts/test.

use crate::common::tools;

use std::process::Command;

use tools::{free_port, readme_block, start_serve};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

fn bash(dir: &std::path::Path, script: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
#[ignore = "needs curl, jq and openssl; run scripts/test"]
fn readme_curl_example_yields_a_certificate_that_completes_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_serve(BIN, dir.path());

    let issue =
        readme_block("issue", "bash").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let (ok, output) = bash(dir.path(), &issue);
    assert!(ok, "README issue example failed:\n{issue}\n{output}");
    let cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key.pem is private to its owner");
    }

    let csr = readme_block("csr", "bash").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
    let (ok, output) = bash(dir.path(), &csr);
    assert!(ok, "README CSR example failed:\n{csr}\n{output}");
    let out = Command::new("openssl")
        .args(["x509", "-in", "my-cert.pem", "-noout", "-pubkey"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let key = Command::new("openssl")
        .args(["pkey", "-in", "my-key.pem", "-pubout"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success() && key.status.success());
    assert_eq!(
        out.stdout, key.stdout,
        "the certificate is for the CSR's key"
    );

    let tls_port = free_port();
    let mtls = readme_block("mtls", "bash").replace("8443", &tls_port.to_string());
    let (ok, output) = bash(dir.path(), &mtls);
    assert!(ok, "README mTLS example failed:\n{mtls}\n{output}");
    assert!(output.contains("HTTP 200"), "{output}");
}

#[test]
fn readme_request_example_writes_the_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_serve(BIN, dir.path());
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    let script = format!(
        "export PATH={}:$PATH\n{}",
        bin_dir.display(),
        readme_block("request", "bash").replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
    );
    let (ok, output) = bash(dir.path(), &script);
    assert!(ok, "README request example failed:\n{script}\n{output}");
    assert!(
        output.contains("cert.pem") && output.contains("key.pem") && output.contains("chain.pem"),
        "{output}"
    );
    let cert = std::fs::read(dir.path().join("creds/cert.pem")).unwrap();
    let der = session_ca::read_certificate(&cert).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        parsed.subject().to_string(),
        "C=NL, ST=ZH, L=Rotterdam, O=session-ca development, CN=92fea10a-0905-40cc-aca1-54ee52e89c71"
    );
}
