//! HMAC request signing (`auth = "hmac"`), the server side: the keys by
//! id, the clock-skew window, header parsing, constant-time verification
//! and replay refusal. The scheme itself (string to sign, header format) and
//! the client side live in `session_ca_client::hmac`, so both ends share
//! one definition.
//!
//! The server refuses timestamps more than `max_skew` (300 s by default)
//! from its clock, compares signatures in constant time (`hmac::verify` of
//! ring or aws-lc-rs), and refuses a signature it has already accepted
//! within the window, so a captured request cannot be replayed against the
//! same process. Secrets never reach `Debug` output, logs or errors.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use session_ca_client::hmac::{canonical_path_and_query, string_to_sign, Secret, SCHEME};

/// The server side: the keys by id, the allowed skew, and the signatures
/// seen within the window.
pub struct HmacAuth {
    keys: BTreeMap<String, Secret>,
    max_skew: Duration,
    seen: Mutex<ReplayWindow>,
}

impl fmt::Debug for HmacAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacAuth")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

/// Signatures accepted recently, keyed by their first 16 bytes (a collision
/// needs 2^64 signatures), with their timestamps; entries older than the
/// window are dropped as time passes, so memory is bounded by the request
/// rate times the window (about 40 bytes per request).
#[derive(Default)]
struct ReplayWindow {
    seen: HashMap<[u8; 16], i64>,
    pruned_at: i64,
}

impl HmacAuth {
    /// Keys by id, and the largest accepted clock difference.
    pub fn new(keys: BTreeMap<String, Secret>, max_skew: Duration) -> HmacAuth {
        HmacAuth {
            keys,
            max_skew,
            seen: Mutex::new(ReplayWindow::default()),
        }
    }

    /// The configured key ids.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks a request's `Authorization` header at `now` (unix seconds)
    /// and returns the key id that signed it.
    pub fn verify(
        &self,
        authorization: Option<&str>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now: i64,
    ) -> Result<String, HmacError> {
        self.verify_at(authorization, method, path_and_query, None, body, now)
    }

    /// As [`verify`](Self::verify), for a request routed on
    /// `path_and_query` that the client sent to `client_path` (behind an
    /// API Gateway stage or a custom domain's base path, which the client
    /// signs as part of its URL's path): a signature over either path is
    /// good.
    pub fn verify_at(
        &self,
        authorization: Option<&str>,
        method: &str,
        path_and_query: &str,
        client_path: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<String, HmacError> {
        let header = authorization.ok_or(HmacError::Missing)?;
        let fields = parse_header(header)?;
        let secret = self
            .keys
            .get(fields.key_id)
            .ok_or_else(|| HmacError::UnknownKey(printable(fields.key_id)))?;
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        if fields.timestamp.abs_diff(now) > skew.unsigned_abs() {
            return Err(HmacError::Stale {
                timestamp: fields.timestamp,
                now,
                max_skew: self.max_skew.as_secs(),
            });
        }
        let signed_over = |path_and_query: &str| {
            let message =
                string_to_sign(method, path_and_query, fields.timestamp, fields.nonce, body);
            secret.verify(&message, &fields.signature)
        };
        // The query as it arrived, or in canonical form: a REST API or an
        // ALB in front (through lambda_http) rebuilds it from the
        // parameters it parsed, in an order of its own.
        let signed_over_either = |path_and_query: &str| {
            signed_over(path_and_query)
                || (path_and_query.contains('?')
                    && signed_over(&canonical_path_and_query(path_and_query)))
        };
        let verified = signed_over_either(path_and_query)
            || client_path.is_some_and(|path| {
                signed_over_either(&match path_and_query.split_once('?') {
                    Some((_, query)) => format!("{path}?{query}"),
                    None => path.to_owned(),
                })
            });
        if !verified {
            return Err(HmacError::BadSignature);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&fields.signature[..16]);
        let mut window = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now - window.pruned_at >= 1 {
            window
                .seen
                .retain(|_, &mut t| t.abs_diff(now) <= skew.unsigned_abs());
            window.pruned_at = now;
        }
        if window.seen.insert(id, fields.timestamp).is_some() {
            return Err(HmacError::Replayed);
        }
        Ok(fields.key_id.to_owned())
    }
}

impl HmacAuth {
    /// The single-use name a request verified by [`verify`](Self::verify)
    /// claims in a store shared by every instance, and until when (Unix
    /// seconds: past its timestamp's window, where `verify` refuses it
    /// anyway). Named by its signature, which only its key could make.
    pub fn replay_claim(&self, authorization: &str) -> Option<(String, i64)> {
        let fields = parse_header(authorization).ok()?;
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        Some((
            format!("hmac#{}", crate::fmt::hex(&fields.signature[..16])),
            fields.timestamp.saturating_add(skew).saturating_add(1),
        ))
    }
}

struct HeaderFields<'a> {
    key_id: &'a str,
    timestamp: i64,
    nonce: &'a str,
    signature: Vec<u8>,
}

