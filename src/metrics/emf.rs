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

use super::{seconds_left, Dependency, IssuedSample, RateLimitHit};
use crate::fmt::json_string;

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "SessionCA";

/// The most values of one metric on one line (the EMF specification's
/// limit for an array of values); calls past it in one invocation are
/// still counted in the errors, not in the latencies.
const MAX_VALUES: usize = 100;

/// Writes EMF lines to stdout (or, for tests, to any writer).
pub struct Emf {
    /// The MetricDirectives of each kind of line, as JSON, made once: a
    /// line is then a few members and one copy (formatting a whole
    /// `serde_json::Value` cost 6 % of an issuance's CPU).
    issued: String,
    /// An issuance by a KMS-delegated CA: the delegation's time left too.
    issued_delegated: String,
    refused: String,
    /// A refusal by a rate limit: by profile and limit too.
    refused_rate_limited: String,
    checked: String,
    reloads: String,
    store_calls: String,
    kms_calls: String,
    out: Mutex<Box<dyn Write + Send>>,
    /// CA reloads since the last line, reported with the next one.
    pending_reloads: AtomicU64,
    /// Failed CA reloads since the last line.
    pending_reload_failures: AtomicU64,
    /// Store and KMS calls since the last line, reported with the next one.
    pending_calls: Mutex<[Calls; 2]>,
}

/// The calls to one dependency since the last line.
#[derive(Debug, Default)]
struct Calls {
    /// How many.
    count: u64,
    /// How many failed.
    failed: u64,
    /// Their durations, in milliseconds (the first [`MAX_VALUES`]).
    millis: Vec<f64>,
}

/// The members a line gives the calls to one dependency.
struct CallMembers {
    latency: &'static str,
    errors: &'static str,
}

