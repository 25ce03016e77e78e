//! The single writer thread. It owns the write connection and all write-side state (revision,
//! leases), takes requests from a channel, and commits every transaction queued meanwhile in one
//! SQLite transaction (group commit). Each commit goes to the syncer (see `syncer`), which
//! fsyncs, then publishes the events to watchers and acknowledges the callers. A failed commit
//! rolls the whole group back, restores the in-memory state and fails every caller: nothing
//! unacknowledged is visible and nothing acknowledged is lost.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use store::{
    Event, EventKind, KeyValue, LeaseId, Op, OpResponse, Result, Revision, StoreError, Txn, TxnResponse,
};
use tokio::sync::oneshot;

use crate::schema::{MAX_OPS_PER_TXN, current_revision, last_id_of, log_id, meta, revision_of, sql_error};
use crate::syncer::{Ack, Committed, Durability, ack};

/// Most transactions committed in one group.
const MAX_GROUP: usize = 1024;
/// Bytes of keys and values written between two checkpoint requests (the WAL grows by about
/// this much, plus page overhead, between checkpoints).
const CHECKPOINT_EVERY_BYTES: usize = 8 << 20;

pub enum Request {
    Txn(Txn, oneshot::Sender<Result<TxnResponse>>),
    Compact(Revision, oneshot::Sender<Result<()>>),
    GrantLease(i64, oneshot::Sender<Result<LeaseId>>),
    KeepAlive(LeaseId, oneshot::Sender<Result<i64>>),
    RevokeLease(LeaseId, oneshot::Sender<Result<()>>),
}

struct Lease {
    ttl: i64,
    expires: Instant,
    keys: HashSet<String>,
}

pub struct Writer {
    path: PathBuf,
    conn: Connection,
    revision: Revision,
    compact_revision: Revision,
    next_lease: LeaseId,
    leases: HashMap<LeaseId, Lease>,
    /// Commits go here to be made durable, published and acknowledged.
    syncer: Sender<Committed>,
    durability: Arc<Durability>,
    /// Wakes the checkpointer thread; a full channel means a checkpoint is already pending.
    checkpoint: SyncSender<()>,
    written_since_checkpoint: usize,
}

/// Changes to in-memory lease bookkeeping made by a group, applied only once it commits.
#[derive(Default)]
struct Staged {
    events: Vec<Event>,
    /// (key, lease it had, lease it has now).
    lease_moves: Vec<(String, Option<LeaseId>, Option<LeaseId>)>,
}

