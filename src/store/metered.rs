//! A [`Store`] that reports each of its calls to the metrics
//! ([`Metrics::dependency_call`]): how long it took, by operation, and
//! whether the store failed it ([`StoreError::Unavailable`]; a duplicate
//! serial or a bad cursor is an answer, not a failure).

use std::sync::Arc;
use std::time::Instant;

use super::{
    Begun, Counts, Hit, Idempotent, Lease, LedgerKey, LedgerPage, LedgerQuery, LedgerRecord,
    Revocation, Store, StoreError,
};
use crate::ca::BoxFuture;
use crate::metrics::{Dependency, Metrics};

/// `inner`, measured.
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Metrics,
}

impl Metered {
    /// `inner`, its calls reported to `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: Metrics) -> Metered {
        Metered { inner, metrics }
    }

    /// Runs `call` and reports it as `operation`, failed when the store
    /// was unavailable.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: BoxFuture<'_, Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.timed_by(operation, call, |_| false).await
    }

    /// [`Metered::timed`], also failed when `failed_within` says so of an
    /// answer.
    async fn timed_by<T>(
        &self,
        operation: &'static str,
        call: BoxFuture<'_, Result<T, StoreError>>,
        failed_within: fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let outcome = call.await;
        let failed = match &outcome {
            Err(StoreError::Unavailable(_)) => true,
            Err(_) => false,
            Ok(answer) => failed_within(answer),
        };
        self.metrics
            .dependency_call(Dependency::Store, operation, started.elapsed(), failed);
        outcome
    }
}

impl Store for Metered {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn record<'a>(&'a self, record: &'a LedgerRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.timed("record", self.inner.record(record)))
    }

    fn query<'a>(
        &'a self,
        query: &'a LedgerQuery,
    ) -> BoxFuture<'a, Result<LedgerPage, StoreError>> {
        Box::pin(self.timed("query", self.inner.query(query)))
    }

    fn revoke<'a>(&'a self, rule: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.timed("revoke", self.inner.revoke(rule)))
    }

    fn revoked<'a>(
        &'a self,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(self.timed("revoked", self.inner.revoked(keys, now)))
    }

    fn record_then_revoked<'a>(
        &'a self,
        record: LedgerRecord,
        keys: &'a [LedgerKey],
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Revocation>, StoreError>> {
        Box::pin(self.timed(
            "record_then_revoked",
            self.inner.record_then_revoked(record, keys, now),
        ))
    }

    fn revocations_since(&self, since: i64) -> BoxFuture<'_, Result<Vec<Revocation>, StoreError>> {
        Box::pin(self.timed("revocations_since", self.inner.revocations_since(since)))
    }

    fn revision(&self) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.timed("revision", self.inner.revision()))
    }

    fn next_crl_number<'a>(&'a self, ca: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(self.timed("next_crl_number", self.inner.next_crl_number(ca)))
    }

    fn count<'a>(&'a self, hits: &'a [Hit]) -> BoxFuture<'a, Result<Vec<u64>, StoreError>> {
        Box::pin(self.timed("count", self.inner.count(hits)))
    }

    fn claim<'a>(
        &'a self,
        name: &'a str,
        now: i64,
        expires: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.timed("claim", self.inner.claim(name, now, expires)))
    }

    fn begin<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<Begun, StoreError>> {
        Box::pin(self.timed("begin", self.inner.begin(lease)))
    }

    fn begin_counting<'a>(
        &'a self,
        lease: &'a Lease,
        hits: &'a [Hit],
    ) -> BoxFuture<'a, Result<(Begun, Option<Counts>), StoreError>> {
        // A count that failed after the lease was taken is the store's
        // failure too.
        Box::pin(self.timed_by(
            "begin_counting",
            self.inner.begin_counting(lease, hits),
            |(_, counts)| matches!(counts, Some(Err(StoreError::Unavailable(_)))),
        ))
    }

    fn idempotent<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Idempotent>, StoreError>> {
        Box::pin(self.timed("idempotent", self.inner.idempotent(id, now)))
    }

    fn finish<'a>(
        &'a self,
        lease: &'a Lease,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.timed("finish", self.inner.finish(lease, sealed)))
    }

    fn abandon<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.timed("abandon", self.inner.abandon(lease)))
    }
}
