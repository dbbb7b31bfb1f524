//! A checked CA, ready to sign: the checks rcgen does not do (CA:TRUE,
//! keyCertSign, key matches certificate, chain, validity, a signed
//! self-test), whoever holds the key: this process (an rcgen [`KeyPair`])
//! or AWS KMS ([`super::kms::KmsKey`], signing in [`super::remote`]).

use std::fmt;
use std::sync::Arc;

use rcgen::{Certificate, CertificateParams, Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::kms::{KmsKey, KmsMode, KmsSignError};
use super::{remote, CaError, CaMaterial, KeyMaterial};
use crate::x509::{random_serial, to_pem};

/// Who holds a CA's key and how it signs, for `/healthz`, `inspect` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHolder {
    /// A key in this process's memory (file and Parameter Store CAs).
    Memory,
    /// A KMS key signing every certificate.
    KmsDirect {
        /// The key's ARN.
        arn: String,
    },
    /// An ephemeral issuing CA in memory, certified by a KMS key until `until`.
    KmsDelegated {
        /// The KMS key's ARN.
        arn: String,
        /// The end of the current delegation.
        until: OffsetDateTime,
    },
}

impl KeyHolder {
    /// `memory`, or `kms:ARN`.
    pub fn holder(&self) -> String {
        match self {
            KeyHolder::Memory => "memory".into(),
            KeyHolder::KmsDirect { arn } | KeyHolder::KmsDelegated { arn, .. } => {
                format!("kms:{arn}")
            }
        }
    }

    /// `in-memory`, `kms-direct` or `kms-delegated`.
    pub fn mode(&self) -> &'static str {
        match self {
            KeyHolder::Memory => "in-memory",
            KeyHolder::KmsDirect { .. } => "kms-direct",
            KeyHolder::KmsDelegated { .. } => "kms-delegated",
        }
    }
}

