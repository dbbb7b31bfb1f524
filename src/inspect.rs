//! `session-ca inspect`: decode an issued certificate's validity, subject and claims, and verify it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use session_ca_verify::{decode_claim_value, FixedClock, ObjectId, Verifier, VerifyError};

use crate::fmt::{hex, is_safe_char, rfc3339, x5t_s256};

/// One claim extension found in a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundClaim {
    /// The claim's name when the configuration knows the OID.
    pub name: Option<String>,
    /// The extension OID.
    pub oid: String,
    /// The decoded value, or why it could not be decoded.
    pub value: Result<String, String>,
    /// Whether the extension is marked critical.
    pub critical: bool,
}

/// What `inspect` reports about a certificate.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial, lower-case hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Subject alternative names, as text.
    pub sans: Vec<String>,
    /// Claim extensions: known OIDs and anything under the claim arc.
    pub claims: Vec<FoundClaim>,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint_sha256: String,
    /// The RFC 8705 thumbprint `x5t#S256` (base64url SHA-256 of the DER).
    pub x5t_s256: String,
}

/// Reads the first certificate from PEM, or DER (a DER certificate starts
/// with a SEQUENCE tag, 0x30).
pub fn read_certificate(input: &[u8]) -> Result<CertificateDer<'static>, InspectError> {
    if input.first() == Some(&0x30) {
        return Ok(CertificateDer::from(input.to_vec()));
    }
    match CertificateDer::pem_slice_iter(input).next() {
        Some(first) => first.map_err(|e| InspectError::Malformed(format!("malformed PEM: {e}"))),
        None => Err(InspectError::Malformed(
            "neither a DER certificate nor PEM with a CERTIFICATE block".into(),
        )),
    }
}

/// Decodes a certificate. `names` maps claim OIDs to names; extensions
/// under `claim_arc` are shown even when unnamed.
pub fn inspect(
    der: &CertificateDer<'_>,
    names: &BTreeMap<ObjectId, String>,
    claim_arc: &ObjectId,
) -> Result<Inspection, InspectError> {
    let (rest, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| InspectError::Malformed(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(InspectError::Malformed(
            "trailing bytes after the certificate".into(),
        ));
    }
    let mut sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            sans.push(match name {
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::RFC822Name(e) => format!("email:{e}"),
                other => format!("{other:?}"),
            });
        }
    }
    let mut claims = Vec::new();
    for ext in cert.extensions() {
        let oid_text = ext.oid.to_id_string();
        let Ok(oid) = oid_text.parse::<ObjectId>() else {
            continue;
        };
        let name = names.get(&oid).cloned();
        if name.is_none() && !oid.is_below(claim_arc) {
            continue;
        }
        claims.push(FoundClaim {
            name,
            oid: oid_text,
            value: decode_claim_value(ext.value).map_err(|e| e.to_string()),
            critical: ext.critical,
        });
    }
    let fingerprint = crate::crypto::sha256(der.as_ref());
    Ok(Inspection {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex(cert.raw_serial()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sans,
        claims,
        fingerprint_sha256: hex(fingerprint.as_ref()),
        x5t_s256: x5t_s256(fingerprint.as_ref()),
    })
}

/// Verifies `leaf` as a TLS client certificate against the CA certificates
/// in `ca_pem` at exactly `now` (no clock skew), with rustls-webpki. The
/// check is [`Verifier`]'s: self-signed certificates in
/// `ca_pem` are trust anchors and the rest intermediates (with no
/// self-signed certificate, every one is an anchor), the anchor must be
/// within its own validity, and the leaf itself must name clientAuth. Claims
/// are not checked here; `inspect` shows them.
pub fn verify_client_certificate(
    leaf: &CertificateDer<'_>,
    ca_pem: &[u8],
    now: OffsetDateTime,
) -> Result<(), InspectError> {
    let verifier = Verifier::builder()
        .ca_pem(ca_pem)
        .clock(Arc::new(FixedClock::new(now)))
        .skew(std::time::Duration::ZERO)
        .build()
        .map_err(|e| InspectError::Malformed(format!("CA file: {e}")))?;
    match verifier.verify_trust(leaf, &[]) {
        Ok(()) => Ok(()),
        Err(e @ (VerifyError::MalformedCertificate(_) | VerifyError::NoCertificate)) => {
            Err(InspectError::Malformed(format!("certificate: {e}")))
        }
        Err(e) => Err(InspectError::NotVerified(e.to_string())),
    }
}

/// Certificate text with control and bidi-override characters escaped, so a
/// hostile certificate cannot rewrite the terminal it is inspected in.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if is_safe_char(c) {
                c.to_string()
            } else {
                c.escape_unicode().to_string()
            }
        })
        .collect()
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subject:      {}", printable(&self.subject))?;
        writeln!(f, "issuer:       {}", printable(&self.issuer))?;
        writeln!(f, "serial:       {}", self.serial)?;
        writeln!(f, "not before:   {}", rfc3339(self.not_before))?;
        writeln!(f, "not after:    {}", rfc3339(self.not_after))?;
        writeln!(f, "sha256:       {}", self.fingerprint_sha256)?;
        writeln!(f, "x5t#S256:     {}", self.x5t_s256)?;
        for san in &self.sans {
            writeln!(f, "SAN:          {}", printable(san))?;
        }
        if self.claims.is_empty() {
            writeln!(f, "claims:       none")?;
        } else {
            writeln!(f, "claims:")?;
            for claim in &self.claims {
                let name = claim.name.as_deref().unwrap_or("(unnamed)");
                let critical = if claim.critical { " [critical]" } else { "" };
                match &claim.value {
                    Ok(v) => writeln!(f, "  {name} ({}){critical}: {v:?}", claim.oid)?,
                    Err(e) => writeln!(f, "  {name} ({}){critical}: <{e}>", claim.oid)?,
                }
            }
        }
        Ok(())
    }
}

/// Errors of `inspect`.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The input is not a certificate (or the CA file holds none).
    #[error("{0}")]
    Malformed(String),
    /// The certificate does not verify against the given CAs.
    #[error("the certificate does not verify against the given CA: {0}")]
    NotVerified(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_are_neutralised() {
        assert_eq!(printable("CN=ok"), "CN=ok");
        assert_eq!(printable("CN=\u{1b}[2J"), "CN=\\u{1b}[2J");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(read_certificate(b"hello").is_err());
        let der = read_certificate(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
        let names = BTreeMap::new();
        let arc: ObjectId = session_ca_verify::DEFAULT_OID_ARC.parse().unwrap();
        assert!(inspect(&der, &names, &arc).is_err());
    }
}
