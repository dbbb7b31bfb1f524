//! Every AWS front door routes right: API Gateway REST (v1) and HTTP API
//! (v2) events built from AWS's published shapes (tests/fixtures/lambda/aws)
//! for stages named `prod`, `v1`, `certificates` and `$default`, on the
//! execute-api endpoint and behind custom domains with and without a base
//! path mapping, read as the runtime loop reads them
//! (`session_ca::lambda_request_from_str`) into the router;
//! and what lambda_http makes of the responses (PEM as text, PKCS#12 binary).

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use session_ca::{lambda_app, AppState};
use tower::ServiceExt;

use crate::common::{iam_state, SESSION_ID};

const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/payments-api/session-1";
const EXECUTE_API: &str = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com";
const CUSTOM_DOMAIN: &str = "signer.example.com";

fn aws_event(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/lambda/aws/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Where a request came in: the execute-api endpoint (the stage is in the
/// URL), or a custom domain mapping `base_path` (maybe empty) to the stage.
#[derive(Debug, Clone, Copy)]
enum Door {
    ExecuteApi,
    CustomDomain { base_path: &'static str },
}

impl Door {
    fn domain(self) -> &'static str {
        match self {
            Door::ExecuteApi => EXECUTE_API,
            Door::CustomDomain { .. } => CUSTOM_DOMAIN,
        }
    }

    /// The URL path the client used for `route` on stage `stage`.
    fn url_path(self, stage: &str, route: &str) -> String {
        match self {
            Door::ExecuteApi if stage == "$default" => route.to_owned(),
            Door::ExecuteApi => format!("/{stage}{route}"),
            Door::CustomDomain { base_path: "" } => route.to_owned(),
            Door::CustomDomain { base_path } => format!("/{base_path}{route}"),
        }
    }
}

/// A REST API proxy event (resource `/{proxy+}`) as API Gateway sends it:
/// `path` without the stage (with the base path behind a custom domain),
/// `requestContext.path` as the client's URL path.
fn rest_event(stage: &str, door: Door, method: &str, route: &str, body: Option<&str>) -> String {
    let mut event = aws_event("example-apigw-request.json");
    let path = match door {
        Door::ExecuteApi => route.to_owned(),
        Door::CustomDomain { .. } => door.url_path(stage, route),
    };
    event["resource"] = json!("/{proxy+}");
    event["path"] = json!(path);
    event["httpMethod"] = json!(method);
    event["pathParameters"] = json!({ "proxy": &route[1..] });
    event["queryStringParameters"] = Value::Null;
    event["multiValueQueryStringParameters"] = Value::Null;
    event["headers"]["Host"] = json!(door.domain());
    event["multiValueHeaders"] = Value::Null;
    event["body"] = json!(body);
    let context = &mut event["requestContext"];
    context["stage"] = json!(stage);
    context["path"] = json!(door.url_path(stage, route));
    context["resourcePath"] = json!("/{proxy+}");
    context["httpMethod"] = json!(method);
    context["domainName"] = json!(door.domain());
    context["identity"]["userArn"] = json!(CALLER);
    event.to_string()
}

/// An HTTP API event as API Gateway sends it: `rawPath` as the client's URL
/// path (with a named stage on the execute-api endpoint), on the
/// `$default` route or on `ANY /{proxy+}`.
fn http_event(
    stage: &str,
    door: Door,
    proxy_route: bool,
    method: &str,
    route: &str,
    body: Option<&str>,
) -> String {
    let mut event = aws_event("example-apigw-v2-request-iam.json");
    let raw_path = door.url_path(stage, route);
    let route_key = if proxy_route {
        "ANY /{proxy+}"
    } else {
        "$default"
    };
    event["routeKey"] = json!(route_key);
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!("");
    event["queryStringParameters"] = Value::Null;
    event["pathParameters"] = if proxy_route {
        json!({ "proxy": &route[1..] })
    } else {
        Value::Null
    };
    event["headers"] = json!({ "host": door.domain(), "content-type": "application/json" });
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    let context = &mut event["requestContext"];
    context["routeKey"] = json!(route_key);
    context["stage"] = json!(stage);
    context["domainName"] = json!(door.domain());
    context["http"]["method"] = json!(method);
    context["http"]["path"] = json!(raw_path);
    context["authorizer"]["iam"]["userArn"] = json!(CALLER);
    event.to_string()
}

async fn call(state: &AppState, event: &str) -> axum::response::Response {
    let request = session_ca::lambda_request_from_str(event).expect("the event parses");
    lambda_app(state.clone()).oneshot(request).await.unwrap()
}

async fn status_and_text(response: axum::response::Response) -> (StatusCode, String) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const ISSUE: &str = r#"{"session_id": "92fea10a-0905-40cc-aca1-54ee52e89c71"}"#;

/// Issuance, the CA chain and an unknown path behind one front door.
async fn check_routes(
    state: &AppState,
    chain: &str,
    case: &str,
    event: impl Fn(&str, &str, Option<&str>) -> String,
) {
    let (status, body) =
        status_and_text(call(state, &event("POST", "/v1/certificates", Some(ISSUE))).await).await;
    assert_eq!(status, StatusCode::CREATED, "{case}: {body}");
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["session_id"], SESSION_ID, "{case}");
    let (status, body) = status_and_text(call(state, &event("GET", "/v1/ca", None)).await).await;
    assert_eq!(status, StatusCode::OK, "{case}: {body}");
    assert_eq!(body, chain, "{case}");
    let (status, body) = status_and_text(call(state, &event("GET", "/v1/nope", None)).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{case}: {body}");
    assert!(body.contains("no route GET /v1/nope"), "{case}: {body}");
}

#[tokio::test]
async fn rest_api_stages_and_custom_domains_route_right() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let chain = std::fs::read_to_string(dir.path().join("signer-key/chain.pem")).unwrap();
    for stage in ["prod", "v1", "certificates"] {
        for door in [
            Door::ExecuteApi,
            Door::CustomDomain { base_path: "" },
            Door::CustomDomain {
                base_path: "signer",
            },
            Door::CustomDomain { base_path: "v1" },
        ] {
            let case = format!("REST stage {stage} {door:?}");
            check_routes(&state, &chain, &case, |method, route, body| {
                rest_event(stage, door, method, route, body)
            })
            .await;
        }
    }
}

#[tokio::test]
async fn http_api_stages_and_custom_domains_route_right() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let chain = std::fs::read_to_string(dir.path().join("signer-key/chain.pem")).unwrap();
    for stage in ["prod", "v1", "certificates", "$default"] {
        for (door, proxy_route) in [
            (Door::ExecuteApi, false),
            (Door::ExecuteApi, true),
            (Door::CustomDomain { base_path: "" }, false),
            (
                Door::CustomDomain {
                    base_path: "signer",
                },
                true,
            ),
            (Door::CustomDomain { base_path: "v1" }, true),
        ] {
            let case = format!("HTTP API stage {stage} {door:?} proxy route {proxy_route}");
            check_routes(&state, &chain, &case, |method, route, body| {
                http_event(stage, door, proxy_route, method, route, body)
            })
            .await;
        }
    }
}

