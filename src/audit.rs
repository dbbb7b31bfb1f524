//! Audit events: one structured log event per issuance decision.
//!
//! Events go to the `audit` tracing target; with JSON logging every field is
//! a JSON key. They never carry private keys or request bodies.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::issuer::IssuedCertificate;
use crate::policy::CertificatePlan;

/// The tracing target of audit events.
pub const TARGET: &str = "audit";

/// Records a certificate that was issued.
pub fn certificate_issued(
    plan: &CertificatePlan,
    issued: &IssuedCertificate,
    requester: &str,
    request_id: &str,
    latency: Duration,
) {
    tracing::info!(
        target: TARGET,
        event = "certificate_issued",
        serial = %issued.serial_hex,
        fingerprint_sha256 = %issued.fingerprint_sha256,
        profile = %plan.profile,
        ca = %plan.ca,
        requester,
        request_id,
        session_id = %plan.session_id,
        transaction_id = plan.transaction_id.as_deref().unwrap_or(""),
        key_type = %issued.key_type,
        not_before = %rfc3339(issued.not_before),
        not_after = %rfc3339(issued.not_after),
        latency_us = latency.as_micros() as u64,
        "certificate issued"
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

/// RFC 3339 text of a time (UTC, whole seconds).
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
