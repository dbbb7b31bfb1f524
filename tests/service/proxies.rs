//! Backends behind TLS-terminating proxies, with real proxies and AWS's
//! published event shapes:
//!
//! - nginx (the Debian package, started by the test) terminates mutual TLS
//!   against the signer's chain and forwards `$ssl_client_escaped_cert` to
//!   the `proxied_backend` example, which verifies it again with
//!   session-ca-verify and answers with the claims; a client's own header
//!   is replaced by nginx; forged headers sent straight to the backend
//!   (another CA's certificate, a doubly encoded or truncated value) are
//!   refused;
//! - the `apigw_mtls_backend` example Lambda under the runtime emulator of
//!   `cargo lambda`, invoked with API Gateway's REST and HTTP API events
//!   (`tests/fixtures/lambda/aws/`, as AWS publishes them) carrying a
//!   certificate of the test's signer.

use crate::common::examples::{Backend, CLAIMS};
use crate::common::tools;

use std::path::Path;
use std::process::Stdio;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;
use tools::{session_ca_in, Guard};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const HEADER: &str = "X-SSL-Client-Cert";

/// A signer in `dir` (its dev CA), its chain in `dir/ca.pem`, and a
/// certificate for transaction `tx-proxy` in `dir/creds/`.
fn signer_and_certificate(dir: &Path) -> Guard {
    let (signer, port) = tools::start_serve(BIN, dir);
    let (status, chain) = tools::http(port, "GET", "/v1/ca", "");
    assert_eq!(status, 200, "{chain}");
    std::fs::write(dir.join("ca.pem"), chain).unwrap();
    let out = session_ca_in(
        BIN,
        dir,
        &[
            "request",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--out",
            "creds",
            "--transaction-id",
            "tx-proxy",
            "--claim",
            "agent=behind a proxy",
        ],
    );
    assert!(out.status.success(), "{}", tools::output_text(&out));
    signer
}

/// Starts nginx in `dir`, listening with TLS on a free port, requiring a
/// client certificate from `ca.pem` and forwarding it escaped to `backend`.
fn start_nginx(dir: &Path, backend: u16) -> (Guard, u16) {
    tools::start_nginx(
        dir,
        &format!(
            r#"ssl_client_certificate {d}/ca.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        location / {{
            # Replaces whatever a client sent in this header.
            proxy_set_header {HEADER} $ssl_client_escaped_cert;
            proxy_pass http://127.0.0.1:{backend};
        }}"#,
            d = dir.display()
        ),
    )
}

/// `curl` in `dir` with `args`; returns (HTTP status, body).
fn curl(dir: &Path, args: &[&str]) -> (u16, String) {
    let mut all = vec!["-sS", "--max-time", "10", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = tools::run("curl", &all, dir);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// URL-encoding as nginx's `$ssl_client_escaped_cert` does it (every byte
/// but letters and digits escaped is a superset that nginx's decoder and
/// ours both read).
fn escaped(pem: &str) -> String {
    utf8_percent_encode(pem, NON_ALPHANUMERIC).to_string()
}

#[test]
#[ignore = "needs nginx and curl; run scripts/test"]
fn nginx_forwards_the_escaped_certificate_to_a_verifying_backend() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _signer = signer_and_certificate(dir);
    tools::write_server_identity(dir);
    // Another signer, with its own CA: its certificate is foreign here.
    let other = tempfile::tempdir().unwrap();
    let _other_signer = signer_and_certificate(other.path());
    let foreign = other.path().join("creds");

    let mut args = vec!["--listen", "127.0.0.1:0", "--ca", "ca.pem"];
    args.extend(["--proxy", "nginx", "--header", HEADER]);
    args.extend_from_slice(&CLAIMS);
    let backend = Backend::spawn("proxied_backend", dir, "proxied", &args);
    let (_nginx, port) = start_nginx(dir, backend.port);
    let url = format!("https://localhost:{port}/");
    let tls = ["--cacert", "server.pem"];

    // Through nginx with the signer's certificate: the backend read the claims.
    let (status, body) = curl(
        dir,
        &[
            &tls[..],
            &["--cert", "creds/cert.pem", "--key", "creds/key.pem", &url],
        ]
        .concat(),
    );
    assert_eq!(status, 200, "{body}\nnginx: {}", nginx_log(dir));
    let claims = json(&body);
    assert_eq!(claims["transaction_id"], "tx-proxy");
    assert_eq!(claims["claims"]["agent"], "behind a proxy");
    let serial = claims["serial"].as_str().unwrap().to_owned();

    // A client sending the header itself gets nginx's value, not its own.
    let forged = escaped(&std::fs::read_to_string(foreign.join("cert.pem")).unwrap());
    let header = format!("{HEADER}: {forged}");
    let (status, body) = curl(
        dir,
        &[
            &tls[..],
            &["--cert", "creds/cert.pem", "--key", "creds/key.pem"],
            &["-H", &header, &url],
        ]
        .concat(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["serial"], serial.as_str());

    // The foreign certificate is refused at nginx's handshake check.
    let foreign_cert = foreign.join("cert.pem");
    let foreign_key = foreign.join("key.pem");
    let (status, body) = curl(
        dir,
        &[
            &tls[..],
            &["--cert", foreign_cert.to_str().unwrap()],
            &["--key", foreign_key.to_str().unwrap(), &url],
        ]
        .concat(),
    );
    assert_eq!(status, 400, "nginx refuses it: {body}");
    // And with no certificate at all.
    let (status, _) = curl(dir, &[&tls[..], &[url.as_str()]].concat());
    assert_eq!(status, 400);

    // Straight to the backend, as if past the proxy: forged values refused.
    let direct = format!("http://127.0.0.1:{}/", backend.port);
    let ours = escaped(&std::fs::read_to_string(dir.join("creds/cert.pem")).unwrap());
    let cases = [
        // The other dev CA has the same name: refused by its signature.
        (forged.clone(), "does not verify with that trusted CA's key"),
        (escaped(&ours), "cannot be read"),
        (ours[..ours.len() / 2].to_owned(), "cannot be read"),
    ];
    for (value, why) in cases {
        let header = format!("{HEADER}: {value}");
        let (status, body) = curl(dir, &["-H", &header, &direct]);
        assert_eq!(status, 403, "{body}");
        let error = json(&body)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(why), "{why:?} not in {error:?}");
    }
    let (status, body) = curl(dir, &[&direct]);
    assert_eq!(status, 401, "no header: {body}");
    // The real value, sent straight, is accepted: the header is only as
    // trustworthy as the network path to the backend (see the docs).
    let header = format!("{HEADER}: {ours}");
    let (status, body) = curl(dir, &["-H", &header, &direct]);
    assert_eq!(status, 200, "{body}");
}

fn nginx_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
}

