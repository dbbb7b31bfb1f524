//! The SQLite ledger's writer thread ([`super::sqlite`]): it owns the write
//! connection and commits in groups, taking the first waiting job, then
//! every job that arrived meanwhile (up to [`MAX_GROUP`]), writing them in
//! one transaction (each write in a savepoint of its own) and answering
//! each once the commit is known; under concurrency many certificates
//! share one fsync. Once an hour it also deletes what is past its
//! retention.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{unavailable, MAX_GROUP};
use super::sqlite_revocations::read_revision;
use super::{expiry_of, LedgerRecord, StoreError, StoreSync};

/// How often the writer deletes records past their retention.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The answer to a record: the store's [`revision`](super::Store::revision) as
/// its group's transaction saw it, once that committed.
pub(super) type Reply = oneshot::Sender<Result<u64, StoreError>>;

/// A write run inside a group's transaction (in a savepoint of its own),
/// or not run at all (`None`: an earlier job failed its group): it returns
/// what to answer once the group's commit is known (`None` when it
/// committed, or the group's error), and the SQL error that fails the
/// whole group, if it hit one.
pub(super) type Write =
    Box<dyn FnOnce(Option<&rusqlite::Transaction<'_>>) -> (Answer, Option<rusqlite::Error>) + Send>;
/// The answer of a [`Write`], sent once its group's commit is known.
pub(super) type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Work for the writer thread: a record or another write, committed in a
/// group with the others that are waiting. (Records are the common job;
/// boxing them would add an allocation to every issuance.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Job {
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

/// The writer thread: group commits until every sender is gone.
pub(super) fn write_loop(
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
pub(super) fn in_savepoint<T>(
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
pub(super) fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}
