//! `serve`'s metrics: a Prometheus registry (the `prometheus` crate; its
//! text encoder writes exposition format 0.0.4, which `promtool check
//! metrics` and every Prometheus server read), base units, `_total`
//! counters and `_seconds` durations.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};
use time::OffsetDateTime;

use super::{seconds_left, Dependency, IssuedSample, RateLimitHit};

/// The media type of the exposition (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Issuance latency buckets, in seconds: from 100 µs (a P-256 certificate
/// takes tens of µs of CPU) to 2.5 s (RSA-3072 key generation on a busy host).
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Store call buckets, in seconds: from 50 µs (an SQLite read) to 5 s
/// (DynamoDB throttled through the SDK's retries).
const STORE_BUCKETS: [f64; 13] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0,
];

/// KMS call buckets, in seconds: a `Sign` takes milliseconds to tens of
/// them; throttling and retries take seconds.
const KMS_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// The registry and its metric families.
#[derive(Debug)]
pub struct Registry {
    registry: prometheus::Registry,
    issued: IntCounterVec,
    refused: IntCounterVec,
    dry_runs: IntCounterVec,
    latency: HistogramVec,
    ca_expiry: IntGaugeVec,
    delegation_expiry: IntGaugeVec,
    ca_reloads: IntCounterVec,
    rate_limited: IntCounterVec,
    store_latency: HistogramVec,
    store_errors: IntCounterVec,
    kms_latency: HistogramVec,
    kms_errors: IntCounterVec,
    /// One exposition at a time: the CA gauges are reset and set for each,
    /// and two scrapes at once must not see each other's half.
    exposing: std::sync::Mutex<()>,
}

