//! Writing an issuance response's credentials to files: PEM files or a PKCS#12 key store.

use std::path::{Path, PathBuf};

use crate::files::{self, FileKind};
use crate::wire::IssueResponse;

/// The certificate file written by [`write_pem_files`].
pub const CERT_FILE: &str = "cert.pem";
/// The private key file (mode 0600) written by [`write_pem_files`].
pub const KEY_FILE: &str = "key.pem";
/// The CA chain file written by [`write_pem_files`].
pub const CHAIN_FILE: &str = "chain.pem";

/// Writes `cert.pem`, `key.pem` (0600; not in CSR mode, where the caller
/// holds the key) and `chain.pem` into `dir` (created 0700 if absent). All
/// files are first written to temporary files beside their targets and
/// renamed into place only when every one is complete, so a failure leaves
/// the previous files untouched rather than a mix of old and new. Returns
/// the paths written.
pub fn write_pem_files(dir: &Path, response: &IssueResponse) -> std::io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        files::create_private_dir(dir)?;
    }
    let chain: String = response.ca_chain.concat();
    let mut parts: Vec<(PathBuf, &[u8], FileKind)> = Vec::new();
    if let Some(key) = &response.private_key {
        parts.push((dir.join(KEY_FILE), key.as_bytes(), FileKind::Secret));
    }
    parts.push((
        dir.join(CERT_FILE),
        response.certificate.as_bytes(),
        FileKind::Public,
    ));
    parts.push((dir.join(CHAIN_FILE), chain.as_bytes(), FileKind::Public));
    persist_all(parts)
}

/// Writes the PKCS#12 key store of `response` to `path` and its password to
/// `path` + `.password`, both 0600, with the same all-or-nothing staging as
/// [`write_pem_files`]. Returns the paths written.
pub fn write_pkcs12_file(path: &Path, response: &IssueResponse) -> std::io::Result<Vec<PathBuf>> {
    use base64::Engine as _;
    let Some(store) = &response.pkcs12 else {
        return Err(std::io::Error::other(
            "the signer's response carries no PKCS#12 key store",
        ));
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(&store.base64)
        .map_err(|e| std::io::Error::other(format!("the PKCS#12 key store is not base64: {e}")))?;
    let mut password_path = path.as_os_str().to_owned();
    password_path.push(".password");
    let password_line = format!("{}\n", store.password);
    persist_all(vec![
        (path.to_path_buf(), &der, FileKind::Secret),
        (
            PathBuf::from(password_path),
            password_line.as_bytes(),
            FileKind::Secret,
        ),
    ])
}

fn persist_all(parts: Vec<(PathBuf, &[u8], FileKind)>) -> std::io::Result<Vec<PathBuf>> {
    let mut staged = Vec::with_capacity(parts.len());
    for (path, contents, kind) in parts {
        let tmp = files::stage(&path, contents, kind)?;
        staged.push((path, tmp));
    }
    let mut written = Vec::with_capacity(staged.len());
    for (path, tmp) in staged {
        tmp.persist(&path).map_err(|e| e.error)?;
        files::sync_dir(path.parent().unwrap_or(Path::new(".")));
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Pkcs12Body;

    fn response(private_key: Option<&str>, pkcs12: Option<Pkcs12Body>) -> IssueResponse {
        IssueResponse {
            serial: "01".into(),
            certificate: "CERT\n".into(),
            private_key: private_key.map(str::to_owned),
            ca_chain: vec!["ISSUER\n".into(), "ROOT\n".into()],
            not_before: String::new(),
            not_after: String::new(),
            renew_after: String::new(),
            key_type: "ecdsa-p256".into(),
            fingerprint_sha256: String::new(),
            x5t_s256: String::new(),
            profile: "default".into(),
            session_id: "s".into(),
            request_id: "r".into(),
            pkcs12,
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn pem_files_are_written_with_their_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("creds");
        let written = write_pem_files(&out, &response(Some("KEY\n"), None)).unwrap();
        assert_eq!(
            written,
            [
                out.join(KEY_FILE),
                out.join(CERT_FILE),
                out.join(CHAIN_FILE)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(out.join(KEY_FILE)).unwrap(),
            "KEY\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(CERT_FILE)).unwrap(),
            "CERT\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join(CHAIN_FILE)).unwrap(),
            "ISSUER\nROOT\n"
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&out), 0o700);
            assert_eq!(mode(&out.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&out.join(CERT_FILE)), 0o644);
        }
    }

    #[test]
    fn csr_mode_writes_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_pem_files(dir.path(), &response(None, None)).unwrap();
        assert_eq!(written.len(), 2);
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn pkcs12_files_are_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.p12");
        let store = Pkcs12Body {
            base64: "AAEC".into(),
            password: "pw".into(),
        };
        let written = write_pkcs12_file(&path, &response(Some("KEY"), Some(store))).unwrap();
        let password = dir.path().join("client.p12.password");
        assert_eq!(written, [path.clone(), password.clone()]);
        assert_eq!(std::fs::read(&path).unwrap(), [0, 1, 2]);
        assert_eq!(std::fs::read_to_string(&password).unwrap(), "pw\n");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&password), 0o600);
        }
    }

    #[test]
    fn a_response_without_a_store_or_with_a_broken_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.p12");
        let err = write_pkcs12_file(&path, &response(Some("KEY"), None)).unwrap_err();
        assert!(err.to_string().contains("no PKCS#12"), "{err}");
        let broken = Pkcs12Body {
            base64: "not base64!".into(),
            password: "pw".into(),
        };
        let err = write_pkcs12_file(&path, &response(Some("KEY"), Some(broken))).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
