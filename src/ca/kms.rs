//! A CA key held in AWS KMS: an asymmetric `SIGN_VERIFY` key that never
//! leaves KMS's HSMs. [`KmsKey`] reads the key's public half and signs a
//! certificate's to-be-signed bytes with one `Sign` call (`MessageType =
//! DIGEST`: the SHA-256 or SHA-384 digest is computed here, so KMS sees 32
//! or 48 bytes, whatever the certificate's size). [`KmsCaSource`] loads a
//! KMS-backed CA: the CA certificate and chain from Parameter Store or a
//! directory, and the key from KMS, with the key's usage and spec checked.
//!
//! rcgen signs synchronously; KMS answers over the network. The signer does
//! not block a thread on it: see [`super::signing`] (the two passes).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use aws_sdk_kms::Client;
use rcgen::SignatureAlgorithm;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::{BoxFuture, CaError, CaMaterial, CaSource, KeyMaterial};
use crate::metrics::{Dependency, Metrics};

/// Builds a KMS client with the signer's timeouts and retries (those of
/// [`super::ssm::sdk_config`]: 1 s to connect, 2 s an attempt, 5 s an
/// operation, 3 attempts in the standard retry mode, which retries
/// `ThrottlingException`), on rustls and the build's crypto library.
/// Region, credentials and endpoint (`AWS_ENDPOINT_URL_KMS`) come from the
/// standard AWS environment unless `settings` overrides them.
pub async fn client(settings: &super::ssm::SsmSettings) -> Client {
    Client::new(&super::ssm::sdk_config(settings).await)
}

/// The key specs the signer signs with, and how.
fn algorithm_for(spec: &KeySpec) -> Option<(&'static SignatureAlgorithm, SigningAlgorithmSpec)> {
    Some(match spec {
        KeySpec::EccNistP256 => (
            &rcgen::PKCS_ECDSA_P256_SHA256,
            SigningAlgorithmSpec::EcdsaSha256,
        ),
        KeySpec::EccNistP384 => (
            &rcgen::PKCS_ECDSA_P384_SHA384,
            SigningAlgorithmSpec::EcdsaSha384,
        ),
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => (
            &rcgen::PKCS_RSA_SHA256,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        ),
        _ => return None,
    })
}

/// The key specs [`algorithm_for`] accepts, for messages.
pub const SUPPORTED_KEY_SPECS: &str =
    "ECC_NIST_P256, ECC_NIST_P384, RSA_2048, RSA_3072 or RSA_4096";

/// An asymmetric KMS key the CA signs with. Its `Debug` shows the key's ARN.
pub struct KmsKey {
    client: Client,
    /// The key id, ARN or alias as configured.
    configured: String,
    /// The key's ARN, as KMS names it.
    arn: String,
    /// The subject public key bits (what a certificate's SPKI carries).
    public_key_raw: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    signing_algorithm: SigningAlgorithmSpec,
    key_spec: KeySpec,
    /// Where each `Sign` call is reported.
    metrics: Metrics,
}

impl fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsKey")
            .field("arn", &self.arn)
            .field("key_spec", &self.key_spec)
            .finish_non_exhaustive()
    }
}

impl KmsKey {
    /// Reads `key_id`'s public key with `GetPublicKey` and checks that it is
    /// a `SIGN_VERIFY` key of a spec the signer signs with.
    pub async fn load(client: Client, key_id: &str) -> Result<KmsKey, CaError> {
        KmsKey::load_measured(client, key_id, Metrics::Off).await
    }

