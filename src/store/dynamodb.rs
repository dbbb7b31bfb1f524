//! The DynamoDB ledger, for Lambda and fleets: one table, answering every
//! query without a scan, with DynamoDB's TTL deleting records past their
//! retention.
//!
//! The table (made by [`create_table`], or by hand as its keys below say):
//!
//! - partition key `pk` (S) = `CERT#<serial>`, sort key `sk` (S) = `CERT`;
//! - three global secondary indexes, projection ALL, each keyed on
//!   attributes an item has only when it has the value (a sparse index):
//!   `gsi_session` (`s_pk` = session id, `s_sk`), `gsi_transaction`
//!   (`t_pk` = transaction id, `t_sk`) and `gsi_requester` (`r_pk` =
//!   requester, `r_sk`), each sort key (S) being
//!   `<issued_at as 20 digits>#<serial>` (the 20 digits are `issued_at`
//!   with its sign bit flipped, zero-padded, so the order of the strings
//!   is the order of the times, negative ones included);
//! - TTL on `expires_at` (N, Unix seconds: `notAfter` + retention).
//!
//! Every field of the record is an attribute of its own (`claims` as the
//! JSON text of its pairs, numbers as N). A record is written once, with
//! `attribute_not_exists(pk)`; queries filter out what is past its
//! retention, as TTL deletes lazily (within days).
//!
//! The indexes are eventually consistent: a query by session, transaction
//! or requester may miss a record written a moment before. A query by
//! serial is a consistent read.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;

use super::{
    cursor_of, expiry_of, oldest_kept, parse_cursor, Begun, Hit, Idempotent, Lease, LedgerKey,
    LedgerPage, LedgerQuery, LedgerRecord, Revocation, Store, StoreError,
};
use crate::ca::BoxFuture;

/// The TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How long [`create_table`] waits for the table and its indexes to be ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// A secondary index: its name, partition and sort key attributes.
struct Index {
    name: &'static str,
    pk: &'static str,
    sk: &'static str,
}

const BY_SESSION: Index = Index {
    name: "gsi_session",
    pk: "s_pk",
    sk: "s_sk",
};
const BY_TRANSACTION: Index = Index {
    name: "gsi_transaction",
    pk: "t_pk",
    sk: "t_sk",
};
const BY_REQUESTER: Index = Index {
    name: "gsi_requester",
    pk: "r_pk",
    sk: "r_sk",
};
const INDEXES: [&Index; 3] = [&BY_SESSION, &BY_TRANSACTION, &BY_REQUESTER];

/// A DynamoDB client with the signer's timeouts and retries (those of
/// [`crate::ca::ssm::sdk_config`]); `AWS_ENDPOINT_URL_DYNAMODB` and the
/// standard environment apply to what `settings` leaves unset.
pub async fn client(settings: &crate::ca::ssm::SsmSettings) -> Client {
    Client::new(&crate::ca::ssm::sdk_config(settings).await)
}

/// The DynamoDB ledger.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    pub(super) client: Client,
    pub(super) table: String,
    pub(super) retention: Duration,
}

impl DynamoDbStore {
    /// The ledger in `table` (which must exist, as [`create_table`] makes
    /// it), keeping records `retention` past their `notAfter`.
    pub fn new(client: Client, table: impl Into<String>, retention: Duration) -> DynamoDbStore {
        DynamoDbStore {
            client,
            table: table.into(),
            retention,
        }
    }

    /// The retention this store keeps records for past their `notAfter`.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub(super) fn unavailable(&self, what: &str, cause: impl std::fmt::Display) -> StoreError {
        unavailable(&self.table, what, cause)
    }
}

fn unavailable(table: &str, what: &str, cause: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB table {table}: {what}: {cause}"))
}

fn build_error(table: &str, e: impl std::fmt::Display) -> StoreError {
    unavailable(table, "building the request", e)
}

/// The sort key of a record in an index: its time, order-preserving as 20
/// digits, then its serial.
fn sort_key(issued_at: i64, serial: &str) -> String {
    format!("{}#{serial}", time_key(issued_at))
}

