//! Metrics for operators: what was issued, what was refused and why (rate
//! limits by profile and limit), how long issuance takes, how long each CA
//! (and a KMS CA's current delegation) has left, how CA reloads go, and
//! how long the calls to the ledger's store and to AWS KMS take and how
//! many fail.
//!
//! One set of facts, two ecosystems: `serve` keeps them in a Prometheus
//! registry exposed at `GET /metrics` ([`prometheus`]), Lambda mode writes
//! one CloudWatch Embedded Metric Format line per issuance decision on
//! stdout ([`emf`]), which CloudWatch Logs turns into metrics with no API
//! call on the hot path. Labels and dimensions only ever carry bounded
//! values: profile, key type and CA names from the configuration, error
//! codes from the API; never a session id, serial, caller or key.
//!
//! The HTTP layer reports each outcome here ([`Metrics::issued`],
//! [`Metrics::refused`], [`Metrics::checked`]); the CA store reports
//! reloads ([`Metrics::ca_reloaded`]); the ledger's store and the KMS key
//! report each call ([`Metrics::dependency_call`]). This module imports
//! nothing of the service but the leaf vocabulary.

pub mod emf;
pub mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

/// Where metrics go: nowhere, a Prometheus registry, or EMF lines.
/// Cheap to clone.
#[derive(Debug, Clone, Default)]
pub enum Metrics {
    /// Metrics are off (tests, embedders, `metrics.enabled = false`).
    #[default]
    Off,
    /// `serve`: a Prometheus registry, scraped at `GET /metrics`.
    Prometheus(Arc<prometheus::Registry>),
    /// Lambda mode: CloudWatch Embedded Metric Format lines.
    Emf(Arc<emf::Emf>),
}

/// An issued certificate, as metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct IssuedSample<'a> {
    /// The profile that issued it.
    pub profile: &'a str,
    /// The certified key's type.
    pub key_type: &'a str,
    /// The CA that signed it.
    pub ca: &'a str,
    /// From the start of the handler to the response.
    pub latency: Duration,
    /// The signing CA's `notAfter`, for its time left.
    pub ca_not_after: OffsetDateTime,
    /// For a KMS-delegated CA, the end of the delegation that signed it
    /// (renewed before it ends; the KMS CA's own end is `ca_not_after`).
    pub delegation_not_after: Option<OffsetDateTime>,
    /// When it was issued.
    pub now: OffsetDateTime,
}

impl Metrics {
    /// Counts an issued certificate.
    pub fn issued(&self, sample: &IssuedSample<'_>) {
        match self {
            Metrics::Off => {}
            Metrics::Prometheus(registry) => registry.issued(sample),
            Metrics::Emf(emf) => emf.issued(sample),
        }
    }

    /// Counts a refused issuance by its error code (a bounded set), and,
    /// when a rate limit refused it, by the profile and the limit's
    /// setting name (`per_caller`, ...).
    pub fn refused(&self, code: &'static str, rate_limit: Option<RateLimitHit<'_>>) {
        match self {
            Metrics::Off => {}
            Metrics::Prometheus(registry) => registry.refused(code, rate_limit),
            Metrics::Emf(emf) => emf.refused(code, rate_limit),
        }
    }

    /// Counts one call to a dependency (`operation` from a fixed set of
    /// names) and how long it took; `failed` when the dependency failed
    /// (unreachable, throttled past the retries, refused), not when it
    /// answered "no" (a duplicate serial, a bad cursor).
    pub fn dependency_call(
        &self,
        dependency: Dependency,
        operation: &'static str,
        elapsed: Duration,
        failed: bool,
    ) {
        match self {
            Metrics::Off => {}
            Metrics::Prometheus(registry) => {
                registry.dependency_call(dependency, operation, elapsed, failed)
            }
            Metrics::Emf(emf) => emf.dependency_call(dependency, elapsed, failed),
        }
    }

    /// Counts a dry run that passed every check.
    pub fn checked(&self, profile: &str) {
        match self {
            Metrics::Off => {}
            Metrics::Prometheus(registry) => registry.checked(profile),
            Metrics::Emf(emf) => emf.checked(profile),
        }
    }

    /// Writes what is pending (Lambda: CA reload counts not yet on a line)
    /// at the end of a request that made no issuance decision, so it is not
    /// lost when the execution environment goes. One line at most.
    pub fn flush(&self) {
        if let Metrics::Emf(emf) = self {
            emf.flush();
        }
    }

    /// Counts a reload of CA `ca` (a background refresh in `serve`, an
    /// on-request one in Lambda) and whether it succeeded.
    pub fn ca_reloaded(&self, ca: &str, ok: bool) {
        match self {
            Metrics::Off => {}
            Metrics::Prometheus(registry) => registry.ca_reloaded(ca, ok),
            Metrics::Emf(emf) => emf.ca_reloaded(ok),
        }
    }
}

/// A refusal by a rate limit: the profile and the limit's setting name.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitHit<'a> {
    /// The profile whose limit it is.
    pub profile: &'a str,
    /// The limit's setting name (`per_caller`, `per_session`, ...).
    pub limit: &'static str,
}

/// A dependency whose calls are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The ledger's store (SQLite or DynamoDB).
    Store,
    /// AWS KMS (a KMS-held CA key).
    Kms,
}

/// Seconds from `now` to `not_after` (negative once it has passed).
pub fn seconds_left(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_seconds()
}
