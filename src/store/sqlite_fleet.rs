//! The SQLite store's shared state ([`super::fleet`]): rate counters,
//! claims and idempotency entries, each written by the ledger's writer
//! thread in the group commit of the records, each read-and-write in one
//! transaction (so processes sharing the file see one count), and each
//! [`Durability::Deferred`]: on disk with the next certificate's commit,
//! which every issuance waits for, instead of an fsync of its own.

use rusqlite::{params, OptionalExtension};

use super::sqlite::SqliteStore;
use super::sqlite_writer::{Durability, WriteError};
use super::{Begun, Counts, Hit, Idempotent, Lease, StoreError};

impl SqliteStore {
    pub(super) async fn count_hits(&self, hits: &[Hit]) -> Result<Vec<u64>, StoreError> {
        let hits = hits.to_vec();
        self.write(Durability::Deferred, move |transaction| {
            Ok(count_in(transaction, &hits)?)
        })
        .await
    }

    pub(super) async fn claim_name(
        &self,
        name: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(Durability::Deferred, move |transaction| {
            // Inserted, or taken over from an expired claim: one row changed.
            let changed = transaction
                .prepare_cached(
                    "INSERT INTO claims (name, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE claims.expires_at < ?3",
                )?
                .execute(params![name, expires, now])?;
            Ok(changed == 1)
        })
        .await
    }

    pub(super) async fn begin_lease(&self, lease: &Lease) -> Result<Begun, StoreError> {
        let lease = lease.clone();
        self.write(Durability::Deferred, move |transaction| {
            begin_in(transaction, &lease)
        })
        .await
    }

    /// [`Store::begin_counting`] in one job of the writer: the lease and
    /// the counts are in one savepoint, so they are written together or
    /// not at all (an SQL error fails the group, lease and counts alike).
    pub(super) async fn begin_counting_hits(
        &self,
        lease: &Lease,
        hits: &[Hit],
    ) -> Result<(Begun, Option<Counts>), StoreError> {
        let (lease, hits) = (lease.clone(), hits.to_vec());
        self.write(Durability::Deferred, move |transaction| {
            let begun = begin_in(transaction, &lease)?;
            let counts = match begun {
                Begun::Started if !hits.is_empty() => Some(Ok(count_in(transaction, &hits)?)),
                _ => None,
            };
            Ok((begun, counts))
        })
        .await
    }

    pub(super) fn read_idempotent(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<Idempotent>, StoreError> {
        self.read(|connection| entry(connection, id, now))
    }

    pub(super) async fn finish_lease(
        &self,
        lease: &Lease,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let (id, token, expires, sealed) = (
            lease.id.clone(),
            lease.token.clone(),
            lease.expires,
            sealed.to_vec(),
        );
        self.write(Durability::Deferred, move |transaction| {
            let changed = transaction
                .prepare_cached(
                    "UPDATE idempotency_entries SET sealed = ?3, expires_at = ?4 \
                     WHERE id = ?1 AND token = ?2 AND sealed IS NULL",
                )?
                .execute(params![id, token, sealed, expires])?;
            if changed == 1 {
                Ok(())
            } else {
                Err(WriteError::Store(StoreError::Duplicate(format!(
                    "idempotency entry {id}"
                ))))
            }
        })
        .await
    }

    pub(super) async fn abandon_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let (id, token) = (lease.id.clone(), lease.token.clone());
        self.write(Durability::Deferred, move |transaction| {
            transaction
                .prepare_cached(
                    "DELETE FROM idempotency_entries WHERE id = ?1 AND token = ?2 AND sealed IS NULL",
                )?
                .execute(params![id, token])?;
            Ok(())
        })
        .await
    }
}

