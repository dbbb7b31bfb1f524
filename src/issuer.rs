//! Signing: turning a certificate plan into a certificate, key and chain.
//!
//! The certificate profile follows RFC 5280; each field below cites its section.

use std::time::Duration;

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use session_ca_verify::encode_claim_value;
use time::OffsetDateTime;

use crate::ca::{SignError, SigningCa};
use crate::fmt::{hex, x5t_s256};
use crate::keys::{FreshKey, KeyError, SecretPem};
use crate::pkcs12::{self, KeyStoreFile, Pkcs12Error};
use crate::profile::{CertificatePlan, KeySource, SubjectAttribute};
use crate::request::CsrKey;
use crate::x509::{der_integer_content, dn_value, key_identifier, ordered_serial, RandomFailed};

/// Fraction of the lifetime after which clients should renew (as linkerd does).
pub const RENEW_AT_FRACTION: f64 = 0.7;

/// A freshly issued certificate and everything returned with it.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// Serial number, lower-case hex.
    pub serial_hex: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The private key, PKCS#8 PEM (none in CSR mode: the caller holds it).
    pub private_key_pem: Option<SecretPem>,
    /// The key, certificate and chain as PKCS#12, when the plan asked for it.
    pub pkcs12: Option<KeyStoreFile>,
    /// `notBefore`.
    pub not_before: OffsetDateTime,
    /// `notAfter`.
    pub not_after: OffsetDateTime,
    /// When the client should fetch a new certificate.
    pub renew_after: OffsetDateTime,
    /// The certified key's type (`ecdsa-p256`, `rsa-3072`, ...).
    pub key_type: &'static str,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
    /// The same SHA-256 as RFC 8705's `x5t#S256` (base64url, no padding).
    pub x5t_s256: String,
}

/// The validity window of a certificate issued at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`: `now - backdate`, never before the CA's own `notBefore`.
    pub not_before: OffsetDateTime,
    /// `notAfter`: `now + ttl`, never after the CA's own `notAfter`.
    pub not_after: OffsetDateTime,
    /// `now + 70%` of the time from `now` to `notAfter`.
    pub renew_after: OffsetDateTime,
}

/// Computes the validity window (RFC 5280 §4.1.2.5). The backdate covers
/// clock skew between client and backend without eating into the TTL; the
/// window is clamped to the issuer's so a certificate never outlives its CA.
pub fn validity(
    now: OffsetDateTime,
    ttl: Duration,
    backdate: Duration,
    ca_not_before: OffsetDateTime,
    ca_not_after: OffsetDateTime,
) -> Result<Validity, IssueError> {
    if now >= ca_not_after {
        return Err(IssueError::CaExpired(ca_not_after));
    }
    if now < ca_not_before {
        return Err(IssueError::CaNotYetValid(ca_not_before));
    }
    let not_before = (now - backdate).max(ca_not_before);
    let not_after = (now + ttl).min(ca_not_after);
    let usable = (not_after - now).whole_seconds() as f64;
    let renew_after = now + time::Duration::seconds((usable * RENEW_AT_FRACTION).floor() as i64);
    Ok(Validity {
        not_before,
        not_after,
        renew_after,
    })
}

/// The public key a certificate is made for.
enum SubjectKey<'a> {
    Fresh(FreshKey),
    Csr(&'a CsrKey),
}

impl PublicKeyData for SubjectKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        match self {
            SubjectKey::Fresh(key) => key.der_bytes(),
            SubjectKey::Csr(key) => key.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SubjectKey::Fresh(key) => key.algorithm(),
            SubjectKey::Csr(key) => key.algorithm(),
        }
    }
}

/// Signs the certificate described by `plan` with `ca`, for a fresh key or
/// the CSR's key as the plan says, when `ca`'s key is in this process (file
/// and Parameter Store CAs, and KMS-delegated ones); a CA whose key signs in
/// KMS directly is refused with [`IssueError::Signing`]. [`issue_async`] signs
/// with every CA.
pub fn issue(
    ca: &SigningCa,
    plan: &CertificatePlan,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    let draft = Draft::new(ca, plan, now)?;
    let cert = ca
        .sign_in_memory(&draft.params, &draft.key)
        .map_err(IssueError::from)?;
    draft.finish(cert, ca, plan)
}

