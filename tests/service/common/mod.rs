//! Shared helpers for the integration tests: CAs in temporary directories,
//! app state with a chosen clock, and requests through the router.

pub mod examples;
pub mod faulty_proxy;
pub mod moto;
pub mod tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use session_ca::{app, AppState, CaStore, FixedClock, KeyType, SharedClock};
use session_ca::{create_ca, InitOptions};
use session_ca::{Config, ConfigOrigin};
use time::OffsetDateTime;
use tower::ServiceExt;

/// A session id that is a UUID, as the default profile's urn:uuid SAN needs.
pub const SESSION_ID: &str = "92fea10a-0905-40cc-aca1-54ee52e89c71";

/// 2026-01-01T00:00:00Z: the fixed "now" of most tests.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// Creates a CA in `dir` valid from `now` for `days`.
pub fn make_ca(dir: &Path, key_type: KeyType, intermediate: bool, now: OffsetDateTime, days: u32) {
    create_ca(
        &InitOptions {
            dir: dir.to_path_buf(),
            key_type,
            subject: "CN=Test Issuing CA,O=session-ca tests,C=NL".into(),
            validity_days: days,
            intermediate,
            path_len: 0,
            force: true,
        },
        now,
    )
    .expect("create CA");
}

/// A profile configuration like the embedded default, with the CA in `ca_dir`.
pub fn config_text(ca_dir: &Path, extra: &str) -> String {
    format!(
        r#"
[claims]
oid_arc = "1.3.6.1.4.1.32473.1"
max_json_depth = 4

[cas.default]
source = "file:{dir}"

[profiles.default]
ca = "default"
default_ttl = "5m"
max_ttl = "15m"
backdate = "30s"
subject = {{ C = "NL", ST = "ZH", L = "Rotterdam", O = "Your Bank" }}
uri_san = "urn:uuid:{{session_id}}"

[profiles.default.claims]
agent = {{ oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }}
geo   = {{ oid = "1.3.6.1.4.1.32473.1.101", type = "json",   max_len = 256 }}

[profiles.strict]
ca = "default"
allowed_callers = ["arn:aws:sts::123456789012:assumed-role/payments-*/*"]

[profiles.required]
ca = "default"
require = ["session_id", "transaction_id", "agent"]
[profiles.required.claims]
agent = {{ oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }}

[profiles.plain]
ca = "default"
key_types = ["ecdsa-p256"]
subject = {{ O = "Plain" }}

[profiles.csronly]
ca = "default"
allow_server_keys = false
csr_key_types = ["ecdsa-p256", "rsa-2048"]

[profiles.keysonly]
ca = "default"
allow_csr = false
{extra}
"#,
        dir = ca_dir.display()
    )
}

/// A test service: a CA in a temp dir and the router's state.
pub struct TestService {
    pub dir: tempfile::TempDir,
    pub state: AppState,
}

impl TestService {
    /// A P-256 CA created at `t0() - 1 day`, valid 365 days, clock fixed at `t0()`.
    pub async fn new() -> TestService {
        Self::with(
            KeyType::EcdsaP256,
            false,
            t0() - time::Duration::days(1),
            365,
            t0(),
        )
        .await
    }

    /// A CA of `key_type` created at `created`, valid `days`, clock fixed at `now`.
    pub async fn with(
        key_type: KeyType,
        intermediate: bool,
        created: OffsetDateTime,
        days: u32,
        now: OffsetDateTime,
    ) -> TestService {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("signer-key");
        make_ca(&ca_dir, key_type, intermediate, created, days);
        let state = state_for(
            &ca_dir,
            "",
            created.max(now - time::Duration::seconds(1)),
            now,
        )
        .await;
        TestService { dir, state }
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("signer-key")
    }

    /// The same CA with the clock fixed at `now` (the CA is loaded at `load_at`).
    pub async fn at(&self, load_at: OffsetDateTime, now: OffsetDateTime) -> AppState {
        state_for(&self.ca_dir(), "", load_at, now).await
    }
}

/// App state for a CA directory, loading the CA at `load_at` and serving with the clock at `now`.
pub async fn state_for(
    ca_dir: &Path,
    extra: &str,
    load_at: OffsetDateTime,
    now: OffsetDateTime,
) -> AppState {
    state_from_toml(&config_text(ca_dir, extra), load_at, now).await
}

