//! Durable state: the ledger of every issued certificate, behind one
//! trait ([`Store`]) with two backends, SQLite ([`sqlite`], embedded, for
//! `serve`) and DynamoDB ([`dynamodb`], for Lambda and fleets).
//!
//! A certificate is recorded **before** its response is returned; if the
//! record cannot be written the caller gets 503 `ledger_unavailable` and no
//! certificate. A record holds what an auditor asks for years later
//! (serial, fingerprint, CA, profile, requester, request, session and
//! transaction ids, claims, key type, validity, the certificate itself),
//! never the private key or a PKCS#12 password.

pub mod conformance;
pub mod dynamodb;
mod dynamodb_fleet;
mod dynamodb_revocations;
pub mod fleet;
pub mod metered;
pub mod revocation;
pub mod sqlite;
mod sqlite_fleet;
mod sqlite_query;
mod sqlite_revocations;
mod sqlite_writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ca::BoxFuture;
pub use fleet::{Begun, Hit, Idempotent, Lease};
pub use revocation::{Reason, Revocation};

/// How long records are kept by default (`store.retention`): 400 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(400 * 24 * 3600);
/// The most records one query page returns.
pub const MAX_PAGE: u32 = 1000;

/// One issued certificate, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// Serial number, lower-case hex (unique per CA; the key of the record).
    pub serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
    /// The issuing CA's configured name.
    pub ca: String,
    /// The profile it was issued under.
    pub profile: String,
    /// The authenticated caller (IAM principal, HMAC key id); none when anonymous.
    pub requester: Option<String>,
    /// The issuing request's correlation id.
    pub request_id: String,
    /// The session id (the subject CN).
    pub session_id: String,
    /// The transaction id, when given.
    pub transaction_id: Option<String>,
    /// The profile claims, by name, as the JSON text the certificate carries.
    pub claims: Vec<(String, String)>,
    /// The certified key's type (`ecdsa-p256`, ...).
    pub key_type: String,
    /// `notBefore`, Unix seconds.
    pub not_before: i64,
    /// `notAfter`, Unix seconds.
    pub not_after: i64,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// The certificate, PEM.
    pub certificate: String,
}

/// What a query selects by: exactly one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LedgerKey {
    /// Every certificate of a session.
    SessionId(String),
    /// Every certificate of a transaction.
    TransactionId(String),
    /// One certificate.
    Serial(String),
    /// Every certificate a caller was issued.
    Requester(String),
}

/// A ledger query: one key, an optional issuance window, a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    /// What to select by.
    pub key: LedgerKey,
    /// Only certificates issued at or after this (Unix seconds).
    pub since: Option<i64>,
    /// Only certificates issued before this (Unix seconds).
    pub until: Option<i64>,
    /// The most records to return (1 to [`MAX_PAGE`]).
    pub limit: u32,
    /// Where the previous page ended ([`LedgerPage::next`]).
    pub cursor: Option<String>,
    /// The time now (Unix seconds): records past their retention are not
    /// returned, whether or not the store has deleted them yet.
    pub now: i64,
}

/// A page of records, oldest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LedgerPage {
    /// The records, by issuance time then serial.
    pub records: Vec<LedgerRecord>,
    /// An opaque cursor for the next page, when there may be more.
    pub next: Option<String>,
}

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the write (locked, full,
    /// throttled beyond the retries, unreachable): the cause, for the log.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// A query the store cannot answer (a malformed cursor).
    #[error("{0}")]
    BadQuery(String),
    /// The serial is recorded already; a record is never overwritten.
    #[error("serial {0} is recorded already")]
    Duplicate(String),
}

/// When an SQLite ledger's certificate records are on disk (`store.sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreSync {
    /// Before the certificate is returned: every commit that holds a
    /// record is fsynced (the default).
    #[default]
    Full,
    /// With the next checkpoint or synced commit: a record survives a crash
    /// of the process as soon as it is committed, but the last records
    /// before an OS crash or a power cut may be lost. Revocation rules and
    /// CRL numbers stay fsynced.
    Normal,
}

/// Opens the ledger `spec` names: none, the SQLite file (created if
/// absent; its records as durable as `sync` says), or the DynamoDB table
/// (through the AWS settings `aws`), keeping records `retention` past
/// their certificate's `notAfter`, each call to it reported to `metrics`.
pub async fn open(
    spec: &StoreSpec,
    retention: Duration,
    sync: StoreSync,
    aws: &crate::ca::ssm::SsmSettings,
    metrics: &crate::metrics::Metrics,
) -> Result<Ledger, StoreError> {
    let store: Arc<dyn Store> = match spec {
        StoreSpec::None => return Ok(Ledger::off()),
        StoreSpec::Sqlite(path) => Arc::new(sqlite::SqliteStore::open_with(path, retention, sync)?),
        StoreSpec::DynamoDb(table) => Arc::new(dynamodb::DynamoDbStore::new(
            dynamodb::client(aws).await,
            table.clone(),
            retention,
        )),
    };
    Ok(Ledger::new(match metrics {
        crate::metrics::Metrics::Off => store,
        _ => Arc::new(metered::Metered::new(store, metrics.clone())),
    }))
}

