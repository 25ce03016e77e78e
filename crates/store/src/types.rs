//! The data model shared by every backend, named after etcd v3's.

use bytes::Bytes;

/// The store's global logical clock. Every write transaction advances it by one.
pub type Revision = i64;

/// A lease handle as the backend issued it (never 0).
pub type LeaseId = i64;

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the latest write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 right after creation.
    pub version: i64,
    pub lease: Option<LeaseId>,
}

/// A set of keys: one key, or the half-open byte range `[start, end)`.
/// `end` empty means "just `start`"; `end == [0]` means "every key from `start` on" (as etcd).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyRange {
    /// Exactly one key.
    pub fn key(key: &str) -> Self {
        KeyRange {
            start: key.as_bytes().to_vec(),
            end: Vec::new(),
        }
    }

    /// Every key starting with `prefix` (all keys when `prefix` is empty).
    pub fn prefix(prefix: &str) -> Self {
        KeyRange {
            start: prefix.as_bytes().to_vec(),
            end: prefix_end(prefix.as_bytes()),
        }
    }

    /// The keys starting with `prefix` that sort after `after` (for paginated lists).
    pub fn prefix_after(prefix: &str, after: &str) -> Self {
        let mut start = after.as_bytes().to_vec();
        start.push(0);
        KeyRange {
            start,
            end: prefix_end(prefix.as_bytes()),
        }
    }

    /// True when the range names a single key.
    pub fn is_single_key(&self) -> bool {
        self.end.is_empty()
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.end.is_empty() {
            return key == self.start.as_slice();
        }
        key >= self.start.as_slice() && (self.end == [0] || key < self.end.as_slice())
    }
}

/// The smallest key greater than every key with `prefix`: the prefix with its last byte below
/// 0xff incremented (`[0]`, "no upper bound", when there is none).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A read of a key range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeRequest {
    pub range: KeyRange,
    /// Read the state as of this revision; `None` reads the latest.
    pub revision: Option<Revision>,
    /// Return at most this many keys (in key order); `None` returns all.
    pub limit: Option<usize>,
    /// Only count the keys; `kvs` stays empty.
    pub count_only: bool,
}

impl RangeRequest {
    pub fn new(range: KeyRange) -> Self {
        RangeRequest {
            range,
            revision: None,
            limit: None,
            count_only: false,
        }
    }
    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Matching keys in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// How many keys the range holds in all (ignoring `limit`).
    pub count: i64,
    /// True when `limit` cut the result short.
    pub more: bool,
    /// The store's current revision when the read was served (as etcd's response header).
    pub revision: Revision,
}

/// Comparison operator of a [`Compare`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

impl CompareOp {
    pub fn holds<T: Ord + ?Sized>(self, actual: &T, expected: &T) -> bool {
        match self {
            CompareOp::Equal => actual == expected,
            CompareOp::NotEqual => actual != expected,
            CompareOp::Less => actual < expected,
            CompareOp::Greater => actual > expected,
        }
    }
}

/// What a [`Compare`] looks at. An absent key has revisions and version 0, and no value
/// (every value comparison on it is false), exactly as in etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    ModRevision(Revision),
    CreateRevision(Revision),
    Version(i64),
    Value(Bytes),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn mod_revision(key: &str, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.to_owned(),
            op,
            target: CompareTarget::ModRevision(revision),
        }
    }
    pub fn create_revision(key: &str, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.to_owned(),
            op,
            target: CompareTarget::CreateRevision(revision),
        }
    }
    pub fn version(key: &str, op: CompareOp, version: i64) -> Self {
        Compare {
            key: key.to_owned(),
            op,
            target: CompareTarget::Version(version),
        }
    }
    pub fn value(key: &str, op: CompareOp, value: Bytes) -> Self {
        Compare {
            key: key.to_owned(),
            op,
            target: CompareTarget::Value(value),
        }
    }
    /// The key does not exist.
    pub fn absent(key: &str) -> Self {
        Self::create_revision(key, CompareOp::Equal, 0)
    }
    /// The key exists.
    pub fn exists(key: &str) -> Self {
        Self::create_revision(key, CompareOp::Greater, 0)
    }

    /// Evaluates the comparison against the key's current state (`None` when absent).
    pub fn evaluate(&self, current: Option<&KeyValue>) -> bool {
        match (&self.target, current) {
            (CompareTarget::Value(_), None) => false,
            (CompareTarget::Value(expected), Some(kv)) => self.op.holds(&kv.value[..], &expected[..]),
            (CompareTarget::ModRevision(expected), kv) => {
                self.op.holds(&kv.map_or(0, |kv| kv.mod_revision), expected)
            }
            (CompareTarget::CreateRevision(expected), kv) => {
                self.op.holds(&kv.map_or(0, |kv| kv.create_revision), expected)
            }
            (CompareTarget::Version(expected), kv) => self.op.holds(&kv.map_or(0, |kv| kv.version), expected),
        }
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Bytes,
        lease: Option<LeaseId>,
    },
    Delete {
        key: String,
    },
    Get {
        key: String,
    },
}