/// What lambda_http hands API Gateway for a response: text, or base64.
async fn lambda_body(response: axum::response::Response) -> lambda_http::Body {
    lambda_http::IntoResponse::into_response(response)
        .await
        .into_body()
}

#[tokio::test]
async fn pem_goes_out_as_text_and_pkcs12_as_binary() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    let chain = std::fs::read_to_string(dir.path().join("signer-key/chain.pem")).unwrap();
    let event = rest_event("v1", Door::ExecuteApi, "GET", "/v1/ca", None);
    match lambda_body(call(&state, &event).await).await {
        lambda_http::Body::Text(text) => assert_eq!(text, chain),
        other => panic!("the PEM chain must be text (isBase64Encoded false), got {other:?}"),
    }
    let mut pkcs12: Value = serde_json::from_str(&event).unwrap();
    pkcs12["queryStringParameters"] = json!({ "format": "pkcs12" });
    pkcs12["multiValueQueryStringParameters"] = json!({ "format": ["pkcs12"] });
    let response = call(&state, &pkcs12.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        matches!(lambda_body(response).await, lambda_http::Body::Binary(_)),
        "a PKCS#12 trust store stays binary"
    );
}

#[tokio::test]
async fn decoded_path_parameters_stay_in_the_path_and_queries_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let state = iam_state(dir.path()).await;
    // API Gateway hands path parameters over decoded: `%3F`, `%23` and `%20`
    // in the URL are `?`, `#` and ` ` in the event. They must stay in the
    // path (never become a query, cut it short, or fail to parse).
    for (proxy, shown) in [
        ("v1/ca?format=pkcs12", "/v1/ca%3Fformat=pkcs12"),
        ("v1/ca#frag", "/v1/ca%23frag"),
        ("v1/a b", "/v1/a%20b"),
        ("v1/100%", "/v1/100%25"),
    ] {
        let mut event: Value =
            serde_json::from_str(&rest_event("prod", Door::ExecuteApi, "GET", "/v1/ca", None))
                .unwrap();
        event["pathParameters"] = json!({ "proxy": proxy });
        event["path"] = json!(format!("/{proxy}"));
        let (status, body) = status_and_text(call(&state, &event.to_string()).await).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{proxy}: {body}");
        assert!(
            body.contains(&format!("no route GET {shown}")),
            "{proxy}: {body}"
        );
    }
    // The event's query string is the request's (a dry run through each API).
    let mut rest: Value = serde_json::from_str(&rest_event(
        "v1",
        Door::ExecuteApi,
        "POST",
        "/v1/certificates",
        Some(ISSUE),
    ))
    .unwrap();
    rest["queryStringParameters"] = json!({ "dry_run": "true" });
    rest["multiValueQueryStringParameters"] = json!({ "dry_run": ["true"] });
    let mut http: Value = serde_json::from_str(&http_event(
        "v1",
        Door::CustomDomain {
            base_path: "signer",
        },
        true,
        "POST",
        "/v1/certificates",
        Some(ISSUE),
    ))
    .unwrap();
    http["rawQueryString"] = json!("dry_run=true");
    for event in [rest, http] {
        let (status, body) = status_and_text(call(&state, &event.to_string()).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let plan: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(plan["dry_run"], true);
    }
}

