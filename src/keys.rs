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
    /// RSA, 2048-bit modulus, exponent 65537. Generated only by builds
    /// with the `aws-lc` feature (ring cannot generate RSA keys); other
    /// builds refuse it in a profile's `key_types`.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA, 3072-bit modulus, exponent 65537 (`aws-lc` builds, as above).
    #[serde(rename = "rsa-3072")]
    Rsa3072,
}

impl KeyType {
    /// Every key type of the API, in the order they are documented.
    pub const EVERY: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Ed25519,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
    ];

    /// Every key type this build generates, in the order they are documented.
    #[cfg(not(feature = "aws-lc"))]
    pub const ALL: [KeyType; 3] = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Ed25519];
    /// Every key type this build generates, in the order they are documented.
    #[cfg(feature = "aws-lc")]
    pub const ALL: [KeyType; 5] = KeyType::EVERY;

    /// Whether this is an RSA key type (costly to generate).
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072)
    }

    /// Whether this build can generate keys of this type.
    pub fn generated_by_this_build(self) -> bool {
        KeyType::ALL.contains(&self)
    }

    /// The wire name (`ecdsa-p256`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Ed25519 => "ed25519",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
        }
    }

    pub(crate) fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
            // The SubjectPublicKeyInfo is rsaEncryption with NULL parameters
            // (RFC 4055 §1.2), whatever hash the key later signs with.
            KeyType::Rsa2048 | KeyType::Rsa3072 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Generates a fresh key pair for a certificate (see [`FreshKey`]).
    pub fn generate_fresh(self) -> Result<FreshKey, KeyError> {
        use crate::crypto::signature::{
            EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
            ECDSA_P384_SHA384_ASN1_SIGNING,
        };
        let rng = crate::crypto::rand::SystemRandom::new();
        let failed = |_| KeyError::Generation(self);
        // Each document ends with the public key, preceded by its BIT STRING
        // header: uncompressed points for ECDSA (RFC 5915 publicKey [1]),
        // the [1] IMPLICIT publicKey of a v2 OneAsymmetricKey for Ed25519
        // (RFC 8410 §7).
        let (pkcs8, header, len): (_, &[u8], usize) = match self {
            KeyType::EcdsaP256 => (
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(failed)?,
                &[0x03, 0x42, 0x00, 0x04],
                65,
            ),
            KeyType::EcdsaP384 => (
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                    .map_err(failed)?,
                &[0x03, 0x62, 0x00, 0x04],
                97,
            ),
            KeyType::Ed25519 => (
                Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?,
                &[0x81, 0x21, 0x00],
                32,
            ),
            #[cfg(feature = "aws-lc")]
            KeyType::Rsa2048 => return generate_rsa(self, aws_lc_rs::rsa::KeySize::Rsa2048),
            #[cfg(feature = "aws-lc")]
            KeyType::Rsa3072 => return generate_rsa(self, aws_lc_rs::rsa::KeySize::Rsa3072),
            #[cfg(not(feature = "aws-lc"))]
            KeyType::Rsa2048 | KeyType::Rsa3072 => return Err(KeyError::NotInThisBuild(self)),
        };
        let bytes = pkcs8.as_ref();
        let public_key = match public_key_in_pkcs8(bytes, header, len) {
            Some(public_key) => public_key.to_vec(),
            // Not the layout this was written against (a ring upgrade?):
            // parse the document properly; Ed25519 has no such way back.
            None if self != KeyType::Ed25519 => {
                KeyPair::from_pkcs8_der_and_sign_algo(&bytes.into(), self.algorithm())
                    .map_err(|_| KeyError::Generation(self))?
                    .public_key_raw()
                    .to_vec()
            }
            None => return Err(KeyError::Generation(self)),
        };
        let pkcs8 = match self {
            KeyType::Ed25519 => ed25519_pkcs8_v1(bytes).ok_or(KeyError::Generation(self))?,
            _ => bytes.to_vec(),
        };
        Ok(FreshKey {
            pkcs8,
            public_key,
            key_type: self,
        })
    }

    /// The comma-separated list of the wire names this build generates, for error messages.
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
        let key_type = Self::EVERY
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| KeyError::UnknownType(s.to_owned()))?;
        if !key_type.generated_by_this_build() {
            return Err(KeyError::NotInThisBuild(key_type));
        }
        Ok(key_type)
    }
}

/// A freshly generated key pair: its PKCS#8 document and its public key.
///
/// The public key is read from the document ring has just written (it ends
/// with the public key) instead of parsing the document again, which for
/// ECDSA would recompute the public key: a second scalar multiplication,
/// as costly as the key generation itself. Its `Debug` never shows the key.
pub struct FreshKey {
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
    key_type: KeyType,
}

impl FreshKey {
    /// The private key as PKCS#8 PEM (RFC 7468 `PRIVATE KEY`).
    pub fn private_key_pem(&self) -> SecretPem {
        let block = pem::Pem::new("PRIVATE KEY", self.pkcs8.clone());
        SecretPem::new(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ))
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The private key as PKCS#8 DER, for the PKCS#12 writer.
    pub(crate) fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl rcgen::PublicKeyData for FreshKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key_type.algorithm()
    }
}

impl fmt::Debug for FreshKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshKey")
            .field("key_type", &self.key_type)
            .field("private_key", &"[secret key elided]")
            .finish()
    }
}

