//! PKCS#12 for Java: key stores from `"pkcs12": true` and the trust store of
//! `GET /v1/ca?format=pkcs12` read by the JDK's keytool and by OpenSSL, and
//! the Java example client (examples/java/MtlsClient.java) calling the
//! `mtls_backend` example with a key store from a real signer. Run by
//! scripts/test; a missing java, keytool or openssl fails the tests.
//!
//! Not on a FIPS build: it refuses `"pkcs12": true` (tested in api.rs),
//! and the Java client's key store comes from there.
#![cfg(not(feature = "fips"))]

use crate::common;
use crate::common::examples;
use crate::common::tools;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::*;
use examples::Backend;
use serde_json::{json, Value};
use session_ca::KeyType;
use session_ca::{
    PKCS12_ITERATIONS as ITERATIONS, PKCS12_KEY_ALIAS as KEY_ALIAS, TRUSTSTORE_PASSWORD,
};
use time::Duration;
use tools::{start_serve, Guard};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/java/MtlsClient.java");

/// Runs a tool to completion; a tool that cannot start fails the test.
fn tool(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): these tests need a JDK 17 (java, keytool; \
                 e.g. apt-get install openjdk-17-jdk-headless), openssl and curl"
            )
        })
}

/// stdout and stderr of a finished command.
fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a tool and fails the test, showing its output, unless it succeeds.
fn tool_ok(program: &str, args: &[&str], dir: &Path) -> String {
    let out = tool(program, args, dir);
    let shown = text(&out);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n{shown}",
        out.status
    );
    shown
}

/// The key store and its password from an issuance response.
fn pkcs12_of(body: &Value) -> (Vec<u8>, String) {
    let der = base64::engine::general_purpose::STANDARD
        .decode(body["pkcs12"]["base64"].as_str().expect("pkcs12.base64"))
        .expect("pkcs12.base64 is base64");
    let password = body["pkcs12"]["password"]
        .as_str()
        .expect("pkcs12.password")
        .to_owned();
    (der, password)
}

/// The certificates of a PEM document, as DER.
fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    pem.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|block| {
            let body: String = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap()
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("PEM base64")
        })
        .collect()
}

