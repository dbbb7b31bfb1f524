//! The Parameter Store CA source against a real SSM endpoint emulator
//! (moto_server), through the real aws-sdk-ssm client. Run by scripts/test.
//!
//! The fault tests put a failure-injecting proxy (tests/common/faulty_proxy.rs)
//! between the signer's SSM client and moto: connections reset or left
//! hanging, ThrottlingException answers; corrupt parameters after a
//! rotation are checked through the signer's own log events; and a rotation
//! happens under 2,000 requests at concurrency 16.

use crate::common;
use crate::common::faulty_proxy;
use crate::common::moto;
use crate::common::tools;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use axum::http::StatusCode;
use common::*;
use faulty_proxy::{Fault, FaultyProxy};
use moto::Moto;
use serde_json::json;
use session_ca::verify_client_certificate;
use session_ca::{
    material_from_parameters, SSM_MAX_ATTEMPTS as MAX_ATTEMPTS,
    SSM_OPERATION_TIMEOUT as OPERATION_TIMEOUT,
};
use session_ca::{AppState, CaStore, KeyType, SharedClock, SystemClock};
use session_ca::{CaMaterial, OnLoadFailure};
use session_ca::{Config, ConfigOrigin};

async fn local_ca(dir: &std::path::Path, name: &str) -> CaMaterial {
    let now = ::time::OffsetDateTime::now_utc();
    ca_material(&dir.join(name), KeyType::EcdsaP256, true, now, 30).await
}