/// Where the signature of a certificate comes from. (One per loaded CA, so
/// the size difference of the variants costs nothing worth a `Box`.)
#[allow(clippy::large_enum_variant)]
enum Signer {
    /// An rcgen issuer with the key in memory.
    Local(Issuer<'static, KeyPair>),
    /// A KMS key, one `Sign` call per certificate.
    Kms(Arc<KmsKey>),
}

/// Why a certificate could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// rcgen could not build or sign it.
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    /// KMS did not sign.
    #[error("{0}")]
    Kms(#[from] KmsSignError),
    /// A synchronous signature was asked of a key that signs remotely.
    #[error("the CA key is held in {0} and signs asynchronously")]
    NotInMemory(String),
    /// The CA cannot sign a CRL for the certificates it issues.
    #[error("{0}")]
    NoCrl(String),
}

/// The checked certificates of a CA.
pub(super) struct CheckedCertificates {
    pub(super) cert_der: CertificateDer<'static>,
    pub(super) chain_der: Vec<CertificateDer<'static>>,
    pub(super) subject: String,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
}

/// A checked CA, ready to sign.
pub struct SigningCa {
    /// The configured name.
    pub name: String,
    signer: Signer,
    holder: KeyHolder,
    /// The issuing CA certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The chain (issuing CA first, then up to the root), PEM, one per certificate.
    pub chain_pem: Vec<String>,
    /// The chain as one PEM document, as served by `GET /v1/ca`.
    pub chain_pem_bundle: String,
    /// The chain, DER.
    pub chain_der: Vec<CertificateDer<'static>>,
    /// The issuing CA's subject, RFC 4514 text.
    pub subject: String,
    /// Start of the CA certificate's validity.
    pub not_before: OffsetDateTime,
    /// End of the CA certificate's validity; no issued certificate outlives it.
    pub not_after: OffsetDateTime,
    /// When a delegated CA is to be replaced by a fresh delegation.
    renew_by: Option<OffsetDateTime>,
    /// When the CA itself runs out (see [`SigningCa::expires`]).
    expires: OffsetDateTime,
    /// SHA-256 over the key's identity, the certificate and the chain this
    /// CA was built from: a reload of the same material keeps this CA.
    material_id: Vec<u8>,
}

impl fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCa")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("holder", &self.holder)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

/// The identity of `material`: what a reload compares.
fn material_id(material: &CaMaterial) -> Vec<u8> {
    let mut text = String::new();
    match &material.key {
        KeyMaterial::Pem(pem) => text.push_str(pem.expose()),
        KeyMaterial::Kms { key, mode } => {
            text.push_str(key.arn());
            text.push_str(&crate::fmt::hex(key.public_key_raw()));
            text.push_str(&format!("{mode:?}"));
        }
        KeyMaterial::None => {}
    }
    text.push('\n');
    text.push_str(&material.cert_pem);
    text.push('\n');
    text.push_str(material.chain_pem.as_deref().unwrap_or_default());
    crate::crypto::sha256(text.as_bytes()).as_ref().to_vec()
}

impl SigningCa {
    /// Checks material and builds a signer from it. `now` is used to refuse
    /// an expired or not-yet-valid CA. A KMS key in delegated mode is used
    /// once here, to certify a fresh issuing CA (see [`remote::delegate`]);
    /// in direct mode, once for the self-test.
    pub async fn from_material(
        name: &str,
        material: &CaMaterial,
        now: OffsetDateTime,
    ) -> Result<SigningCa, CaError> {
        let invalid_key = |reason: &str| CaError::Invalid {
            origin: material.key_origin.clone(),
            reason: reason.to_owned(),
        };
        let id = material_id(material);
        match &material.key {
            KeyMaterial::Pem(pem) => {
                let key = KeyPair::from_pem(pem.expose()).map_err(|_| {
                    invalid_key(
                        "not a PEM PKCS#8 private key of a supported type (ECDSA P-256/P-384, \
                         Ed25519 or RSA)",
                    )
                })?;
                let checked = check_material(material, key.public_key_raw(), now)?;
                let issuer = Issuer::from_ca_cert_der(&checked.cert_der, key).map_err(|_| {
                    CaError::Invalid {
                        origin: material.cert_origin.clone(),
                        reason: "rcgen cannot use this certificate's subject as an issuer name"
                            .into(),
                    }
                })?;
                let ca = SigningCa::assemble(
                    name,
                    Signer::Local(issuer),
                    KeyHolder::Memory,
                    checked,
                    None,
                    id,
                );
                ca.checked_by_self_test(now, &material.cert_origin).await
            }
            KeyMaterial::Kms { key, mode } => {
                let checked = check_material(material, key.public_key_raw(), now)?;
                let holder = KeyHolder::KmsDirect {
                    arn: key.arn().to_owned(),
                };
                let direct = SigningCa::assemble(
                    name,
                    Signer::Kms(Arc::clone(key)),
                    holder,
                    checked,
                    None,
                    id,
                );
                match mode {
                    KmsMode::Direct => {
                        direct
                            .checked_by_self_test(now, &material.cert_origin)
                            .await
                    }
                    KmsMode::Delegated(period) => {
                        remote::delegate(&direct, key, *period, now)
                            .await?
                            .checked_by_self_test(now, &material.key_origin)
                            .await
                    }
                }
            }
            KeyMaterial::None => Err(invalid_key(
                "no CA key: this source holds only certificates (configure the key's holder, \
                 e.g. source = \"kms:KEY\" with chain = ...)",
            )),
        }
    }

    /// A CA from checked parts.
    fn assemble(
        name: &str,
        signer: Signer,
        holder: KeyHolder,
        checked: CheckedCertificates,
        renew_by: Option<OffsetDateTime>,
        material_id: Vec<u8>,
    ) -> SigningCa {
        let chain_pem: Vec<String> = checked.chain_der.iter().map(|der| to_pem(der)).collect();
        SigningCa {
            expires: checked.not_after,
            name: name.to_owned(),
            signer,
            holder,
            cert_der: checked.cert_der,
            chain_pem_bundle: chain_pem.concat(),
            chain_pem,
            chain_der: checked.chain_der,
            subject: checked.subject,
            not_before: checked.not_before,
            not_after: checked.not_after,
            renew_by,
            material_id,
        }
    }

    /// A delegated issuing CA: a local issuer for `key` and the (already
    /// checked) certificates, renewed by `renew_by`, whose certifying CA
    /// expires at `expires`.
    pub(super) fn delegated(
        name: &str,
        key: KeyPair,
        holder: KeyHolder,
        checked: CheckedCertificates,
        (renew_by, expires): (OffsetDateTime, OffsetDateTime),
        material_id: Vec<u8>,
    ) -> Result<SigningCa, rcgen::Error> {
        let issuer = Issuer::from_ca_cert_der(&checked.cert_der, key)?;
        let mut ca = SigningCa::assemble(
            name,
            Signer::Local(issuer),
            holder,
            checked,
            Some(renew_by),
            material_id,
        );
        ca.expires = expires;
        Ok(ca)
    }