/// `at` as 20 digits whose string order is the numeric order.
pub(super) fn time_key(at: i64) -> String {
    format!("{:020}", (at as u64) ^ (1 << 63))
}

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The item of `record`.
fn item_of(record: &LedgerRecord, retention: Duration) -> HashMap<String, AttributeValue> {
    let r = record;
    let mut item = HashMap::from([
        ("pk".to_owned(), s(format!("CERT#{}", r.serial))),
        ("sk".to_owned(), s("CERT")),
        ("serial".to_owned(), s(&r.serial)),
        ("fingerprint_sha256".to_owned(), s(&r.fingerprint_sha256)),
        ("ca".to_owned(), s(&r.ca)),
        ("profile".to_owned(), s(&r.profile)),
        ("request_id".to_owned(), s(&r.request_id)),
        ("session_id".to_owned(), s(&r.session_id)),
        (
            "claims".to_owned(),
            s(serde_json::to_string(&r.claims).unwrap_or_default()),
        ),
        ("key_type".to_owned(), s(&r.key_type)),
        ("not_before".to_owned(), n(r.not_before)),
        ("not_after".to_owned(), n(r.not_after)),
        ("issued_at".to_owned(), n(r.issued_at)),
        ("certificate".to_owned(), s(&r.certificate)),
        (TTL_ATTRIBUTE.to_owned(), n(expiry_of(r, retention))),
    ]);
    if let Some(requester) = &r.requester {
        item.insert("requester".to_owned(), s(requester));
    }
    if let Some(transaction) = &r.transaction_id {
        item.insert("transaction_id".to_owned(), s(transaction));
    }
    let keyed = [
        (&BY_SESSION, Some(&r.session_id)),
        (&BY_TRANSACTION, r.transaction_id.as_ref()),
        (&BY_REQUESTER, r.requester.as_ref()),
    ];
    for (index, value) in keyed {
        // DynamoDB refuses an empty key: such a record is in no index.
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            item.insert(index.pk.to_owned(), s(value));
            item.insert(index.sk.to_owned(), s(sort_key(r.issued_at, &r.serial)));
        }
    }
    item
}

/// The record an item holds; `Err` names what is missing or malformed.
fn record_of(item: &HashMap<String, AttributeValue>) -> Result<LedgerRecord, String> {
    let text = |name: &str| -> Result<String, String> {
        match item.get(name) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            _ => Err(format!("attribute {name} is missing or not a string")),
        }
    };
    let optional = |name: &str| -> Result<Option<String>, String> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(_) => text(name).map(Some),
        }
    };
    let number = |name: &str| -> Result<i64, String> {
        match item.get(name) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map_err(|_| format!("attribute {name} is not an integer")),
            _ => Err(format!("attribute {name} is missing or not a number")),
        }
    };
    let claims = serde_json::from_str(&text("claims")?)
        .map_err(|e| format!("attribute claims is not the JSON of claims: {e}"))?;
    Ok(LedgerRecord {
        serial: text("serial")?,
        fingerprint_sha256: text("fingerprint_sha256")?,
        ca: text("ca")?,
        profile: text("profile")?,
        requester: optional("requester")?,
        request_id: text("request_id")?,
        session_id: text("session_id")?,
        transaction_id: optional("transaction_id")?,
        claims,
        key_type: text("key_type")?,
        not_before: number("not_before")?,
        not_after: number("not_after")?,
        issued_at: number("issued_at")?,
        certificate: text("certificate")?,
    })
}

