//! The `session-ca` binary: `init`, `inspect` and `serve` as a user runs them.

use crate::common::tools;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use tools::output_text as text;
use tools::{http, start_serve};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

fn session_ca(dir: &Path, args: &[&str]) -> Output {
    tools::session_ca_in(BIN, dir, args)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn version_names_the_crypto_library() {
    let dir = tempfile::tempdir().unwrap();
    let out = session_ca(dir.path(), &["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let aws_lc = match session_ca::crypto::aws_lc_version() {
        Some(version) => {
            assert!(
                version.starts_with(|c: char| c.is_ascii_digit()),
                "{version}"
            );
            format!(", AWS-LC {version}")
        }
        None => String::new(),
    };
    assert_eq!(
        text.trim_end(),
        format!(
            "session-ca {} (crypto: {}{aws_lc})",
            env!("CARGO_PKG_VERSION"),
            session_ca::crypto::LIBRARY
        )
    );
}

#[test]
fn init_writes_a_ca_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = session_ca(
        dir.path(),
        &[
            "init",
            "--subject",
            "CN=Payments Session CA,O=Example Bank,C=NL",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let ca = dir.path().join("signer-key");
    for file in ["ca-key.pem", "ca-cert.pem", "chain.pem"] {
        assert!(ca.join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&ca.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&ca.join("ca-cert.pem")), 0o644);
        assert_eq!(mode(&ca), 0o700);
    }
    let key_before = std::fs::read(ca.join("ca-key.pem")).unwrap();

    let out = session_ca(dir.path(), &["init"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already exists; pass --force"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(ca.join("ca-key.pem")).unwrap(),
        key_before,
        "untouched"
    );

    let out = session_ca(
        dir.path(),
        &["init", "--force", "--intermediate", "--key-type", "ed25519"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("move it offline"));
    assert_ne!(std::fs::read(ca.join("ca-key.pem")).unwrap(), key_before);
    let chain = std::fs::read_to_string(ca.join("chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    #[cfg(unix)]
    assert_eq!(mode(&ca.join("root-key.pem")), 0o600);
}

#[test]
fn init_rejects_bad_arguments_clearly() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            &["init", "--subject", "O=No Common Name"][..],
            "a CN is required",
        ),
        (&["init", "--subject", "CN=x,XX=y"], "unknown attribute"),
        (&["init", "--subject", "CN=x,C=Netherlands"], "two-letter"),
        (&["init", "--key-type", "rsa-1024"], "unknown key type"),
        (&["init", "--validity-days", "0"], "between 1 and 36500"),
    ] {
        let out = session_ca(dir.path(), args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
    }
    assert!(
        !dir.path().join("signer-key").join("ca-key.pem").exists(),
        "nothing half-written"
    );
}

#[test]
fn serve_refuses_auth_none_off_loopback_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = session_ca(dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("only allowed on loopback"),
        "{}",
        text(&out)
    );

    std::fs::write(
        dir.path().join("session-ca.toml"),
        "[cas.default]\nsource = \"file:signer-key\"\n[profiles.default]\nmax_ttl = \"48h\"\n",
    )
    .unwrap();
    let out = session_ca(dir.path(), &["serve", "--config", "session-ca.toml"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(
        t.contains("session-ca.toml")
            && t.contains("profiles.default.max_ttl")
            && t.contains("24h"),
        "{t}"
    );

    // A configured (non-default) CA directory is never created implicitly.
    std::fs::write(
        dir.path().join("session-ca.toml"),
        "[cas.default]\nsource = \"file:missing-ca\"\n[profiles.default]\n",
    )
    .unwrap();
    let out = session_ca(dir.path(), &["serve", "--config", "session-ca.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("missing-ca/ca-key.pem"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("missing-ca").exists());
}

#[test]
fn serve_refuses_a_ca_whose_key_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    assert!(session_ca(dir.path(), &["init", "--dir", "a"])
        .status
        .success());
    assert!(session_ca(dir.path(), &["init", "--dir", "b"])
        .status
        .success());
    std::fs::copy(
        dir.path().join("b/ca-key.pem"),
        dir.path().join("a/ca-key.pem"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[cas.default]\nsource = \"file:a\"\n[profiles.default]\n",
    )
    .unwrap();
    let out = session_ca(dir.path(), &["serve", "--config", "c.toml"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("a/ca-cert.pem: does not match the CA private key"),
        "{}",
        text(&out)
    );
}

#[test]
fn serve_stops_cleanly_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _port) = start_serve(BIN, dir.path());
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert!(server.0.wait().unwrap().success());
}

#[test]
fn serve_with_the_embedded_default_issues_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port, log) = tools::start_serve_logged(BIN, dir.path(), &[]);

    assert!(
        dir.path().join("signer-key/ca-key.pem").exists(),
        "development CA created"
    );
    let (status, body) = http(port, "GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        port,
        "POST",
        "/v1/certificates",
        r#"{"transaction_id":"tx-1"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (status, _) = http(port, "POST", "/v1/certificates", r#"{"ttl_seconds":0}"#);
    assert_eq!(status, 422);
    let (status, body) = http(
        port,
        "POST",
        "/v1/certificates?dry_run=true",
        r#"{"transaction_id":"tx-dry"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let private_key = reply["private_key"].as_str().unwrap().to_owned();
    std::fs::write(
        dir.path().join("cert.pem"),
        reply["certificate"].as_str().unwrap(),
    )
    .unwrap();

    // SIGTERM: the server finishes and exits 0.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "graceful exit: {status}");
    let logs = log.join().unwrap();
    assert!(logs.contains("DEVELOPMENT CA"), "{logs}");
    assert!(logs.contains(r#""event":"certificate_issued""#), "{logs}");
    assert!(logs.contains(r#""transaction_id":"tx-1""#), "{logs}");
    assert!(
        logs.contains(r#""event":"issuance_denied""#) && logs.contains(r#""code":"ttl_too_short""#),
        "{logs}"
    );
    // The dry run is audited as checked, and issued nothing.
    assert!(
        logs.contains(r#""event":"issuance_checked""#)
            && logs.contains(r#""transaction_id":"tx-dry""#),
        "{logs}"
    );
    assert_eq!(
        logs.matches(r#""event":"certificate_issued""#).count(),
        1,
        "{logs}"
    );
    assert!(logs.contains("shutting down"), "{logs}");
    let key_body: String = private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !logs.contains(&key_body),
        "the private key never reaches the log"
    );

    // inspect reads the certificate back with claim names and verifies it.
    let out = session_ca(
        dir.path(),
        &["inspect", "cert.pem", "--ca", "signer-key/chain.pem"],
    );
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("transaction_id (1.3.6.1.4.1.32473.1.2): \"tx-1\""),
        "{t}"
    );
    assert!(t.contains("verified:     yes"), "{t}");
    assert!(
        t.contains("ca default:  key in this process's memory, read from file:signer-key"),
        "inspect names the key holder: {t}"
    );
    let x5t = format!("x5t#S256:     {}\n", reply["x5t#S256"].as_str().unwrap());
    assert!(
        t.contains(&x5t),
        "inspect prints the response's thumbprint: {t}"
    );

    // Against another CA it does not verify, and says so with a non-zero exit.
    assert!(session_ca(dir.path(), &["init", "--dir", "other"])
        .status
        .success());
    let out = session_ca(
        dir.path(),
        &["inspect", "cert.pem", "--ca", "other/chain.pem"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("verified:     NO"), "{}", text(&out));

    // Garbage is a clear error.
    std::fs::write(dir.path().join("junk.pem"), "hello").unwrap();
    let out = session_ca(dir.path(), &["inspect", "junk.pem"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("nor PEM with a CERTIFICATE block"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_example_configuration_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/session-ca.example.toml"
    ))
    .unwrap();
    let config = session_ca::Config::from_toml(
        session_ca::ConfigOrigin::File("session-ca.example.toml".into()),
        &text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let profile = config.profile("default").unwrap();
    assert!(profile.require_session_id && profile.require_transaction_id);
}

#[test]
fn serve_closes_connections_that_trickle_their_request_head() {
    let dir = tempfile::tempdir().unwrap();
    assert!(session_ca(dir.path(), &["init", "--dir", "ca"])
        .status
        .success());
    std::fs::write(
        dir.path().join("session-ca.toml"),
        "[server]\nrequest_timeout = \"1s\"\n[cas.default]\nsource = \"file:ca\"\n[profiles.default]\n",
    )
    .unwrap();
    let (_server, port) =
        tools::start_serve_with(BIN, dir.path(), &["--config", "session-ca.toml"]);

    // A slowloris client: half a request head, then silence.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"POST /v1/certificates HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let closed = match slow.read(&mut buf) {
        Ok(n) => n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "the server kept a trickling connection open");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed only after {:?}",
        started.elapsed()
    );
    // Meanwhile and afterwards, whole requests are served.
    let (status, body) = http(port, "GET", "/healthz", "");
    assert_eq!(status, 200, "{body}");
}
