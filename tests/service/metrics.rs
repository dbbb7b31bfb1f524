//! Metrics: the Prometheus exposition of `serve` after traffic, read in
//! process, by `promtool check metrics` and by a real Prometheus server
//! scraping a running signer; nothing secret or unbounded in any label.
//! (Lambda mode's EMF lines are checked under the runtime loop, in
//! lambda_runtime.rs.)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use session_ca::{AppState, Metrics, PrometheusRegistry};

use crate::common::tools::{self, free_port, wait_for_port, Guard};
use crate::common::{issue_json, send, send_to, TestService, SESSION_ID};

fn with_prometheus(state: &AppState) -> AppState {
    AppState {
        metrics: Metrics::Prometheus(Arc::new(PrometheusRegistry::new())),
        ledger: Default::default(),
        ..state.clone()
    }
}

async fn exposition(state: &AppState) -> (StatusCode, String, String) {
    let reply = send(state, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let content_type = reply
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        reply.status,
        content_type,
        String::from_utf8(reply.body).unwrap(),
    )
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn serve_counts_issuance_refusals_and_ca_expiry() {
    let service = TestService::new().await;
    let state = with_prometheus(&service.state);
    let mut secrets = Vec::new();
    for key_type in ["ecdsa-p256", "ed25519"] {
        let reply = issue_json(
            &state,
            json!({"session_id": SESSION_ID, "key_type": key_type}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let body = reply.json();
        secrets.push(body["serial"].as_str().unwrap().to_owned());
        let key = body["private_key"].as_str().unwrap();
        secrets.push(key.lines().nth(1).unwrap().to_owned());
    }
    let reply = issue_json(&state, json!({"ttl_seconds": 0})).await;
    assert_eq!(reply.code(), "ttl_too_short");
    let reply = issue_json(&state, json!({"profile": "nope"})).await;
    assert_eq!(reply.code(), "unknown_profile");
    let reply = send(
        &state,
        Request::post("/v1/certificates?dry_run=true")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let (status, content_type, text) = exposition(&state).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for (series, value) in [
        (
            r#"session_ca_certificates_issued_total{ca="default",key_type="ecdsa-p256",profile="default"}"#,
            1.0,
        ),
        (
            r#"session_ca_certificates_issued_total{ca="default",key_type="ed25519",profile="default"}"#,
            1.0,
        ),
        (r#"session_ca_refusals_total{code="ttl_too_short"}"#, 1.0),
        (r#"session_ca_refusals_total{code="unknown_profile"}"#, 1.0),
        (r#"session_ca_dry_runs_total{profile="default"}"#, 1.0),
        (
            r#"session_ca_issuance_duration_seconds_count{profile="default"}"#,
            2.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // The test CA was made a day before t0 for 365 days; the clock is t0.
    let left = sample(&text, r#"session_ca_ca_expiry_seconds{ca="default"}"#).unwrap();
    assert_eq!(left, (364 * 86_400) as f64);
    // Bounded labels only: no session id, serial or key material.
    secrets.push(SESSION_ID.to_owned());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "{secret} in the metrics");
    }

    // Without metrics there is no /metrics route.
    let (status, _, _) = exposition(&service.state).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_can_have_their_own_listener() {
    let service = TestService::new().await;
    let text = crate::common::config_text(&service.ca_dir(), "")
        + "\n[server]\nmetrics_listen = \"127.0.0.1:9100\"\n";
    let state =
        crate::common::state_from_toml(&text, crate::common::t0(), crate::common::t0()).await;
    assert_eq!(
        state.config.server.metrics_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    let state = with_prometheus(&state);
    let (status, _, _) = exposition(&state).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the main listener");
    let reply = send_to(
        session_ca::metrics_app(state.clone()),
        Request::get("/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Before any traffic, only the CA's time left has a sample.
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        sample(&text, r#"session_ca_ca_expiry_seconds{ca="default"}"#).is_some(),
        "{text}"
    );
}

/// The body of `GET path`.
fn http_get(port: u16, path: &str) -> String {
    tools::http(port, "GET", path, "").1
}

/// The status of an issuance request with `body`.
fn post(port: u16, body: &str) -> u16 {
    tools::http(port, "POST", "/v1/certificates", body).0
}

#[test]
#[ignore = "needs promtool and prometheus (Debian package prometheus); run scripts/test"]
fn promtool_accepts_it_and_prometheus_scrapes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = tools::start_serve(env!("CARGO_BIN_EXE_session-ca"), dir.path());
    for _ in 0..3 {
        assert_eq!(post(port, r#"{"transaction_id":"tx-metrics"}"#), 201);
    }
    assert_eq!(post(port, r#"{"ttl_seconds":0}"#), 422);
    let text = http_get(port, "/metrics");
    // The embedded default records each certificate in its SQLite ledger:
    // three records, each then checked against the revocations, none failed.
    for (series, value) in [
        (
            r#"session_ca_store_duration_seconds_count{operation="record_then_revoked"}"#,
            3.0,
        ),
        (
            r#"session_ca_store_errors_total{operation="record_then_revoked"}"#,
            0.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }

    // promtool reads the exposition format and lints names, units and help.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); scripts/test installs prometheus"));
    use std::io::Write as _;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A Prometheus server scrapes the signer every second; PromQL through
    // its HTTP API sees the three certificates.
    let prometheus_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: session-ca\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run prometheus ({e}); scripts/test installs it"));
    let mut server = Guard(server);
    wait_for_port(prometheus_port, &mut server.0);
    let query = "/api/v1/query?query=sum(session_ca_certificates_issued_total)";
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        let answer: Value =
            serde_json::from_str(&http_get(prometheus_port, query)).unwrap_or_default();
        if let Some(value) = answer["data"]["result"][0]["value"][1].as_str() {
            break value.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped the signer: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(value, "3");
    let answer: Value = serde_json::from_str(&http_get(
        prometheus_port,
        "/api/v1/query?query=session_ca_refusals_total",
    ))
    .unwrap();
    assert_eq!(
        answer["data"]["result"][0]["metric"]["code"],
        "ttl_too_short"
    );
}

/// `serve` with `server.metrics_listen`: the addresses its log says it
/// listens on, main first, then metrics.
fn serve_with_metrics_listener(dir: &std::path::Path) -> (Guard, u16, u16) {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-ca"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SESSION_CA_LOG_FORMAT", "json")
        .env("SESSION_CA_SERVER__METRICS_LISTEN", "127.0.0.1:0")
        .env_remove("SESSION_CA_CONFIG")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Guard(child);
    let (found, ports) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let event: Value = serde_json::from_str(&line).unwrap_or_default();
            let message = event["message"].as_str().unwrap_or_default().to_owned();
            if message == "session-ca listening" || message == "session-ca metrics listening" {
                let port = event["address"]
                    .as_str()
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.port());
                let _ = found.send((message, port));
            }
        }
    });
    let mut main = None;
    let mut metrics = None;
    while main.is_none() || metrics.is_none() {
        let (message, port) = ports
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logged its listeners");
        if message == "session-ca listening" {
            main = port;
        } else {
            metrics = port;
        }
    }
    (server, main.unwrap(), metrics.unwrap())
}

#[test]
fn serve_exposes_metrics_on_their_own_listener_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port, metrics_port) = serve_with_metrics_listener(dir.path());
    assert_eq!(post(port, r#"{"transaction_id":"tx-own"}"#), 201);
    let text = http_get(metrics_port, "/metrics");
    assert_eq!(
        sample(
            &text,
            r#"session_ca_certificates_issued_total{ca="default",key_type="ecdsa-p256",profile="default"}"#
        ),
        Some(1.0),
        "{text}"
    );
    let main = http_get(port, "/metrics");
    assert!(main.contains(r#""code":"not_found""#), "{main}");
    let other = http_get(metrics_port, "/v1/ca");
    assert!(other.contains(r#""code":"not_found""#), "{other}");
}