/// The expiry an item carries (none: kept).
fn expiry_in(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    match item.get(TTL_ATTRIBUTE) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

/// Whether `record` (expiring at `expires`) answers `query`, beyond its key,
/// under the `retention` kept now.
fn selected(
    record: &LedgerRecord,
    expires: Option<i64>,
    query: &LedgerQuery,
    after: Option<&(i64, String)>,
    retention: Duration,
) -> bool {
    expires.is_none_or(|at| at >= query.now)
        && record.not_after >= oldest_kept(query.now, retention)
        && query.since.is_none_or(|since| record.issued_at >= since)
        && query.until.is_none_or(|until| record.issued_at < until)
        && after.is_none_or(|(at, serial)| {
            (record.issued_at, record.serial.as_str()) > (*at, serial.as_str())
        })
}

impl DynamoDbStore {
    async fn put(&self, record: &LedgerRecord) -> Result<(), StoreError> {
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(record, self.retention)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Duplicate(record.serial.clone()))
            }
            Err(e) => {
                let error = self.unavailable(
                    &format!("PutItem of serial {}", record.serial),
                    DisplayErrorContext(&e),
                );
                tracing::error!(store = %self.describe(), error = %error, "ledger write failed");
                Err(error)
            }
        }
    }

    async fn by_serial(
        &self,
        serial: &str,
        query: &LedgerQuery,
        after: Option<&(i64, String)>,
    ) -> Result<LedgerPage, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("CERT#{serial}")))
            .key("sk", s("CERT"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", DisplayErrorContext(&e)))?;
        let mut records = Vec::new();
        if let Some(item) = out.item() {
            let record = record_of(item)
                .map_err(|e| self.unavailable(&format!("the item of serial {serial}"), e))?;
            if selected(&record, expiry_in(item), query, after, self.retention) {
                records.push(record);
            }
        }
        Ok(LedgerPage {
            records,
            next: None,
        })
    }

    /// One page from `index`: `limit + 1` selected records (or what there
    /// is), following DynamoDB's own pages, so that records past their
    /// retention (filtered after DynamoDB's `Limit` applies) never end a
    /// page early.
    async fn by_index(
        &self,
        index: &Index,
        value: &str,
        query: &LedgerQuery,
        after: Option<&(i64, String)>,
    ) -> Result<LedgerPage, StoreError> {
        let limit = query.limit.clamp(1, super::MAX_PAGE) as usize;
        if value.is_empty() {
            // No item has an empty key (DynamoDB refuses them).
            return Ok(LedgerPage::default());
        }
        let mut from = query.since.map_or_else(|| time_key(i64::MIN), time_key);
        if let Some((at, serial)) = after {
            // Inclusive here; the cursor's own record is dropped below.
            from = from.max(sort_key(*at, serial));
        }
        // Every key issued before `until` sorts below its bare time key.
        let to = query
            .until
            .map_or_else(|| format!("{}~", time_key(i64::MAX)), time_key);
        if from > to {
            return Ok(LedgerPage::default());
        }
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let wanted = limit + 1 - records.len();
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index.name)
                .key_condition_expression("#pk = :v AND #sk BETWEEN :from AND :to")
                .filter_expression("attribute_not_exists(#exp) OR #exp >= :now")
                .expression_attribute_names("#pk", index.pk)
                .expression_attribute_names("#sk", index.sk)
                .expression_attribute_names("#exp", TTL_ATTRIBUTE)
                .expression_attribute_values(":v", s(value))
                .expression_attribute_values(":from", s(&from))
                .expression_attribute_values(":to", s(&to))
                .expression_attribute_values(":now", n(query.now))
                .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    self.unavailable(&format!("Query on {}", index.name), DisplayErrorContext(&e))
                })?;
            for item in out.items() {
                let record = record_of(item).map_err(|e| {
                    self.unavailable(&format!("an item of index {}", index.name), e)
                })?;
                if selected(&record, expiry_in(item), query, after, self.retention) {
                    records.push(record);
                }
            }
            match out.last_evaluated_key() {
                Some(key) if records.len() <= limit => start = Some(key.clone()),
                _ => break,
            }
        }
        // The index gives key order already; the page's order must not
        // depend on that.
        records.sort_by(|a, b| (a.issued_at, &a.serial).cmp(&(b.issued_at, &b.serial)));
        let next = if records.len() > limit {
            records.truncate(limit);
            records.last().map(|last| cursor_of(last, query))
        } else {
            None
        };
        Ok(LedgerPage { records, next })
    }
}

impl Store for DynamoDbStore {
    fn describe(&self) -> String {
        format!("dynamodb:{}", self.table)
    }