fn parse_header(header: &str) -> Result<HeaderFields<'_>, HmacError> {
    let malformed = |why: &str| HmacError::Malformed(why.to_owned());
    let rest = header
        .strip_prefix(SCHEME)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| malformed("the scheme must be SESSION-CA-HMAC-SHA256"))?;
    let (mut key_id, mut timestamp, mut nonce, mut signature) = (None, None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').ok_or_else(|| {
            malformed("expected KeyId=..., Timestamp=..., Nonce=..., Signature=...")
        })?;
        let slot = match name {
            "KeyId" => &mut key_id,
            "Timestamp" => &mut timestamp,
            "Nonce" => &mut nonce,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(
                    "unknown field; expected KeyId, Timestamp, Nonce, Signature",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed("a field appears twice"));
        }
    }
    let key_id = key_id.ok_or_else(|| malformed("KeyId is missing"))?;
    let timestamp = timestamp
        .ok_or_else(|| malformed("Timestamp is missing"))?
        .parse::<i64>()
        .map_err(|_| malformed("Timestamp must be whole seconds since 1970 (UTC)"))?;
    let nonce = nonce.ok_or_else(|| malformed("Nonce is missing"))?;
    if !(16..=64).contains(&nonce.len())
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(malformed(
            "Nonce must be 16 to 64 characters of A-Z a-z 0-9 - _, fresh for every request",
        ));
    }
    let signature = signature.ok_or_else(|| malformed("Signature is missing"))?;
    let signature = decode_hex(signature)
        .filter(|s| s.len() == 32)
        .ok_or_else(|| malformed("Signature must be 64 hex digits (HMAC-SHA256)"))?;
    Ok(HeaderFields {
        key_id,
        timestamp,
        nonce,
        signature,
    })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A key id as it may be echoed: at most 64 printable ASCII characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// Why a request's HMAC authentication failed. Messages say what to fix and
