//! A CA kept in a local directory (`signer-key/`), as written by `session-ca init`.

use std::path::{Path, PathBuf};

use super::{BoxFuture, CaError, CaMaterial, CaSource, KeyMaterial};
use crate::keys::SecretPem;

/// The issuing CA's private key (PKCS#8 PEM, mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The issuing CA's certificate.
pub const CA_CERT_FILE: &str = "ca-cert.pem";
/// The chain from the issuing CA up to the root, issuing CA first.
pub const CHAIN_FILE: &str = "chain.pem";
/// The ARN of the CA's KMS key, in a directory made by `init --kms-key-id`
/// (which holds no private key).
pub const KMS_KEY_FILE: &str = "kms-key-id";
/// The root's private key when `init --intermediate` made a two-level CA.
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// The root certificate when `init --intermediate` made a two-level CA.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";

/// Reads CA material from a directory.
#[derive(Debug, Clone)]
pub struct FileCaSource {
    dir: PathBuf,
    with_key: bool,
}

impl FileCaSource {
    /// A source reading key, certificate and chain from `dir`.
    pub fn new(dir: PathBuf) -> Self {
        FileCaSource {
            dir,
            with_key: true,
        }
    }

    /// A source reading only the certificate and chain from `dir` (the CA
    /// key is held elsewhere, in KMS).
    pub fn certificates(dir: PathBuf) -> Self {
        FileCaSource {
            dir,
            with_key: false,
        }
    }

    /// Whether `dir` holds a CA key or certificate already.
    pub fn exists_in(dir: &Path) -> bool {
        dir.join(CA_KEY_FILE).exists() || dir.join(CA_CERT_FILE).exists()
    }

    fn read(&self, name: &str) -> Result<(String, String), CaError> {
        let path = self.dir.join(name);
        let origin = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((text, origin)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CaError::Unreadable {
                origin,
                reason: "no such file; create a CA with `session-ca init`".into(),
            }),
            Err(e) => Err(CaError::Unreadable {
                origin,
                reason: e.to_string(),
            }),
        }
    }

    fn load_now(&self) -> Result<CaMaterial, CaError> {
        let (key, key_origin) = if self.with_key {
            let (pem, origin) = self.read(CA_KEY_FILE)?;
            (KeyMaterial::Pem(SecretPem::new(pem)), origin)
        } else {
            (KeyMaterial::None, String::new())
        };
        let (cert_pem, cert_origin) = self.read(CA_CERT_FILE)?;
        let chain_path = self.dir.join(CHAIN_FILE);
        let chain_pem = if chain_path.exists() {
            Some(self.read(CHAIN_FILE)?.0)
        } else {
            None
        };
        Ok(CaMaterial {
            key,
            key_origin,
            cert_pem,
            cert_origin,
            chain_pem,
            chain_origin: chain_path.display().to_string(),
        })
    }
}

impl CaSource for FileCaSource {
    fn describe(&self) -> String {
        format!("file:{}", self.dir.display())
    }

    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>> {
        // Three small files: reading them inline is cheaper than a thread hop.
        Box::pin(std::future::ready(self.load_now()))
    }
}