    fn record<'a>(&'a self, record: &'a LedgerRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put(record))
    }

    fn query<'a>(
        &'a self,
        query: &'a LedgerQuery,
    ) -> BoxFuture<'a, Result<LedgerPage, StoreError>> {
        Box::pin(async move {
            let after = query
                .cursor
                .as_deref()
                .map(|cursor| parse_cursor(cursor, query))
                .transpose()?;
            let after = after.as_ref();
            match &query.key {
                LedgerKey::Serial(serial) => self.by_serial(serial, query, after).await,
                LedgerKey::SessionId(v) => self.by_index(&BY_SESSION, v, query, after).await,
                LedgerKey::TransactionId(v) => {
                    self.by_index(&BY_TRANSACTION, v, query, after).await
                }
                LedgerKey::Requester(v) => self.by_index(&BY_REQUESTER, v, query, after).await,
            }
        })
    }

    fn revoke<'a>(&'a self, rule: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.put_revocation(rule))
    }

    fn revoked<'a>(
        &'a self,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(self.rule_in_force(keys, now))
    }

    fn revocations_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<Revocation>, StoreError>> {
        Box::pin(self.rules_since(since))
    }

    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.read_revision())
    }

    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.increment_crl_number(ca))
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

    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Idempotent>, StoreError>> {
        Box::pin(self.read_idempotent(id, now))
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

/// Creates the ledger's `table` (on demand, with its three indexes), waits
/// until it and they are ACTIVE, and enables TTL on `expires_at`. A table
/// that exists already is left as it is, TTL enabled if it is not.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| build_error(table, e))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| build_error(table, e))
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string("pk")?)
        .attribute_definitions(string("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?);
    for index in INDEXES {
        request = request
            .attribute_definitions(string(index.pk)?)
            .attribute_definitions(string(index.sk)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .key_schema(key(index.pk, KeyType::Hash)?)
                    .key_schema(key(index.sk, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(|e| build_error(table, e))?,
            );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => return Err(unavailable(table, "CreateTable", DisplayErrorContext(&e))),
    }
    wait_until_active(client, table).await?;
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| unavailable(table, "DescribeTimeToLive", DisplayErrorContext(&e)))?;
    let enabled = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !enabled {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| build_error(table, e))?,
            )
            .send()
            .await
            .map_err(|e| unavailable(table, "UpdateTimeToLive", DisplayErrorContext(&e)))?;
    }
    Ok(())
}

/// Polls DescribeTable until the table and every index are ACTIVE.
async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    let started = tokio::time::Instant::now();
    loop {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| unavailable(table, "DescribeTable", DisplayErrorContext(&e)))?;
        let description = out.table();
        let active = description.is_some_and(|t| {
            t.table_status() == Some(&TableStatus::Active)
                && t.global_secondary_indexes()
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| s == &IndexStatus::Active))
        });
        if active {
            return Ok(());
        }
        if started.elapsed() >= ACTIVE_TIMEOUT {
            return Err(unavailable(
                table,
                "CreateTable",
                format!("not ACTIVE after {}s", ACTIVE_TIMEOUT.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(serial: &str, transaction: Option<&str>, requester: Option<&str>) -> LedgerRecord {
        super::super::conformance::record(serial, "s-1", transaction, requester, 1_800_000_000)
    }

    #[test]
    fn an_item_round_trips_to_the_same_record() {
        for r in [
            record("0a01", Some("tx-1"), Some("arn:aws:iam::1:role/a")),
            record("0a02", None, None),
        ] {
            let item = item_of(&r, Duration::from_secs(86_400));
            assert_eq!(record_of(&item).unwrap(), r);
            assert_eq!(expiry_in(&item), Some(r.not_after + 86_400));
            assert_eq!(item.contains_key("t_pk"), r.transaction_id.is_some());
            assert_eq!(item.contains_key("r_sk"), r.requester.is_some());
            assert!(item.contains_key("s_pk"));
        }
    }

    #[test]
    fn sort_keys_order_as_times_then_serials() {
        let mut keys = vec![
            sort_key(10, "0b"),
            sort_key(-5, "ff"),
            sort_key(10, "0a"),
            sort_key(9, "ff"),
            sort_key(i64::MAX, "00"),
            sort_key(i64::MIN, "00"),
            sort_key(0, "01"),
        ];
        keys.sort();
        let order: Vec<_> = [
            (i64::MIN, "00"),
            (-5, "ff"),
            (0, "01"),
            (9, "ff"),
            (10, "0a"),
            (10, "0b"),
            (i64::MAX, "00"),
        ]
        .iter()
        .map(|(at, serial)| sort_key(*at, serial))
        .collect();
        assert_eq!(keys, order);
        assert!(keys.iter().all(|k| k.len() == 21 + 2));
        // The bounds of a window: since's bare key below, until's above.
        assert!(time_key(10) < sort_key(10, "00"));
        assert!(sort_key(9, "ff") < time_key(10));
        assert!(sort_key(i64::MAX, "ff") < format!("{}~", time_key(i64::MAX)));
    }

    #[test]
    fn a_malformed_item_says_what_is_wrong() {
        let mut item = item_of(&record("0a01", None, None), Duration::ZERO);
        item.insert("issued_at".into(), s("soon"));
        let err = record_of(&item).unwrap_err();
        assert!(err.contains("issued_at"), "{err}");
    }
}