    /// [`load`](Self::load), reporting its `GetPublicKey` call and every
    /// later `Sign` call to `metrics`.
    pub async fn load_measured(
        client: Client,
        key_id: &str,
        metrics: Metrics,
    ) -> Result<KmsKey, CaError> {
        let origin = format!("kms:{key_id}");
        let started = Instant::now();
        let out = client.get_public_key().key_id(key_id).send().await;
        metrics.dependency_call(
            Dependency::Kms,
            "get_public_key",
            started.elapsed(),
            out.is_err(),
        );
        let out = out.map_err(|e| CaError::Unreadable {
            origin: origin.clone(),
            reason: describe(&e),
        })?;
        let invalid = |reason: String| CaError::Invalid {
            origin: origin.clone(),
            reason,
        };
        match out.key_usage() {
            Some(KeyUsageType::SignVerify) => {}
            other => {
                return Err(invalid(format!(
                    "the key's usage is {}, not SIGN_VERIFY: create an asymmetric signing key \
                     (KeyUsage SIGN_VERIFY, KeySpec {SUPPORTED_KEY_SPECS})",
                    other.map_or("unknown", KeyUsageType::as_str)
                )))
            }
        }
        // KeySpec, or the CustomerMasterKeySpec it replaced (same values),
        // which some endpoints (moto among them) still send alone.
        #[allow(deprecated)]
        let key_spec = out
            .key_spec()
            .cloned()
            .or_else(|| {
                out.customer_master_key_spec()
                    .map(|spec| KeySpec::from(spec.as_str()))
            })
            .ok_or_else(|| invalid("KMS did not say the key's spec".into()))?;
        let (algorithm, signing_algorithm) = algorithm_for(&key_spec).ok_or_else(|| {
            invalid(format!(
                "key spec {} is not one the signer signs with ({SUPPORTED_KEY_SPECS})",
                key_spec.as_str()
            ))
        })?;
        if !out.signing_algorithms().contains(&signing_algorithm) {
            return Err(invalid(format!(
                "the key does not offer the signing algorithm {}",
                signing_algorithm.as_str()
            )));
        }
        let spki = out
            .public_key()
            .ok_or_else(|| invalid("KMS returned no public key".into()))?;
        let (_, parsed) = SubjectPublicKeyInfo::from_der(spki.as_ref())
            .map_err(|e| invalid(format!("the public key does not parse: {e}")))?;
        Ok(KmsKey {
            arn: out.key_id().unwrap_or(key_id).to_owned(),
            configured: key_id.to_owned(),
            public_key_raw: parsed.subject_public_key.data.to_vec(),
            algorithm,
            signing_algorithm,
            key_spec,
            client,
            metrics,
        })
    }

    /// The key's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// The key id, ARN or alias as configured.
    pub fn configured(&self) -> &str {
        &self.configured
    }

    /// The key's spec (`ECC_NIST_P256`, ...).
    pub fn key_spec(&self) -> &str {
        self.key_spec.as_str()
    }

    /// The subject public key bits, as a certificate for this key carries them.
    pub fn public_key_raw(&self) -> &[u8] {
        &self.public_key_raw
    }

    /// The X.509 signature algorithm of this key's signatures.
    pub fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }

    /// Signs `message` (a certificate's to-be-signed bytes) with one KMS
    /// `Sign` call on its digest. The signature is in X.509's encoding
    /// (ECDSA: DER `Ecdsa-Sig-Value`; RSA: PKCS #1 v1.5).
    pub async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KmsSignError> {
        let digest = match self.signing_algorithm {
            SigningAlgorithmSpec::EcdsaSha384 => crate::crypto::sha384(message).as_ref().to_vec(),
            _ => crate::crypto::sha256(message).as_ref().to_vec(),
        };
        let started = Instant::now();
        let out = self
            .client
            .sign()
            .key_id(&self.arn)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(self.signing_algorithm.clone())
            .send()
            .await
            .map_err(|e| KmsSignError {
                key: self.arn.clone(),
                reason: describe(&e),
            })
            .and_then(|out| {
                out.signature()
                    .map(|blob| blob.as_ref().to_vec())
                    .ok_or_else(|| KmsSignError {
                        key: self.arn.clone(),
                        reason: "KMS returned no signature".into(),
                    })
            });
        self.metrics
            .dependency_call(Dependency::Kms, "sign", started.elapsed(), out.is_err());
        out
    }
}

