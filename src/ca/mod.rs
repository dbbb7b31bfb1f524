//! The CA's signing material: where it comes from, checking it, and keeping it fresh.
//!
//! Material is loaded by a [`CaSource`], checked once into a [`SigningCa`]
//! (the checks rcgen does not do: CA:TRUE, keyCertSign, key matches
//! certificate, validity), and published through a [`CaStore`] that swaps
//! it atomically on refresh, so a request sees a whole CA, never half of one.
//! The key is held in this process ([`KeyMaterial::Pem`]: file and
//! Parameter Store CAs) or in AWS KMS ([`KeyMaterial::Kms`], [`kms`]).

pub mod file;
pub mod init;
pub mod kms;
pub mod kms_init;
mod remote;
mod signing;
mod spec;
pub mod ssm;
mod store;
#[cfg(test)]
mod tests;

pub use signing::{KeyHolder, SignError, SigningCa};
pub use spec::{CaConfig, CaSourceSpec};
pub use store::{CaStore, OnLoadFailure, ON_REQUEST_REFRESH_TIMEOUT};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::keys::SecretPem;

/// A boxed future, so [`CaSource`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The issuing CA's key as a source provides it.
#[derive(Debug, Clone)]
pub enum KeyMaterial {
    /// A PKCS#8 PEM private key, held in this process.
    Pem(SecretPem),
    /// An asymmetric key in AWS KMS, and how it signs.
    Kms {
        /// The key.
        key: Arc<kms::KmsKey>,
        /// Direct (one `Sign` per certificate) or delegated.
        mode: kms::KmsMode,
    },
    /// No key: the certificates of a CA whose key is held elsewhere (what a
    /// directory or Parameter Store holds for a KMS-backed CA).
    None,
}

/// Raw CA material as fetched from a source, before any checks.
#[derive(Debug, Clone)]
pub struct CaMaterial {
    /// The issuing CA's private key, or where it is held.
    pub key: KeyMaterial,
    /// Where the key came from (a file path, parameter or KMS key), for messages.
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

impl CaMaterial {
    /// The PEM private key, when the key is held in this process.
    pub fn key_pem(&self) -> Option<&SecretPem> {
        match &self.key {
            KeyMaterial::Pem(pem) => Some(pem),
            KeyMaterial::Kms { .. } | KeyMaterial::None => None,
        }
    }
}

/// Somewhere CA material can be loaded from.
pub trait CaSource: Send + Sync + fmt::Debug {
    /// A human description of the source (`file:signer-key`).
    fn describe(&self) -> String;
    /// Fetches the current material.
    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>>;
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
