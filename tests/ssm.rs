//! The Parameter Store CA source against a real SSM endpoint emulator
//! (moto_server), through the real aws-sdk-ssm client. Run by scripts/test.

mod common;
#[path = "common/moto.rs"]
mod moto;
#[path = "common/tools.rs"]
mod tools;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;
use axum::http::StatusCode;
use common::*;
use moto::Moto;
use serde_json::json;
use session_ca::ca::ssm::{self, material_from_parameters};
use session_ca::ca::{CaMaterial, OnLoadFailure};
use session_ca::config::{Config, ConfigOrigin};
use session_ca::inspect::verify_client_certificate;
use session_ca::{AppState, CaStore, KeyType, SharedClock, SystemClock};

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
    moto_settings: &session_ca::ca::ssm::SsmSettings,
    prefix: &str,
    refresh: &str,
    on_failure: OnLoadFailure,
) -> Result<AppState, session_ca::ca::CaError> {
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
    let cas = CaStore::load(&config, &clock, moto_settings, on_failure).await?;
    Ok(AppState {
        config: Arc::new(config),
        cas,
        clock,
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

    let written = ssm::publish(&client, "/session-ca/prod", &material, None, false)
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
    let err = ssm::publish(&client, "/session-ca/prod", &other, None, false)
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
            material.key_pem.expose().to_owned(),
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
                material.key_pem.expose().to_owned(),
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
    ssm::publish(&client, "/enc", &material, None, false)
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
    let err = material_from_parameters("/enc", raw.parameters(), raw.invalid_parameters())
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
                other.key_pem.expose().to_owned(),
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
    ssm::publish(&client, "/rotating", &old, None, false)
        .await
        .unwrap();
    let state = ssm_state(&moto.settings(), "/rotating", "1s", OnLoadFailure::Fail)
        .await
        .unwrap();
    let refresh = state.cas.spawn_refresh(state.clock.clone());
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
    ssm::publish(&client, "/rotating", &new, None, true)
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
    ssm::publish(
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
    let reply = issue_json(&cold, json!({})).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.code(), "ca_unavailable");
    assert_eq!(
        get(&cold, "/healthz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let moto = Moto::start_on(Some(port)); // a fresh emulator: publish again
    ssm::publish(
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

/// Lambda freezes the environment between events, so in Lambda mode a due
/// CA is reloaded at the start of a request, not by a background timer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn lambda_requests_reload_a_due_ca_and_recover_from_a_failed_cold_start() {
    use tower::ServiceExt as _;
    let dir = tempfile::tempdir().unwrap();
    let port = tools::free_port();
    let text = "[server]\nauth = \"iam\"\n[cas.default]\nsource = \"ssm:/lazy\"\nrefresh = \"1s\"\n\
                [profiles.default]\nallowed_callers = [\"*\"]\n\
                [profiles.default.claims]\nagent = { oid = \"1.3.6.1.4.1.32473.1.100\", type = \"string\", max_len = 64 }\n";
    let config = Config::from_toml(
        ConfigOrigin::File("lazy.toml".into()),
        text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    // Cold start while Parameter Store is unreachable: the function still starts.
    let cas = CaStore::load(
        &config,
        &clock,
        &moto::settings_for(port),
        OnLoadFailure::ServeUnavailable,
    )
    .await
    .unwrap();
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock,
    };
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lambda/function_url_iam.json"
    ))
    .unwrap();
    let call = |state: AppState| {
        let request = lambda_http::request::from_str(&fixture).unwrap();
        async move {
            let response = session_ca::http::lambda::lambda_app(state)
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
    };
    let (status, body) = call(state.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "ca_unavailable");

    let moto = Moto::start_on(Some(port));
    let client = moto.client().await;
    let old = local_ca(dir.path(), "old").await;
    ssm::publish(&client, "/lazy", &old, None, false)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5_100)).await; // the retry interval of an unloaded CA
    let (status, body) = call(state.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(verifies(&body, old.chain_pem.as_ref().unwrap()));

    // Rotation: the first request after the refresh interval signs with the new CA.
    let new = local_ca(dir.path(), "new").await;
    ssm::publish(&client, "/lazy", &new, None, true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = call(state.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        verifies(&body, new.chain_pem.as_ref().unwrap()),
        "issued by the rotated CA"
    );
}