/// Writes the key, certificate and chain parameters under `prefix`, each
/// with the given type (overwriting).
async fn put_ca(
    client: &aws_sdk_ssm::Client,
    prefix: &str,
    parameters: [(&str, String, ParameterType); 3],
) {
    for (name, value, kind) in parameters {
        client
            .put_parameter()
            .name(format!("{prefix}/{name}"))
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
}

async fn ssm_state(
    moto_settings: &session_ca::SsmSettings,
    prefix: &str,
    refresh: &str,
    on_failure: OnLoadFailure,
) -> Result<AppState, session_ca::CaError> {
    let text = format!(
        "[cas.default]\nsource = \"ssm:{prefix}\"\nrefresh = \"{refresh}\"\n[profiles.default]\nuri_san = \"urn:uuid:{{session_id}}\"\n"
    );
    let config = Config::from_toml(
        ConfigOrigin::File("ssm.toml".into()),
        &text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let cas = CaStore::load(&config.cas, &clock, moto_settings, on_failure).await?;
    Ok(AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics: Default::default(),
        ledger: Default::default(),
    })
}

async fn chain_in_ssm(client: &aws_sdk_ssm::Client, prefix: &str) -> String {
    client
        .get_parameter()
        .name(format!("{prefix}/chain"))
        .send()
        .await
        .unwrap()
        .parameter()
        .unwrap()
        .value()
        .unwrap()
        .to_owned()
}

fn verifies(body: &serde_json::Value, chain: &str) -> bool {
    let pem = body["certificate"].as_str().unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    verify_client_certificate(
        &pem.contents.into(),
        chain.as_bytes(),
        ::time::OffsetDateTime::now_utc(),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn publish_load_and_issue_from_parameter_store() {
    let moto = Moto::start();
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;

    let written = session_ca::publish_ssm(&client, "/session-ca/prod", &material, None, false)
        .await
        .unwrap();
    assert_eq!(
        written,
        [
            "/session-ca/prod/key",
            "/session-ca/prod/cert",
            "/session-ca/prod/chain"
        ]
    );
    let key = client
        .get_parameter()
        .name("/session-ca/prod/key")
        .send()
        .await
        .unwrap();
    assert_eq!(
        key.parameter().unwrap().r#type(),
        Some(&ParameterType::SecureString)
    );

    // A second publish does not clobber the CA unless asked to.
    let other = local_ca(dir.path(), "other").await;
    let err = session_ca::publish_ssm(&client, "/session-ca/prod", &other, None, false)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/session-ca/prod/cert, /session-ca/prod/chain, /session-ca/prod/key already exist in \
         Parameter Store; pass --overwrite to replace them"
    );
    assert_eq!(
        chain_in_ssm(&client, "/session-ca/prod").await,
        material.chain_pem.clone().unwrap()
    );

    let state = ssm_state(
        &moto.settings(),
        "/session-ca/prod",
        "5m",
        OnLoadFailure::Fail,
    )
    .await
    .unwrap();
    let reply = issue_json(&state, json!({"session_id": SESSION_ID})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    assert!(verifies(
        &reply.json(),
        &chain_in_ssm(&client, "/session-ca/prod").await
    ));
    let health = get(&state, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn bad_parameters_are_refused_with_their_names() {
    let moto = Moto::start();
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;
    // Missing chain.
    for (name, value, kind) in [
        (
            "key",
            material.key_pem().unwrap().expose().to_owned(),
            ParameterType::SecureString,
        ),
        ("cert", material.cert_pem.clone(), ParameterType::String),
    ] {
        client
            .put_parameter()
            .name(format!("/missing/{name}"))
            .value(value)
            .r#type(kind)
            .send()
            .await
            .unwrap();
    }
    let err = ssm_state(&moto.settings(), "/missing", "5m", OnLoadFailure::Fail)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ssm:/missing/chain: cannot read: no such parameter"),
        "{err}"
    );

    // The key stored as a plain String.
    let chain = material.chain_pem.clone().unwrap();
    put_ca(
        &client,
        "/plain",
        [
            (
                "key",
                material.key_pem().unwrap().expose().to_owned(),
                ParameterType::String,
            ),
            ("cert", material.cert_pem.clone(), ParameterType::String),
            ("chain", chain.clone(), ParameterType::String),
        ],
    )
    .await;
    let err = ssm_state(&moto.settings(), "/plain", "5m", OnLoadFailure::Fail)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssm:/plain/key: is of type String, expected SecureString"),
        "{err}"
    );

    // A key read without decryption, as with a missing kms:Decrypt grant.
    session_ca::publish_ssm(&client, "/enc", &material, None, false)
        .await
        .unwrap();
    let raw = client
        .get_parameters()
        .names("/enc/key")
        .names("/enc/cert")
        .names("/enc/chain")
        .with_decryption(false)
        .send()
        .await
        .unwrap();
    let err = material_from_parameters("/enc", raw.parameters(), raw.invalid_parameters(), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssm:/enc/key") && err.contains("not decrypted"),
        "{err}"
    );

    // Malformed PEM and a key that does not match the certificate.
    let garbled = "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n";
    put_ca(
        &client,
        "/garbled",
        [
            ("key", garbled.to_owned(), ParameterType::SecureString),
            ("cert", material.cert_pem.clone(), ParameterType::String),
            ("chain", chain.clone(), ParameterType::String),
        ],
    )
    .await;
    let err = ssm_state(&moto.settings(), "/garbled", "5m", OnLoadFailure::Fail)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ssm:/garbled/key: not a PEM PKCS#8 private key"),
        "{err}"
    );
    let other = local_ca(dir.path(), "other").await;
    put_ca(
        &client,
        "/garbled",
        [
            (
                "key",
                other.key_pem().unwrap().expose().to_owned(),
                ParameterType::SecureString,
            ),
            ("cert", material.cert_pem.clone(), ParameterType::String),
            ("chain", chain, ParameterType::String),
        ],
    )
    .await;
    let err = ssm_state(&moto.settings(), "/garbled", "5m", OnLoadFailure::Fail)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ssm:/garbled/cert: does not match the CA private key"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn rotation_is_picked_up_without_a_failed_request() {
    let moto = Moto::start();
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    let old = local_ca(dir.path(), "old").await;
    let new = local_ca(dir.path(), "new").await;
    session_ca::publish_ssm(&client, "/rotating", &old, None, false)
        .await
        .unwrap();
    let state = ssm_state(&moto.settings(), "/rotating", "1s", OnLoadFailure::Fail)
        .await
        .unwrap();
    let refresh = state
        .cas
        .spawn_refresh(state.clock.clone(), session_ca::Metrics::Off);
    let old_chain = old.chain_pem.clone().unwrap();
    let new_chain = new.chain_pem.clone().unwrap();

    // Requests run continuously while the CA is replaced in Parameter Store.
    let stop = Arc::new(AtomicBool::new(false));
    let (issued, from_new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (state, stop, issued, from_new) = (
            state.clone(),
            stop.clone(),
            issued.clone(),
            from_new.clone(),
        );
        let (old_chain, new_chain) = (old_chain.clone(), new_chain.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = issue_json(&state, json!({"session_id": SESSION_ID})).await;
                assert_eq!(
                    reply.status,
                    StatusCode::CREATED,
                    "a request failed during rotation"
                );
                let body = reply.json();
                let (by_old, by_new) = (verifies(&body, &old_chain), verifies(&body, &new_chain));
                assert!(
                    by_old ^ by_new,
                    "each certificate verifies against exactly one of the CAs"
                );
                issued.fetch_add(1, Ordering::Relaxed);
                if by_new {
                    from_new.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    session_ca::publish_ssm(&client, "/rotating", &new, None, true)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while from_new.load(Ordering::Relaxed) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new CA was not picked up within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("no request failed during rotation");
    assert!(
        issued.load(Ordering::Relaxed) > from_new.load(Ordering::Relaxed),
        "some came from the old CA first"
    );
    for task in refresh {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn the_last_good_ca_serves_when_parameter_store_goes_away_and_a_cold_start_recovers() {
    let moto = Moto::start();
    let port = moto.port;
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    session_ca::publish_ssm(
        &client,
        "/flaky",
        &local_ca(dir.path(), "ca").await,
        None,
        false,
    )
    .await
    .unwrap();
    let state = ssm_state(&moto.settings(), "/flaky", "1s", OnLoadFailure::Fail)
        .await
        .unwrap();

    drop(moto); // the endpoint goes away
    let err = state
        .cas
        .refresh("default", &state.clock)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ssm:/flaky: cannot read: GetParameters failed"),
        "{err}"
    );
    let reply = issue_json(&state, json!({})).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "the last good CA keeps serving"
    );

    // A cold start while Parameter Store is unreachable: 503s, then recovery.
    let cold = ssm_state(
        &moto::settings_for(port),
        "/flaky",
        "1s",
        OnLoadFailure::ServeUnavailable,
    )
    .await
    .unwrap();
    assert_unavailable(&cold).await;

    let moto = Moto::start_on(Some(port)); // a fresh emulator: publish again
    session_ca::publish_ssm(
        &moto.client().await,
        "/flaky",
        &local_ca(dir.path(), "ca2").await,
        None,
        false,
    )
    .await
    .unwrap();
    assert!(cold.cas.refresh("default", &cold.clock).await.unwrap());
    assert_eq!(
        issue_json(&cold, json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(get(&cold, "/healthz").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn publish_ssm_command_uploads_once_and_overwrites_only_when_asked() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_session-ca"))
            .args(args)
            .current_dir(dir.path())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_BACKTRACE", "0")
            // At trace level the SDK logs request bodies; they must not reach the output.
            .env("SESSION_CA_LOG", "trace")
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let publish = [
        "publish-ssm",
        "--prefix",
        "/cli/ca",
        "--region",
        "eu-west-1",
        "--endpoint-url",
        &moto.url(),
    ];
    let out = run(&publish);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("wrote /cli/ca/key")
            && text.contains("SESSION_CA_CAS__DEFAULT__SOURCE=ssm:/cli/ca"),
        "{text}"
    );
    assert!(
        text.contains("aws_smithy_runtime"),
        "the SDK's debug logging was on: {text}"
    );
    let key = std::fs::read_to_string(dir.path().join("signer-key/ca-key.pem")).unwrap();
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!text.contains(line), "the CA private key reached the log");
    }

    let out = run(&publish);
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        text.contains("already exist in Parameter Store; pass --overwrite"),
        "{text}"
    );

    assert!(run(&["init", "--force"]).status.success());
    let mut overwrite = publish.to_vec();
    overwrite.push("--overwrite");
    assert!(run(&overwrite).status.success());
    let chain = chain_in_ssm(&moto.client().await, "/cli/ca").await;
    assert_eq!(
        chain,
        std::fs::read_to_string(dir.path().join("signer-key/chain.pem")).unwrap()
    );

    // A CA that fails the signer's own checks never leaves the machine.
    std::fs::write(dir.path().join("signer-key/ca-cert.pem"), "garbage").unwrap();
    let out = run(&overwrite);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signer-key/ca-cert.pem"));
    assert_eq!(chain_in_ssm(&moto.client().await, "/cli/ca").await, chain);
}

/// The configuration of the Lambda-mode tests: auth `iam`, every caller
/// admitted, the `agent` claim of the event fixture, the CA under `prefix`.
fn lambda_config(prefix: &str) -> Config {
    let text = format!(
        "[server]\nauth = \"iam\"\n[cas.default]\nsource = \"ssm:{prefix}\"\nrefresh = \"1s\"\n\
         [profiles.default]\nallowed_callers = [\"*\"]\n\
         [profiles.default.claims]\nagent = {{ oid = \"1.3.6.1.4.1.32473.1.100\", type = \"string\", max_len = 64 }}\n"
    );
    Config::from_toml(
        ConfigOrigin::File("lazy.toml".into()),
        &text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap()
}

/// A Lambda-mode state whose CA is loaded at a cold start through `settings`
/// (an unreachable endpoint leaves it unloaded).
async fn lambda_state(settings: &session_ca::SsmSettings, prefix: &str) -> AppState {
    let config = lambda_config(prefix);
    let clock: SharedClock = Arc::new(SystemClock);
    let cas = CaStore::load(
        &config.cas,
        &clock,
        settings,
        OnLoadFailure::ServeUnavailable,
    )
    .await
    .unwrap();
    AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics: Default::default(),
        ledger: Default::default(),
    }
}

/// One Function URL event (tests/fixtures/lambda/function_url_iam.json)
/// through the Lambda service, which reloads a due CA first.
async fn lambda_issue(state: &AppState) -> (StatusCode, serde_json::Value) {
    use tower::ServiceExt as _;
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lambda/function_url_iam.json"
    ))
    .unwrap();
    let request = session_ca::lambda_request_from_str(&fixture).unwrap();
    let response = session_ca::lambda_app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
    )
}

/// Lambda freezes the environment between events, so in Lambda mode a due
/// CA is reloaded at the start of a request, not by a background timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn lambda_requests_reload_a_due_ca_and_recover_from_a_failed_cold_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = tools::free_port();
    // Cold start while Parameter Store is unreachable: the function still starts.
    let state = lambda_state(&moto::settings_for(port), "/lazy").await;
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "ca_unavailable");

    let moto = Moto::start_on(Some(port));
    let client = moto.client().await;
    let old = local_ca(dir.path(), "old").await;
    session_ca::publish_ssm(&client, "/lazy", &old, None, false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5_100)).await; // the retry interval of an unloaded CA
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(&body, old.chain_pem.as_ref().unwrap()));

    // Rotation: the first request after the refresh interval signs with the new CA.
    let new = local_ca(dir.path(), "new").await;
    session_ca::publish_ssm(&client, "/lazy", &new, None, true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        verifies(&body, new.chain_pem.as_ref().unwrap()),
        "issued by the rotated CA"
    );
}

