//! Making commits durable, off the writer's path. The writer commits with
//! `synchronous=NORMAL` (the WAL frames are written, not yet fsynced) and hands each commit's
//! events and acknowledgements here; this thread fsyncs the WAL once for everything handed over
//! meanwhile, and only then publishes the revision to readers, the events to watchers, and
//! answers the callers. While it waits for the disk the writer already applies the next group,
//! so CPU work and fsync overlap instead of taking turns.
//!
//! If an fsync fails, the page cache can no longer be trusted to reach the disk (the kernel may
//! have dropped the dirty pages), so the store refuses every later write until it is reopened.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::Receiver;

use store::{Event, Result, Revision, StoreError};
use tokio::sync::broadcast;

/// A committed group's events, in revision order, as watchers receive them.
pub type EventBatch = Arc<Vec<Event>>;

/// Answers one caller once its commit is durable (or fails it).
pub type Ack = Box<dyn FnOnce(Result<()>) + Send>;

/// An acknowledgement that sends `result` to `reply` once the commit is durable.
pub fn ack<T: Send + 'static>(reply: tokio::sync::oneshot::Sender<Result<T>>, result: Result<T>) -> Ack {
    Box::new(move |synced: Result<()>| {
        let _ = reply.send(synced.and(result));
    })
}

/// One commit (or a request that wrote nothing) waiting for the fsync.
pub struct Committed {
    /// The store's revision after this commit.
    pub revision: Revision,
    pub events: Vec<Event>,
    pub acks: Vec<Ack>,
}

/// State shared by the syncer with the writer and readers.
pub struct Durability {
    /// The newest fsynced revision: what readers, watchers and `current_revision` see.
    pub published: AtomicI64,
    /// Set once an fsync failed.
    pub failed: AtomicBool,
}

impl Durability {
    pub fn failure(&self, path: &std::path::Path) -> Option<StoreError> {
        self.failed.load(Ordering::Acquire).then(|| {
            StoreError::Storage(format!(
                "{}: an earlier fsync failed; reopen the store to continue",
                path.display()
            ))
        })
    }
}

pub fn run_syncer(
    wal_path: PathBuf,
    wal: File,
    committed: Receiver<Committed>,
    events: broadcast::Sender<EventBatch>,
    durability: Arc<Durability>,
) {
    while let Ok(first) = committed.recv() {
        let batch: Vec<Committed> = std::iter::once(first).chain(committed.try_iter()).collect();
        let synced = match durability.failure(&wal_path) {
            Some(err) => Err(err),
            None => wal.sync_data().map_err(|e| {
                durability.failed.store(true, Ordering::Release);
                tracing::error!(error = %e, path = %wal_path.display(), "sqlite store: fsync failed; refusing writes");
                StoreError::Storage(format!("cannot fsync {}: {e}", wal_path.display()))
            }),
        };
        for commit in batch {
            if synced.is_ok() {
                durability.published.store(commit.revision, Ordering::Release);
                if !commit.events.is_empty() {
                    // No receiver is not an error: nobody watches yet.
                    let _ = events.send(Arc::new(commit.events));
                }
            }
            for ack in commit.acks {
                ack(synced.clone());
            }
        }
    }
}
