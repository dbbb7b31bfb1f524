//! A checked CA, ready to sign: the checks rcgen does not do (CA:TRUE,
//! keyCertSign, key matches certificate, chain, validity, a signed
//! self-test), and the CA key behind the [`CaKey`] trait so a key held
//! elsewhere (a KMS) can sign.

use std::fmt;
use std::sync::Arc;

use rcgen::{Certificate, CertificateParams, Issuer, KeyPair, PublicKeyData, SignatureAlgorithm};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{CaError, CaMaterial};
use crate::x509::{random_serial, to_pem};

/// The CA's private key, wherever it is held. A key in memory (file and
/// Parameter Store CAs) is an rcgen [`KeyPair`]; a remote signer implements
/// [`rcgen::SigningKey`] and this trait to sign certificates without the
/// key ever being in this process.
pub trait CaKey: rcgen::SigningKey + Send + Sync {
    /// Where the key is held, for logs: `memory`, or a remote key's name.
    fn holder(&self) -> String;
}

impl CaKey for KeyPair {
    fn holder(&self) -> String {
        "memory".into()
    }
}

/// A shared [`CaKey`], the signing key rcgen's [`Issuer`] holds.
#[derive(Clone)]
pub struct SharedCaKey(Arc<dyn CaKey>);

impl rcgen::SigningKey for SharedCaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

impl PublicKeyData for SharedCaKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

/// A checked CA, ready to sign.
pub struct SigningCa {
    /// The configured name.
    pub name: String,
    issuer: Issuer<'static, SharedCaKey>,
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
}

impl fmt::Debug for SigningCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningCa")
            .field("name", &self.name)
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &"[secret key elided]")
            .finish()
    }
}

impl SigningCa {
    /// Checks material and builds a signer from it. `now` is used to refuse
    /// an expired or not-yet-valid CA.
    pub fn from_material(
        name: &str,
        material: &CaMaterial,
        now: OffsetDateTime,
    ) -> Result<SigningCa, CaError> {
        let key = KeyPair::from_pem(material.key_pem.expose()).map_err(|_| CaError::Invalid {
            origin: material.key_origin.clone(),
            reason: "not a PEM PKCS#8 private key of a supported type (ECDSA P-256/P-384, \
                     Ed25519 or RSA)"
                .into(),
        })?;

        let cert_der = first_certificate(&material.cert_pem, &material.cert_origin)?;
        let (not_before, not_after, subject) =
            check_ca_certificate(&cert_der, &key).map_err(|reason| CaError::Invalid {
                origin: material.cert_origin.clone(),
                reason,
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
        let chain_pem: Vec<String> = chain_der.iter().map(|der| to_pem(der)).collect();
        let chain_pem_bundle = chain_pem.concat();

        // No certificate may outlive any certificate of its chain.
        let (mut not_before, mut not_after) = (not_before, not_after);
        for der in &chain_der[1..] {
            let (_, cert) =
                X509Certificate::from_der(der.as_ref()).map_err(|e| CaError::Invalid {
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

        let key = SharedCaKey(Arc::new(key));
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|_| CaError::Invalid {
            origin: material.cert_origin.clone(),
            reason: "rcgen cannot use this certificate's subject as an issuer name".into(),
        })?;

        let ca = SigningCa {
            name: name.to_owned(),
            issuer,
            cert_der,
            chain_pem,
            chain_pem_bundle,
            chain_der,
            subject,
            not_before,
            not_after,
        };
        ca.self_test(now).map_err(|reason| CaError::Invalid {
            origin: material.cert_origin.clone(),
            reason,
        })?;
        Ok(ca)
    }

    /// Signs a throwaway client certificate and checks it the way a backend
    /// would: its issuer name must be the CA's subject byte for byte (rcgen
    /// re-encodes the name, which loses repeated attributes) and it must
    /// verify against the chain with rustls-webpki. This catches a broken
    /// chain, an EKU on the CA that excludes clientAuth, and name mismatches
    /// at load time instead of in every backend.
    fn self_test(&self, now: OffsetDateTime) -> Result<(), String> {
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
        let probe = params
            .signed_by(&probe_key, &self.issuer)
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
    /// this CA's key.
    pub fn sign(
        &self,
        params: &CertificateParams,
        subject_key: &impl PublicKeyData,
    ) -> Result<Certificate, rcgen::Error> {
        params.signed_by(subject_key, &self.issuer)
    }

    /// Where the CA key is held (`memory`, or a remote key's name).
    pub fn key_holder(&self) -> String {
        self.issuer.key().0.holder()
    }
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

/// Checks what rcgen does not: CA:TRUE, keyCertSign, and that `key` is the
/// certificate's key. Returns (not_before, not_after, subject).
fn check_ca_certificate(
    der: &CertificateDer<'_>,
    key: &KeyPair,
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
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err("does not match the CA private key (different public keys)".into());
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
