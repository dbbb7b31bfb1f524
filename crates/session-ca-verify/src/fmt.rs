//! Text and time forms shared by the verifier and its errors: lower-case
//! hex, RFC 3339 times, and rustls's `UnixTime`. A leaf: it imports
//! nothing of this crate.

use std::time::Duration;

use rustls_pki_types::UnixTime;
use time::OffsetDateTime;

/// Lower-case hex of `bytes`, two digits a byte, no separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// RFC 3339 text of a time (UTC, whole seconds).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A time as rustls's `UnixTime`.
pub(crate) fn unix_time(at: OffsetDateTime) -> UnixTime {
    // Times before 1970 cannot be expressed; no certificate we check is that old.
    let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn rfc3339_is_utc_text() {
        let t = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        assert_eq!(rfc3339(t), "2026-01-01T00:00:00Z");
    }
}
