//! The CA's signing material: where it comes from, checking it, and keeping it fresh.
//!
//! Material is loaded by a [`CaSource`], checked once into a [`SigningCa`]
//! (the checks rcgen does not do: CA:TRUE, keyCertSign, key matches
//! certificate, validity), and published through a [`CaStore`] that swaps
//! it atomically on refresh, so a request sees a whole CA, never half of one.

pub mod file;
pub mod init;
pub mod ssm;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rcgen::{Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::clock::SharedClock;
use crate::config::{CaSourceSpec, Config};
use crate::keys::SecretPem;

/// A boxed future, so [`CaSource`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Raw CA material as fetched from a source, before any checks.
#[derive(Debug, Clone)]
pub struct CaMaterial {
    /// PKCS#8 PEM private key of the issuing CA.
    pub key_pem: SecretPem,
    /// Where the key came from (a file path or parameter name), for messages.
    pub key_origin: String,
    /// PEM certificate of the issuing CA.
    pub cert_pem: String,
    /// Where the certificate came from.
    pub cert_origin: String,
    /// PEM chain from the issuing CA to the root, when there is one.
    pub chain_pem: Option<String>,
    /// Where the chain came from.
    pub chain_origin: String,
}

/// Somewhere CA material can be loaded from.
pub trait CaSource: Send + Sync + fmt::Debug {
    /// A human description of the source (`file:signer-key`).
    fn describe(&self) -> String;
    /// Fetches the current material.
    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>>;
}

/// A checked CA, ready to sign.
pub struct SigningCa {
    /// The configured name.
    pub name: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
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
        params.serial_number = Some(crate::issuer::random_serial().map_err(|e| e.to_string())?);
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
}

/// PEM text of one DER certificate (RFC 7468), LF line endings.
pub fn to_pem(der: &CertificateDer<'_>) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.as_ref().to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
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

/// One CA's slot: its source and the current checked material (none until
/// a first load succeeds).
#[derive(Debug)]
struct CaSlot {
    source: Arc<dyn CaSource>,
    refresh: Duration,
    current: ArcSwapOption<SigningCa>,
    /// Unix time at which [`CaStore::refresh_due`] next reloads this CA.
    next_due: AtomicI64,
    /// Set while one request reloads this CA, so others do not pile on.
    refreshing: AtomicBool,
}

/// Clears an "in progress" flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// What to do when a CA cannot be loaded at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLoadFailure {
    /// Refuse to start (a local server: the operator is watching).
    Fail,
    /// Start without it: requests get 503 `ca_unavailable`, `/healthz` says
    /// so, and the refresh task keeps retrying (Lambda: an init failure
    /// would surface as an opaque 502).
    ServeUnavailable,
}

/// Retry interval while a CA has never loaded.
const RETRY_UNLOADED: Duration = Duration::from_secs(5);
/// Retry interval after a failed reload of a CA that is serving.
const RETRY_LOADED: Duration = Duration::from_secs(30);
/// Longest a request waits for an on-request reload before using what it has.
pub const ON_REQUEST_REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// A loaded CA that expires sooner than a profile it signs for may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCa {
    /// The CA's configured name.
    pub name: String,
    /// Its certificate's (or chain's) `notAfter`.
    pub not_after: time::OffsetDateTime,
    /// The longest `max_ttl` among the profiles it signs for.
    pub max_ttl: Duration,
}

/// The loaded CAs that expire within the longest `max_ttl` of their
/// profiles at `now`: their certificates are being shortened to the CA's
/// expiry, and it is time to rotate them.
pub fn expiring_cas(config: &Config, cas: &CaStore, now: time::OffsetDateTime) -> Vec<ExpiringCa> {
    cas.all()
        .into_iter()
        .filter_map(|(name, ca)| {
            let ca = ca?;
            let max_ttl = config
                .profiles
                .values()
                .filter(|p| p.ca == name)
                .map(|p| p.max_ttl)
                .max()?;
            (ca.not_after < now + max_ttl).then(|| ExpiringCa {
                name,
                not_after: ca.not_after,
                max_ttl,
            })
        })
        .collect()
}

/// Every configured CA, each swappable atomically on refresh.
#[derive(Debug, Clone, Default)]
pub struct CaStore {
    slots: Arc<BTreeMap<String, CaSlot>>,
}

