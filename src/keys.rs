//! Key types the service generates, and fresh key pairs for certificates.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, SignatureAlgorithm};
use serde::{Deserialize, Serialize};

/// A key type the service can generate server-side.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256 (the default).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyType {
    /// Every key type, in the order they are documented.
    pub const ALL: [KeyType; 3] = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Ed25519];

    /// The wire name (`ecdsa-p256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Ed25519 => "ed25519",
        }
    }

    pub(crate) fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    /// Generates a fresh key pair of this type from the system CSPRNG.
    pub fn generate(self) -> Result<KeyPair, KeyError> {
        KeyPair::generate_for(self.algorithm()).map_err(|_| KeyError::Generation(self))
    }

    /// The comma-separated list of all wire names, for error messages.
    pub fn all_names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KeyError::UnknownType(s.to_owned()))
    }
}

/// PEM text holding a private key. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps PEM text.
    pub fn new(pem: String) -> Self {
        SecretPem(pem)
    }

    /// The PEM text, for the one place that must send or parse it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret key elided]")
    }
}

/// Errors from key handling.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key type name that is not one of the supported ones.
    #[error("unknown key type {0:?}; supported: ecdsa-p256, ecdsa-p384, ed25519")]
    UnknownType(String),
    /// The CSPRNG or the key generator failed (no detail: it could carry key state).
    #[error("could not generate a {0} key pair")]
    Generation(KeyType),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.as_str().parse::<KeyType>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert!("rsa-2048".parse::<KeyType>().is_err());
    }

    #[test]
    fn secret_pem_debug_hides_the_key() {
        let pem = KeyType::EcdsaP256.generate().unwrap().serialize_pem();
        let secret = SecretPem::new(pem.clone());
        let shown = format!("{secret:?}");
        assert_eq!(shown, "[secret key elided]");
        assert!(!shown.contains("PRIVATE KEY"));
        assert_eq!(secret.expose(), pem);
    }

    #[test]
    fn generated_keys_have_the_requested_algorithm() {
        for k in KeyType::ALL {
            let pair = k.generate().unwrap();
            assert_eq!(pair.algorithm(), k.algorithm());
            assert!(pair
                .serialize_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----"));
        }
    }
}
