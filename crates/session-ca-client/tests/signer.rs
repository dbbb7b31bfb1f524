//! SignerClient against a minimal HTTP/1.1 server on a kernel-picked port:
//! what it sends (path, headers, body, HMAC signature) and how it reads the answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use session_ca_client::hmac::{self, Secret};
use session_ca_client::{
    idempotency, CertificateRequest, Claims, ClientError, ErrorBody, RetryPolicy, SignerClient,
};

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

/// Reads one request from `stream`.
fn read_request(stream: &TcpStream) -> Received {
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
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Received {
        method,
        target,
        headers,
        body,
    }
}

/// Writes an answer with `status`, `headers` and `body`, and closes.
fn answer(mut stream: TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{head}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
}

/// Serves one request with `status` and `body`, and returns what it read.
fn serve_once(status: &'static str, body: String) -> (String, JoinHandle<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/stage", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let received = read_request(&stream);
        answer(stream, status, &[], &body);
        received
    });
    (base, handle)
}

/// What the scripted server does with one request.
enum Reply {
    /// Answers with a status line, extra headers and a body.
    With(&'static str, Vec<(&'static str, &'static str)>, String),
    /// Closes the connection without answering.
    Hangup,
}

/// Serves one request per reply of `script`, in order, each on its own
/// connection. Returns the base URL and the requests read so far (each
/// recorded before it is answered, so complete once the client returns).
fn serve_script(script: Vec<Reply>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for reply in script {
            let (stream, _) = listener.accept().unwrap();
            let received = read_request(&stream);
            record.lock().unwrap().push(received);
            match reply {
                Reply::With(status, headers, body) => answer(stream, status, &headers, &body),
                Reply::Hangup => drop(stream),
            }
        }
    });
    (base, seen)
}

/// The signer's error answer.
fn refusal(status: &'static str, code: &str, headers: Vec<(&'static str, &'static str)>) -> Reply {
    let body = serde_json::json!({"error": {"code": code, "message": "m"}}).to_string();
    Reply::With(status, headers, body)
}

fn issued() -> Reply {
    Reply::With("201 Created", vec![], issued_body())
}

/// Retries without waiting long.
const QUICK: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(1),
    max_delay: Duration::from_secs(2),
};

/// The `Idempotency-Key` of each request.
fn keys(seen: &Mutex<Vec<Received>>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap_or("").to_owned())
        .collect()
}

