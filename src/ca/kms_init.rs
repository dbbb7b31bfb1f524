//! `session-ca init --kms-key-id`: a CA certificate for a key held in AWS
//! KMS, self-signed by KMS as a root or signed by a local root as an
//! intermediate. The directory then holds `ca-cert.pem`, `chain.pem` and
//! `kms-key-id` (the key's ARN), and never a private key.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::file::{FileCaSource, CA_CERT_FILE, CA_KEY_FILE, CHAIN_FILE, KMS_KEY_FILE};
use super::init::{ca_params, parse_subject, write_all, CreatedCa};
use super::kms::{KmsKey, KmsMode};
use super::{remote, CaError, CaMaterial, CaSource, KeyMaterial, SigningCa};
use crate::x509::random_serial;
use session_ca_client::files::FileKind;

/// What `init --kms-key-id` should create.
#[derive(Debug, Clone)]
pub struct KmsInitOptions {
    /// Directory to write the certificates into.
    pub dir: PathBuf,
    /// The KMS key: id, ARN or `alias/...`.
    pub key_id: String,
    /// Subject as `CN=...,O=...`.
    pub subject: String,
    /// Lifetime of the CA certificate, in days (clamped to the issuer's).
    pub validity_days: u32,
    /// A local root (a directory made by `session-ca init`) that signs the
    /// KMS CA as an intermediate; without it KMS self-signs a root.
    pub issuer_dir: Option<PathBuf>,
    /// Whether existing files may be replaced.
    pub force: bool,
}

/// Creates the CA certificate of the KMS key `options.key_id` in
/// `options.dir`, then loads it as the signer would (its self-test signs
/// one probe certificate with KMS). KMS signs once for a root (and once for
/// the self-test).
pub async fn create_kms_ca(
    client: aws_sdk_kms::Client,
    options: &KmsInitOptions,
    now: OffsetDateTime,
) -> Result<CreatedCa, CaError> {
    let subject = parse_subject(&options.subject)?;
    if options.validity_days == 0 || options.validity_days > 36_500 {
        return Err(CaError::Create(
            "--validity-days must be between 1 and 36500".into(),
        ));
    }
    if !options.force {
        if let Some(path) = [CA_CERT_FILE, CHAIN_FILE, KMS_KEY_FILE, CA_KEY_FILE]
            .iter()
            .map(|f| options.dir.join(f))
            .find(|p| p.exists())
        {
            return Err(CaError::WouldOverwrite(path.display().to_string()));
        }
    }
    let key = Arc::new(KmsKey::load(client, &options.key_id).await?);
    let serial = random_serial().map_err(|e| CaError::Create(e.to_string()))?;
    let not_before = now - Duration::hours(1);
    let not_after = now + Duration::days(i64::from(options.validity_days));
    let sign_err = |e: &dyn std::fmt::Display| CaError::Create(format!("signing failed: {e}"));

    let (cert_pem, chain_pem) = match &options.issuer_dir {
        None => {
            // pathLenConstraint 1: room for a delegated issuing CA below it.
            let params = ca_params(
                serial,
                key.public_key_raw(),
                &subject,
                1,
                not_before,
                not_after,
                false,
            );
            let cert = remote::sign_in_two_passes(&key, |pass| params.self_signed(&pass))
                .await
                .map_err(|e| sign_err(&e))?;
            (cert.pem(), cert.pem())
        }
        Some(root_dir) => {
            let root = issuer_material(root_dir).await?;
            let root_key_pem = root.key_pem().ok_or_else(|| {
                CaError::Create(format!(
                    "{}: the issuer directory holds no private key to sign with",
                    root_dir.display()
                ))
            })?;
            let root_key =
                KeyPair::from_pem(root_key_pem.expose()).map_err(|_| CaError::Invalid {
                    origin: root.key_origin.clone(),
                    reason: "not a PEM PKCS#8 private key".into(),
                })?;
            let root_der =
                CertificateDer::from_pem_slice(root.cert_pem.as_bytes()).map_err(|e| {
                    CaError::Invalid {
                        origin: root.cert_origin.clone(),
                        reason: format!("malformed PEM: {e}"),
                    }
                })?;
            let root_not_after = check_issuer(&root_der, &root.cert_origin)?;
            let mut params = ca_params(
                serial,
                key.public_key_raw(),
                &subject,
                1,
                not_before,
                not_after.min(root_not_after),
                true,
            );
            params.not_after = not_after.min(root_not_after);
            let issuer = Issuer::from_ca_cert_der(&root_der, root_key).map_err(|e| sign_err(&e))?;
            let cert = params
                .signed_by(key.as_ref(), &issuer)
                .map_err(|e| sign_err(&e))?;
            let root_chain = root
                .chain_pem
                .clone()
                .unwrap_or_else(|| root.cert_pem.clone());
            (cert.pem(), format!("{}{root_chain}", cert.pem()))
        }
    };

    // Loaded exactly as the signer will load it, before anything is written.
    let material = CaMaterial {
        key: KeyMaterial::Kms {
            key: Arc::clone(&key),
            mode: KmsMode::Direct,
        },
        key_origin: format!("kms:{}", options.key_id),
        cert_pem: cert_pem.clone(),
        cert_origin: options.dir.join(CA_CERT_FILE).display().to_string(),
        chain_pem: Some(chain_pem.clone()),
        chain_origin: options.dir.join(CHAIN_FILE).display().to_string(),
    };
    let ca = SigningCa::from_material("init", &material, now).await?;

    if options.force {
        // A KMS-backed CA keeps no key on disk: a stale one must not stay.
        let _ = std::fs::remove_file(options.dir.join(CA_KEY_FILE));
    }
    let files = write_all(
        &options.dir,
        vec![
            (CA_CERT_FILE, cert_pem.clone(), FileKind::Public),
            (CHAIN_FILE, chain_pem, FileKind::Public),
            (KMS_KEY_FILE, format!("{}\n", key.arn()), FileKind::Public),
        ],
        options.force,
    )?;
    Ok(CreatedCa {
        files,
        issuing_cert_pem: cert_pem,
        not_after: ca.not_after,
    })
}