impl CaStore {
    /// Builds the source for each configured CA (one SSM client for all
    /// Parameter Store CAs) and loads each once.
    pub async fn load(
        config: &Config,
        clock: &SharedClock,
        ssm_settings: &ssm::SsmSettings,
        on_failure: OnLoadFailure,
    ) -> Result<CaStore, CaError> {
        let mut ssm_client = None;
        let mut sources = Vec::new();
        for (name, ca) in &config.cas {
            let source: Arc<dyn CaSource> = match &ca.source {
                CaSourceSpec::File(dir) => Arc::new(file::FileCaSource::new(dir.clone())),
                CaSourceSpec::Ssm(prefix) => {
                    if ssm_client.is_none() {
                        ssm_client = Some(ssm::client(ssm_settings).await);
                        tracing::debug!("SSM client built");
                    }
                    let client = ssm_client.clone().unwrap_or_else(|| unreachable!());
                    Arc::new(ssm::SsmCaSource::new(client, prefix.clone()))
                }
            };
            sources.push((name.clone(), source, ca.refresh));
        }
        Self::from_sources_with(sources, clock, on_failure).await
    }

    /// Loads CAs from explicit sources: (name, source, refresh interval),
    /// failing if any cannot be loaded.
    pub async fn from_sources(
        sources: Vec<(String, Arc<dyn CaSource>, Duration)>,
        clock: &SharedClock,
    ) -> Result<CaStore, CaError> {
        Self::from_sources_with(sources, clock, OnLoadFailure::Fail).await
    }

    /// Loads CAs from explicit sources with the given start-up policy.
    pub async fn from_sources_with(
        sources: Vec<(String, Arc<dyn CaSource>, Duration)>,
        clock: &SharedClock,
        on_failure: OnLoadFailure,
    ) -> Result<CaStore, CaError> {
        let mut slots = BTreeMap::new();
        for (name, source, refresh) in sources {
            let loaded = match source.load().await {
                Ok(material) => {
                    tracing::debug!(ca = %name, source = %source.describe(), "CA material fetched");
                    SigningCa::from_material(&name, &material, clock.now())
                }
                Err(e) => Err(e),
            };
            let current = match (loaded, on_failure) {
                (Ok(ca), _) => Some(Arc::new(ca)),
                (Err(e), OnLoadFailure::Fail) => return Err(e),
                (Err(e), OnLoadFailure::ServeUnavailable) => {
                    tracing::error!(ca = %name, source = %source.describe(), error = %e,
                        "CA not loaded; answering 503 ca_unavailable and retrying");
                    None
                }
            };
            let next_due = match &current {
                Some(_) => clock.now().unix_timestamp() + secs(refresh),
                None => clock.now().unix_timestamp(),
            };
            slots.insert(
                name,
                CaSlot {
                    source,
                    refresh,
                    current: ArcSwapOption::new(current),
                    next_due: AtomicI64::new(next_due),
                    refreshing: AtomicBool::new(false),
                },
            );
        }
        Ok(CaStore {
            slots: Arc::new(slots),
        })
    }

    /// The current material of CA `name`, if it is configured and loaded.
    pub fn get(&self, name: &str) -> Option<Arc<SigningCa>> {
        self.slots
            .get(name)
            .and_then(|slot| slot.current.load_full())
    }

    /// Every configured CA by name, with its material when loaded.
    pub fn all(&self) -> Vec<(String, Option<Arc<SigningCa>>)> {
        self.slots
            .iter()
            .map(|(name, s)| (name.clone(), s.current.load_full()))
            .collect()
    }

    /// Reloads CA `name` from its source now. On failure the last good
    /// material stays in service and the error is returned. Returns whether
    /// the material changed.
    pub async fn refresh(&self, name: &str, clock: &SharedClock) -> Result<bool, CaError> {
        let Some(slot) = self.slots.get(name) else {
            return Ok(false);
        };
        let material = slot.source.load().await?;
        let fresh = SigningCa::from_material(name, &material, clock.now())?;
        let changed = match slot.current.load().as_ref() {
            Some(current) => {
                current.cert_der != fresh.cert_der || current.chain_der != fresh.chain_der
            }
            None => true,
        };
        if changed {
            slot.current.store(Some(Arc::new(fresh)));
        }
        Ok(changed)
    }

