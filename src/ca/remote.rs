//! Signing with a key held in AWS KMS, without blocking a thread.
//!
//! rcgen's [`rcgen::SigningKey::sign`] is synchronous and KMS answers over
//! the network, while Lambda mode runs one current-thread runtime. Instead
//! of blocking (`block_in_place` panics on a current-thread runtime; a
//! `spawn_blocking` thread calling `Handle::block_on` would hold a thread
//! per in-flight signature and depend on the main thread driving the I/O),
//! a certificate is signed in two passes over the same parameters:
//!
//! 1. rcgen encodes the certificate with a *capturing* key, which records
//!    the to-be-signed bytes rcgen hands it (and returns a placeholder);
//! 2. the signer awaits one KMS `Sign` on their digest, as any other I/O;
//! 3. rcgen encodes the certificate again with a *replaying* key, which
//!    returns KMS's signature for exactly those bytes and refuses any other.
//!
//! The encoding is deterministic (the serial, validity and key identifiers
//! are fixed in the parameters), so both passes produce the same
//! to-be-signed bytes; the replaying key checks that they do. The cost is
//! one more DER encoding, microseconds against KMS's milliseconds.
//!
//! [`delegate`] uses the same signing once per delegation period to certify
//! an ephemeral issuing CA whose key is generated here and kept in memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::kms::KmsKey;
use super::signing::{CheckedCertificates, KeyHolder, SignError, SigningCa};
use super::CaError;
use crate::x509::random_serial;

/// The signing key of one pass: pass 1 records the to-be-signed bytes and
/// returns a placeholder; pass 2 returns KMS's signature for exactly those
/// bytes and refuses any other.
pub(super) enum Pass<'k> {
    Capture {
        key: &'k KmsKey,
        tbs: Mutex<Option<Vec<u8>>>,
    },
    Replay {
        key: &'k KmsKey,
        tbs: Vec<u8>,
        signature: Vec<u8>,
    },
}

/// A [`Pass`] as rcgen takes a signing key (by value, for an [`Issuer`]).
#[derive(Clone, Copy)]
pub(super) struct PassKey<'p, 'k>(pub(super) &'p Pass<'k>);

impl PublicKeyData for PassKey<'_, '_> {
    fn der_bytes(&self) -> &[u8] {
        match self.0 {
            Pass::Capture { key, .. } | Pass::Replay { key, .. } => key.public_key_raw(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.0 {
            Pass::Capture { key, .. } | Pass::Replay { key, .. } => key.algorithm(),
        }
    }
}

impl SigningKey for PassKey<'_, '_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self.0 {
            Pass::Capture { tbs, .. } => {
                let mut tbs = tbs.lock().map_err(|_| rcgen::Error::RemoteKeyError)?;
                *tbs = Some(msg.to_vec());
                // A placeholder; this encoding is discarded.
                Ok(vec![0])
            }
            // The two passes disagree: never attach a signature to other bytes.
            Pass::Replay { tbs, signature, .. } if msg == tbs.as_slice() => Ok(signature.clone()),
            Pass::Replay { .. } => Err(rcgen::Error::RemoteKeyError),
        }
    }
}

/// Signs what `encode` encodes with the KMS key `key`, in the two passes
/// above: `encode` is called twice with the same parameters, first with a
/// capturing key, then with the replaying one.
pub(super) async fn sign_in_two_passes<T>(
    key: &KmsKey,
    encode: impl Fn(PassKey<'_, '_>) -> Result<T, rcgen::Error>,
) -> Result<T, SignError> {
    let capture = Pass::Capture {
        key,
        tbs: Mutex::new(None),
    };
    encode(PassKey(&capture))?;
    let Pass::Capture { tbs, .. } = capture else {
        unreachable!("built as Capture above")
    };
    let tbs = tbs
        .into_inner()
        .map_err(|_| rcgen::Error::RemoteKeyError)?
        .ok_or(rcgen::Error::RemoteKeyError)?;
    let signature = key.sign(&tbs).await?;
    let replay = Pass::Replay {
        key,
        tbs,
        signature,
    };
    Ok(encode(PassKey(&replay))?)
}

/// Signs the certificate `params` describes for `subject_key` with the KMS
/// key of the CA certificate `ca_cert_der`.
pub(super) async fn sign(
    ca_cert_der: &CertificateDer<'static>,
    key: &KmsKey,
    params: &CertificateParams,
    subject_key: &impl PublicKeyData,
) -> Result<Certificate, SignError> {
    sign_in_two_passes(key, |pass| {
        let issuer = Issuer::from_ca_cert_der(ca_cert_der, pass)?;
        params.signed_by(subject_key, &issuer)
    })
    .await
}

