//! The storage contract of rkube: etcd v3's data model behind one trait.
//!
//! Everything the API server persists goes through [`Store`]: one global, strictly increasing
//! revision; per-key `create_revision` / `mod_revision` / `version`; ranges (optionally at a past
//! revision); atomic compare-and-swap transactions; watches that resume exactly after a revision;
//! compaction of history; and leases for keys that expire. The crate has no backend dependency:
//! backends (`store-sqlite`, `store-etcd`) implement the trait and run [`conformance`]'s suite.

mod compactor;
mod error;
mod types;
mod url;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use compactor::{CompactionPolicy, spawn_compactor};
pub use error::{Result, StoreError};
pub use types::*;
pub use url::StoreUrl;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// An ordered stream of watch events. It never skips an event: a watcher that cannot be served
/// any more (its start revision was compacted away) receives one [`StoreError::Compacted`] and the
/// stream ends; the consumer re-lists and watches again from the list's revision.
pub type WatchStream = BoxStream<'static, Result<Event>>;

/// A key-value store with etcd v3 semantics. Implementations must pass [`conformance`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs and errors ("sqlite", "etcd").
    fn backend(&self) -> &'static str;

    /// Reads keys in a range, at the latest or at a past (not yet compacted) revision.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Evaluates all `compare`s against the latest state and atomically applies `success` (all
    /// true) or `failure`. A transaction that writes bumps the revision by exactly one; every
    /// write in it carries that revision.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Streams every change in `range` with a revision greater than `after`, in revision order,
    /// with previous values, and then live changes. `after` = the revision of a list makes
    /// list + watch a consistent view. Events of one revision arrive in the order of the
    /// transaction's operations.
    async fn watch(&self, range: KeyRange, after: Revision) -> Result<WatchStream>;

    /// Discards history at and below `revision` (the state at `revision` itself stays readable).
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the latest write.
    async fn current_revision(&self) -> Result<Revision>;

    /// Creates a lease that expires after `ttl_seconds` unless kept alive. Keys written with it
    /// are deleted (with ordinary delete events) when it expires or is revoked.
    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId>;

    /// Renews a lease for its full TTL; returns the TTL in seconds.
    async fn keep_alive(&self, lease: LeaseId) -> Result<i64>;

    /// Revokes a lease now, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    // ---- Conveniences over `range` and `txn`, identical for every backend. ----

    /// The latest value of one key.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self.range(RangeRequest::new(KeyRange::key(key))).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Unconditional put; returns the new revision.
    async fn put(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<Revision> {
        let resp = self.txn(Txn::default().then(Op::put(key, value, lease))).await?;
        Ok(resp.revision)
    }

    /// Writes `key` only if it does not exist.
    async fn create(&self, key: &str, value: Bytes, lease: Option<LeaseId>) -> Result<WriteOutcome> {
        let txn = Txn::when(vec![Compare::absent(key)])
            .then(Op::put(key, value, lease))
            .otherwise(Op::get(key));
        Ok(WriteOutcome::from_txn(self.txn(txn).await?))
    }

    /// Writes `key` only if its `mod_revision` is still `expected` (an existing key).
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<WriteOutcome> {
        let txn = Txn::when(vec![
            Compare::mod_revision(key, CompareOp::Equal, expected),
            Compare::exists(key),
        ])
        .then(Op::put(key, value, lease))
        .otherwise(Op::get(key));
        Ok(WriteOutcome::from_txn(self.txn(txn).await?))
    }

    /// Deletes `key` if it exists and, when `expected` is given, its `mod_revision` matches.
    /// `Written::prev` holds the deleted value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<WriteOutcome> {
        let mut compare = vec![Compare::exists(key)];
        if let Some(rev) = expected {
            compare.push(Compare::mod_revision(key, CompareOp::Equal, rev));
        }
        let txn = Txn::when(compare).then(Op::delete(key)).otherwise(Op::get(key));
        Ok(WriteOutcome::from_txn(self.txn(txn).await?))
    }
}
