//! Lambda events (API Gateway REST v1, HTTP API v2, Function URL, ALB) read
//! as the runtime loop reads them (`session_ca::lambda_request_from_str`)
//! and fed into the same router `serve` uses, with auth `iam`: who may
//! call, and what lands in the certificate.

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
    session_ca::lambda_request_from_str(&text)
        .unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
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

/// Every event fixture's JSON: AWS's published shapes and ours.
fn event_fixtures() -> Vec<(String, String)> {
    let root = format!("{}/tests/fixtures/lambda", env!("CARGO_MANIFEST_DIR"));
    let mut events = Vec::new();
    for dir in [root.clone(), format!("{root}/aws")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                events.push((path.display().to_string(), text));
            }
        }
    }
    events.sort();
    events
}

/// `event`'s JSON with its `version` member first, as AWS sends it (a
/// `Value` alone writes every member in alphabetical order), and JSON
/// whitespace around it; `version`, when given, replaces the event's own.
/// An event with neither is written as it is.
fn version_first(event: &Value, version: Option<&str>) -> String {
    let mut members = event.as_object().unwrap().clone();
    let own = members.remove("version");
    let Some(version) = version.map(Value::from).or(own) else {
        return event.to_string();
    };
    let rest = Value::Object(members).to_string();
    match rest.as_str() {
        "{}" => format!(r#"{{ "version" : {version} }}"#),
        _ => format!(r#"{{ "version" : {version}, {}"#, &rest[1..]),
    }
}

/// Asserts that two readings of the event `name` made the same request:
/// method, URI, headers, body, parameters and request context (its front
/// door, and its fields compared as JSON, as maps are in no order).
fn assert_same_reading(ours: &lambda_http::Request, theirs: &lambda_http::Request, name: &str) {
    use lambda_http::request::RequestContext;
    assert_eq!(ours.method(), theirs.method(), "{name}");
    assert_eq!(ours.uri(), theirs.uri(), "{name}");
    assert_eq!(ours.headers(), theirs.headers(), "{name}");
    assert_eq!(ours.body(), theirs.body(), "{name}");
    assert_eq!(
        ours.query_string_parameters_ref(),
        theirs.query_string_parameters_ref(),
        "{name}"
    );
    assert_eq!(
        ours.path_parameters_ref(),
        theirs.path_parameters_ref(),
        "{name}"
    );
    let door = |request: &lambda_http::Request| match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(_)) => "REST API",
        Some(RequestContext::ApiGatewayV2(_)) => "HTTP API",
        Some(RequestContext::Alb(_)) => "ALB",
        Some(_) => "other",
        None => "none",
    };
    assert_eq!(door(ours), door(theirs), "{name}");
    assert_eq!(
        serde_json::to_value(ours.request_context_ref()).unwrap(),
        serde_json::to_value(theirs.request_context_ref()).unwrap(),
        "{name}"
    );
}