/// Signs the CRL `params` describes with the KMS key of the CA certificate
/// `ca_cert_der`.
pub(super) async fn sign_crl(
    ca_cert_der: &CertificateDer<'static>,
    key: &KmsKey,
    params: &rcgen::CertificateRevocationListParams,
) -> Result<rcgen::CertificateRevocationList, SignError> {
    sign_in_two_passes(key, |pass| {
        let issuer = Issuer::from_ca_cert_der(ca_cert_der, pass)?;
        params.signed_by(&issuer)
    })
    .await
}

/// How long before a delegated CA's own `notBefore` its validity starts, for
/// clock skew between this signer and the verifiers.
const DELEGATION_BACKDATE: Duration = Duration::from_secs(60);

/// Makes a fresh delegated issuing CA under `kms_ca` (a CA whose key is the
/// KMS key `key`): a P-256 key generated here and never written anywhere,
/// certified by one KMS `Sign` with pathLenConstraint 0, keyCertSign and
/// cRLSign, a clientAuth-only EKU, and a validity of `period` clamped to
/// the KMS CA's. Its chain is the delegated certificate followed by the KMS
/// CA's chain. It is due for renewal when two thirds of its validity from
/// `now` have passed, so leaves (clamped to its `notAfter`) keep most of
/// their lifetime.
pub(super) async fn delegate(
    kms_ca: &SigningCa,
    key: &Arc<KmsKey>,
    period: Duration,
    now: OffsetDateTime,
) -> Result<SigningCa, CaError> {
    let origin = format!("kms:{}", key.configured());
    let failed = |reason: String| CaError::Invalid {
        origin: origin.clone(),
        reason: format!("cannot make the delegated issuing CA: {reason}"),
    };
    let delegated_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string()))?;
    let mut params = CertificateParams::default();
    params.serial_number = Some(random_serial().map_err(|e| failed(e.to_string()))?);
    let not_before = (now - DELEGATION_BACKDATE).max(kms_ca.not_before);
    let not_after = (now + period).min(kms_ca.not_after);
    params.not_before = not_before;
    params.not_after = not_after;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, delegated_name(&kms_ca.name, now));
    params.distinguished_name = subject;
    // RFC 5280 §4.2.1.9: a CA that certifies only end entities.
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    // §4.2.1.3: keyCertSign and cRLSign.
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // §4.2.1.12 on a CA: what its leaves may be used for.
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = crate::x509::key_identifier(delegated_key.der_bytes());
    let cert = kms_ca
        .sign(&params, &delegated_key)
        .await
        .map_err(|e| failed(e.to_string()))?;

    let mut chain_der = vec![cert.der().clone()];
    chain_der.extend(kms_ca.chain_der.iter().cloned());
    let checked = CheckedCertificates {
        cert_der: cert.der().clone(),
        chain_der,
        subject: format!("CN={}", delegated_name(&kms_ca.name, now)),
        not_before,
        not_after,
    };
    let usable = not_after - now;
    let renew_by = now + usable * 2 / 3;
    let holder = KeyHolder::KmsDelegated {
        arn: key.arn().to_owned(),
        until: not_after,
    };
    tracing::info!(ca = %kms_ca.name, key = %key.arn(), until = %crate::fmt::rfc3339(not_after),
        "KMS certified a delegated issuing CA");
    SigningCa::delegated(
        &kms_ca.name,
        delegated_key,
        holder,
        checked,
        (renew_by, kms_ca.not_after),
        kms_ca.material_id().to_vec(),
    )
    .map_err(|e| failed(e.to_string()))
}

/// The delegated CA's common name: `NAME delegated UNIXTIME`, the CA name
/// shortened so that the whole stays within RFC 5280's 64 characters
/// (`ub-common-name`; a CA name may itself have 64).
fn delegated_name(ca: &str, now: OffsetDateTime) -> String {
    let suffix = format!(" delegated {}", now.unix_timestamp());
    let room = 64usize.saturating_sub(suffix.chars().count());
    format!("{}{suffix}", ca.chars().take(room).collect::<String>())
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    #[test]
    fn a_delegated_name_fits_rfc_5280() {
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        assert_eq!(
            super::delegated_name("payments", now),
            "payments delegated 1767225600"
        );
        let name = super::delegated_name(&"é".repeat(64), now);
        assert_eq!(name.chars().count(), 64);
        assert!(name.ends_with("é delegated 1767225600"), "{name}");
    }
}
