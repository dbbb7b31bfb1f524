//! The bodies of the fuzz targets, one function per target.
//!
//! `fuzz/fuzz_targets/*.rs` call them through this library and
//! `tests/fuzz_corpus.rs` compiles this same file as a module to replay the
//! saved corpora, so the fuzzer and the test cannot drift apart. Each body
//! takes untrusted bytes and asserts what the service promises about them:
//! parsers return `Ok` or this crate's error types and never panic, the
//! router never answers 5xx, an issued certificate verifies and says what
//! the response says, and `inspect` output holds no terminal controls.
//!
//! Everything runs at a fixed instant ([`now`]) with an in-memory
//! environment, so an input behaves the same on every run.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use session_ca::verify_client_certificate;
use session_ca::Caller;
use session_ca::FileCaSource;
use session_ca::IssueRequest;
use session_ca::{app, AppState, FixedClock, KeyType, SharedClock};
use session_ca::{create_ca, InitOptions};
use session_ca::{inspect as inspect_certificate, read_certificate};
use session_ca::{BoxFuture, CaError, CaMaterial, CaSource, CaStore, SigningCa};
use session_ca::{CertificatePlan, Profile, MAX_SESSION_ID_CHARS};
use session_ca::{Config, ConfigOrigin, DEFAULT_CONFIG};
use session_ca::{CsrKey, CsrKeyType};
use session_ca_verify::ClaimType;
use session_ca_verify::Verifier;
use time::OffsetDateTime;
use tower::ServiceExt;

/// A target's body: takes any bytes, panics on a broken promise.
pub type TargetBody = fn(&[u8]);

/// Every target by name; its corpus is `fuzz/corpus/<name>/`.
pub const TARGETS: [(&str, TargetBody); 5] = [
    ("request", request),
    ("router", router),
    ("csr", csr),
    ("config", config),
    ("inspect", inspect),
];

/// Request id given to `Profile::plan` outside the router.
const REQUEST_ID: &str = "fuzz-request";

/// Profiles added to the embedded default for the `router` target, so
/// inputs can reach the required-field, key-type and CSR-only rules.
const ROUTER_PROFILES: &str = r#"
[profiles.required]
ca = "default"
require = ["session_id", "transaction_id", "agent"]
[profiles.required.claims]
agent = { oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }

[profiles.plain]
ca = "default"
key_types = ["ed25519", "ecdsa-p256"]
subject = { O = "Plain" }

[profiles.csronly]
ca = "default"
allow_server_keys = false
csr_key_types = ["ecdsa-p256", "ed25519", "rsa-2048"]
"#;

/// The instant every target runs at: 2026-01-01T00:00:00Z.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a valid timestamp")
}

fn fixed_clock() -> SharedClock {
    Arc::new(FixedClock::new(now()))
}

/// An empty environment: the targets never read the process environment.
fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// The embedded default configuration, loaded as `serve` loads it when
/// given no file.
fn embedded_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::load_with_default(None, &no_env(), &[], DEFAULT_CONFIG)
            .expect("the embedded default configuration is valid")
    })
}

/// CA material held in memory, so the fixture leaves no files behind.
#[derive(Debug)]
struct MemoryCa(CaMaterial);

impl CaSource for MemoryCa {
    fn describe(&self) -> String {
        "memory:fuzz".into()
    }

    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// What the router and config targets sign with, built once per process.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    ca: Arc<SigningCa>,
    /// Trusts the fixture CA at [`now`], knowing the default profile's claims.
    verifier: Verifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // `session-ca init`'s own code makes the CA; it is read back with the
        // file source and the directory is removed before any input runs.
        let dir = tempfile::tempdir().expect("a temporary directory");
        create_ca(
            &InitOptions {
                dir: dir.path().to_path_buf(),
                key_type: KeyType::EcdsaP256,
                subject: "CN=Fuzz Issuing CA,O=session-ca fuzz,C=NL".into(),
                validity_days: 365,
                intermediate: false,
                path_len: 0,
                force: true,
            },
            now() - time::Duration::days(1),
        )
        .expect("create the fuzz CA");
        let material = runtime
            .block_on(FileCaSource::new(dir.path().to_path_buf()).load())
            .expect("read the fuzz CA back");
        drop(dir);

        let text = format!("{DEFAULT_CONFIG}{ROUTER_PROFILES}");
        let config = Config::from_toml(ConfigOrigin::Embedded, &text, &no_env(), &[])
            .expect("the router configuration is valid");
        let source: Arc<dyn CaSource> = Arc::new(MemoryCa(material));
        let cas = runtime
            .block_on(CaStore::from_sources(
                vec![("default".into(), source, Duration::from_secs(300))],
                &fixed_clock(),
            ))
            .expect("load the fuzz CA");
        let ca = cas.get("default").expect("the fuzz CA is loaded");
        let verifier = Verifier::builder()
            .ca_pem(&ca.chain_pem_bundle)
            .clock(fixed_clock())
            .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::String)
            .claim("geo", "1.3.6.1.4.1.32473.1.101", ClaimType::Json)
            .build()
            .expect("a verifier for the fuzz CA");
        let router = app(AppState {
            config: Arc::new(config),
            cas,
            clock: fixed_clock(),
            metrics: Default::default(),
            ledger: Default::default(),
        });
        Fixture {
            runtime,
            router,
            ca,
            verifier,
        }
    })
}