impl Writer {
    pub fn new(
        path: PathBuf,
        conn: Connection,
        syncer: Sender<Committed>,
        durability: Arc<Durability>,
        checkpoint: SyncSender<()>,
    ) -> Result<Self> {
        let err = |e| sql_error(&path, e);
        let revision = current_revision(&conn).map_err(err)?;
        let compact_revision = meta(&conn, "compact_revision").map_err(err)?;
        let next_lease = meta(&conn, "next_lease").map_err(err)?;
        // As etcd does after a restart, every lease gets its full TTL again.
        let now = Instant::now();
        let mut leases: HashMap<LeaseId, Lease> = HashMap::new();
        {
            let mut stmt = conn.prepare("SELECT id, ttl FROM lease").map_err(err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(err)?;
            for row in rows {
                let (id, ttl) = row.map_err(err)?;
                leases.insert(
                    id,
                    Lease {
                        ttl,
                        expires: now + secs(ttl),
                        keys: HashSet::new(),
                    },
                );
            }
            let mut stmt = conn
                .prepare("SELECT l.key, l.lease FROM current c JOIN log l ON l.id = c.id WHERE l.lease != 0")
                .map_err(err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(err)?;
            for row in rows {
                let (key, lease) = row.map_err(err)?;
                if let Some(l) = leases.get_mut(&lease) {
                    l.keys.insert(String::from_utf8_lossy(&key).into_owned());
                }
            }
        }
        durability
            .published
            .store(revision, std::sync::atomic::Ordering::Release);
        Ok(Writer {
            path,
            conn,
            revision,
            compact_revision,
            next_lease,
            leases,
            syncer,
            durability,
            checkpoint,
            written_since_checkpoint: 0,
        })
    }

    /// Serves requests until every sender is gone.
    pub fn run(mut self, requests: Receiver<Request>) {
        let mut pending: Option<Request> = None;
        loop {
            let first = match pending.take() {
                Some(req) => req,
                None => {
                    let timeout = self
                        .next_expiry()
                        .map(|t| t.saturating_duration_since(Instant::now()));
                    let received = match timeout {
                        Some(timeout) => requests.recv_timeout(timeout),
                        None => requests.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match received {
                        Ok(req) => req,
                        Err(RecvTimeoutError::Timeout) => {
                            self.expire_leases();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            match first {
                Request::Txn(txn, reply) => {
                    let mut group = vec![(txn, reply)];
                    while group.len() < MAX_GROUP {
                        match requests.try_recv() {
                            Ok(Request::Txn(txn, reply)) => group.push((txn, reply)),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group);
                }
                Request::Compact(rev, reply) => {
                    let result = self.compact(rev);
                    self.hand_over(Vec::new(), vec![ack(reply, result)]);
                }
                Request::GrantLease(ttl, reply) => {
                    let result = self.grant(ttl);
                    self.hand_over(Vec::new(), vec![ack(reply, result)]);
                }
                Request::KeepAlive(id, reply) => {
                    let _ = reply.send(match self.leases.get_mut(&id) {
                        Some(lease) => {
                            lease.expires = Instant::now() + secs(lease.ttl);
                            Ok(lease.ttl)
                        }
                        None => Err(StoreError::LeaseNotFound(id)),
                    });
                }
                Request::RevokeLease(id, reply) => match self.revoke(id) {
                    Ok(events) => self.hand_over(events, vec![ack(reply, Ok(()))]),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                },
            }
        }
    }

    fn sql(&self, err: rusqlite::Error) -> StoreError {
        sql_error(&self.path, err)
    }

    /// Runs `body` in one SQLite write transaction; on any failure rolls back and restores the
    /// revision. The caller applies in-memory side effects only after this returns Ok.
    fn in_transaction<T>(&mut self, body: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(err) = self.durability.failure(&self.path) {
            return Err(err);
        }
        let revision = self.revision;
        let result = self.try_transaction(body);
        if result.is_err() {
            // Harmless when SQLite already rolled back by itself (e.g. on SQLITE_FULL).
            let _ = self.conn.execute_batch("ROLLBACK");
            self.revision = revision;
        }
        result
    }

    fn try_transaction<T>(&mut self, body: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        // Cached statements: BEGIN and COMMIT run once per group, parsing them costs more.
        self.conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| self.sql(e))?;
        let value = body(self)?;
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| self.sql(e))?;
        Ok(value)
    }

    fn commit_group(&mut self, group: Vec<(Txn, oneshot::Sender<Result<TxnResponse>>)>) {
        let mut staged = Staged::default();
        let committed = self.in_transaction(|w| {
            let mut results = Vec::with_capacity(group.len());
            for (txn, _) in &group {
                results.push(w.apply(txn, &mut staged)?);
            }
            Ok(results)
        });
        match committed {
            Ok(results) => {
                self.apply_lease_moves(staged.lease_moves);
                let acks = group
                    .into_iter()
                    .zip(results)
                    .map(|((_, reply), result)| ack(reply, result))
                    .collect();
                self.hand_over(staged.events, acks);
            }
            Err(err) => {
                tracing::error!(%err, "sqlite store: group commit failed; {} transaction(s) rejected", group.len());
                for (_, reply) in group {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn apply_lease_moves(&mut self, moves: Vec<(String, Option<LeaseId>, Option<LeaseId>)>) {
        for (key, old, new) in moves {
            if let Some(lease) = old.and_then(|id| self.leases.get_mut(&id)) {
                lease.keys.remove(&key);
            }
            if let Some(lease) = new.and_then(|id| self.leases.get_mut(&id)) {
                lease.keys.insert(key);
            }
        }
    }

    /// Passes a commit (or a request that wrote nothing) to the syncer, which answers the callers
    /// once everything before it is durable. Also asks for a checkpoint every so often.
    fn hand_over(&mut self, events: Vec<Event>, acks: Vec<Ack>) {
        self.written_since_checkpoint += events
            .iter()
            .map(|e| e.kv.key.len() + e.kv.value.len() + 64)
            .sum::<usize>();
        if self.written_since_checkpoint >= CHECKPOINT_EVERY_BYTES {
            self.written_since_checkpoint = 0;
            let _ = self.checkpoint.try_send(());
        }
        let commit = Committed {
            revision: self.revision,
            events,
            acks,
        };
        if let Err(std::sync::mpsc::SendError(commit)) = self.syncer.send(commit) {
            for ack in commit.acks {
                ack(Err(StoreError::Closed));
            }
        }
    }

    /// Applies one transaction inside the open SQLite transaction. Request errors (bad input,
    /// unknown lease) are returned inside Ok so they fail only this transaction; SQL errors are
    /// returned as Err and fail the group.
    fn apply(&mut self, txn: &Txn, staged: &mut Staged) -> Result<Result<TxnResponse>> {
        if let Err(e) = txn.validate() {
            return Ok(Err(e));
        }
        let mut succeeded = true;
        for compare in &txn.compare {
            let current = self.lookup(compare.key.as_bytes())?;
            if !compare.evaluate(current.as_ref().map(|(kv, _)| kv)) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &txn.success } else { &txn.failure };
        if ops.len() >= MAX_OPS_PER_TXN {
            return Ok(Err(StoreError::InvalidArgument(format!(
                "too many operations in txn request: {}",
                ops.len()
            ))));
        }
        for op in ops {
            if let Op::Put { lease: Some(id), .. } = op
                && !self.leases.contains_key(id)
            {
                return Ok(Err(StoreError::LeaseNotFound(*id)));
            }
        }
        let rev = self.revision + 1;
        let mut wrote = false;
        let mut responses = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let response = match op {
                Op::Get { key } => OpResponse::Get {
                    kv: self.lookup(key.as_bytes())?.map(|(kv, _)| kv),
                },
                Op::Put { key, value, lease } => {
                    let prev = self.lookup(key.as_bytes())?;
                    let id = log_id(rev, index);
                    let (create_rev, version) = match &prev {
                        Some((kv, _)) => (kv.create_revision, kv.version + 1),
                        None => (rev, 1),
                    };
                    let prev_id = prev.as_ref().map(|(_, id)| *id);
                    self.conn
                        .prepare_cached(
                            "INSERT INTO log (id, key, value, create_rev, version, lease, deleted, prev_id)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                id,
                                key.as_bytes(),
                                &value[..],
                                create_rev,
                                version,
                                lease.unwrap_or(0),
                                prev_id
                            ])
                        })
                        .map_err(|e| self.sql(e))?;
                    self.conn
                        .prepare_cached("INSERT OR REPLACE INTO current (key, id) VALUES (?1, ?2)")
                        .and_then(|mut s| s.execute(params![key.as_bytes(), id]))
                        .map_err(|e| self.sql(e))?;
                    let prev_kv = prev.map(|(kv, _)| kv);
                    let old_lease = prev_kv.as_ref().and_then(|kv| kv.lease);
                    if old_lease != *lease {
                        staged.lease_moves.push((key.clone(), old_lease, *lease));
                    }
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision: create_rev,
                        mod_revision: rev,
                        version,
                        lease: *lease,
                    };
                    staged.events.push(Event {
                        kind: EventKind::Put,
                        kv,
                        prev_kv: prev_kv.clone(),
                    });
                    wrote = true;
                    OpResponse::Put { prev: prev_kv }
                }
                Op::Delete { key } => match self.lookup(key.as_bytes())? {
                    None => OpResponse::Delete { prev: None },
                    Some((prev, prev_id)) => {
                        self.delete_row(key, rev, index, prev_id, &prev, staged)?;
                        wrote = true;
                        OpResponse::Delete { prev: Some(prev) }
                    }
                },
            };
            responses.push(response);
        }
        if wrote {
            self.revision = rev;
        }
        Ok(Ok(TxnResponse {
            succeeded,
            revision: self.revision,
            responses,
        }))
    }

    fn delete_row(
        &mut self,
        key: &str,
        rev: Revision,
        index: usize,
        prev_id: i64,
        prev: &KeyValue,
        staged: &mut Staged,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO log (id, key, value, create_rev, version, lease, deleted, prev_id)
                 VALUES (?1, ?2, x'', 0, 0, 0, 1, ?3)",
            )
            .and_then(|mut s| s.execute(params![log_id(rev, index), key.as_bytes(), prev_id]))
            .map_err(|e| self.sql(e))?;
        self.conn
            .prepare_cached("DELETE FROM current WHERE key = ?1")
            .and_then(|mut s| s.execute([key.as_bytes()]))
            .map_err(|e| self.sql(e))?;
        if prev.lease.is_some() {
            staged.lease_moves.push((key.to_owned(), prev.lease, None));
        }
        let tombstone = KeyValue {
            key: key.to_owned(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
            lease: None,
        };
        staged.events.push(Event {
            kind: EventKind::Delete,
            kv: tombstone,
            prev_kv: Some(prev.clone()),
        });
        Ok(())
    }

    /// The key's latest live value and its log id, as seen inside the open transaction.
    fn lookup(&self, key: &[u8]) -> Result<Option<(KeyValue, i64)>> {
        self.conn
            .prepare_cached(
                "SELECT l.id, l.value, l.create_rev, l.version, l.lease FROM current c JOIN log l ON l.id = c.id
                 WHERE c.key = ?1",
            )
            .and_then(|mut s| {
                s.query_row([key], |r| {
                    let id: i64 = r.get(0)?;
                    let lease: i64 = r.get(4)?;
                    let kv = KeyValue {
                        key: String::from_utf8_lossy(key).into_owned(),
                        value: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                        create_revision: r.get(2)?,
                        mod_revision: revision_of(id),
                        version: r.get(3)?,
                        lease: (lease != 0).then_some(lease),
                    };
                    Ok((kv, id))
                })
                .optional()
            })
            .map_err(|e| self.sql(e))
    }

    /// Deletes the history at and below `rev` that no read at or after `rev` needs: rows
    /// superseded by a later row at or below `rev`, and tombstones at or below `rev` (but the
    /// newest row of all).
    fn compact(&mut self, rev: Revision) -> Result<()> {
        if rev <= self.compact_revision {
            return Err(StoreError::Compacted {
                requested: rev,
                compact_revision: Some(self.compact_revision),
            });
        }
        // Only what readers can see may be compacted: never past the durable revision.
        let durable = self
            .durability
            .published
            .load(std::sync::atomic::Ordering::Acquire);
        if rev > durable {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current: durable,
            });
        }
        let (from, to) = (last_id_of(self.compact_revision), last_id_of(rev));
        let started = Instant::now();
        let removed = self.in_transaction(|w| {
            let superseded = w
                .conn
                .execute(
                    "DELETE FROM log WHERE id IN
                       (SELECT prev_id FROM log WHERE id > ?1 AND id <= ?2 AND prev_id IS NOT NULL)",
                    [from, to],
                )
                .map_err(|e| w.sql(e))?;
            let tombstones = w
                .conn
                .execute(
                    // The newest row stays even as a tombstone: it carries the revision.
                    "DELETE FROM log WHERE id > ?1 AND id <= ?2 AND deleted = 1
                       AND id < (SELECT max(id) FROM log)",
                    [from, to],
                )
                .map_err(|e| w.sql(e))?;
            w.conn
                .execute(
                    "UPDATE meta SET value = ?1 WHERE name = 'compact_revision'",
                    [rev],
                )
                .map_err(|e| w.sql(e))?;
            Ok(superseded + tombstones)
        })?;
        self.compact_revision = rev;
        tracing::debug!(revision = rev, removed, elapsed = ?started.elapsed(), "sqlite store compacted");
        Ok(())
    }

    fn grant(&mut self, ttl: i64) -> Result<LeaseId> {
        let ttl = ttl.max(1);
        let id = self.next_lease;
        self.in_transaction(|w| {
            w.conn
                .execute("INSERT INTO lease (id, ttl) VALUES (?1, ?2)", [id, ttl])
                .map_err(|e| w.sql(e))?;
            w.conn
                .execute("UPDATE meta SET value = ?1 WHERE name = 'next_lease'", [id + 1])
                .map_err(|e| w.sql(e))?;
            Ok(())
        })?;
        self.next_lease = id + 1;
        self.leases.insert(
            id,
            Lease {
                ttl,
                expires: Instant::now() + secs(ttl),
                keys: HashSet::new(),
            },
        );
        Ok(id)
    }

    /// Deletes a lease and all its keys in one transaction (one revision, as etcd); returns the
    /// delete events for the caller to hand over.
    fn revoke(&mut self, id: LeaseId) -> Result<Vec<Event>> {
        let Some(lease) = self.leases.get(&id) else {
            return Err(StoreError::LeaseNotFound(id));
        };
        let mut keys: Vec<String> = lease.keys.iter().cloned().collect();
        keys.sort();
        let mut staged = Staged::default();
        self.in_transaction(|w| {
            let rev = w.revision + 1;
            for (index, key) in keys.iter().enumerate() {
                if let Some((prev, prev_id)) = w.lookup(key.as_bytes())? {
                    w.delete_row(key, rev, index, prev_id, &prev, &mut staged)?;
                }
            }
            if !staged.events.is_empty() {
                w.revision = rev;
            }
            w.conn
                .execute("DELETE FROM lease WHERE id = ?1", [id])
                .map_err(|e| w.sql(e))?;
            Ok(())
        })?;
        self.leases.remove(&id);
        Ok(staged.events)
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|l| l.expires).min()
    }

    fn expire_leases(&mut self) {
        let now = Instant::now();
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            match self.revoke(id) {
                Ok(events) => self.hand_over(events, Vec::new()),
                Err(err) => {
                    // Try again shortly rather than spinning on a failing disk.
                    tracing::warn!(%err, lease = id, "sqlite store: cannot expire lease");
                    if let Some(lease) = self.leases.get_mut(&id) {
                        lease.expires = now + Duration::from_secs(1);
                    }
                }
            }
        }
    }
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

/// Copies WAL frames into the database file whenever the writer asks, off the commit path, so
/// that commits never stall on a checkpoint. PASSIVE: never blocks the writer or readers.
pub fn run_checkpointer(path: PathBuf, conn: Connection, requests: Receiver<()>) {
    for () in requests {
        let started = Instant::now();
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((frames, copied)) => {
                tracing::debug!(frames, copied, elapsed = ?started.elapsed(), "sqlite store checkpoint")
            }
            Err(err) => tracing::warn!(%err, path = %path.display(), "sqlite store checkpoint failed"),
        }
    }
}
