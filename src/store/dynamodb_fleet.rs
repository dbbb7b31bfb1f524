//! The DynamoDB store's shared state ([`super::fleet`]), in the ledger's
//! table, each item with the TTL attribute so DynamoDB deletes it:
//!
//! - a rate counter (`pk` = `RATE#<counter>`, `sk` = `RATE`, `count` N):
//!   one `UpdateItem` `ADD` per counter, atomic, answering the new count;
//! - a claim (`pk` = `CLAIM#<name>`, `sk` = `CLAIM`): one conditional
//!   `PutItem` (absent, or expired);
//! - an idempotency entry (`pk` = `IDEM#<id>`, `sk` = `IDEM`,
//!   `fingerprint` S, `token` S, `lease_until` N, and once finished
//!   `sealed` B): a conditional `PutItem` takes it, a consistent `GetItem`
//!   reads it, a conditional `UpdateItem` finishes it and a conditional
//!   `DeleteItem` abandons it.
//!
//! Expired items are treated as absent by every condition and read, since
//! TTL deletes lazily.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::dynamodb::{n, s, DynamoDbStore, TTL_ATTRIBUTE};
use super::{Begun, Hit, Idempotent, Lease, StoreError};

fn idempotency_pk(id: &str) -> AttributeValue {
    s(format!("IDEM#{id}"))
}

/// The entry an item holds, unless it is past its expiry at `now`.
fn entry_of(
    item: &HashMap<String, AttributeValue>,
    now: i64,
) -> Result<Option<Idempotent>, String> {
    let number = |name: &str| match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map_err(|_| format!("attribute {name} is not an integer")),
        _ => Err(format!("attribute {name} is missing or not a number")),
    };
    if number(TTL_ATTRIBUTE)? < now {
        return Ok(None);
    }
    let fingerprint = match item.get("fingerprint") {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => return Err("attribute fingerprint is missing or not a string".into()),
    };
    Ok(Some(match item.get("sealed") {
        Some(AttributeValue::B(sealed)) => Idempotent::Done {
            fingerprint,
            sealed: sealed.clone().into_inner(),
        },
        Some(_) => return Err("attribute sealed is not binary".into()),
        None => Idempotent::Pending {
            fingerprint,
            lease_until: number("lease_until")?,
        },
    }))
}

impl DynamoDbStore {
    pub(super) async fn count_hits(&self, hits: &[Hit]) -> Result<Vec<u64>, StoreError> {
        let mut counts = Vec::with_capacity(hits.len());
        for hit in hits {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("RATE#{}", hit.counter)))
                .key("sk", s("RATE"))
                .update_expression("ADD #count :one SET #ttl = :expires")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":expires", n(hit.expires))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await
                .map_err(|e| {
                    self.unavailable("UpdateItem of a rate counter", DisplayErrorContext(&e))
                })?;
            let count = match out.attributes().and_then(|a| a.get("count")) {
                Some(AttributeValue::N(v)) => v.parse().ok(),
                _ => None,
            };
            counts.push(count.ok_or_else(|| {
                self.unavailable("UpdateItem of a rate counter", "no count returned")
            })?);
        }
        Ok(counts)
    }

    pub(super) async fn claim_name(
        &self,
        name: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CLAIM#{name}")))
            .item("sk", s("CLAIM"))
            .item(TTL_ATTRIBUTE, n(expires))
            .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.unavailable("PutItem of a claim", DisplayErrorContext(&e))),
        }
    }

    pub(super) async fn begin_lease(&self, lease: &Lease) -> Result<Begun, StoreError> {
        // An entry that expires (or is abandoned) between the failed put
        // and the read is free again: try again, a few times.
        for _ in 0..3 {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", idempotency_pk(&lease.id))
                .item("sk", s("IDEM"))
                .item("fingerprint", s(&lease.fingerprint))
                .item("token", s(&lease.token))
                .item("lease_until", n(lease.lease_until))
                .item(TTL_ATTRIBUTE, n(lease.expires))
                .condition_expression(
                    "attribute_not_exists(pk) OR #ttl < :now \
                     OR (attribute_not_exists(sealed) AND lease_until < :now)",
                )
                .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                .expression_attribute_values(":now", n(lease.now))
                .send()
                .await;
            match put {
                Ok(_) => return Ok(Begun::Started),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => {
                    return Err(self
                        .unavailable("PutItem of an idempotency entry", DisplayErrorContext(&e)))
                }
            }
            if let Some(entry) = self.read_idempotent(&lease.id, lease.now).await? {
                return Ok(Begun::Exists(entry));
            }
        }
        Err(self.unavailable(
            "PutItem of an idempotency entry",
            "the entry changed under three attempts in a row",
        ))
    }

    pub(super) async fn read_idempotent(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<Idempotent>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", idempotency_pk(id))
            .key("sk", s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                self.unavailable("GetItem of an idempotency entry", DisplayErrorContext(&e))
            })?;
        match out.item() {
            None => Ok(None),
            Some(item) => entry_of(item, now)
                .map_err(|e| self.unavailable("GetItem of an idempotency entry", e)),
        }
    }

    pub(super) async fn finish_lease(
        &self,
        lease: &Lease,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", idempotency_pk(&lease.id))
            .key("sk", s("IDEM"))
            .update_expression("SET sealed = :sealed, #ttl = :expires")
            .condition_expression("#token = :token AND attribute_not_exists(sealed)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":sealed", AttributeValue::B(Blob::new(sealed)))
            .expression_attribute_values(":expires", n(lease.expires))
            .expression_attribute_values(":token", s(&lease.token))
            .send()
            .await;
        match update {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Duplicate(format!(
                    "idempotency entry {}",
                    lease.id
                )))
            }
            Err(e) => Err(self.unavailable(
                "UpdateItem of an idempotency entry",
                DisplayErrorContext(&e),
            )),
        }
    }

    pub(super) async fn abandon_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", idempotency_pk(&lease.id))
            .key("sk", s("IDEM"))
            .condition_expression("#token = :token AND attribute_not_exists(sealed)")
            .expression_attribute_names("#token", "token")
            .expression_attribute_values(":token", s(&lease.token))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(self.unavailable(
                "DeleteItem of an idempotency entry",
                DisplayErrorContext(&e),
            )),
        }
    }
}
