//! The embedded ledger: an SQLite database (rusqlite, SQLite bundled) in
//! WAL mode with `synchronous = FULL`, so a commit is on disk before the
//! certificate is returned.
//!
//! One writer thread ([`super::sqlite_writer`]) owns the write connection
//! and commits in groups: it takes the first waiting record, then every
//! record that arrived meanwhile (up to [`MAX_GROUP`]), writes them in one
//! transaction and answers each; under concurrency many certificates share
//! one fsync.
//! Queries run on a second connection (WAL readers do not block the
//! writer) on tokio's blocking pool; the revocation check of every
//! issuance is on a third connection, which a long query never holds up:
//! it reads the store's revision (one row) and, while that is unchanged,
//! looks its keys up in the rules it last read. Records past their retention
//! are deleted by the writer once an hour, and never returned. The
//! transaction and requester indexes hold only records that have one, and
//! the WAL is checkpointed every 10,000 pages (`benches/ledger_store.rs`
//! measures what each of these saves).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::sqlite_fleet::migrate_idempotency;
use super::sqlite_query::run_query;
use super::sqlite_revocations::{increment, read_revision, read_revocation, RuleView};
use super::sqlite_writer::{in_savepoint, write_loop, Answer, Durability, Job, WriteError};
use tokio::sync::{mpsc, oneshot};

use super::{
    Begun, Counts, Hit, Idempotent, Lease, LedgerKey, LedgerPage, LedgerQuery, LedgerRecord,
    Revocation, Store, StoreError, StoreSync,
};
use crate::ca::BoxFuture;

/// The most records committed in one transaction.
pub const MAX_GROUP: usize = 256;
/// How many prepared statements each connection keeps.
const STATEMENTS_CACHED: usize = 64;
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
CREATE TABLE IF NOT EXISTS rate_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    name TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS idempotency_entries (
    id TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    token TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    sealed BLOB,
    expires_at INTEGER NOT NULL
);
";

/// The SQLite ledger.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writes: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    /// The revocation check of every issuance, on a connection of its own,
    /// so that a long query never holds it up, with the rules it last read.
    checker: Mutex<(Connection, RuleView)>,
    retention: Duration,
}

pub(super) fn unavailable(path: &Path, e: impl std::fmt::Display) -> StoreError {
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
    // Room for every statement the writer runs (records, savepoints,
    // pragmas, the fleet's and the revocations' writes), so that none is
    // parsed again after being pushed out of rusqlite's default 16.
    connection.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    Ok(connection)
}

impl SqliteStore {
    /// Opens (creating it and its schema if absent, the file 0600) the
    /// ledger at `path`, keeping records `retention` past their `notAfter`.
    pub fn open(path: &Path, retention: Duration) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, retention, StoreSync::Full)
    }

    /// [`open`](Self::open), with certificate records as durable as `sync`
    /// says (`store.sync`).
    pub fn open_with(
        path: &Path,
        retention: Duration,
        sync: StoreSync,
    ) -> Result<SqliteStore, StoreError> {
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
        let mut writer = open(path)?;
        writer
            .execute_batch(SCHEMA)
            .map_err(|e| unavailable(path, e))?;
        migrate_idempotency(&mut writer).map_err(|e| unavailable(path, e))?;
        let reader = open(path)?;
        let checker = open(path)?;
        let (writes, queue) = mpsc::channel(4 * MAX_GROUP);
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || write_loop(writer, queue, &owned, retention, sync))
            .map_err(|e| unavailable(path, e))?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writes,
            reader: Arc::new(Mutex::new(reader)),
            checker: Mutex::new((checker, RuleView::default())),
            retention,
        })
    }
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn record<'a>(&'a self, record: &'a LedgerRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.commit_record(record.clone()).await.map(|_| ()) })
    }

    fn record_then_revoked<'a>(
        &'a self,
        record: LedgerRecord,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(async move {
            let revision = self.commit_record(record).await?;
            self.rule_in_force(keys, now, Some(revision))
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
            let retention = self.retention;
            tokio::task::spawn_blocking(move || {
                let connection = reader.lock().map_err(|_| unavailable(&path, "poisoned"))?;
                run_query(&connection, &query, retention).map_err(|e| match e {
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
        Box::pin(async move { self.rule_in_force(keys, now, None) })
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
        Box::pin(async move { self.read(read_revision) })
    }

    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let name = format!("crl:{ca}");
        Box::pin(self.write(Durability::Synced, move |transaction| {
            Ok(increment(transaction, &name)?)
        }))
    }

    fn count<'a>(&'a self, hits: &'a [Hit]) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        Box::pin(self.count_hits(hits))
    }

    fn claim<'a>(
        &'a self,
        name: &'a str,
        now: i64,
        expires: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.claim_name(name, now, expires))
    }

    fn begin<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Begun, StoreError>> {
        Box::pin(self.begin_lease(lease))
    }

    fn begin_counting<'a>(
        &'a self,
        lease: &'a Lease,
        hits: &'a [Hit],
    ) -> BoxFuture<'a, Result<(Begun, Option<Counts>), StoreError>> {
        Box::pin(self.begin_counting_hits(lease, hits))
    }

    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Idempotent>, StoreError>> {
        Box::pin(async move { self.read_idempotent(id, now) })
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.finish_lease(lease, sealed))
    }

    fn abandon<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.abandon_lease(lease))
    }
}

impl SqliteStore {
    /// Runs `write` on the writer thread, in the transaction of the next
    /// group (in a savepoint of its own: if it fails, only its own changes
    /// are undone), and answers once that transaction is committed.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        durability: Durability,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, WriteError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, outcome) = oneshot::channel();
        let path = self.path.clone();
        let job = Job::Write(
            Box::new(move |transaction: Option<&rusqlite::Transaction<'_>>| {
                let (value, fatal) = match transaction.map(|t| in_savepoint(t, write, &path)) {
                    Some(Ok(value)) => (Some(value), None),
                    Some(Err(e)) => (None, Some(e)),
                    // Not run: answered with its group's error.
                    None => (None, None),
                };
                let answer = Box::new(move |failed: Option<&StoreError>| {
                    let _ = reply.send(match (failed, value) {
                        (None, Some(value)) => value,
                        (Some(error), _) => Err(error.clone()),
                        // Failed or not run: its group always fails then.
                        (None, None) => Err(unavailable(&path, "the write failed")),
                    });
                }) as Answer;
                (answer, fatal)
            }),
            durability,
        );
        self.submit(job, outcome).await
    }

    /// Records `record` in the writer's next group; the store's revision as
    /// that group's transaction saw it.
    async fn commit_record(&self, record: LedgerRecord) -> Result<u64, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.submit(Job::Record(record, reply), outcome).await
    }

    /// Queues `job` for the writer and waits for its answer on `outcome`.
    async fn submit<T>(
        &self,
        job: Job,
        outcome: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let stopped = || unavailable(&self.path, "the ledger writer has stopped");
        self.writes.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    /// Runs `read` on the checking connection, here: for short reads by key.
    pub(super) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        self.check(|connection, _| read(connection))
    }

    /// Runs `check` on the checking connection and the rules it last read.
    pub(super) fn check<T>(
        &self,
        check: impl FnOnce(&Connection, &mut RuleView) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut checker = self
            .checker
            .lock()
            .map_err(|_| unavailable(&self.path, "poisoned"))?;
        let (connection, view) = &mut *checker;
        check(connection, view).map_err(|e| unavailable(&self.path, e))
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
