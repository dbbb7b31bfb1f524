//! Idempotent retries (`Idempotency-Key`): a retry of an issuance by the
//! same caller with the same key, within the profile's `max_ttl`, gets the
//! first response again (`Idempotent-Replayed: true`) and no second
//! certificate.
//!
//! The first response holds a private key, so the store keeps it only
//! **sealed**: AES-256-GCM under a key derived with HKDF-SHA256 from the
//! idempotency key and the caller, with a random nonce and the entry's id
//! as associated data. The entry's id and the request's fingerprint (an
//! HMAC of the body, so a retry with another body is told apart) come
//! from the same derivation under other labels. A copy of the table thus
//! reveals nothing without the client's idempotency key, which the signer
//! never stores or logs.
//!
//! Concurrent duplicates: the first takes a lease in the store and issues;
//! the others wait briefly for its response, then get 409
//! `idempotency_in_progress` with `Retry-After`. A request that fails
//! gives its lease back, so its retry starts afresh; a holder that dies
//! loses its lease after [`LEASE`]. Any store fault fails closed (503).
//! Without a store the header is accepted and has no effect.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState};
use crate::crypto::{aead, hkdf, hmac, rand};
use crate::profile::rate_limit::Counted;
use crate::store::{Begun, Counts, Idempotent, Lease, Store};

/// The request header (`session_ca_client::idempotency::HEADER`), lower
/// case as a `HeaderName` needs it.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The response header on a replayed response
/// (`session_ca_client::idempotency::REPLAYED_HEADER`).
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a pending entry is held at least for its first request
/// before a retry may take it over (its holder presumed dead); never less
/// than the request timeout, so a slow first request keeps its lease.
pub const LEASE: Duration = Duration::from_secs(30);
/// The `Retry-After` of a 409: the first request usually answers within
/// milliseconds.
const IN_PROGRESS_RETRY_AFTER: u64 = 1;
/// How long a duplicate waits for the first request's response before it
/// is answered 409 (less under a shorter `server.request_timeout`: see
/// [`wait_within`]).
const WAIT: Duration = Duration::from_secs(3);
/// How soon a waiting duplicate first looks again; each later look waits
/// twice as long as the one before, up to [`MAX_POLL`], so a duplicate
/// costs the store about a dozen reads over [`WAIT`], not one every poll.
const POLL: Duration = Duration::from_millis(20);
/// The longest wait between two looks of a duplicate.
const MAX_POLL: Duration = Duration::from_millis(320);

/// How long a duplicate waits under the request time limit `timeout`:
/// [`WAIT`], or three quarters of the limit when that is shorter, so that
/// the duplicate is answered 409 (with `Retry-After`) before the limit
/// answers it 408.
fn wait_within(timeout: Duration) -> Duration {
    WAIT.min(timeout * 3 / 4)
}
const SALT: &[u8] = b"session-ca idempotency v1";

/// The keys one idempotency key and caller derive.
struct Derived {
    id: String,
    fingerprint: hmac::Key,
    seal: aead::LessSafeKey,
}

/// The `Idempotency-Key` header, checked: `None` when absent.
pub(crate) fn key_of(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Which one the caller meant is not ours to guess.
        return Err(AppError::InvalidIdempotencyKey);
    }
    // One definition of the key's shape, the client's.
    let key = value.to_str().unwrap_or("");
    session_ca_client::idempotency::check_key(key).map_err(|_| AppError::InvalidIdempotencyKey)?;
    Ok(Some(key))
}

fn derive(key: &str, caller: &str) -> Result<Derived, AppError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(key.as_bytes());
    let expand = |label: &[u8]| -> Result<[u8; 32], AppError> {
        let mut out = [0u8; 32];
        prk.expand(&[label, b"\0", caller.as_bytes()], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| AppError::Internal("HKDF expansion failed".into()))?;
        Ok(out)
    };
    let seal = aead::UnboundKey::new(&aead::AES_256_GCM, &expand(b"seal")?)
        .map_err(|_| AppError::Internal("AES-256-GCM key setup failed".into()))?;
    Ok(Derived {
        id: crate::fmt::hex(&expand(b"id")?),
        fingerprint: hmac::Key::new(hmac::HMAC_SHA256, &expand(b"fingerprint")?),
        seal: aead::LessSafeKey::new(seal),
    })
}

fn random_hex<const N: usize>() -> Result<String, AppError> {
    let mut bytes = [0u8; N];
    rand::SecureRandom::fill(&rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AppError::Internal("the CSPRNG failed".into()))?;
    Ok(crate::fmt::hex(&bytes))
}