/// `GET /v1/certificates` through API Gateway with IAM auth: only a caller
/// named in `admin.callers` may read the ledger; others get 403.
#[tokio::test]
async fn only_administrators_read_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = iam_state(dir.path()).await;
    let store = session_ca::SqliteStore::open(
        &dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(store));
    let issued = call(
        &state,
        &http_event(
            "$default",
            Door::ExecuteApi,
            false,
            "POST",
            "/v1/certificates",
            Some(ISSUE),
        ),
    )
    .await;
    assert_eq!(issued.status(), StatusCode::CREATED);

    let query = |state: AppState| async move {
        let mut event: Value = serde_json::from_str(&http_event(
            "$default",
            Door::ExecuteApi,
            false,
            "GET",
            "/v1/certificates",
            None,
        ))
        .unwrap();
        event["rawQueryString"] = json!(format!("session_id={SESSION_ID}"));
        event["queryStringParameters"] = json!({ "session_id": SESSION_ID });
        status_and_text(call(&state, &event.to_string()).await).await
    };
    // The caller may issue, but is not an administrator.
    let (status, text) = query(state.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(
        text.contains("caller_not_allowed") && text.contains("admin.callers"),
        "{text}"
    );

    // Named in admin.callers, it reads its certificate's record.
    let mut config = (*state.config).clone();
    config.admin_callers = vec![session_ca::CallerPattern::new(
        "arn:aws:sts::123456789012:assumed-role/payments-*/*",
    )];
    state.config = std::sync::Arc::new(config);
    let (status, text) = query(state).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let page: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(page["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(page["certificates"][0]["requester"], CALLER);
    assert_eq!(page["next"], Value::Null);
}

/// HMAC-signed requests through every front door, signed as the client
/// sees its URL: with the stage (REST API and HTTP API on the
/// `execute-api` endpoint) or the base path (custom domain) in front of
/// the route the signer routes on, and a query of several parameters,
/// which a REST API or an ALB passes on rebuilt by lambda_http in an order
/// of its own (a `HashMap`'s), so the signer also checks the signature
/// over the query in canonical form, which the Rust client sends. A query
/// or path other than the one signed is still refused.
#[tokio::test]
async fn hmac_signed_requests_pass_every_front_door() {
    use session_ca_client::hmac::{authorization_with_nonce, canonical_path_and_query, Secret};
    const SECRET: &str = "fedcba9876543210fedcba9876543210-ledger";
    let service = crate::common::TestService::new().await;
    let config = session_ca::Config::from_toml(
        session_ca::ConfigOrigin::Embedded,
        &format!(
            "[server]\nauth = \"hmac\"\n[hmac_keys.ledger-fn]\nsecret_env = \"TEST_LEDGER_SECRET\"\n\
             [admin]\ncallers = [\"ledger-*\"]\n[cas.default]\nsource = \"file:{}\"\n\
             [profiles.default]\nallowed_callers = [\"*\"]\n",
            service.ca_dir().display()
        ),
        &std::collections::BTreeMap::from([(
            "TEST_LEDGER_SECRET".to_owned(),
            SECRET.to_owned(),
        )]),
        &[],
    )
    .unwrap();
    let mut state = service.state.clone();
    state.config = std::sync::Arc::new(config);
    let store = session_ca::SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    let now = state.clock.now().unix_timestamp();
    session_ca::Store::record(
        &store,
        &session_ca::store_conformance::record("0a01", "s-1", Some("tx 1/2~"), None, now),
    )
    .await
    .unwrap();
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(store));

    // Four parameters, one with characters each encoder spells its own way.
    let params = [
        ("transaction_id", "tx 1/2~"),
        ("limit", "10"),
        ("since", "2020-01-01T00:00:00Z"),
        ("until", "2099-01-01T00:00:00Z"),
    ];
    let route = "/v1/certificates";
    // The query in canonical form, as the Rust client sends it.
    let query = canonical_path_and_query(&format!(
        "/?{}",
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    ))["/?".len()..]
        .to_owned();
    let secret = Secret::new(SECRET.as_bytes()).unwrap();
    let nonce = std::cell::Cell::new(0);
    let authorization = |signed: &str| {
        nonce.set(nonce.get() + 1);
        authorization_with_nonce(
            "ledger-fn",
            &secret,
            "GET",
            signed,
            now,
            &format!("front-door-nonce-{:04}", nonce.get()),
            b"",
        )
    };
    let as_map = |value: &dyn Fn(&str) -> Value| -> Value {
        params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), value(v)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let rest = |stage: &str, door: Door, authorization: String| {
        let mut event: Value =
            serde_json::from_str(&rest_event(stage, door, "GET", route, None)).unwrap();
        event["queryStringParameters"] = as_map(&|v| json!(v));
        event["multiValueQueryStringParameters"] = as_map(&|v| json!([v]));
        event["headers"]["Authorization"] = json!(authorization);
        event.to_string()
    };
    let http = |stage: &str, door: Door, authorization: String| {
        let mut event: Value =
            serde_json::from_str(&http_event(stage, door, true, "GET", route, None)).unwrap();
        event["rawQueryString"] = json!(query);
        event["queryStringParameters"] = as_map(&|v| json!(v));
        event["headers"]["authorization"] = json!(authorization);
        event.to_string()
    };
    let alb = |authorization: String| {
        let mut event = aws_event("example-alb-lambda-target-request-headers-only.json");
        event["httpMethod"] = json!("GET");
        event["path"] = json!(route);
        // ALB passes the parameters on as the client encoded them.
        event["queryStringParameters"] =
            as_map(&|v| json!(form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()));
        event["headers"]["authorization"] = json!(authorization);
        event["body"] = json!("");
        event.to_string()
    };
    let rest_doors = [
        ("prod", Door::ExecuteApi),
        ("prod", Door::CustomDomain { base_path: "" }),
        ("prod", Door::CustomDomain { base_path: "ca" }),
    ];
    let http_doors = [
        ("prod", Door::ExecuteApi),
        ("$default", Door::ExecuteApi),
        ("prod", Door::CustomDomain { base_path: "ca" }),
    ];
    // Each door, signed over its URL's path and over a query other than
    // the one sent.
    for (signed_query, expected) in [
        (query.clone(), StatusCode::OK),
        (
            query.replace("limit=10", "limit=11"),
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        let signed = |url_path: String| authorization(&format!("{url_path}?{signed_query}"));
        let mut events = Vec::new();
        for (stage, door) in rest_doors {
            let event = rest(stage, door, signed(door.url_path(stage, route)));
            events.push((format!("REST API {stage} {door:?}"), event));
        }
        for (stage, door) in http_doors {
            let event = http(stage, door, signed(door.url_path(stage, route)));
            events.push((format!("HTTP API {stage} {door:?}"), event));
        }
        events.push(("ALB".to_owned(), alb(signed(route.to_owned()))));
        for (door, event) in events {
            let (status, text) = status_and_text(call(&state, &event).await).await;
            assert_eq!(status, expected, "{door}: {text}");
            if expected == StatusCode::OK {
                let page: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(page["certificates"][0]["serial"], "0a01", "{door}: {text}");
            }
        }
    }
    // The route's own path (as a client that knows the route signs) is
    // good too; a path that is neither is not.
    let (stage, door) = rest_doors[0];
    for (signed_path, expected) in [
        (route.to_owned(), StatusCode::OK),
        (format!("/test{route}"), StatusCode::UNAUTHORIZED),
    ] {
        let event = rest(
            stage,
            door,
            authorization(&format!("{signed_path}?{query}")),
        );
        let (status, text) = status_and_text(call(&state, &event).await).await;
        assert_eq!(status, expected, "signed over {signed_path}: {text}");
    }
}

#[tokio::test]
async fn the_crl_as_pem_goes_out_as_text_and_as_der_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = iam_state(dir.path()).await;
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(
        session_ca::SqliteStore::open(
            &dir.path().join("ledger.sqlite3"),
            session_ca::DEFAULT_RETENTION,
        )
        .unwrap(),
    ));
    let mut event: Value = serde_json::from_str(&rest_event(
        "prod",
        Door::ExecuteApi,
        "GET",
        "/v1/crl",
        None,
    ))
    .unwrap();
    event["queryStringParameters"] = json!({ "format": "pem" });
    event["multiValueQueryStringParameters"] = json!({ "format": ["pem"] });
    let response = call(&state, &event.to_string()).await;
    assert_eq!(response.status(), StatusCode::OK);
    match lambda_body(response).await {
        lambda_http::Body::Text(text) => {
            assert!(text.starts_with("-----BEGIN X509 CRL-----"), "{text}")
        }
        other => panic!("a PEM CRL must be text (isBase64Encoded false), got {other:?}"),
    }
    let der = rest_event("prod", Door::ExecuteApi, "GET", "/v1/crl", None);
    let response = call(&state, &der).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        matches!(lambda_body(response).await, lambda_http::Body::Binary(_)),
        "a DER CRL stays binary"
    );
}