    /// Whether this CA was built from `material` and needs no renewal at
    /// `now`: a reload then keeps it (no rebuild, no KMS `Sign`).
    pub fn is_current_for(&self, material: &CaMaterial, now: OffsetDateTime) -> bool {
        self.material_id == material_id(material) && self.renew_by.is_none_or(|at| now < at)
    }

    /// When the CA must be rotated: the end of its certificate and chain,
    /// which its metrics and alarms report. For a KMS-delegated CA that is
    /// the KMS CA's end; its `not_after` is the current delegation's, which
    /// renews itself.
    pub fn expires(&self) -> OffsetDateTime {
        self.expires
    }

    /// When a delegated CA is due to be replaced by a fresh delegation.
    pub fn renew_by(&self) -> Option<OffsetDateTime> {
        self.renew_by
    }

    /// For a KMS-delegated CA, when its current delegation ends (its own
    /// `notAfter`); none for a CA that is not a delegation.
    pub fn delegation_ends(&self) -> Option<OffsetDateTime> {
        self.renew_by.map(|_| self.not_after)
    }

    /// Who holds the key and how it signs.
    pub fn holder(&self) -> &KeyHolder {
        &self.holder
    }

    /// The material identity (for a delegation to carry its KMS CA's).
    pub(super) fn material_id(&self) -> &[u8] {
        &self.material_id
    }

    async fn checked_by_self_test(
        self,
        now: OffsetDateTime,
        origin: &str,
    ) -> Result<SigningCa, CaError> {
        self.self_test(now)
            .await
            .map_err(|reason| CaError::Invalid {
                origin: origin.to_owned(),
                reason,
            })?;
        Ok(self)
    }

    /// Signs a throwaway client certificate and checks it the way a backend
    /// would: its issuer name must be the CA's subject byte for byte (rcgen
    /// re-encodes the name, which loses repeated attributes) and it must
    /// verify against the chain with rustls-webpki. This catches a broken
    /// chain, an EKU on the CA that excludes clientAuth, and name mismatches
    /// at load time instead of in every backend.
    async fn self_test(&self, now: OffsetDateTime) -> Result<(), String> {
        let probe_key =
            rcgen::KeyPair::generate().map_err(|_| "key generation failed".to_owned())?;
        let mut params = rcgen::CertificateParams::default();
        params.serial_number = Some(random_serial().map_err(|e| e.to_string())?);
        params.not_before = (now - time::Duration::seconds(1)).max(self.not_before);
        params.not_after = (now + time::Duration::minutes(1)).min(self.not_after);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "session-ca self-test");
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let probe = self
            .sign(&params, &probe_key)
            .await
            .map_err(|e| format!("cannot sign a test certificate with this CA: {e}"))?;
        let (_, parsed) = X509Certificate::from_der(probe.der().as_ref())
            .map_err(|_| "the test certificate does not parse".to_owned())?;
        let (_, ca) = X509Certificate::from_der(self.cert_der.as_ref())
            .map_err(|_| "the CA certificate does not parse".to_owned())?;
        if parsed.issuer().as_raw() != ca.subject().as_raw() {
            return Err(
                "certificates signed with this CA would not name it as their issuer \
                        exactly (its subject has repeated or multi-valued attributes that \
                        cannot be reproduced); re-issue the CA with a simple subject"
                    .into(),
            );
        }
        crate::inspect::verify_client_certificate(probe.der(), self.chain_pem_bundle.as_bytes(), now)
            .map_err(|e| format!("a test client certificate signed with this CA does not verify against the chain: {e}"))
    }

    /// Signs the certificate described by `params` for `subject_key` with
    /// this CA's key: in memory, or with one KMS `Sign` call.
    pub async fn sign(
        &self,
        params: &CertificateParams,
        subject_key: &impl PublicKeyData,
    ) -> Result<Certificate, SignError> {
        match &self.signer {
            Signer::Local(issuer) => Ok(params.signed_by(subject_key, issuer)?),
            Signer::Kms(key) => remote::sign(&self.cert_der, key, params, subject_key).await,
        }
    }

