//! The embedded default backend: one SQLite file in WAL mode.
//!
//! - One writer thread owns the write connection and commits queued transactions in groups;
//!   a sync thread fsyncs the WAL for all commits handed over meanwhile and only then answers
//!   the callers and notifies watchers: acknowledged means durable. See [`writer`], [`syncer`].
//! - Reads run on a small pool of reader connections on blocking threads; WAL lets them
//!   proceed while the writer commits. See [`read`].
//! - Watch is push-based: the sync thread broadcasts each durable group's events; a watcher
//!   replays history from the `log` table first, and falls back to it whenever it lags
//!   behind the broadcast, so it never misses an event. See [`watch`].
//! - A lock file next to the database keeps a second process from opening it for writing.

mod read;
mod schema;
mod syncer;
mod watch;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::Connection;
use store::{
    KeyRange, LeaseId, RangeRequest, RangeResponse, Result, Revision, Store, StoreError, Txn, TxnResponse,
    WatchStream,
};
use tokio::sync::{Semaphore, broadcast, oneshot};

use syncer::{Durability, EventBatch};
use writer::{Request, Writer};

/// Committed groups a watcher may fall behind before it re-reads history from the database.
const WATCH_BUFFER_GROUPS: usize = 1024;
/// Reads running at once, each on its own connection and blocking thread; more wait their turn
/// (two cores gain nothing from more, and each connection has its own page cache).
const MAX_READERS: usize = 8;

/// A [`Store`] in one SQLite file. Cloning shares the same open store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    requests: Option<mpsc::Sender<Request>>,
    events: broadcast::Sender<EventBatch>,
    /// Idle reader connections.
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    durability: Arc<Durability>,
    writer: Option<JoinHandle<()>>,
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; wait so the file is released on return.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`. The directory must exist. A file that is not an
    /// rkube store is refused untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::Storage(format!(
                "cannot open {}: directory {} does not exist",
                path.display(),
                dir.display()
            )));
        }
        if path.exists() && !path.is_file() {
            return Err(StoreError::Storage(format!(
                "cannot open {}: not a regular file",
                path.display()
            )));
        }
        let lock = lock_file(&path)?;
        let conn = schema::open_writer(&path)?;
        let reader = schema::open_reader(&path)?;
        let (events, _) = broadcast::channel(WATCH_BUFFER_GROUPS);
        let durability = Arc::new(Durability {
            published: AtomicI64::new(0),
            failed: AtomicBool::new(false),
        });
        let (wal_path, wal) = open_wal(&path, &dir)?;
        let (syncer, commits) = mpsc::channel();
        let (syncer_events, syncer_durability) = (events.clone(), durability.clone());
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || syncer::run_syncer(wal_path, wal, commits, syncer_events, syncer_durability))
            .map_err(|e| StoreError::Storage(format!("cannot start the sync thread: {e}")))?;
        let (checkpoint, checkpoint_requests) = mpsc::sync_channel(1);
        let checkpointer = schema::open_checkpointer(&path)?;
        let checkpointer_path = path.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || writer::run_checkpointer(checkpointer_path, checkpointer, checkpoint_requests))
            .map_err(|e| StoreError::Storage(format!("cannot start the checkpoint thread: {e}")))?;
        let writer = Writer::new(path.clone(), conn, syncer, durability.clone(), checkpoint)?;
        let (requests, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::Storage(format!("cannot start the writer thread: {e}")))?;
        let revision = durability.published.load(Ordering::Acquire);
        tracing::info!(path = %path.display(), revision, "sqlite store open");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                requests: Some(requests),
                events,
                readers: Mutex::new(vec![reader]),
                read_permits: Semaphore::new(MAX_READERS),
                durability,
                writer: Some(thread),
                _lock: lock,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn request<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let sender = self.inner.requests.as_ref().ok_or(StoreError::Closed)?;
        sender.send(make(reply)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Inner {
    /// Runs a read on a pooled connection on a blocking thread.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection, read::Snapshot) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .read_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => schema::open_reader(&inner.path)?,
            };
            let durable = inner.durability.published.load(Ordering::Acquire);
            let result = read::in_snapshot(&conn, durable, f).map_err(|e| schema::sql_error(&inner.path, e));
            inner.readers.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            result?
        })
        .await
        .map_err(|e| StoreError::Storage(format!("read task failed: {e}")))?
    }
}

/// Opens the WAL file for the syncer's fsyncs (creating it, as SQLite would, if it does not exist
/// yet) and makes sure its directory entry is durable too.
fn open_wal(path: &Path, dir: &Path) -> Result<(PathBuf, File)> {
    let wal_path = PathBuf::from(format!("{}-wal", path.display()));
    let wal = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&wal_path)
        .and_then(|wal| File::open(dir)?.sync_all().map(|()| wal))
        .map_err(|e| StoreError::Storage(format!("cannot open {}: {e}", wal_path.display())))?;
    Ok((wal_path, wal))
}

fn lock_file(path: &Path) -> Result<File> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Storage(format!("cannot create lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Storage(format!(
            "{} is in use by another process (lock file {})",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Storage(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.inner
            .read(move |conn, snap| read::range(conn, snap, &req))
            .await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.request(|reply| Request::Txn(txn, reply)).await
    }

    async fn watch(&self, range: KeyRange, after: Revision) -> Result<WatchStream> {
        Ok(watch::stream(self.inner.clone(), range, after))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.request(|reply| Request::Compact(revision, reply)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        if self.inner.requests.is_none() {
            return Err(StoreError::Closed);
        }
        Ok(self.inner.durability.published.load(Ordering::Acquire))
    }

    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId> {
        self.request(|reply| Request::GrantLease(ttl_seconds, reply))
            .await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<i64> {
        self.request(|reply| Request::KeepAlive(lease, reply)).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.request(|reply| Request::RevokeLease(lease, reply)).await
    }
}
