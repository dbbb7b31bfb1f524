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
    Ok(serial_of(&bytes))
}

/// The serial of these big-endian octets (top bit clear), without the
/// leading zero octets DER would drop (one octet at least).
fn serial_of(bytes: &[u8; 16]) -> SerialNumber {
    let significant = bytes.iter().position(|&b| b != 0).unwrap_or(15);
    SerialNumber::from_slice(&bytes[significant..])
}

/// A leaf certificate's serial number: the issuance time in milliseconds
/// since 1970 (48 bits) followed by 80 random bits from the OS CSPRNG, 16
/// octets, positive (RFC 5280 §4.1.2.2: unique, positive, at most 20
/// octets; CA/B BR §7.1: at least 64 random bits). Serials made later sort
/// later, so the ledger's indexes grow at their end instead of taking
/// every write at a random page (`benches/ledger_store.rs` measures both);
/// the time they show is the moment of signing, which the certificate's
/// `notBefore` tells anyway.
pub fn ordered_serial() -> Result<SerialNumber, RandomFailed> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes[6..])
        .map_err(|_| RandomFailed)?;
    // The wall clock's milliseconds (the service clock keeps whole seconds).
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // 48 bits of milliseconds, the top one clear: positive until the year 6429.
    bytes[..6].copy_from_slice(&(millis & 0x7fff_ffff_ffff).to_be_bytes()[2..]);
    Ok(serial_of(&bytes))
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

    #[test]
    fn leaf_serials_are_positive_ordered_by_time_and_mostly_random() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let serials: Vec<Vec<u8>> = (0..2000)
            .map(|_| ordered_serial().unwrap().to_bytes())
            .collect();
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let mut distinct_tails = std::collections::HashSet::new();
        for (i, serial) in serials.iter().enumerate() {
            // 16 octets (the time's top octet is non-zero from 2004 to the
            // year 6429), positive, and the DER integer the certificate holds.
            assert_eq!(serial.len(), 16, "{serial:02x?}");
            assert_eq!(serial[0] & 0x80, 0, "positive: {serial:02x?}");
            assert_eq!(der_integer_content(serial), *serial);
            let mut millis = [0u8; 8];
            millis[2..].copy_from_slice(&serial[..6]);
            let millis = u128::from(u64::from_be_bytes(millis));
            assert!(
                (before..=after).contains(&millis),
                "{millis} not in {before}..={after}"
            );
            if i > 0 {
                assert!(serials[i - 1][..6] <= serial[..6], "time prefix went back");
            }
            distinct_tails.insert(serial[6..].to_vec());
        }
        assert_eq!(distinct_tails.len(), serials.len(), "80 random bits repeat");
        // Hex of equal-length serials sorts as they were made.
        let hex: Vec<String> = serials.iter().map(|s| hex_of(s)).collect();
        let mut sorted = hex.clone();
        sorted.sort();
        assert_eq!(
            sorted.iter().map(|h| &h[..12]).collect::<Vec<_>>(),
            hex.iter().map(|h| &h[..12]).collect::<Vec<_>>()
        );
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
