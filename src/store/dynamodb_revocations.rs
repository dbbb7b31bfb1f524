//! Revocation rules and counters in the DynamoDB ledger's table.
//!
//! Items, beside the certificates (`pk` = `CERT#<serial>`):
//!
//! - a rule, twice, written in one `TransactWriteItems` with the revision:
//!   under its key (`pk` = `REVOKED#<kind>#<value>`, the consistent query
//!   of every issuance) and in the list CRLs read (`pk` = `REVOCATIONS`);
//!   both with `sk` = `<revoked_at as 20 digits>#<request id>`, and a TTL
//!   (`expires_at`) of its end plus the retention when it has an end;
//! - the revision (`pk` = `META`, `sk` = `REVISION`, `revision` N), added
//!   to by every rule;
//! - each CA's CRL number (`pk` = `CRL#<ca>`, `sk` = `NUMBER`,
//!   `crl_number` N), an atomic `ADD`.
//!
//! The `REVOCATIONS` partition is written once per revocation (rare) and
//! read when a CRL is signed, so it never runs hot.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};

use super::dynamodb::{n, s, time_key, DynamoDbStore, TTL_ATTRIBUTE};
use super::{LedgerKey, Revocation, Store, StoreError};

/// The partition every rule is listed in.
const LIST_PK: &str = "REVOCATIONS";

fn key_pk(key: &LedgerKey) -> String {
    format!("REVOKED#{}#{}", key.kind(), key.value())
}

/// The sort key of a rule: its time, then a fresh id (a client may reuse
/// its request id; two rules must never collide).
fn rule_sk(rule: &Revocation) -> String {
    format!("{}#{}", time_key(rule.revoked_at), uuid::Uuid::new_v4())
}

fn rule_item(
    rule: &Revocation,
    pk: String,
    sk: &str,
    retention: i64,
) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("kind".to_owned(), s(rule.key.kind())),
        ("value".to_owned(), s(rule.key.value())),
        ("reason".to_owned(), s(rule.reason.name())),
        ("revoked_at".to_owned(), n(rule.revoked_at)),
        ("revoked_by".to_owned(), s(&rule.revoked_by)),
        ("request_id".to_owned(), s(&rule.request_id)),
    ]);
    if let Some(expires) = rule.expires {
        item.insert("expires".to_owned(), n(expires));
        item.insert(
            TTL_ATTRIBUTE.to_owned(),
            n(expires.saturating_add(retention)),
        );
    }
    item
}

fn rule_of(item: &HashMap<String, AttributeValue>) -> Result<Revocation, String> {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(format!("attribute {name} is missing or not a string")),
    };
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("attribute {name} is not an integer")),
        None => Ok(None),
        _ => Err(format!("attribute {name} is not a number")),
    };
    let kind = text("kind")?;
    Ok(Revocation {
        key: LedgerKey::from_parts(&kind, text("value")?)
            .ok_or_else(|| format!("attribute kind {kind:?} is not a key"))?,
        reason: text("reason")?.parse()?,
        revoked_at: number("revoked_at")?.ok_or("attribute revoked_at is missing")?,
        expires: number("expires")?,
        revoked_by: text("revoked_by")?,
        request_id: text("request_id")?,
    })
}

fn counter_of(item: Option<&HashMap<String, AttributeValue>>, name: &str) -> Option<u64> {
    match item?.get(name)? {
        AttributeValue::N(v) => v.parse().ok(),
        _ => None,
    }
}

impl DynamoDbStore {
    fn retention_secs(&self) -> i64 {
        i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX)
    }

    pub(super) async fn put_revocation(&self, rule: &Revocation) -> Result<(), StoreError> {
        let retention = self.retention_secs();
        let sk = rule_sk(rule);
        let put = |pk: String| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(rule_item(rule, pk, &sk, retention)))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| self.unavailable("building the request", e))
        };
        let revision = Update::builder()
            .table_name(&self.table)
            .key("pk", s("META"))
            .key("sk", s("REVISION"))
            .update_expression("ADD revision :one")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| self.unavailable("building the request", e))?;
        self.client
            .transact_write_items()
            .transact_items(put(key_pk(&rule.key))?)
            .transact_items(put(LIST_PK.to_owned())?)
            .transact_items(TransactWriteItem::builder().update(revision).build())
            .send()
            .await
            .map_err(|e| {
                let error = self.unavailable(
                    &format!("TransactWriteItems of a revocation of {}", rule.key.kind()),
                    DisplayErrorContext(&e),
                );
                tracing::error!(store = %self.describe(), error = %error, "revocation write failed");
                error
            })?;
        Ok(())
    }

    /// Every rule `query` (a consistent `Query` of rule items) selects,
    /// following DynamoDB's pages.
    async fn rules_of_query(
        &self,
        query: QueryFluentBuilder,
    ) -> Result<Vec<Revocation>, StoreError> {
        let mut rules = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.unavailable("Query of revocations", DisplayErrorContext(&e)))?;
            for item in out.items() {
                rules.push(rule_of(item).map_err(|e| self.unavailable("a revocation item", e))?);
            }
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => return Ok(rules),
            }
        }
    }

    /// The rules of `key` in force at `now`.
    async fn rules_of(&self, key: &LedgerKey, now: i64) -> Result<Vec<Revocation>, StoreError> {
        self.rules_of_query(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("attribute_not_exists(expires) OR expires > :now")
                .expression_attribute_values(":pk", s(key_pk(key)))
                .expression_attribute_values(":now", n(now)),
        )
        .await
    }

    pub(super) async fn rule_in_force(
        &self,
        keys: &[LedgerKey],
        now: i64,
    ) -> Result<Option<Revocation>, StoreError> {
        // One round trip for all keys: the queries run side by side.
        let found =
            futures_util::future::try_join_all(keys.iter().map(|key| self.rules_of(key, now)))
                .await?;
        Ok(found.into_iter().flatten().next())
    }

    pub(super) async fn rules_since(&self, since: i64) -> Result<Vec<Revocation>, StoreError> {
        self.rules_of_query(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :from")
                .expression_attribute_values(":pk", s(LIST_PK))
                .expression_attribute_values(":from", s(time_key(since))),
        )
        .await
    }

    pub(super) async fn read_revision(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s("META"))
            .key("sk", s("REVISION"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem of the revision", DisplayErrorContext(&e)))?;
        Ok(counter_of(out.item(), "revision").unwrap_or_default())
    }

    pub(super) async fn increment_crl_number(&self, ca: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("CRL#{ca}")))
            .key("sk", s("NUMBER"))
            .update_expression("ADD crl_number :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| {
                self.unavailable("UpdateItem of the CRL number", DisplayErrorContext(&e))
            })?;
        counter_of(out.attributes.as_ref(), "crl_number")
            .ok_or_else(|| self.unavailable("UpdateItem of the CRL number", "no number returned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Reason;

    #[test]
    fn a_rule_item_round_trips() {
        for expires in [None, Some(2_000)] {
            let rule = Revocation {
                key: LedgerKey::Requester("arn:aws:iam::1:role/a".into()),
                reason: Reason::PrivilegeWithdrawn,
                revoked_at: 1_000,
                expires,
                revoked_by: "admin".into(),
                request_id: "req-1".into(),
            };
            let item = rule_item(&rule, key_pk(&rule.key), &rule_sk(&rule), 86_400);
            assert_eq!(rule_of(&item).unwrap(), rule);
            assert_eq!(
                item.get(TTL_ATTRIBUTE),
                expires.map(|at| n(at + 86_400)).as_ref()
            );
        }
    }
}
