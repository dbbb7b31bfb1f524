//! PKCS#12 (RFC 7292) files for Java: a key store with the issued key,
//! certificate and chain, and a trust store with the CA chain.
//!
//! The algorithms are the ones JDK 17 reads natively and OpenSSL 3 reads
//! without its legacy provider: PBES2 (RFC 8018) with PBKDF2-HMAC-SHA256 and
//! AES-256-CBC for the key and certificate bags, and the classic PKCS#12
//! HMAC-SHA256 integrity MAC (not PBMAC1, which JDK 17 cannot read).

use std::fmt;

use crate::crypto::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

/// The password of every trust store from `GET /v1/ca?format=pkcs12`: the
/// JDK's convention for trust stores. A trust store holds public
/// certificates only; the password guards integrity, not secrecy.
pub const TRUSTSTORE_PASSWORD: &str = "changeit";

/// The alias of the key entry in a key store.
pub const KEY_ALIAS: &str = "session-ca";

/// PBKDF2 iterations for encryption and MAC keys. Iterations slow down
/// guessing a human password; key store passwords here are 192 random bits
/// that no one can guess, so the count is OpenSSL's default (2048), enough
/// for tools that flag low counts, without spending milliseconds per
/// certificate. Trust store passwords are public, so no count helps them.
pub const ITERATIONS: u32 = 2048;

/// A generated PKCS#12 password. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// A fresh password: 24 bytes from the OS CSPRNG, base64url (32 characters).
    pub fn generate() -> Result<Password, Pkcs12Error> {
        let mut bytes = [0u8; 24];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Pkcs12Error::Random)?;
        Ok(Password(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    /// The password text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[password elided]")
    }
}

/// A password-protected key store and its password.
pub struct KeyStoreFile {
    /// The PKCS#12 file.
    pub der: Vec<u8>,
    /// Its password.
    pub password: Password,
}

impl fmt::Debug for KeyStoreFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStoreFile")
            .field("len", &self.der.len())
            .field("password", &self.password)
            .finish()
    }
}

/// A key store holding one key entry (alias [`KEY_ALIAS`]): the PKCS#8 key,
/// the certificate and its chain (issuing CA first), under a fresh password.
pub fn key_store(
    pkcs8: &[u8],
    certificate_der: &[u8],
    chain_der: &[&[u8]],
) -> Result<KeyStoreFile, Pkcs12Error> {
    let key = PrivateKey::from_der(pkcs8).map_err(|_| Pkcs12Error::Build("the private key"))?;
    let mut certs = Vec::with_capacity(chain_der.len() + 1);
    for der in std::iter::once(certificate_der).chain(chain_der.iter().copied()) {
        certs.push(Certificate::from_der(der).map_err(|_| Pkcs12Error::Build("a certificate"))?);
    }
    // The local key id pairs the key bag with its certificate bag.
    let local_key_id = crate::crypto::sha256(certificate_der);
    let chain = PrivateKeyChain::new(local_key_id.as_ref(), key, certs);
    let mut store = KeyStore::new();
    store.add_entry(KEY_ALIAS, KeyStoreEntry::PrivateKeyChain(chain));
    let password = Password::generate()?;
    let der = write(&store, password.expose())?;
    Ok(KeyStoreFile { der, password })
}

/// A trust store with every certificate of `chain_der` as a trusted entry
/// (aliases `session-ca-0`, `session-ca-1`, ...), password
/// [`TRUSTSTORE_PASSWORD`]. Java's `KeyStore` shows certificates without a
/// key only when they carry Oracle's trusted-key-usage attribute, which
/// these do.
pub fn trust_store(chain_der: &[&[u8]]) -> Result<Vec<u8>, Pkcs12Error> {
    let mut store = KeyStore::new();
    for (i, der) in chain_der.iter().enumerate() {
        let cert = Certificate::from_der(der).map_err(|_| Pkcs12Error::Build("a certificate"))?;
        store.add_entry(&format!("session-ca-{i}"), KeyStoreEntry::Certificate(cert));
    }
    write(&store, TRUSTSTORE_PASSWORD)
}

fn write(store: &KeyStore, password: &str) -> Result<Vec<u8>, Pkcs12Error> {
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|_| Pkcs12Error::Build("the PKCS#12 file"))
}

/// Base64 (standard alphabet, padded), as the API sends PKCS#12 files.
pub fn to_base64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Errors while building a PKCS#12 file (none of them the caller's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs12Error {
    /// The CSPRNG failed.
    #[error("the system CSPRNG failed")]
    Random,
    /// A part could not be encoded (no detail: it could carry key material).
    #[error("could not encode {0} into PKCS#12")]
    Build(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;

    /// A key and a certificate for it, self-signed or signed by `issuer`.
    fn certificate(
        key_type: KeyType,
        cn: &str,
        issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
    ) -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(key_type.algorithm()).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = match issuer {
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        (key.serialize_der(), cert.der().to_vec())
    }

    fn self_signed(key_type: KeyType) -> (Vec<u8>, Vec<u8>) {
        certificate(key_type, "self-signed", None)
    }

    #[test]
    fn key_store_round_trips_with_its_password_only() {
        for k in KeyType::ALL {
            let (ca_key, ca) = certificate(KeyType::EcdsaP256, "CA", None);
            let ca_key = rcgen::KeyPair::try_from(ca_key.as_slice()).unwrap();
            let issuer = rcgen::Issuer::from_ca_cert_der(&ca.as_slice().into(), ca_key).unwrap();
            let (pkcs8, leaf) = certificate(k, "client", Some(&issuer));
            let file = key_store(&pkcs8, &leaf, &[&ca]).unwrap();
            assert_eq!(file.password.expose().len(), 32);
            let read = KeyStore::from_pkcs12(
                &file.der,
                file.password.expose(),
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .unwrap();
            let (alias, chain) = read.private_key_chain().unwrap();
            assert_eq!(alias, KEY_ALIAS);
            assert_eq!(chain.key().as_der(), pkcs8, "{k}");
            let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            assert_eq!(certs, [&leaf[..], &ca[..]]);
            assert!(KeyStore::from_pkcs12(
                &file.der,
                "wrong",
                p12_keystore::Pkcs12ImportPolicy::Strict
            )
            .is_err());
        }
    }

    #[test]
    fn passwords_are_fresh_and_hidden() {
        let a = Password::generate().unwrap();
        let b = Password::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "[password elided]");
        let (key, cert) = self_signed(KeyType::EcdsaP256);
        let file = key_store(&key, &cert, &[]).unwrap();
        let shown = format!("{file:?}");
        assert!(!shown.contains(file.password.expose()), "{shown}");
    }

    #[test]
    fn trust_store_holds_trusted_certificates() {
        let (_, root) = self_signed(KeyType::EcdsaP256);
        let (_, other) = self_signed(KeyType::Ed25519);
        let der = trust_store(&[&root, &other]).unwrap();
        let read = KeyStore::from_pkcs12(
            &der,
            TRUSTSTORE_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .unwrap();
        assert_eq!(read.entries_len(), 2);
        match read.entry("session-ca-0") {
            Some(KeyStoreEntry::Certificate(c)) => assert_eq!(c.as_der(), root),
            other => panic!("unexpected entry {other:?}"),
        }
    }
}
