//! Revocation rules and counters in the SQLite ledger: a rule and the
//! revision it advances are written in one transaction on the writer
//! thread; the check of every issuance is one indexed statement on the
//! checking connection.

use rusqlite::{params, OptionalExtension};

use super::sqlite::{Durability, SqliteStore};
use super::{LedgerKey, Revocation, StoreError};
use crate::ca::BoxFuture;

pub(super) fn read_revocation(row: &rusqlite::Row<'_>) -> rusqlite::Result<Revocation> {
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
pub(super) fn increment(
    transaction: &rusqlite::Transaction<'_>,
    name: &str,
) -> rusqlite::Result<u64> {
    transaction.query_row(
        "INSERT INTO counters (name, value) VALUES (?1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        [name],
        |row| row.get(0),
    )
}

impl SqliteStore {
    pub(super) fn store_revocation<'a>(
        &'a self,
        rule: &'a Revocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let rule = rule.clone();
        let retention = i64::try_from(self.retention().as_secs()).unwrap_or(i64::MAX);
        Box::pin(self.write(Durability::Synced, move |transaction| {
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
            increment(transaction, "revision")?;
            Ok(())
        }))
    }

    pub(super) fn rule_in_force(
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
