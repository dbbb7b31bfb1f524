//! `session-ca init`: creating a CA (root, optionally with an intermediate) in a directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::file::{CA_CERT_FILE, CA_KEY_FILE, CHAIN_FILE, ROOT_CERT_FILE, ROOT_KEY_FILE};
use super::CaError;
use crate::keys::KeyType;
use crate::x509::{dn_value, key_identifier, random_serial};
use session_ca_client::files::{create_private_dir, stage, sync_dir, FileKind};

/// Subject of a CA made with no `--subject`.
pub const DEFAULT_CA_SUBJECT: &str = "CN=session-ca development CA,O=session-ca";

/// What `init` should create.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Directory to write into.
    pub dir: PathBuf,
    /// Key type of the CA key(s).
    pub key_type: KeyType,
    /// Subject as `CN=...,O=...` (keys CN, C, ST, L, O, OU).
    pub subject: String,
    /// Lifetime of the CA certificate(s), in days.
    pub validity_days: u32,
    /// Whether to create a root and an intermediate that signs.
    pub intermediate: bool,
    /// The pathLenConstraint of a single-level CA (0: it signs only leaves;
    /// 2 for a root that will sign a KMS CA which delegates).
    pub path_len: u8,
    /// Whether existing files may be replaced.
    pub force: bool,
}

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct CreatedCa {
    /// Files written, in order.
    pub files: Vec<PathBuf>,
    /// The issuing CA's certificate, PEM.
    pub issuing_cert_pem: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// Parses `CN=Example CA,O=Example` into subject attributes, in the
/// conventional order of a subject (C, ST, L, O, OU, CN; RFC 5280 §4.1.2.4
/// leaves the order to the issuer, and this is the order of X.520's
/// hierarchy and of every leaf this service issues) whatever order the text
/// lists them in, so `openssl -nameopt RFC2253` and Java print `CN=...,O=...`.
pub fn parse_subject(text: &str) -> Result<Vec<(DnType, String)>, CaError> {
    let bad = |why: String| CaError::Create(format!("invalid --subject {text:?}: {why}"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not KEY=VALUE")))?;
        let (key, value) = (key.trim(), value.trim());
        let ty = match key {
            "CN" => DnType::CommonName,
            "C" => DnType::CountryName,
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            other => {
                return Err(bad(format!(
                    "unknown attribute {other:?}; use CN, C, ST, L, O, OU"
                )))
            }
        };
        if value.is_empty()
            || value.chars().count() > 64
            || !value.chars().all(crate::fmt::is_safe_char)
        {
            return Err(bad(format!(
                "{key} must be 1-64 characters with no control characters"
            )));
        }
        if ty == DnType::CountryName
            && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(bad(
                "C must be a two-letter upper-case code such as NL".into()
            ));
        }
        // rcgen keeps one value per attribute type; a second would silently
        // replace the first.
        if out.iter().any(|(t, _)| *t == ty) {
            return Err(bad(format!("{key} is given twice")));
        }
        out.push((ty, value.to_owned()));
    }
    if !out.iter().any(|(t, _)| *t == DnType::CommonName) {
        return Err(bad("a CN is required".into()));
    }
    out.sort_by_key(|(ty, _)| rdn_rank(ty));
    Ok(out)
}

/// A subject attribute's place in the conventional order.
fn rdn_rank(ty: &DnType) -> u8 {
    match ty {
        DnType::CountryName => 0,
        DnType::StateOrProvinceName => 1,
        DnType::LocalityName => 2,
        DnType::OrganizationName => 3,
        DnType::OrganizationalUnitName => 4,
        _ => 5,
    }
}

pub(super) fn ca_params(
    serial: SerialNumber,
    public_key_raw: &[u8],
    subject: &[(DnType, String)],
    path_len: u8,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    signed_by_other: bool,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in subject {
        params
            .distinguished_name
            .push(ty.clone(), dn_value(ty, value));
    }
    // RFC 5280 §4.2.1.9: critical BasicConstraints with a path length limit.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    // RFC 5280 §4.2.1.3: a CA signs certificates (and CRLs, should it ever publish them).
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(serial);
    params.not_before = not_before;
    params.not_after = not_after;
    params.use_authority_key_identifier_extension = signed_by_other;
    params.key_identifier_method = key_identifier(public_key_raw);
    params
}

/// Creates a CA in `options.dir`. Nothing is written unless every key and
/// certificate was made; existing files are only replaced with `force`.
pub fn create_ca(options: &InitOptions, now: OffsetDateTime) -> Result<CreatedCa, CaError> {
    let subject = parse_subject(&options.subject)?;
    if options.validity_days == 0 || options.validity_days > 36_500 {
        return Err(CaError::Create(
            "--validity-days must be between 1 and 36500".into(),
        ));
    }
    let targets: Vec<&str> = if options.intermediate {
        vec![
            ROOT_KEY_FILE,
            ROOT_CERT_FILE,
            CA_KEY_FILE,
            CA_CERT_FILE,
            CHAIN_FILE,
        ]
    } else {
        vec![CA_KEY_FILE, CA_CERT_FILE, CHAIN_FILE]
    };
    if !options.force {
        let existing = [
            ROOT_KEY_FILE,
            ROOT_CERT_FILE,
            CA_KEY_FILE,
            CA_CERT_FILE,
            CHAIN_FILE,
        ]
        .iter()
        .map(|f| options.dir.join(f))
        .find(|p| p.exists());
        if let Some(path) = existing {
            return Err(CaError::WouldOverwrite(path.display().to_string()));
        }
    }

    // Backdated an hour, so relying parties whose clocks run a little behind
    // accept the CA (and leaf backdates are not clamped away) from the start.
    let not_before = now - Duration::hours(1);
    let serial = || random_serial().map_err(|e| CaError::Create(e.to_string()));
    let not_after = now + Duration::days(i64::from(options.validity_days));
    // The key and the PEM written for it (PKCS#8 as every reader accepts it:
    // v1 for Ed25519, see `FreshKey`).
    let generate = || -> Result<(KeyPair, String), CaError> {
        let fresh = options
            .key_type
            .generate_fresh()
            .map_err(|e| CaError::Create(e.to_string()))?;
        let pem = fresh.private_key_pem();
        let key = KeyPair::from_pem(pem.expose())
            .map_err(|e| CaError::Create(format!("the new key does not parse: {e}")))?;
        Ok((key, pem.expose().to_owned()))
    };
    let sign_err = |e: rcgen::Error| CaError::Create(format!("signing failed: {e}"));

    let mut outputs: Vec<(&str, String, FileKind)> = Vec::new();
    let issuing_cert_pem;
    if options.intermediate {
        let (root_key, root_key_pem) = generate()?;
        let mut root_subject = subject.clone();
        for (ty, value) in root_subject.iter_mut() {
            if *ty == DnType::CommonName {
                *value = root_name(value);
            }
        }
        let root_params = ca_params(
            serial()?,
            root_key.public_key_raw(),
            &root_subject,
            1,
            not_before,
            not_after,
            false,
        );
        let root_cert = root_params.self_signed(&root_key).map_err(sign_err)?;
        let root_issuer = Issuer::new(root_params, root_key);
        let (ca_key, ca_key_pem) = generate()?;
        let ca_params = ca_params(
            serial()?,
            ca_key.public_key_raw(),
            &subject,
            0,
            not_before,
            not_after,
            true,
        );
        let ca_cert = ca_params
            .signed_by(&ca_key, &root_issuer)
            .map_err(sign_err)?;
        issuing_cert_pem = ca_cert.pem();
        outputs.push((ROOT_KEY_FILE, root_key_pem, FileKind::Secret));
        outputs.push((ROOT_CERT_FILE, root_cert.pem(), FileKind::Public));
        outputs.push((CA_KEY_FILE, ca_key_pem, FileKind::Secret));
        outputs.push((CA_CERT_FILE, ca_cert.pem(), FileKind::Public));
        outputs.push((
            CHAIN_FILE,
            format!("{}{}", ca_cert.pem(), root_cert.pem()),
            FileKind::Public,
        ));
    } else {
        let (key, key_pem) = generate()?;
        let params = ca_params(
            serial()?,
            key.public_key_raw(),
            &subject,
            options.path_len,
            not_before,
            not_after,
            false,
        );
        let cert = params.self_signed(&key).map_err(sign_err)?;
        issuing_cert_pem = cert.pem();
        outputs.push((CA_KEY_FILE, key_pem, FileKind::Secret));
        outputs.push((CA_CERT_FILE, cert.pem(), FileKind::Public));
        outputs.push((CHAIN_FILE, cert.pem(), FileKind::Public));
    }
    debug_assert_eq!(outputs.len(), targets.len());

    if options.force && !options.intermediate {
        // A forced single-level CA must not leave a stale root behind.
        for stale in [ROOT_KEY_FILE, ROOT_CERT_FILE] {
            let _ = std::fs::remove_file(options.dir.join(stale));
        }
    }
    let files = write_all(&options.dir, outputs, options.force)?;
    Ok(CreatedCa {
        files,
        issuing_cert_pem,
        not_after,
    })
}

/// Writes `outputs` (file name, contents, kind) into `dir` (created 0700):
/// every file is written to a temporary file first, and only when all
/// exist are they renamed into place, so a failure leaves no partial CA.
/// Without `force`, a file that appeared meanwhile is not replaced.
pub(super) fn write_all(
    dir: &Path,
    outputs: Vec<(&str, String, FileKind)>,
    force: bool,
) -> Result<Vec<PathBuf>, CaError> {
    create_private_dir(dir)
        .map_err(|e| CaError::Create(format!("cannot create {}: {e}", dir.display())))?;
    let mut staged = Vec::new();
    for (name, contents, kind) in outputs {
        let path = dir.join(name);
        let tmp = stage(&path, contents.as_bytes(), kind)
            .map_err(|e| CaError::Create(format!("cannot write {}: {e}", path.display())))?;
        staged.push((path, tmp));
    }
    let mut files = Vec::new();
    for (path, tmp) in staged {
        let placed = if force {
            tmp.persist(&path)
        } else {
            // Refuse to replace a file that appeared since the caller's check.
            tmp.persist_noclobber(&path)
        };
        placed.map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                CaError::WouldOverwrite(path.display().to_string())
            } else {
                CaError::Create(format!("cannot write {}: {}", path.display(), e.error))
            }
        })?;
        files.push(path);
    }
    sync_dir(dir);
    Ok(files)
}