fn is_key_shaped(key: &str) -> bool {
    (16..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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

#[tokio::test(flavor = "current_thread")]
async fn a_503_is_retried_with_the_same_key_and_a_fresh_signature() {
    let (base, seen) = serve_script(vec![
        refusal("503 Service Unavailable", "ledger_unavailable", vec![]),
        issued(),
    ]);
    let secret = Secret::new(&[7u8; 32]).unwrap();
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_hmac("payments", secret.clone())
        .with_retry_policy(QUICK);
    let outcome = client
        .issue_detailed(&CertificateRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(outcome.response.serial, "0a1b");
    assert_eq!((outcome.attempts, outcome.replayed), (2, false));

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    // One key, fresh and of the allowed shape: 24 random bytes, base64url.
    let key = seen[0].header("idempotency-key").unwrap();
    assert_eq!(seen[1].header("idempotency-key"), Some(key));
    assert_eq!(key, outcome.idempotency_key);
    assert_eq!(key.len(), 32);
    assert!(is_key_shaped(key), "{key}");
    // Each attempt signed anew: its own nonce, and a signature that
    // verifies for what it sent.
    let nonces: Vec<&str> = seen
        .iter()
        .map(|r| {
            let header = r.header("authorization").unwrap();
            let nonce = header.split(", Nonce=").nth(1).unwrap();
            nonce.split(',').next().unwrap()
        })
        .collect();
    assert_ne!(nonces[0], nonces[1]);
    for (received, nonce) in seen.iter().zip(&nonces) {
        assert_eq!(received.body, b"{}");
        let header = received.header("authorization").unwrap();
        let timestamp: i64 = header
            .split("Timestamp=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let tag = header.rsplit_once("Signature=").unwrap().1;
        let tag: Vec<u8> = (0..tag.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&tag[i..i + 2], 16).unwrap())
            .collect();
        let signed = hmac::string_to_sign("POST", "/v1/certificates", timestamp, nonce, b"{}");
        assert!(secret.verify(&signed, &tag), "{header}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn in_progress_is_retried_after_retry_after_and_the_replay_is_told() {
    let (base, seen) = serve_script(vec![
        refusal(
            "409 Conflict",
            "idempotency_in_progress",
            vec![("retry-after", "0")],
        ),
        Reply::With(
            "201 Created",
            vec![("idempotent-replayed", "true")],
            issued_body(),
        ),
    ]);
    // The default policy: a Retry-After of 0 is waited, not a backoff.
    let client = SignerClient::new(&base, None).unwrap();
    let outcome = client
        .issue_detailed(&CertificateRequest::default(), None)
        .await
        .unwrap();
    assert_eq!((outcome.attempts, outcome.replayed), (2, true));
    let keys = keys(&seen);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0], outcome.idempotency_key);
}

#[tokio::test(flavor = "current_thread")]
async fn other_refusals_are_not_retried() {
    for (status, code) in [
        ("422 Unprocessable Entity", "idempotency_key_reused"),
        ("409 Conflict", "crl_unavailable"),
        ("403 Forbidden", "forbidden"),
        ("500 Internal Server Error", "internal_error"),
    ] {
        let (base, seen) = serve_script(vec![refusal(status, code, vec![]), issued()]);
        let client = SignerClient::new(&base, None)
            .unwrap()
            .with_retry_policy(QUICK);
        let err = client
            .issue(&CertificateRequest::default())
            .await
            .unwrap_err();
        let ClientError::Rejected {
            status: got,
            code: got_code,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(
            (got.to_string(), got_code.as_str()),
            (status[..3].to_owned(), code)
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "{status} {code}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_retry_after_beyond_max_delay_is_returned_not_slept() {
    let (base, seen) = serve_script(vec![
        refusal(
            "429 Too Many Requests",
            "rate_limited",
            vec![("retry-after", "30")],
        ),
        issued(),
    ]);
    let client = SignerClient::new(&base, None).unwrap();
    assert_eq!(client.retry_policy().max_delay, Duration::from_secs(2));
    let started = Instant::now();
    let err = client
        .issue(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let ClientError::Rejected {
        status,
        code,
        retry_after,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        (*status, code.as_str(), *retry_after),
        (429, "rate_limited", Some(Duration::from_secs(30)))
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_429_within_max_delay_is_waited_out() {
    let (base, seen) = serve_script(vec![
        refusal(
            "429 Too Many Requests",
            "rate_limited",
            vec![("retry-after", "1")],
        ),
        issued(),
    ]);
    let client = SignerClient::new(&base, None).unwrap();
    let started = Instant::now();
    let outcome = client
        .issue_detailed(&CertificateRequest::default(), None)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.attempts, 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_connection_is_retried() {
    let (base, seen) = serve_script(vec![Reply::Hangup, issued()]);
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_retry_policy(QUICK);
    let outcome = client
        .issue_detailed(&CertificateRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(outcome.attempts, 2);
    let keys = keys(&seen);
    assert_eq!(
        keys,
        [outcome.idempotency_key.clone(), outcome.idempotency_key]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn retries_end_at_max_attempts() {
    let unavailable = || refusal("503 Service Unavailable", "ca_unavailable", vec![]);
    let (base, seen) = serve_script(vec![unavailable(), unavailable(), unavailable(), issued()]);
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_retry_policy(QUICK);
    let err = client
        .issue(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Rejected { status: 503, code, .. } if code == "ca_unavailable"),
        "{err:?}"
    );
    let keys = keys(&seen);
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");

    // A gateway's 502 page, with retries off: one attempt.
    let (base, seen) = serve_script(vec![
        Reply::With("502 Bad Gateway", vec![], "<html>bad gateway</html>".into()),
        issued(),
    ]);
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    let err = client
        .issue(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnexpectedResponse(_)), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn each_call_has_its_own_key() {
    let (base, seen) = serve_script(vec![issued(), issued()]);
    let client = SignerClient::new(&base, None).unwrap();
    client.issue(&CertificateRequest::default()).await.unwrap();
    client.issue(&CertificateRequest::default()).await.unwrap();
    let keys = keys(&seen);
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1]);
    assert!(keys.iter().all(|k| is_key_shaped(k)), "{keys:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_callers_key_is_sent_and_a_bad_one_refused_before_sending() {
    let (base, seen) = serve_script(vec![issued(), issued()]);
    let client = SignerClient::new(&base, None).unwrap();
    let key = "order-4711_attempt-A";
    let issued = client
        .issue_with_idempotency_key(&CertificateRequest::default(), key)
        .await
        .unwrap();
    assert_eq!(issued.serial, "0a1b");
    assert_eq!(keys(&seen), [key]);

    for bad in ["too-short", "has a space in it!", &"x".repeat(129)] {
        let err = client
            .issue_with_idempotency_key(&CertificateRequest::default(), bad)
            .await
            .unwrap_err();
        let ClientError::InvalidIdempotencyKey(reason) = &err else {
            panic!("{bad}: {err:?}");
        };
        assert_eq!(idempotency::check_key(bad), Err(reason.clone()));
        assert!(err.to_string().starts_with("an idempotency key "), "{err}");
    }
    // None of them was sent.
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dry_run_sends_no_key_and_is_not_retried() {
    let (base, seen) = serve_script(vec![
        refusal("503 Service Unavailable", "ca_unavailable", vec![]),
        Reply::With("200 OK", vec![], "{}".into()),
    ]);
    let client = SignerClient::new(&base, None)
        .unwrap()
        .with_retry_policy(QUICK);
    let err = client
        .dry_run(&CertificateRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Rejected { status: 503, .. }),
        "{err:?}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/v1/certificates?dry_run=true");
    assert_eq!(seen[0].header("idempotency-key"), None);
}

/// A redirect is an unexpected answer, never followed: the request, its
/// idempotency key and its signature go nowhere but the signer.
#[tokio::test(flavor = "current_thread")]
async fn a_redirect_is_not_followed() {
    let (elsewhere, followed) = serve_script(vec![issued()]);
    for status in [
        "307 Temporary Redirect",
        "308 Permanent Redirect",
        "302 Found",
    ] {
        let location: &'static str =
            Box::leak(format!("{elsewhere}/v1/certificates").into_boxed_str());
        let (base, seen) = serve_script(vec![Reply::With(
            status,
            vec![("location", location)],
            String::new(),
        )]);
        let client = SignerClient::new(&base, None)
            .unwrap()
            .with_retry_policy(QUICK);
        let err = client
            .issue(&CertificateRequest::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::UnexpectedResponse(_)),
            "{status}: {err:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "{status}: not retried");
    }
    assert!(
        followed.lock().unwrap().is_empty(),
        "nothing reached the redirect's target"
    );
}
