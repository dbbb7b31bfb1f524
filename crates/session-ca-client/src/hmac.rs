//! HMAC request signing (`auth = "hmac"`) for standalone servers.
//!
//! A client holding a key id and a shared secret sends
//!
//! ```text
//! Authorization: SESSION-CA-HMAC-SHA256 KeyId=<id>, Timestamp=<unix seconds>, Nonce=<random>, Signature=<hex>
//! ```
//!
//! where the signature is HMAC-SHA256 with the secret over the string to
//! sign, six lines joined by `\n`:
//!
//! ```text
//! SESSION-CA-HMAC-SHA256
//! POST
//! /v1/certificates
//! 1763800000
//! 3f1c9a0b7d2e4f6a8b0c1d2e3f4a5b6c
//! <lower-case hex SHA-256 of the body>
//! ```
//!
//! (the method, the path of the URL called with its query as sent, the
//! timestamp and the nonce as in the header; the nonce is 16 to 64 characters of `A-Z a-z 0-9
//! - _`, fresh for every request, so two identical requests in the same
//! second still have different signatures). The server refuses timestamps more than `max_skew` (300 s by
//! default) from its clock, compares signatures in constant time
//! (`hmac::verify` of ring or aws-lc-rs), and refuses a signature it has already accepted
//! within the window, so a captured request cannot be replayed against the
//! same process. Secrets never reach `Debug` output, logs or errors.
//!
//! A front door that rebuilds the query from the parameters it parsed
//! (API Gateway's REST APIs and Application Load Balancers, through
//! lambda_http) may pass on another order and spelling than the client
//! sent. The server therefore also accepts a signature over the query in
//! [canonical form](canonical_path_and_query) (parameters decoded, sorted,
//! encoded again), and a client that sends its query in that form (as
//! [`SignerClient`] does) signs what every front door passes on.
//!
//! This module is the client's half, which [`SignerClient::with_hmac`]
//! uses: the secret, the string to sign and the header. The server's half
//! (parsing the header, the clock window, the replay window) is in the
//! service, which checks a signature with [`Secret::verify`].
//!
//! [`SignerClient::with_hmac`]: crate::SignerClient::with_hmac
//! [`SignerClient`]: crate::SignerClient

use std::fmt;
use std::time::Duration;

use crate::crypto::hmac;

/// The scheme name in the `Authorization` header and the string to sign.
pub const SCHEME: &str = "SESSION-CA-HMAC-SHA256";
/// The default largest difference between a request's timestamp and the server's clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(300);
/// The shortest secret accepted, in bytes (RFC 2104 §3: at least the hash's output length).
pub const MIN_SECRET_BYTES: usize = 32;

/// A shared secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl Secret {
    /// A secret from its bytes; shorter than [`MIN_SECRET_BYTES`] is refused.
    pub fn new(bytes: &[u8]) -> Result<Secret, SigningError> {
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SigningError::SecretTooShort(bytes.len()));
        }
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// Whether `signature` is this secret's HMAC-SHA256 of `string_to_sign`
    /// (see [`string_to_sign`]), compared in constant time.
    pub fn verify(&self, string_to_sign: &str, signature: &[u8]) -> bool {
        hmac::verify(&self.0, string_to_sign.as_bytes(), signature).is_ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret elided]")
    }
}

/// A secret as read from a file or a variable, without the trailing line
/// ending that `echo` and editors add (it is not part of the secret).
pub fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The string a signature covers.
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let body_hash = crate::crypto::sha256(body);
    format!(
        "{SCHEME}\n{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{}",
        hex(body_hash.as_ref())
    )
}

/// `path_and_query` with its query in canonical form: the parameters read
/// as `application/x-www-form-urlencoded` (as axum and lambda_http read
/// them), sorted by name, then value, and written again in that encoding
/// (`form_urlencoded`, as lambda_http writes a query it rebuilds). Without
/// a query, or with an empty one, the path alone.
pub fn canonical_path_and_query(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if pairs.is_empty() {
        return path.to_owned();
    }
    pairs.sort();
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

/// A fresh nonce: 16 bytes from the OS CSPRNG, as 32 hex digits.
pub fn nonce() -> Result<String, SigningError> {
    use crate::crypto::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    crate::crypto::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SigningError::Random)?;
    Ok(hex(&bytes))
}

/// The `Authorization` header value for a request (client side), with a
/// fresh nonce.
pub fn authorization(
    key_id: &str,
    secret: &Secret,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    let nonce = nonce()?;
    Ok(authorization_with_nonce(
        key_id,
        secret,
        method,
        path_and_query,
        timestamp,
        &nonce,
        body,
    ))
}

/// The `Authorization` header value with a given nonce.
pub fn authorization_with_nonce(
    key_id: &str,
    secret: &Secret,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let tag = hmac::sign(
        &secret.0,
        string_to_sign(method, path_and_query, timestamp, nonce, body).as_bytes(),
    );
    format!(
        "{SCHEME} KeyId={key_id}, Timestamp={timestamp}, Nonce={nonce}, Signature={}",
        hex(tag.as_ref())
    )
}