/// [`issue`] for every CA: a key in KMS signs with one awaited `Sign` call
/// (a key in memory signs at once, as in [`issue`]).
pub async fn issue_async(
    ca: &SigningCa,
    plan: &CertificatePlan,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    let draft = Draft::new(ca, plan, now)?;
    let cert = ca
        .sign(&draft.params, &draft.key)
        .await
        .map_err(IssueError::from)?;
    draft.finish(cert, ca, plan)
}

/// A certificate ready to be signed: its parameters and subject key.
struct Draft<'p> {
    params: CertificateParams,
    key: SubjectKey<'p>,
    validity: Validity,
    serial_hex: String,
}

impl<'p> Draft<'p> {
    fn new(
        ca: &SigningCa,
        plan: &'p CertificatePlan,
        now: OffsetDateTime,
    ) -> Result<Draft<'p>, IssueError> {
        let validity = validity(now, plan.ttl, plan.backdate, ca.not_before, ca.not_after)?;
        let key = match &plan.key {
            KeySource::Generate(key_type) => SubjectKey::Fresh(
                key_type
                    .generate_fresh()
                    .map_err(IssueError::KeyGeneration)?,
            ),
            KeySource::Csr(csr) => SubjectKey::Csr(csr),
        };

        let mut params = CertificateParams::default();
        let serial = ordered_serial().map_err(IssueError::Random)?;
        let serial_hex = hex(&der_integer_content(&serial.to_bytes()));
        params.serial_number = Some(serial);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;

        // §4.1.2.6: the profile's fixed attributes, then CN = session id.
        let mut subject = DistinguishedName::new();
        for (attribute, value) in &plan.subject {
            let ty = match attribute {
                SubjectAttribute::Country => DnType::CountryName,
                SubjectAttribute::State => DnType::StateOrProvinceName,
                SubjectAttribute::Locality => DnType::LocalityName,
                SubjectAttribute::Organization => DnType::OrganizationName,
                SubjectAttribute::OrganizationalUnit => DnType::OrganizationalUnitName,
            };
            subject.push(ty.clone(), dn_value(&ty, value));
        }
        subject.push(
            DnType::CommonName,
            dn_value(&DnType::CommonName, &plan.session_id),
        );
        params.distinguished_name = subject;

        // §4.2.1.9: BasicConstraints cA FALSE, marked critical.
        params.is_ca = IsCa::ExplicitNoCa;
        // §4.2.1.3: digitalSignature only (critical); §4.2.1.12: clientAuth.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        // §4.2.1.1: AKI from the CA's SKI; §4.2.1.2: SKI by method 1 of RFC 7093.
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = key_identifier(key.der_bytes());
        // §4.2.1.6: optional URI SAN; the template expansion percent-encodes, so it is IA5.
        if let Some(uri) = &plan.uri_san {
            let ia5 = uri
                .as_str()
                .try_into()
                .map_err(|_| IssueError::UriSanNotIa5)?;
            params.subject_alt_names = vec![SanType::URI(ia5)];
        }
        // §4.2.1.13: where the issuing CA's CRL is, when the profile says.
        if let Some(url) = &plan.crl_url {
            params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec![url.clone()],
            }];
        }
        // Claims: non-critical private extensions (§4.2), one per claim.
        params.custom_extensions = plan
            .extensions
            .iter()
            .map(|(oid, text)| {
                let mut ext =
                    CustomExtension::from_oid_content(oid.arcs(), encode_claim_value(text));
                ext.set_criticality(false);
                ext
            })
            .collect();

        Ok(Draft {
            params,
            key,
            validity,
            serial_hex,
        })
    }

    fn finish(
        self,
        cert: rcgen::Certificate,
        ca: &SigningCa,
        plan: &CertificatePlan,
    ) -> Result<IssuedCertificate, IssueError> {
        let Draft {
            key,
            validity,
            serial_hex,
            ..
        } = self;
        let der = cert.der().to_vec();
        let fingerprint = crate::crypto::sha256(&der);
        let fresh = match &key {
            SubjectKey::Fresh(fresh) => Some(fresh),
            SubjectKey::Csr(_) => None,
        };
        let pkcs12 = match fresh {
            Some(fresh) if plan.pkcs12 => {
                let chain: Vec<&[u8]> = ca.chain_der.iter().map(|c| c.as_ref()).collect();
                Some(
                    pkcs12::key_store(fresh.pkcs8_der(), &der, &chain)
                        .map_err(IssueError::Pkcs12)?,
                )
            }
            _ => None,
        };
        Ok(IssuedCertificate {
            serial_hex,
            certificate_pem: cert.pem(),
            certificate_der: der,
            private_key_pem: fresh.map(FreshKey::private_key_pem),
            pkcs12,
            not_before: validity.not_before,
            not_after: validity.not_after,
            renew_after: validity.renew_after,
            key_type: plan.key.key_type_name(),
            fingerprint_sha256: hex(fingerprint.as_ref()),
            x5t_s256: x5t_s256(fingerprint.as_ref()),
        })
    }
}