/// The runtime loop reads an event (`session_ca::lambda_request_from_str`,
/// one pass for an HTTP API or Function URL event) exactly as lambda_http
/// reads it: for every fixture, for every fixture made to open with
/// `"version": "2.0"` whatever its shape, and for every fixture with its
/// members sorted (no `version` first), the same front door, method, URI,
/// headers, body, parameters and request context; and what is no front
/// door's event here (VPC Lattice, WebSocket) is refused by both.
#[test]
fn events_are_read_as_lambda_http_reads_them() {
    let events = event_fixtures();
    assert!(events.len() >= 12, "fixtures: {}", events.len());
    let mut version_2 = 0;
    for (name, text) in &events {
        let ours = session_ca::lambda_request_from_str(text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let theirs = lambda_http::request::from_str(text).unwrap();
        assert_same_reading(&ours, &theirs, name);
        if matches!(
            ours.request_context_ref(),
            Some(lambda_http::request::RequestContext::ApiGatewayV2(_))
        ) {
            version_2 += 1;
        }
        let claimed = version_first(&serde_json::from_str(text).unwrap(), Some("2.0"));
        let ours = session_ca::lambda_request_from_str(&claimed)
            .unwrap_or_else(|e| panic!("{name}, claiming 2.0, does not parse: {e}"));
        let theirs = lambda_http::request::from_str(&claimed).unwrap();
        assert_same_reading(&ours, &theirs, &format!("{name}, claiming 2.0"));
        // Every member in alphabetical order, so `version` is not first:
        // no shortcut, lambda_http's order throughout.
        let sorted = serde_json::from_str::<Value>(text).unwrap().to_string();
        let ours = session_ca::lambda_request_from_str(&sorted).unwrap();
        let theirs = lambda_http::request::from_str(&sorted).unwrap();
        assert_same_reading(&ours, &theirs, &format!("{name}, members sorted"));
    }
    assert!(
        version_2 >= 4,
        "HTTP API and Function URL events: {version_2}"
    );
    for not_an_event in [
        r#"{"version": "2.0"}"#,
        r#"{"version": "2.0", "routeKey": "$default", "rawPath": "/", "requestContext": 7}"#,
        r#"{"version": "2.0", "rawPath": 7}"#,
        r#"{"hello": "world"}"#,
        "[]",
    ] {
        assert!(
            session_ca::lambda_request_from_str(not_an_event).is_err(),
            "{not_an_event}"
        );
        assert!(
            lambda_http::request::from_str(not_an_event).is_err(),
            "{not_an_event}"
        );
    }
    // Front doors this build does not serve (lambda_http's `vpc_lattice`
    // and `apigw_websockets` features are off), in AWS's documented
    // shapes: both readings refuse them. Should another dependency turn
    // one of those features on, lambda_http would read the event and this
    // fails, as the reading here would no longer match.
    let vpc_lattice_v2 = json!({
        "version": "2.0",
        "path": "/v1/certificates",
        "method": "POST",
        "headers": {"content-type": ["application/json"]},
        "queryStringParameters": {},
        "body": "{}",
        "isBase64Encoded": false,
        "requestContext": {
            "serviceNetworkArn": "arn:aws:vpc-lattice:us-east-1:123456789012:servicenetwork/sn-0bf3f2882e9cc805a",
            "serviceArn": "arn:aws:vpc-lattice:us-east-1:123456789012:service/svc-0a40eebed65f8d69c",
            "targetGroupArn": "arn:aws:vpc-lattice:us-east-1:123456789012:targetgroup/tg-6d0ecf831eec9f09",
            "identity": {"sourceVpcArn": "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0b8276c84697e7339", "type": "AWS_IAM", "principal": PAYMENTS_1},
            "region": "us-east-1",
            "timeEpoch": "1690497599177430"
        }
    });
    let websocket_connect = json!({
        "headers": {"Host": "abcd123.execute-api.us-east-1.amazonaws.com"},
        "isBase64Encoded": false,
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "messageDirection": "IN",
            "stage": "prod",
            "connectedAt": 1_579_100_000_000_i64,
            "requestTimeEpoch": 1_579_100_000_000_i64,
            "identity": {"sourceIp": "203.0.113.7"},
            "requestId": "Gu1PmFcsIAMF0cg=",
            "domainName": "abcd123.execute-api.us-east-1.amazonaws.com",
            "connectionId": "Gu1PmdySIAMCJhA=",
            "apiId": "abcd123"
        }
    });
    for (name, event) in [
        ("VPC Lattice", vpc_lattice_v2),
        ("WebSocket", websocket_connect),
    ] {
        let text = version_first(&event, None);
        let ours = session_ca::lambda_request_from_str(&text);
        let theirs = lambda_http::request::from_str(&text);
        assert!(
            ours.is_err(),
            "{name}: read as {:?}",
            ours.map(|r| r.uri().clone())
        );
        assert!(theirs.is_err(), "{name}: lambda_http reads it");
    }
}