// ---------------------------------------------------------------------------
// Faults: Parameter Store unreachable, hanging, throttling, corrupt after a
// rotation, and a rotation under load.

/// The message of every 503 `ca_unavailable`: what is wrong, and where the cause is.
const CA_UNAVAILABLE_MESSAGE: &str = "the CA for this profile cannot sign right now (expired, \
     not yet valid or not loaded); the cause is in the signer's logs";

/// Log events captured as JSON lines (the signer's JSON log format) by a
/// subscriber installed for the current thread: with a current-thread
/// runtime that covers the test, every task it spawns (the refresh tasks
/// included) and the SDK.
#[derive(Clone, Default)]
struct Logs(Capture);

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.0.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    fn events(&self) -> Vec<serde_json::Value> {
        self.0
            .text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON log line"))
            .collect()
    }

    /// Events with this message, from the `skip`th event on.
    fn with_message(&self, skip: usize, message: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .skip(skip)
            .filter(|e| e["message"] == message)
            .collect()
    }

    /// Waits up to `within` for an event with `message` whose `error` field
    /// contains `error_part`, from the `skip`th event on.
    async fn wait_for(
        &self,
        skip: usize,
        message: &str,
        error_part: &str,
        within: Duration,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(event) = self
                .with_message(skip, message)
                .into_iter()
                .find(|e| e["error"].as_str().unwrap_or("").contains(error_part))
            {
                return event;
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} event with {error_part:?} within {within:?}; events: {:#?}",
                &self.events()[skip.min(self.events().len())..]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Asserts that `/healthz` of `state` is 503, naming the CA as not loaded.
async fn assert_health_unavailable(state: &AppState) {
    let health = get(state, "/healthz").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = health.json();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["cas"][0]["name"], "default", "{body}");
    assert_eq!(body["cas"][0]["usable"], false, "{body}");
    assert!(body["cas"][0]["subject"].is_null(), "{body}");
}

/// Asserts that `state` (auth `none`) has no usable CA: `/healthz` 503 and
/// an issuance 503 `ca_unavailable` with the standard message.
async fn assert_unavailable(state: &AppState) {
    assert_health_unavailable(state).await;
    let reply = issue_json(state, json!({"session_id": SESSION_ID})).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "ca_unavailable");
    assert_eq!(reply.message(), CA_UNAVAILABLE_MESSAGE);
}

