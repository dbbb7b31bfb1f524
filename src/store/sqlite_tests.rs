//! The SQLite store's own tests (the shared behaviour is `conformance`).
use super::*;
use rusqlite::params;

#[tokio::test]
async fn the_sqlite_store_behaves_as_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("ledger.sqlite3"),
        Duration::from_secs(super::super::conformance::RETENTION_DAYS as u64 * 86_400),
    )
    .unwrap();
    super::super::conformance::check(&store).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ledger.sqlite3"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_shorter_retention_hides_older_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let days = |n: i64| Duration::from_secs(n as u64 * 86_400);
    let written =
        SqliteStore::open(&path, days(super::super::conformance::RETENTION_DAYS)).unwrap();
    let shorter = SqliteStore::open(
        &path,
        days(super::super::conformance::SHORTER_RETENTION_DAYS),
    )
    .unwrap();
    super::super::conformance::check_shortened_retention(&written, &shorter).await;
}

#[tokio::test]
async fn revocations_hold_across_two_clients_of_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let a = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    let b = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    super::super::conformance::check_revocations(&a, &b).await;
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("l.sqlite3"), Duration::from_secs(86_400)).unwrap(),
    );
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let r = super::super::conformance::record(
                    &format!("{i:04x}"),
                    "s",
                    None,
                    None,
                    1_800_000_000 + i,
                );
                store.record(&r).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let page = store
        .query(&LedgerQuery {
            key: LedgerKey::SessionId("s".into()),
            since: None,
            until: None,
            limit: 1000,
            cursor: None,
            now: 1_800_000_000,
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 200);
    assert!(store.contains("00c7").unwrap());
}

#[test]
fn every_query_and_the_revocation_check_use_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("l.sqlite3"), Duration::ZERO).unwrap();
    let plan = |sql: &str| -> String {
        store
            .read(|c| {
                let mut statement = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = statement.query_map([], |row| row.get::<_, String>(3))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap()
            .join("; ")
    };
    for column in ["session_id", "transaction_id", "serial", "requester"] {
        // The statement the store runs, with values in its parameters' places.
        let mut sql = crate::store::sqlite_query::query_sql(column);
        for (place, value) in [
            ("?1", "'x'"),
            ("?2", "0"),
            ("?3", "0"),
            ("?4", "9"),
            ("?5", "0"),
            ("?6", "''"),
            ("?7", "10"),
            ("?8", "0"),
        ] {
            sql = sql.replace(place, value);
        }
        let found = plan(&sql);
        assert!(found.contains("USING INDEX"), "{column}: {found}");
    }
    let found = plan(
        "SELECT * FROM revocations WHERE ((kind = 'a' AND value = 'b') OR \
         (kind = 'c' AND value = 'd')) AND revoked_at <= 1 LIMIT 1",
    );
    assert!(
        found.contains("USING INDEX revocations_by_key") && !found.contains("SCAN"),
        "{found}"
    );
}

#[test]
fn an_unwritable_place_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = SqliteStore::open(&file.join("ledger.sqlite3"), Duration::ZERO).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ledger.sqlite3")),
        "{err}"
    );
}

#[tokio::test]
async fn idempotency_entries_of_the_earlier_layout_are_moved_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    {
        // The table as versions before the move made it, with one finished
        // and one pending entry.
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE idempotency (id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, \
             token TEXT NOT NULL, lease_until INTEGER NOT NULL, sealed BLOB, \
             expires_at INTEGER NOT NULL) WITHOUT ROWID;",
        )
        .unwrap();
        let mut insert = old
            .prepare("INSERT INTO idempotency VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        let sealed: Option<Vec<u8>> = Some(b"sealed-response".to_vec());
        insert
            .execute(params!["done", "fp-1", "t-1", now + 30, sealed, now + 600])
            .unwrap();
        insert
            .execute(params![
                "held",
                "fp-2",
                "t-2",
                now + 30,
                None::<Vec<u8>>,
                now + 600
            ])
            .unwrap();
    }
    let store = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    assert_eq!(
        store.idempotent("done", now).await.unwrap(),
        Some(Idempotent::Done {
            fingerprint: "fp-1".into(),
            sealed: b"sealed-response".to_vec()
        })
    );
    assert_eq!(
        store.idempotent("held", now).await.unwrap(),
        Some(Idempotent::Pending {
            fingerprint: "fp-2".into(),
            lease_until: now + 30
        })
    );
    // The held lease is still held: a retry finds it, and its holder
    // finishes it in the new table.
    let holder = Lease {
        id: "held".into(),
        fingerprint: "fp-2".into(),
        token: "t-2".into(),
        now,
        lease_until: now + 30,
        expires: now + 600,
    };
    let retry = Lease {
        token: "t-3".into(),
        ..holder.clone()
    };
    assert!(matches!(
        store.begin(&retry).await.unwrap(),
        Begun::Exists(Idempotent::Pending { .. })
    ));
    store.finish(&holder, b"later").await.unwrap();
    let tables: i64 = store
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'idempotency'",
                [],
                |row| row.get(0),
            )
        })
        .unwrap();
    assert_eq!(tables, 0, "the old table is dropped");
    // Opening again (the move done) changes nothing.
    drop(store);
    let again = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    assert!(matches!(
        again.idempotent("held", now).await.unwrap(),
        Some(Idempotent::Done { sealed, .. }) if sealed == b"later"
    ));
}

#[tokio::test]
async fn shared_state_holds_across_two_clients_of_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let a = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    let b = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    super::super::conformance::check_fleet(&a, &b).await;
}

#[tokio::test]
async fn a_locked_file_fails_every_job_of_a_group_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite3");
    let store = SqliteStore::open(&path, Duration::from_secs(86_400)).unwrap();
    // Another process holds the write lock past the busy timeout.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let record = super::super::conformance::record("0f01", "s-lock", None, None, 1_800_000_000);
    let hits = [super::super::Hit {
        counter: "rate#lock".into(),
        expires: 1_800_000_100,
    }];
    let (recorded, counted, claimed) = tokio::join!(
        store.record(&record),
        store.count(&hits),
        store.claim("hmac#lock", 1_800_000_000, 1_800_000_300),
    );
    for outcome in [recorded.err(), counted.err(), claimed.err()] {
        match outcome {
            Some(StoreError::Unavailable(cause)) => {
                assert!(cause.contains("locked"), "{cause}");
                assert!(!cause.contains("stopped"), "{cause}");
            }
            other => panic!("expected the lock as the cause, got {other:?}"),
        }
    }
    // Released, the same jobs succeed: nothing was half-written.
    other.execute_batch("ROLLBACK").unwrap();
    store.record(&record).await.unwrap();
    assert_eq!(store.count(&hits).await.unwrap(), [1]);
    assert!(store
        .claim("hmac#lock", 1_800_000_000, 1_800_000_300)
        .await
        .unwrap());
}

#[tokio::test]
async fn with_sync_normal_the_store_behaves_as_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(
        &dir.path().join("ledger.sqlite3"),
        Duration::from_secs(super::super::conformance::RETENTION_DAYS as u64 * 86_400),
        StoreSync::Normal,
    )
    .unwrap();
    super::super::conformance::check(&store).await;
    // Revocation rules and CRL numbers stay fsynced and behave the same.
    let other = SqliteStore::open(
        &dir.path().join("ledger.sqlite3"),
        Duration::from_secs(86_400),
    )
    .unwrap();
    super::super::conformance::check_revocations(&store, &other).await;
}