    /// Reloads every CA whose refresh interval has passed (or that has never
    /// loaded), waiting at most [`ON_REQUEST_REFRESH_TIMEOUT`]. This is the
    /// refresh of Lambda mode: Lambda freezes the execution environment
    /// between events, so a background timer would fire late and its SSM
    /// call would be frozen mid-flight; a request is the only time the
    /// environment runs. On failure the current CA stays in service and the
    /// next attempt is a little later.
    pub async fn refresh_due(&self, clock: &SharedClock) {
        for (name, slot) in self.slots.iter() {
            let now = clock.now().unix_timestamp();
            if now < slot.next_due.load(Ordering::Acquire)
                || slot.refreshing.swap(true, Ordering::AcqRel)
            {
                continue;
            }
            // Cleared however this ends, even if the request future is dropped mid-reload.
            let _reloading = ClearOnDrop(&slot.refreshing);
            let loaded = slot.current.load().is_some();
            let outcome =
                tokio::time::timeout(ON_REQUEST_REFRESH_TIMEOUT, self.refresh(name, clock)).await;
            let source = slot.source.describe();
            let retry_in = match outcome {
                Ok(Ok(changed)) => {
                    if changed {
                        tracing::info!(ca = %name, %source, "CA material loaded; signing with it now");
                    }
                    slot.refresh
                }
                Ok(Err(e)) => {
                    tracing::warn!(ca = %name, %source, error = %e, loaded, "CA reload failed; keeping what is loaded");
                    if loaded {
                        RETRY_LOADED
                    } else {
                        RETRY_UNLOADED
                    }
                }
                Err(_) => {
                    tracing::warn!(ca = %name, %source, loaded, "CA reload timed out; keeping what is loaded");
                    if loaded {
                        RETRY_LOADED
                    } else {
                        RETRY_UNLOADED
                    }
                }
            };
            slot.next_due.store(
                clock.now().unix_timestamp() + secs(retry_in),
                Ordering::Release,
            );
        }
    }

    /// Spawns one task per CA that reloads it at its refresh interval (every
    /// few seconds while it has never loaded), logging, never panicking on,
    /// failures.
    pub fn spawn_refresh(&self, clock: SharedClock) -> Vec<tokio::task::JoinHandle<()>> {
        self.slots
            .iter()
            .map(|(name, slot)| {
                let store = self.clone();
                let name = name.clone();
                let clock = clock.clone();
                let every = slot.refresh;
                let source = slot.source.describe();
                tokio::spawn(async move {
                    loop {
                        let loaded = store.get(&name).is_some();
                        tokio::time::sleep(if loaded { every } else { every.min(RETRY_UNLOADED) })
                            .await;
                        match store.refresh(&name, &clock).await {
                            Ok(true) => tracing::info!(ca = %name, %source, "CA material loaded; signing with it now"),
                            Ok(false) => tracing::debug!(ca = %name, "CA material unchanged"),
                            Err(e) if loaded => tracing::warn!(ca = %name, %source, error = %e, "CA refresh failed; still signing with the last good CA"),
                            Err(e) => tracing::error!(ca = %name, %source, error = %e, "CA still not loaded"),
                        }
                    }
                })
            })
            .collect()
    }
}

/// Errors in loading or checking CA material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file or parameter could not be read.
    #[error("{origin}: cannot read: {reason}")]
    Unreadable {
        /// The file or parameter.
        origin: String,
        /// Why.
        reason: String,
    },
    /// Material was read but is not a usable CA.
    #[error("{origin}: {reason}")]
    Invalid {
        /// The file or parameter.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Creating a CA would overwrite existing files.
    #[error("{} already exists; pass --force to replace the CA in it", .0)]
    WouldOverwrite(String),
    /// Publishing would replace a CA already in Parameter Store.
    #[error("{0} already exist in Parameter Store; pass --overwrite to replace them")]
    AlreadyPublished(String),
    /// Creating a CA failed.
    #[error("cannot create the CA: {0}")]
    Create(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::file::FileCaSource;
    use crate::ca::init::{create_ca, InitOptions};
    use crate::clock::FixedClock;
    use crate::keys::KeyType;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyUsagePurpose};
    use time::Duration as TimeDuration;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
    }

    fn material(key: &KeyPair, cert_pem: String, chain: Option<String>) -> CaMaterial {
        CaMaterial {
            key_pem: SecretPem::new(key.serialize_pem()),
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

    fn err(material: &CaMaterial) -> String {
        SigningCa::from_material("default", material, t0())
            .unwrap_err()
            .to_string()
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
        let ca = SigningCa::from_material("default", &material(&key, pem, None), t0()).unwrap();
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
                "c.pem: does not match the CA private key",
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
        bad_key.key_pem =
            SecretPem::new("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into());
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
}
