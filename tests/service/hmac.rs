//! `auth = "hmac"`: signed requests through the router with a fixed clock,
//! the configuration of keys, and `session-ca request` signing against a
//! real `serve`.

use crate::common;
use crate::common::tools;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use session_ca::AppState;
use session_ca::{Config, ConfigOrigin};
use session_ca_client::hmac::{authorization_with_nonce, Secret};

const SECRET: &str = "0123456789abcdef0123456789abcdef-payments";
const OTHER_SECRET: &str = "fedcba9876543210fedcba9876543210-ledger";

fn hmac_config(ca_dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
auth = "hmac"
[hmac_keys.payments-fn]
secret_env = "TEST_PAYMENTS_SECRET"
[hmac_keys.ledger-fn]
secret_env = "TEST_LEDGER_SECRET"
[cas.default]
source = "file:{}"
[profiles.default]
[profiles.payments]
allowed_callers = ["payments-*"]
"#,
        ca_dir.display()
    )
}

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("TEST_PAYMENTS_SECRET".to_owned(), SECRET.to_owned()),
        ("TEST_LEDGER_SECRET".to_owned(), OTHER_SECRET.to_owned()),
    ])
}

async fn hmac_state(service: &TestService) -> AppState {
    let config = Config::from_toml(
        ConfigOrigin::Embedded,
        &hmac_config(&service.ca_dir()),
        &env(),
        &[],
    )
    .unwrap();
    let mut state = service.at(t0(), t0()).await;
    state.config = std::sync::Arc::new(config);
    state
}

