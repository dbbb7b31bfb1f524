//! The embedded ledger: an SQLite database (rusqlite, SQLite bundled) in
//! WAL mode with `synchronous = FULL`, so a commit is on disk before the
//! certificate is returned.
//!
//! One writer thread owns the write connection and commits in groups:
//! it takes the first waiting record, then every record that arrived
//! meanwhile (up to [`MAX_GROUP`]), writes them in one transaction and
//! answers each; under concurrency many certificates share one fsync.
//! Queries run on a second connection (WAL readers do not block the
//! writer) on tokio's blocking pool; the revocation check of every
//! issuance is one indexed statement on a third connection, which a long
//! query never holds up. Records past their retention
//! are deleted by the writer once an hour, and never returned. The
//! transaction and requester indexes hold only records that have one, and
//! the WAL is checkpointed every 10,000 pages (`benches/ledger_store.rs`
//! measures what each of these saves).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{
    cursor_of, expiry_of, parse_cursor, LedgerKey, LedgerPage, LedgerQuery, LedgerRecord,
    Revocation, Store, StoreError,
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
DROP INDEX IF EXISTS by_transaction;
DROP INDEX IF EXISTS by_requester;
CREATE INDEX IF NOT EXISTS by_transaction_given ON certificates (transaction_id, issued_at, serial)
    WHERE transaction_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_requester_known ON certificates (requester, issued_at, serial)
    WHERE requester IS NOT NULL;
CREATE INDEX IF NOT EXISTS by_expiry ON certificates (expires_at);
CREATE TABLE IF NOT EXISTS revocations (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    expires INTEGER,
    revoked_by TEXT NOT NULL,
    request_id TEXT NOT NULL,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS revocations_by_key ON revocations (kind, value);
CREATE INDEX IF NOT EXISTS revocations_by_time ON revocations (revoked_at);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Work for the writer thread: a record (committed in a group with others)
/// or another write, run in a transaction of its own. (Records are the
/// common job; boxing them would add an allocation to every issuance.)
#[allow(clippy::large_enum_variant)]
enum Job {
    Record(LedgerRecord, Reply),
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// The SQLite ledger.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writes: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    /// The revocation check of every issuance, on a connection of its own,
    /// so that a long query never holds it up.
    checker: Mutex<Connection>,
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
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA wal_autocheckpoint = 10000;",
        )
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
        let checker = open(path)?;
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
            checker: Mutex::new(checker),
            retention,
        })
    }
}

/// The writer thread: group commits until every sender is gone.
fn write_loop(
    mut connection: Connection,
    mut queue: mpsc::Receiver<Job>,
    path: &Path,
    retention: Duration,
) {
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut waiting: Option<Job> = None;
    while let Some(job) = waiting.take().or_else(|| queue.blocking_recv()) {
        let first = match job {
            Job::Record(record, reply) => (record, reply),
            Job::Run(run) => {
                run(&mut connection);
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(Job::Record(record, reply)) => group.push((record, reply)),
                Ok(other) => {
                    // Runs after this group.
                    waiting = Some(other);
                    break;
                }
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
            let pruned = connection
                .execute("DELETE FROM certificates WHERE expires_at < ?1", [now])
                .and_then(|n| {
                    connection
                        .execute("DELETE FROM revocations WHERE expires_at < ?1", [now])
                        .map(|m| n + m)
                });
            match pruned {
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
                .send(Job::Record(record.clone(), reply))
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

    fn revoke<'a>(&'a self, rule: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        self.store_revocation(rule)
    }

    fn revoked<'a>(
        &'a self,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(async move { self.rule_in_force(keys, now) })
    }

    fn revocations_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<Revocation>, StoreError>> {
        Box::pin(async move {
            self.read(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT * FROM revocations WHERE revoked_at >= ?1 ORDER BY revoked_at",
                )?;
                let rules = statement.query_map([since], read_revocation)?;
                rules.collect()
            })
        })
    }

    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            self.read(|connection| {
                connection
                    .query_row(
                        "SELECT value FROM counters WHERE name = 'revision'",
                        [],
                        |row| row.get(0),
                    )
                    .optional()
                    .map(Option::unwrap_or_default)
            })
        })
    }

    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let name = format!("crl:{ca}");
        Box::pin(self.write(move |transaction| increment(transaction, &name)))
    }
}

