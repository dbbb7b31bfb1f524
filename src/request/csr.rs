//! CSR mode: the public key of a client's PKCS#10 certification request.
//!
//! Only the key is taken from a CSR. Its subject and its requested
//! extensions are ignored on purpose (a CSR asking for CA:TRUE still gets an
//! ordinary client certificate): what the certificate says is decided by the
//! profile, never by the requester. The CSR's signature is verified, which
//! proves the requester holds the private key.

use std::fmt;

use rcgen::SignatureAlgorithm;
use serde::{Deserialize, Serialize};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// The key types a CSR may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CsrKeyType {
    /// ECDSA on NIST P-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519 (RFC 8410).
    #[serde(rename = "ed25519")]
    Ed25519,
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl CsrKeyType {
    /// Every CSR key type, in the order they are documented.
    pub const ALL: [CsrKeyType; 6] = [
        CsrKeyType::EcdsaP256,
        CsrKeyType::EcdsaP384,
        CsrKeyType::Ed25519,
        CsrKeyType::Rsa2048,
        CsrKeyType::Rsa3072,
        CsrKeyType::Rsa4096,
    ];

    /// The wire name (`ecdsa-p256`, `rsa-3072`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CsrKeyType::EcdsaP256 => "ecdsa-p256",
            CsrKeyType::EcdsaP384 => "ecdsa-p384",
            CsrKeyType::Ed25519 => "ed25519",
            CsrKeyType::Rsa2048 => "rsa-2048",
            CsrKeyType::Rsa3072 => "rsa-3072",
            CsrKeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// The algorithm whose key identifier rcgen writes into the
    /// certificate's SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): for RSA that
    /// is rsaEncryption with NULL parameters (RFC 4055 §1.2), whatever hash
    /// the client later signs with.
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            CsrKeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CsrKeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            CsrKeyType::Ed25519 => &rcgen::PKCS_ED25519,
            CsrKeyType::Rsa2048 | CsrKeyType::Rsa3072 | CsrKeyType::Rsa4096 => {
                &rcgen::PKCS_RSA_SHA256
            }
        }
    }
}

impl fmt::Display for CsrKeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified public key of a CSR, ready to be certified.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrKey {
    /// The subjectPublicKey BIT STRING contents.
    public_key: Vec<u8>,
    key_type: CsrKeyType,
}

impl CsrKey {
    /// Parses a PEM `CERTIFICATE REQUEST`, checks that its key is of a
    /// supported type and size, and verifies its self-signature.
    pub fn from_pem(pem_text: &str) -> Result<CsrKey, CsrError> {
        let blocks =
            pem::parse_many(pem_text.as_bytes()).map_err(|e| CsrError::NotPem(e.to_string()))?;
        let block = match blocks.as_slice() {
            [] => return Err(CsrError::NotPem("no PEM block found".into())),
            [one] => one,
            more => {
                return Err(CsrError::NotPem(format!(
                    "{} PEM blocks found; send exactly one CERTIFICATE REQUEST",
                    more.len()
                )))
            }
        };
        // "NEW CERTIFICATE REQUEST" is what older tools (Netscape, certreq) write.
        if !matches!(
            block.tag(),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
        ) {
            return Err(CsrError::NotPem(format!(
                "the PEM block is a {:?}, not a CERTIFICATE REQUEST",
                block.tag()
            )));
        }
        Self::from_der(block.contents())
    }

