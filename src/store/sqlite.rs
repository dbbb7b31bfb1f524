//! The embedded ledger: an SQLite database (rusqlite, SQLite bundled) in
//! WAL mode with `synchronous = FULL`, so a commit is on disk before the
//! certificate is returned.
//!
//! One writer thread owns the write connection and commits in groups:
//! it takes the first waiting record, then every record that arrived
//! meanwhile (up to [`MAX_GROUP`]), writes them in one transaction and
//! answers each; under concurrency many certificates share one fsync.
//! Queries run on a second connection (WAL readers do not block the
//! writer) on tokio's blocking pool. Records past their retention are
//! deleted by the writer once an hour, and never returned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{
    cursor_of, expiry_of, parse_cursor, LedgerKey, LedgerPage, LedgerQuery, LedgerRecord, Store,
    StoreError,
};
use crate::ca::BoxFuture;

/// The most records committed in one transaction.
pub const MAX_GROUP: usize = 256;
/// How often the writer deletes records past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long a write waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT NOT NULL UNIQUE,
    fingerprint_sha256 TEXT NOT NULL,
    ca TEXT NOT NULL,
    profile TEXT NOT NULL,
    requester TEXT,
    request_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    transaction_id TEXT,
    claims TEXT NOT NULL,
    key_type TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    certificate TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS by_session ON certificates (session_id, issued_at, serial);
CREATE INDEX IF NOT EXISTS by_transaction ON certificates (transaction_id, issued_at, serial);
CREATE INDEX IF NOT EXISTS by_requester ON certificates (requester, issued_at, serial);
CREATE INDEX IF NOT EXISTS by_expiry ON certificates (expires_at);
";

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// The SQLite ledger.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writes: mpsc::Sender<(LedgerRecord, Reply)>,
    reader: Arc<Mutex<Connection>>,
    retention: Duration,
}

fn unavailable(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(|e| unavailable(path, e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| unavailable(path, e))?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(|e| unavailable(path, e))?;
    Ok(connection)
}

impl SqliteStore {
    /// Opens (creating it and its schema if absent, the file 0600) the
    /// ledger at `path`, keeping records `retention` past their `notAfter`.
    pub fn open(path: &Path, retention: Duration) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unavailable(path, e))?;
        }
        if !path.exists() {
            // The ledger holds who was issued what: readable by its owner only.
            let created = session_ca_client::files::stage(
                path,
                b"",
                session_ca_client::files::FileKind::Secret,
            )
            .and_then(|tmp| tmp.persist_noclobber(path).map(|_| ()).map_err(|e| e.error));
            match created {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(unavailable(path, e)),
            }
        }
        let writer = open(path)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|e| unavailable(path, e))?;
        let reader = open(path)?;
        let (writes, queue) = mpsc::channel(4 * MAX_GROUP);
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || write_loop(writer, queue, &owned, retention))
            .map_err(|e| unavailable(path, e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writes,
            reader: Arc::new(Mutex::new(reader)),
            retention,
        })
    }
}

/// The writer thread: group commits until every sender is gone.
fn write_loop(
    mut connection: Connection,
    mut queue: mpsc::Receiver<(LedgerRecord, Reply)>,
    path: &Path,
    retention: Duration,
) {
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let outcomes = commit(&mut connection, &group, retention);
        match outcomes {
            Ok(outcomes) => {
                for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                let error = unavailable(path, e);
                tracing::error!(store = %path.display(), error = %error, "ledger write failed");
                for (_, reply) in group {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            match connection.execute("DELETE FROM certificates WHERE expires_at < ?1", [now]) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(store = %path.display(), deleted = n, "ledger records past retention deleted")
                }
                Err(e) => {
                    tracing::warn!(store = %path.display(), error = %e, "ledger pruning failed")
                }
            }
        }
    }
}