const STORE_MEMBERS: CallMembers = CallMembers {
    latency: "StoreLatency",
    errors: "StoreErrors",
};
const KMS_MEMBERS: CallMembers = CallMembers {
    latency: "KmsLatency",
    errors: "KmsErrors",
};

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
        let issued = directive(
            &[&[], &["Profile", "KeyType", "Ca"]],
            &[
                ("CertificatesIssued", "Count"),
                ("IssuanceLatency", "Milliseconds"),
            ],
        );
        let refused = directive(&[&[], &["ErrorCode"]], &[("Refusals", "Count")]);
        let calls = |members: &CallMembers| {
            directive(
                &[&[]],
                &[(members.latency, "Milliseconds"), (members.errors, "Count")],
            )
        };
        Emf {
            issued_delegated: format!(
                "{issued},{}",
                directive(
                    &[&["Ca"]],
                    &[
                        ("CaSecondsToExpiry", "Seconds"),
                        ("CaDelegationSecondsToExpiry", "Seconds")
                    ]
                )
            ),
            issued: format!(
                "{issued},{}",
                directive(&[&["Ca"]], &[("CaSecondsToExpiry", "Seconds")])
            ),
            refused_rate_limited: format!(
                "{refused},{}",
                directive(&[&["Profile", "Limit"]], &[("RateLimited", "Count")])
            ),
            refused,
            checked: directive(&[&[], &["Profile"]], &[("DryRuns", "Count")]),
            reloads: directive(
                &[&[]],
                &[("CaReloads", "Count"), ("CaReloadFailures", "Count")],
            ),
            store_calls: calls(&STORE_MEMBERS),
            kms_calls: calls(&KMS_MEMBERS),
            out: Mutex::new(out),
            pending_reloads: AtomicU64::new(0),
            pending_reload_failures: AtomicU64::new(0),
            pending_calls: Mutex::default(),
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
        let directives = match sample.delegation_not_after {
            Some(delegation) => {
                let _ = write!(
                    line,
                    ",\"CaDelegationSecondsToExpiry\":{}",
                    seconds_left(delegation, sample.now)
                );
                &self.issued_delegated
            }
            None => &self.issued,
        };
        self.finish(line, directives, sample.now);
    }

    pub(super) fn refused(&self, code: &str, rate_limit: Option<RateLimitHit<'_>>) {
        let mut line = Vec::with_capacity(256 + self.refused_rate_limited.len());
        line.extend_from_slice(b"{\"ErrorCode\":");
        json_string(&mut line, code);
        line.extend_from_slice(b",\"Refusals\":1");
        let directives = match rate_limit {
            Some(hit) => {
                line.extend_from_slice(b",\"Profile\":");
                json_string(&mut line, hit.profile);
                line.extend_from_slice(b",\"Limit\":");
                json_string(&mut line, hit.limit);
                line.extend_from_slice(b",\"RateLimited\":1");
                &self.refused_rate_limited
            }
            None => &self.refused,
        };
        self.finish(line, directives, OffsetDateTime::now_utc());
    }

    pub(super) fn dependency_call(
        &self,
        dependency: Dependency,
        elapsed: std::time::Duration,
        failed: bool,
    ) {
        let mut pending = self.pending_calls.lock().unwrap_or_else(|e| e.into_inner());
        let calls = &mut pending[dependency as usize];
        calls.count += 1;
        calls.failed += u64::from(failed);
        if calls.millis.len() < MAX_VALUES {
            calls.millis.push(elapsed.as_secs_f64() * 1000.0);
        }
    }

    pub(super) fn checked(&self, profile: &str) {
        let mut line = Vec::with_capacity(256 + self.checked.len());
        line.extend_from_slice(b"{\"Profile\":");
        json_string(&mut line, profile);
        line.extend_from_slice(b",\"DryRuns\":1");
        self.finish(line, &self.checked, OffsetDateTime::now_utc());
    }

    pub(super) fn flush(&self) {
        if self.pending_reloads.load(Ordering::Relaxed) == 0 && !self.calls_pending() {
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

    fn calls_pending(&self) -> bool {
        let pending = self.pending_calls.lock().unwrap_or_else(|e| e.into_inner());
        pending.iter().any(|calls| calls.count > 0)
    }

    /// Ends a line begun with its members: the pending CA reload counts and
    /// dependency calls, the `_aws` metadata with `directives` (and theirs),
    /// then writes it in one `write` so lines never interleave.
    fn finish(&self, mut line: Vec<u8>, directives: &str, at: OffsetDateTime) {
        let reloads = self.pending_reloads.swap(0, Ordering::Relaxed);
        let failures = self.pending_reload_failures.swap(0, Ordering::Relaxed);
        let [store, kms] = {
            let mut pending = self.pending_calls.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *pending)
        };
        if directives.is_empty() && reloads == 0 && store.count == 0 && kms.count == 0 {
            return; // a flush that another thread's line has already emptied
        }
        // A line of pending counts alone starts with `{`.
        let separator = |line: &Vec<u8>| if line.len() > 1 { "," } else { "" };
        if reloads > 0 {
            let separator = separator(&line);
            let _ = write!(
                line,
                "{separator}\"CaReloads\":{reloads},\"CaReloadFailures\":{failures}"
            );
        }
        for (calls, members) in [(&store, &STORE_MEMBERS), (&kms, &KMS_MEMBERS)] {
            if calls.count == 0 {
                continue;
            }
            let separator = separator(&line);
            let _ = write!(line, "{separator}\"{}\":[", members.latency);
            for (i, millis) in calls.millis.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                let _ = write!(line, "{comma}{millis}");
            }
            let _ = write!(line, "],\"{}\":{}", members.errors, calls.failed);
        }
        let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let _ = write!(
            line,
            ",\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{directives}"
        );
        let mut more = !directives.is_empty();
        for (pending, directive) in [
            (reloads > 0, &self.reloads),
            (store.count > 0, &self.store_calls),
            (kms.count > 0, &self.kms_calls),
        ] {
            if pending {
                if more {
                    line.push(b',');
                }
                line.extend_from_slice(directive.as_bytes());
                more = true;
            }
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
    /// of the root, every metric a number member of the root or an array
    /// of 1 to 100 numbers.
    fn check_references(line: &Value) {
        for directive in line["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            for set in directive["Dimensions"].as_array().unwrap() {
                for key in set.as_array().unwrap() {
                    assert!(line[key.as_str().unwrap()].is_string(), "{key} in {line}");
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                let value = &line[name];
                let numbers = value.as_array().is_some_and(|values| {
                    !values.is_empty()
                        && values.len() <= MAX_VALUES
                        && values.iter().all(Value::is_number)
                });
                assert!(value.is_number() || numbers, "{name} in {line}");
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
            delegation_not_after: None,
            now,
        });
        emf.refused("caller_not_allowed", None);
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

    #[test]
    fn dependency_calls_rate_limits_and_delegations_ride_on_the_next_line() {
        let capture = Capture::default();
        let emf = Emf::to_writer("Test", Box::new(capture.clone()));
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        emf.dependency_call(Dependency::Store, Duration::from_micros(500), false);
        emf.dependency_call(Dependency::Store, Duration::from_millis(2), true);
        emf.dependency_call(Dependency::Kms, Duration::from_millis(12), false);
        emf.issued(&IssuedSample {
            profile: "default",
            key_type: "ecdsa-p256",
            ca: "kms",
            latency: Duration::from_millis(20),
            ca_not_after: now + time::Duration::days(300),
            delegation_not_after: Some(now + time::Duration::minutes(40)),
            now,
        });
        emf.refused(
            "rate_limited",
            Some(RateLimitHit {
                profile: "default",
                limit: "per_session",
            }),
        );
        for _ in 0..MAX_VALUES + 5 {
            emf.dependency_call(Dependency::Store, Duration::from_micros(100), false);
        }
        emf.flush(); // a line of store calls alone
        emf.flush(); // nothing pending: no line
        let lines = lines(&capture);
        assert_eq!(lines.len(), 3, "{lines:?}");
        for line in &lines {
            check_references(line);
        }
        let issued = &lines[0];
        let millis = |value: &Value| -> Vec<f64> {
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        assert_eq!(millis(&issued["StoreLatency"]), [0.5, 2.0]);
        assert_eq!(issued["StoreErrors"], 1);
        assert_eq!(millis(&issued["KmsLatency"]), [12.0]);
        assert_eq!(issued["KmsErrors"], 0);
        assert_eq!(issued["CaSecondsToExpiry"], 300 * 86400);
        assert_eq!(issued["CaDelegationSecondsToExpiry"], 2400);
        let limited = &lines[1];
        assert_eq!(limited["ErrorCode"], "rate_limited");
        assert_eq!(limited["RateLimited"], 1);
        assert_eq!(limited["Limit"], "per_session");
        assert_eq!(limited["Profile"], "default");
        assert!(limited.get("StoreLatency").is_none(), "reported once");
        let calls = &lines[2];
        assert_eq!(
            calls["StoreLatency"].as_array().unwrap().len(),
            MAX_VALUES,
            "at most the specification's 100 values"
        );
        assert_eq!(calls["StoreErrors"], 0);
        assert!(calls.get("KmsLatency").is_none());
    }
}
