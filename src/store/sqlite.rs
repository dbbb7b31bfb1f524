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
//! issuance is on a third connection, which a long query never holds up:
//! it reads the store's revision (one row) and, while that is unchanged,
//! looks its keys up in the rules it last read. Records past their retention
//! are deleted by the writer once an hour, and never returned. The
//! transaction and requester indexes hold only records that have one, and
//! the WAL is checkpointed every 10,000 pages (`benches/ledger_store.rs`
//! measures what each of these saves).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::sqlite_fleet::migrate_idempotency;
use super::sqlite_query::run_query;
use super::sqlite_revocations::{increment, read_revision, read_revocation, RuleView};
use tokio::sync::{mpsc, oneshot};

use super::{
    expiry_of, Begun, Counts, Hit, Idempotent, Lease, LedgerKey, LedgerPage, LedgerQuery,
    LedgerRecord, Revocation, Store, StoreError, StoreSync,
};
use crate::ca::BoxFuture;

/// The most records committed in one transaction.
pub const MAX_GROUP: usize = 256;
/// How often the writer deletes records past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
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

/// The answer to a record: the store's [`revision`](Store::revision) as
/// its group's transaction saw it, once that committed.
type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// A write run inside a group's transaction (in a savepoint of its own),
/// or not run at all (`None`: an earlier job failed its group): it returns
/// what to answer once the group's commit is known (`None` when it
/// committed, or the group's error), and the SQL error that fails the
/// whole group, if it hit one.
type Write =
    Box<dyn FnOnce(Option<&rusqlite::Transaction<'_>>) -> (Answer, Option<rusqlite::Error>) + Send>;
/// The answer of a [`Write`], sent once its group's commit is known.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Work for the writer thread: a record or another write, committed in a
/// group with the others that are waiting. (Records are the common job;
/// boxing them would add an allocation to every issuance.)
#[allow(clippy::large_enum_variant)]
enum Job {
    Record(LedgerRecord, Reply),
    Write(Write, Durability),
}

/// How durable a write is when it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// On disk before it is answered (the group's commit is fsynced):
    /// revocation rules and CRL numbers, like every certificate record.
    Synced,
    /// Committed, so every connection sees it and a crash of the process
    /// keeps it, and on disk with the next synced commit: a group of only
    /// such writes commits without an fsync (`synchronous = NORMAL`, in
    /// WAL mode). For the state a request leaves before its certificate
    /// (rate counters, HMAC claims, idempotency leases) and the sealed
    /// response after it: the certificate's record is a synced commit
    /// after the first three, so nothing is returned before they are on
    /// disk, and losing a sealed response to a power cut costs a retry a
    /// second certificate (recorded), never an unrecorded one.
    Deferred,
}

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

/// The writer thread: group commits until every sender is gone.
fn write_loop(
    mut connection: Connection,
    mut queue: mpsc::Receiver<Job>,
    path: &Path,
    retention: Duration,
    sync: StoreSync,
) {
    let records = match sync {
        StoreSync::Full => Durability::Synced,
        StoreSync::Normal => Durability::Deferred,
    };
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut synced = true;
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let needs_sync = group.iter().any(|job| match job {
            Job::Record(..) => records == Durability::Synced,
            Job::Write(_, durability) => *durability == Durability::Synced,
        });
        if needs_sync != synced {
            let pragma = if needs_sync {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            match run_cached(&connection, pragma) {
                Ok(()) => synced = needs_sync,
                // Left as it was: FULL is never weakened by a failure here.
                Err(e) => tracing::warn!(store = %path.display(), error = %e, "{pragma} failed"),
            }
        }
        commit(&mut connection, group, retention, path);
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            prune(&connection, path);
        }
    }
}

/// Deletes what is past its retention or expiry: records, revocation
/// rules, rate counters, nonces and idempotent responses.
fn prune(connection: &Connection, path: &Path) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut deleted = 0;
    for table in [
        "certificates",
        "revocations",
        "rate_counters",
        "claims",
        "idempotency_entries",
    ] {
        let sql = format!("DELETE FROM {table} WHERE expires_at < ?1");
        match connection.execute(&sql, [now]) {
            Ok(n) => deleted += n,
            Err(e) => {
                tracing::warn!(store = %path.display(), table, error = %e, "ledger pruning failed")
            }
        }
    }
    if deleted > 0 {
        tracing::info!(store = %path.display(), deleted, "ledger entries past retention deleted");
    }
}

