//! A small PKI made by OpenSSL at run time, in a temporary directory: a
//! root, an issuing CA (keyUsage keyCertSign and cRLSign, as session-ca's
//! CAs have), client certificates, and CRLs from `openssl ca -gencrl`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tempfile::TempDir;
use time::OffsetDateTime;

/// A CA: its certificate and key files.
pub struct Ca {
    pub cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        read(&self.cert)
    }
}

/// The PKI: CAs and client certificates, all under one temporary directory.
pub struct Pki {
    dir: TempDir,
    pub root: Ca,
    pub issuing: Ca,
    /// Client certificates from `issuing`, serials 0x10 and 0x11.
    pub good: PathBuf,
    pub revoked: PathBuf,
    /// The CRL number of the next CRL made: each is one greater, as a CA's are.
    next_number: std::sync::atomic::AtomicU32,
}

/// Runs openssl with `args` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

const CA_EXT: &str = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = self_signed(dir.path(), "root", "/CN=Root");
        let issuing = issued_ca(dir.path(), &root, "issuing", "/CN=Issuing");
        let good = client(dir.path(), &issuing, "good", "0x10");
        let revoked = client(dir.path(), &issuing, "revoked", "0x11");
        Pki {
            next_number: std::sync::atomic::AtomicU32::new(1),
            dir,
            root,
            issuing,
            good,
            revoked,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A self-signed CA named `subject` (another CA, or an impostor).
    pub fn other_ca(&self, name: &str, subject: &str) -> Ca {
        self_signed(self.path(), name, subject)
    }

    /// A CRL (PEM) by `ca`, revoking `revoked` for keyCompromise, with
    /// thisUpdate `last` and nextUpdate `next`.
    pub fn crl(
        &self,
        ca: &Ca,
        revoked: &[&Path],
        last: OffsetDateTime,
        next: OffsetDateTime,
    ) -> String {
        let db = tempfile::tempdir_in(self.path()).unwrap();
        let d = db.path();
        std::fs::write(d.join("index.txt"), "").unwrap();
        let number = self
            .next_number
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(d.join("crlnumber"), format!("{number:04X}\n")).unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\ncrlnumber = {0}/crlnumber\n\
                 default_md = sha256\n",
                d.display()
            ),
        )
        .unwrap();
        let (cert, key) = (ca.cert.to_str().unwrap(), ca.key.to_str().unwrap());
        for leaf in revoked {
            openssl(
                d,
                &[
                    "ca",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    cert,
                    "-keyfile",
                    key,
                    "-revoke",
                    leaf.to_str().unwrap(),
                    "-crl_reason",
                    "keyCompromise",
                ],
            );
        }
        openssl(
            d,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-cert",
                cert,
                "-keyfile",
                key,
                "-gencrl",
                "-crl_lastupdate",
                &asn1_time(last),
                "-crl_nextupdate",
                &asn1_time(next),
                "-out",
                "crl.pem",
            ],
        );
        read(&d.join("crl.pem"))
    }

    /// The certificate at `path`, DER, with the issuing CA after it: the
    /// chain a client sends.
    pub fn chain(&self, leaf: &Path) -> Vec<CertificateDer<'static>> {
        [read(leaf), self.issuing.pem()]
            .iter()
            .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .collect()
    }
}

/// The DER of the first CRL in a PEM document.
pub fn crl_der(pem: &str) -> Vec<u8> {
    rustls_pki_types::CertificateRevocationListDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn asn1_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn self_signed(dir: &Path, name: &str, subject: &str) -> Ca {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            subject,
            "-days",
            "3650",
            "-sha256",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &cert,
        ],
    );
    Ca {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

fn issued_ca(dir: &Path, by: &Ca, name: &str, subject: &str) -> Ca {
    std::fs::write(dir.join(format!("{name}.ext")), CA_EXT).unwrap();
    issue(dir, by, name, subject, "0x02", 3650)
}

fn client(dir: &Path, by: &Ca, name: &str, serial: &str) -> PathBuf {
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n1.3.6.1.4.1.32473.1.1=DER:0C:03:73:2D:31\n",
    )
    .unwrap();
    issue(dir, by, name, &format!("/CN={name}"), serial, 365).cert
}

fn issue(dir: &Path, by: &Ca, name: &str, subject: &str, serial: &str, days: u32) -> Ca {
    let (cert, key, csr, ext) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            subject,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            by.cert.to_str().unwrap(),
            "-CAkey",
            by.key.to_str().unwrap(),
            "-set_serial",
            serial,
            "-days",
            &days.to_string(),
            "-sha256",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    Ca {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}
