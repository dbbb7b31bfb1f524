//! The signer client's own tests.
use super::*;

#[test]
fn error_bodies_become_rejections() {
    let body = br#"{"error": {"code": "forbidden", "message": "no", "extra": 1}}"#;
    match rejection(
        reqwest::StatusCode::FORBIDDEN,
        body,
        Some(Duration::from_secs(3)),
    ) {
        ClientError::Rejected {
            status,
            code,
            message,
            retry_after,
        } => assert_eq!(
            (status, code.as_str(), message.as_str(), retry_after),
            (403, "forbidden", "no", Some(Duration::from_secs(3)))
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_bodies_are_unexpected_and_sanitised() {
    let body = format!("<html>\u{1b}[31m{}</html>", "x".repeat(300));
    let err = rejection(reqwest::StatusCode::BAD_GATEWAY, body.as_bytes(), None);
    let ClientError::UnexpectedResponse(text) = &err else {
        panic!("{err:?}");
    };
    assert!(
        text.starts_with("HTTP 502 Bad Gateway with body \"<html>[31m"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains("</html>"),
        "{text}"
    );
    // An error object without the fields is not this API's error either.
    let err = rejection(reqwest::StatusCode::FORBIDDEN, br#"{"error": "no"}"#, None);
    assert!(matches!(err, ClientError::UnexpectedResponse(_)), "{err:?}");
}

#[test]
fn urls_must_be_http() {
    for url in ["ftp://signer.example", "not a url", "/v1"] {
        let err = SignerClient::new(url, None).unwrap_err();
        assert!(matches!(err, ClientError::InvalidUrl(_)), "{url}: {err:?}");
    }
    let err = SignerClient::new("https://signer.example", Some(b"not PEM")).unwrap_err();
    assert!(matches!(err, ClientError::InvalidCa(_)), "{err:?}");
}

#[test]
fn paths_are_relative_to_the_base() {
    let client = SignerClient::new("https://api.example/stage", None).unwrap();
    assert_eq!(
        client.url("v1/certificates").unwrap().as_str(),
        "https://api.example/stage/v1/certificates"
    );
    let client = SignerClient::new("http://127.0.0.1:8080", None).unwrap();
    assert_eq!(
        client.url("v1/ca").unwrap().as_str(),
        "http://127.0.0.1:8080/v1/ca"
    );
}

#[test]
fn debug_shows_the_key_id_not_the_secret() {
    let client = SignerClient::new("http://127.0.0.1:8080", None)
        .unwrap()
        .with_hmac("payments", Secret::new(&[7u8; 32]).unwrap());
    let shown = format!("{client:?}");
    assert!(
        shown.contains("payments") && !shown.contains("0707"),
        "{shown}"
    );
}

#[test]
fn an_outcomes_debug_shows_no_idempotency_key_or_private_key() {
    let outcome = IssueOutcome {
        response: serde_json::from_value(serde_json::json!({
            "serial": "01", "certificate": "CERT", "private_key": "SECRET-KEY",
            "ca_chain": [], "not_before": "", "not_after": "", "renew_after": "",
            "key_type": "ecdsa-p256", "fingerprint_sha256": "", "x5t#S256": "",
            "profile": "default", "session_id": "s", "request_id": "r"
        }))
        .unwrap(),
        replayed: true,
        idempotency_key: "IDEMPOTENCY-KEY-0123456789".into(),
        attempts: 2,
    };
    let shown = format!("{outcome:?}");
    assert!(
        !shown.contains("IDEMPOTENCY-KEY") && !shown.contains("SECRET-KEY"),
        "{shown}"
    );
    assert!(shown.contains("attempts: 2"), "{shown}");
}

#[test]
fn signing_errors_keep_their_message() {
    assert_eq!(
        ClientError::Signing(SigningError::Random).to_string(),
        "cannot sign the request: the system CSPRNG failed"
    );
}
