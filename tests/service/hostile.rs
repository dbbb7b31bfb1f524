//! Hostile requests, one table: every row gets a 4xx with a JSON error
//! whose code and message name the problem, and no certificate.

use crate::common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;

/// One hostile request and what it must get.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
    /// Text the error message must contain.
    says: String,
}

fn post(
    name: impl Into<String>,
    body: impl Into<Vec<u8>>,
    status: u16,
    code: &'static str,
    says: &str,
) -> Case {
    Case {
        name: name.into(),
        method: "POST",
        path: "/v1/certificates".into(),
        content_type: Some("application/json"),
        body: body.into(),
        status: StatusCode::from_u16(status).unwrap(),
        code,
        says: says.into(),
    }
}

const VALID: &str = r#"{"profile":"default","session_id":"92fea10a-0905-40cc-aca1-54ee52e89c71","transaction_id":"tx-1","ttl_seconds":300,"key_type":"ecdsa-p256","claims":{"agent":"a","geo":{"lat":"1"}}}"#;

/// The string fields, as (name, a JSON body with `{}` where the value goes,
/// code for a control character, code for a bidi override).
const STRING_FIELDS: [(&str, &str, &str, &str); 6] = [
    (
        "profile",
        r#"{"profile":{}}"#,
        "unknown_profile",
        "unknown_profile",
    ),
    (
        "session_id",
        r#"{"session_id":{}}"#,
        "invalid_field",
        "invalid_field",
    ),
    (
        "transaction_id",
        r#"{"transaction_id":{}}"#,
        "invalid_field",
        "invalid_field",
    ),
    (
        "key_type",
        r#"{"key_type":{}}"#,
        "invalid_request",
        "invalid_request",
    ),
    (
        "claims.agent",
        r#"{"claims":{"agent":{}}}"#,
        "invalid_claim_value",
        "invalid_claim_value",
    ),
    (
        "claims.geo.lat",
        r#"{"claims":{"geo":{"lat":{}}}}"#,
        "invalid_claim_value",
        "invalid_claim_value",
    ),
];