/// Why a request could not be signed. Messages never carry a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The secret is shorter than [`MIN_SECRET_BYTES`] (its length).
    #[error("an HMAC secret must be at least 32 bytes, got {0}")]
    SecretTooShort(usize),
    /// The CSPRNG failed (making a nonce).
    #[error("the system CSPRNG failed")]
    Random,
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_800_000;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The header's Signature field, decoded.
    fn signature_of(header: &str) -> Vec<u8> {
        unhex(header.rsplit_once("Signature=").unwrap().1)
    }

    #[test]
    fn a_query_in_canonical_form_is_sorted_and_spelled_one_way() {
        let canonical = "/v1/certificates?limit=10&since=2026-01-01T00%3A00%3A00Z\
                         &transaction_id=tx+1%2F2%7E";
        for sent in [
            canonical,
            "/v1/certificates?transaction_id=tx%201/2~&limit=10&since=2026-01-01T00:00:00Z",
            "/v1/certificates?since=2026-01-01T00%3a00%3a00Z&transaction_id=tx+1%2f2%7e&limit=10",
        ] {
            assert_eq!(canonical_path_and_query(sent), canonical, "{sent}");
        }
        // Repeated names keep every value, sorted too; no query, no `?`.
        assert_eq!(canonical_path_and_query("/p?b=2&a=9&a=1"), "/p?a=1&a=9&b=2");
        assert_eq!(canonical_path_and_query("/v1/ca"), "/v1/ca");
        assert_eq!(canonical_path_and_query("/v1/ca?"), "/v1/ca");
    }

    #[test]
    fn the_string_to_sign_is_six_lines() {
        assert_eq!(
            string_to_sign(
                "POST",
                "/v1/certificates?x=1",
                NOW,
                "n0nce-n0nce-n0nce",
                b""
            ),
            "SESSION-CA-HMAC-SHA256\nPOST\n/v1/certificates?x=1\n1763800000\nn0nce-n0nce-n0nce\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_header_names_every_signed_field() {
        let secret = Secret::new(&[7u8; 32]).unwrap();
        let nonce = "0123456789abcdef";
        let header = authorization_with_nonce("payments", &secret, "POST", "/p", NOW, nonce, b"{}");
        let prefix = format!("{SCHEME} KeyId=payments, Timestamp={NOW}, Nonce={nonce}, Signature=");
        assert!(header.starts_with(&prefix), "{header}");
        let signature = &header[prefix.len()..];
        assert_eq!(signature.len(), 64);
        assert!(signature
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        // Deterministic for a given nonce.
        assert_eq!(
            header,
            authorization_with_nonce("payments", &secret, "POST", "/p", NOW, nonce, b"{}")
        );
    }

    #[test]
    fn identical_requests_differ_by_their_nonce() {
        let secret = Secret::new(&[7u8; 32]).unwrap();
        let a = authorization("payments", &secret, "POST", "/p", NOW, b"{}").unwrap();
        let b = authorization("payments", &secret, "POST", "/p", NOW, b"{}").unwrap();
        assert_ne!(a, b);
        assert_ne!(signature_of(&a), signature_of(&b));
    }

    #[test]
    fn nonces_are_fresh_hex() {
        let a = nonce().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, nonce().unwrap());
    }

    #[test]
    fn verify_accepts_the_headers_tag_and_nothing_else() {
        let secret = Secret::new(&[7u8; 32]).unwrap();
        let nonce = "3f1c9a0b7d2e4f6a8b0c1d2e3f4a5b6c";
        let header = authorization_with_nonce(
            "payments",
            &secret,
            "POST",
            "/v1/certificates",
            NOW,
            nonce,
            b"{}",
        );
        let tag = signature_of(&header);
        let signed = string_to_sign("POST", "/v1/certificates", NOW, nonce, b"{}");
        assert!(secret.verify(&signed, &tag));
        // Every signed part matters.
        for changed in [
            string_to_sign("GET", "/v1/certificates", NOW, nonce, b"{}"),
            string_to_sign("POST", "/v1/certificates?x=1", NOW, nonce, b"{}"),
            string_to_sign("POST", "/v1/certificates", NOW + 1, nonce, b"{}"),
            string_to_sign("POST", "/v1/certificates", NOW, &"a".repeat(32), b"{}"),
            string_to_sign("POST", "/v1/certificates", NOW, nonce, b"{ }"),
        ] {
            assert!(!secret.verify(&changed, &tag), "{changed}");
        }
        // So does the tag, and the key.
        let mut flipped = tag.clone();
        flipped[31] ^= 1;
        assert!(!secret.verify(&signed, &flipped));
        assert!(!secret.verify(&signed, &tag[..31]));
        assert!(!secret.verify(&signed, &[]));
        let other = Secret::new(&[8u8; 32]).unwrap();
        assert!(!other.verify(&signed, &tag));
    }

    #[test]
    fn verify_is_hmac_sha256() {
        // RFC 4231 test case 6 (a key longer than the block size).
        let secret = Secret::new(&[0xaa; 131]).unwrap();
        let tag = unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert!(secret.verify(
            "Test Using Larger Than Block-Size Key - Hash Key First",
            &tag
        ));
    }

    #[test]
    fn line_ends_are_not_part_of_a_secret() {
        assert_eq!(trim_line_end(b"abc\r\n\n"), b"abc");
        assert_eq!(trim_line_end(b"a\nb"), b"a\nb");
        assert_eq!(trim_line_end(b"\n"), b"");
        assert_eq!(trim_line_end(b""), b"");
    }

    #[test]
    fn secrets_are_long_and_hidden() {
        assert_eq!(
            Secret::new(&[1u8; 31]).unwrap_err(),
            SigningError::SecretTooShort(31)
        );
        assert_eq!(
            SigningError::SecretTooShort(31).to_string(),
            "an HMAC secret must be at least 32 bytes, got 31"
        );
        assert_eq!(SigningError::Random.to_string(), "the system CSPRNG failed");
        let secret = Secret::new(&[7u8; 32]).unwrap();
        assert_eq!(format!("{secret:?}"), "[secret elided]");
    }
}