fn signed(body: &str, key_id: &str, secret: &str, timestamp: i64) -> Request<Body> {
    let secret = Secret::new(secret.as_bytes()).unwrap();
    Request::post("/v1/certificates")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            authorization_with_nonce(
                key_id,
                &secret,
                "POST",
                "/v1/certificates",
                timestamp,
                "fixed-nonce-0123456789",
                body.as_bytes(),
            ),
        )
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn signed_requests_are_issued_to_their_key_id_once() {
    let service = TestService::new().await;
    let state = hmac_state(&service).await;
    let now = t0().unix_timestamp();

    let body = r#"{"profile": "payments", "transaction_id": "tx-1"}"#;
    let reply = send(&state, signed(body, "payments-fn", SECRET, now - 20)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
    // The key id is the requester claim.
    let cert = reply.json()["certificate"].as_str().unwrap().to_owned();
    let der = session_ca::read_certificate(cert.as_bytes()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    let requester = parsed
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.32473.1.3")
        .expect("requester claim");
    assert_eq!(
        session_ca_verify::decode_claim_value(requester.value).unwrap(),
        "payments-fn"
    );

    // The same signed request again is a replay.
    let reply = send(&state, signed(body, "payments-fn", SECRET, now - 20)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.message().contains("already used"), "{}", reply.json());

    // allowed_callers match key ids.
    let reply = send(&state, signed(body, "ledger-fn", OTHER_SECRET, now)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.json());
    assert_eq!(reply.code(), "caller_not_allowed");
    let reply = send(&state, signed("{}", "ledger-fn", OTHER_SECRET, now)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json());
}

#[tokio::test]
async fn unsigned_and_badly_signed_requests_get_401_saying_why() {
    let service = TestService::new().await;
    let state = hmac_state(&service).await;
    let now = t0().unix_timestamp();
    let body = "{}";

    let mut tampered = signed(body, "payments-fn", SECRET, now);
    *tampered.body_mut() = Body::from(r#"{"ttl_seconds": 60}"#);
    let unsigned = Request::post("/v1/certificates")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap();
    let bearer = Request::post("/v1/certificates")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer abc")
        .body(Body::from(body))
        .unwrap();
    for (case, request, needle) in [
        ("unsigned", unsigned, "no Authorization header"),
        (
            "another scheme",
            bearer,
            "scheme must be SESSION-CA-HMAC-SHA256",
        ),
        (
            "unknown key",
            signed(body, "nobody", SECRET, now),
            "unknown HMAC key id \"nobody\"",
        ),
        (
            "wrong secret",
            signed(body, "payments-fn", OTHER_SECRET, now),
            "does not match",
        ),
        ("body changed after signing", tampered, "does not match"),
        (
            "too old",
            signed(body, "payments-fn", SECRET, now - 301),
            "more than 300 s from the signer's clock",
        ),
        (
            "from the future",
            signed(body, "payments-fn", SECRET, now + 301),
            "more than 300 s",
        ),
    ] {
        let reply = send(&state, request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}");
        assert_eq!(reply.code(), "unauthenticated", "{case}");
        assert!(reply.message().contains(needle), "{case}: {}", reply.json());
        assert_eq!(
            reply.headers[header::WWW_AUTHENTICATE],
            "SESSION-CA-HMAC-SHA256",
            "{case}"
        );
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(!text.contains(SECRET) && !text.contains(OTHER_SECRET));
    }
    // GET routes stay public.
    assert_eq!(get(&state, "/v1/ca").await.status, StatusCode::OK);
}

#[test]
fn key_configuration_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let base = "[cas.default]\nsource = \"file:x\"\n[profiles.default]\n";
    let ok = format!(
        "[server]\nauth = \"hmac\"\n[hmac_keys.a]\nsecret_file = \"{}\"\n{base}",
        secret_file.display()
    );
    let config = Config::from_toml(ConfigOrigin::Embedded, &ok, &env(), &[]).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains(SECRET), "Debug shows no secret");
    assert!(shown.contains("key_ids: [\"a\"]"), "{shown}");

    for (text, needle) in [
        (
            format!("[server]\nauth = \"hmac\"\n{base}"),
            "hmac_keys: auth \"hmac\" needs at least one",
        ),
        (
            format!("[hmac_keys.a]\nsecret_env = \"TEST_PAYMENTS_SECRET\"\n{base}"),
            "server.auth is \"none\"",
        ),
        (
            format!("[server]\nauth = \"hmac\"\n[hmac_keys.a]\nsecret_env = \"UNSET_VAR\"\n{base}"),
            "hmac_keys.a.secret_env: the environment variable UNSET_VAR is not set",
        ),
        (
            format!("[server]\nauth = \"hmac\"\n[hmac_keys.a]\nsecret_env = \"SHORT\"\n{base}"),
            "at least 32 bytes, got 5",
        ),
        (
            format!("[server]\nauth = \"hmac\"\n[hmac_keys.a]\n{base}"),
            "exactly one of secret_env and secret_file",
        ),
        (
            format!(
                "[server]\nauth = \"hmac\"\n[hmac_keys.a]\nsecret_file = \"/no/such/file\"\n{base}"
            ),
            "cannot read /no/such/file",
        ),
        (
            format!(
                "[server]\nauth = \"hmac\"\nhmac_max_skew = \"2h\"\n[hmac_keys.a]\nsecret_env = \"TEST_PAYMENTS_SECRET\"\n{base}"
            ),
            "between 1s and 1h",
        ),
        (
            format!("[server]\nauth = \"hmac\"\n[hmac_keys.a]\nsecret = \"inline\"\n{base}"),
            "unknown field `secret`",
        ),
    ] {
        let mut vars = env();
        vars.insert("SHORT".into(), "short".into());
        let err = Config::from_toml(ConfigOrigin::Embedded, &text, &vars, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text}\n→ {err}");
        assert!(!err.contains(SECRET));
    }
}

#[test]
fn the_request_client_signs_for_a_real_serve() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_session-ca");
    let out = tools::session_ca_in(bin, dir.path(), &["init", "--dir", "ca"]);
    assert!(out.status.success(), "{}", tools::output_text(&out));
    std::fs::write(
        dir.path().join("session-ca.toml"),
        hmac_config(std::path::Path::new("ca")),
    )
    .unwrap();
    let port = tools::free_port();
    let mut server = tools::Guard(
        std::process::Command::new(bin)
            .args([
                "serve",
                "--config",
                "session-ca.toml",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .envs(env())
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    tools::wait_for_port(port, &mut server.0);
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();

    let request = |extra: &[&str], secret_env: Option<&str>| {
        let mut command = std::process::Command::new(bin);
        command
            .args([
                "request",
                "--url",
                &url,
                "--profile",
                "payments",
                "--out",
                "creds",
            ])
            .args(extra)
            .current_dir(dir.path())
            .env_remove("SESSION_CA_HMAC_SECRET")
            .env_remove("SESSION_CA_HMAC_KEY_ID");
        if let Some(secret) = secret_env {
            command.env("SESSION_CA_HMAC_SECRET", secret);
        }
        command.output().unwrap()
    };
    let out = request(&[], None);
    assert!(!out.status.success());
    assert!(
        tools::output_text(&out).contains("HTTP 401 unauthenticated: no Authorization header"),
        "{}",
        tools::output_text(&out)
    );
    let out = request(&["--hmac-key-id", "payments-fn"], Some(SECRET));
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let out = request(
        &[
            "--hmac-key-id",
            "payments-fn",
            "--hmac-secret-file",
            "secret",
        ],
        None,
    );
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let out = request(&["--hmac-key-id", "payments-fn"], Some(OTHER_SECRET));
    assert!(tools::output_text(&out).contains("does not match"));
    let out = request(&["--hmac-key-id", "payments-fn"], None);
    assert!(tools::output_text(&out).contains("set SESSION_CA_HMAC_SECRET"));
}

/// `GET /v1/certificates` signed with HMAC (method, path and query signed,
/// empty body): an HMAC key named in `admin.callers` reads the ledger,
/// another key is refused, and an unsigned query is unauthenticated.
#[tokio::test]
async fn hmac_signed_ledger_queries_need_an_administrator_key() {
    let service = TestService::new().await;
    let mut state = hmac_state(&service).await;
    let mut config = (*state.config).clone();
    config.admin_callers = vec![session_ca::CallerPattern::new("ledger-*")];
    state.config = std::sync::Arc::new(config);
    let store = session_ca::SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(store));
    let issued = send(
        &state,
        signed(
            r#"{"transaction_id":"tx-h"}"#,
            "payments-fn",
            SECRET,
            t0().unix_timestamp(),
        ),
    )
    .await;
    assert_eq!(issued.status, StatusCode::CREATED);

    let path = "/v1/certificates?transaction_id=tx-h";
    let get = |key_id: &str, secret: &str, nonce: &str| {
        let secret = Secret::new(secret.as_bytes()).unwrap();
        Request::get(path)
            .header(
                header::AUTHORIZATION,
                authorization_with_nonce(
                    key_id,
                    &secret,
                    "GET",
                    path,
                    t0().unix_timestamp(),
                    nonce,
                    b"",
                ),
            )
            .body(Body::empty())
            .unwrap()
    };
    let reply = send(
        &state,
        get("ledger-fn", OTHER_SECRET, "ledger-nonce-000001"),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let page = reply.json();
    assert_eq!(page["certificates"][0]["requester"], "payments-fn");
    let reply = send(&state, get("payments-fn", SECRET, "ledger-nonce-000002")).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::FORBIDDEN, "caller_not_allowed")
    );
    let reply = send(&state, Request::get(path).body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Revocation too is for administrators; a revoked caller gets nothing more.
    let revoke = |key_id: &str, secret: &str, nonce: &str| {
        let secret = Secret::new(secret.as_bytes()).unwrap();
        let body = r#"{"requester":"payments-fn","reason":"privilegeWithdrawn"}"#;
        Request::post("/v1/revocations")
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::AUTHORIZATION,
                authorization_with_nonce(
                    key_id,
                    &secret,
                    "POST",
                    "/v1/revocations",
                    t0().unix_timestamp(),
                    nonce,
                    body.as_bytes(),
                ),
            )
            .body(Body::from(body))
            .unwrap()
    };
    let reply = send(&state, revoke("payments-fn", SECRET, "revoke-nonce-000001")).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::FORBIDDEN, "caller_not_allowed")
    );
    let reply = send(
        &state,
        revoke("ledger-fn", OTHER_SECRET, "revoke-nonce-000002"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["revocation"]["revoked_by"], "ledger-fn");
    assert_eq!(reply.json()["matched"], 1);
    let refused = send(
        &state,
        signed(
            r#"{"transaction_id":"tx-after"}"#,
            "payments-fn",
            SECRET,
            t0().unix_timestamp(),
        ),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::FORBIDDEN, "revoked")
    );
    assert!(
        refused.message().contains("requester"),
        "{}",
        refused.message()
    );
}
