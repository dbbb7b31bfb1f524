//! Audit events: one structured log event per issuance decision.
//!
//! Events go to the `audit` tracing target; with JSON logging every field is
//! a JSON key, written by the lean [`JsonLines`] writer. They never carry
//! private keys or request bodies. The HTTP layer emits them (one event for
//! every outcome of `POST /v1/certificates`); this module knows nothing of
//! HTTP, profiles or the issuer.

mod json_lines;

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::fmt::rfc3339;
pub use json_lines::JsonLines;

/// What the audit log records of an issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
    /// The profile that issued it.
    pub profile: String,
    /// The CA that signed it.
    pub ca: String,
    /// The session id (subject CN).
    pub session_id: String,
    /// The transaction id, when sent.
    pub transaction_id: Option<String>,
    /// The certified key's type.
    pub key_type: &'static str,
    /// `notBefore`.
    pub not_before: OffsetDateTime,
    /// `notAfter`.
    pub not_after: OffsetDateTime,
    /// The signing CA's `notAfter` (for the metrics of its time left).
    pub ca_not_after: OffsetDateTime,
    /// For a KMS-delegated CA, the end of the delegation that signed it.
    pub delegation_not_after: Option<OffsetDateTime>,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
}

/// The tracing target of audit events.
pub const TARGET: &str = "audit";

/// Records a certificate that was issued.
pub fn certificate_issued(issued: &Issued, requester: &str, request_id: &str, latency: Duration) {
    tracing::info!(
        target: TARGET,
        event = "certificate_issued",
        serial = %issued.serial,
        fingerprint_sha256 = %issued.fingerprint_sha256,
        profile = %issued.profile,
        ca = %issued.ca,
        requester,
        request_id,
        session_id = %issued.session_id,
        transaction_id = issued.transaction_id.as_deref().unwrap_or(""),
        key_type = %issued.key_type,
        not_before = %rfc3339(issued.not_before),
        not_after = %rfc3339(issued.not_after),
        latency_us = latency.as_micros() as u64,
        "certificate issued"
    );
}

/// What the audit log records of a dry run (`?dry_run=true`): the checks
/// passed, nothing was issued.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The profile that admitted the request.
    pub profile: String,
    /// The CA that would sign.
    pub ca: String,
    /// The session id.
    pub session_id: String,
    /// The transaction id, when sent.
    pub transaction_id: Option<String>,
    /// The key's type.
    pub key_type: &'static str,
}

/// Records a dry run that passed every check (nothing was issued).
pub fn issuance_checked(checked: &Checked, requester: &str, request_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "issuance_checked",
        profile = %checked.profile,
        ca = %checked.ca,
        requester,
        request_id,
        session_id = %checked.session_id,
        transaction_id = checked.transaction_id.as_deref().unwrap_or(""),
        key_type = %checked.key_type,
        "issuance checked (dry run, nothing issued)"
    );
}

/// What the audit log records of an idempotent retry answered with the
/// first response (nothing was issued).
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The serial of the certificate first issued.
    pub serial: String,
}

/// Records an idempotent retry answered with its first response.
pub fn issuance_replayed(replayed: &Replayed, profile: &str, requester: &str, request_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "issuance_replayed",
        profile,
        requester,
        request_id,
        serial = %replayed.serial,
        "idempotent retry answered with its first response (nothing issued)"
    );
}

/// Unix time of the last "certificate shortened" warning (one a minute is enough).
static LAST_SHORTENED_WARNING: AtomicI64 = AtomicI64::new(i64::MIN);

/// Warns (at most once a minute) that certificates of CA `ca` are being
/// shortened because it expires at `ca_not_after`, before their TTL ends.
pub fn certificate_shortened(
    ca: &str,
    ca_not_after: time::OffsetDateTime,
    now: time::OffsetDateTime,
) {
    let now = now.unix_timestamp();
    let last = LAST_SHORTENED_WARNING.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 60
        && LAST_SHORTENED_WARNING
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            ca,
            ca_not_after = %rfc3339(ca_not_after),
            "certificate shortened to the CA's expiry: the CA expires before the requested TTL ends; rotate it"
        );
    }
}

/// Records a revocation an administrator made: what it names, why, until
/// when, and how many unexpired certificates it matched (when the ledger
/// could be read right after the rule was stored).
pub fn revocation_made(
    kind: &str,
    value: &str,
    reason: &str,
    expires: Option<OffsetDateTime>,
    revoked_by: &str,
    request_id: &str,
    matched: Option<usize>,
) {
    tracing::warn!(
        target: TARGET,
        event = "revocation_made",
        kind,
        value,
        reason,
        expires = expires.map(rfc3339).as_deref().unwrap_or("never"),
        revoked_by,
        request_id,
        matched = matched.map_or_else(
            || "unknown (the ledger could not be read)".to_owned(),
            |n| n.to_string()
        ),
        "revocation made"
    );
}

/// Records a request that was refused.
pub fn issuance_denied(code: &str, status: u16, profile: &str, requester: &str, request_id: &str) {
    tracing::info!(
        target: TARGET,
        event = "issuance_denied",
        code,
        status,
        profile,
        requester,
        request_id,
        "issuance denied"
    );
}
