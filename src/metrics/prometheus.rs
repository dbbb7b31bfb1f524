//! `serve`'s metrics: a Prometheus registry (the `prometheus` crate; its
//! text encoder writes exposition format 0.0.4, which `promtool check
//! metrics` and every Prometheus server read), base units, `_total`
//! counters and `_seconds` durations.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder,
};
use time::OffsetDateTime;

use super::{seconds_left, IssuedSample};

/// The media type of the exposition (text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Issuance latency buckets, in seconds: from 100 µs (a P-256 certificate
/// takes tens of µs of CPU) to 2.5 s (RSA-3072 key generation on a busy host).
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
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
    ca_reloads: IntCounterVec,
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
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "session_ca_issuance_duration_seconds",
                "Time from the start of the issuance handler to the response, by profile.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["profile"],
        )
        .expect("valid histogram");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique name");
        let ca_expiry = IntGaugeVec::new(
            Opts::new(
                "session_ca_ca_expiry_seconds",
                "Seconds until the CA's certificate (or its chain) expires, by CA; \
                 negative once it has.",
            ),
            &["ca"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(ca_expiry.clone()))
            .expect("unique name");
        Registry {
            registry,
            issued,
            refused,
            dry_runs,
            latency,
            ca_expiry,
            ca_reloads,
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

    pub(super) fn refused(&self, code: &str) {
        self.refused.with_label_values(&[code]).inc();
    }

    pub(super) fn checked(&self, profile: &str) {
        self.dry_runs.with_label_values(&[profile]).inc();
    }

    pub(super) fn ca_reloaded(&self, ca: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.ca_reloads.with_label_values(&[ca, outcome]).inc();
    }

    /// The exposition, with each CA's time left computed now from
    /// `cas` (name, `notAfter` when loaded). A CA that has not loaded has no
    /// sample: "unknown" is not a number of seconds.
    pub fn exposition(
        &self,
        cas: &[(String, Option<OffsetDateTime>)],
        now: OffsetDateTime,
    ) -> Vec<u8> {
        let _one_at_a_time = self.exposing.lock().unwrap_or_else(|e| e.into_inner());
        self.ca_expiry.reset();
        for (name, not_after) in cas {
            if let Some(not_after) = not_after {
                self.ca_expiry
                    .with_label_values(&[name.as_str()])
                    .set(seconds_left(*not_after, now));
            }
        }
        let mut out = Vec::with_capacity(4096);
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
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
            now,
        };
        registry.issued(&sample);
        registry.issued(&sample);
        registry.refused("ttl_too_long");
        registry.checked("default");
        registry.ca_reloaded("default", false);
        let text = String::from_utf8(registry.exposition(
            &[
                ("default".into(), Some(now + time::Duration::days(10))),
                ("cold".into(), None),
            ],
            now,
        ))
        .unwrap();
        for line in [
            "# TYPE session_ca_certificates_issued_total counter",
            r#"session_ca_certificates_issued_total{ca="default",key_type="ecdsa-p256",profile="default"} 2"#,
            r#"session_ca_refusals_total{code="ttl_too_long"} 1"#,
            r#"session_ca_dry_runs_total{profile="default"} 1"#,
            r#"session_ca_ca_reloads_total{ca="default",outcome="failed"} 1"#,
            r#"session_ca_ca_expiry_seconds{ca="default"} 864000"#,
            r#"session_ca_issuance_duration_seconds_bucket{profile="default",le="0.0005"} 2"#,
            r#"session_ca_issuance_duration_seconds_bucket{profile="default",le="0.00025"} 0"#,
            r#"session_ca_issuance_duration_seconds_count{profile="default"} 2"#,
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
    }
}
