//! Issuance cost in process: the crypto floor (key generation plus one CA
//! signature, with the build's crypto library directly), `issuer::issue` per key type, and one
//! request through the router. The floor and the issuance run in the same
//! process so their ratio is meaningful on a noisy machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request};
use criterion::{criterion_group, criterion_main, Criterion};
use session_ca::crypto::rand::SystemRandom;
use session_ca::crypto::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use session_ca::Caller;
use session_ca::IssueRequest;
use session_ca::{
    app, issue, AppState, CaStore, Emf, FixedClock, KeyType, Metrics, PrometheusRegistry,
    SharedClock, SystemClock,
};
use session_ca::{create_ca, InitOptions};
use session_ca::{Config, ConfigOrigin, DEFAULT_CONFIG};
use tower::ServiceExt;

fn setup() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("signer-key");
    let now = time::OffsetDateTime::now_utc();
    create_ca(
        &InitOptions {
            dir: ca_dir.clone(),
            key_type: KeyType::EcdsaP256,
            subject: "CN=Bench CA".into(),
            validity_days: 30,
            intermediate: false,
            path_len: 0,
            force: true,
        },
        now - time::Duration::hours(1),
    )
    .unwrap();
    let text = DEFAULT_CONFIG.replace("file:signer-key", &format!("file:{}", ca_dir.display()));
    let config = Config::from_toml(
        ConfigOrigin::Embedded,
        &text,
        &BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cas = runtime
        .block_on(CaStore::load(
            &config.cas,
            &clock,
            &Default::default(),
            session_ca::OnLoadFailure::Fail,
        ))
        .unwrap();
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock: Arc::new(FixedClock::new(now)),
        metrics: Default::default(),
        ledger: Default::default(),
    };
    (dir, state)
}

/// What every issuance must at least do: generate the leaf key and make one
/// signature with the (P-256) CA key over a certificate-sized message.
fn crypto_floor(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let ca_pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    // ring checks the key's consistency with an RNG; aws-lc-rs takes none.
    #[cfg(not(feature = "aws-lc"))]
    let ca = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ca_pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    #[cfg(feature = "aws-lc")]
    let ca = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        ca_pkcs8.as_ref(),
    )
    .unwrap();
    let tbs = vec![0x5a_u8; 640];
    let mut group = c.benchmark_group("crypto_floor");
    group.bench_function("ecdsa-p256", |b| {
        b.iter(|| {
            let k = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .unwrap();
            let sig = ca.sign(&rng, &tbs).unwrap();
            (k, sig)
        })
    });
    group.bench_function("ecdsa-p384", |b| {
        b.iter(|| {
            let k = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                .unwrap();
            let sig = ca.sign(&rng, &tbs).unwrap();
            (k, sig)
        })
    });
    group.bench_function("ed25519", |b| {
        b.iter(|| {
            let k = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let sig = ca.sign(&rng, &tbs).unwrap();
            (k, sig)
        })
    });
    #[cfg(feature = "aws-lc")]
    for (name, size) in [
        ("rsa-2048", aws_lc_rs::rsa::KeySize::Rsa2048),
        ("rsa-3072", aws_lc_rs::rsa::KeySize::Rsa3072),
    ] {
        use aws_lc_rs::encoding::AsDer as _;
        group.sample_size(10);
        group.bench_function(name, |b| {
            b.iter(|| {
                // Key generation and its PKCS#8 encoding, as the issuer needs.
                let k = aws_lc_rs::rsa::KeyPair::generate(size).unwrap();
                let der = k.as_der().unwrap();
                let sig = ca.sign(&rng, &tbs).unwrap();
                (der.as_ref().len(), sig)
            })
        });
    }
    group.finish();
}

fn issuance(c: &mut Criterion) {
    let (_dir, state) = setup();
    let ca = state.cas.get("default").unwrap();
    let profile = state.config.profile("default").unwrap();
    let now = state.clock.now();
    let mut group = c.benchmark_group("issue");
    for key_type in KeyType::ALL {
        let body = format!(
            r#"{{"session_id":"92fea10a-0905-40cc-aca1-54ee52e89c71","transaction_id":"tx-1","key_type":"{key_type}","claims":{{"agent":"bench"}}}}"#
        );
        if key_type.as_str().starts_with("rsa") {
            group.sample_size(10);
        }
        group.bench_function(key_type.as_str(), |b| {
            b.iter(|| {
                let request = IssueRequest::from_json(body.as_bytes()).unwrap();
                let plan = profile.plan(&request, &Caller::Anonymous, "req-1").unwrap();
                issue(&ca, &plan, now).unwrap()
            })
        });
    }
    group.finish();
}

/// The other two ways out: PKCS#12 output (PBKDF2 and AES on top of the
/// issuance) and CSR mode (a CSR signature check instead of a key generation).
fn issuance_modes(c: &mut Criterion) {
    let (_dir, state) = setup();
    let ca = state.cas.get("default").unwrap();
    let profile = state.config.profile("default").unwrap();
    let now = state.clock.now();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec![])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let mut group = c.benchmark_group("issue_mode");
    let mut modes = vec![(
        "csr-ecdsa-p256",
        serde_json::json!({"session_id": "92fea10a-0905-40cc-aca1-54ee52e89c71", "csr": csr}),
    )];
    // A FIPS build refuses key stores.
    if !cfg!(feature = "fips") {
        modes.push((
            "ecdsa-p256+pkcs12",
            serde_json::json!({"session_id": "92fea10a-0905-40cc-aca1-54ee52e89c71", "pkcs12": true}),
        ));
    }
    for (name, body) in modes {
        let body = body.to_string();
        group.bench_function(name, |b| {
            b.iter(|| {
                let request = IssueRequest::from_json(body.as_bytes()).unwrap();
                let plan = profile.plan(&request, &Caller::Anonymous, "req-1").unwrap();
                issue(&ca, &plan, now).unwrap()
            })
        });
    }
    group.finish();
}

/// The whole router for one P-256 issuance, with metrics off, with the
/// Prometheus registry of `serve`, and with Lambda's EMF lines (written to
/// a sink here), interleaved in one run so their ratio is comparable.
fn router(c: &mut Criterion) {
    let (_dir, state) = setup();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = r#"{"session_id":"92fea10a-0905-40cc-aca1-54ee52e89c71","transaction_id":"tx-1","claims":{"agent":"bench"}}"#;
    let variants = [
        ("router/post_certificates_p256", Metrics::Off),
        (
            "router/post_certificates_p256+prometheus",
            Metrics::Prometheus(Arc::new(PrometheusRegistry::new())),
        ),
        (
            "router/post_certificates_p256+emf",
            Metrics::Emf(Arc::new(Emf::to_writer("Bench", Box::new(std::io::sink())))),
        ),
    ];
    for (name, metrics) in variants {
        let router = app(AppState {
            metrics,
            ledger: Default::default(),
            ..state.clone()
        });
        c.bench_function(name, |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let response = router
                        .clone()
                        .oneshot(
                            Request::post("/v1/certificates")
                                .header(header::CONTENT_TYPE, "application/json")
                                .body(Body::from(body))
                                .unwrap(),
                        )
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 201);
                    axum::body::to_bytes(response.into_body(), 1 << 20)
                        .await
                        .unwrap()
                })
            })
        });
    }
}

criterion_group!(benches, crypto_floor, issuance, issuance_modes, router);
criterion_main!(benches);