    /// [`sign`](Self::sign) for a key in memory, without an async context;
    /// a KMS-held key is refused with [`SignError::NotInMemory`].
    pub fn sign_in_memory(
        &self,
        params: &CertificateParams,
        subject_key: &impl PublicKeyData,
    ) -> Result<Certificate, SignError> {
        match &self.signer {
            Signer::Local(issuer) => Ok(params.signed_by(subject_key, issuer)?),
            Signer::Kms(_) => Err(SignError::NotInMemory(self.holder.holder())),
        }
    }

    /// Signs the CRL `params` describes, as the issuer of this CA's
    /// certificates: in memory, or with one KMS `Sign` call. A
    /// KMS-delegated CA cannot: each instance certifies its own issuing key
    /// and holds it alone, so no one CRL issuer covers the certificates of
    /// a fleet; [`SignError::NoCrl`] says so.
    pub async fn sign_crl(
        &self,
        params: &rcgen::CertificateRevocationListParams,
    ) -> Result<rcgen::CertificateRevocationList, SignError> {
        self.can_sign_crl()?;
        match &self.signer {
            Signer::Local(issuer) => Ok(params.signed_by(issuer)?),
            Signer::Kms(key) => remote::sign_crl(&self.cert_der, key, params).await,
        }
    }

    /// Whether this CA can sign a CRL at all, asked before any work is
    /// done for one: not a KMS-delegated CA (see [`sign_crl`](Self::sign_crl)).
    pub fn can_sign_crl(&self) -> Result<(), SignError> {
        match &self.holder {
            KeyHolder::KmsDelegated { .. } => Err(SignError::NoCrl(format!(
                "CA {:?} signs with a delegated issuing key that each instance makes for \
                 itself, so no single CRL covers its certificates; revocation is enforced at \
                 issuance (403 revoked) and its certificates expire within minutes. Use \
                 kms direct custody (no `delegate`) for CRLs",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    /// Where the CA key is held (`memory`, or `kms:ARN`).
    pub fn key_holder(&self) -> String {
        self.holder.holder()
    }
}

/// Why a CA certificate and its key do not belong together.
const KEY_MISMATCH: &str = "does not match the CA private key (different public keys)";

/// Checks the certificate and chain of `material` for a key whose public
/// half is `public_key_raw`: CA:TRUE, keyCertSign, EKU, SKI, the key, the
/// chain's order and EKUs, and every certificate's validity at `now`.
pub(super) fn check_material(
    material: &CaMaterial,
    public_key_raw: &[u8],
    now: OffsetDateTime,
) -> Result<CheckedCertificates, CaError> {
    let cert_der = first_certificate(&material.cert_pem, &material.cert_origin)?;
    let (not_before, not_after, subject) = check_ca_certificate(&cert_der, public_key_raw)
        .map_err(|reason| CaError::Invalid {
            origin: material.cert_origin.clone(),
            // Name the key too (a file, a parameter, a KMS key), which may
            // be the one that is wrong.
            reason: if reason == KEY_MISMATCH {
                format!("{reason}; the key is {}", material.key_origin)
            } else {
                reason
            },
        })?;
    if not_after <= now {
        return Err(CaError::Invalid {
            origin: material.cert_origin.clone(),
            reason: format!("the CA certificate expired at {not_after}"),
        });
    }
    if not_before > now {
        return Err(CaError::Invalid {
            origin: material.cert_origin.clone(),
            reason: format!("the CA certificate is not valid before {not_before}"),
        });
    }
    let chain_der = match &material.chain_pem {
        None => vec![cert_der.clone()],
        Some(pem) => {
            let chain = all_certificates(pem, &material.chain_origin)?;
            if chain.first() != Some(&cert_der) {
                return Err(CaError::Invalid {
                    origin: material.chain_origin.clone(),
                    reason: "the chain must start with the issuing CA certificate".into(),
                });
            }
            chain
        }
    };
    // No certificate may outlive any certificate of its chain.
    let (mut not_before, mut not_after) = (not_before, not_after);
    for der in &chain_der[1..] {
        let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| CaError::Invalid {
            origin: material.chain_origin.clone(),
            reason: format!("a certificate does not parse as X.509: {e}"),
        })?;
        if !eku_allows_client_auth(&cert).unwrap_or(false) {
            return Err(CaError::Invalid {
                origin: material.chain_origin.clone(),
                reason: format!("{}: {EKU_EXCLUDES_CLIENT_AUTH}", cert.subject()),
            });
        }
        not_before = not_before.max(cert.validity().not_before.to_datetime());
        not_after = not_after.min(cert.validity().not_after.to_datetime());
    }
    if not_after <= now || not_before > now {
        return Err(CaError::Invalid {
            origin: material.chain_origin.clone(),
            reason: format!(
                "a certificate of the chain is not valid now (the chain is valid from \
                 {not_before} to {not_after})"
            ),
        });
    }
    Ok(CheckedCertificates {
        cert_der,
        chain_der,
        subject,
        not_before,
        not_after,
    })
}

fn first_certificate(pem: &str, origin: &str) -> Result<CertificateDer<'static>, CaError> {
    all_certificates(pem, origin)?
        .into_iter()
        .next()
        .ok_or_else(|| CaError::Invalid {
            origin: origin.to_owned(),
            reason: "holds no PEM CERTIFICATE block".into(),
        })
}

fn all_certificates(pem: &str, origin: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaError::Invalid {
            origin: origin.to_owned(),
            reason: format!("malformed PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CaError::Invalid {
            origin: origin.to_owned(),
            reason: "holds no PEM CERTIFICATE block".into(),
        });
    }
    for cert in &certs {
        X509Certificate::from_der(cert.as_ref()).map_err(|e| CaError::Invalid {
            origin: origin.to_owned(),
            reason: format!("a certificate does not parse as X.509: {e}"),
        })?;
    }
    Ok(certs)
}

/// Checks what rcgen does not: CA:TRUE, keyCertSign, and that
/// `public_key_raw` is the certificate's key. Returns (not_before, not_after, subject).
fn check_ca_certificate(
    der: &CertificateDer<'_>,
    public_key_raw: &[u8],
) -> Result<(OffsetDateTime, OffsetDateTime, String), String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("does not parse as X.509: {e}"))?;
    // RFC 5280 §4.2.1.9: only certificates with cA TRUE may sign certificates.
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => return Err("is not a CA certificate (BasicConstraints cA is not TRUE)".into()),
        Err(e) => return Err(format!("has a malformed BasicConstraints extension: {e}")),
    }
    // RFC 5280 §4.2.1.3: keyCertSign must be set for a key that signs certificates.
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => {}
        Ok(Some(_)) => return Err("its KeyUsage does not include keyCertSign".into()),
        Ok(None) => return Err("has no KeyUsage extension (keyCertSign is required)".into()),
        Err(e) => return Err(format!("has a malformed KeyUsage extension: {e}")),
    }
    if !eku_allows_client_auth(&cert)? {
        return Err(EKU_EXCLUDES_CLIENT_AUTH.into());
    }
    // RFC 5280 §4.2.1.2: CA certificates carry a SubjectKeyIdentifier; issued
    // certificates point at it with their AuthorityKeyIdentifier.
    let ski = cert
        .iter_extensions()
        .filter(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .count();
    if ski != 1 {
        return Err(
            "must have exactly one SubjectKeyIdentifier extension (RFC 5280 §4.2.1.2)".into(),
        );
    }
    if cert.public_key().subject_public_key.data.as_ref() != public_key_raw {
        return Err(KEY_MISMATCH.into());
    }
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    Ok((not_before, not_after, cert.subject().to_string()))
}

const EKU_EXCLUDES_CLIENT_AUTH: &str = "its ExtendedKeyUsage excludes clientAuth, so verifiers \
     that apply EKU to the chain (openssl among them) would reject every certificate it issues";

/// Whether a CA certificate's EKU, if it has one, admits client certificates
/// (clientAuth or anyExtendedKeyUsage).
fn eku_allows_client_auth(cert: &X509Certificate<'_>) -> Result<bool, String> {
    match cert.extended_key_usage() {
        Ok(None) => Ok(true),
        Ok(Some(eku)) => Ok(eku.value.client_auth || eku.value.any),
        Err(e) => Err(format!("has a malformed ExtendedKeyUsage extension: {e}")),
    }
}
