//! The embedded ledger of `serve`: the default configuration records every
//! certificate in `signer-key/ledger.sqlite3` before answering; the record
//! is what was issued and never holds a private key or a PKCS#12 password;
//! a locked ledger file fails issuance closed (503, no certificate) and the
//! audit event and the log say why.

use crate::common::tools;

use serde_json::Value;
use session_ca::{LedgerKey, LedgerQuery, Store};

const BIN: &str = env!("CARGO_BIN_EXE_session-ca");

fn post(port: u16, body: &str) -> (u16, Value) {
    let (status, text) = tools::http(port, "POST", "/v1/certificates", body);
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_records_every_certificate_before_answering_and_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, log) = tools::start_serve_logged(BIN, dir.path(), &[]);
    let path = dir.path().join("signer-key/ledger.sqlite3");

    let (status, issued) = post(
        port,
        r#"{"transaction_id":"tx-ledger","claims":{"agent":"ledger test"},"key_type":"ed25519"}"#,
    );
    assert_eq!(status, 201, "{issued}");
    // A FIPS build issues no PKCS#12 key stores.
    let with_p12 = (!cfg!(feature = "fips")).then(|| {
        let (status, with_p12) = post(port, r#"{"transaction_id":"tx-p12","pkcs12":true}"#);
        assert_eq!(status, 201, "{with_p12}");
        with_p12
    });

    // Read back through a store of our own on the same file.
    let store = session_ca::SqliteStore::open(&path, session_ca::DEFAULT_RETENTION).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let page = store
        .query(&LedgerQuery {
            key: LedgerKey::Serial(issued["serial"].as_str().unwrap().to_owned()),
            since: None,
            until: None,
            limit: 10,
            cursor: None,
            now,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let record = &page.records[0];
    assert_eq!(record.certificate, issued["certificate"].as_str().unwrap());
    assert_eq!(
        record.fingerprint_sha256,
        issued["fingerprint_sha256"].as_str().unwrap()
    );
    assert_eq!(record.session_id, issued["session_id"].as_str().unwrap());
    assert_eq!(record.request_id, issued["request_id"].as_str().unwrap());
    assert_eq!(record.transaction_id.as_deref(), Some("tx-ledger"));
    assert_eq!(record.key_type, "ed25519");
    assert_eq!(
        (record.ca.as_str(), record.profile.as_str()),
        ("default", "default")
    );
    assert_eq!(record.requester, None, "auth none: anonymous");
    // The profile's claims as the certificate carries them (a string claim's text).
    assert_eq!(
        record.claims,
        [("agent".to_owned(), "ledger test".to_owned())]
    );

    // No private key, no PKCS#12 password, in any form, anywhere in the file.
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    let wal = std::fs::read(path.with_extension("sqlite3-wal")).unwrap_or_default();
    let key_body: String = issued["private_key"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for (haystack, name) in [(&bytes, "ledger.sqlite3"), (&wal, "ledger.sqlite3-wal")] {
        let text = String::from_utf8_lossy(haystack);
        assert!(!text.contains("PRIVATE KEY"), "{name} holds a private key");
        assert!(
            !text.contains(&key_body),
            "{name} holds the private key's base64"
        );
        if let Some(with_p12) = &with_p12 {
            let password = with_p12["pkcs12"]["password"].as_str().unwrap();
            assert!(
                !text.contains(password),
                "{name} holds the PKCS#12 password"
            );
            let store = &with_p12["pkcs12"]["base64"].as_str().unwrap()[..64];
            assert!(!text.contains(store), "{name} holds the key store");
        }
    }

    // `session-ca ledger` prints every record of the session as JSON lines,
    // across pages of one.
    let out = tools::session_ca_in(
        BIN,
        dir.path(),
        &[
            "ledger",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--transaction-id",
            "tx-ledger",
            "--page-size",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", tools::output_text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["serial"], issued["serial"]);
    // A reader that has gone (`| head -0`) ends it quietly, with success:
    // the pipe is closed before the first page can have arrived.
    let mut reader_gone = std::process::Command::new(BIN)
        .args([
            "ledger",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--transaction-id",
            "tx-ledger",
        ])
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(reader_gone.stdout.take());
    let out = reader_gone.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tools::session_ca_in(
        BIN,
        dir.path(),
        &[
            "ledger",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--page-size",
            "1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a key is required: {}",
        tools::output_text(&out)
    );

    // Another writer holds the file: issuance fails closed after the busy
    // timeout, with no certificate, and recovers once the lock is gone.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (status, refused) = post(port, r#"{"transaction_id":"tx-locked"}"#);
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["error"]["code"], "ledger_unavailable");
    assert!(refused.get("certificate").is_none());
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let (status, _) = post(port, r#"{"transaction_id":"tx-after"}"#);
    assert_eq!(status, 201);

    drop(server);
    let log = log.join().unwrap();
    let refused_events: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["code"] == "ledger_unavailable")
        .collect();
    assert!(
        refused_events.iter().any(|e| e["target"] == "audit"),
        "an audit event with the code: {log}"
    );
    assert!(
        refused_events
            .iter()
            .any(|e| e["error"].as_str().is_some_and(|m| m.contains("locked"))),
        "the cause in the log: {log}"
    );
}

/// `GET /v1/certificates` on a loopback signer (auth none: the local user
/// is the administrator): every key, windows, pages, and its errors.
#[tokio::test]
async fn the_ledger_answers_queries_by_every_key_in_pages() {
    use crate::common::{get, issue_json, TestService};
    let service = TestService::new().await;
    let mut state = service.state.clone();
    let store = session_ca::SqliteStore::open(
        &service.dir.path().join("ledger.sqlite3"),
        session_ca::DEFAULT_RETENTION,
    )
    .unwrap();
    // No ledger configured: 404.
    let reply = get(&state, "/v1/certificates?session_id=x").await;
    assert_eq!(
        (reply.status.as_u16(), reply.code().as_str()),
        (404, "not_found")
    );
    state.ledger = session_ca::Ledger::new(std::sync::Arc::new(store));

    let session = crate::common::SESSION_ID;
    let mut serials = Vec::new();
    for tx in ["tx-a", "tx-b", "tx-b"] {
        let reply = issue_json(
            &state,
            serde_json::json!({"session_id": session, "transaction_id": tx, "claims": {"agent": "q"}}),
        )
        .await;
        assert_eq!(reply.status, 201);
        serials.push(reply.json()["serial"].as_str().unwrap().to_owned());
    }
    let page = get(&state, &format!("/v1/certificates?session_id={session}")).await;
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    let page = page.json();
    let records = page["certificates"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["claims"]["agent"], "q");
    assert_eq!(records[0]["issued_at"], "2026-01-01T00:00:00Z");
    assert!(records[0]["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let page = get(&state, "/v1/certificates?transaction_id=tx-b")
        .await
        .json();
    assert_eq!(page["certificates"].as_array().unwrap().len(), 2);
    let upper = serials[0].to_ascii_uppercase();
    let page = get(&state, &format!("/v1/certificates?serial={upper}"))
        .await
        .json();
    assert_eq!(page["certificates"][0]["serial"], serials[0].as_str());
    // A window after the issuance time holds nothing.
    let page = get(
        &state,
        &format!("/v1/certificates?session_id={session}&since=2026-01-01T00:00:01Z"),
    )
    .await
    .json();
    assert_eq!(page["certificates"].as_array().unwrap().len(), 0);
    // Pages of two: the cursor leads to the third record.
    let first = get(
        &state,
        &format!("/v1/certificates?session_id={session}&limit=2"),
    )
    .await
    .json();
    assert_eq!(first["certificates"].as_array().unwrap().len(), 2);
    let cursor = first["next"].as_str().unwrap().to_owned();
    let second = get(
        &state,
        &format!("/v1/certificates?session_id={session}&limit=2&cursor={cursor}"),
    )
    .await
    .json();
    assert_eq!(second["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], serde_json::Value::Null);

    for (query, why) in [
        ("", "exactly one of"),
        ("session_id=a&serial=01", "exactly one of"),
        ("session_id=a&since=yesterday", "RFC 3339"),
        ("session_id=a&limit=0", "limit must be between 1 and 1000"),
        ("session_id=a&surprise=1", "surprise"),
        ("session_id=a&cursor=nope", "cursor"),
        // A cursor is good only for the query that gave it.
        (
            &*format!("session_id=other-session&limit=2&cursor={cursor}"),
            "cursor",
        ),
        (
            &*format!("session_id={session}&since=2025-01-01T00:00:00Z&cursor={cursor}"),
            "cursor",
        ),
        ("session_id=", "session_id: must be 1 to 500 characters"),
        (
            &*format!("requester={}", "r".repeat(501)),
            "requester: must be 1 to 500",
        ),
        ("serial=not-hex", "serial: must be hexadecimal"),
        ("serial=0a:7f", "serial: must be hexadecimal"),
    ] {
        let reply = get(&state, &format!("/v1/certificates?{query}")).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code().as_str()),
            (400, "invalid_query"),
            "{query}"
        );
        assert!(
            reply.message().contains(why),
            "{query}: {}",
            reply.message()
        );
    }
}

/// Unmounts a test's filesystem when dropped.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[ignore = "needs root to mount a small tmpfs; run scripts/test (as root, as CI does)"]
#[test]
fn a_full_disk_fails_issuance_closed_and_recovers_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a 1 MiB tmpfs (this test needs root)"
    );
    let _mounted = Mounted(small.clone());
    let (server, port, log) = tools::start_serve_logged_env(
        BIN,
        dir.path(),
        &[],
        &[(
            "SESSION_CA_STORE__URL",
            "sqlite:small/ledger.sqlite3".to_owned(),
        )],
    );
    let (status, first) = post(port, r#"{"transaction_id":"tx-space"}"#);
    assert_eq!(status, 201, "{first}");

    // Fill what is left of the filesystem.
    let filler = small.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_all())
            .is_ok()
        {}
    }
    // Every answer is a refusal without a certificate, or a certificate
    // that is in the ledger; a full disk gives refusals.
    let mut issued = vec![first["serial"].as_str().unwrap().to_owned()];
    let mut refused = 0;
    for i in 0..20 {
        let (status, body) = post(port, &format!(r#"{{"transaction_id":"tx-full-{i}"}}"#));
        match status {
            201 => issued.push(body["serial"].as_str().unwrap().to_owned()),
            503 => {
                assert_eq!(body["error"]["code"], "ledger_unavailable", "{body}");
                assert!(body.get("certificate").is_none());
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(refused > 0, "the full disk refused nothing");

    // Space again: the same process recovers.
    std::fs::remove_file(&filler).unwrap();
    let (status, after) = post(port, r#"{"transaction_id":"tx-space-again"}"#);
    assert_eq!(status, 201, "{after}");
    issued.push(after["serial"].as_str().unwrap().to_owned());
    drop(server);
    let store =
        session_ca::SqliteStore::open(&small.join("ledger.sqlite3"), session_ca::DEFAULT_RETENTION)
            .unwrap();
    for serial in &issued {
        assert!(
            store.contains(serial).unwrap(),
            "{serial} was returned, so recorded"
        );
    }
    let log = log.join().unwrap();
    assert!(
        log.contains("database or disk is full"),
        "the cause in the log: {log}"
    );
}
