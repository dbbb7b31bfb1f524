//! CRLs made by OpenSSL, checked by the verifier, its rustls adapter and
//! `verify_forwarded`; replaced at run time; and (with `crl-fetch`) fetched
//! from a real HTTP server.

#[cfg(feature = "crl-fetch")]
mod fetch;
mod pki;

use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, SignatureScheme};
use rustls_pki_types::{CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use session_ca_verify::{FixedClock, Forwarded, Verifier, VerifyError, VerifyErrorKind};
use time::OffsetDateTime;

use pki::{crl_der, read, Pki};

pub(crate) const HOUR: Duration = Duration::from_secs(3600);

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A verifier trusting the PKI's root and issuing CA at `at`, with `crls` (PEM).
pub(crate) fn verifier(
    pki: &Pki,
    at: OffsetDateTime,
    crls: &[&str],
) -> Result<Verifier, VerifyError> {
    crls.iter()
        .fold(
            Verifier::builder()
                .ca_pem(pki.root.pem())
                .ca_pem(pki.issuing.pem())
                .clock(Arc::new(FixedClock::new(at))),
            |b, crl| b.crl_pem(crl),
        )
        .build()
}

/// A CRL of the issuing CA revoking the `revoked` certificate, fresh for a day.
pub(crate) fn revoking(pki: &Pki) -> String {
    pki.crl(
        &pki.issuing,
        &[&pki.revoked],
        now() - HOUR,
        now() + 24 * HOUR,
    )
}

pub(crate) fn assert_revoked(err: &VerifyError) {
    match err {
        VerifyError::Revoked {
            serial,
            issuer,
            reason,
            revoked_at,
        } => {
            assert_eq!(serial, "11");
            assert_eq!(issuer, "CN=Issuing");
            assert_eq!(*reason, Some("keyCompromise"));
            assert!(revoked_at.is_some());
        }
        other => panic!("not Revoked: {other:?}"),
    }
    assert_eq!(err.kind(), VerifyErrorKind::NotTrusted);
    assert!(
        err.to_string()
            .contains("(serial 11) was revoked by \"CN=Issuing\""),
        "{err}"
    );
}

/// A provider that only verifies signatures (this crate's rustls has no
/// provider of its own): the adapter needs one, the path check does not use it.
fn provider() -> Arc<CryptoProvider> {
    #[derive(Debug)]
    struct Nothing;
    impl SecureRandom for Nothing {
        fn fill(&self, _: &mut [u8]) -> Result<(), GetRandomFailed> {
            Err(GetRandomFailed)
        }
    }
    impl KeyProvider for Nothing {
        fn load_private_key(
            &self,
            _: PrivateKeyDer<'static>,
        ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
            Err(rustls::Error::General("no keys".into()))
        }
    }
    static MAPPING: &[(
        SignatureScheme,
        &[&dyn rustls_pki_types::SignatureVerificationAlgorithm],
    )] = &[(
        SignatureScheme::ECDSA_NISTP256_SHA256,
        webpki::ALL_VERIFICATION_ALGS,
    )];
    Arc::new(CryptoProvider {
        cipher_suites: Vec::new(),
        kx_groups: Vec::new(),
        signature_verification_algorithms: WebPkiSupportedAlgorithms {
            all: webpki::ALL_VERIFICATION_ALGS,
            mapping: MAPPING,
        },
        secure_random: &Nothing,
        key_provider: &Nothing,
    })
}

/// The rustls adapter's answer for `leaf`'s chain.
fn handshake(verifier: &Verifier, pki: &Pki, leaf: &std::path::Path) -> Result<(), rustls::Error> {
    let chain = pki.chain(leaf);
    let long_ago = UnixTime::since_unix_epoch(Duration::from_secs(1));
    verifier
        .rustls_client_verifier(&provider())
        .verify_client_cert(&chain[0], &chain[1..], long_ago)
        .map(|_| ())
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn a_revoked_certificate_is_refused_and_the_others_accepted() {
    let pki = Pki::new();
    let crl = revoking(&pki);
    let verifier = verifier(&pki, now(), &[&crl]).unwrap();
    assert_eq!(verifier.crls().len(), 1);
    let loaded = &verifier.crls().loaded()[0];
    assert_eq!((loaded.issuer.as_str(), loaded.revoked), ("CN=Issuing", 1));

    let session = verifier.verify(&pki.chain(&pki.good)).unwrap();
    assert_eq!(session.session_id.as_deref(), Some("s-1"));
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());
    assert_revoked(
        &verifier
            .verify_trust(&pki.chain(&pki.revoked)[0], &[])
            .unwrap_err(),
    );

    // The rustls adapter and forwarded certificates go the same way.
    handshake(&verifier, &pki, &pki.good).unwrap();
    assert_eq!(
        handshake(&verifier, &pki, &pki.revoked).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::Revoked)
    );
    verifier
        .verify_forwarded(Forwarded::ApiGatewayPem(&read(&pki.good)))
        .unwrap();
    let err = verifier
        .verify_forwarded(Forwarded::ApiGatewayPem(&read(&pki.revoked)))
        .unwrap_err();
    assert_revoked(&err);

    // The same CRL as DER, and next to the root's own CRL (which is not
    // consulted for a leaf's status, only for its issuer's).
    let root_crl = pki.crl(&pki.root, &[], now() - HOUR, now() + HOUR);
    let verifier = Verifier::builder()
        .ca_pem(format!("{}{}", pki.issuing.pem(), pki.root.pem()))
        .crl_der(CertificateRevocationListDer::from(crl_der(&crl)))
        .crl_pem(root_crl)
        .build()
        .unwrap();
    assert_eq!(verifier.crls().len(), 2);
    verifier.verify(&pki.chain(&pki.good)).unwrap();
    assert_revoked(&verifier.verify(&pki.chain(&pki.revoked)).unwrap_err());
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn foreign_forged_and_malformed_crls_are_refused_at_load() {
    let pki = Pki::new();
    let (last, next) = (now() - HOUR, now() + HOUR);
    let other = pki.other_ca("other", "/CN=Other");
    let impostor = pki.other_ca("impostor", "/CN=Issuing");
    let good_crl = revoking(&pki);
    let foreign = pki.crl(&other, &[], last, next);
    let forged = pki.crl(&impostor, &[&pki.revoked], last, next);
    let mut tampered = crl_der(&good_crl);
    let end = tampered.len() - 1;
    tampered[end] ^= 1;
    for (name, build, want) in [
        (
            "foreign",
            verifier(&pki, now(), &[&foreign]),
            "CRL 1: issued by \"CN=Other\", which is not one of the verifier's CAs",
        ),
        (
            "forged",
            verifier(&pki, now(), &[&forged]),
            "its signature does not verify with the key of the CA \"CN=Issuing\"",
        ),
        (
            "second of two",
            verifier(&pki, now(), &[&good_crl, &foreign]),
            "CRL 2: issued by \"CN=Other\"",
        ),
        (
            "not PEM",
            verifier(
                &pki,
                now(),
                &["-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n"],
            ),
            "malformed PEM",
        ),
        (
            "no CRL",
            verifier(&pki, now(), &[&pki.root.pem()]),
            "no PEM X509 CRL block",
        ),
        (
            "tampered",
            Verifier::builder()
                .ca_pem(pki.issuing.pem())
                .crl_der(CertificateRevocationListDer::from(tampered))
                .build(),
            "its signature does not verify",
        ),
        (
            "not a CRL",
            Verifier::builder()
                .ca_pem(pki.issuing.pem())
                .crl_der(CertificateRevocationListDer::from(
                    b"\x30\x03\x02\x01\x01".to_vec(),
                ))
                .build(),
            "not a CRL rustls-webpki accepts",
        ),
    ] {
        let err = build.unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::Misuse, "{name}: {err}");
        assert!(
            matches!(err, VerifyError::UnusableCrl { .. }),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn a_stale_crl_refuses_every_certificate_of_its_issuer() {
    let pki = Pki::new();
    let crl = pki.crl(&pki.issuing, &[&pki.revoked], now() - HOUR, now() + HOUR);
    // Two hours on, the CRL is past its nextUpdate. Loading a stale CRL is
    // allowed (time moves on after loading anyway); verifying against it is
    // not.
    let verifier = verifier(&pki, now() + 2 * HOUR, &[&crl]).unwrap();
    let err = verifier.verify(&pki.chain(&pki.good)).unwrap_err();
    assert!(matches!(err, VerifyError::StaleCrl { .. }), "{err:?}");
    assert_eq!(err.kind(), VerifyErrorKind::RevocationUnavailable);
    assert!(
        err.to_string()
            .contains("the CRL of \"CN=Issuing\" is stale"),
        "{err}"
    );
    assert!(matches!(
        handshake(&verifier, &pki, &pki.good).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::ExpiredRevocationListContext { .. })
    ));
    // The same CRL, earlier on the verifier's clock, is current.
    let earlier = verifier_at(&pki, now() + HOUR / 2, &crl);
    earlier.verify(&pki.chain(&pki.good)).unwrap();
}

fn verifier_at(pki: &Pki, at: OffsetDateTime, crl: &str) -> Verifier {
    verifier(pki, at, &[crl]).unwrap()
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn with_crls_loaded_a_leaf_whose_issuer_has_none_is_refused() {
    let pki = Pki::new();
    let root_crl = pki.crl(&pki.root, &[], now() - HOUR, now() + HOUR);
    let verifier = verifier(&pki, now(), &[&root_crl]).unwrap();
    let err = verifier.verify(&pki.chain(&pki.good)).unwrap_err();
    assert!(
        matches!(err, VerifyError::RevocationUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), VerifyErrorKind::RevocationUnavailable);
    assert_eq!(
        handshake(&verifier, &pki, &pki.good).unwrap_err(),
        rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus)
    );
    // Without any CRL, there is no revocation check.
    verifier.crls().replace(&[]).unwrap();
    verifier.verify(&pki.chain(&pki.revoked)).unwrap();
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn replacing_the_crls_takes_effect_on_every_clone_at_once() {
    let pki = Pki::new();
    let empty = pki.crl(&pki.issuing, &[], now() - 2 * HOUR, now() + HOUR);
    let verifier = verifier(&pki, now(), &[&empty]).unwrap();
    let clone = verifier.clone();
    let adapter = verifier.rustls_client_verifier(&provider());
    clone.verify(&pki.chain(&pki.revoked)).unwrap();

    let crl = revoking(&pki);
    verifier.crls().replace_pem(&crl).unwrap();
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());
    let chain = pki.chain(&pki.revoked);
    let at = UnixTime::since_unix_epoch(Duration::from_secs(1));
    assert!(adapter
        .verify_client_cert(&chain[0], &chain[1..], at)
        .is_err());
    clone.verify(&pki.chain(&pki.good)).unwrap();

    // A refused replacement keeps the CRLs in place.
    let impostor = pki.other_ca("impostor", "/CN=Issuing");
    let forged = pki.crl(&impostor, &[], now(), now() + HOUR);
    assert!(verifier.crls().replace_pem(&forged).is_err());
    assert!(verifier.crls().update(forged.as_bytes()).is_err());
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());

    // `update` refuses an older CRL of the same issuer (a replay), and
    // takes a newer one, DER or PEM, in place of the old.
    let err = verifier.crls().update(crl_der(&empty)).unwrap_err();
    assert!(err.to_string().contains("is older than the CRL"), "{err}");
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());
    let newer = pki.crl(&pki.issuing, &[&pki.good], now(), now() + HOUR);
    assert_eq!(verifier.crls().update(crl_der(&newer)).unwrap(), 1);
    assert_eq!(verifier.crls().len(), 1);
    clone.verify(&pki.chain(&pki.revoked)).unwrap();
    let err = clone.verify(&pki.chain(&pki.good)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Revoked { ref serial, .. } if serial == "10"),
        "{err:?}"
    );
    // Two CRLs with one thisUpdate (signed in the same second): the CRL
    // number says which is newer, so the older cannot be replayed, and of
    // the two given together only the newer is kept.
    let at = now() + Duration::from_secs(60);
    let older = pki.crl(&pki.issuing, &[], at, at + HOUR);
    let newest = pki.crl(&pki.issuing, &[&pki.revoked], at, at + HOUR);
    assert_eq!(verifier.crls().update(crl_der(&newest)).unwrap(), 1);
    let err = verifier.crls().update(crl_der(&older)).unwrap_err();
    assert!(err.to_string().contains("is older than the CRL"), "{err}");
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());
    verifier
        .crls()
        .replace_pem(format!("{newest}{older}"))
        .unwrap();
    assert_eq!(verifier.crls().len(), 1);
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());
    verifier
        .crls()
        .replace_pem(format!("{older}{newest}"))
        .unwrap();
    assert_revoked(&clone.verify(&pki.chain(&pki.revoked)).unwrap_err());

    // A root CRL joins the issuing CA's instead of replacing it.
    let root_crl = pki.crl(&pki.root, &[], now(), now() + HOUR);
    assert_eq!(verifier.crls().update(root_crl).unwrap(), 1);
    assert_eq!(verifier.crls().len(), 2);
    assert!(format!("{verifier:?}").contains("CN=Root"));
}

#[test]
#[ignore = "needs openssl; run scripts/test"]
fn a_verifier_that_requires_crls_refuses_everything_until_one_is_loaded() {
    let pki = Pki::new();
    let strict = Verifier::builder()
        .ca_pem(pki.root.pem())
        .ca_pem(pki.issuing.pem())
        .clock(Arc::new(FixedClock::new(now())))
        .require_crls()
        .build()
        .unwrap();
    let err = strict.verify(&pki.chain(&pki.good)).unwrap_err();
    assert!(
        matches!(err, VerifyError::RevocationUnknown { ref why, .. } if why.contains("require_crls")),
        "{err:?}"
    );
    strict.crls().replace_pem(revoking(&pki)).unwrap();
    strict.verify(&pki.chain(&pki.good)).unwrap();
    assert_revoked(&strict.verify(&pki.chain(&pki.revoked)).unwrap_err());
    // Without it, no CRL means no revocation check.
    verifier(&pki, now(), &[])
        .unwrap()
        .verify(&pki.chain(&pki.revoked))
        .unwrap();
}
