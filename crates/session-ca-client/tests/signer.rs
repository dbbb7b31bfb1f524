//! SignerClient against a minimal HTTP/1.1 server on a kernel-picked port:
//! what it sends (path, headers, body, HMAC signature) and how it reads the answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use session_ca_client::hmac::{self, Secret};
use session_ca_client::{CertificateRequest, Claims, ClientError, ErrorBody, SignerClient};

/// One request as the server read it.
#[derive(Debug)]
struct Received {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one request with `status` and `body`, and returns what it read.
fn serve_once(status: &'static str, body: String) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/stage", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap().to_owned();
        let target = parts.next().unwrap().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut request_body = vec![0; length];
        reader.read_exact(&mut request_body).unwrap();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        stream.flush().unwrap();
        Received {
            method,
            target,
            headers,
            body: request_body,
        }
    });
    (base, handle)
}

fn issued_body() -> String {
    serde_json::json!({
        "serial": "0a1b",
        "certificate": "-----BEGIN CERTIFICATE-----\n...\n",
        "private_key": "-----BEGIN PRIVATE KEY-----\n...\n",
        "ca_chain": ["-----BEGIN CERTIFICATE-----\n...\n"],
        "not_before": "2025-11-22T08:26:40Z",
        "not_after": "2025-11-22T08:41:40Z",
        "renew_after": "2025-11-22T08:36:40Z",
        "key_type": "ecdsa-p256",
        "fingerprint_sha256": "00",
        "profile": "default",
        "session_id": "s-1",
        "request_id": "r-1"
    })
    .to_string()
}

#[tokio::test(flavor = "current_thread")]
async fn issue_posts_the_request_signed_and_reads_the_certificate() {
    let (base, server) = serve_once("201 Created", issued_body());
    let secret = Secret::new(&[7u8; 32]).unwrap();
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_hmac("payments", secret.clone());
    let mut claims = Claims::default();
    claims.insert("agent", &serde_json::json!("example"));
    let request = CertificateRequest {
        transaction_id: Some("tx-1".into()),
        claims: Some(claims),
        ..CertificateRequest::default()
    };
    let issued = client.issue(&request).await.unwrap();
    assert_eq!(issued.serial, "0a1b");
    assert_eq!(issued.session_id, "s-1");
    assert!(issued.pkcs12.is_none());

    let received = server.join().unwrap();
    assert_eq!(received.method, "POST");
    assert_eq!(received.target, "/stage/v1/certificates");
    assert_eq!(
        received.body,
        br#"{"transaction_id":"tx-1","claims":{"agent":"example"}}"#
    );
    assert_eq!(received.header("content-type"), Some("application/json"));
    assert_eq!(received.header("user-agent"), Some("session-ca/0.1.0"));

    // The header verifies for exactly what was sent.
    let header = received.header("authorization").unwrap();
    let fields = header
        .strip_prefix("SESSION-CA-HMAC-SHA256 ")
        .unwrap()
        .split(", ")
        .map(|f| f.split_once('=').unwrap())
        .collect::<Vec<_>>();
    let [("KeyId", key_id), ("Timestamp", timestamp), ("Nonce", nonce), ("Signature", tag)] =
        fields[..]
    else {
        panic!("{header}");
    };
    assert_eq!(key_id, "payments");
    let timestamp: i64 = timestamp.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp).abs() < 60, "{timestamp} vs {now}");
    let tag: Vec<u8> = (0..tag.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap())
        .collect();
    let signed = hmac::string_to_sign(
        "POST",
        "/stage/v1/certificates",
        timestamp,
        nonce,
        &received.body,
    );
    assert!(secret.verify(&signed, &tag));
    let signed_elsewhere =
        hmac::string_to_sign("POST", "/v1/certificates", timestamp, nonce, &received.body);
    assert!(!secret.verify(&signed_elsewhere, &tag));
}

#[tokio::test(flavor = "current_thread")]
async fn refusals_carry_the_signers_code_and_message() {
    let body = ErrorBody {
        error: session_ca_client::ErrorDetail {
            code: "unauthorized".into(),
            message: "no Authorization header".into(),
        },
    };
    let (base, server) = serve_once("401 Unauthorized", serde_json::to_string(&body).unwrap());
    let client = SignerClient::new(&base, None).unwrap();
    let err = client
        .issue(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the signer refused the request: HTTP 401 unauthorized: no Authorization header"
    );
    let received = server.join().unwrap();
    assert_eq!(received.body, b"{}");
    assert!(received.header("authorization").is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn a_201_that_is_not_an_issuance_is_unexpected() {
    let (base, server) = serve_once("201 Created", "{}".into());
    let client = SignerClient::new(&base, None).unwrap();
    let err = client
        .issue(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnexpectedResponse(_)), "{err:?}");
    server.join().unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_ca_chain_of_a_profile() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let (base, server) = serve_once("200 OK", pem.into());
    let client = SignerClient::new(&base, None).unwrap();
    assert_eq!(client.ca_chain(Some("a b")).await.unwrap(), pem);
    let received = server.join().unwrap();
    assert_eq!(received.method, "GET");
    assert_eq!(received.target, "/stage/v1/ca?profile=a+b");
}

#[tokio::test(flavor = "current_thread")]
async fn an_unreachable_signer_is_a_network_error() {
    // A port that was free a moment ago: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = SignerClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let err = client.ca_chain(None).await.unwrap_err();
    let ClientError::Network(text) = &err else {
        panic!("{err:?}");
    };
    assert!(
        text.starts_with(&format!("GET http://127.0.0.1:{port}/v1/ca: ")),
        "{text}"
    );
}