    /// Like [`CsrKey::from_pem`], from DER.
    pub fn from_der(der: &[u8]) -> Result<CsrKey, CsrError> {
        let (rest, csr) = X509CertificationRequest::from_der(der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed(format!(
                "{} bytes follow the request",
                rest.len()
            )));
        }
        let spki = &csr.certification_request_info.subject_pki;
        let key_type = key_type_of(spki)?;
        // x509-parser verifies with ring; SHA-1 is refused first because a
        // CA should not accept new SHA-1 signatures of any kind.
        let signature_oid = &csr.signature_algorithm.algorithm;
        // sha1WithRSAEncryption, sha1WithRSA (OIW), ecdsa-with-SHA1.
        if matches!(
            signature_oid.to_id_string().as_str(),
            "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" | "1.2.840.10045.4.1"
        ) {
            return Err(CsrError::WeakSignature);
        }
        csr.verify_signature().map_err(|e| match e {
            x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
                CsrError::UnsupportedSignature(signature_oid.to_id_string())
            }
            _ => CsrError::BadSignature,
        })?;
        Ok(CsrKey {
            public_key: spki.subject_public_key.data.to_vec(),
            key_type,
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> CsrKeyType {
        self.key_type
    }
}

impl rcgen::PublicKeyData for CsrKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key_type.algorithm()
    }
}

impl fmt::Debug for CsrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

fn key_type_of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<CsrKeyType, CsrError> {
    let algorithm = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.data.as_ref();
    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::UnsupportedKey("an EC key without a named curve".into()))?;
        let (key_type, len) = if curve == OID_EC_P256 {
            (CsrKeyType::EcdsaP256, 65)
        } else if curve == OID_NIST_EC_P384 {
            (CsrKeyType::EcdsaP384, 97)
        } else {
            return Err(CsrError::UnsupportedKey(format!(
                "an EC key on curve {}",
                curve.to_id_string()
            )));
        };
        // Verifiers (webpki, ring) take uncompressed points only (SEC 1 §2.3.3).
        if key.len() != len || key.first() != Some(&0x04) {
            return Err(CsrError::UnsupportedKey(
                "an EC key that is not an uncompressed point".into(),
            ));
        }
        return Ok(key_type);
    }
    if *algorithm == OID_SIG_ED25519 {
        if key.len() != 32 || spki.algorithm.parameters.is_some() {
            return Err(CsrError::Malformed(
                "an Ed25519 key must be 32 bytes without parameters (RFC 8410 §3)".into(),
            ));
        }
        return Ok(CsrKeyType::Ed25519);
    }
    if *algorithm == OID_PKCS1_RSAENCRYPTION {
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
            _ => {
                return Err(CsrError::Malformed(
                    "the RSA public key is malformed".into(),
                ))
            }
        };
        return match bits {
            2048 => Ok(CsrKeyType::Rsa2048),
            3072 => Ok(CsrKeyType::Rsa3072),
            4096 => Ok(CsrKeyType::Rsa4096),
            b if b < 2048 => Err(CsrError::RsaTooSmall(b)),
            b => Err(CsrError::UnsupportedKey(format!(
                "an RSA key of {b} bits (RSA keys must be 2048, 3072 or 4096 bits)"
            ))),
        };
    }
    let name = match algorithm.to_id_string().as_str() {
        "1.2.840.10040.4.1" => "DSA".to_owned(),
        "1.3.101.110" => "X25519".to_owned(),
        "1.3.101.111" => "X448".to_owned(),
        "1.3.101.113" => "Ed448".to_owned(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS (use an rsaEncryption key)".to_owned(),
        other => format!("OID {other}"),
    };
    Err(CsrError::UnsupportedKey(format!("a {name} key")))
}

/// Why a CSR cannot be used. Messages say what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not one PEM `CERTIFICATE REQUEST` block.
    #[error("csr is not a PEM CERTIFICATE REQUEST: {0}")]
    NotPem(String),
    /// The DER inside is not a PKCS#10 request.
    #[error("csr is not a valid PKCS#10 request: {0}")]
    Malformed(String),
    /// A key type the service does not certify.
    #[error(
        "csr holds {0}; supported: ECDSA P-256 or P-384, Ed25519, RSA 2048, 3072 or 4096 bits"
    )]
    UnsupportedKey(String),
    /// An RSA key below 2048 bits.
    #[error("csr holds an RSA key of {0} bits; RSA keys must be at least 2048 bits")]
    RsaTooSmall(usize),
    /// Signed with SHA-1.
    #[error("csr is signed with SHA-1; sign it with SHA-256 or stronger")]
    WeakSignature,
    /// A signature algorithm the verifier does not know.
    #[error("csr is signed with an unsupported algorithm ({0})")]
    UnsupportedSignature(String),
    /// The self-signature does not verify with the CSR's key.
    #[error("csr signature does not verify with its public key: the request was altered or signed with another key")]
    BadSignature,
}