/// keytool's spelling of a SHA-256 fingerprint: `AB:CD:...`.
fn keytool_fingerprint(der: &[u8]) -> String {
    session_ca::crypto::sha256(der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What `openssl pkcs12 -info` prints for the algorithms every file uses.
fn openssl_algorithm_lines() -> [String; 2] {
    [
        format!("MAC: sha256, Iteration {ITERATIONS}"),
        format!("PBES2, PBKDF2, AES-256-CBC, Iteration {ITERATIONS}, PRF hmacWithSHA256"),
    ]
}

#[tokio::test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
async fn key_stores_open_in_openssl_and_keytool_for_every_key_type() {
    let [mac, pbes2] = openssl_algorithm_lines();
    for intermediate in [false, true] {
        let service = TestService::with(
            KeyType::EcdsaP256,
            intermediate,
            t0() - Duration::days(1),
            365,
            t0(),
        )
        .await;
        let dir = service.dir.path();
        for key_type in KeyType::ALL {
            let case = format!("{key_type}, intermediate CA {intermediate}");
            let reply = issue_json(
                &service.state,
                json!({"pkcs12": true, "key_type": key_type.to_string(), "session_id": SESSION_ID,
                       "transaction_id": "tx-java"}),
            )
            .await;
            assert_eq!(reply.status, 201, "{case}: {}", reply.json());
            let body = reply.json();
            let (der, password) = pkcs12_of(&body);
            let file = format!("{key_type}.p12");
            std::fs::write(dir.join(&file), der).unwrap();
            let chain = body["ca_chain"].as_array().unwrap();
            assert_eq!(chain.len(), if intermediate { 2 } else { 1 }, "{case}");

            // OpenSSL 3 reads it without the legacy provider and names the
            // algorithms; -nokeys prints the certificates only.
            let info = tool_ok(
                "openssl",
                &[
                    "pkcs12",
                    "-info",
                    "-nokeys",
                    "-passin",
                    &format!("pass:{password}"),
                    "-in",
                    &file,
                ],
                dir,
            );
            assert!(info.contains(&mac), "{case}: no {mac:?} in\n{info}");
            for bag in ["PKCS7 Encrypted data", "Shrouded Keybag"] {
                let line = format!("{bag}: {pbes2}");
                assert!(info.contains(&line), "{case}: no {line:?} in\n{info}");
            }
            assert!(!info.contains("PRIVATE KEY"), "{case}: a key was printed");
            assert_eq!(
                info.matches("-----BEGIN CERTIFICATE-----").count(),
                1 + chain.len(),
                "{case}: {info}"
            );
            let certificate = body["certificate"].as_str().unwrap().trim();
            assert!(info.contains(certificate), "{case}: the leaf is missing");
            for ca in chain {
                assert!(
                    info.contains(ca.as_str().unwrap().trim()),
                    "{case}: a CA certificate is missing"
                );
            }

            // The JDK sees one key entry with the whole chain.
            let list = tool_ok(
                "keytool",
                &[
                    "-list",
                    "-v",
                    "-storetype",
                    "PKCS12",
                    "-keystore",
                    &file,
                    "-storepass",
                    &password,
                ],
                dir,
            );
            assert!(
                list.contains("Your keystore contains 1 entry"),
                "{case}:\n{list}"
            );
            assert!(
                list.contains(&format!("Alias name: {KEY_ALIAS}\n")),
                "{case}:\n{list}"
            );
            assert_eq!(
                list.matches("Entry type: PrivateKeyEntry").count(),
                1,
                "{case}:\n{list}"
            );
            assert!(
                list.contains(&format!("Certificate chain length: {}\n", 1 + chain.len())),
                "{case}:\n{list}"
            );
            assert!(
                list.contains(&format!("Owner: CN={SESSION_ID},")),
                "{case}:\n{list}"
            );
            let key = match key_type {
                KeyType::EcdsaP256 => "256-bit EC (secp256r1) key",
                KeyType::EcdsaP384 => "384-bit EC (secp384r1) key",
                KeyType::Ed25519 => "255-bit Ed25519 key",
                KeyType::Rsa2048 => "2048-bit RSA key",
                KeyType::Rsa3072 => "3072-bit RSA key",
            };
            let key = format!("Subject Public Key Algorithm: {key}");
            assert!(list.contains(&key), "{case}: no {key:?} in\n{list}");
            // The chain in order: leaf, then the issuing CA up to the root.
            let mut at = 0;
            for pem in std::iter::once(body["certificate"].as_str().unwrap())
                .chain(chain.iter().map(|c| c.as_str().unwrap()))
            {
                let fingerprint =
                    format!("SHA256: {}", keytool_fingerprint(&pem_certificates(pem)[0]));
                let found = list[at..]
                    .find(&fingerprint)
                    .unwrap_or_else(|| panic!("{case}: {fingerprint} missing or out of order"));
                at += found + fingerprint.len();
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
async fn trust_store_holds_every_ca_certificate() {
    let service = TestService::with(
        KeyType::EcdsaP384,
        true,
        t0() - Duration::days(1),
        365,
        t0(),
    )
    .await;
    let dir = service.dir.path();
    let pem = get(&service.state, "/v1/ca").await;
    assert_eq!(pem.status, 200);
    let pem = String::from_utf8(pem.body).unwrap();
    let cas = pem_certificates(&pem);
    assert_eq!(cas.len(), 2, "an intermediate and its root");

    let store = get(&service.state, "/v1/ca?format=pkcs12").await;
    assert_eq!(store.status, 200);
    assert_eq!(store.headers["content-type"], "application/pkcs12");
    std::fs::write(dir.join("truststore.p12"), &store.body).unwrap();

    let list = tool_ok(
        "keytool",
        &[
            "-list",
            "-storetype",
            "PKCS12",
            "-keystore",
            "truststore.p12",
            "-storepass",
            TRUSTSTORE_PASSWORD,
        ],
        dir,
    );
    assert!(list.contains("Your keystore contains 2 entries"), "{list}");
    assert_eq!(list.matches("trustedCertEntry").count(), 2, "{list}");
    assert!(!list.contains("PrivateKeyEntry"), "{list}");
    // Each alias names its CA certificate, in the order of GET /v1/ca.
    let lines: Vec<&str> = list.lines().collect();
    for (i, der) in cas.iter().enumerate() {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("session-ca-{i}, ")))
            .unwrap_or_else(|| panic!("no alias session-ca-{i} in\n{list}"));
        assert!(lines[at].ends_with("trustedCertEntry, "), "{}", lines[at]);
        assert_eq!(
            lines[at + 1],
            format!(
                "Certificate fingerprint (SHA-256): {}",
                keytool_fingerprint(der)
            ),
            "session-ca-{i}"
        );
    }

    let info = tool_ok(
        "openssl",
        &[
            "pkcs12",
            "-info",
            "-nokeys",
            "-passin",
            &format!("pass:{TRUSTSTORE_PASSWORD}"),
            "-in",
            "truststore.p12",
        ],
        dir,
    );
    let [mac, _] = openssl_algorithm_lines();
    assert!(info.contains(&mac), "no {mac:?} in\n{info}");
    assert_eq!(
        info.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{info}"
    );
    for ca in pem.split_inclusive("-----END CERTIFICATE-----\n") {
        assert!(
            info.contains(ca.trim()),
            "a CA certificate is missing:\n{info}"
        );
    }
}

#[tokio::test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
async fn a_wrong_password_is_refused() {
    let service = TestService::new().await;
    let dir = service.dir.path();
    let body = issue_json(&service.state, json!({"pkcs12": true}))
        .await
        .json();
    let (der, password) = pkcs12_of(&body);
    std::fs::write(dir.join("key.p12"), der).unwrap();
    let store = get(&service.state, "/v1/ca?format=pkcs12").await;
    std::fs::write(dir.join("truststore.p12"), &store.body).unwrap();

    // The right password opens both (so the refusals below are the password's).
    for (file, right) in [
        ("key.p12", password.as_str()),
        ("truststore.p12", TRUSTSTORE_PASSWORD),
    ] {
        let args = [
            "-list",
            "-storetype",
            "PKCS12",
            "-keystore",
            file,
            "-storepass",
        ];
        tool_ok("keytool", &[&args[..], &[right]].concat(), dir);
        // One character off: the MAC check fails.
        let mut wrong: Vec<char> = right.chars().collect();
        let last = wrong.len() - 1;
        wrong[last] = if wrong[last] == 'A' { 'B' } else { 'A' };
        let wrong: String = wrong.into_iter().collect();
        for bad in [wrong.as_str(), "changeme", ""] {
            let out = tool("keytool", &[&args[..], &[bad]].concat(), dir);
            let shown = text(&out);
            assert!(
                !out.status.success(),
                "{file} opened with {bad:?}:\n{shown}"
            );
            assert!(
                shown.contains("password was incorrect"),
                "{file} with {bad:?}:\n{shown}"
            );
        }
        let out = tool(
            "openssl",
            &[
                "pkcs12",
                "-info",
                "-nokeys",
                "-passin",
                &format!("pass:{wrong}"),
                "-in",
                file,
            ],
            dir,
        );
        let shown = text(&out);
        assert!(!out.status.success(), "openssl opened {file}:\n{shown}");
        assert!(shown.contains("Mac verify error"), "{file}:\n{shown}");
    }
}

/// Runs the Java example client in `dir` with `args`.
fn java_client(dir: &Path, args: &[&str]) -> Output {
    tool("java", &[&[CLIENT][..], args].concat(), dir)
}

/// The backend's status line and JSON body from the client's stdout.
fn backend_reply(out: &Output) -> (String, Value) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (status, body) = stdout
        .split_once('\n')
        .unwrap_or_else(|| panic!("no status line:\n{}", text(out)));
    let body = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("the backend's body is not JSON ({e}):\n{}", text(out)));
    (status.to_owned(), body)
}

/// A real signer (`session-ca serve` with its development CA) and the
/// backend trusting that CA.
fn signer_and_backend(dir: &Path) -> (Guard, String, Backend) {
    let (signer, port) = start_serve(BIN, dir);
    let signer_url = format!("http://127.0.0.1:{port}");
    tool_ok(
        "curl",
        &["-sSf", "-o", "ca.pem", &format!("{signer_url}/v1/ca")],
        dir,
    );
    tools::write_server_identity(dir);
    let backend = Backend::start(dir, "backend", "ca.pem", &[]);
    (signer, signer_url, backend)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
fn java_client_calls_the_mtls_backend_with_a_key_store_from_the_signer() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_signer, signer, backend) = signer_and_backend(dir);
    for key_type in KeyType::ALL {
        let session_id = uuid();
        let transaction_id = format!("tx-java-{key_type}");
        let out = java_client(
            dir,
            &[
                "--signer",
                &signer,
                "--backend",
                &backend.url(),
                "--backend-ca",
                "server.pem",
                "--session-id",
                &session_id,
                "--transaction-id",
                &transaction_id,
                "--key-type",
                &key_type.to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "{key_type}: the client failed ({}):\n{}\nbackend log:\n{}",
            out.status,
            text(&out),
            backend.log_text()
        );
        let (status, body) = backend_reply(&out);
        assert_eq!(status, "HTTP 200", "{key_type}: {body}");
        assert_eq!(
            body["session_id"],
            session_id.as_str(),
            "{key_type}: {body}"
        );
        assert_eq!(
            body["transaction_id"],
            transaction_id.as_str(),
            "{key_type}: {body}"
        );
        assert!(out.stderr.is_empty(), "{key_type}: {}", text(&out));
    }
}

#[test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
fn java_client_reports_refusals_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_signer, signer, backend) = signer_and_backend(dir);
    // A backend that trusts another CA (its own server certificate) only.
    let other_dir = dir.join("other");
    std::fs::create_dir(&other_dir).unwrap();
    tools::write_server_identity(&other_dir);
    std::fs::copy(other_dir.join("server.pem"), other_dir.join("other-ca.pem")).unwrap();
    let other = Backend::start(&other_dir, "backend", "other-ca.pem", &[]);
    let other_ca = other_dir.join("server.pem");
    let (url, other_url) = (backend.url(), other.url());
    let refused_by_other = format!("TLS handshake with the backend {other_url} failed");
    for (args, status, wanted) in [
        // The signer's error code and message.
        (
            &[
                "--backend",
                &url,
                "--backend-ca",
                "server.pem",
                "--profile",
                "nope",
            ][..],
            1,
            "the signer refused (HTTP 404): unknown_profile: unknown profile \"nope\"",
        ),
        (
            &[
                "--backend",
                &url,
                "--backend-ca",
                "server.pem",
                "--key-type",
                "rsa-1024",
            ],
            1,
            "the signer refused (HTTP 400): invalid_request:",
        ),
        // The backend's certificate does not chain to --backend-ca.
        (
            &["--backend", &url, "--backend-ca", "ca.pem"],
            1,
            "TLS handshake with the backend",
        ),
        // The backend does not trust the signer's CA.
        (
            &[
                "--backend",
                &other_url,
                "--backend-ca",
                other_ca.to_str().unwrap(),
            ],
            1,
            &refused_by_other,
        ),
        (
            &["--backend", &url, "--backend-ca", "missing.pem"],
            1,
            "cannot read --backend-ca missing.pem",
        ),
        (
            &[
                "--backend",
                "http://localhost:1/",
                "--backend-ca",
                "server.pem",
            ],
            1,
            "--backend http://localhost:1/ is not an https:// URL",
        ),
        (&["--backend", &url], 2, "--backend-ca is required"),
    ] {
        let out = java_client(dir, &[&["--signer", signer.as_str()][..], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {}", text(&out));
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
        assert!(
            stderr.starts_with("MtlsClient: ") && stderr.contains(wanted),
            "{args:?}: want {wanted:?} in\n{stderr}"
        );
    }
    assert!(
        other.log_text().contains("handshake refused"),
        "the other backend logged no refusal:\n{}",
        other.log_text()
    );
}

/// A stand-in signer: answers each request with the next canned reply and
/// keeps the request bodies.
struct FakeSigner {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeSigner {
    fn start(replies: Vec<(u16, String)>) -> FakeSigner {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for (status, body) in replies {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut request = vec![0; length];
                let _ = reader.read_exact(&mut request);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).into_owned());
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeSigner { url, requests }
    }
}

/// A JSON string literal with every character escaped in one of JSON's
/// ways (`\uXXXX` in either case, `\/`, `\"`) or left as it is, in turn.
fn escaped(text: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        match (c, i % 3) {
            ('"' | '\\', _) => {
                out.push('\\');
                out.push(c);
            }
            ('/', _) => out.push_str("\\/"),
            (_, 0) => out.push_str(&format!("\\u{:04x}", c as u32)),
            (_, 1) => out.push_str(&format!("\\u{:04X}", c as u32)),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
#[ignore = "needs java, keytool and openssl; run scripts/test"]
fn java_client_reads_escaped_json_and_explains_bad_replies() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_signer, signer, backend) = signer_and_backend(dir);
    let session_id = uuid();
    let issued = tool_ok(
        "curl",
        &[
            "-sSf",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            &json!({"pkcs12": true, "session_id": session_id, "transaction_id": "tx \"quoted\""})
                .to_string(),
            &format!("{signer}/v1/certificates"),
        ],
        dir,
    );
    let issued: Value = serde_json::from_str(&issued).unwrap();
    let pkcs12 = &issued["pkcs12"];
    // The real key store, written the way another JSON encoder might, after
    // decoys that a text search would pick up first.
    let reply = format!(
        "{{\n  \"note\": \"not here: \\\"pkcs12\\\": {{\\\"base64\\\": \\\"AAAA\\\", \
         \\\"password\\\": \\\"x\\\"}} \\ud83d\\ude00 \\\\\",\n  \
         \"base64\": \"decoy\", \"password\": \"decoy\",\n  \
         \"nested\": {{\"pkcs12\": {{\"base64\": \"ZGVjb3k=\", \"password\": \"decoy\"}}}},\n  \
         \"numbers\": [0, -1.5e3, 2E+2, true, false, null, [], {{}}],\n  \
         \"pkcs\\u0031\\u0032\" : {{ \"password\" :\t{}, \"base64\":{} }}\n}}\n",
        escaped(pkcs12["password"].as_str().unwrap()),
        escaped(pkcs12["base64"].as_str().unwrap()),
    );
    serde_json::from_str::<Value>(&reply).expect("the fake reply is JSON");
    let bad_replies = [
        (
            502,
            "<html>Bad Gateway</html>".to_owned(),
            "HTTP 502 with a body that is not JSON",
        ),
        (
            201,
            "{\"pkcs12\": {\"base64\": \"\\x\"}}".to_owned(),
            "not JSON (invalid escape",
        ),
        (
            201,
            "{\"certificate\": \"...\"}".to_owned(),
            "no pkcs12.base64 and pkcs12.password",
        ),
        (
            403,
            "{\"error\": {\"code\": \"forbidden\", \"message\": \"caller \\\"x\\\" not allowed\"}}"
                .to_owned(),
            "the signer refused (HTTP 403): forbidden: caller \"x\" not allowed",
        ),
    ];
    let fake = FakeSigner::start(
        std::iter::once((201, reply))
            .chain(bad_replies.iter().map(|(s, b, _)| (*s, b.clone())))
            .collect(),
    );
    let args = |extra: &[&str]| -> Vec<String> {
        [
            "--signer",
            &fake.url,
            "--backend",
            &backend.url(),
            "--backend-ca",
            "server.pem",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        java_client(dir, &args)
    };

    let out = run(args(&[
        "--session-id",
        "a \"quoted\" \\ id\n",
        "--transaction-id",
        "tx",
    ]));
    assert!(
        out.status.success(),
        "{}\nbackend log:\n{}",
        text(&out),
        backend.log_text()
    );
    let (status, body) = backend_reply(&out);
    assert_eq!(status, "HTTP 200");
    // The certificate is the one the real signer issued.
    assert_eq!(body["session_id"], session_id.as_str(), "{body}");
    assert_eq!(body["transaction_id"], "tx \"quoted\"", "{body}");
    // The client's request was JSON with the flags' values intact.
    let sent: Value = serde_json::from_str(&fake.requests.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sent,
        json!({"pkcs12": true, "session_id": "a \"quoted\" \\ id\n", "transaction_id": "tx"})
    );

    for (status, body, wanted) in bad_replies {
        let out = run(args(&[]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{status} {body}: {}",
            text(&out)
        );
        assert!(out.stdout.is_empty(), "{status} {body}: {}", text(&out));
        assert!(
            stderr.contains(wanted),
            "{status} {body}: want {wanted:?} in\n{stderr}"
        );
    }
}