/// Seconds of `retention`, for the expiry of a record: `not_after + retention`.
pub(crate) fn expiry_of(record: &LedgerRecord, retention: Duration) -> i64 {
    record
        .not_after
        .saturating_add(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
}

/// The oldest `notAfter` a query returns at `now` under the retention the
/// store keeps now: a record written under a longer retention (its expiry
/// stamped then) is not returned past the current one, though it is
/// deleted only at the expiry it was written with.
pub(crate) fn oldest_kept(now: i64, retention: Duration) -> i64 {
    now.saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
}

/// What [`Store::count`] answered: each counter's new value, in order.
pub type Counts = Result<Vec<u64>, StoreError>;

/// The ledger's backend. A backend keeps each record `retention` past its
/// certificate's `notAfter` (given at construction) and never returns one
/// older than that.
pub trait Store: Send + Sync + fmt::Debug {
    /// `sqlite:PATH` or `dynamodb:TABLE`, for logs.
    fn describe(&self) -> String;
    /// Records one issued certificate, durably, before it is returned.
    fn record<'a>(&'a self, record: &'a LedgerRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The records `query` selects, oldest first.
    fn query<'a>(&'a self, query: &'a LedgerQuery)
        -> BoxFuture<'a, Result<LedgerPage, StoreError>>;
    /// Stores a revocation rule, durably, and advances the
    /// [`revision`](Self::revision), both or neither.
    fn revoke<'a>(&'a self, rule: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>>;
    /// A rule in force at `now` (stored, and not past its `expires`) for
    /// one of `keys`, when there is one: a consistent read, so a rule stored
    /// through any client of the store is seen by the next request.
    fn revoked<'a>(
        &'a self,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>>;
    /// Records `record` (as [`record`](Self::record)), then answers
    /// [`revoked`](Self::revoked) for `keys` at `now` as of the record's
    /// commit or later: a rule stored before the record is on file is
    /// found, and one stored after it finds the record in the ledger. The
    /// last check of an issuance; a store may answer it from what its
    /// write saw.
    fn record_then_revoked<'a>(
        &'a self,
        record: LedgerRecord,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(async move {
            self.record(&record).await?;
            self.revoked(keys, now).await
        })
    }
    /// Every rule made at or after `since` (Unix seconds), oldest first.
    fn revocations_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<Revocation>, StoreError>>;
    /// A number that grows with every rule stored, through any client: a
    /// cached CRL is current while it is unchanged.
    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>>;
    /// The next CRL number of the CA `ca`: greater than every number this
    /// store returned for it before, to any client (an atomic counter).
    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
    /// Adds one to each counter of `hits` and returns their new values,
    /// in order: each an atomic increment, so concurrent requests through
    /// any client of the store each see a distinct count.
    fn count<'a>(&'a self, hits: &'a [Hit]) -> BoxFuture<'a, Result<Vec<u64>, StoreError>>;
    /// Claims the single-use `name` (an HMAC nonce) until `expires`: true
    /// when it was free at `now` (never claimed, or its claim expired),
    /// false when another request holds it. Atomic across clients.
    fn claim<'a>(
        &'a self,
        name: &'a str,
        now: i64,
        expires: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Takes the idempotency entry `lease.id` when it is free (absent,
    /// past its `expires`, or pending past its `lease_until`); otherwise
    /// answers what is there. Atomic across clients: of concurrent
    /// callers, exactly one is [`Begun::Started`].
    fn begin<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Begun, StoreError>>;
    /// [`begin`](Self::begin), then, when it is [`Begun::Started`] and
    /// `hits` is not empty, [`count`](Self::count) of `hits`: an issuance
    /// with an `Idempotency-Key` under rate limits, whose replays are never
    /// counted. The counts are `None` when nothing was counted; a failed
    /// count after a taken lease is `Some(Err)`, so that the caller still
    /// holds (and gives back) the lease. A store that can make both in one
    /// write does (SQLite: one trip through the writer instead of two).
    fn begin_counting<'a>(
        &'a self,
        lease: &'a Lease,
        hits: &'a [Hit],
    ) -> BoxFuture<'a, Result<(Begun, Option<Counts>), StoreError>> {
        Box::pin(async move {
            let begun = self.begin(lease).await?;
            let counts = match begun {
                Begun::Started if !hits.is_empty() => Some(self.count(hits).await),
                _ => None,
            };
            Ok((begun, counts))
        })
    }
    /// The idempotency entry `id`, unless absent or past its `expires` at
    /// `now` (a consistent read).
    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Idempotent>, StoreError>>;
    /// Stores the sealed response of the entry `lease` began, keeping it
    /// until `lease.expires`. Fails with [`StoreError::Duplicate`] when the
    /// lease is no longer `lease.token`'s (taken over after its
    /// `lease_until`).
    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes the pending entry `lease` began (its request failed), so a
    /// retry starts afresh; does nothing when the lease is no longer ours.
    fn abandon<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Where the ledger is kept (`store.url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// No ledger (Lambda mode's default unless configured).
    None,
    /// An SQLite database file, created if absent.
    Sqlite(std::path::PathBuf),
    /// A DynamoDB table (made by deploy/template.yaml, or as its README says).
    DynamoDb(String),
}

impl StoreSpec {
    /// Parses `store.url`; the error says what is allowed.
    pub fn parse(text: &str) -> Result<StoreSpec, String> {
        match text.split_once(':') {
            _ if text == "none" => Ok(StoreSpec::None),
            Some(("sqlite", path)) if !path.is_empty() => Ok(StoreSpec::Sqlite(path.into())),
            Some(("dynamodb", table))
                if (3..=255).contains(&table.len())
                    && table
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) =>
            {
                Ok(StoreSpec::DynamoDb(table.to_owned()))
            }
            _ => Err(format!(
                "unsupported store {text:?}; write \"sqlite:PATH\", \"dynamodb:TABLE\" (3-255 \
                 characters of A-Z, a-z, 0-9, '_', '.', '-') or \"none\""
            )),
        }
    }
}

/// A signed CRL, kept while it is current.
#[derive(Debug, Clone)]
pub struct CachedCrl {
    /// The store's [`revision`](Store::revision) it was built at.
    pub revision: u64,
    /// The DER of the CA certificate that signed it (a reload may rotate it).
    pub issuer_der: Vec<u8>,
    /// Its `thisUpdate`, Unix seconds.
    pub this_update: i64,
    /// Until when it is reused (Unix seconds, exclusive): half its
    /// validity, or less when its newest rule is younger than the store's
    /// index lag ([`crate::crl::INDEX_LAG`]).
    pub fresh_until: i64,
    /// The CRL, DER.
    pub der: Arc<[u8]>,
}

/// The signed CRLs of a ledger, by CA name, behind one async lock (a CRL
/// is signed by one request at a time; the others wait for it).
pub type CrlCache = tokio::sync::Mutex<std::collections::HashMap<String, CachedCrl>>;

/// The ledger as the service holds it: off, or a store.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    store: Option<Arc<dyn Store>>,
    crls: Arc<CrlCache>,
}

impl Ledger {
    /// A ledger writing to `store`.
    pub fn new(store: Arc<dyn Store>) -> Ledger {
        Ledger {
            store: Some(store),
            crls: Arc::default(),
        }
    }

    /// The CRLs signed from this ledger's revocations.
    pub fn crls(&self) -> &CrlCache {
        &self.crls
    }

    /// No ledger.
    pub fn off() -> Ledger {
        Ledger::default()
    }

    /// The store, when there is one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }
}

/// A cursor: the issuance time and serial of the last record of a page,
/// and a check that binds them to the query that gave them (its key and
/// window), so that a cursor edited, made up or carried over to another
/// query is refused, not read as a place to start (which would skip or
/// repeat records). The check is a digest, not a secret: cursors are for
/// administrators, who could read any page anyway.
pub(crate) fn cursor_of(record: &LedgerRecord, query: &LedgerQuery) -> String {
    format!(
        "{}.{}.{}",
        record.issued_at,
        record.serial,
        cursor_check(record.issued_at, &record.serial, query)
    )
}

fn cursor_check(at: i64, serial: &str, query: &LedgerQuery) -> String {
    let window = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
    let bound = format!(
        "session-ca ledger cursor 1\n{}\n{}\n{}\n{}\n{at}\n{serial}",
        query.key.kind(),
        query.key.value(),
        window(query.since),
        window(query.until),
    );
    crate::fmt::hex(&crate::crypto::sha256(bound.as_bytes()).as_ref()[..8])
}

/// The (issued_at, serial) a cursor of `query` names.
pub(crate) fn parse_cursor(cursor: &str, query: &LedgerQuery) -> Result<(i64, String), StoreError> {
    let bad = || {
        StoreError::BadQuery(
            "cursor: not one this ledger gave for this query (send the same key, since \
             and until as the query whose page gave it)"
                .to_owned(),
        )
    };
    let mut parts = cursor.splitn(3, '.');
    let (Some(at), Some(serial), Some(check)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let at: i64 = at.parse().map_err(|_| bad())?;
    if serial.is_empty()
        || serial.len() > 64
        || !serial
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        || check != cursor_check(at, serial, query)
    {
        return Err(bad());
    }
    Ok((at, serial.to_owned()))
}