/// Writes `group` in one transaction. A duplicate serial fails that record
/// alone (the others commit); any other error fails the whole group.
fn commit(
    connection: &mut Connection,
    group: &[(LedgerRecord, Reply)],
    retention: Duration,
) -> rusqlite::Result<Vec<Result<(), StoreError>>> {
    let transaction = connection.transaction()?;
    let mut outcomes = Vec::with_capacity(group.len());
    {
        let mut insert = transaction.prepare_cached(
            "INSERT INTO certificates (serial, fingerprint_sha256, ca, profile, requester, \
             request_id, session_id, transaction_id, claims, key_type, not_before, not_after, \
             issued_at, certificate, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for (r, _) in group {
            let claims = serde_json::to_string(&r.claims).unwrap_or_default();
            let inserted = insert.execute(params![
                r.serial,
                r.fingerprint_sha256,
                r.ca,
                r.profile,
                r.requester,
                r.request_id,
                r.session_id,
                r.transaction_id,
                claims,
                r.key_type,
                r.not_before,
                r.not_after,
                r.issued_at,
                r.certificate,
                expiry_of(r, retention),
            ]);
            outcomes.push(match inserted {
                Ok(_) => Ok(()),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                {
                    Err(StoreError::Duplicate(r.serial.clone()))
                }
                Err(e) => return Err(e),
            });
        }
    }
    transaction.commit()?;
    Ok(outcomes)
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRecord> {
    let claims: String = row.get("claims")?;
    Ok(LedgerRecord {
        serial: row.get("serial")?,
        fingerprint_sha256: row.get("fingerprint_sha256")?,
        ca: row.get("ca")?,
        profile: row.get("profile")?,
        requester: row.get("requester")?,
        request_id: row.get("request_id")?,
        session_id: row.get("session_id")?,
        transaction_id: row.get("transaction_id")?,
        claims: serde_json::from_str(&claims).unwrap_or_default(),
        key_type: row.get("key_type")?,
        not_before: row.get("not_before")?,
        not_after: row.get("not_after")?,
        issued_at: row.get("issued_at")?,
        certificate: row.get("certificate")?,
    })
}

fn run_query(connection: &Connection, query: &LedgerQuery) -> Result<LedgerPage, StoreError> {
    let (column, value) = match &query.key {
        LedgerKey::SessionId(v) => ("session_id", v),
        LedgerKey::TransactionId(v) => ("transaction_id", v),
        LedgerKey::Serial(v) => ("serial", v),
        LedgerKey::Requester(v) => ("requester", v),
    };
    let (after_at, after_serial) = match &query.cursor {
        Some(cursor) => parse_cursor(cursor)?,
        None => (i64::MIN, String::new()),
    };
    let limit = query.limit.clamp(1, super::MAX_PAGE);
    let sql = format!(
        "SELECT * FROM certificates WHERE {column} = ?1 AND expires_at >= ?2 \
         AND issued_at >= ?3 AND issued_at < ?4 AND (issued_at, serial) > (?5, ?6) \
         ORDER BY issued_at, serial LIMIT ?7"
    );
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let rows = statement
        .query_map(
            params![
                value,
                query.now,
                query.since.unwrap_or(i64::MIN),
                query.until.unwrap_or(i64::MAX),
                after_at,
                after_serial,
                i64::from(limit) + 1,
            ],
            read_record,
        )
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut records = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let next = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(cursor_of)
    } else {
        None
    };
    Ok(LedgerPage { records, next })
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn record<'a>(&'a self, record: &'a LedgerRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (reply, outcome) = oneshot::channel();
            self.writes
                .send((record.clone(), reply))
                .await
                .map_err(|_| unavailable(&self.path, "the ledger writer has stopped"))?;
            outcome
                .await
                .map_err(|_| unavailable(&self.path, "the ledger writer has stopped"))?
        })
    }

    fn query<'a>(
        &'a self,
        query: &'a LedgerQuery,
    ) -> BoxFuture<'a, Result<LedgerPage, StoreError>> {
        Box::pin(async move {
            let reader = Arc::clone(&self.reader);
            let query = query.clone();
            let path = self.path.clone();
            tokio::task::spawn_blocking(move || {
                let connection = reader.lock().map_err(|_| unavailable(&path, "poisoned"))?;
                run_query(&connection, &query).map_err(|e| match e {
                    StoreError::Unavailable(m) => unavailable(&path, m),
                    other => other,
                })
            })
            .await
            .map_err(|e| unavailable(&self.path, e))?
        })
    }
}

impl SqliteStore {
    /// The retention this store keeps records for past their `notAfter`.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Whether `serial` is recorded (including past retention), for tests and tools.
    pub fn contains(&self, serial: &str) -> Result<bool, StoreError> {
        let connection = self
            .reader
            .lock()
            .map_err(|_| unavailable(&self.path, "poisoned"))?;
        connection
            .query_row(
                "SELECT 1 FROM certificates WHERE serial = ?1",
                [serial],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(|e| unavailable(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