/// App state for a configuration text, loading its CAs at `load_at` and
/// serving with the clock fixed at `now`.
pub async fn state_from_toml(text: &str, load_at: OffsetDateTime, now: OffsetDateTime) -> AppState {
    let config = Config::from_toml(
        ConfigOrigin::File("test.toml".into()),
        text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .expect("test config");
    let load_clock: SharedClock = Arc::new(FixedClock::new(load_at));
    let cas = CaStore::load(
        &config.cas,
        &load_clock,
        &Default::default(),
        session_ca::OnLoadFailure::Fail,
    )
    .await
    .expect("load CA");
    AppState {
        config: Arc::new(config),
        cas,
        clock: Arc::new(FixedClock::new(now)),
        metrics: Default::default(),
        ledger: Default::default(),
    }
}

/// Creates a CA in `ca_dir` (as `make_ca`) and reads it back as CA material.
pub async fn ca_material(
    ca_dir: &Path,
    key_type: KeyType,
    intermediate: bool,
    now: OffsetDateTime,
    days: u32,
) -> session_ca::CaMaterial {
    make_ca(ca_dir, key_type, intermediate, now, days);
    session_ca::CaSource::load(&session_ca::FileCaSource::new(ca_dir.to_path_buf()))
        .await
        .expect("read the CA back")
}

/// The `ca_chain` of an issuance response as one PEM document.
pub fn chain_of(body: &Value) -> String {
    body["ca_chain"]
        .as_array()
        .expect("ca_chain")
        .iter()
        .map(|c| c.as_str().expect("PEM string"))
        .collect()
}

/// A response, decoded.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        let json = self.json();
        json["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {json}"))
            .to_owned()
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Sends one request through the router.
pub async fn send(state: &AppState, request: Request<Body>) -> Reply {
    send_to(app(state.clone()), request).await
}

/// Sends one request through a given router.
pub async fn send_to(router: axum::Router, request: Request<Body>) -> Reply {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// POSTs a JSON body to /v1/certificates.
pub async fn issue(state: &AppState, body: impl Into<Body>) -> Reply {
    send(
        state,
        Request::post("/v1/certificates")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}

/// POSTs a JSON value to /v1/certificates.
pub async fn issue_json(state: &AppState, body: Value) -> Reply {
    issue(state, body.to_string()).await
}

/// GETs a path.
pub async fn get(state: &AppState, path: &str) -> Reply {
    send(state, Request::get(path).body(Body::empty()).unwrap()).await
}

/// A PEM CSR for a fresh key of `alg`, made with rcgen, asking for things
/// a client certificate must never get (CA:TRUE, a subject, SANs).
pub fn csr_asking_for_a_ca(alg: &'static rcgen::SignatureAlgorithm) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(alg).expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Evil Root CA");
    let pem = params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM");
    (pem, key)
}

/// Lower-case hex of `bytes` (as the signer writes serials and fingerprints).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signer state with auth `iam` (callers matching
/// `arn:aws:sts::123456789012:assumed-role/payments-*/*`), an intermediate
/// CA made a day before [`t0`], and the `agent`/`geo` claims, as the Lambda
/// tests use it.
pub async fn iam_state(dir: &Path) -> AppState {
    let ca_dir = dir.join("signer-key");
    make_ca(
        &ca_dir,
        KeyType::EcdsaP256,
        true,
        t0() - time::Duration::days(1),
        30,
    );
    let text = format!(
        r#"
[server]
auth = "iam"
[cas.default]
source = "file:{}"
[profiles.default]
uri_san = "urn:uuid:{{session_id}}"
allowed_callers = ["arn:aws:sts::123456789012:assumed-role/payments-*/*"]
[profiles.default.claims]
agent = {{ oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }}
geo   = {{ oid = "1.3.6.1.4.1.32473.1.101", type = "json",   max_len = 256 }}
"#,
        ca_dir.display()
    );
    state_from_toml(&text, t0(), t0()).await
}

/// A writer that keeps what is written (EMF lines, logs), for a test to
/// read back.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// What was written, as text.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A clock the test moves.
#[derive(Debug)]
pub struct StepClock(std::sync::Mutex<OffsetDateTime>);

impl session_ca::Clock for StepClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

impl StepClock {
    /// A clock at `at`.
    pub fn at(at: OffsetDateTime) -> Arc<StepClock> {
        Arc::new(StepClock(std::sync::Mutex::new(at)))
    }

    /// A clock at the current second.
    pub fn starting_now() -> Arc<StepClock> {
        StepClock::at(OffsetDateTime::now_utc().replace_nanosecond(0).unwrap())
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap() = at;
    }
}
