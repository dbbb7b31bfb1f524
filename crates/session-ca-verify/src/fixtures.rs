//! Certificates made by OpenSSL for the unit tests (`tests/fixtures/README.md`
//! has the commands), so that no certificate generator is a dependency.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Self-signed root CA, `CN=Root`, valid for 10 years.
pub(crate) const ROOT_PEM: &str = include_str!("../tests/fixtures/root.pem");
/// Intermediate CA, `CN=Issuing`, signed by [`ROOT_PEM`], valid for 10 years.
pub(crate) const ISSUING_PEM: &str = include_str!("../tests/fixtures/issuing.pem");
/// Client certificate, `CN=s-1`, signed by [`ISSUING_PEM`], valid for 1
/// year, with claims under the default arc.
pub(crate) const LEAF_PEM: &str = include_str!("../tests/fixtures/leaf.pem");

/// The one certificate of a PEM document, DER.
pub(crate) fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}