/// Moves the entries of the `idempotency` table of earlier versions into
/// `idempotency_entries`, in one transaction, and drops the old table.
/// The old table was keyed by the entry's random id (`WITHOUT ROWID`), so
/// storing a sealed response (about 2.5 KB) rewrote a random leaf page and
/// spilled into an overflow page of its own; in a rowid table it lands at
/// the table's tail, and only the id's index is written at random. A
/// process of an earlier version still running on the same file fails its
/// writes to the old table, and the group commits they are in (503, fail
/// closed), until it is restarted.
pub(super) fn migrate_idempotency(connection: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let has_old_table = |connection: &rusqlite::Connection| {
        connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'idempotency'",
                [],
                |row| row.get::<_, i64>(0),
            )
            .map(|tables| tables > 0)
    };
    // A read first: a file with nothing to move takes no write lock.
    if !has_old_table(connection)? {
        return Ok(());
    }
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Asked again under the lock: another process may have moved them.
    if has_old_table(&transaction)? {
        transaction.execute_batch(
            "INSERT OR IGNORE INTO idempotency_entries \
             (id, fingerprint, token, lease_until, sealed, expires_at) \
             SELECT id, fingerprint, token, lease_until, sealed, expires_at FROM idempotency; \
             DROP TABLE idempotency;",
        )?;
        tracing::info!("idempotency entries moved to their new table");
    }
    transaction.commit()
}

/// Adds one to each counter of `hits`; their new values, in order.
fn count_in(transaction: &rusqlite::Transaction<'_>, hits: &[Hit]) -> rusqlite::Result<Vec<u64>> {
    let mut increment = transaction.prepare_cached(
        "INSERT INTO rate_counters (name, value, expires_at) VALUES (?1, 1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = value + 1, \
         expires_at = max(expires_at, excluded.expires_at) RETURNING value",
    )?;
    let mut counts = Vec::with_capacity(hits.len());
    for hit in hits {
        counts.push(
            increment.query_row(params![hit.counter, hit.expires], |row| {
                row.get::<_, u64>(0)
            })?,
        );
    }
    Ok(counts)
}

/// Takes the entry `lease.id` when it is free, or answers what is there.
fn begin_in(transaction: &rusqlite::Transaction<'_>, lease: &Lease) -> Result<Begun, WriteError> {
    let mut begin = transaction.prepare_cached(
        "INSERT INTO idempotency_entries (id, fingerprint, token, lease_until, sealed, expires_at) \
         VALUES (?1, ?2, ?3, ?4, NULL, ?5) \
         ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, \
         token = excluded.token, lease_until = excluded.lease_until, sealed = NULL, \
         expires_at = excluded.expires_at \
         WHERE idempotency_entries.expires_at < ?6 \
         OR (idempotency_entries.sealed IS NULL AND idempotency_entries.lease_until < ?6)",
    )?;
    let taken = begin.execute(params![
        lease.id,
        lease.fingerprint,
        lease.token,
        lease.lease_until,
        lease.expires,
        lease.now
    ])?;
    if taken == 1 {
        return Ok(Begun::Started);
    }
    let entry = entry(transaction, &lease.id, lease.now)?;
    // Not taken, so an entry in force is there.
    entry.map(Begun::Exists).ok_or_else(|| {
        WriteError::Store(StoreError::Unavailable(
            "an idempotency entry vanished inside its transaction".into(),
        ))
    })
}

/// The entry `id` in force at `now`, if any.
fn entry(
    connection: &rusqlite::Connection,
    id: &str,
    now: i64,
) -> rusqlite::Result<Option<Idempotent>> {
    connection
        .prepare_cached(
            "SELECT fingerprint, lease_until, sealed FROM idempotency_entries \
             WHERE id = ?1 AND expires_at >= ?2",
        )?
        .query_row(params![id, now], |row| {
            let fingerprint: String = row.get(0)?;
            Ok(match row.get::<_, Option<Vec<u8>>>(2)? {
                Some(sealed) => Idempotent::Done {
                    fingerprint,
                    sealed,
                },
                None => Idempotent::Pending {
                    fingerprint,
                    lease_until: row.get(1)?,
                },
            })
        })
        .optional()
}
