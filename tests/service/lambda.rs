//! Lambda events (API Gateway REST v1, HTTP API v2, Function URL, ALB) fed
//! through `lambda_http::request::from_str` into the same router `serve`
//! uses, with auth `iam`: who may call, and what lands in the certificate.

use crate::common;

use axum::http::StatusCode;
use common::*;
use http_body_util::BodyExt;
use lambda_http::RequestExt;
use serde_json::{json, Value};
use session_ca::lambda_app;
use session_ca::verify_client_certificate;
use session_ca::AppState;
use tower::ServiceExt;
use x509_parser::prelude::*;

const PAYMENTS_1: &str = "arn:aws:sts::123456789012:assumed-role/payments-api/session-1";

fn fixture(name: &str) -> lambda_http::Request {
    let path = format!(
        "{}/tests/fixtures/lambda/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

async fn call(state: &AppState, request: lambda_http::Request) -> (StatusCode, Vec<u8>) {
    let response = lambda_app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

fn claim(cert: &X509Certificate<'_>, oid: &str) -> Option<String> {
    cert.extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == oid)
        .map(|e| session_ca_verify::decode_claim_value(e.value).unwrap())
}

#[tokio::test]
async fn allowed_principals_get_certificates_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    for (file, principal, request_id) in [
        (
            "rest_v1_iam.json",
            PAYMENTS_1,
            "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        ),
        (
            "http_v2_iam.json",
            "arn:aws:sts::123456789012:assumed-role/payments-api/session-2",
            "Jd5bQi5kIAMEbWQ=",
        ),
        (
            "function_url_iam.json",
            "arn:aws:sts::123456789012:assumed-role/payments-api/session-3",
            "f4bd1a2c-5b9e-4a0f-9a3f-0d4c2b1e8f77",
        ),
    ] {
        let (status, body) = call(&state, fixture(file)).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{file}: {}",
            String::from_utf8_lossy(&body)
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        let pem = body["certificate"].as_str().unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = X509Certificate::from_der(&pem.contents).unwrap();
        assert_eq!(
            claim(&cert, "1.3.6.1.4.1.32473.1.3").as_deref(),
            Some(principal),
            "{file}: requester"
        );
        assert_eq!(
            claim(&cert, "1.3.6.1.4.1.32473.1.4").as_deref(),
            Some(request_id),
            "{file}: request_id"
        );
        assert_eq!(
            claim(&cert, "1.3.6.1.4.1.32473.1.100").as_deref(),
            Some("iOS Agent String"),
            "{file}"
        );
        assert_eq!(body["request_id"], request_id);
        let chain = chain_of(&body);
        verify_client_certificate(&pem.contents.clone().into(), chain.as_bytes(), t0()).unwrap();
    }
}

#[tokio::test]
async fn the_lambda_request_id_wins_over_the_gateway_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let context: lambda_http::Context = serde_json::from_value(json!({
        "request_id": "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
        "deadline": 0,
        "invoked_function_arn": "arn:aws:lambda:eu-west-1:123456789012:function:session-ca",
        "xray_trace_id": null, "client_context": null, "identity": null,
        "env_config": {"function_name": "session-ca", "memory": 128, "version": "$LATEST", "log_stream": "", "log_group": ""}
    }))
    .unwrap();
    let request = fixture("rest_v1_iam.json").with_lambda_context(context);
    let (status, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::CREATED);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["request_id"], "8476a536-e9f4-11e8-9739-2dfe598c3fcd");
}

#[tokio::test]
async fn other_principals_get_403_and_anonymous_callers_401() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    for (file, status, code) in [
        (
            "http_v2_other_principal.json",
            StatusCode::FORBIDDEN,
            "caller_not_allowed",
        ),
        (
            "rest_v1_no_identity.json",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        (
            "function_url_no_identity.json",
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        ),
        ("alb.json", StatusCode::UNAUTHORIZED, "unauthenticated"),
    ] {
        let (got, body) = call(&state, fixture(file)).await;
        assert_eq!(got, status, "{file}: {}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], code, "{file}");
        assert!(body.get("certificate").is_none());
    }
}

#[tokio::test]
async fn rest_stages_are_stripped_so_routes_match() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let request = fixture("rest_v1_get_ca.json");
    assert!(
        request.uri().path().starts_with("/prod/"),
        "lambda_http adds the stage: {}",
        request.uri()
    );
    let (status, body) = call(&state, request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        std::fs::read_to_string(dir.path().join("signer-key/chain.pem")).unwrap()
    );
}

#[tokio::test]
async fn auth_iam_outside_lambda_is_401() {
    // The same router with auth iam but no Lambda request context (a plain HTTP request).
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let reply = issue_json(&state, json!({"session_id": SESSION_ID})).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthenticated");
}