/// never carry a secret or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HmacError {
    /// No `Authorization` header.
    #[error("no Authorization header; sign the request: Authorization: SESSION-CA-HMAC-SHA256 KeyId=..., Timestamp=..., Nonce=..., Signature=...")]
    Missing,
    /// The header cannot be parsed.
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    /// No key with that id.
    #[error("unknown HMAC key id {0:?}")]
    UnknownKey(String),
    /// The timestamp is outside the window.
    #[error("the request's Timestamp {timestamp} is more than {max_skew} s from the signer's clock ({now}); sign with the current time (check the client's clock)")]
    Stale {
        /// The request's timestamp.
        timestamp: i64,
        /// The server's time.
        now: i64,
        /// The allowed difference in seconds.
        max_skew: u64,
    },
    /// The signature does not match.
    #[error("the HMAC signature does not match this request (method, path, timestamp, nonce and body SHA-256, signed with the key's secret)")]
    BadSignature,
    /// A signature already accepted within the window.
    #[error("this signature was already used; sign every request anew")]
    Replayed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_ca_client::hmac::{authorization, authorization_with_nonce, DEFAULT_MAX_SKEW};

    fn auth() -> (HmacAuth, Secret) {
        let secret = Secret::new(&[7u8; 32]).unwrap();
        let mut keys = BTreeMap::new();
        keys.insert("payments".to_owned(), secret.clone());
        (HmacAuth::new(keys, DEFAULT_MAX_SKEW), secret)
    }

    const NOW: i64 = 1_763_800_000;

    #[test]
    fn identical_requests_differ_by_their_nonce() {
        let (auth, secret) = auth();
        for _ in 0..3 {
            let header = authorization("payments", &secret, "POST", "/p", NOW, b"{}").unwrap();
            assert!(auth.verify(Some(&header), "POST", "/p", b"{}", NOW).is_ok());
        }
        // The nonce is signed: another nonce in the header breaks the signature.
        let header = authorization_with_nonce(
            "payments",
            &secret,
            "POST",
            "/p",
            NOW,
            "a".repeat(16).as_str(),
            b"",
        );
        let swapped = header.replace(&"a".repeat(16), &"b".repeat(16));
        assert_eq!(
            auth.verify(Some(&swapped), "POST", "/p", b"", NOW),
            Err(HmacError::BadSignature)
        );
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let (auth, secret) = auth();
        let header =
            authorization("payments", &secret, "POST", "/v1/certificates", NOW, b"{}").unwrap();
        assert_eq!(
            auth.verify(Some(&header), "POST", "/v1/certificates", b"{}", NOW + 10),
            Ok("payments".to_owned())
        );
        assert_eq!(
            auth.verify(Some(&header), "POST", "/v1/certificates", b"{}", NOW + 11),
            Err(HmacError::Replayed)
        );
    }

    #[test]
    fn every_signed_part_matters() {
        let (auth, secret) = auth();
        let header =
            authorization("payments", &secret, "POST", "/v1/certificates", NOW, b"{}").unwrap();
        for (method, path, body) in [
            ("GET", "/v1/certificates", &b"{}"[..]),
            ("POST", "/v1/certificates?x=1", b"{}"),
            ("POST", "/v1/certificates", b"{ }"),
        ] {
            assert_eq!(
                auth.verify(Some(&header), method, path, body, NOW),
                Err(HmacError::BadSignature),
                "{method} {path}"
            );
        }
        let other = Secret::new(&[8u8; 32]).unwrap();
        let forged =
            authorization("payments", &other, "POST", "/v1/certificates", NOW, b"{}").unwrap();
        assert_eq!(
            auth.verify(Some(&forged), "POST", "/v1/certificates", b"{}", NOW),
            Err(HmacError::BadSignature)
        );
        // The timestamp is signed: changing it in the header breaks the signature.
        let moved = header.replace(&NOW.to_string(), &(NOW + 1).to_string());
        assert_eq!(
            auth.verify(Some(&moved), "POST", "/v1/certificates", b"{}", NOW),
            Err(HmacError::BadSignature)
        );
    }

    #[test]
    fn the_window_is_enforced_both_ways() {
        let (auth, secret) = auth();
        for offset in [-301, 301, i64::MIN / 2] {
            let ts = NOW.saturating_add(offset);
            let header = authorization("payments", &secret, "POST", "/p", ts, b"").unwrap();
            assert!(
                matches!(
                    auth.verify(Some(&header), "POST", "/p", b"", NOW),
                    Err(HmacError::Stale { .. })
                ),
                "{offset}"
            );
        }
        for offset in [-300, 300] {
            let header =
                authorization("payments", &secret, "POST", "/p", NOW + offset, b"").unwrap();
            assert!(auth.verify(Some(&header), "POST", "/p", b"", NOW).is_ok());
        }
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let (auth, _) = auth();
        let sig = "00".repeat(32);
        let n = "Nonce=0123456789abcdef";
        for (header, needle) in [
            ("Bearer abc".to_owned(), "scheme"),
            (format!("{SCHEME} KeyId=payments"), "Timestamp is missing"),
            (
                format!("{SCHEME} KeyId=payments, Timestamp=x, {n}, Signature={sig}"),
                "whole seconds",
            ),
            (
                format!("{SCHEME} KeyId=payments, Timestamp=1, {n}, Signature=abc"),
                "64 hex digits",
            ),
            (
                format!("{SCHEME} KeyId=payments, Timestamp=1, Signature={sig}"),
                "Nonce is missing",
            ),
            (
                format!("{SCHEME} KeyId=payments, Timestamp=1, Nonce=short, Signature={sig}"),
                "16 to 64 characters",
            ),
            (
                format!("{SCHEME} KeyId=a, KeyId=b, Timestamp=1, {n}, Signature={sig}"),
                "twice",
            ),
            (
                format!("{SCHEME} KeyId=payments, Timestamp=1, {n}, Signature={sig}, X=1"),
                "unknown field",
            ),
            (
                format!("{SCHEME} KeyId=p\u{e9}\u{1b}, Timestamp={NOW}, {n}, Signature={sig}"),
                "unknown HMAC key id \"p??\"",
            ),
        ] {
            let err = auth
                .verify(Some(&header), "POST", "/p", b"", NOW)
                .unwrap_err();
            assert!(err.to_string().contains(needle), "{header}: {err}");
        }
        assert_eq!(
            auth.verify(None, "POST", "/p", b"", NOW),
            Err(HmacError::Missing)
        );
    }

    #[test]
    fn secrets_are_long_and_hidden() {
        let (auth, secret) = auth();
        assert_eq!(format!("{secret:?}"), "[secret elided]");
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("payments") && !shown.contains("0707"),
            "{shown}"
        );
    }

    #[test]
    fn old_signatures_are_forgotten_after_the_window() {
        let (auth, secret) = auth();
        for i in 0..100 {
            let header = authorization("payments", &secret, "POST", "/p", NOW + i, b"").unwrap();
            auth.verify(Some(&header), "POST", "/p", b"", NOW + i)
                .unwrap();
        }
        let later = NOW + 1000;
        let header = authorization("payments", &secret, "POST", "/p", later, b"").unwrap();
        auth.verify(Some(&header), "POST", "/p", b"", later)
            .unwrap();
        let window = auth.seen.lock().unwrap();
        assert_eq!(window.seen.len(), 1, "only the fresh signature is kept");
    }
}