/// The size in bits of an RSA modulus (big-endian, maybe with leading
/// zero octets): x509-parser's `key_size` counts whole octets after the
/// first when its top bit is clear, so a 2052-bit key read as 2048.
fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(modulus.len());
    match modulus.get(start) {
        None => 0,
        Some(&top) => (modulus.len() - start - 1) * 8 + (8 - top.leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_rsa_modulus_counts_its_bits() {
        assert_eq!(modulus_bits(&[0x80; 256]), 2048);
        assert_eq!(modulus_bits(&[&[0x00][..], &[0x80; 256]].concat()), 2048);
        let mut over = vec![0xff; 257];
        over[0] = 0x09; // 2052 bits: 4 in the first octet
        assert_eq!(modulus_bits(&over), 2052);
        over[0] = 0x01;
        assert_eq!(modulus_bits(&over), 2049);
        assert_eq!(modulus_bits(&[0x7f; 256]), 2047);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    use super::*;
    use rcgen::PublicKeyData as _;

    fn csr_der(alg: &'static SignatureAlgorithm) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ignored.example".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&key).unwrap();
        (csr.der().to_vec(), key)
    }

    #[test]
    fn the_key_of_a_valid_csr_is_taken() {
        for (alg, key_type) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, CsrKeyType::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, CsrKeyType::EcdsaP384),
            (&rcgen::PKCS_ED25519, CsrKeyType::Ed25519),
        ] {
            let (der, key) = csr_der(alg);
            let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
            for parsed in [CsrKey::from_der(&der), CsrKey::from_pem(&pem)] {
                let parsed = parsed.unwrap();
                assert_eq!(parsed.key_type(), key_type);
                assert_eq!(parsed.der_bytes(), key.public_key_raw());
                assert_eq!(parsed.algorithm(), alg);
                assert_eq!(
                    format!("{parsed:?}"),
                    format!("CsrKey {{ key_type: {key_type:?}, .. }}")
                );
            }
        }
    }

    #[test]
    fn altered_csrs_are_refused() {
        let (der, _) = csr_der(&rcgen::PKCS_ECDSA_P256_SHA256);
        // The CertificationRequestInfo (here a byte of the SAN) is altered:
        // the signature no longer verifies.
        let mut altered = der.clone();
        let at = altered.windows(7).position(|w| w == b"ignored").unwrap();
        altered[at] = b'J';
        assert_eq!(CsrKey::from_der(&altered), Err(CsrError::BadSignature));
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            CsrKey::from_der(&trailing),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(
            CsrKey::from_der(&der[..der.len() - 1]),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(
            CsrKey::from_der(b"garbage"),
            Err(CsrError::Malformed(_))
        ));
        assert!(matches!(CsrKey::from_der(&[]), Err(CsrError::Malformed(_))));
    }

    #[test]
    fn pem_must_be_one_certificate_request() {
        let (der, _) = csr_der(&rcgen::PKCS_ED25519);
        let csr = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        let legacy = pem::encode(&pem::Pem::new("NEW CERTIFICATE REQUEST", der.clone()));
        assert!(CsrKey::from_pem(&legacy).is_ok());
        for (text, needle) in [
            (String::new(), "no PEM block"),
            ("not pem".to_owned(), "no PEM block"),
            (format!("{csr}{csr}"), "2 PEM blocks"),
            (
                pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())),
                "\"CERTIFICATE\"",
            ),
        ] {
            let err = CsrKey::from_pem(&text).unwrap_err();
            assert!(matches!(err, CsrError::NotPem(_)), "{text}: {err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
