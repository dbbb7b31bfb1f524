//! Lambda mode's metrics: one CloudWatch Embedded Metric Format line per
//! issuance decision, written on stdout (the function's log), from which
//! CloudWatch Logs extracts the metrics: no CloudWatch API call, and
//! nothing on the hot path but formatting one line.
//!
//! Metric names are PascalCase with CloudWatch units; the dimension sets
//! are chosen for cheap alarms: every metric also has the empty dimension
//! set (one series for the whole function), and one set with the bounded
//! labels an operator breaks it down by.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::{seconds_left, IssuedSample};

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "SessionCA";

/// Writes EMF lines to stdout (or, for tests, to any writer).
pub struct Emf {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
    /// CA reloads since the last line, reported with the next one.
    reloads: AtomicU64,
    /// Failed CA reloads since the last line.
    reload_failures: AtomicU64,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Emf {
    /// Lines to stdout, under CloudWatch namespace `namespace`.
    pub fn stdout(namespace: &str) -> Emf {
        Emf::to_writer(namespace, Box::new(std::io::stdout()))
    }

    /// Lines to `out`.
    pub fn to_writer(namespace: &str, out: Box<dyn Write + Send>) -> Emf {
        Emf {
            namespace: namespace.to_owned(),
            out: Mutex::new(out),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    pub(super) fn issued(&self, sample: &IssuedSample<'_>) {
        let mut root = Map::new();
        root.insert("Profile".into(), sample.profile.into());
        root.insert("KeyType".into(), sample.key_type.into());
        root.insert("Ca".into(), sample.ca.into());
        root.insert("CertificatesIssued".into(), 1.into());
        root.insert(
            "IssuanceLatency".into(),
            json!(sample.latency.as_secs_f64() * 1000.0),
        );
        root.insert(
            "CaSecondsToExpiry".into(),
            seconds_left(sample.ca_not_after, sample.now).into(),
        );
        let directives = vec![
            self.directive(
                &[&[], &["Profile", "KeyType", "Ca"]],
                &[
                    ("CertificatesIssued", "Count"),
                    ("IssuanceLatency", "Milliseconds"),
                ],
            ),
            self.directive(&[&["Ca"]], &[("CaSecondsToExpiry", "Seconds")]),
        ];
        self.write(root, directives, sample.now);
    }

    pub(super) fn refused(&self, code: &str) {
        let mut root = Map::new();
        root.insert("ErrorCode".into(), code.into());
        root.insert("Refusals".into(), 1.into());
        let directives = vec![self.directive(&[&[], &["ErrorCode"]], &[("Refusals", "Count")])];
        self.write(root, directives, OffsetDateTime::now_utc());
    }

    pub(super) fn checked(&self, profile: &str) {
        let mut root = Map::new();
        root.insert("Profile".into(), profile.into());
        root.insert("DryRuns".into(), 1.into());
        let directives = vec![self.directive(&[&[], &["Profile"]], &[("DryRuns", "Count")])];
        self.write(root, directives, OffsetDateTime::now_utc());
    }

    pub(super) fn ca_reloaded(&self, ok: bool) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.reload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A MetricDirective: `dimensions` (sets of root member names) and
    /// `metrics` (name, CloudWatch unit).
    fn directive(&self, dimensions: &[&[&str]], metrics: &[(&str, &str)]) -> Value {
        json!({
            "Namespace": self.namespace,
            "Dimensions": dimensions,
            "Metrics": metrics
                .iter()
                .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
                .collect::<Vec<_>>(),
        })
    }

    /// Writes one line: `root`'s members, the pending CA reload counts, and
    /// the `_aws` metadata, in one `write` so lines never interleave.
    fn write(&self, mut root: Map<String, Value>, mut directives: Vec<Value>, at: OffsetDateTime) {
        let reloads = self.reloads.swap(0, Ordering::Relaxed);
        let failures = self.reload_failures.swap(0, Ordering::Relaxed);
        if reloads > 0 {
            root.insert("CaReloads".into(), reloads.into());
            root.insert("CaReloadFailures".into(), failures.into());
            directives.push(self.directive(
                &[&[]],
                &[("CaReloads", "Count"), ("CaReloadFailures", "Count")],
            ));
        }
        let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        root.insert(
            "_aws".into(),
            json!({ "Timestamp": millis, "CloudWatchMetrics": directives }),
        );
        let mut line = serde_json::to_vec(&Value::Object(root)).unwrap_or_default();
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A metrics line that cannot be written has nowhere to be reported.
        let _ = out.write_all(&line);
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(capture: &Capture) -> Vec<Value> {
        String::from_utf8(capture.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect()
    }

    /// The spec's rules a line must keep: every dimension a string member
    /// of the root, every metric a number member of the root.
    fn check_references(line: &Value) {
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for set in directive["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(line[key.as_str().unwrap()].is_string(), "{key} in {line}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(line[name].is_number(), "{name} in {line}");
            }
        }
    }

    #[test]
    fn one_line_per_decision_with_its_values() {
        let capture = Capture::default();
        let emf = Emf::to_writer("Test", Box::new(capture.clone()));
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        emf.ca_reloaded(true);
        emf.ca_reloaded(false);
        emf.issued(&IssuedSample {
            profile: "default",
            key_type: "ed25519",
            ca: "payments",
            latency: Duration::from_micros(1500),
            ca_not_after: now + time::Duration::hours(1),
            now,
        });
        emf.refused("caller_not_allowed");
        emf.checked("default");
        let lines = lines(&capture);
        assert_eq!(lines.len(), 3);
        for line in &lines {
            check_references(line);
            assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test");
        }
        let issued = &lines[0];
        assert_eq!(issued["_aws"]["Timestamp"], 1_767_225_600_000i64);
        assert_eq!(issued["CertificatesIssued"], 1);
        assert_eq!(issued["IssuanceLatency"], 1.5);
        assert_eq!(issued["CaSecondsToExpiry"], 3600);
        assert_eq!(issued["KeyType"], "ed25519");
        assert_eq!(
            issued["CaReloads"], 2,
            "pending reloads ride on the next line"
        );
        assert_eq!(issued["CaReloadFailures"], 1);
        assert_eq!(lines[1]["Refusals"], 1);
        assert_eq!(lines[1]["ErrorCode"], "caller_not_allowed");
        assert!(lines[1].get("CaReloads").is_none(), "reported once");
        assert_eq!(lines[2]["DryRuns"], 1);
    }
}
