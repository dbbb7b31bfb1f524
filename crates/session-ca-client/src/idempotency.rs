//! Idempotency keys of `POST /v1/certificates`.
//!
//! A request may carry `Idempotency-Key: <key>`, 16 to 128 characters of
//! `A-Z a-z 0-9 - _`. Within the signer's window, a request with a key the
//! same caller has already used, and the same body, gets the first
//! answer again (201, the same body, and `Idempotent-Replayed: true`)
//! and no new certificate; with a different body it is refused (422
//! `idempotency_key_reused`), and while the first is still being served
//! it gets 409 `idempotency_in_progress` with `Retry-After`.
//!
//! [`SignerClient::issue`](crate::SignerClient::issue) sends a fresh key
//! ([`new_key`]) per call and the same key on each of its retries. A
//! caller that must not get two certificates across its own restarts
//! keeps a key (from [`new_key`]) and passes it to
//! [`SignerClient::issue_with_idempotency_key`](crate::SignerClient::issue_with_idempotency_key).
//!
//! The key is not covered by the HMAC signature (which signs the method,
//! path, timestamp, nonce and body) nor by SigV4 (which signs `Host` and
//! `Content-Type`): the signer scopes keys to the authenticated caller.

use crate::hmac::SigningError;

/// The request header that carries the key.
pub const HEADER: &str = "Idempotency-Key";
/// The response header, `true` on an answer replayed for a key.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
/// The shortest key, in characters.
pub const MIN_LEN: usize = 16;
/// The longest key, in characters.
pub const MAX_LEN: usize = 128;

/// A fresh key: 24 bytes from the OS CSPRNG, base64url without padding
/// (32 characters).
pub fn new_key() -> Result<String, SigningError> {
    use crate::crypto::rand::SecureRandom as _;
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    crate::crypto::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SigningError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `key` has the shape the signer accepts: [`MIN_LEN`] to
/// [`MAX_LEN`] characters of `A-Z a-z 0-9 - _`.
pub fn check_key(key: &str) -> Result<(), KeyError> {
    if let Some((at, c)) = key
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(KeyError::Character(c, at + 1));
    }
    if !(MIN_LEN..=MAX_LEN).contains(&key.len()) {
        return Err(KeyError::Length(key.len()));
    }
    Ok(())
}

/// Why a key is not one the signer accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not 16 to 128 characters long (its length).
    #[error("an idempotency key must be 16 to 128 characters long, got {0}")]
    Length(usize),
    /// A character other than `A-Z a-z 0-9 - _` (it, and its position from 1).
    #[error("an idempotency key may hold only A-Z a-z 0-9 - _, got {0:?} at character {1}")]
    Character(char, usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_fresh_32_character_base64url() {
        let a = new_key().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(check_key(&a), Ok(()));
        assert_ne!(a, new_key().unwrap());
    }

    #[test]
    fn keys_are_16_to_128_safe_characters() {
        assert_eq!(check_key(&"a".repeat(16)), Ok(()));
        assert_eq!(check_key(&"A-z_9".repeat(26)[..128]), Ok(()));
        assert_eq!(check_key(&"a".repeat(15)), Err(KeyError::Length(15)));
        assert_eq!(check_key(&"a".repeat(129)), Err(KeyError::Length(129)));
        assert_eq!(check_key(""), Err(KeyError::Length(0)));
        assert_eq!(
            check_key("0123456789abcdef+"),
            Err(KeyError::Character('+', 17))
        );
        assert_eq!(
            check_key("0123456789 abcdef"),
            Err(KeyError::Character(' ', 11))
        );
        assert_eq!(
            check_key("é123456789abcdef"),
            Err(KeyError::Character('é', 1))
        );
        assert_eq!(
            KeyError::Character('=', 3).to_string(),
            "an idempotency key may hold only A-Z a-z 0-9 - _, got '=' at character 3"
        );
        assert_eq!(
            KeyError::Length(3).to_string(),
            "an idempotency key must be 16 to 128 characters long, got 3"
        );
    }
}
