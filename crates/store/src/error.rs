use crate::{LeaseId, Revision};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every way a store operation can fail. Messages are written for an operator's log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The requested revision's history was compacted away; re-list and watch from the list.
    #[error("required revision {requested} has been compacted{}", .compact_revision.map(|c| format!(" (compacted through {c})")).unwrap_or_default())]
    Compacted {
        requested: Revision,
        compact_revision: Option<Revision>,
    },
    #[error("required revision {requested} is a future revision (current is {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("invalid datastore URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// The backend cannot be reached or did not answer in time; the operation may be retried.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// The data at the given location is not an rkube store, or is damaged. Nothing was changed.
    #[error("not a usable rkube datastore: {0}")]
    Corrupt(String),
    /// The backend failed to read or write (disk full, read-only file system, I/O error).
    /// The operation had no effect.
    #[error("datastore I/O failure: {0}")]
    Storage(String),
    /// The store was shut down.
    #[error("datastore is closed")]
    Closed,
}

impl StoreError {
    /// True for failures worth retrying unchanged later (the data is fine, the path to it is not).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Storage(_))
    }
}
