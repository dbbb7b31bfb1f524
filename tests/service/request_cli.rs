//! `session-ca request` against a real `session-ca serve`: the files it
//! writes, CSR and PKCS#12 modes, and its errors.

use crate::common::tools;

use std::path::Path;
use std::process::Output;

use session_ca::{read_certificate, verify_client_certificate};
use tools::output_text as text;
use tools::{free_port, start_serve};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

fn session_ca(dir: &Path, args: &[&str]) -> Output {
    tools::session_ca_in(BIN, dir, args)
}
const SESSION_ID: &str = "92fea10a-0905-40cc-aca1-54ee52e89c71";

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn writes_cert_key_and_chain_that_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_serve(BIN, dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let out_dir = dir.path().join("creds");
    let out = session_ca(
        dir.path(),
        &[
            "request",
            "--url",
            &url,
            "--session-id",
            SESSION_ID,
            "--transaction-id",
            "tx-0001",
            "--claim",
            "agent=curl 8 / \"quoted\"",
            "--claim",
            r#"geo:={"lat":"52.15","lon":"4.49"}"#,
            "--key-type",
            "ed25519",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("wrote"), "{}", text(&out));
    assert_eq!(files_in(&out_dir), ["cert.pem", "chain.pem", "key.pem"]);
    #[cfg(unix)]
    {
        assert_eq!(mode(&out_dir.join("key.pem")), 0o600);
        assert_eq!(mode(&out_dir.join("cert.pem")), 0o644);
        assert_eq!(mode(&out_dir), 0o700);
    }
    let cert = read_certificate(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    let chain = std::fs::read(out_dir.join("chain.pem")).unwrap();
    assert_eq!(
        chain,
        std::fs::read(dir.path().join("signer-key/chain.pem")).unwrap()
    );
    verify_client_certificate(&cert, &chain, time::OffsetDateTime::now_utc()).unwrap();
    // The key file holds the certificate's key.
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(out_dir.join("key.pem")).unwrap())
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    assert_eq!(
        parsed.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    // The claims are the ones asked for, read by `inspect`.
    let shown = session_ca(
        dir.path(),
        &["inspect", out_dir.join("cert.pem").to_str().unwrap()],
    );
    let shown = text(&shown);
    for value in [
        SESSION_ID,
        "tx-0001",
        "curl 8 / \"quoted\"",
        r#"{"lat":"52.15","lon":"4.49"}"#,
    ] {
        // inspect prints each value quoted and escaped.
        let needle = format!("{value:?}");
        assert!(shown.contains(&needle), "{needle} in {shown}");
    }

    // A second run renews in place.
    let out = session_ca(
        dir.path(),
        &["request", "--url", &url, "--out", out_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let renewed = read_certificate(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    assert_ne!(renewed, cert);
    assert_eq!(files_in(&out_dir), ["cert.pem", "chain.pem", "key.pem"]);
}

#[test]
fn pkcs12_and_csr_modes() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_serve(BIN, dir.path());
    let url = format!("http://127.0.0.1:{port}");

    let p12 = dir.path().join("client.p12");
    let out = session_ca(
        dir.path(),
        &["request", "--url", &url, "--pkcs12", p12.to_str().unwrap()],
    );
    if cfg!(feature = "fips") {
        // A FIPS build refuses key stores; nothing is written.
        assert!(!out.status.success());
        assert!(
            text(&out)
                .contains("HTTP 422 invalid_field: pkcs12 is not available on this FIPS build"),
            "{}",
            text(&out)
        );
        assert!(!p12.exists());
        assert!(!dir.path().join("client.p12.password").exists());
    } else {
        pkcs12_file_holds_the_key_store(&out, &p12, dir.path());
    }

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    std::fs::write(dir.path().join("req.csr"), csr).unwrap();
    let out_dir = dir.path().join("csr-out");
    let out = session_ca(
        dir.path(),
        &[
            "request",
            "--url",
            &url,
            "--csr",
            "req.csr",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        files_in(&out_dir),
        ["cert.pem", "chain.pem"],
        "no key: the caller holds it"
    );
    let cert = read_certificate(&std::fs::read(out_dir.join("cert.pem")).unwrap()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    assert_eq!(
        parsed.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
}

#[test]
fn errors_are_clear_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_serve(BIN, dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let out_dir = dir.path().join("out");
    let out_arg = out_dir.to_str().unwrap();

    let closed = format!("http://127.0.0.1:{}", free_port());
    for (args, needles) in [
        (
            vec!["--url", closed.as_str()],
            vec!["cannot reach the signer", "onnection refused"],
        ),
        (
            vec!["--url", url.as_str(), "--ttl", "100000"],
            vec!["HTTP 422 ttl_too_long", "max_ttl"],
        ),
        (
            vec!["--url", url.as_str(), "--profile", "nope"],
            vec!["HTTP 404 unknown_profile", "\"nope\""],
        ),
        (
            vec!["--url", url.as_str(), "--claim", "nope=1"],
            vec!["HTTP 422 unknown_claim"],
        ),
        (
            vec!["--url", url.as_str(), "--claim", "geo:={broken"],
            vec!["not JSON"],
        ),
        (
            vec!["--url", url.as_str(), "--claim", "=x"],
            vec!["expected NAME=TEXT or NAME:=JSON"],
        ),
        (
            vec!["--url", url.as_str(), "--csr", "Cargo.toml"],
            vec!["cannot read the CSR"],
        ),
        (
            vec!["--url", "ftp://x"],
            vec!["scheme must be http or https"],
        ),
        (vec!["--url", "not a url"], vec!["invalid signer URL"]),
    ] {
        let mut full = vec!["request", "--out", out_arg];
        full.extend(args.iter().copied());
        let out = session_ca(dir.path(), &full);
        let shown = text(&out);
        assert!(!out.status.success(), "{args:?}: {shown}");
        for needle in needles {
            assert!(shown.contains(needle), "{args:?}: {needle:?} in {shown}");
        }
        assert!(!shown.contains("panicked"), "{shown}");
        assert!(!out_dir.exists(), "{args:?}: nothing written");
    }

    // A CSR that is not one: the signer's 400 is shown.
    std::fs::write(
        dir.path().join("bad.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    let out = session_ca(
        dir.path(),
        &[
            "request", "--url", &url, "--csr", "bad.csr", "--out", out_arg,
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("HTTP 400 invalid_csr"),
        "{}",
        text(&out)
    );
    assert!(!out_dir.exists());
}

/// `request --pkcs12 FILE` wrote a key store (0600) and its password file.
fn pkcs12_file_holds_the_key_store(out: &Output, p12: &Path, dir: &Path) {
    assert!(out.status.success(), "{}", text(out));
    let password_file = dir.join("client.p12.password");
    #[cfg(unix)]
    {
        assert_eq!(mode(p12), 0o600);
        assert_eq!(mode(&password_file), 0o600);
    }
    let password = std::fs::read_to_string(&password_file).unwrap();
    let store = p12_keystore::KeyStore::from_pkcs12(
        &std::fs::read(p12).unwrap(),
        password.trim_end(),
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    assert_eq!(store.private_key_chain().unwrap().1.certs().len(), 2);
    assert!(
        !text(out).contains(password.trim_end()),
        "the password is not printed"
    );
}