/// A fresh RSA key pair: PKCS#8 v1 and the PKCS#1 `RSAPublicKey` that the
/// certificate's SubjectPublicKeyInfo wraps.
#[cfg(feature = "aws-lc")]
fn generate_rsa(key_type: KeyType, size: aws_lc_rs::rsa::KeySize) -> Result<FreshKey, KeyError> {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let failed = |_| KeyError::Generation(key_type);
    let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(failed)?;
    let pkcs8 = pair.as_der().map_err(failed)?;
    Ok(FreshKey {
        pkcs8: pkcs8.as_ref().to_vec(),
        public_key: pair.public_key().as_ref().to_vec(),
        key_type,
    })
}

/// The public key at the end of a PKCS#8 document, if it is preceded by
/// `header` (its BIT STRING header) and `len` bytes long.
fn public_key_in_pkcs8<'a>(pkcs8: &'a [u8], header: &[u8], len: usize) -> Option<&'a [u8]> {
    let key_starts = pkcs8.len().checked_sub(len)?;
    let header_starts = key_starts.checked_sub(3)?;
    pkcs8[header_starts..]
        .starts_with(header)
        .then(|| &pkcs8[key_starts..])
}

/// RFC 8410 §7 PKCS#8 v1 prefix of an Ed25519 private key (a 32-byte seed follows).
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same prefix in ring's v2 document (which adds the public key at the end).
const ED25519_PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Rewrites ring's Ed25519 PKCS#8 v2 (OneAsymmetricKey with the public key)
/// as v1 (the seed only): OpenSSL 3.0 and Java's KeyStore refuse v2, and
/// every reader derives the public key from the seed anyway.
fn ed25519_pkcs8_v1(v2: &[u8]) -> Option<Vec<u8>> {
    let seed = v2.strip_prefix(&ED25519_PKCS8_V2_PREFIX)?.get(..32)?;
    let mut v1 = Vec::with_capacity(48);
    v1.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
    v1.extend_from_slice(seed);
    Some(v1)
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
    #[error("unknown key type {0:?}; supported: {names}", names = KeyType::all_names())]
    UnknownType(String),
    /// A key type that only builds with the `aws-lc` feature generate.
    #[error(
        "{0} keys are generated only by signers built with the `aws-lc` feature; \
         this build generates {names}",
        names = KeyType::all_names()
    )]
    NotInThisBuild(KeyType),
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
        let rsa = "rsa-2048".parse::<KeyType>();
        assert_eq!(rsa.is_ok(), cfg!(feature = "aws-lc"), "{rsa:?}");
        if let Err(e) = rsa {
            assert!(e.to_string().contains("`aws-lc` feature"), "{e}");
            assert!(matches!(
                KeyType::Rsa3072.generate_fresh(),
                Err(KeyError::NotInThisBuild(KeyType::Rsa3072))
            ));
        }
        assert!("rsa-1024".parse::<KeyType>().is_err());
    }

    #[test]
    fn fresh_keys_carry_the_public_key_of_their_pkcs8() {
        use rcgen::PublicKeyData as _;
        for k in KeyType::ALL {
            // RSA key generation takes tens of milliseconds; fewer rounds.
            let rounds = if k.as_str().starts_with("rsa") { 2 } else { 20 };
            for _ in 0..rounds {
                let fresh = k.generate_fresh().unwrap();
                let pem = fresh.private_key_pem();
                let parsed = KeyPair::from_pem(pem.expose()).unwrap();
                if k == KeyType::Ed25519 {
                    let der = pem::parse(pem.expose()).unwrap().into_contents();
                    assert_eq!(der.len(), 48, "PKCS#8 v1: seed only");
                    assert!(der.starts_with(&ED25519_PKCS8_V1_PREFIX));
                }
                assert_eq!(parsed.algorithm(), k.algorithm());
                assert_eq!(fresh.der_bytes(), parsed.public_key_raw(), "{k}");
                assert_eq!(
                    format!("{fresh:?}"),
                    format!("FreshKey {{ key_type: {k:?}, private_key: \"[secret key elided]\" }}")
                );
            }
        }
    }

    #[test]
    fn secret_pem_debug_hides_the_key() {
        let pem = KeyType::EcdsaP256
            .generate_fresh()
            .unwrap()
            .private_key_pem()
            .expose()
            .to_owned();
        let secret = SecretPem::new(pem.clone());
        let shown = format!("{secret:?}");
        assert_eq!(shown, "[secret key elided]");
        assert!(!shown.contains("PRIVATE KEY"));
        assert_eq!(secret.expose(), pem);
    }

    #[test]
    fn generated_keys_have_the_requested_algorithm() {
        for k in KeyType::ALL {
            let fresh = k.generate_fresh().unwrap();
            assert_eq!(fresh.key_type(), k);
            let pem = fresh.private_key_pem();
            assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(
                KeyPair::from_pem(pem.expose()).unwrap().algorithm(),
                k.algorithm()
            );
        }
    }

    #[test]
    fn the_public_key_is_found_only_behind_its_header() {
        let doc = [0x30, 0x03, 0x42, 0x00, 0x04, 0xaa, 0xbb];
        let p256 = [0x03, 0x42, 0x00, 0x04];
        assert_eq!(
            public_key_in_pkcs8(&doc, &p256, 3),
            Some(&[0x04, 0xaa, 0xbb][..])
        );
        assert_eq!(
            public_key_in_pkcs8(&doc, &[0x03, 0x62, 0x00, 0x04], 3),
            None
        );
        assert_eq!(public_key_in_pkcs8(&doc, &p256, 30), None, "too short");
        assert_eq!(public_key_in_pkcs8(&[], &[0x81, 0x21, 0x00], 32), None);
        assert_eq!(
            ed25519_pkcs8_v1(&[0u8; 83]),
            None,
            "not the v2 layout of ring"
        );
    }
}