/// Errors while issuing. The causes of the internal ones are kept for the
/// log; the caller only ever sees a generic 500.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The CA's certificate has expired; nothing can be issued.
    #[error("the signing CA expired at {0}")]
    CaExpired(OffsetDateTime),
    /// The CA's certificate is not valid yet.
    #[error("the signing CA is not valid before {0}")]
    CaNotYetValid(OffsetDateTime),
    /// The key generator failed.
    #[error("key generation failed: {0}")]
    KeyGeneration(#[source] KeyError),
    /// The CSPRNG failed while making the serial number.
    #[error("cannot make a serial number: {0}")]
    Random(#[source] RandomFailed),
    /// The expanded URI SAN template is not IA5 text (the expansion percent-encodes, so it should be).
    #[error("the URI SAN is not IA5 text")]
    UriSanNotIa5,
    /// rcgen or the CA's signing key failed to sign the certificate.
    #[error("signing the certificate failed: {0}")]
    Signing(#[source] SignError),
    /// The CA key's holder (KMS) did not sign: throttled, disabled, unreachable.
    #[error("{0}")]
    KeyUnavailable(#[source] crate::ca::kms::KmsSignError),
    /// The PKCS#12 key store could not be written.
    #[error("writing the PKCS#12 key store failed: {0}")]
    Pkcs12(#[source] Pkcs12Error),
}

impl From<SignError> for IssueError {
    fn from(e: SignError) -> Self {
        match e {
            SignError::Kms(e) => IssueError::KeyUnavailable(e),
            other => IssueError::Signing(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_clamped_and_renewal_is_at_70_percent() {
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        let ca_from = now - time::Duration::days(1);
        let v = validity(
            now,
            Duration::from_secs(300),
            Duration::from_secs(30),
            ca_from,
            now + time::Duration::days(1),
        )
        .unwrap();
        assert_eq!(v.not_before, now - time::Duration::seconds(30));
        assert_eq!(v.not_after, now + time::Duration::seconds(300));
        assert_eq!(v.renew_after, now + time::Duration::seconds(210));
        let v = validity(
            now,
            Duration::from_secs(300),
            Duration::from_secs(30),
            now - time::Duration::seconds(5),
            now + time::Duration::seconds(100),
        )
        .unwrap();
        assert_eq!(v.not_before, now - time::Duration::seconds(5));
        assert_eq!(v.not_after, now + time::Duration::seconds(100));
        assert_eq!(v.renew_after, now + time::Duration::seconds(70));
        assert!(matches!(
            validity(now, Duration::from_secs(1), Duration::ZERO, ca_from, now),
            Err(IssueError::CaExpired(_))
        ));
        assert!(matches!(
            validity(
                now,
                Duration::from_secs(1),
                Duration::ZERO,
                now + time::Duration::seconds(1),
                now + time::Duration::days(1)
            ),
            Err(IssueError::CaNotYetValid(_))
        ));
    }
}
