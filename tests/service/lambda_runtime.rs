//! The real Lambda runtime loop: the binary polling the runtime API emulator
//! of `cargo lambda watch --only-lambda-apis`, with its CA in moto_server,
//! invoked with `cargo lambda invoke --data-file` on the event fixtures.
//! Run by scripts/test.
//!
//! The emulator is started without its function supervisor: when that
//! supervisor (watchexec) is signalled it takes down unrelated processes of
//! the session, and the test would rebuild the crate with other features.

use crate::common;
use crate::common::moto;
use crate::common::tools;

use std::path::Path;
use std::process::{Command, Stdio};

use common::ca_material;
use moto::Moto;
use serde_json::Value;
use session_ca::verify_client_certificate;
use session_ca::KeyType;
use tools::{free_port, wait_for_port};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn invoke(port: u16, fixture: &str) -> Value {
    let out = Command::new("cargo-lambda")
        .args([
            "lambda",
            "invoke",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .arg("--data-file")
        .arg(
            Path::new(MANIFEST_DIR)
                .join("tests/fixtures/lambda")
                .join(fixture),
        )
        .current_dir(MANIFEST_DIR)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run cargo-lambda ({e}); scripts/test installs it into .venv/")
        });
    assert!(
        out.status.success(),
        "invoke {fixture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "invoke {fixture} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs cargo-lambda and moto_server; run scripts/test"]
async fn the_function_runs_under_the_lambda_runtime_emulator() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let material = ca_material(
        &dir.path().join("ca"),
        KeyType::EcdsaP256,
        true,
        ::time::OffsetDateTime::now_utc(),
        30,
    )
    .await;
    session_ca::publish_ssm(
        &moto.client().await,
        "/lambda-test/ca",
        &material,
        None,
        false,
    )
    .await
    .unwrap();

    // The runtime API emulator of `cargo lambda watch`; the function is the
    // binary this test run built, started as Lambda starts it (no arguments,
    // AWS_LAMBDA_RUNTIME_API set), so its runtime loop is the real one.
    let port = free_port();
    let emulator = Command::new("cargo-lambda")
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .current_dir(MANIFEST_DIR)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run cargo-lambda ({e}); scripts/test installs it into .venv/")
        });
    let mut emulator = tools::Guard(emulator);
    wait_for_port(port, &mut emulator.0);
    let function = Command::new(env!("CARGO_BIN_EXE_session-ca"))
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt"),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ENDPOINT_URL_SSM", moto.url())
        .env("SESSION_CA_CAS__DEFAULT__SOURCE", "ssm:/lambda-test/ca")
        .env("SESSION_CA_CAS__DEFAULT__REFRESH", "1s")
        .env(
            "SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS",
            r#"["arn:aws:sts::123456789012:assumed-role/payments-*/*"]"#,
        )
        .env(
            "SESSION_CA_PROFILES__DEFAULT__SUBJECT",
            "O=Example Bank,OU=Payments,C=NL",
        )
        .env_remove("SESSION_CA_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _function = tools::Guard(function);

    let response = invoke(port, "function_url_iam.json");
    assert_eq!(response["statusCode"], 201, "{response}");
    assert_eq!(response["headers"]["cache-control"], "no-store");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let pem = body["certificate"].as_str().unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let chain = material.chain_pem.clone().unwrap();
    verify_client_certificate(
        &pem.contents.clone().into(),
        chain.as_bytes(),
        ::time::OffsetDateTime::now_utc(),
    )
    .expect("the certificate verifies against the CA stored in SSM");
    let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
    let requester = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.32473.1.3")
        .map(|e| session_ca_verify::decode_claim_value(e.value).unwrap());
    assert_eq!(
        requester.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/payments-api/session-3")
    );
    // The operator's subject, in subject order, then the session id.
    assert_eq!(
        cert.subject().to_string(),
        "C=NL, O=Example Bank, OU=Payments, CN=92fea10a-0905-40cc-aca1-54ee52e89c71"
    );
    // The runtime's request id, not the Function URL's, is the correlation id.
    assert_ne!(body["request_id"], "f4bd1a2c-5b9e-4a0f-9a3f-0d4c2b1e8f77");
    assert_eq!(
        uuid::Uuid::parse_str(body["request_id"].as_str().unwrap()).map(|_| ()),
        Ok(())
    );

    let response = invoke(port, "http_v2_other_principal.json");
    assert_eq!(response["statusCode"], 403, "{response}");
    let response = invoke(port, "rest_v1_no_identity.json");
    assert_eq!(response["statusCode"], 401, "{response}");
    let response = invoke(port, "rest_v1_get_ca.json");
    assert_eq!(response["statusCode"], 200, "{response}");
    // PEM is text: sent as it is, so a REST API without binary media types
    // hands clients PEM, not base64.
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    assert_eq!(response["body"].as_str().unwrap(), chain);
    // A REST API stage named like a route: `path` is /v1/certificates and
    // `requestContext.path` /v1/v1/certificates.
    let response = invoke(port, "rest_v1_stage_v1.json");
    assert_eq!(response["statusCode"], 201, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["session_id"], "92fea10a-0905-40cc-aca1-54ee52e89c71");

    // Rotate the CA in Parameter Store: after the refresh interval the next
    // event is signed by the new CA (the environment reloads it on request).
    let rotated = ca_material(
        &dir.path().join("ca2"),
        KeyType::Ed25519,
        false,
        ::time::OffsetDateTime::now_utc(),
        30,
    )
    .await;
    session_ca::publish_ssm(
        &moto.client().await,
        "/lambda-test/ca",
        &rotated,
        None,
        true,
    )
    .await
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let response = invoke(port, "function_url_iam.json");
    assert_eq!(response["statusCode"], 201, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(body["certificate"].as_str().unwrap().as_bytes()).unwrap();
    verify_client_certificate(
        &pem.contents.into(),
        rotated.chain_pem.as_ref().unwrap().as_bytes(),
        ::time::OffsetDateTime::now_utc(),
    )
    .expect("signed by the rotated CA");
}
