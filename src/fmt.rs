//! Text vocabulary shared by many modules: lower-case hex, RFC 3339 times,
//! the characters allowed in claims and names, and duration settings.
//! A leaf: it imports nothing of ours.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The RFC 8705 §3.1 certificate thumbprint `x5t#S256`: the SHA-256 of
/// the DER certificate, base64url without padding (RFC 7515 §2).
pub fn x5t_s256(sha256: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256)
}

/// Appends `text` as a JSON string, escaped by serde_json (for the lean
/// writers of audit and EMF lines).
pub fn json_string(out: &mut Vec<u8>, text: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(out, text);
}

/// RFC 3339 text of a time (UTC, whole seconds).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Whether a character may appear in a claim or identifier: no C0/C1 control
/// characters (NUL included) and no bidirectional overrides, which could make
/// a log line or a certificate dump read differently from what it holds.
pub fn is_safe_char(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `name` may name a CA, a profile or an HMAC key: 1-64 characters
/// of A-Z, a-z, 0-9, '_' and '-'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A duration setting written as text (`"5m"`, `"30s"`, `"1h 30m"`) or whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSetting(pub Duration);

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"5m\", \"30s\" or whole seconds")
        })? {
            Raw::Seconds(s) => Ok(DurationSetting(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(&t)
                .map(DurationSetting)
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {t:?} ({e}); write e.g. \"5m\", \"30s\" or \"1h\""
                    ))
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn thumbprints_are_base64url_without_padding() {
        // RFC 4648 §10 vectors, in the URL-safe alphabet.
        assert_eq!(x5t_s256(b"fo"), "Zm8");
        assert_eq!(x5t_s256(&[0xfb, 0xff]), "-_8");
        assert_eq!(x5t_s256(&[0u8; 32]).len(), 43);
    }

    #[test]
    fn unsafe_characters_are_flagged() {
        assert!(is_safe_char('a'));
        assert!(is_safe_char('é'));
        for c in ['\0', '\n', '\u{7f}', '\u{85}', '\u{202E}', '\u{2067}'] {
            assert!(!is_safe_char(c), "{c:?}");
        }
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(is_valid_name("payments-ca_2"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name(&"x".repeat(65)));
    }
}