fn root_name(cn: &str) -> String {
    let name = format!("{cn} Root");
    if name.chars().count() <= 64 {
        name
    } else {
        format!("{} Root", cn.chars().take(59).collect::<String>())
    }
}

/// Whether `dir` already holds a CA.
pub fn ca_exists(dir: &Path) -> bool {
    super::file::FileCaSource::exists_in(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_in_the_conventional_order_whatever_the_text_says() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        for (intermediate, subject) in [
            (false, "CN=Payments CA,O=Example Bank,C=NL"),
            (true, "OU=PKI,CN=Payments CA,C=NL,O=Example Bank"),
        ] {
            let created = create_ca(
                &InitOptions {
                    dir: dir.path().to_path_buf(),
                    key_type: KeyType::EcdsaP256,
                    subject: subject.into(),
                    validity_days: 30,
                    intermediate,
                    path_len: 0,
                    force: true,
                },
                now,
            )
            .unwrap();
            let (_, pem) =
                x509_parser::pem::parse_x509_pem(created.issuing_cert_pem.as_bytes()).unwrap();
            let cert = pem.parse_x509().unwrap();
            let order: Vec<String> = cert
                .subject()
                .iter_rdn()
                .flat_map(|rdn| rdn.iter())
                .map(|a| {
                    x509_parser::objects::oid2abbrev(
                        a.attr_type(),
                        x509_parser::objects::oid_registry(),
                    )
                    .unwrap()
                    .to_owned()
                })
                .collect();
            let expected = if intermediate {
                ["C", "O", "OU", "CN"].as_slice()
            } else {
                ["C", "O", "CN"].as_slice()
            };
            assert_eq!(order, expected, "{subject}");
        }
        let twice = parse_subject("CN=x,OU=A,OU=B").unwrap_err().to_string();
        assert!(twice.contains("OU is given twice"), "{twice}");
    }
}