/// Asserts that `/healthz` of `state` is 200 and `/v1/ca` serves `chain`.
async fn assert_serving(state: &AppState, chain: &str) {
    let health = get(state, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.json());
    assert_eq!(health.json()["cas"][0]["usable"], true);
    let served = get(state, "/v1/ca").await;
    assert_eq!(String::from_utf8_lossy(&served.body), chain);
}

/// Asserts that `state` (auth `none`) issues with the CA whose chain is
/// `chain`, and that `/healthz` and `/v1/ca` say so.
async fn assert_signing_with(state: &AppState, chain: &str) {
    let reply = issue_json(state, json!({"session_id": SESSION_ID})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    assert!(verifies(&reply.json(), chain), "issued by the expected CA");
    assert_serving(state, chain).await;
}

/// A1. Parameter Store unreachable at a cold start (every connection reset):
/// the SDK makes its 3 attempts, a local server refuses to start with a
/// clear error, a Lambda starts anyway and answers `/healthz` and issuance
/// with 503 `ca_unavailable` (the cause logged), its requests retry the load
/// at most every 5 s, and once Parameter Store answers again the next due
/// request loads the CA and gets a certificate.
#[tokio::test(flavor = "current_thread")]
#[ignore = "needs moto_server; run scripts/test"]
async fn a_cold_start_with_parameter_store_unreachable_retries_then_answers_503_and_recovers() {
    let (logs, _capture) = Logs::capture();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;
    session_ca::publish_ssm(&moto.client().await, "/cold", &material, None, false)
        .await
        .unwrap();
    let chain = material.chain_pem.clone().unwrap();
    let proxy = FaultyProxy::start(&moto.url(), Fault::Reset).await;
    let via_proxy = moto::settings_for(proxy.port);
    let attempts = MAX_ATTEMPTS as usize;

    // `serve` (OnLoadFailure::Fail) refuses to start, saying why.
    let started = Instant::now();
    let err = match ssm_state(&via_proxy, "/cold", "1s", OnLoadFailure::Fail).await {
        Ok(_) => panic!("no CA, no server"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("ssm:/cold: cannot read: GetParameters failed: dispatch failure"),
        "{err}"
    );
    assert_eq!(proxy.seen().reset, attempts, "the SDK's attempts");
    assert!(
        started.elapsed() < OPERATION_TIMEOUT,
        "{:?}",
        started.elapsed()
    );

    // A Lambda cold start: it starts without a CA.
    let state = lambda_state(&via_proxy, "/cold").await;
    assert_eq!(proxy.seen().reset, 2 * attempts);
    assert_eq!(proxy.seen().requests, 0);
    let logged = logs.with_message(
        0,
        "CA not loaded; answering 503 ca_unavailable and retrying",
    );
    assert_eq!(logged.len(), 1, "{:#?}", logs.events());
    assert_eq!(logged[0]["level"], "ERROR");
    assert!(
        logged[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("ssm:/cold: cannot read: GetParameters failed"),
        "{}",
        logged[0]
    );
    assert_health_unavailable(&state).await;

    // The first Lambda request retries the load (3 more attempts), then 503.
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "ca_unavailable");
    assert_eq!(body["error"]["message"], CA_UNAVAILABLE_MESSAGE);
    assert_eq!(proxy.seen().reset, 3 * attempts);
    let warned = logs.with_message(0, "CA reload failed; keeping what is loaded");
    assert_eq!(warned.len(), 1, "{:#?}", logs.events());
    assert_eq!(warned[0]["loaded"], false);
    // The next one within 5 s does not hit Parameter Store again.
    let (status, _) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(proxy.seen().reset, 3 * attempts, "no retry storm");

    // Parameter Store is back.
    proxy.set(Fault::None);
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(&body, &chain));
    assert_eq!(proxy.seen().forwarded, 1, "one GetParameters call");
    assert_eq!(
        proxy.targets(),
        ["AmazonSSM.GetParameters"],
        "only GetParameters reached the endpoint"
    );
    assert_serving(&state, &chain).await;
    assert_eq!(
        logs.with_message(0, "CA material loaded; signing with it now")
            .len(),
        1
    );
}

/// A1 (hanging endpoint). Parameter Store accepts connections and never
/// answers: the per-attempt (2 s) and per-operation (5 s) timeouts end a
/// cold start's load within 5 s, and a Lambda request waits at most 3 s for
/// its reload before answering 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn a_hanging_parameter_store_cannot_stall_a_cold_start_or_a_request() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;
    session_ca::publish_ssm(&moto.client().await, "/hang", &material, None, false)
        .await
        .unwrap();
    let proxy = FaultyProxy::start(&moto.url(), Fault::Hang).await;
    let via_proxy = moto::settings_for(proxy.port);

    let started = Instant::now();
    let state = lambda_state(&via_proxy, "/hang").await;
    let took = started.elapsed();
    assert!(
        took >= session_ca::SSM_ATTEMPT_TIMEOUT
            && took < OPERATION_TIMEOUT + Duration::from_millis(1_500),
        "the cold start's load took {took:?}"
    );
    let hung = proxy.seen().hung;
    assert!(
        (2..=MAX_ATTEMPTS as usize).contains(&hung),
        "{:?}",
        proxy.seen()
    );
    assert_health_unavailable(&state).await;

    let started = Instant::now();
    let (status, body) = lambda_issue(&state).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "ca_unavailable");
    assert!(
        took >= session_ca::ON_REQUEST_REFRESH_TIMEOUT
            && took < session_ca::ON_REQUEST_REFRESH_TIMEOUT + Duration::from_millis(1_500),
        "the request waited {took:?} for its reload"
    );
    assert!(proxy.seen().hung > hung, "the request tried again");

    proxy.set(Fault::None);
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    let (status, body) = lambda_issue(&state).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(&body, material.chain_pem.as_ref().unwrap()));
}