fn status_of(code: &str) -> u16 {
    match code {
        "unknown_profile" => 404,
        "invalid_json" | "invalid_request" | "invalid_csr" => 400,
        _ => 422,
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();

    // Malformed JSON in every position: the valid body cut short before
    // each structural character, and a stray byte after each one outside
    // a string.
    for (i, c) in VALID.char_indices() {
        if matches!(c, '{' | '}' | ':' | ',' | '"') {
            cases.push(post(
                format!("cut at {i}"),
                &VALID.as_bytes()[..i],
                400,
                "invalid_json",
                "not valid JSON",
            ));
        }
        if matches!(c, '{' | '}' | ':' | ',') {
            let mut broken = VALID.as_bytes().to_vec();
            broken.insert(i + 1, b'#');
            cases.push(post(
                format!("'#' after {i}"),
                broken,
                400,
                "invalid_json",
                "not valid JSON",
            ));
        }
    }
    for (name, body) in [
        ("trailing comma", r#"{"profile":"default",}"#),
        ("single quotes", "{'profile':'default'}"),
        ("unquoted key", r#"{profile:"default"}"#),
        ("two documents", r#"{}{}"#),
        ("trailing garbage", r#"{"profile":"default"} x"#),
        ("NaN", r#"{"ttl_seconds":NaN}"#),
        ("comment", r#"{/*c*/}"#),
        ("BOM", "\u{feff}{}"),
        (
            "control character in a string",
            "{\"transaction_id\":\"a\u{1}b\"}",
        ),
        ("lone high surrogate", r#"{"session_id":"\ud800"}"#),
        ("lone low surrogate", r#"{"transaction_id":"\udc00x"}"#),
        (
            "reversed surrogate pair",
            r#"{"claims":{"agent":"\udc00\ud800"}}"#,
        ),
        ("bad escape", r#"{"profile":"\q"}"#),
        ("short unicode escape", r#"{"profile":"\u12"}"#),
    ] {
        cases.push(post(name, body, 400, "invalid_json", "not valid JSON"));
    }
    for (name, bytes) in [
        (
            "overlong '/' (C0 AF)",
            b"{\"profile\":\"\xc0\xaf\"}".to_vec(),
        ),
        (
            "overlong NUL (C0 80)",
            b"{\"session_id\":\"\xc0\x80\"}".to_vec(),
        ),
        (
            "UTF-16 surrogate in UTF-8 (ED A0 80)",
            b"{\"transaction_id\":\"\xed\xa0\x80\"}".to_vec(),
        ),
        (
            "truncated UTF-8",
            b"{\"claims\":{\"agent\":\"\xe2\x82\"}}".to_vec(),
        ),
        ("invalid byte FF", b"{\"key_type\":\"\xff\"}".to_vec()),
        (
            "Latin-1 body",
            b"{\"claims\":{\"agent\":\"caf\xe9\"}}".to_vec(),
        ),
    ] {
        cases.push(post(name, bytes, 400, "invalid_json", "not valid JSON"));
    }

    // Duplicate keys.
    for (name, body) in [
        (
            "duplicate profile",
            r#"{"profile":"default","profile":"plain"}"#,
        ),
        ("duplicate ttl", r#"{"ttl_seconds":60,"ttl_seconds":60}"#),
        ("duplicate claims", r#"{"claims":{},"claims":{}}"#),
        ("duplicate claim", r#"{"claims":{"agent":"a","agent":"a"}}"#),
        (
            "duplicate nested key",
            r#"{"claims":{"geo":{"lat":"1","lat":"2"}}}"#,
        ),
        (
            "duplicate key in an array",
            r#"{"claims":{"geo":[{"k":1,"k":2}]}}"#,
        ),
    ] {
        cases.push(post(name, body, 400, "invalid_request", "duplicate"));
    }

    // Numbers: huge, negative, fractional, exponents, strings.
    for (name, value) in [
        ("2^64", "18446744073709551616"),
        ("-1", "-1"),
        ("-0.0", "-0.0"),
        ("1.5", "1.5"),
        ("1.0", "1.0"),
        ("1e3", "1e3"),
        ("a string", "\"300\""),
        ("true", "true"),
        ("an array", "[300]"),
        ("an object", "{\"s\":300}"),
    ] {
        cases.push(post(
            format!("ttl_seconds {name}"),
            format!(r#"{{"ttl_seconds":{value}}}"#),
            400,
            "invalid_request",
            "ttl_seconds",
        ));
    }
    cases.push(post(
        "ttl_seconds 0",
        r#"{"ttl_seconds":0}"#,
        422,
        "ttl_too_short",
        "at least 1",
    ));
    cases.push(post(
        "ttl_seconds u64::MAX",
        r#"{"ttl_seconds":18446744073709551615}"#,
        422,
        "ttl_too_long",
        "max_ttl",
    ));
    cases.push(post(
        "ttl_seconds 1e400",
        r#"{"ttl_seconds":1e400}"#,
        400,
        "invalid_json",
        "ttl_seconds: number out of range",
    ));
    cases.push(post(
        "a 400-digit claim number",
        format!(r#"{{"claims":{{"geo":{}}}}}"#, "9".repeat(400)),
        400,
        "invalid_json",
        "claims.geo: number out of range",
    ));
    cases.push(post(
        "a 300-digit claim number",
        format!(r#"{{"claims":{{"geo":{}}}}}"#, "9".repeat(300)),
        422,
        "claim_too_long",
        "claim \"geo\" is 300 bytes long",
    ));

    // Wrong types where strings, objects and booleans go.
    for (name, body, says) in [
        ("claims a string", r#"{"claims":"agent=x"}"#, "claims"),
        ("claims an array", r#"{"claims":[["agent","x"]]}"#, "claims"),
        ("profile a number", r#"{"profile":1}"#, "profile"),
        (
            "session_id an object",
            r#"{"session_id":{"id":"x"}}"#,
            "session_id",
        ),
        (
            "transaction_id an array",
            r#"{"transaction_id":["x"]}"#,
            "transaction_id",
        ),
        ("key_type unknown", r#"{"key_type":"rsa-1024"}"#, "key_type"),
        ("pkcs12 a string", r#"{"pkcs12":"true"}"#, "pkcs12"),
        ("csr an object", r#"{"csr":{"pem":"x"}}"#, "csr"),
        ("unknown field", r#"{"is_ca":true}"#, "is_ca"),
        ("an array body", r#"[{"profile":"default"}]"#, "JSON object"),
        ("a string body", r#""default""#, "JSON object"),
        ("null body", "null", "JSON object"),
    ] {
        cases.push(post(name, body, 400, "invalid_request", says));
    }
    cases.push(post(
        "agent a number",
        r#"{"claims":{"agent":1}}"#,
        422,
        "claim_wrong_type",
        "agent",
    ));
    cases.push(post(
        "unknown claim",
        r#"{"claims":{"role":"admin"}}"#,
        422,
        "unknown_claim",
        "role",
    ));

    // Unicode edge cases in every string field: NUL, ESC, a bidi override,
    // a lone surrogate escape; each refused with the field's own code.
    for (field, template, control_code, bidi_code) in STRING_FIELDS {
        for (what, value, code) in [
            ("NUL", r#""a\u0000b""#, control_code),
            ("ESC", r#""\u001b[31m""#, control_code),
            ("RTL override", r#""\u202egnp.exe""#, bidi_code),
            ("lone surrogate", r#""\udfff""#, "invalid_json"),
        ] {
            let body = template.replace("{}", value);
            let says = match code {
                "invalid_json" => "not valid JSON",
                "unknown_profile" => "unknown profile",
                "invalid_request" => "key_type",
                "invalid_claim_value" => "control or bidi-override",
                _ => "control or bidi-override",
            };
            cases.push(post(
                format!("{field}: {what}"),
                body,
                status_of(code),
                code,
                says,
            ));
        }
    }

    // Profile names with path characters are names, not paths.
    for name in [
        "../default",
        "default/../plain",
        "..\\\\default",
        "%2e%2e%2fdefault",
        "/etc/passwd",
        "default\\u0000",
    ] {
        cases.push(post(
            format!("profile {name}"),
            format!(r#"{{"profile":"{name}"}}"#),
            404,
            "unknown_profile",
            "unknown profile",
        ));
    }

    // Size.
    cases.push(post(
        "10 MB body",
        vec![b' '; 10 * 1024 * 1024],
        413,
        "body_too_large",
        "65536 bytes",
    ));
    cases.push(post(
        "10 MB string",
        format!(r#"{{"transaction_id":"{}"}}"#, "x".repeat(10 * 1024 * 1024)),
        413,
        "body_too_large",
        "65536 bytes",
    ));
    cases.push(post(
        "deep array body",
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
        400,
        "invalid_request",
        "JSON object",
    ));
    cases.push(post(
        "a claim nested beyond the parser's limit",
        format!(
            r#"{{"claims":{{"geo":{}1{}}}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        ),
        400,
        "invalid_json",
        "recursion limit",
    ));
    cases.push(post(
        "deep claim",
        format!(
            r#"{{"claims":{{"geo":{}1{}}}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        ),
        422,
        "claim_too_deep",
        "nested",
    ));

    // Media types.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/jsonx"),
        Some("multipart/form-data"),
    ] {
        let mut case = post(
            format!("Content-Type {content_type:?}"),
            "{}",
            415,
            "unsupported_media_type",
            "Content-Type",
        );
        case.content_type = content_type;
        cases.push(case);
    }

    // Wrong methods and paths.
    for (method, path) in [
        ("OPTIONS", "/v1/certificates"),
        ("PUT", "/v1/certificates"),
        ("DELETE", "/v1/certificates"),
        ("PATCH", "/v1/certificates"),
        ("POST", "/v1/ca"),
        ("POST", "/healthz"),
    ] {
        let mut case = post(
            format!("{method} {path}"),
            "{}",
            405,
            "method_not_allowed",
            method,
        );
        case.method = method;
        case.path = path.into();
        cases.push(case);
    }
    for path in [
        "/v1/certificate",
        "/v2/certificates",
        "/v1/certificates/",
        "//v1/certificates",
        "/v1/certificates/../ca",
        "/V1/CERTIFICATES",
        "/v1/certificates%00",
    ] {
        let mut case = post(format!("POST {path}"), "{}", 404, "not_found", "no route");
        case.path = path.into();
        cases.push(case);
    }
    cases
}

#[tokio::test]
async fn every_hostile_request_gets_a_precise_4xx_and_no_certificate() {
    let service = TestService::new().await;
    let cases = cases();
    assert!(cases.len() >= 80, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let mut request = Request::builder().method(case.method).uri(&case.path);
        if let Some(ct) = case.content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let reply = send(
            &service.state,
            request.body(Body::from(case.body.clone())).unwrap(),
        )
        .await;
        let json: Option<serde_json::Value> = serde_json::from_slice(&reply.body).ok();
        let code = json
            .as_ref()
            .and_then(|j| j["error"]["code"].as_str())
            .unwrap_or("");
        let message = json
            .as_ref()
            .and_then(|j| j["error"]["message"].as_str())
            .unwrap_or("");
        let issued = json
            .as_ref()
            .is_some_and(|j| j.get("certificate").is_some())
            || String::from_utf8_lossy(&reply.body).contains("BEGIN");
        if reply.status != case.status
            || code != case.code
            || !message.contains(&case.says)
            || issued
        {
            failures.push(format!(
                "{}: want {} {} saying {:?}, got {} {} {:?}",
                case.name, case.status, case.code, case.says, reply.status, code, message
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