impl Op {
    pub fn put(key: &str, value: Bytes, lease: Option<LeaseId>) -> Self {
        Op::Put {
            key: key.to_owned(),
            value,
            lease,
        }
    }
    pub fn delete(key: &str) -> Self {
        Op::Delete { key: key.to_owned() }
    }
    pub fn get(key: &str) -> Self {
        Op::Get { key: key.to_owned() }
    }
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } | Op::Get { key } => key,
        }
    }
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Get { .. })
    }
}

/// An atomic transaction: if every compare holds, apply `success`, else `failure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn when(compare: Vec<Compare>) -> Self {
        Txn {
            compare,
            ..Txn::default()
        }
    }
    pub fn then(mut self, op: Op) -> Self {
        self.success.push(op);
        self
    }
    pub fn otherwise(mut self, op: Op) -> Self {
        self.failure.push(op);
        self
    }

    /// Rejects what etcd rejects: an empty key, and one key written twice in a branch.
    pub fn validate(&self) -> crate::Result<()> {
        let keys = self.compare.iter().map(|c| c.key.as_str());
        let ops = self.success.iter().chain(&self.failure).map(Op::key);
        if keys.chain(ops).any(str::is_empty) {
            return Err(crate::StoreError::InvalidArgument("key is not provided".into()));
        }
        for branch in [&self.success, &self.failure] {
            let mut written: Vec<&str> = branch.iter().filter(|op| op.is_write()).map(Op::key).collect();
            written.sort_unstable();
            if let Some(pair) = written.windows(2).find(|w| w[0] == w[1]) {
                return Err(crate::StoreError::InvalidArgument(format!(
                    "duplicate key given in txn request: {}",
                    pair[0]
                )));
            }
        }
        Ok(())
    }
}

/// The result of one operation, in the order of the executed branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// The key's value before the put, if it existed.
    Put {
        prev: Option<KeyValue>,
    },
    /// The deleted key-value (`None` when the key did not exist).
    Delete {
        prev: Option<KeyValue>,
    },
    Get {
        kv: Option<KeyValue>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store's revision after the transaction (its own when it wrote).
    pub revision: Revision,
    pub responses: Vec<OpResponse>,
}

/// What a conditional single-key write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write happened at `revision`; `prev` is the value it replaced or deleted.
    Written {
        revision: Revision,
        prev: Option<KeyValue>,
    },
    /// The precondition failed; `current` is the key's latest value (`None` when absent).
    Conflict { current: Option<KeyValue> },
}

impl WriteOutcome {
    /// Interprets a one-op transaction whose failure branch is a `Get` of the same key.
    pub fn from_txn(resp: TxnResponse) -> Self {
        let first = resp.responses.into_iter().next();
        if resp.succeeded {
            let prev = match first {
                Some(OpResponse::Put { prev }) | Some(OpResponse::Delete { prev }) => prev,
                _ => None,
            };
            WriteOutcome::Written {
                revision: resp.revision,
                prev,
            }
        } else {
            let current = match first {
                Some(OpResponse::Get { kv }) => kv,
                _ => None,
            };
            WriteOutcome::Conflict { current }
        }
    }

    pub fn is_written(&self) -> bool {
        matches!(self, WriteOutcome::Written { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For a delete, `kv` carries the key and the deleting revision
/// (`mod_revision`) with an empty value, and `prev_kv` the deleted value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn ranges_contain_what_they_name() {
        let r = KeyRange::prefix("/a/");
        assert!(r.contains(b"/a/x"));
        assert!(!r.contains(b"/a"));
        assert!(!r.contains(b"/b/"));
        assert!(KeyRange::prefix("").contains(b"anything"));
        let page = KeyRange::prefix_after("/a/", "/a/m");
        assert!(!page.contains(b"/a/m"));
        assert!(page.contains(b"/a/m0"));
        assert!(page.contains(b"/a/z"));
        assert!(KeyRange::key("k").contains(b"k") && !KeyRange::key("k").contains(b"k2"));
    }

    #[test]
    fn txn_validation_rejects_duplicates_and_empty_keys() {
        let dup = Txn::default()
            .then(Op::put("a", Bytes::new(), None))
            .then(Op::delete("a"));
        assert!(dup.validate().is_err());
        let get_and_put = Txn::default()
            .then(Op::get("a"))
            .then(Op::put("a", Bytes::new(), None));
        assert!(get_and_put.validate().is_ok());
        assert!(Txn::default().then(Op::get("")).validate().is_err());
    }

    #[test]
    fn compares_on_absent_keys_behave_as_etcd() {
        assert!(Compare::absent("k").evaluate(None));
        assert!(!Compare::exists("k").evaluate(None));
        assert!(!Compare::value("k", CompareOp::NotEqual, Bytes::from_static(b"x")).evaluate(None));
        assert!(Compare::version("k", CompareOp::Less, 1).evaluate(None));
    }
}
