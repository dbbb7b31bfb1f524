//! Reading the SQLite ledger's records: a page of a query, by one key,
//! oldest first (on the reading connection, in tokio's blocking pool).

use std::time::Duration;

use rusqlite::{params, Connection};

use super::{
    cursor_of, oldest_kept, parse_cursor, LedgerKey, LedgerPage, LedgerQuery, LedgerRecord,
    StoreError,
};

pub(super) fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRecord> {
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

/// The statement of a query by `column`: ?1 its value, ?2 now, ?3 and ?4
/// the window, ?5 and ?6 the cursor's place, ?7 the rows wanted, ?8 the
/// oldest `notAfter` the retention keeps.
pub(super) fn query_sql(column: &str) -> String {
    format!(
        "SELECT * FROM certificates WHERE {column} = ?1 AND expires_at >= ?2 \
         AND issued_at >= ?3 AND issued_at < ?4 AND (issued_at, serial) > (?5, ?6) \
         AND not_after >= ?8 ORDER BY issued_at, serial LIMIT ?7"
    )
}

/// A page of `query`: records past their stamped expiry, or older than
/// `retention` allows now, are not returned.
pub(super) fn run_query(
    connection: &Connection,
    query: &LedgerQuery,
    retention: Duration,
) -> Result<LedgerPage, StoreError> {
    let (column, value) = match &query.key {
        LedgerKey::SessionId(v) => ("session_id", v),
        LedgerKey::TransactionId(v) => ("transaction_id", v),
        LedgerKey::Serial(v) => ("serial", v),
        LedgerKey::Requester(v) => ("requester", v),
    };
    let (after_at, after_serial) = match &query.cursor {
        Some(cursor) => parse_cursor(cursor, query)?,
        None => (i64::MIN, String::new()),
    };
    let limit = query.limit.clamp(1, super::MAX_PAGE);
    let mut statement = connection
        .prepare_cached(&query_sql(column))
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
                oldest_kept(query.now, retention),
            ],
            read_record,
        )
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut records = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let next = if records.len() > limit as usize {
        records.truncate(limit as usize);
        records.last().map(|last| cursor_of(last, query))
    } else {
        None
    };
    Ok(LedgerPage { records, next })
}