/// The signing root in `dir`: `root-key.pem` and `root-cert.pem` of a
/// two-level CA made by `init --intermediate`, else its `ca-key.pem` and
/// `ca-cert.pem`.
async fn issuer_material(dir: &std::path::Path) -> Result<CaMaterial, CaError> {
    use super::file::{ROOT_CERT_FILE, ROOT_KEY_FILE};
    let mut material = FileCaSource::new(dir.to_path_buf()).load().await;
    if dir.join(ROOT_KEY_FILE).exists() {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path)
                .map(|text| (text, path.display().to_string()))
                .map_err(|e| CaError::Unreadable {
                    origin: path.display().to_string(),
                    reason: e.to_string(),
                })
        };
        let (key, key_origin) = read(ROOT_KEY_FILE)?;
        let (cert_pem, cert_origin) = read(ROOT_CERT_FILE)?;
        material = Ok(CaMaterial {
            key: KeyMaterial::Pem(crate::keys::SecretPem::new(key)),
            key_origin,
            chain_pem: None,
            chain_origin: cert_origin.clone(),
            cert_pem,
            cert_origin,
        });
    }
    material
}

/// The issuer's `notAfter`, after checking it can have a KMS CA below it:
/// CA:TRUE and a pathLenConstraint of at least 1 (2 for the delegated
/// issuing CA below the KMS CA; with 1, a warning).
fn check_issuer(der: &CertificateDer<'_>, origin: &str) -> Result<OffsetDateTime, CaError> {
    let invalid = |reason: String| CaError::Invalid {
        origin: origin.to_owned(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| invalid(format!("does not parse as X.509: {e}")))?;
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => match bc.value.path_len_constraint {
            Some(0) => {
                return Err(invalid(
                    "its pathLenConstraint is 0: it cannot sign a CA; create the root with \
                     `session-ca init --path-len 2` (or use KMS as the root: no --issuer-dir)"
                        .into(),
                ))
            }
            Some(1) => tracing::warn!(
                issuer = origin,
                "the issuer's pathLenConstraint is 1: the KMS CA can sign leaves directly, but \
                 not through a delegated issuing CA (delegate = ...), which needs 2"
            ),
            _ => {}
        },
        _ => return Err(invalid("is not a CA certificate".into())),
    }
    Ok(cert.validity().not_after.to_datetime())
}
