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
    let (status, with_p12) = post(port, r#"{"transaction_id":"tx-p12","pkcs12":true}"#);
    assert_eq!(status, 201, "{with_p12}");

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
    let password = with_p12["pkcs12"]["password"].as_str().unwrap();
    for (haystack, name) in [(&bytes, "ledger.sqlite3"), (&wal, "ledger.sqlite3-wal")] {
        let text = String::from_utf8_lossy(haystack);
        assert!(!text.contains("PRIVATE KEY"), "{name} holds a private key");
        assert!(
            !text.contains(&key_body),
            "{name} holds the private key's base64"
        );
        assert!(
            !text.contains(password),
            "{name} holds the PKCS#12 password"
        );
        assert!(
            !text.contains(&with_p12["pkcs12"]["base64"].as_str().unwrap()[..64]),
            "{name} holds the key store"
        );
    }

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
