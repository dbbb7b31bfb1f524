//! X.509 vocabulary shared by the issuer, the CA loader and `init`: serial
//! numbers, key identifiers, DN values and PEM text. A leaf: it imports
//! nothing of ours but the build's crypto library.

use rcgen::{DnType, DnValue, KeyIdMethod, SerialNumber};
use rustls_pki_types::CertificateDer;

use crate::crypto::rand::{SecureRandom, SystemRandom};

/// The operating system's CSPRNG failed; nothing random can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system CSPRNG failed")]
pub struct RandomFailed;

/// A positive serial number of 127 random bits from the OS CSPRNG (RFC 5280
/// §4.1.2.2: unique, positive, at most 20 octets; CA/B BR §7.1: at least 64
/// random bits). DER drops leading zero octets, so 1 serial in 256 is shorter.
pub fn random_serial() -> Result<SerialNumber, RandomFailed> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomFailed)?;
    bytes[0] &= 0x7f;
    let significant = bytes.iter().position(|&b| b != 0).unwrap_or(15);
    Ok(SerialNumber::from_slice(&bytes[significant..]))
}

/// The content octets of a positive DER INTEGER with these big-endian
/// bytes (X.690 §8.3): leading zeros dropped, one zero put back when the
/// top bit would otherwise make it negative. This is what the certificate
/// holds and what `openssl x509 -serial` prints.
pub fn der_integer_content(bytes: &[u8]) -> Vec<u8> {
    let significant = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let value = &bytes[significant..];
    match value.first() {
        None => vec![0],
        Some(&first) if first >= 0x80 => [&[0][..], value].concat(),
        Some(_) => value.to_vec(),
    }
}

/// A key identifier by RFC 7093 §2 method 1: the leftmost 160 bits of the
/// SHA-256 hash of the subjectPublicKey BIT STRING value.
pub fn key_identifier(subject_public_key: &[u8]) -> KeyIdMethod {
    let digest = crate::crypto::sha256(subject_public_key);
    KeyIdMethod::PreSpecified(digest.as_ref()[..20].to_vec())
}

/// The DER string type of a subject attribute's value: RFC 5280 Appendix A
/// makes countryName a PrintableString; the rest are UTF8String.
pub fn dn_value(ty: &DnType, value: &str) -> DnValue {
    match (ty, rcgen::string::PrintableString::try_from(value)) {
        (DnType::CountryName, Ok(p)) => DnValue::PrintableString(p),
        _ => DnValue::Utf8String(value.to_owned()),
    }
}

/// PEM text of one DER certificate (RFC 7468), LF line endings.
pub fn to_pem(der: &CertificateDer<'_>) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.as_ref().to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_hex_is_the_der_integer() {
        assert_eq!(der_integer_content(&[0x00, 0x8a, 0x01]), [0x00, 0x8a, 0x01]);
        assert_eq!(der_integer_content(&[0x8a, 0x01]), [0x00, 0x8a, 0x01]);
        assert_eq!(der_integer_content(&[0x00, 0x00, 0x7f]), [0x7f]);
        assert_eq!(der_integer_content(&[0x00, 0x00]), [0x00]);
        for _ in 0..2000 {
            let serial = random_serial().unwrap().to_bytes();
            let content = der_integer_content(&serial);
            assert!(content.len() <= 16, "{content:02x?}");
            assert_eq!(content[0] & 0x80, 0, "positive");
            // What yasna (and so the certificate) writes for it.
            let der = yasna::construct_der(|w| w.write_bigint_bytes(&serial, true));
            assert_eq!(&der[2..], &content[..], "{serial:02x?}");
        }
    }
}
