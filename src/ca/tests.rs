//! Tests of loading, checking and refreshing CAs.

use std::sync::Arc;
use std::time::Duration;

use rcgen::KeyPair;
use session_ca_verify::{FixedClock, SharedClock};
use time::OffsetDateTime;

use super::*;
use crate::ca::file::FileCaSource;
use crate::ca::init::{create_ca, InitOptions};
use crate::keys::{KeyType, SecretPem};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyUsagePurpose};
use time::Duration as TimeDuration;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn material(key: &KeyPair, cert_pem: String, chain: Option<String>) -> CaMaterial {
    CaMaterial {
        key: KeyMaterial::Pem(SecretPem::new(key.serialize_pem())),
        key_origin: "k.pem".into(),
        cert_pem,
        cert_origin: "c.pem".into(),
        chain_pem: chain,
        chain_origin: "chain.pem".into(),
    }
}

fn self_signed(key: &KeyPair, is_ca: IsCa, usages: Vec<KeyUsagePurpose>, days: i64) -> String {
    let mut params = CertificateParams::default();
    params.is_ca = is_ca;
    params.key_usages = usages;
    params.not_before = t0() - TimeDuration::days(1);
    params.not_after = t0() + TimeDuration::days(days);
    params.self_signed(key).unwrap().pem()
}

/// Loads a CA whose key is in memory (nothing is awaited but the checks).
fn load(material: &CaMaterial) -> Result<SigningCa, super::CaError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(SigningCa::from_material("default", material, t0()))
}

fn err(material: &CaMaterial) -> String {
    load(material).unwrap_err().to_string()
}

#[test]
fn a_proper_ca_loads_and_its_debug_hides_the_key() {
    let key = KeyPair::generate().unwrap();
    let pem = self_signed(
        &key,
        IsCa::Ca(BasicConstraints::Unconstrained),
        vec![KeyUsagePurpose::KeyCertSign],
        30,
    );
    let ca = load(&material(&key, pem, None)).unwrap();
    assert_eq!(ca.chain_der.len(), 1);
    assert_eq!(ca.not_after, t0() + TimeDuration::days(30));
    let shown = format!("{ca:?}");
    assert!(shown.contains("[secret key elided]"), "{shown}");
    assert!(!shown.contains("PRIVATE"), "{shown}");
}

#[test]
fn what_rcgen_does_not_check_is_refused_naming_the_file() {
    let key = KeyPair::generate().unwrap();
    let ca_ok = |days| {
        self_signed(
            &key,
            IsCa::Ca(BasicConstraints::Unconstrained),
            vec![KeyUsagePurpose::KeyCertSign],
            days,
        )
    };
    let cases = [
        (
            material(
                &key,
                self_signed(
                    &key,
                    IsCa::ExplicitNoCa,
                    vec![KeyUsagePurpose::KeyCertSign],
                    30,
                ),
                None,
            ),
            "c.pem: is not a CA certificate",
        ),
        (
            material(
                &key,
                self_signed(&key, IsCa::NoCa, vec![KeyUsagePurpose::KeyCertSign], 30),
                None,
            ),
            "c.pem: is not a CA certificate",
        ),
        (
            material(
                &key,
                self_signed(
                    &key,
                    IsCa::Ca(BasicConstraints::Unconstrained),
                    vec![KeyUsagePurpose::DigitalSignature],
                    30,
                ),
                None,
            ),
            "c.pem: its KeyUsage does not include keyCertSign",
        ),
        (
            material(
                &key,
                self_signed(&key, IsCa::Ca(BasicConstraints::Unconstrained), vec![], 30),
                None,
            ),
            "c.pem: has no KeyUsage extension",
        ),
        (
            material(&key, ca_ok(-0), None),
            "c.pem: the CA certificate expired",
        ),
        (
            material(&KeyPair::generate().unwrap(), ca_ok(30), None),
            "c.pem: does not match the CA private key (different public keys); the key is k.pem",
        ),
        (
            material(&key, "not pem".into(), None),
            "c.pem: holds no PEM CERTIFICATE block",
        ),
        (
            material(
                &key,
                ca_ok(30),
                Some(self_signed(
                    &KeyPair::generate().unwrap(),
                    IsCa::Ca(BasicConstraints::Unconstrained),
                    vec![KeyUsagePurpose::KeyCertSign],
                    30,
                )),
            ),
            "chain.pem: the chain must start with the issuing CA certificate",
        ),
    ];
    let with_eku = {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = t0() - TimeDuration::days(1);
        params.not_after = t0() + TimeDuration::days(30);
        params.self_signed(&key).unwrap().pem()
    };
    let cases = cases.into_iter().chain([(
        material(&key, with_eku, None),
        "c.pem: its ExtendedKeyUsage excludes clientAuth",
    )]);
    for (material, want) in cases {
        let got = err(&material);
        assert!(got.starts_with(want), "want {want:?}, got {got:?}");
    }
    let mut bad_key = material(&key, ca_ok(30), None);
    bad_key.key = KeyMaterial::Pem(SecretPem::new(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
    ));
    let got = err(&bad_key);
    assert!(
        got.starts_with("k.pem: not a PEM PKCS#8 private key"),
        "{got}"
    );
    assert!(
        !got.contains("AAAA"),
        "the key text never appears in errors"
    );
}

#[tokio::test]
async fn refresh_swaps_in_a_rotated_ca_and_keeps_the_last_good_one_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let options = InitOptions {
        dir: ca_dir.clone(),
        key_type: KeyType::EcdsaP256,
        subject: "CN=Rotating CA".into(),
        validity_days: 30,
        intermediate: false,
        path_len: 0,
        force: true,
    };
    create_ca(&options, t0() - TimeDuration::days(1)).unwrap();
    let clock: SharedClock = Arc::new(FixedClock::new(t0()));
    let source: Arc<dyn CaSource> = Arc::new(FileCaSource::new(ca_dir.clone()));
    let store = CaStore::from_sources(
        vec![("default".into(), source, Duration::from_secs(60))],
        &clock,
    )
    .await
    .unwrap();
    let first = store.get("default").unwrap();
    assert!(
        !store.refresh("default", &clock).await.unwrap(),
        "unchanged"
    );

    create_ca(&options, t0() - TimeDuration::hours(1)).unwrap();
    assert!(store.refresh("default", &clock).await.unwrap(), "rotated");
    let second = store.get("default").unwrap();
    assert_ne!(first.cert_der, second.cert_der);

    std::fs::write(ca_dir.join("ca-cert.pem"), "garbage").unwrap();
    let e = store.refresh("default", &clock).await.unwrap_err();
    assert!(e.to_string().contains("ca-cert.pem"), "{e}");
    assert_eq!(
        store.get("default").unwrap().cert_der,
        second.cert_der,
        "last good CA kept"
    );
}