/// An AWS event fixture with `edit` applied, written to `dir/name`.
fn event_file(
    dir: &Path,
    fixture: &str,
    name: &str,
    edit: impl FnOnce(&mut Value),
) -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lambda/aws")
        .join(fixture);
    let mut event: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut event);
    let out = dir.join(name);
    std::fs::write(&out, serde_json::to_vec(&event).unwrap()).unwrap();
    out
}

#[test]
#[ignore = "needs cargo-lambda; run scripts/test"]
fn the_api_gateway_mtls_backend_lambda_reads_claims_from_aws_event_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _signer = signer_and_certificate(dir);
    let other = tempfile::tempdir().unwrap();
    let _other_signer = signer_and_certificate(other.path());
    let ours = std::fs::read_to_string(dir.join("creds/cert.pem")).unwrap();
    let foreign = std::fs::read_to_string(other.path().join("creds/cert.pem")).unwrap();

    // The REST shape of identity.clientCert, as AWS publishes it.
    let published: Value =
        serde_json::from_slice(
            &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "tests/fixtures/lambda/aws/example-apigw-custom-auth-request-type-request.json",
            ))
            .unwrap(),
        )
        .unwrap();
    let client_cert = published["requestContext"]["identity"]["clientCert"].clone();
    assert!(client_cert["clientCertPem"].is_string());
    let rest = |name: &str, pem: Option<&str>| {
        let client_cert = client_cert.clone();
        event_file(dir, "example-apigw-request.json", name, move |event| {
            if let Some(pem) = pem {
                let mut cert = client_cert;
                cert["clientCertPem"] = Value::from(pem);
                event["requestContext"]["identity"]["clientCert"] = cert;
            }
        })
    };
    let http_api = |name: &str, pem: &str| {
        event_file(dir, "example-apigw-v2-request-iam.json", name, |event| {
            let cert = &mut event["requestContext"]["authentication"]["clientCert"];
            assert!(cert["clientCertPem"].is_string(), "the published shape");
            cert["clientCertPem"] = Value::from(pem);
        })
    };

    let (_emulator, port) = tools::start_lambda_emulator();
    let claims = CLAIMS
        .iter()
        .skip(1)
        .step_by(2)
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let function = tools::lambda_function(
        &crate::common::examples::example_bin("apigw_mtls_backend"),
        port,
    )
    .env("SIGNER_CA_FILE", dir.join("ca.pem"))
    .env("SIGNER_CLAIMS", claims)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let _function = Guard(function);

    let body = |response: &Value| json(response["body"].as_str().unwrap());
    for event in [rest("rest.json", Some(&ours)), http_api("http.json", &ours)] {
        let response = tools::lambda_invoke(port, &event);
        assert_eq!(response["statusCode"], 200, "{response}");
        let claims = body(&response);
        assert_eq!(claims["transaction_id"], "tx-proxy");
        assert_eq!(claims["claims"]["agent"], "behind a proxy");
    }
    // Another CA's certificate; AWS's own (truncated) example PEM; none.
    for (event, status) in [
        (rest("rest-foreign.json", Some(&foreign)), 403),
        (http_api("http-foreign.json", &foreign), 403),
        (
            rest("rest-published.json", client_cert["clientCertPem"].as_str()),
            403,
        ),
        (rest("rest-none.json", None), 401),
    ] {
        let response = tools::lambda_invoke(port, &event);
        assert_eq!(
            response["statusCode"],
            status,
            "{}: {response}",
            event.display()
        );
        assert!(body(&response)["error"].is_string());
    }
}
