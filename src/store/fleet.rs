//! What instances of the signer share through the store besides the
//! ledger, so that a fleet enforces one policy: rate-limit counters
//! ([`Hit`]), claims on single-use names (HMAC nonces, [`Store::claim`])
//! and idempotent responses, sealed ([`Lease`], [`Idempotent`]).
//!
//! Nothing here holds a secret in clear: counters are keyed by a hash of
//! what they count, a nonce is public, and an idempotent response is
//! stored only as the AEAD ciphertext the HTTP layer made of it, under an
//! id from which neither the idempotency key nor the sealing key follows.
//!
//! [`Store::claim`]: super::Store::claim

/// One request counted against one rate-limit counter: the counter's name
/// holds its window (`rate#…#<window start>`), so a new window starts
/// from zero without a reset, and the counter may be deleted at
/// `expires` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The counter, window included.
    pub counter: String,
    /// When the counter is no longer needed.
    pub expires: i64,
}

/// An idempotent request being started: the first request with its key
/// takes the lease and issues; a retry finds the lease (or the sealed
/// response) instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The entry's id (hex; derived from the caller and the idempotency
    /// key, which it does not reveal).
    pub id: String,
    /// A keyed hash of the request (hex): a retry must match it.
    pub fingerprint: String,
    /// Names this holder of the lease (random hex): only it may finish
    /// or abandon the entry.
    pub token: String,
    /// The time now (Unix seconds): an entry past its `expires` is free.
    pub now: i64,
    /// Until when a pending entry is held (Unix seconds); after that a
    /// retry may take it over (its holder is presumed dead).
    pub lease_until: i64,
    /// When the entry, pending or done, may be forgotten (Unix seconds).
    pub expires: i64,
}

/// An idempotency entry as a retry finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent {
    /// The first request is still being served.
    Pending {
        /// The first request's fingerprint.
        fingerprint: String,
        /// Until when its holder keeps the lease (Unix seconds).
        lease_until: i64,
    },
    /// The first request was answered: its response, sealed.
    Done {
        /// The first request's fingerprint.
        fingerprint: String,
        /// The sealed response (nonce, then AEAD ciphertext and tag).
        sealed: Vec<u8>,
    },
}

impl Idempotent {
    /// The fingerprint of the request that made the entry.
    pub fn fingerprint(&self) -> &str {
        match self {
            Idempotent::Pending { fingerprint, .. } | Idempotent::Done { fingerprint, .. } => {
                fingerprint
            }
        }
    }
}

/// What [`super::Store::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// The lease is ours: issue, then finish (or abandon) it.
    Started,
    /// Someone else's entry, in force.
    Exists(Idempotent),
}
