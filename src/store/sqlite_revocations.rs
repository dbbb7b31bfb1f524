//! Revocation rules and counters in the SQLite ledger: a rule and the
//! revision it advances are written in one transaction on the writer
//! thread; the check of every issuance reads the revision on the checking
//! connection and looks its keys up in the rules it last read there.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::sqlite::SqliteStore;
use super::sqlite_writer::Durability;
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

    /// The earliest-made rule in force at `now` for any of `keys`. The
    /// check of every issuance: it reads the store's revision (one row)
    /// and, while that is unchanged, looks the keys up in the rules the
    /// checker last read. Every new rule advances the revision in its own
    /// transaction, so an unchanged revision means no new rule, from this
    /// process or another one sharing the file. `seen`: a revision the
    /// caller read after it needed the answer (the one its record's
    /// transaction saw): when the rules held are that revision's, it
    /// need not be read again.
    pub(super) fn rule_in_force(
        &self,
        keys: &[LedgerKey],
        now: i64,
        seen: Option<u64>,
    ) -> Result<Option<Revocation>, StoreError> {
        if keys.is_empty() {
            return Ok(None);
        }
        self.check(|connection, view| {
            if seen.is_some_and(|revision| view.covers(revision, now)) {
                return Ok(view.first_in_force(keys, now));
            }
            let revision = read_revision(connection)?;
            if !view.covers(revision, now) {
                // The revision and the rules from one snapshot: a rule
                // made between two reads would otherwise be missed until
                // the next one.
                let transaction = connection.unchecked_transaction()?;
                let revision = read_revision(&transaction)?;
                let mut statement = transaction.prepare_cached(
                    "SELECT * FROM revocations WHERE expires IS NULL OR expires > ?1",
                )?;
                let rules = statement
                    .query_map([now], read_revocation)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                drop(statement);
                transaction.commit()?;
                *view = RuleView::new(revision, now, rules);
            }
            Ok(view.first_in_force(keys, now))
        })
    }
}

/// The store's revision: how many rules were ever made in it.
pub(super) fn read_revision(connection: &rusqlite::Connection) -> rusqlite::Result<u64> {
    connection
        .prepare_cached("SELECT value FROM counters WHERE name = 'revision'")?
        .query_row([], |row| row.get(0))
        .optional()
        .map(Option::unwrap_or_default)
}

/// The rules in force when the checker last read them, by key: every rule
/// with no end or an end after `loaded_at`, at `revision`.
#[derive(Debug, Default)]
pub(super) struct RuleView {
    /// The revision and the time they were read at; none before the first.
    loaded: Option<(u64, i64)>,
    rules: HashMap<LedgerKey, Vec<Revocation>>,
}

impl RuleView {
    fn new(revision: u64, loaded_at: i64, rules: Vec<Revocation>) -> RuleView {
        let mut by_key: HashMap<LedgerKey, Vec<Revocation>> = HashMap::new();
        for rule in rules {
            by_key.entry(rule.key.clone()).or_default().push(rule);
        }
        RuleView {
            loaded: Some((revision, loaded_at)),
            rules: by_key,
        }
    }

    /// Whether it holds every rule that can be in force at `now` in a
    /// store at `revision` (a clock set back asks the table again).
    fn covers(&self, revision: u64, now: i64) -> bool {
        self.loaded
            .is_some_and(|(at_revision, loaded_at)| at_revision == revision && now >= loaded_at)
    }

    /// What the table answers for `keys` at `now`: the earliest-made rule
    /// in force.
    fn first_in_force(&self, keys: &[LedgerKey], now: i64) -> Option<Revocation> {
        keys.iter()
            .filter_map(|key| self.rules.get(key))
            .flatten()
            .filter(|rule| rule.in_force(now))
            .min_by_key(|rule| rule.revoked_at)
            .cloned()
    }
}
