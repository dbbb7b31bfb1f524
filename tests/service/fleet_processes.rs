//! The fleet features across real processes: two `serve` instances sharing
//! one DynamoDB table (moto), and one `serve` on its embedded SQLite
//! ledger. A per-caller limit holds across instances under concurrency 32,
//! 100 concurrent identical idempotent requests give one certificate, an
//! HMAC-signed request accepted by one instance is refused by the other,
//! and `session-ca request` with a fixed key gets the same certificate
//! twice.

use crate::common::moto::Moto;
use crate::common::tools;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");
const SESSION: &str = "5b0f1a8e-4c52-4d7e-9a3b-0d6a4f1e2c77";

/// The environment of an instance on moto's table `table`, plus `extra`.
fn dynamodb_env(moto: &Moto, table: &str, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
        ("SESSION_CA_STORE__URL", format!("dynamodb:{table}")),
    ];
    for (k, v) in extra {
        env.push((leak(k), (*v).to_owned()));
    }
    env
}

/// A plain-HTTP client (reqwest needs the process's rustls provider).
fn http_client() -> reqwest::Client {
    session_ca::crypto::install_rustls_provider();
    reqwest::Client::new()
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

/// POSTs `body` to `/v1/certificates` of the instance on `port`, with an
/// `Idempotency-Key` when given; answers (status, replayed, body).
async fn post(
    http: &reqwest::Client,
    port: u16,
    body: &str,
    key: Option<&str>,
) -> (u16, bool, Value) {
    let mut request = http
        .post(format!("http://127.0.0.1:{port}/v1/certificates"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("the signer answers");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, replayed, body)
}

/// The ledger's records of `session`, through the administrator query of
/// the instance on `port` (auth "none" on loopback: the local user).
async fn ledger_serials(http: &reqwest::Client, port: u16, session: &str) -> BTreeSet<String> {
    let bytes = http
        .get(format!(
            "http://127.0.0.1:{port}/v1/certificates?session_id={session}"
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    page["certificates"]
        .as_array()
        .unwrap_or_else(|| panic!("no certificates in {page}"))
        .iter()
        .map(|r| r["serial"].as_str().unwrap().to_owned())
        .collect()
}

/// Checks both features against instances `ports` (round robin): a
/// per-caller limit of 10 an hour (the profile `limited`) under concurrency
/// 32, and 100 concurrent identical idempotent requests. Returns the
/// private key of the idempotent certificate (to look for in the store).
async fn check_fleet(ports: &[u16], session: &str) -> String {
    let http = http_client();
    let hour = |t: time::OffsetDateTime| t.unix_timestamp() / 3600;
    let before = time::OffsetDateTime::now_utc();
    let limited = json!({"profile": "limited"}).to_string();
    let replies = futures_util::future::join_all(
        (0..32).map(|i| post(&http, ports[i % ports.len()], &limited, None)),
    )
    .await;
    let crossed_an_hour = hour(before) != hour(time::OffsetDateTime::now_utc());
    let created = replies.iter().filter(|r| r.0 == 201).count();
    let limited_count = replies.iter().filter(|r| r.0 == 429).count();
    assert_eq!(created + limited_count, 32, "{replies:?}");
    // Fixed windows: exactly the limit, or twice it across a window's edge.
    let allowed = if crossed_an_hour { 20 } else { 10 };
    assert!(
        (10..=allowed).contains(&created),
        "{created} issued under a limit of 10/h (crossed an hour: {crossed_an_hour})"
    );
    let refused = replies.iter().find(|r| r.0 == 429).unwrap();
    assert_eq!(refused.2["error"]["code"], "rate_limited", "{refused:?}");

    let body = json!({"session_id": session, "transaction_id": "tx-fleet"}).to_string();
    let key = "fleet-key-0123456789abcdefghij";
    let replies = futures_util::future::join_all(
        (0..100).map(|i| post(&http, ports[i % ports.len()], &body, Some(key))),
    )
    .await;
    let serials: BTreeSet<String> = replies
        .iter()
        .filter(|r| r.0 == 201)
        .map(|r| r.2["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serials.len(), 1, "one certificate: {serials:?}");
    for (status, _, body) in &replies {
        assert!(
            *status == 201
                || (*status == 409 && body["error"]["code"] == "idempotency_in_progress"),
            "{status}: {body}"
        );
    }
    assert!(
        replies.iter().filter(|r| r.0 == 201 && r.1).count() >= 1,
        "replays are marked"
    );
    // A retry after the dust settles is a replay of the same certificate.
    let (status, replayed, again) = post(&http, ports[ports.len() - 1], &body, Some(key)).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert!(serials.contains(again["serial"].as_str().unwrap()));
    assert_eq!(
        ledger_serials(&http, ports[0], session).await,
        serials,
        "one record"
    );
    again["private_key"].as_str().unwrap().to_owned()
}

/// Asserts that `haystack` holds `private_key` (PEM) in no encoding: not
/// its PEM, its base64 body or a long part of it, nor its DER.
fn assert_no_key(haystack: &[u8], private_key: &str, place: &str) {
    use base64::Engine as _;
    let body: String = private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap();
    let text = String::from_utf8_lossy(haystack);
    assert!(!text.contains("PRIVATE KEY"), "a PEM key in {place}");
    for part in [
        &body[..32],
        &body[body.len() / 2..body.len() / 2 + 32],
        &body[body.len() - 32..],
    ] {
        assert!(!text.contains(part), "base64 of the key in {place}");
    }
    assert!(
        !haystack.windows(der.len()).any(|w| w == der.as_slice()),
        "the key's DER in {place}"
    );
}

/// The `limited` profile, by environment.
const LIMITED: [(&str, &str); 2] = [
    (
        "SESSION_CA_PROFILES__LIMITED__RATE_LIMIT__PER_CALLER",
        "10/h",
    ),
    ("SESSION_CA_PROFILES__LIMITED__SUBJECT", "O=Fleet Bank"),
];

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_dynamodb_table_share_limits_and_idempotency() {
    let moto = Moto::start();
    session_ca::create_dynamodb_table(&moto.dynamodb_client().await, "fleet")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = dynamodb_env(&moto, "fleet", &LIMITED);
    let (_a, a, _) = tools::start_serve_logged_env(BIN, dir.path(), &[], &env);
    let (_b, b, _) = tools::start_serve_logged_env(BIN, dir.path(), &[], &env);
    let private_key = check_fleet(&[a, b], SESSION).await;
    // The sealed response is in the table, and the key in no encoding.
    let items = moto
        .dynamodb_client()
        .await
        .scan()
        .table_name("fleet")
        .send()
        .await
        .unwrap()
        .items()
        .to_vec();
    let sealed = items
        .iter()
        .filter(|item| item.contains_key("sealed"))
        .count();
    assert_eq!(sealed, 1, "one sealed response");
    let mut bytes = format!("{items:?}").into_bytes();
    for item in &items {
        for value in item.values() {
            if let aws_sdk_dynamodb::types::AttributeValue::B(blob) = value {
                bytes.extend_from_slice(blob.as_ref());
            }
        }
    }
    assert_no_key(&bytes, &private_key, "the DynamoDB table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_its_embedded_sqlite_ledger_limits_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, String)> = LIMITED.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    let (a_server, a, _) = tools::start_serve_logged_env(BIN, dir.path(), &[], &env);
    let private_key = check_fleet(&[a], SESSION).await;
    drop(a_server);
    let mut bytes = std::fs::read(dir.path().join("signer-key/ledger.sqlite3")).unwrap();
    bytes.extend(
        std::fs::read(dir.path().join("signer-key/ledger.sqlite3-wal")).unwrap_or_default(),
    );
    assert_no_key(&bytes, &private_key, "the SQLite ledger");
}

const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-replays";

fn hmac_config(dir: &Path) {
    std::fs::write(
        dir.join("session-ca.toml"),
        "[server]\nauth = \"hmac\"\n[hmac_keys.payments-fn]\nsecret_env = \"TEST_REPLAY_SECRET\"\n\
         [cas.default]\nsource = \"file:signer-key\"\n[profiles.default]\nsubject = \"O=Fleet Bank\"\n",
    )
    .unwrap();
}

#[ignore = "needs moto_server; run scripts/test"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_replayed_to_another_instance_is_refused() {
    let moto = Moto::start();
    session_ca::create_dynamodb_table(&moto.dynamodb_client().await, "replays")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = tools::session_ca_in(BIN, dir.path(), &["init", "--dir", "signer-key"]);
    assert!(out.status.success(), "{}", tools::output_text(&out));
    hmac_config(dir.path());
    let env = dynamodb_env(&moto, "replays", &[("TEST_REPLAY_SECRET", HMAC_SECRET)]);
    let args = ["--config", "session-ca.toml"];
    let (_a, a, _) = tools::start_serve_logged_env(BIN, dir.path(), &args, &env);
    let (_b, b, _) = tools::start_serve_logged_env(BIN, dir.path(), &args, &env);

    let body = r#"{"transaction_id":"tx-replay"}"#;
    let secret = session_ca_client::hmac::Secret::new(HMAC_SECRET.as_bytes()).unwrap();
    let authorization = session_ca_client::hmac::authorization(
        "payments-fn",
        &secret,
        "POST",
        "/v1/certificates",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        body.as_bytes(),
    )
    .unwrap();
    let http = http_client();
    let send = |port: u16| {
        http.post(format!("http://127.0.0.1:{port}/v1/certificates"))
            .header("content-type", "application/json")
            .header("authorization", &authorization)
            .body(body)
            .send()
    };
    let first = send(a).await.unwrap();
    assert_eq!(first.status(), 201, "{}", first.text().await.unwrap());
    let replayed = send(b).await.unwrap();
    assert_eq!(replayed.status(), 401);
    let text = replayed.text().await.unwrap();
    assert!(text.contains("already used"), "{text}");
}

#[test]
fn the_request_command_reuses_its_key_and_gets_the_same_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port, _) = tools::start_serve_logged(BIN, dir.path(), &[]);
    let url = format!("http://127.0.0.1:{port}");
    let request = |out: &str| {
        tools::session_ca_in(
            BIN,
            dir.path(),
            &[
                "request",
                "--url",
                &url,
                "--session-id",
                SESSION,
                "--idempotency-key",
                "cli-key-0123456789abcdef",
                "--out",
                out,
            ],
        )
    };
    let first = request("first");
    assert!(first.status.success(), "{}", tools::output_text(&first));
    let second = request("second");
    let text = tools::output_text(&second);
    assert!(second.status.success(), "{text}");
    assert!(text.contains("replayed"), "{text}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("first/cert.pem"), read("second/cert.pem"));
    assert_eq!(read("first/key.pem"), read("second/key.pem"));
}