/// A2. SSM throttles (HTTP 400 ThrottlingException) the first two
/// GetParameters calls: the SDK's standard retry absorbs it, the CA loads on
/// the third attempt and issuance succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn throttling_within_the_retry_budget_is_absorbed_by_the_sdk() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;
    session_ca::publish_ssm(&moto.client().await, "/throttled", &material, None, false)
        .await
        .unwrap();
    let throttles = MAX_ATTEMPTS as usize - 1;
    let proxy = FaultyProxy::start(
        &moto.url(),
        Fault::Throttle {
            remaining: throttles,
        },
    )
    .await;

    let state = ssm_state(
        &moto::settings_for(proxy.port),
        "/throttled",
        "5m",
        OnLoadFailure::Fail,
    )
    .await
    .expect("the CA loads despite throttling");
    let seen = proxy.seen();
    assert_eq!(
        (seen.throttled, seen.forwarded, seen.requests),
        (throttles, 1, MAX_ATTEMPTS as usize),
        "{seen:?}"
    );
    assert_eq!(
        proxy.targets(),
        vec!["AmazonSSM.GetParameters"; MAX_ATTEMPTS as usize],
        "the same call, retried"
    );
    assert_signing_with(&state, material.chain_pem.as_ref().unwrap()).await;
}

