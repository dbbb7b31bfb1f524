//! When [`SignerClient::issue`](crate::SignerClient::issue) tries again,
//! and how long it waits first.

use std::time::Duration;

/// How often and how patiently [`SignerClient::issue`] retries a request
/// that failed for a reason that may pass: a transport error (connection
/// refused or reset, timeout), HTTP 502, 503 or 504, 409
/// `idempotency_in_progress` or 429. Every attempt carries the same
/// `Idempotency-Key`, so the signer issues at most one certificate for
/// them all.
///
/// Before attempt `n + 1` it waits the answer's `Retry-After` (integer
/// seconds) when there is one, else a random time between zero and
/// `min(max_delay, base_delay × 2^(n-1))` ("full jitter"). A `Retry-After`
/// longer than `max_delay` ends the retries at once: the error is
/// returned, with the wait in
/// [`ClientError::Rejected::retry_after`](crate::ClientError::Rejected),
/// rather than sleeping that long.
///
/// Each attempt may take up to [`REQUEST_TIMEOUT`], so the worst case is
/// about `max_attempts × REQUEST_TIMEOUT` plus the waits.
///
/// [`SignerClient::issue`]: crate::SignerClient::issue
/// [`REQUEST_TIMEOUT`]: crate::REQUEST_TIMEOUT
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1: no retry).
    pub max_attempts: u32,
    /// The cap of the first backoff; it doubles with every attempt.
    pub base_delay: Duration,
    /// The longest wait before an attempt, backoff or `Retry-After`.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// 3 attempts, 200 ms base delay, 2 s longest wait: the default.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
    };

    /// One attempt, no retry.
    pub const fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::DEFAULT
        }
    }

    /// How long to wait before another attempt after `attempts` have
    /// failed, the last one with `retry_after`; `None` to give up.
    pub(crate) fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempts >= self.max_attempts.max(1) {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.max_delay => None,
            Some(wait) => Some(wait),
            None => Some(scale(self.backoff_cap(attempts), random_fraction())),
        }
    }

    /// The longest backoff after `attempts` failures: `base_delay ×
    /// 2^(attempts-1)`, at most `max_delay`.
    fn backoff_cap(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.base_delay
            .checked_mul(1 << doublings)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::DEFAULT
    }
}

/// A uniformly random 64-bit fraction of one (from the crate's CSPRNG;
/// the whole cap should it fail, which only makes the wait longer).
fn random_fraction() -> u64 {
    use crate::crypto::rand::SecureRandom as _;
    let mut bytes = [0u8; 8];
    match crate::crypto::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => u64::MAX,
    }
}

/// `cap × fraction / 2^64`.
fn scale(cap: Duration, fraction: u64) -> Duration {
    let nanos = (cap.as_nanos() * u128::from(fraction)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A `Retry-After` value in integer seconds (its HTTP-date form is not
/// used by the signer and is ignored).
pub(crate) fn parse_retry_after(value: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_default_is_three_attempts_200ms_2s() {
        let policy = RetryPolicy::default();
        assert_eq!(
            (policy.max_attempts, policy.base_delay, policy.max_delay),
            (3, 200 * MS, 2000 * MS)
        );
        assert_eq!(RetryPolicy::none().max_attempts, 1);
    }

    #[test]
    fn attempts_end_at_max_attempts() {
        let policy = RetryPolicy::default();
        assert!(policy.delay(1, None).is_some());
        assert!(policy.delay(2, None).is_some());
        assert_eq!(policy.delay(3, None), None);
        assert_eq!(RetryPolicy::none().delay(1, Some(Duration::ZERO)), None);
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::DEFAULT
        };
        assert_eq!(zero.delay(1, None), None);
    }

    #[test]
    fn backoff_doubles_up_to_max_delay_with_full_jitter() {
        let policy = RetryPolicy {
            max_attempts: 100,
            ..RetryPolicy::DEFAULT
        };
        let caps: Vec<_> = (1..=6).map(|n| policy.backoff_cap(n)).collect();
        assert_eq!(
            caps,
            [
                200 * MS,
                400 * MS,
                800 * MS,
                1600 * MS,
                2000 * MS,
                2000 * MS
            ]
        );
        assert_eq!(policy.backoff_cap(u32::MAX), 2000 * MS);
        // Random below the cap, and not always the same.
        let waits: Vec<_> = (0..32).map(|_| policy.delay(1, None).unwrap()).collect();
        assert!(waits.iter().all(|w| *w <= 200 * MS), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
        assert_eq!(scale(200 * MS, 0), Duration::ZERO);
        assert_eq!(scale(200 * MS, 1 << 63), 100 * MS);
        assert!(scale(200 * MS, u64::MAX) <= 200 * MS);
    }

    #[test]
    fn retry_after_is_honoured_up_to_max_delay() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, Some(Duration::ZERO)), Some(Duration::ZERO));
        assert_eq!(policy.delay(1, Some(2000 * MS)), Some(2000 * MS));
        assert_eq!(policy.delay(1, Some(2001 * MS)), None);
    }

    #[test]
    fn retry_after_is_integer_seconds() {
        assert_eq!(parse_retry_after(b"0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(b" 7 "), Some(Duration::from_secs(7)));
        for other in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.5",
            b"Wed, 21 Oct 2015 07:28:00 GMT",
            b"99999999999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse_retry_after(other), None, "{other:?}");
        }
    }
}
