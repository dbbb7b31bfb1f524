//! Audit events: one structured log event per issuance decision.
//!
//! Events go to the `audit` tracing target; with JSON logging every field is
//! a JSON key. They never carry private keys or request bodies.

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