/// Writes `group` in one transaction and answers each job once the
/// commit is known. A duplicate serial fails that record alone, and a
/// write refused by the store's own rules only its own savepoint (the
/// others commit); an SQL error (busy, locked, I/O, full) fails the whole
/// group, and every job of it, run or not, is answered with it.
fn commit(connection: &mut Connection, group: Vec<Job>, retention: Duration, path: &Path) {
    let mut replies: Vec<(Reply, Result<(), StoreError>)> = Vec::with_capacity(group.len());
    let mut answers: Vec<Answer> = Vec::new();
    let mut revision = 0;
    let mut jobs = group.into_iter();
    let done = (|| -> rusqlite::Result<()> {
        let transaction = connection.transaction()?;
        for job in jobs.by_ref() {
            match job {
                Job::Record(record, reply) => {
                    match insert(&transaction, &record, retention) {
                        Ok(outcome) => replies.push((reply, outcome)),
                        Err(e) => {
                            // Answered with the group's error below.
                            replies.push((reply, Ok(())));
                            return Err(e);
                        }
                    }
                }
                Job::Write(write, _) => {
                    let (answer, failed) = write(Some(&transaction));
                    answers.push(answer);
                    if let Some(e) = failed {
                        return Err(e);
                    }
                }
            }
        }
        if !replies.is_empty() {
            // Every rule stored before this transaction, and in it.
            revision = read_revision(&transaction)?;
        }
        transaction.commit()
    })();
    let failed = done.err().map(|e| {
        let error = unavailable(path, e);
        tracing::error!(store = %path.display(), error = %error, "ledger write failed");
        error
    });
    // Jobs after the one that failed the group were not run.
    for job in jobs {
        match job {
            Job::Record(_, reply) => replies.push((reply, Ok(()))),
            Job::Write(write, _) => answers.push(write(None).0),
        }
    }
    for (reply, outcome) in replies {
        let _ = reply.send(match &failed {
            Some(error) => Err(error.clone()),
            None => outcome.map(|()| revision),
        });
    }
    for answer in answers {
        answer(failed.as_ref());
    }
}

/// Inserts one record: `Ok(Err(Duplicate))` when its serial is recorded.
fn insert(
    transaction: &rusqlite::Transaction<'_>,
    r: &LedgerRecord,
    retention: Duration,
) -> rusqlite::Result<Result<(), StoreError>> {
    let mut insert = transaction.prepare_cached(
        "INSERT INTO certificates (serial, fingerprint_sha256, ca, profile, requester, \
         request_id, session_id, transaction_id, claims, key_type, not_before, not_after, \
         issued_at, certificate, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
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
    match inserted {
        Ok(_) => Ok(Ok(())),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Ok(Err(StoreError::Duplicate(r.serial.clone())))
        }
        Err(e) => Err(e),
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

/// Why a write on the writer thread failed: SQLite's error (logged, and
/// answered as [`StoreError::Unavailable`]) or the store's own answer.
pub(super) enum WriteError {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> WriteError {
        WriteError::Sql(e)
    }
}

/// Runs `write` in a savepoint of `transaction`: its changes are kept when
/// it succeeds and undone when the store refuses it (`Ok(Err(..))`). An
/// SQL error is the whole group's (`Err`), except a constraint violation,
/// which is this write's alone.
fn in_savepoint<T>(
    transaction: &rusqlite::Transaction<'_>,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, WriteError>,
    path: &Path,
) -> rusqlite::Result<Result<T, StoreError>> {
    run_cached(transaction, "SAVEPOINT job")?;
    let error = match write(transaction) {
        Ok(value) => {
            run_cached(transaction, "RELEASE job")?;
            return Ok(Ok(value));
        }
        Err(WriteError::Store(e)) => e,
        Err(WriteError::Sql(e))
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
                && !transaction.is_autocommit() =>
        {
            let error = unavailable(path, e);
            tracing::error!(store = %path.display(), error = %error, "ledger write failed");
            error
        }
        Err(WriteError::Sql(e)) => return Err(e),
    };
    run_cached(transaction, "ROLLBACK TO job")?;
    run_cached(transaction, "RELEASE job")?;
    Ok(Err(error))
}

/// Runs one statement that returns no rows, prepared once per connection
/// (a savepoint, a pragma): parsing it again on every write cost the
/// writer about 8 % of its time with rate limits and idempotency on.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
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