/// A Lambda that refused its configuration, behind a REST API's stage and
/// an HTTP API's named stage: `/healthz` says why, and each refused
/// issuance is counted (the `not-configured` alarm's metric).
#[tokio::test]
async fn a_refused_configuration_is_reported_behind_every_stage() {
    let reason = "the embedded default configuration: profiles.default.subject: not set";
    let capture = crate::common::Capture::default();
    let metrics = session_ca::Metrics::Emf(std::sync::Arc::new(session_ca::Emf::to_writer(
        "SessionCA/test",
        Box::new(capture.clone()),
    )));
    let events = [
        (
            rest_event("prod", Door::ExecuteApi, "GET", "/healthz", None),
            rest_event(
                "prod",
                Door::ExecuteApi,
                "POST",
                "/v1/certificates",
                Some(ISSUE),
            ),
        ),
        (
            http_event("prod", Door::ExecuteApi, false, "GET", "/healthz", None),
            http_event(
                "prod",
                Door::ExecuteApi,
                false,
                "POST",
                "/v1/certificates",
                Some(ISSUE),
            ),
        ),
    ];
    for (health, issue) in &events {
        let app = session_ca::misconfigured_lambda_app(reason, metrics.clone());
        let request = session_ca::lambda_request_from_str(health).unwrap();
        let (status, body) = status_and_text(app.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        let health: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "unavailable", "{health}");
        assert!(
            health["reason"].as_str().unwrap().contains(reason),
            "{health}"
        );
        let request = session_ca::lambda_request_from_str(issue).unwrap();
        let (status, body) = status_and_text(app.oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("not_configured"), "{body}");
    }
    let lines = capture.text();
    let refusals: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["ErrorCode"] == "not_configured")
        .collect();
    assert_eq!(refusals.len(), 2, "{lines}");
}