impl SqliteStore {
    /// Runs `write` on the writer thread, in a transaction of its own.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, outcome) = oneshot::channel();
        let path = self.path.clone();
        let job = Job::Run(Box::new(move |connection: &mut Connection| {
            let done = connection.transaction().and_then(|transaction| {
                let value = write(&transaction)?;
                transaction.commit()?;
                Ok(value)
            });
            let _ = reply.send(done.map_err(|e| {
                let error = unavailable(&path, e);
                tracing::error!(store = %path.display(), error = %error, "ledger write failed");
                error
            }));
        }));
        let stopped = || unavailable(&self.path, "the ledger writer has stopped");
        self.writes.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    /// Runs `read` on the checking connection, here: for short reads by key.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let connection = self
            .checker
            .lock()
            .map_err(|_| unavailable(&self.path, "poisoned"))?;
        read(&connection).map_err(|e| unavailable(&self.path, e))
    }
}

fn read_revocation(row: &rusqlite::Row<'_>) -> rusqlite::Result<Revocation> {
    let malformed = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
    };
    let kind: String = row.get("kind")?;
    let key = LedgerKey::from_parts(&kind, row.get("value")?)
        .ok_or_else(|| malformed(format!("revocation kind {kind:?}")))?;
    let reason: String = row.get("reason")?;
    Ok(Revocation {
        key,
        reason: reason.parse().map_err(malformed)?,
        revoked_at: row.get("revoked_at")?,
        expires: row.get("expires")?,
        revoked_by: row.get("revoked_by")?,
        request_id: row.get("request_id")?,
    })
}

/// Adds one to the counter `name` and returns its new value.
fn increment(transaction: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<u64> {
    transaction.query_row(
        "INSERT INTO counters (name, value) VALUES (?1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        [name],
        |row| row.get(0),
    )
}

impl SqliteStore {
    fn store_revocation<'a>(
        &'a self,
        rule: &'a Revocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let rule = rule.clone();
        let retention = i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX);
        Box::pin(self.write(move |transaction| {
            transaction.execute(
                "INSERT INTO revocations (kind, value, reason, revoked_at, expires, revoked_by, \
                 request_id, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    rule.key.kind(),
                    rule.key.value(),
                    rule.reason.name(),
                    rule.revoked_at,
                    rule.expires,
                    rule.revoked_by,
                    rule.request_id,
                    rule.expires.map(|at| at.saturating_add(retention)),
                ],
            )?;
            increment(transaction, "revision").map(|_| ())
        }))
    }

    fn rule_in_force(
        &self,
        keys: &[LedgerKey],
        now: i64,
    ) -> Result<Option<Revocation>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        // One statement for every key (each `(kind, value)` pair an index
        // lookup): an issuance asks this with three keys.
        let pairs: Vec<String> = (0..keys.len())
            .map(|i| format!("(kind = ?{} AND value = ?{})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "SELECT * FROM revocations WHERE ({}) \
             AND (expires IS NULL OR expires > ?1) ORDER BY revoked_at LIMIT 1",
            pairs.join(" OR ")
        );
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(1 + 2 * keys.len());
            values.push(&now);
            let kinds: Vec<&str> = keys.iter().map(LedgerKey::kind).collect();
            for (key, kind) in keys.iter().zip(&kinds) {
                values.push(kind);
                values.push(match key {
                    LedgerKey::SessionId(v)
                    | LedgerKey::TransactionId(v)
                    | LedgerKey::Serial(v)
                    | LedgerKey::Requester(v) => v,
                });
            }
            statement
                .query_row(values.as_slice(), read_revocation)
                .optional()
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
#[path = "sqlite_tests.rs"]
mod tests;