impl rcgen::PublicKeyData for KmsKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key_raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// A KMS `Sign` call failed: the key and why (throttled, disabled, access
/// denied, unreachable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("KMS key {key} cannot sign: {reason}")]
pub struct KmsSignError {
    /// The key's ARN.
    pub key: String,
    /// Why, in words.
    pub reason: String,
}

/// A KMS error in words: what KMS said and what it means for the CA key.
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    let meaning = match error.code() {
        Some("DisabledException") => Some("the key is disabled"),
        Some("KMSInvalidStateException") => {
            Some("the key is not usable in its state (pending deletion or import)")
        }
        Some("NotFoundException") => Some("no such key"),
        Some("AccessDeniedException") => {
            Some("access denied: the key policy or IAM must allow kms:Sign and kms:GetPublicKey")
        }
        Some("ThrottlingException") => Some("throttled by KMS (the retries were used up)"),
        Some("InvalidKeyUsageException") => Some("the key's usage is not SIGN_VERIFY"),
        _ => None,
    };
    match (meaning, error) {
        (Some(meaning), _) => format!("{meaning} ({})", DisplayErrorContext(error)),
        (None, SdkError::TimeoutError(_)) => "KMS did not answer in time".into(),
        (None, SdkError::DispatchFailure(_)) => {
            format!("KMS is unreachable ({})", DisplayErrorContext(error))
        }
        (None, _) => DisplayErrorContext(error).to_string(),
    }
}

/// Where a KMS-backed CA's certificate and chain are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSpec {
    /// `file:DIR`: `DIR/ca-cert.pem` and optionally `DIR/chain.pem`.
    File(std::path::PathBuf),
    /// `ssm:/PREFIX`: `PREFIX/cert` and `PREFIX/chain` (no key parameter).
    Ssm(String),
}

/// How a KMS key signs leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsMode {
    /// Every certificate is signed by one KMS `Sign` call.
    Direct,
    /// KMS signs an ephemeral issuing CA valid this long, which signs leaves.
    Delegated(Duration),
}

/// Loads a KMS-backed CA: the certificate and chain from `chain`, the key
/// from KMS.
pub struct KmsCaSource {
    client: Client,
    key_id: String,
    certificates: Arc<dyn CaSource>,
    mode: KmsMode,
    metrics: Metrics,
}

impl fmt::Debug for KmsCaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsCaSource")
            .field("key_id", &self.key_id)
            .field("certificates", &self.certificates)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl KmsCaSource {
    /// A source signing with `key_id` in `mode`, its certificates read by
    /// `certificates` (a file or Parameter Store source in certificates-only mode).
    pub fn new(
        client: Client,
        key_id: String,
        certificates: Arc<dyn CaSource>,
        mode: KmsMode,
    ) -> Self {
        KmsCaSource {
            client,
            key_id,
            certificates,
            mode,
            metrics: Metrics::Off,
        }
    }

    /// The same source, its KMS calls reported to `metrics`.
    pub fn measured(self, metrics: Metrics) -> Self {
        KmsCaSource { metrics, ..self }
    }
}

impl CaSource for KmsCaSource {
    fn describe(&self) -> String {
        match self.mode {
            KmsMode::Direct => format!("kms:{} (direct)", self.key_id),
            KmsMode::Delegated(period) => format!(
                "kms:{} (delegated, {})",
                self.key_id,
                humantime::format_duration(period)
            ),
        }
    }

    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>> {
        Box::pin(async move {
            let (material, key) = tokio::join!(
                self.certificates.load(),
                KmsKey::load_measured(self.client.clone(), &self.key_id, self.metrics.clone())
            );
            let mut material = material?;
            material.key = KeyMaterial::Kms {
                key: Arc::new(key?),
                mode: self.mode,
            };
            material.key_origin = format!("kms:{}", self.key_id);
            Ok(material)
        })
    }
}
