//! The real Lambda runtime loop: the binary polling the runtime API emulator
//! of `cargo lambda watch --only-lambda-apis`, with its CA in moto_server,
//! invoked with `cargo lambda invoke --data-file` on the event fixtures.
//! Run by scripts/test.
//! (`tools::start_lambda_emulator` says why without its function supervisor.)

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

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn invoke(port: u16, fixture: &str) -> Value {
    tools::lambda_invoke(
        port,
        &Path::new(MANIFEST_DIR)
            .join("tests/fixtures/lambda")
            .join(fixture),
    )
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
    let (_emulator, port) = tools::start_lambda_emulator();
    let function = tools::lambda_function(Path::new(env!("CARGO_BIN_EXE_session-ca")), port)
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
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut function = tools::Guard(function);
    // The function's stdout is its EMF metrics: read it as it comes.
    let stdout = function.0.stdout.take().unwrap();
    let emf_lines = std::thread::spawn(move || {
        use std::io::BufRead as _;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });

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

    // A SigV4-signed request through the emulator's Function URL front
    // door. The emulator neither checks the signature nor fills in the IAM
    // authorizer context that AWS adds once it has: the signer takes the
    // caller only from that context, never from the Authorization header,
    // so the signed issuance is refused as unauthenticated, while the
    // signed GET /v1/ca (public) goes through.
    let sigv4 = session_ca_client::sigv4::AwsSigV4::new(
        session_ca_client::sigv4::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"),
        "eu-west-1",
        session_ca_client::sigv4::AwsService::Lambda,
    );
    let signer = session_ca_client::SignerClient::new(
        &format!("http://127.0.0.1:{port}/lambda-url/_"),
        None,
    )
    .unwrap()
    .with_aws_sigv4(sigv4);
    let chain_through_front_door = signer.ca_chain(None).await.unwrap();
    assert_eq!(chain_through_front_door, rotated.chain_pem.clone().unwrap());
    match signer
        .issue(&session_ca_client::CertificateRequest::default())
        .await
    {
        Err(session_ca_client::ClientError::Rejected { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (401, "unauthenticated"))
        }
        other => panic!("a signature without AWS's IAM context: {other:?}"),
    }

    // Every line the function wrote on stdout is an EMF document valid
    // against AWS's published schema, and the metrics match what was done:
    // three certificates, one 403 and two 401s.
    drop(function);
    let emf_lines = emf_lines.join().unwrap();
    check_emf(&emf_lines);
    let sum = |metric: &str, filter: &dyn Fn(&Value) -> bool| -> u64 {
        emf_lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| filter(l))
            .filter_map(|l| l[metric].as_u64())
            .sum()
    };
    assert_eq!(sum("CertificatesIssued", &|_| true), 3, "{emf_lines:#?}");
    assert_eq!(
        sum("Refusals", &|l| l["ErrorCode"] == "caller_not_allowed"),
        1
    );
    assert_eq!(sum("Refusals", &|l| l["ErrorCode"] == "unauthenticated"), 2);
    assert_eq!(sum("Refusals", &|_| true), 3);
    assert!(
        sum("CaReloads", &|_| true) >= 1,
        "the rotation reload is counted"
    );
    for line in &emf_lines {
        assert!(
            !line.contains("92fea10a") && !line.contains("PRIVATE"),
            "no session id or key in a metric: {line}"
        );
    }
}

/// Validates EMF lines with Python's jsonschema against
/// tests/fixtures/emf/schema.json (AWS's published schema), then the rules
/// of the specification the schema cannot express.
fn check_emf(lines: &[String]) {
    assert!(!lines.is_empty(), "the function wrote no EMF line");
    let schema = Path::new(MANIFEST_DIR).join("tests/fixtures/emf/schema.json");
    let mut python = Command::new("python3")
        .arg("-c")
        .arg(
            // AWS's schema is draft-07 (its `$id`s are fragments, which
            // later drafts forbid).
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft7Validator.check_schema(schema)\n\
             validator = jsonschema.Draft7Validator(schema)\n\
             for n, line in enumerate(sys.stdin, 1):\n\
             \x20   validator.validate(json.loads(line))\n\
             print('valid', n)",
        )
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with jsonschema (scripts/test installs it in .venv/)");
    {
        use std::io::Write as _;
        let mut stdin = python.stdin.take().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "an EMF line does not match the schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("valid {}", lines.len())
    );
    for line in lines {
        let line: Value = serde_json::from_str(line).unwrap();
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], "SessionCA");
            for set in directive["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(line[key.as_str().unwrap()].is_string(), "{key}: {line}");
                }
            }
            let metrics = directive["Metrics"].as_array().unwrap();
            assert!(metrics.len() <= 100);
            for metric in metrics {
                let name = metric["Name"].as_str().unwrap();
                // A number, or an array of 1 to 100 numbers (the
                // latencies of the store's or KMS's calls).
                let values = line[name].as_array().filter(|values| {
                    (1..=100).contains(&values.len()) && values.iter().all(Value::is_number)
                });
                assert!(line[name].is_number() || values.is_some(), "{name}: {line}");
            }
        }
    }
}