/// `body` sealed under `key` for the entry `id`: nonce, ciphertext, tag.
fn seal(key: &aead::LessSafeKey, id: &str, body: &[u8]) -> Result<Vec<u8>, AppError> {
    let mut nonce = [0u8; aead::NONCE_LEN];
    rand::SecureRandom::fill(&rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| AppError::Internal("the CSPRNG failed".into()))?;
    let mut sealed = Vec::with_capacity(nonce.len() + body.len() + aead::MAX_TAG_LEN);
    sealed.extend_from_slice(&nonce);
    let mut in_out = body.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(id.as_bytes()),
        &mut in_out,
    )
    .map_err(|_| AppError::Internal("AES-256-GCM sealing failed".into()))?;
    sealed.extend_from_slice(&in_out);
    Ok(sealed)
}

/// The body sealed in `sealed`, or `None` if it does not open under `key`.
fn open(key: &aead::LessSafeKey, id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < aead::NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(aead::NONCE_LEN);
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut in_out = ciphertext.to_vec();
    let body = key
        .open_in_place(nonce, aead::Aad::from(id.as_bytes()), &mut in_out)
        .ok()?;
    Some(body.to_vec())
}

/// What an idempotent request begins with.
pub(crate) enum Start {
    /// No key, or no store: issue as usual.
    Plain,
    /// The first request's response, to send again, and the keys of its
    /// certificate (serial, session) for the revocation check.
    Replay(Response, Vec<crate::store::LedgerKey>),
    /// The lease is ours: issue, then [`Held::finish`]. (Boxed: the AES
    /// key schedule is large.) With the rate limits' counts when they were
    /// counted as the lease was taken.
    Held(Box<Held>, Option<Counts>),
}

/// A lease on an idempotency entry. Dropped unfinished (the request
/// failed), it is given back so a retry starts afresh.
pub(crate) struct Held {
    store: Arc<dyn Store>,
    lease: Lease,
    seal: aead::LessSafeKey,
    finished: bool,
}

impl Held {
    /// Stores the response `body` sealed, until `not_after` (the
    /// certificate's: a retry after it gets a new one) or the window,
    /// whichever is first. A failure is a store fault: 503, and the
    /// certificate is not returned (it is in the ledger).
    pub(crate) async fn finish(
        mut self: Box<Self>,
        body: &[u8],
        not_after: i64,
    ) -> Result<(), AppError> {
        self.lease.expires = self.lease.expires.min(not_after);
        let sealed = seal(&self.seal, &self.lease.id, body)?;
        self.store
            .finish(&self.lease, &sealed)
            .await
            .map_err(|e| AppError::StoreUnavailable(e.to_string()))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (store, lease) = (Arc::clone(&self.store), self.lease.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.abandon(&lease).await {
                    tracing::warn!(error = %e, "an idempotency lease could not be given back; it lapses by itself");
                }
            });
        }
    }
}

/// Begins an issuance that may carry an `Idempotency-Key` (`key`, as
/// [`key_of`] checked it): replays the
/// first response, refuses a reused key or one still in use, or takes the
/// lease, counting it against `limits` (the rate limits that apply) in the
/// same store call when it takes it at once (a replay is never counted). `window` is
/// how long a response is kept (the profile's `max_ttl`); `now` Unix
/// seconds.
pub(crate) async fn start(
    state: &AppState,
    key: Option<&str>,
    caller: &str,
    body: &[u8],
    window: Duration,
    limits: &[Counted],
    now: i64,
) -> Result<Start, AppError> {
    let Some(key) = key else {
        return Ok(Start::Plain);
    };
    let Some(store) = state.ledger.store() else {
        return Ok(Start::Plain);
    };
    let derived = derive(key, caller)?;
    let fingerprint = crate::fmt::hex(hmac::sign(&derived.fingerprint, body).as_ref());
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let lease = LEASE.max(state.config.server.request_timeout + Duration::from_secs(5));
    let lease_secs = i64::try_from(lease.as_secs()).unwrap_or(i64::MAX);
    let mut lease = Lease {
        id: derived.id.clone(),
        fingerprint: fingerprint.clone(),
        token: random_hex::<16>()?,
        now,
        lease_until: now.saturating_add(lease_secs),
        expires: now.saturating_add(window.max(lease_secs)),
    };
    let unavailable = |e: crate::store::StoreError| AppError::StoreUnavailable(e.to_string());
    let deadline = tokio::time::Instant::now() + wait_within(state.config.server.request_timeout);
    let mut poll = POLL;
    let (mut begun, counts) = store
        .begin_counting(&lease, &super::rate_limit::hits_of(limits))
        .await
        .map_err(unavailable)?;
    loop {
        let entry = match begun {
            Begun::Started => {
                let held = Held {
                    store: Arc::clone(store),
                    lease,
                    seal: derived.seal,
                    finished: false,
                };
                return Ok(Start::Held(Box::new(held), counts));
            }
            Begun::Exists(entry) => entry,
        };
        if entry.fingerprint() != fingerprint {
            return Err(AppError::IdempotencyKeyReused);
        }
        match entry {
            Idempotent::Done { sealed, .. } => {
                let body = open(&derived.seal, &derived.id, &sealed).ok_or_else(|| {
                    AppError::Internal("a sealed idempotent response did not open".into())
                })?;
                let (response, keys) = replay(body);
                return Ok(Start::Replay(response, keys));
            }
            Idempotent::Pending { .. } => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(AppError::IdempotencyInProgress {
                        retry_after: IN_PROGRESS_RETRY_AFTER,
                    });
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(poll.min(left)).await;
                poll = (poll * 2).min(MAX_POLL);
                // The time now, not the request's start: a lease that lapsed
                // while this duplicate waited is taken over.
                let now = state.clock.now().unix_timestamp().max(now);
                begun = match store
                    .idempotent(&lease.id, now)
                    .await
                    .map_err(unavailable)?
                {
                    Some(entry) if !lapsed(&entry, now) => Begun::Exists(entry),
                    // Given back, or its holder's lease lapsed: ours to take,
                    // asked for at the time now (the store judges a lapse by
                    // the lease's `now`), held as long from now.
                    _ => {
                        let moved = now - lease.now;
                        lease.now = now;
                        lease.lease_until = lease.lease_until.saturating_add(moved);
                        lease.expires = lease.expires.saturating_add(moved);
                        store.begin(&lease).await.map_err(unavailable)?
                    }
                };
            }
        }
    }
}