/// A2. Throttling that outlasts the retry budget: a reload of a serving CA
/// fails after exactly 3 attempts, naming ThrottlingException, while the
/// last good CA keeps signing; a cold start under it answers 503
/// `ca_unavailable`; when the throttling stops the background refresh loads
/// the CA without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn throttling_beyond_the_retry_budget_keeps_the_last_good_ca_or_answers_503_then_recovers() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let material = local_ca(dir.path(), "ca").await;
    let chain = material.chain_pem.clone().unwrap();
    session_ca::publish_ssm(&moto.client().await, "/storm", &material, None, false)
        .await
        .unwrap();
    let proxy = FaultyProxy::start(&moto.url(), Fault::None).await;
    let via_proxy = moto::settings_for(proxy.port);
    let attempts = MAX_ATTEMPTS as usize;

    // A serving CA: the reload fails, the last good CA signs on.
    let serving = ssm_state(&via_proxy, "/storm", "5m", OnLoadFailure::Fail)
        .await
        .unwrap();
    assert_eq!(proxy.seen().forwarded, 1);
    proxy.set(Fault::Throttle {
        remaining: usize::MAX,
    });
    let err = serving
        .cas
        .refresh("default", &serving.clock)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("ssm:/storm: cannot read: GetParameters failed")
            && err.contains("ThrottlingException")
            && err.contains("Rate exceeded"),
        "{err}"
    );
    assert_eq!(proxy.seen().throttled, attempts, "{:?}", proxy.seen());
    assert_signing_with(&serving, &chain).await;

    // A cold start under the same storm.
    let cold = ssm_state(&via_proxy, "/storm", "1s", OnLoadFailure::ServeUnavailable)
        .await
        .unwrap();
    assert_eq!(proxy.seen().throttled, 2 * attempts, "{:?}", proxy.seen());
    assert_unavailable(&cold).await;

    // The storm passes: the refresh task (every second here) loads the CA.
    let refresh = cold
        .cas
        .spawn_refresh(cold.clock.clone(), session_ca::Metrics::Off);
    proxy.set(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&cold, "/healthz").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "not recovered within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_signing_with(&cold, &chain).await;
    for task in refresh {
        task.abort();
    }
}

