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

use serde_json::json;
use time::OffsetDateTime;

use super::{seconds_left, IssuedSample};
use crate::fmt::json_string;

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "SessionCA";

/// Writes EMF lines to stdout (or, for tests, to any writer).
pub struct Emf {
    /// The MetricDirectives of each kind of line, as JSON, made once: a
    /// line is then a few members and one copy (formatting a whole
    /// `serde_json::Value` cost 6 % of an issuance's CPU).
    issued: String,
    refused: String,
    checked: String,
    reloads: String,
    out: Mutex<Box<dyn Write + Send>>,
    /// CA reloads since the last line, reported with the next one.
    pending_reloads: AtomicU64,
    /// Failed CA reloads since the last line.
    pending_reload_failures: AtomicU64,
}

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf").finish_non_exhaustive()
    }
}

/// Whether `namespace` is one CloudWatch takes for custom metrics: 1-255
/// characters of `A-Z a-z 0-9 . _ - / # :`, not starting with `AWS/`.
pub fn is_valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= 255
        && !namespace.starts_with("AWS/")
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#:".contains(&b))
}

impl Emf {
    /// Lines to stdout, under CloudWatch namespace `namespace`.
    pub fn stdout(namespace: &str) -> Emf {
        Emf::to_writer(namespace, Box::new(std::io::stdout()))
    }

    /// Lines to `out`.
    pub fn to_writer(namespace: &str, out: Box<dyn Write + Send>) -> Emf {
        let directive = |dimensions: &[&[&str]], metrics: &[(&str, &str)]| {
            json!({
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": metrics
                    .iter()
                    .map(|(name, unit)| json!({ "Name": name, "Unit": unit }))
                    .collect::<Vec<_>>(),
            })
            .to_string()
        };
        Emf {
            issued: format!(
                "{},{}",
                directive(
                    &[&[], &["Profile", "KeyType", "Ca"]],
                    &[
                        ("CertificatesIssued", "Count"),
                        ("IssuanceLatency", "Milliseconds"),
                    ],
                ),
                directive(&[&["Ca"]], &[("CaSecondsToExpiry", "Seconds")])
            ),
            refused: directive(&[&[], &["ErrorCode"]], &[("Refusals", "Count")]),
            checked: directive(&[&[], &["Profile"]], &[("DryRuns", "Count")]),
            reloads: directive(
                &[&[]],
                &[("CaReloads", "Count"), ("CaReloadFailures", "Count")],
            ),
            out: Mutex::new(out),
            pending_reloads: AtomicU64::new(0),
            pending_reload_failures: AtomicU64::new(0),
        }
    }

    pub(super) fn issued(&self, sample: &IssuedSample<'_>) {
        let mut line = Vec::with_capacity(512 + self.issued.len());
        line.extend_from_slice(b"{\"Profile\":");
        json_string(&mut line, sample.profile);
        line.extend_from_slice(b",\"KeyType\":");
        json_string(&mut line, sample.key_type);
        line.extend_from_slice(b",\"Ca\":");
        json_string(&mut line, sample.ca);
        let _ = write!(
            line,
            ",\"CertificatesIssued\":1,\"IssuanceLatency\":{},\"CaSecondsToExpiry\":{}",
            sample.latency.as_secs_f64() * 1000.0,
            seconds_left(sample.ca_not_after, sample.now)
        );
        self.finish(line, &self.issued, sample.now);
    }

    pub(super) fn refused(&self, code: &str) {
        let mut line = Vec::with_capacity(256 + self.refused.len());
        line.extend_from_slice(b"{\"ErrorCode\":");
        json_string(&mut line, code);
        line.extend_from_slice(b",\"Refusals\":1");
        self.finish(line, &self.refused, OffsetDateTime::now_utc());
    }

    pub(super) fn checked(&self, profile: &str) {
        let mut line = Vec::with_capacity(256 + self.checked.len());
        line.extend_from_slice(b"{\"Profile\":");
        json_string(&mut line, profile);
        line.extend_from_slice(b",\"DryRuns\":1");
        self.finish(line, &self.checked, OffsetDateTime::now_utc());
    }

    pub(super) fn flush(&self) {
        if self.pending_reloads.load(Ordering::Relaxed) == 0 {
            return;
        }
        // `finish` adds the reload counts and their directive.
        self.finish(b"{".to_vec(), "", OffsetDateTime::now_utc());
    }

    pub(super) fn ca_reloaded(&self, ok: bool) {
        self.pending_reloads.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.pending_reload_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Ends a line begun with its members: the pending CA reload counts,
    /// the `_aws` metadata with `directives`, then writes it in one `write`
    /// so lines never interleave.
    fn finish(&self, mut line: Vec<u8>, directives: &str, at: OffsetDateTime) {
        let reloads = self.pending_reloads.swap(0, Ordering::Relaxed);
        let failures = self.pending_reload_failures.swap(0, Ordering::Relaxed);
        if directives.is_empty() && reloads == 0 {
            return; // a flush that another thread's line has already emptied
        }
        if reloads > 0 {
            // A line of reload counts alone starts with `{`.
            let separator = if line.len() > 1 { "," } else { "" };
            let _ = write!(
                line,
                "{separator}\"CaReloads\":{reloads},\"CaReloadFailures\":{failures}"
            );
        }
        let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let _ = write!(
            line,
            ",\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{directives}"
        );
        if reloads > 0 {
            if !directives.is_empty() {
                line.push(b',');
            }
            line.extend_from_slice(self.reloads.as_bytes());
        }
        line.extend_from_slice(b"]}}\n");
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

    use serde_json::Value;

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
        emf.flush(); // nothing pending: no line
        emf.ca_reloaded(true);
        emf.flush();
        let lines = lines(&capture);
        assert_eq!(lines.len(), 4);
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
        assert_eq!(lines[3]["CaReloads"], 1, "a reload-only line");
        assert_eq!(lines[3]["CaReloadFailures"], 0);
    }
}