fn lapsed(entry: &Idempotent, now: i64) -> bool {
    matches!(entry, Idempotent::Pending { lease_until, .. } if *lease_until < now)
}

/// The response of a replay (the first response's body, marked), and the
/// keys of its certificate (serial, session) for the revocation check;
/// the body is read once for both.
fn replay(body: Vec<u8>) -> (Response, Vec<crate::store::LedgerKey>) {
    let stored = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    let field = |name: &str| stored[name].as_str().map(str::to_owned);
    let serial = field("serial");
    let mut keys = Vec::with_capacity(2);
    keys.extend(serial.clone().map(crate::store::LedgerKey::Serial));
    keys.extend(field("session_id").map(crate::store::LedgerKey::SessionId));
    let serial = serial.unwrap_or_default();
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
        .extensions_mut()
        .insert(crate::audit::Replayed { serial });
    (response, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_is_answered_before_the_request_time_limit() {
        assert_eq!(wait_within(Duration::from_secs(30)), WAIT);
        assert_eq!(wait_within(Duration::from_secs(4)), WAIT);
        assert_eq!(
            wait_within(Duration::from_secs(1)),
            Duration::from_millis(750)
        );
        assert_eq!(
            wait_within(Duration::from_millis(100)),
            Duration::from_millis(75)
        );
    }

    #[test]
    fn keys_are_checked_for_shape() {
        let mut headers = HeaderMap::new();
        assert!(key_of(&headers).unwrap().is_none());
        for good in ["0123456789abcdef", "A-_z".repeat(32).as_str()] {
            headers.insert(IDEMPOTENCY_KEY, good.parse().unwrap());
            assert_eq!(key_of(&headers).unwrap(), Some(good));
        }
        for bad in [
            "short",
            "0123456789abcde!",
            &"a".repeat(129),
            "0123456789 abcdef",
        ] {
            headers.insert(IDEMPOTENCY_KEY, bad.parse().unwrap());
            assert!(key_of(&headers).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_sealed_body_opens_only_under_its_key_caller_and_id() {
        let body = b"{\"private_key\":\"-----BEGIN PRIVATE KEY-----\"}";
        let a = derive("client-key-0123456789", "arn:aws:iam::1:role/a").unwrap();
        let sealed = seal(&a.seal, &a.id, body).unwrap();
        assert_eq!(open(&a.seal, &a.id, &sealed).unwrap(), body);
        assert!(!sealed.windows(11).any(|w| w == b"PRIVATE KEY"));
        let other_key = derive("client-key-0123456780", "arn:aws:iam::1:role/a").unwrap();
        let other_caller = derive("client-key-0123456789", "arn:aws:iam::1:role/b").unwrap();
        assert_ne!(other_key.id, a.id);
        assert_ne!(other_caller.id, a.id);
        assert!(open(&other_key.seal, &a.id, &sealed).is_none());
        assert!(open(&other_caller.seal, &a.id, &sealed).is_none());
        assert!(
            open(&a.seal, &other_key.id, &sealed).is_none(),
            "the id is bound"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&a.seal, &a.id, &tampered).is_none());
        assert!(open(&a.seal, &a.id, &sealed[..8]).is_none());
        // Two seals of one body differ (a fresh nonce each).
        assert_ne!(seal(&a.seal, &a.id, body).unwrap(), sealed);
        // The id reveals neither the key nor the caller.
        assert!(!a.id.contains("client") && a.id.len() == 64);
    }
}