impl Registry {
    /// A registry with every family registered (and no samples yet).
    pub fn new() -> Registry {
        // The names, labels and buckets are constants, so registering
        // cannot fail; a failure would be a bug caught by every test.
        let registry = prometheus::Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique name");
            c
        };
        let issued = counter(
            "session_ca_certificates_issued_total",
            "Certificates issued, by profile, key type and signing CA.",
            &["profile", "key_type", "ca"],
        );
        let refused = counter(
            "session_ca_refusals_total",
            "Issuance requests refused, by the error code of the response.",
            &["code"],
        );
        let dry_runs = counter(
            "session_ca_dry_runs_total",
            "Dry runs (?dry_run=true) that passed every check, by profile.",
            &["profile"],
        );
        let ca_reloads = counter(
            "session_ca_ca_reloads_total",
            "Reloads of a CA from its source, by CA and outcome (ok, failed).",
            &["ca", "outcome"],
        );
        let rate_limited = counter(
            "session_ca_rate_limited_total",
            "Issuance requests refused by a rate limit, by profile and limit \
             (per_caller, per_session, ...).",
            &["profile", "limit"],
        );
        let store_errors = counter(
            "session_ca_store_errors_total",
            "Calls to the ledger's store that failed (unreachable, locked, full, throttled), \
             by operation.",
            &["operation"],
        );
        let kms_errors = counter(
            "session_ca_kms_errors_total",
            "Calls to AWS KMS that failed (throttled, disabled key, denied, unreachable), \
             by operation.",
            &["operation"],
        );
        let histogram = |name: &str, help: &str, label: &str, buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                &[label],
            )
            .expect("valid histogram");
            registry.register(Box::new(h.clone())).expect("unique name");
            h
        };
        let latency = histogram(
            "session_ca_issuance_duration_seconds",
            "Time from the start of the issuance handler to the response, by profile.",
            "profile",
            &LATENCY_BUCKETS,
        );
        let store_latency = histogram(
            "session_ca_store_duration_seconds",
            "Time of each call to the ledger's store (SQLite or DynamoDB), by operation, \
             failed calls included.",
            "operation",
            &STORE_BUCKETS,
        );
        let kms_latency = histogram(
            "session_ca_kms_duration_seconds",
            "Time of each call to AWS KMS (sign, get_public_key), failed calls included.",
            "operation",
            &KMS_BUCKETS,
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["ca"]).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique name");
            g
        };
        let ca_expiry = gauge(
            "session_ca_ca_expiry_seconds",
            "Seconds until the CA's certificate (or its chain) expires, by CA; \
             negative once it has. For a KMS-delegated CA, the KMS CA's.",
        );
        let delegation_expiry = gauge(
            "session_ca_ca_delegation_expiry_seconds",
            "Seconds until the current delegation of a KMS-delegated CA expires (it is \
             renewed at two thirds of its period), by CA; negative once it has.",
        );
        Registry {
            registry,
            issued,
            refused,
            dry_runs,
            latency,
            ca_expiry,
            delegation_expiry,
            ca_reloads,
            rate_limited,
            store_latency,
            store_errors,
            kms_latency,
            kms_errors,
            exposing: std::sync::Mutex::new(()),
        }
    }

    pub(super) fn issued(&self, sample: &IssuedSample<'_>) {
        self.issued
            .with_label_values(&[sample.profile, sample.key_type, sample.ca])
            .inc();
        self.latency
            .with_label_values(&[sample.profile])
            .observe(sample.latency.as_secs_f64());
    }

    pub(super) fn refused(&self, code: &str, rate_limit: Option<RateLimitHit<'_>>) {
        self.refused.with_label_values(&[code]).inc();
        if let Some(hit) = rate_limit {
            self.rate_limited
                .with_label_values(&[hit.profile, hit.limit])
                .inc();
        }
    }

    pub(super) fn dependency_call(
        &self,
        dependency: Dependency,
        operation: &str,
        elapsed: std::time::Duration,
        failed: bool,
    ) {
        let (latency, errors) = match dependency {
            Dependency::Store => (&self.store_latency, &self.store_errors),
            Dependency::Kms => (&self.kms_latency, &self.kms_errors),
        };
        latency
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
        // Made with the operation's first call, so that its error count
        // reads 0 (a series to alert on) before the first failure.
        let errors = errors.with_label_values(&[operation]);
        if failed {
            errors.inc();
        }
    }

    pub(super) fn checked(&self, profile: &str) {
        self.dry_runs.with_label_values(&[profile]).inc();
    }

    pub(super) fn ca_reloaded(&self, ca: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.ca_reloads.with_label_values(&[ca, outcome]).inc();
    }

    /// The exposition, with each CA's time left computed now from `cas`.
    /// A CA that has not loaded has no sample: "unknown" is not a number of
    /// seconds.
    pub fn exposition(&self, cas: &[CaExpiry], now: OffsetDateTime) -> Vec<u8> {
        let _one_at_a_time = self.exposing.lock().unwrap_or_else(|e| e.into_inner());
        self.ca_expiry.reset();
        self.delegation_expiry.reset();
        for ca in cas {
            if let Some(not_after) = ca.not_after {
                self.ca_expiry
                    .with_label_values(&[ca.name.as_str()])
                    .set(seconds_left(not_after, now));
            }
            if let Some(delegation) = ca.delegation_not_after {
                self.delegation_expiry
                    .with_label_values(&[ca.name.as_str()])
                    .set(seconds_left(delegation, now));
            }
        }
        let mut out = Vec::with_capacity(4096);
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// A CA's ends, as the exposition reports them.
#[derive(Debug, Clone)]
pub struct CaExpiry {
    /// The CA's configured name.
    pub name: String,
    /// When the CA (its certificate or chain) expires; none before it has
    /// loaded.
    pub not_after: Option<OffsetDateTime>,
    /// For a KMS-delegated CA, when its current delegation expires.
    pub delegation_not_after: Option<OffsetDateTime>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_exposition_counts_what_happened() {
        let registry = Registry::new();
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        let sample = IssuedSample {
            profile: "default",
            key_type: "ecdsa-p256",
            ca: "default",
            latency: Duration::from_micros(300),
            ca_not_after: now + time::Duration::days(10),
            delegation_not_after: None,
            now,
        };
        registry.issued(&sample);
        registry.issued(&sample);
        registry.refused("ttl_too_long", None);
        registry.refused(
            "rate_limited",
            Some(RateLimitHit {
                profile: "default",
                limit: "per_caller",
            }),
        );
        registry.checked("default");
        registry.ca_reloaded("default", false);
        registry.dependency_call(
            Dependency::Store,
            "record",
            Duration::from_micros(700),
            false,
        );
        registry.dependency_call(Dependency::Store, "record", Duration::from_millis(3), true);
        registry.dependency_call(
            Dependency::Store,
            "revoked",
            Duration::from_micros(40),
            false,
        );
        registry.dependency_call(Dependency::Kms, "sign", Duration::from_millis(20), false);
        let text = String::from_utf8(registry.exposition(
            &[
                CaExpiry {
                    name: "default".into(),
                    not_after: Some(now + time::Duration::days(10)),
                    delegation_not_after: None,
                },
                CaExpiry {
                    name: "kms".into(),
                    not_after: Some(now + time::Duration::days(300)),
                    delegation_not_after: Some(now + time::Duration::minutes(40)),
                },
                CaExpiry {
                    name: "cold".into(),
                    not_after: None,
                    delegation_not_after: None,
                },
            ],
            now,
        ))
        .unwrap();
        for line in [
            "# TYPE session_ca_certificates_issued_total counter",
            r#"session_ca_certificates_issued_total{ca="default",key_type="ecdsa-p256",profile="default"} 2"#,
            r#"session_ca_refusals_total{code="ttl_too_long"} 1"#,
            r#"session_ca_refusals_total{code="rate_limited"} 1"#,
            r#"session_ca_rate_limited_total{limit="per_caller",profile="default"} 1"#,
            r#"session_ca_dry_runs_total{profile="default"} 1"#,
            r#"session_ca_ca_reloads_total{ca="default",outcome="failed"} 1"#,
            r#"session_ca_ca_expiry_seconds{ca="default"} 864000"#,
            r#"session_ca_ca_expiry_seconds{ca="kms"} 25920000"#,
            r#"session_ca_ca_delegation_expiry_seconds{ca="kms"} 2400"#,
            r#"session_ca_issuance_duration_seconds_bucket{profile="default",le="0.0005"} 2"#,
            r#"session_ca_issuance_duration_seconds_bucket{profile="default",le="0.00025"} 0"#,
            r#"session_ca_issuance_duration_seconds_count{profile="default"} 2"#,
            "# TYPE session_ca_store_duration_seconds histogram",
            r#"session_ca_store_duration_seconds_bucket{operation="record",le="0.001"} 1"#,
            r#"session_ca_store_duration_seconds_count{operation="record"} 2"#,
            r#"session_ca_store_duration_seconds_count{operation="revoked"} 1"#,
            r#"session_ca_store_errors_total{operation="record"} 1"#,
            r#"session_ca_store_errors_total{operation="revoked"} 0"#,
            r#"session_ca_kms_duration_seconds_bucket{operation="sign",le="0.025"} 1"#,
            r#"session_ca_kms_duration_seconds_bucket{operation="sign",le="0.01"} 0"#,
            r#"session_ca_kms_errors_total{operation="sign"} 0"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(
            !text.contains("cold"),
            "a CA not loaded has no sample: {text}"
        );
        assert!(
            !text.contains(r#"session_ca_ca_delegation_expiry_seconds{ca="default"}"#),
            "a CA that is not a delegation has no delegation sample: {text}"
        );
    }
}