/// What every plan must satisfy, whatever the request and the profile.
fn check_plan(profile: &Profile, plan: &CertificatePlan) {
    assert!(
        !plan.ttl.is_zero() && plan.ttl <= profile.max_ttl,
        "ttl {:?} outside (0, {:?}]",
        plan.ttl,
        profile.max_ttl
    );
    let session_chars = plan.session_id.chars().count();
    assert!(
        (1..=MAX_SESSION_ID_CHARS).contains(&session_chars),
        "session_id of {session_chars} characters"
    );
    // RFC 5280 §4.2: one instance of each extension.
    assert!(
        plan.extensions.windows(2).all(|w| w[0].0 < w[1].0),
        "claim extensions not in strictly increasing OID order: {:?}",
        plan.extensions
    );
    for (oid, text) in &plan.extensions {
        assert!(
            text.chars().all(is_safe_char),
            "claim {oid} holds a control or bidi character: {text:?}"
        );
    }
    if let Some(uri) = &plan.uri_san {
        assert!(
            uri.bytes().all(|b| b.is_ascii_graphic()),
            "URI SAN {uri:?} is not IA5 without spaces"
        );
    }
}

/// The claim extensions hold what the request sent: a `string` claim its
/// text, a `json` claim compact JSON text that parses back to the value
/// the profile checked.
fn check_claims(profile: &Profile, request: &IssueRequest, plan: &CertificatePlan) {
    let Some(claims) = &request.claims else {
        return;
    };
    for (name, claim) in &claims.0 {
        let spec = profile
            .claims
            .get(name)
            .unwrap_or_else(|| panic!("unknown claim {name:?} was planned"));
        let text = plan
            .extensions
            .iter()
            .find(|(oid, _)| *oid == spec.oid)
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("claim {name:?} is not in the plan"));
        assert!(
            text.len() <= spec.max_len,
            "claim {name:?} longer than max_len"
        );
        match spec.kind {
            ClaimType::String => assert_eq!(Some(text), claim.value.as_str(), "claim {name:?}"),
            ClaimType::Json => {
                let parsed: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("claim {name:?} text {text:?} is not JSON: {e}"));
                assert_eq!(parsed, claim.value, "claim {name:?} text {text:?}");
                assert!(
                    !text.contains(['\n', '\r', '\t']),
                    "claim {name:?} text {text:?} is not compact"
                );
            }
        }
    }
}

/// `request`: the request body parser, then the embedded default profile's
/// policy for an anonymous caller.
pub fn request(data: &[u8]) {
    let request = match IssueRequest::from_json(data) {
        Ok(request) => request,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let profile = embedded_config()
        .profile("default")
        .expect("the embedded default has profile `default`");
    match profile.plan(&request, &Caller::Anonymous, REQUEST_ID) {
        Ok(plan) => {
            check_plan(profile, &plan);
            check_claims(profile, &request, &plan);
        }
        Err(e) => {
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
}

/// `router`: the bytes as the JSON body of `POST /v1/certificates`
/// through the whole router. Never 5xx; errors carry a code and a message;
/// a 201 holds a certificate that verifies against the CA, carries the
/// session and request ids the response names, and the session id,
/// transaction id and claims the request sent.
pub fn router(data: &[u8]) {
    let fixture = fixture();
    let request = Request::post("/v1/certificates")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(data.to_vec()))
        .expect("a well-formed HTTP request");
    let (status, body) = fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the response body")
            .to_bytes();
        (status, body)
    });
    let shown = || String::from_utf8_lossy(data).into_owned();
    assert!(
        !status.is_server_error(),
        "{status} for {:?}: {}",
        shown(),
        String::from_utf8_lossy(&body)
    );
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}) for {:?}", shown()));
    if status != StatusCode::CREATED {
        for field in ["code", "message"] {
            assert!(
                json["error"][field].as_str().is_some_and(|s| !s.is_empty()),
                "{status} without error.{field} for {:?}: {json}",
                shown()
            );
        }
        return;
    }
    let pem = json["certificate"]
        .as_str()
        .expect("a 201 carries a certificate");
    let der = read_certificate(pem.as_bytes()).expect("the certificate is PEM");
    let session = fixture
        .verifier
        .verify(&[der])
        .unwrap_or_else(|e| panic!("issued certificate does not verify ({e}) for {:?}", shown()));
    assert_eq!(session.session_id.as_deref(), json["session_id"].as_str());
    assert_eq!(session.request_id.as_deref(), json["request_id"].as_str());
    // What the certificate says is what was asked.
    let asked = IssueRequest::from_json(data).expect("an issued request parses");
    if let Some(session_id) = &asked.session_id {
        assert_eq!(session.session_id.as_ref(), Some(session_id));
    }
    assert_eq!(session.transaction_id, asked.transaction_id);
    for (name, claim) in asked.claims.iter().flat_map(|c| &c.0) {
        assert_eq!(
            session.claims.get(name),
            Some(&claim.value),
            "claim {name:?} for {:?}",
            shown()
        );
    }
}