/// A3. After a good rotation, Parameter Store is left with a corrupt or
/// unusable CA in several ways. Each time the background refresh logs the
/// failure (naming the parameter and the reason) and the last good CA keeps
/// signing, `/healthz` stays 200 and `/v1/ca` unchanged; the Lambda-mode
/// reload logs it too. A good CA published afterwards is picked up.
#[tokio::test(flavor = "current_thread")]
#[ignore = "needs moto_server; run scripts/test"]
async fn corrupt_parameters_after_a_rotation_are_logged_and_the_last_good_ca_keeps_signing() {
    let (logs, _capture) = Logs::capture();
    let moto = Moto::start();
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    let first = local_ca(dir.path(), "first").await;
    let good = local_ca(dir.path(), "good").await;
    let other = local_ca(dir.path(), "other").await;
    let expired = ca_material(
        &dir.path().join("expired"),
        KeyType::EcdsaP256,
        true,
        ::time::OffsetDateTime::now_utc() - ::time::Duration::days(40),
        30,
    )
    .await;
    session_ca::publish_ssm(&client, "/corrupt", &first, None, false)
        .await
        .unwrap();
    let state = ssm_state(&moto.settings(), "/corrupt", "1s", OnLoadFailure::Fail)
        .await
        .unwrap();
    let refresh = state
        .cas
        .spawn_refresh(state.clock.clone(), session_ca::Metrics::Off);
    assert_signing_with(&state, first.chain_pem.as_ref().unwrap()).await;

    // A good rotation first.
    let mark = logs.events().len();
    session_ca::publish_ssm(&client, "/corrupt", &good, None, true)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs
        .with_message(mark, "CA material loaded; signing with it now")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "rotation not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let good_chain = good.chain_pem.clone().unwrap();
    assert_signing_with(&state, &good_chain).await;
    let good_der = state.cas.get("default").unwrap().cert_der.clone();

    let put = |name: &'static str, value: String, kind: ParameterType| {
        let client = client.clone();
        async move {
            client
                .put_parameter()
                .name(format!("/corrupt/{name}"))
                .value(value)
                .r#type(kind)
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    };
    let good_key = good.key_pem().unwrap().expose().to_owned();
    let garbled = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    // (parameters written, the expected error)
    type Writes = Vec<(&'static str, String, ParameterType)>;
    let cases: Vec<(Writes, &str)> = vec![
        (
            vec![("key", garbled.into(), ParameterType::SecureString)],
            "ssm:/corrupt/key: not a PEM PKCS#8 private key",
        ),
        (
            vec![("key", good_key.clone(), ParameterType::String)],
            "ssm:/corrupt/key: is of type String, expected SecureString",
        ),
        (
            vec![
                ("key", good_key.clone(), ParameterType::SecureString),
                ("cert", other.cert_pem.clone(), ParameterType::String),
            ],
            "ssm:/corrupt/cert: does not match the CA private key",
        ),
        (
            vec![("cert", "garbage".into(), ParameterType::String)],
            "ssm:/corrupt/cert: holds no PEM CERTIFICATE block",
        ),
        // Half a rotation: the new key and certificate, the old chain.
        (
            vec![
                (
                    "key",
                    other.key_pem().unwrap().expose().to_owned(),
                    ParameterType::SecureString,
                ),
                ("cert", other.cert_pem.clone(), ParameterType::String),
            ],
            "ssm:/corrupt/chain: the chain must start with the issuing CA certificate",
        ),
        // A rotation to an expired CA.
        (
            vec![
                (
                    "key",
                    expired.key_pem().unwrap().expose().to_owned(),
                    ParameterType::SecureString,
                ),
                ("cert", expired.cert_pem.clone(), ParameterType::String),
                (
                    "chain",
                    expired.chain_pem.clone().unwrap(),
                    ParameterType::String,
                ),
            ],
            "ssm:/corrupt/cert: the CA certificate expired",
        ),
    ];
    for (writes, expected) in cases {
        let mark = logs.events().len();
        for (name, value, kind) in writes {
            put(name, value, kind).await;
        }
        let event = logs
            .wait_for(
                mark,
                "CA refresh failed; still signing with the last good CA",
                expected,
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(event["level"], "WARN", "{event}");
        assert_eq!(event["ca"], "default", "{event}");
        assert_eq!(event["source"], "ssm:/corrupt", "{event}");
        assert!(
            !event.to_string().contains("PRIVATE KEY"),
            "no key material in the log: {event}"
        );
        assert_signing_with(&state, &good_chain).await;
    }
    // The key parameter deleted.
    let mark = logs.events().len();
    client
        .delete_parameter()
        .name("/corrupt/key")
        .send()
        .await
        .unwrap();
    logs.wait_for(
        mark,
        "CA refresh failed; still signing with the last good CA",
        "ssm:/corrupt/key: cannot read: no such parameter",
        Duration::from_secs(10),
    )
    .await;
    assert_signing_with(&state, &good_chain).await;

    // The Lambda-mode reload (at the start of a request) logs it too.
    let mark = logs.events().len();
    state
        .cas
        .refresh_due(&state.clock, &session_ca::Metrics::Off)
        .await;
    let warned = logs.with_message(mark, "CA reload failed; keeping what is loaded");
    assert_eq!(warned.len(), 1, "{:#?}", logs.events());
    assert_eq!(warned[0]["loaded"], true);
    assert!(warned[0]["error"]
        .as_str()
        .unwrap()
        .contains("ssm:/corrupt/key"));
    assert_eq!(state.cas.get("default").unwrap().cert_der, good_der);
    assert_eq!(
        logs.with_message(mark, "CA material loaded; signing with it now")
            .len(),
        0
    );

    // A good CA again: picked up.
    let mark = logs.events().len();
    let fixed = local_ca(dir.path(), "fixed").await;
    session_ca::publish_ssm(&client, "/corrupt", &fixed, None, true)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while logs
        .with_message(mark, "CA material loaded; signing with it now")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the fixed CA was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_signing_with(&state, fixed.chain_pem.as_ref().unwrap()).await;
    for task in refresh {
        task.abort();
    }
}

/// A4. 2,000 issuances at concurrency 16 (16 HTTP clients over loopback
/// against the router served by axum) while the CA in Parameter Store is
/// replaced by a P-384 CA and the service refreshes (the 1 s background
/// refresh, and an explicit refresh right after the upload): no request
/// fails, every certificate verifies against exactly one of the two CAs,
/// both CAs signed some, the swap happened mid-run, and all serial numbers
/// are distinct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn rotation_under_load_2000_requests_at_concurrency_16_without_a_failure() {
    const REQUESTS: usize = 2_000;
    const CONCURRENCY: usize = 16;
    const ROTATE_AFTER: usize = 300;
    let moto = Moto::start();
    let client = moto.client().await;
    let dir = tempfile::tempdir().unwrap();
    let old = local_ca(dir.path(), "old").await;
    let new = ca_material(
        &dir.path().join("new"),
        KeyType::EcdsaP384,
        true,
        ::time::OffsetDateTime::now_utc(),
        30,
    )
    .await;
    session_ca::publish_ssm(&client, "/busy", &old, None, false)
        .await
        .unwrap();
    let state = ssm_state(&moto.settings(), "/busy", "1s", OnLoadFailure::Fail)
        .await
        .unwrap();
    let refresh = state
        .cas
        .spawn_refresh(state.clock.clone(), session_ca::Metrics::Off);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/certificates", listener.local_addr().unwrap());
    let server = {
        let router = session_ca::app(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await })
    };
    session_ca::crypto::install_rustls_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let request_body = json!({"session_id": SESSION_ID}).to_string();

    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (http, url, body) = (http.clone(), url.clone(), request_body.clone());
            let (next, done) = (next.clone(), done.clone());
            tokio::spawn(async move {
                // (failures, bodies of the 201s)
                let mut mine = (Vec::new(), Vec::new());
                while next.fetch_add(1, Ordering::SeqCst) < REQUESTS {
                    let reply = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    done.fetch_add(1, Ordering::SeqCst);
                    match reply {
                        Ok(reply) if reply.status() == reqwest::StatusCode::CREATED => {
                            mine.1.push(reply.text().await.unwrap())
                        }
                        Ok(reply) => mine.0.push(format!(
                            "{}: {}",
                            reply.status(),
                            reply.text().await.unwrap_or_default()
                        )),
                        Err(e) => mine.0.push(format!("transport: {e}")),
                    }
                }
                mine
            })
        })
        .collect();

    // The rotation, mid-run.
    let rotation = {
        let (state, done, client, new) = (state.clone(), done.clone(), client.clone(), new.clone());
        tokio::spawn(async move {
            while done.load(Ordering::SeqCst) < ROTATE_AFTER {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let uploading_at = done.load(Ordering::SeqCst);
            session_ca::publish_ssm(&client, "/busy", &new, None, true)
                .await
                .unwrap();
            state
                .cas
                .refresh("default", &state.clock)
                .await
                .expect("the explicit refresh loads the new CA");
            (uploading_at, done.load(Ordering::SeqCst))
        })
    };

    let (mut failures, mut bodies) = (Vec::new(), Vec::new());
    for worker in workers {
        let (f, b) = worker.await.unwrap();
        failures.extend(f);
        bodies.extend(b);
    }
    let elapsed = started.elapsed();
    let (uploading_at, swapped_at) = rotation.await.unwrap();
    for task in refresh {
        task.abort();
    }
    server.abort();

    // Every certificate, checked after the run.
    let old_chain = old.chain_pem.clone().unwrap();
    let new_chain = new.chain_pem.clone().unwrap();
    let (mut from_old, mut from_new, mut serials) = (0, 0, Vec::new());
    for text in &bodies {
        let body: serde_json::Value = serde_json::from_str(text).unwrap();
        if verifies(&body, &old_chain) {
            from_old += 1;
        } else if verifies(&body, &new_chain) {
            from_new += 1;
        } else {
            failures.push(format!(
                "serial {} verifies against neither CA",
                body["serial"]
            ));
        }
        serials.push(body["serial"].as_str().unwrap().to_owned());
    }
    eprintln!(
        "{REQUESTS} requests at concurrency {CONCURRENCY} in {elapsed:?}: {from_old} from the old \
         CA, {from_new} from the new; upload began after {uploading_at} responses, the new CA \
         was in service after {swapped_at}"
    );
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(from_old + from_new, REQUESTS);
    assert!(from_old >= ROTATE_AFTER, "{from_old}");
    assert!(
        swapped_at < REQUESTS && from_new > 0,
        "the swap happened during the run ({swapped_at}; {from_new} from the new CA)"
    );
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), REQUESTS, "serial numbers are distinct");
    assert_signing_with(&state, &new_chain).await;
}
