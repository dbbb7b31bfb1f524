//! The Rust client (`session-ca-client`): its SigV4 signatures checked
//! against botocore's, computed independently in Python; the headers
//! `session-ca request --aws-sigv4` puts on the wire; and
//! `CachedCertificate` renewing at `renew_after` against a real `serve`.

use crate::common::tools;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use session_ca_client::sigv4::{AwsService, AwsSigV4, Credentials};
use session_ca_client::{CachedCertificate, CertificateRequest, ClientError, SignerClient};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const BOTOCORE_SIGV4: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/service/scripts/botocore_sigv4.py"
);
const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMSJHMEUCIQ+/=";

/// What botocore's SigV4Auth puts on a request (the script's JSON output).
fn botocore_headers(spec: &Value) -> BTreeMap<String, String> {
    let mut child = Command::new("python3")
        .arg(BOTOCORE_SIGV4)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); scripts/test puts .venv/ first"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore_sigv4.py failed (botocore is installed into .venv/ by scripts/test): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn lower_case(headers: Vec<(String, String)>) -> BTreeMap<String, String> {
    headers
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}

#[tokio::test]
#[ignore = "needs botocore (.venv); run scripts/test"]
async fn sigv4_headers_equal_botocores_for_both_services() {
    // 2026-12-01T12:00:00Z
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_126_400);
    let cases = [
        (
            AwsService::Lambda,
            "eu-west-1",
            "https://abcdefghij.lambda-url.eu-west-1.on.aws/v1/certificates",
            r#"{"transaction_id":"tx-0001","claims":{"agent":"é ✓"}}"#,
        ),
        (
            AwsService::ExecuteApi,
            "us-east-1",
            "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod/v1/certificates?dry_run=true",
            "{}",
        ),
        (
            AwsService::ExecuteApi,
            "eu-central-1",
            "https://signer.example:8443/stage/v1/certificates",
            "",
        ),
    ];
    for (service, region, url, body) in cases {
        for token in [Some(TOKEN), None] {
            let credentials = Credentials::new(
                ACCESS_KEY,
                SECRET_KEY,
                token.map(str::to_owned),
                None,
                "test",
            );
            let ours = lower_case(
                AwsSigV4::new(credentials, region, service)
                    .headers("POST", url, Some("application/json"), body.as_bytes(), time)
                    .await
                    .unwrap(),
            );
            let theirs = botocore_headers(&json!({
                "method": "POST",
                "url": url,
                "body": body,
                "headers": {"Content-Type": "application/json"},
                "region": region,
                "service": service.signing_name(),
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "token": token,
                "amz_date": "20261201T120000Z",
            }));
            assert_eq!(ours, theirs, "{service:?} {url} token {token:?}");
        }
    }
}

/// One HTTP request as a server received it.
struct Received {
    method: String,
    target: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Accepts one connection on `listener`, reads one request and answers 403
/// with the API's error body.
fn receive_one(listener: &TcpListener) -> Received {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap().to_owned();
    let target = parts.next().unwrap().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let answer = r#"{"error":{"code":"forbidden","message":"recorded by the test"}}"#;
    write!(
        &stream,
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
        answer.len()
    )
    .unwrap();
    Received {
        method,
        target,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

#[test]
#[ignore = "needs botocore (.venv); run scripts/test"]
fn request_with_aws_sigv4_sends_a_signature_botocore_agrees_with() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut request = Command::new(BIN);
    request
        .args(["request", "--url"])
        .arg(format!("http://127.0.0.1:{port}/prod"))
        .args(["--transaction-id", "tx-42", "--aws-sigv4"])
        .args(["--aws-service", "execute-api", "--aws-region", "eu-west-1"])
        .current_dir(dir.path())
        // Credentials from the environment, as a Lambda function has them;
        // no profile file or instance metadata is consulted.
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_REGION")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = request.spawn().unwrap();
    let received = receive_one(&listener);
    let out = child.wait_with_output().unwrap();
    // The recorder refused it, and the command says so.
    assert!(!out.status.success());
    let stderr = tools::output_text(&out);
    assert!(stderr.contains("HTTP 403 forbidden"), "{stderr}");

    assert_eq!(
        (received.method.as_str(), received.target.as_str()),
        ("POST", "/prod/v1/certificates")
    );
    assert_eq!(
        received
            .headers
            .get("x-amz-security-token")
            .map(String::as_str),
        Some(TOKEN)
    );
    let authorization = &received.headers["authorization"];
    let signed = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap();
    assert_eq!(
        signed,
        "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    );
    // botocore, given the received request, signs it the same way.
    let theirs = botocore_headers(&json!({
        "method": received.method,
        "url": format!("http://127.0.0.1:{port}{}", received.target),
        "body": received.body,
        "headers": {"Content-Type": received.headers["content-type"]},
        "region": "eu-west-1",
        "service": "execute-api",
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "token": TOKEN,
        "amz_date": received.headers["x-amz-date"],
    }));
    assert_eq!(&theirs["authorization"], authorization);
    assert_eq!(
        theirs["x-amz-content-sha256"],
        received.headers["x-amz-content-sha256"]
    );
}

#[test]
fn request_with_aws_sigv4_and_no_credentials_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["request", "--url", "http://127.0.0.1:9/", "--aws-sigv4"])
        .current_dir(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = tools::output_text(&out);
    assert!(stderr.contains("no AWS credentials"), "{stderr}");

    // And with no region anywhere.
    let out = Command::new(BIN)
        .args(["request", "--url", "http://127.0.0.1:9/", "--aws-sigv4"])
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", dir.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = tools::output_text(&out);
    assert!(stderr.contains("no AWS region"), "{stderr}");

    // --aws-region without --aws-sigv4 is a usage error.
    let out = Command::new(BIN)
        .args(["request", "--url", "http://127.0.0.1:9/"])
        .args(["--aws-region", "eu-west-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", tools::output_text(&out));
}

fn rfc3339(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_certificate_is_renewed_at_renew_after() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port) = tools::start_serve(BIN, dir.path());
    let signer = SignerClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let cached = CachedCertificate::new(
        signer,
        CertificateRequest {
            transaction_id: Some("tx-cache".into()),
            ..CertificateRequest::default()
        },
    );
    let now = OffsetDateTime::now_utc();
    let first = cached.get_at(now).await.unwrap();
    let renew_after = rfc3339(&first.renew_after);
    let not_after = rfc3339(&first.not_after);
    assert!(now < renew_after && renew_after < not_after);
    assert!(first.identity_pem().unwrap().contains("PRIVATE KEY"));

    // Before renew_after: the same certificate, no new issuance.
    let again = cached
        .get_at(renew_after - time::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(again.serial, first.serial);

    // At renew_after: a new one for the same request.
    let second = cached.get_at(renew_after).await.unwrap();
    assert_ne!(second.serial, first.serial);
    assert_eq!(second.profile, "default");
    // The same session: the id the signer generated the first time.
    assert_eq!(second.session_id, first.session_id);
    let second_renew_after = rfc3339(&second.renew_after);
    let second_not_after = rfc3339(&second.not_after);

    // The signer gone: the held certificate serves while it is valid...
    drop(server);
    let held = cached.get_at(second_renew_after).await.unwrap();
    assert_eq!(held.serial, second.serial);
    // ...and the signer's absence is the error once it has expired.
    let err = cached.get_at(second_not_after).await.unwrap_err();
    assert!(matches!(err, ClientError::Network(_)), "{err:?}");
}
