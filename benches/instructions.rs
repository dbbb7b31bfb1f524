//! The regression guard's probe: one operation of the hot path, run once
//! after a warm-up, inside `measured`, whose instructions
//! `scripts/instructions` counts under callgrind (`--toggle-collect`) and
//! compares with `benches/instructions.baseline`. Instruction counts do not
//! depend on the machine's load, so the guard is stable on a shared machine.
//!
//!   instructions CASE      # run CASE (under valgrind: scripts/instructions)
//!   instructions --list    # the cases
//!   instructions           # every case once, as `cargo test` does
//!
//! Cases: one in-process issuance per key type the default build generates
//! (`issue-*`: the request parsed, the profile applied, key made, signed,
//! PEM), one `POST /v1/certificates` through the router (`router-p256`), and
//! one API Gateway HTTP API event (AWS's published IAM example, made a
//! `POST /v1/certificates`) read from its JSON and through the Lambda
//! handler (`lambda-p256`; the runtime API's HTTP exchange and the
//! response's JSON are not in it). The router and the Lambda service are
//! built once, in `prepare`, as `serve` and the Lambda runtime build them
//! once per process; each operation sends one request through a clone.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use session_ca::{
    app, create_ca, issue, lambda_app, AppState, CaStore, Caller, Config, ConfigOrigin, FixedClock,
    InitOptions, IssueRequest, KeyType, SharedClock, SystemClock, DEFAULT_CONFIG,
};
use tower::ServiceExt;

/// The binary's allocator (src/main.rs), so that the probe counts what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SESSION: &str = "92fea10a-0905-40cc-aca1-54ee52e89c71";

/// The cases, by name.
const CASES: [&str; 5] = [
    "issue-ecdsa-p256",
    "issue-ecdsa-p384",
    "issue-ed25519",
    "router-p256",
    "lambda-p256",
];

fn state(dir: &std::path::Path, lambda: bool) -> AppState {
    let ca_dir = dir.join("signer-key");
    let now = time::OffsetDateTime::now_utc();
    create_ca(
        &InitOptions {
            dir: ca_dir.clone(),
            key_type: KeyType::EcdsaP256,
            subject: "CN=Instructions CA".into(),
            validity_days: 30,
            intermediate: false,
            path_len: 0,
            force: true,
        },
        now - time::Duration::hours(1),
    )
    .unwrap();
    let mut text = DEFAULT_CONFIG.replace("file:signer-key", &format!("file:{}", ca_dir.display()));
    // No ledger: the guard watches the signer's own path; the store has
    // benches/ledger_store.rs.
    text = text.replace(
        "url = \"sqlite:signer-key/ledger.sqlite3\"",
        "url = \"none\"",
    );
    if lambda {
        text = text.replace("auth = \"none\"", "auth = \"iam\"").replace(
            "[profiles.default]",
            "[profiles.default]\nallowed_callers = [\"*\"]",
        );
    }
    let config = Config::from_toml(
        ConfigOrigin::Embedded,
        &text,
        &BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let cas = runtime()
        .block_on(CaStore::load(
            &config.cas,
            &clock,
            &Default::default(),
            session_ca::OnLoadFailure::Fail,
        ))
        .unwrap();
    AppState {
        config: Arc::new(config),
        cas,
        clock: Arc::new(FixedClock::new(now)),
        metrics: Default::default(),
        ledger: Default::default(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn body(key_type: &str) -> String {
    format!(
        r#"{{"session_id":"{SESSION}","transaction_id":"tx-1","key_type":"{key_type}","claims":{{"agent":"instructions"}}}}"#
    )
}

/// AWS's HTTP API (v2) example event with an IAM authorizer, made a POST of
/// `body` to /v1/certificates: the JSON the runtime receives.
fn lambda_event(body: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lambda/aws/example-apigw-v2-request-iam.json"
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["rawPath"] = "/v1/certificates".into();
    event["rawQueryString"] = "".into();
    event["queryStringParameters"] = serde_json::json!({});
    event["headers"] = serde_json::json!({"content-type": "application/json"});
    event["requestContext"]["http"]["method"] = "POST".into();
    event["requestContext"]["http"]["path"] = "/v1/certificates".into();
    event["body"] = body.into();
    // AWS sends `version` first, as its published shape has it; a `Value`
    // would write it last, after the members sorted before it.
    let version = event.as_object_mut().unwrap().remove("version").unwrap();
    let rest = event.to_string();
    format!("{{\"version\":{version},{}", &rest[1..])
}

/// The service Lambda mode runs, as [`lambda_app`] builds it.
type LambdaService =
    tower::util::MapRequest<axum::Router, fn(lambda_http::Request) -> lambda_http::Request>;

/// One operation of `case`, prepared: what `measured` runs.
enum Operation {
    Issue(AppState, String),
    Router(axum::Router, tokio::runtime::Runtime),
    /// The service, the runtime and the event's JSON.
    Lambda(LambdaService, tokio::runtime::Runtime, String),
}

impl Operation {
    fn prepare(case: &str, dir: &std::path::Path) -> Operation {
        match case {
            "router-p256" => Operation::Router(app(state(dir, false)), runtime()),
            "lambda-p256" => Operation::Lambda(
                lambda_app(state(dir, true)),
                runtime(),
                lambda_event(&body("ecdsa-p256")),
            ),
            issue => {
                let key_type = issue.strip_prefix("issue-").unwrap_or_else(|| {
                    panic!("unknown case {case:?}; the cases are {}", CASES.join(", "))
                });
                Operation::Issue(state(dir, false), body(key_type))
            }
        }
    }

    fn run(&self) -> usize {
        match self {
            Operation::Issue(state, body) => {
                let ca = state.cas.get("default").unwrap();
                let profile = state.config.profile("default").unwrap();
                let request = IssueRequest::from_json(body.as_bytes()).unwrap();
                let plan = profile.plan(&request, &Caller::Anonymous, "req-1").unwrap();
                issue(&ca, &plan, state.clock.now())
                    .unwrap()
                    .certificate_pem
                    .len()
            }
            Operation::Router(router, runtime) => runtime.block_on(async {
                let response = router
                    .clone()
                    .oneshot(
                        Request::post("/v1/certificates")
                            .header(header::CONTENT_TYPE, "application/json")
                            .body(Body::from(body("ecdsa-p256")))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap()
                    .len()
            }),
            Operation::Lambda(service, runtime, event) => runtime.block_on(async {
                // The event's JSON read into a request, as the runtime does
                // for every invocation, then the handler.
                let request = session_ca::lambda_request_from_str(event).unwrap();
                let response = service.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 201);
                axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap()
                    .len()
            }),
        }
    }
}

/// What callgrind counts (`--toggle-collect=*measured*`): one operation.
#[inline(never)]
fn measured(operation: &Operation) -> usize {
    operation.run()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{}", CASES.join(" "));
        return;
    }
    // `cargo test` runs it with its own flags (`--include-ignored`): every case.
    let cases: Vec<&str> = match args.iter().find(|a| !a.starts_with('-')) {
        Some(case) => vec![case.as_str()],
        None => CASES.to_vec(),
    };
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let operation = Operation::prepare(case, dir.path());
        // The first run pays for lazy initialisation (CA caches, the
        // allocator's first pages); the second is the one counted.
        operation.run();
        let bytes = std::hint::black_box(measured(&operation));
        eprintln!("{case}: {bytes} bytes out");
    }
}