/// `csr`: a PKCS#10 request as DER, as the same DER wrapped in PEM (which
/// must give the same answer), and as text.
pub fn csr(data: &[u8]) {
    let from_der = CsrKey::from_der(data);
    let wrapped = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", data.to_vec()));
    let from_wrapped = CsrKey::from_pem(&wrapped);
    assert_eq!(
        from_der.as_ref().ok(),
        from_wrapped.as_ref().ok(),
        "DER and the same DER in PEM disagree"
    );
    match &from_der {
        Ok(key) => {
            assert!(CsrKeyType::ALL.contains(&key.key_type()));
            let _ = format!("{key:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Err(e) = CsrKey::from_pem(&String::from_utf8_lossy(data)) {
        assert!(!e.to_string().is_empty());
    }
}

/// `config`: configuration text, with environment overrides after the
/// first NUL byte as `NAME=VALUE` lines. Must give a `Config` or a
/// `ConfigError`; a `Config` must be usable: each profile (the first four)
/// plans an empty request into a valid plan, the fixture CA signs it, and
/// a verifier set up from the configuration accepts the certificate.
pub fn config(data: &[u8]) {
    let (text, env_lines) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let env: BTreeMap<String, String> = String::from_utf8_lossy(env_lines)
        .lines()
        .filter_map(|line| line.split_once('='))
        .take(16)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let config = match Config::from_toml(ConfigOrigin::File("fuzz.toml".into()), &text, &env, &[]) {
        Ok(config) => config,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let _ = config.claim_names();
    let fixture = fixture();
    for profile in config.profiles.values().take(4) {
        let plan = match profile.plan(&IssueRequest::default(), &Caller::Anonymous, REQUEST_ID) {
            Ok(plan) => plan,
            Err(e) => {
                assert!(!e.code().is_empty());
                continue;
            }
        };
        check_plan(profile, &plan);
        let issued = session_ca::issue(&fixture.ca, &plan, now()).unwrap_or_else(|e| {
            panic!(
                "profile {:?} of a valid configuration cannot issue: {e}",
                profile.name
            )
        });
        let mut builder = Verifier::builder()
            .ca_pem(&fixture.ca.chain_pem_bundle)
            .clock(fixed_clock())
            .oid_arc(&config.oid_arc.to_string());
        for (name, spec) in &profile.claims {
            builder = builder.claim(name, &spec.oid.to_string(), spec.kind);
        }
        let verifier = builder.build().unwrap_or_else(|e| {
            panic!(
                "profile {:?}: no verifier for its claims: {e}",
                profile.name
            )
        });
        let der = read_certificate(issued.certificate_pem.as_bytes())
            .expect("the issued certificate is PEM");
        let session = verifier
            .verify(&[der])
            .unwrap_or_else(|e| panic!("profile {:?}: issued certificate: {e}", profile.name));
        assert_eq!(
            session.session_id.as_deref(),
            Some(plan.session_id.as_str())
        );
    }
}

/// `inspect`: `session-ca inspect FILE --ca FILE` with the input as both
/// files, then the backend verifier with the input as its CA file and as
/// the peer's certificate. The printed report must hold no control or
/// bidi-override characters besides line ends.
pub fn inspect(data: &[u8]) {
    let config = embedded_config();
    let certificate = read_certificate(data).ok();
    if let Some(der) = &certificate {
        if let Ok(report) = inspect_certificate(der, &config.claim_names(), &config.oid_arc) {
            let text = report.to_string();
            assert!(
                text.chars().all(|c| c == '\n' || is_safe_char(c)),
                "inspect printed a control or bidi character: {text:?}"
            );
        }
        let _ = verify_client_certificate(der, data, now());
    }
    let mut builder = Verifier::builder()
        .ca_pem(data)
        .clock(fixed_clock())
        .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::String)
        .claim("geo", "1.3.6.1.4.1.32473.1.101", ClaimType::Json);
    if let (Some(der), Some(0x30)) = (&certificate, data.first()) {
        builder = builder.ca_der(der.clone());
    }
    if let Ok(verifier) = builder.build() {
        let _ = verifier.ca_subjects();
        if let Some(der) = certificate {
            if let Err(e) = verifier.verify(&[der]) {
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// The characters a claim, an identifier or `inspect`'s output may hold:
/// no C0/C1 controls and no bidi overrides (restated here as the oracle,
/// independently of the signer's own check).
fn is_safe_char(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}
