//! CA keys held in AWS KMS, with the real aws-sdk-kms against moto's server
//! (started through `scripts/moto_server_kms.py`, which adds `Sign` with
//! `MessageType=DIGEST` and refuses disabled keys, as AWS KMS does):
//! `init --kms-key-id`, direct and delegated signing for every KMS key spec
//! and leaf key type (checked by openssl, pkilint and rustls-webpki), the
//! KMS requests each mode makes (counted by the fault-injecting proxy),
//! throttling, an unreachable KMS at a cold start, a key disabled mid-flight,
//! a delegation renewed under load, `publish-ssm` of a KMS-backed CA, and the
//! Lambda runtime loop with a KMS-backed CA.

use crate::common::faulty_proxy::{Fault, FaultyProxy};
use crate::common::moto::{settings_for, Moto};
use crate::common::tools;
use crate::common::{issue_json, Reply, StepClock};

use std::path::Path;
use std::sync::Arc;

use aws_sdk_kms::types::KeySpec;
use serde_json::{json, Value};
use session_ca::{
    create_kms_ca, verify_client_certificate, AppState, CaStore, Clock, Config, ConfigOrigin,
    KeyType, KmsInitOptions, OnLoadFailure, SharedClock, SsmSettings,
};
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

/// A fresh KMS signing key of `spec`; its id.
async fn kms_key(moto: &Moto, spec: KeySpec) -> String {
    moto.kms_client()
        .await
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .key_spec(spec)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

/// A KMS key of `spec` and its CA certificate (KMS self-signs the root) in `dir`.
pub(crate) async fn kms_ca(moto: &Moto, spec: KeySpec, dir: &Path) -> String {
    let key_id = kms_key(moto, spec.clone()).await;
    create_kms_ca(
        session_ca::kms_client(&moto.settings()).await,
        &KmsInitOptions {
            dir: dir.to_path_buf(),
            key_id: key_id.clone(),
            subject: format!("CN=KMS test CA {},O=session-ca tests", spec.as_str()),
            validity_days: 30,
            issuer_dir: None,
            force: false,
        },
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_or_else(|e| panic!("init --kms-key-id for {}: {e}", spec.as_str()));
    key_id
}

pub(crate) fn kms_config(key_id: &str, chain_dir: &Path, delegate: Option<&str>) -> Config {
    let delegate = delegate.map_or(String::new(), |d| format!("delegate = \"{d}\"\n"));
    let text = format!(
        "[cas.default]\nsource = \"kms:{key_id}\"\nchain = \"file:{}\"\n{delegate}\
         [profiles.default]\nkey_types = {:?}\n",
        chain_dir.display(),
        KeyType::ALL.map(|k| k.as_str()),
    );
    Config::from_toml(
        ConfigOrigin::File("kms.toml".into()),
        &text,
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub(crate) async fn kms_state(
    config: Config,
    settings: &SsmSettings,
    clock: SharedClock,
) -> AppState {
    kms_state_measured(config, settings, clock, session_ca::Metrics::Off).await
}

/// [`kms_state`] with `metrics`, which the KMS key's calls report to too.
async fn kms_state_measured(
    config: Config,
    settings: &SsmSettings,
    clock: SharedClock,
    metrics: session_ca::Metrics,
) -> AppState {
    let cas = CaStore::load_measured(
        &config.cas,
        &clock,
        settings,
        OnLoadFailure::ServeUnavailable,
        &metrics,
    )
    .await
    .unwrap();
    AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics,
        ledger: Default::default(),
    }
}

/// A state's Prometheus exposition (`GET /metrics`).
async fn exposition(state: &AppState) -> String {
    let reply = crate::common::get(state, "/metrics").await;
    assert_eq!(reply.status, 200);
    String::from_utf8(reply.body).unwrap()
}

/// The value of `series` in the exposition `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn prometheus() -> session_ca::Metrics {
    session_ca::Metrics::Prometheus(Arc::new(session_ca::PrometheusRegistry::new()))
}

async fn issue_one(state: &AppState, key_type: KeyType) -> Reply {
    issue_json(
        state,
        json!({"key_type": key_type.as_str(), "transaction_id": "tx-kms-0001"}),
    )
    .await
}

fn chain_of(body: &Value) -> Vec<String> {
    body["ca_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// Counts of the proxy's requests by `X-Amz-Target`.
fn count(proxy: &FaultyProxy, target: &str) -> usize {
    proxy.targets().iter().filter(|t| *t == target).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server, openssl and pkilint; run scripts/test"]
async fn direct_and_delegated_signing_for_every_kms_key_spec_and_leaf_key_type() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    for spec in [KeySpec::EccNistP256, KeySpec::EccNistP384, KeySpec::Rsa2048] {
        let ca_dir = dir.join(spec.as_str());
        let key_id = kms_ca(&moto, spec.clone(), &ca_dir).await;
        assert!(!ca_dir.join("ca-key.pem").exists(), "no key on disk");
        for delegate in [None, Some("1h")] {
            let case = format!("{} delegate={delegate:?}", spec.as_str());
            let clock: SharedClock = Arc::new(session_ca::SystemClock);
            let state = kms_state_measured(
                kms_config(&key_id, &ca_dir, delegate),
                &moto.settings(),
                clock,
                prometheus(),
            )
            .await;

            // The CA's expiry is the KMS CA's end; a delegated CA's
            // metrics report the delegation's end too.
            let loaded = state.cas.get("default").unwrap();
            let text = exposition(&state).await;
            let ca_left = sample(&text, r#"session_ca_ca_expiry_seconds{ca="default"}"#);
            let delegation_left = sample(
                &text,
                r#"session_ca_ca_delegation_expiry_seconds{ca="default"}"#,
            );
            assert!(ca_left.unwrap() > 29.0 * 86_400.0, "{case}: {text}");
            match delegate {
                Some(_) => {
                    assert!(
                        loaded.not_after <= OffsetDateTime::now_utc() + time::Duration::hours(1)
                    );
                    assert!(
                        loaded.expires() > OffsetDateTime::now_utc() + time::Duration::days(29)
                    );
                    let left = delegation_left.unwrap_or_else(|| panic!("{case}: {text}"));
                    assert!(left > 3_000.0 && left <= 3_600.0, "{case}: {text}");
                }
                None => {
                    assert_eq!(loaded.expires(), loaded.not_after);
                    assert_eq!(delegation_left, None, "{case}: {text}");
                }
            }
            // The load read the public key once, and no call failed.
            assert_eq!(
                sample(
                    &text,
                    r#"session_ca_kms_duration_seconds_count{operation="get_public_key"}"#
                ),
                Some(1.0),
                "{case}: {text}"
            );
            assert_eq!(
                sample(&text, r#"session_ca_kms_errors_total{operation="sign"}"#),
                Some(0.0),
                "{case}: {text}"
            );
            let health = crate::common::get(&state, "/healthz").await.json();
            let ca = &health["cas"][0];
            assert_eq!(ca["usable"], true, "{case}: {health}");
            assert_eq!(
                ca["key_mode"],
                if delegate.is_some() {
                    "kms-delegated"
                } else {
                    "kms-direct"
                },
                "{case}"
            );
            // KMS names the key by its ARN (moto by its id) in GetPublicKey.
            let holder = ca["key_holder"].as_str().unwrap();
            assert!(
                holder.starts_with("kms:") && holder.ends_with(&key_id),
                "{case}: {ca}"
            );

            for key_type in KeyType::ALL {
                let reply = issue_one(&state, key_type).await;
                assert_eq!(
                    reply.status,
                    201,
                    "{case} {key_type}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                let body = reply.json();
                let chain = chain_of(&body);
                assert_eq!(
                    chain.len(),
                    if delegate.is_some() { 2 } else { 1 },
                    "{case}"
                );
                let (root, intermediates) = chain.split_last().unwrap();
                std::fs::write(dir.join("cert.pem"), body["certificate"].as_str().unwrap())
                    .unwrap();
                std::fs::write(dir.join("root.pem"), root).unwrap();
                std::fs::write(dir.join("untrusted.pem"), intermediates.concat() + root).unwrap();
                let out = tools::run(
                    "openssl",
                    &[
                        "verify",
                        "-x509_strict",
                        "-purpose",
                        "sslclient",
                        "-CAfile",
                        "root.pem",
                        "-untrusted",
                        "untrusted.pem",
                        "cert.pem",
                    ],
                    dir,
                );
                assert!(
                    out.status.success(),
                    "{case} {key_type}: openssl verify: {}",
                    tools::output_text(&out)
                );
                let der =
                    session_ca::read_certificate(body["certificate"].as_str().unwrap().as_bytes())
                        .unwrap();
                verify_client_certificate(
                    &der,
                    chain.concat().as_bytes(),
                    OffsetDateTime::now_utc(),
                )
                .unwrap_or_else(|e| panic!("{case} {key_type}: rustls-webpki: {e}"));
            }
            // pkilint over the last leaf and, when delegated, over the delegated CA.
            let findings = tools::pkilint_findings(dir, "cert.pem");
            assert!(
                findings.is_empty(),
                "{case}: pkilint on the leaf: {findings:?}"
            );
            if delegate.is_some() {
                let body = issue_one(&state, KeyType::EcdsaP256).await.json();
                std::fs::write(dir.join("delegated.pem"), &chain_of(&body)[0]).unwrap();
                let findings = tools::pkilint_findings(dir, "delegated.pem");
                assert!(
                    findings.is_empty(),
                    "{case}: pkilint on the delegated CA: {findings:?}"
                );
                let out = tools::run(
                    "openssl",
                    &["x509", "-noout", "-text", "-in", "delegated.pem"],
                    dir,
                );
                let text = tools::output_text(&out);
                assert!(
                    text.contains("CA:TRUE, pathlen:0")
                        && text.contains("Certificate Sign, CRL Sign")
                        && text.contains("TLS Web Client Authentication"),
                    "{case}: {text}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn direct_mode_signs_once_per_certificate_and_delegated_once_per_period() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(&moto.url(), Fault::None).await;
    let settings = settings_for(proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
    let clock: SharedClock = Arc::new(session_ca::SystemClock);

    // Direct: the load reads the public key and signs the self-test probe;
    // then one Sign per certificate.
    let state = kms_state(
        kms_config(&key_id, dir.path(), None),
        &settings,
        clock.clone(),
    )
    .await;
    assert_eq!(count(&proxy, "TrentService.GetPublicKey"), 1);
    assert_eq!(count(&proxy, "TrentService.Sign"), 1, "the self-test");
    for _ in 0..20 {
        assert_eq!(issue_one(&state, KeyType::EcdsaP256).await.status, 201);
    }
    assert_eq!(count(&proxy, "TrentService.Sign"), 21);

    // Delegated: one Sign (the delegated CA's certificate) for 1,000 certificates.
    let state = kms_state(
        kms_config(&key_id, dir.path(), Some("1h")),
        &settings,
        clock,
    )
    .await;
    for _ in 0..1000 {
        assert_eq!(issue_one(&state, KeyType::EcdsaP256).await.status, 201);
    }
    // A reload of unchanged material within the period signs nothing.
    state.cas.refresh("default", &state.clock).await.unwrap();
    assert_eq!(
        count(&proxy, "TrentService.Sign"),
        22,
        "{:?}",
        proxy.targets()
    );
    assert_eq!(count(&proxy, "TrentService.GetPublicKey"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn throttling_beyond_the_retries_is_a_503_naming_kms_and_within_them_is_absorbed() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(&moto.url(), Fault::None).await;
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
    let clock: SharedClock = Arc::new(session_ca::SystemClock);
    let state = kms_state_measured(
        kms_config(&key_id, dir.path(), None),
        &settings_for(proxy.port),
        clock,
        prometheus(),
    )
    .await;

    // Three attempts (session_ca's MAX_ATTEMPTS) all throttled.
    proxy.set(Fault::Throttle { remaining: 3 });
    let reply = issue_one(&state, KeyType::EcdsaP256).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (503, "ca_unavailable")
    );
    assert!(reply.message().contains("AWS KMS"), "{}", reply.message());
    assert_eq!(proxy.seen().throttled, 3);
    // Two throttled attempts, then KMS signs: the SDK's retries absorb it.
    proxy.set(Fault::Throttle { remaining: 2 });
    assert_eq!(issue_one(&state, KeyType::EcdsaP256).await.status, 201);
    // The metrics saw three Sign calls (the load's self-test and the two
    // issuances; the SDK's retries are inside one call), one failed.
    let text = exposition(&state).await;
    for (series, value) in [
        (
            r#"session_ca_kms_duration_seconds_count{operation="sign"}"#,
            3.0,
        ),
        (r#"session_ca_kms_errors_total{operation="sign"}"#, 1.0),
        (
            r#"session_ca_kms_errors_total{operation="get_public_key"}"#,
            0.0,
        ),
        (r#"session_ca_refusals_total{code="ca_unavailable"}"#, 1.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn kms_unreachable_at_a_cold_start_answers_503_then_recovers() {
    let moto = Moto::start();
    let proxy = FaultyProxy::start(&moto.url(), Fault::None).await;
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
    let clock = StepClock::starting_now();
    let shared: SharedClock = clock.clone();

    proxy.set(Fault::Reset);
    let state = kms_state(
        kms_config(&key_id, dir.path(), Some("1h")),
        &settings_for(proxy.port),
        shared,
    )
    .await;
    let reply = issue_one(&state, KeyType::EcdsaP256).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (503, "ca_unavailable")
    );
    let health = crate::common::get(&state, "/healthz").await;
    assert_eq!(health.status, 503);

    // KMS is back; the next due reload (a few seconds later) loads the CA.
    proxy.set(Fault::None);
    clock.set(clock.now() + time::Duration::seconds(6));
    state.cas.refresh_due(&state.clock, &state.metrics).await;
    assert_eq!(issue_one(&state, KeyType::EcdsaP256).await.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn a_key_disabled_mid_flight_stops_direct_at_once_and_delegated_when_its_delegation_ends() {
    let moto = Moto::start();
    let kms = moto.kms_client().await;
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
    let clock = StepClock::starting_now();
    let shared: SharedClock = clock.clone();
    let direct = kms_state(
        kms_config(&key_id, dir.path(), None),
        &moto.settings(),
        shared.clone(),
    )
    .await;
    let delegated = kms_state(
        kms_config(&key_id, dir.path(), Some("1h")),
        &moto.settings(),
        shared,
    )
    .await;
    assert_eq!(issue_one(&direct, KeyType::EcdsaP256).await.status, 201);

    kms.disable_key().key_id(&key_id).send().await.unwrap();
    // Direct: the next request.
    let reply = issue_one(&direct, KeyType::EcdsaP256).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (503, "ca_unavailable")
    );
    // Delegated: signing goes on with the current delegation, through a
    // failed renewal, until the delegation ends.
    let until = delegated.cas.get("default").unwrap().not_after;
    assert_eq!(issue_one(&delegated, KeyType::EcdsaP256).await.status, 201);
    clock.set(until - time::Duration::minutes(5));
    delegated
        .cas
        .refresh_due(&delegated.clock, &delegated.metrics)
        .await;
    let reply = issue_one(&delegated, KeyType::EcdsaP256).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    assert_eq!(
        body["not_after"],
        session_ca_client_rfc3339(until),
        "clamped to the delegation"
    );
    clock.set(until);
    delegated
        .cas
        .refresh_due(&delegated.clock, &delegated.metrics)
        .await;
    let reply = issue_one(&delegated, KeyType::EcdsaP256).await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (503, "ca_unavailable")
    );

    // Enabled again: the next due reload makes a fresh delegation.
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    clock.set(until + time::Duration::seconds(31));
    delegated
        .cas
        .refresh_due(&delegated.clock, &delegated.metrics)
        .await;
    assert_eq!(issue_one(&delegated, KeyType::EcdsaP256).await.status, 201);
}

fn session_ca_client_rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn the_delegated_ca_is_renewed_under_continuous_load_without_a_failed_request() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
    let clock = StepClock::starting_now();
    let shared: SharedClock = clock.clone();
    let state = kms_state(
        kms_config(&key_id, dir.path(), Some("45m")),
        &moto.settings(),
        shared,
    )
    .await;
    let first = state.cas.get("default").unwrap();
    let renew_by = first.renew_by().unwrap();

    // Eight workers issue without pause; the clock passes the renewal point
    // while they run, and each goes on for 20 more certificates after that.
    let advanced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let state = state.clone();
            let advanced = advanced.clone();
            tokio::spawn(async move {
                let mut issuers = std::collections::BTreeSet::new();
                let (mut before, mut after) = (0, 0);
                while after < 20 {
                    let late = advanced.load(std::sync::atomic::Ordering::Acquire);
                    // Each request reloads a due CA first, as in Lambda mode.
                    state.cas.refresh_due(&state.clock, &state.metrics).await;
                    let reply = issue_one(&state, KeyType::EcdsaP256).await;
                    assert_eq!(
                        reply.status,
                        201,
                        "{}",
                        String::from_utf8_lossy(&reply.body)
                    );
                    issuers.insert(chain_of(&reply.json())[0].clone());
                    if late {
                        after += 1;
                    } else {
                        before += 1;
                    }
                    // In-process requests may never wait: let the timer run.
                    tokio::task::yield_now().await;
                }
                (before, issuers)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    clock.set(renew_by + time::Duration::seconds(1));
    advanced.store(true, std::sync::atomic::Ordering::Release);
    let mut issuers = std::collections::BTreeSet::new();
    let mut before = 0;
    for worker in workers {
        let (count, seen) = worker.await.unwrap();
        before += count;
        issuers.extend(seen);
    }
    assert!(before > 0, "load before the renewal point");
    let last = state.cas.get("default").unwrap();
    assert_ne!(last.cert_der, first.cert_der, "renewed");
    assert!(last.not_after > first.not_after);
    assert!(
        issuers.len() >= 2,
        "both delegations signed: {}",
        issuers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto_server; run scripts/test"]
async fn init_and_publish_ssm_commands_keep_the_key_in_kms() {
    let moto = Moto::start();
    let key_id = kms_key(&moto, KeySpec::EccNistP384).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("AWS_ENDPOINT_URL_KMS", moto.url()),
        ("AWS_ENDPOINT_URL_SSM", moto.url()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "eu-west-1".to_owned()),
    ];
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .envs(env.clone())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };
    // A local root made for it (pathLenConstraint 2), and the KMS CA under it.
    let out = run(&[
        "init",
        "--dir",
        "root",
        "--subject",
        "CN=Offline Root,O=session-ca tests",
        "--path-len",
        "2",
    ]);
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let out = run(&[
        "init",
        "--kms-key-id",
        &key_id,
        "--issuer-dir",
        "root",
        "--dir",
        "kms-ca",
        "--subject",
        "CN=KMS issuing CA,O=session-ca tests",
    ]);
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("kms-ca"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["ca-cert.pem", "chain.pem", "kms-key-id"]);
    let out = tools::run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/ca-cert.pem",
            "kms-ca/ca-cert.pem",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", tools::output_text(&out));

    // publish-ssm: the certificate and chain, no key parameter.
    let out = run(&["publish-ssm", "--dir", "kms-ca", "--prefix", "/kms/ca"]);
    let text = tools::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("wrote /kms/ca/cert") && !text.contains("/kms/ca/key"),
        "{text}"
    );
    assert!(text.contains("CHAIN=ssm:/kms/ca"), "{text}");
    let ssm = moto.client().await;
    assert!(ssm
        .get_parameter()
        .name("/kms/ca/key")
        .send()
        .await
        .is_err());
    // A key parameter under the prefix is refused, as is a key file beside kms-key-id.
    ssm.put_parameter()
        .name("/kms/other/key")
        .value("-----BEGIN PRIVATE KEY-----")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let out = run(&["publish-ssm", "--dir", "kms-ca", "--prefix", "/kms/other"]);
    assert!(!out.status.success());
    assert!(
        tools::output_text(&out).contains("this CA's key is held in KMS"),
        "{}",
        tools::output_text(&out)
    );
    std::fs::copy(
        dir.path().join("root/ca-key.pem"),
        dir.path().join("kms-ca/ca-key.pem"),
    )
    .unwrap();
    let out = run(&["publish-ssm", "--dir", "kms-ca", "--prefix", "/kms/third"]);
    assert!(!out.status.success());
    assert!(
        tools::output_text(&out).contains("keeps no key on disk"),
        "{}",
        tools::output_text(&out)
    );

    // The signer with certificates from Parameter Store and the key in KMS.
    let config = Config::from_toml(
        ConfigOrigin::File("kms.toml".into()),
        &format!("[cas.default]\nsource = \"kms:{key_id}\"\nchain = \"ssm:/kms/ca\"\ndelegate = \"1h\"\n[profiles.default]\n"),
        &std::collections::BTreeMap::<String, String>::new(),
        &[],
    )
    .unwrap();
    let state = kms_state(config, &moto.settings(), Arc::new(session_ca::SystemClock)).await;
    let reply = issue_one(&state, KeyType::EcdsaP256).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(chain_of(&reply.json()).len(), 3, "delegated, KMS CA, root");
}

#[test]
#[ignore = "needs cargo-lambda and moto_server; run scripts/test"]
fn the_lambda_runtime_loop_signs_with_a_kms_backed_ca() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let key_id = runtime.block_on(async {
        let key_id = kms_ca(&moto, KeySpec::EccNistP256, dir.path()).await;
        // The certificates in Parameter Store, as publish-ssm puts them.
        let ssm = moto.client().await;
        for (name, file) in [
            ("/lambda-kms/cert", "ca-cert.pem"),
            ("/lambda-kms/chain", "chain.pem"),
        ] {
            ssm.put_parameter()
                .name(name)
                .value(std::fs::read_to_string(dir.path().join(file)).unwrap())
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await
                .unwrap();
        }
        key_id
    });
    let (_emulator, port) = tools::start_lambda_emulator();
    let function = tools::lambda_function(Path::new(BIN), port)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ENDPOINT_URL_SSM", moto.url())
        .env("AWS_ENDPOINT_URL_KMS", moto.url())
        .env("SESSION_CA_CAS__DEFAULT__SOURCE", format!("kms:{key_id}"))
        .env("SESSION_CA_CAS__DEFAULT__CHAIN", "ssm:/lambda-kms")
        .env("SESSION_CA_CAS__DEFAULT__DELEGATE", "1h")
        .env("SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS", r#"["*"]"#)
        .env(
            "SESSION_CA_PROFILES__DEFAULT__SUBJECT",
            "O=Example Bank,C=NL",
        )
        .env_remove("SESSION_CA_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _function = tools::Guard(function);
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda/function_url_iam.json");
    for _ in 0..3 {
        let response = tools::lambda_invoke(port, &fixture);
        assert_eq!(response["statusCode"], 201, "{response}");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        let chain = chain_of(&body);
        assert_eq!(chain.len(), 2, "the delegated CA, then the KMS CA");
        let der =
            session_ca::read_certificate(body["certificate"].as_str().unwrap().as_bytes()).unwrap();
        verify_client_certificate(&der, chain.concat().as_bytes(), OffsetDateTime::now_utc())
            .unwrap();
    }
    let response = tools::lambda_invoke(
        port,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lambda/rest_v1_get_ca.json"),
    );
    assert_eq!(response["statusCode"], 200, "{response}");
}
