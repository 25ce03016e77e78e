//! Reads on a snapshot: ranges (latest or past revision) and history pages for watches.
//! Every function runs inside one read transaction, so what it returns is one consistent state.

use std::collections::BTreeMap;

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params_from_iter};
use store::{
    Event, EventKind, KeyRange, KeyValue, RangeRequest, RangeResponse, Result, Revision, StoreError,
};

use crate::schema::{current_revision, last_id_of, meta, revision_of};

/// Revisions read per history page: bounds the memory a catching-up watcher holds at once.
pub const HISTORY_PAGE_REVISIONS: i64 = 512;

/// The store's counters as of a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    /// The newest revision readers may see: durable (fsynced) and in this snapshot. Commits
    /// after it are in the database but not yet acknowledged, so reads roll them back.
    pub revision: Revision,
    /// The newest revision stored in this snapshot (>= `revision`).
    pub stored: Revision,
    pub compact_revision: Revision,
}

/// Runs `f` in a read transaction (a consistent snapshot across statements). `durable` is the
/// newest revision known to be fsynced.
pub fn in_snapshot<T>(
    conn: &Connection,
    durable: Revision,
    f: impl FnOnce(&Connection, Snapshot) -> Result<T>,
) -> rusqlite::Result<Result<T>> {
    conn.prepare_cached("BEGIN DEFERRED")?.execute([])?;
    let result = (|| {
        let stored = current_revision(conn)?;
        let snap = Snapshot {
            revision: stored.min(durable),
            stored,
            compact_revision: meta(conn, "compact_revision")?,
        };
        Ok(f(conn, snap))
    })();
    let _ = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
    result
}

/// `column` restricted to a key range, as SQL and its parameters.
pub fn range_clause(range: &KeyRange, column: &str) -> (String, Vec<Value>) {
    let start = Value::Blob(range.start.clone());
    if range.end.is_empty() {
        (format!("{column} = ?"), vec![start])
    } else if range.end == [0] {
        (format!("{column} >= ?"), vec![start])
    } else {
        (
            format!("{column} >= ? AND {column} < ?"),
            vec![start, Value::Blob(range.end.clone())],
        )
    }
}

/// Columns of a live row: id, key, value, create_rev, version, lease.
const KV_COLUMNS: &str = "l.id, l.key, l.value, l.create_rev, l.version, l.lease";

fn kv_at(row: &Row<'_>, first: usize) -> rusqlite::Result<KeyValue> {
    let id: i64 = row.get(first)?;
    let key: Vec<u8> = row.get(first + 1)?;
    let value: Vec<u8> = row.get(first + 2)?;
    let lease: i64 = row.get(first + 5)?;
    Ok(KeyValue {
        key: String::from_utf8(key).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        value: Bytes::from(value),
        create_revision: row.get(first + 3)?,
        mod_revision: revision_of(id),
        version: row.get(first + 4)?,
        lease: (lease != 0).then_some(lease),
    })
}

pub fn range(conn: &Connection, snap: Snapshot, req: &RangeRequest) -> Result<RangeResponse> {
    let at = req.revision.unwrap_or(snap.revision);
    if at > snap.revision {
        return Err(StoreError::FutureRevision {
            requested: at,
            current: snap.revision,
        });
    }
    if at < snap.compact_revision {
        return Err(StoreError::Compacted {
            requested: at,
            compact_revision: Some(snap.compact_revision),
        });
    }
    let mut resp = if at == snap.stored {
        range_latest(conn, req)
    } else {
        range_past(conn, req, at)
    }
    .map_err(|e| StoreError::Storage(e.to_string()))?;
    resp.revision = snap.revision;
    Ok(resp)
}

fn range_latest(conn: &Connection, req: &RangeRequest) -> rusqlite::Result<RangeResponse> {
    let (clause, mut params) = range_clause(&req.range, "c.key");
    let count = |params: &[Value]| -> rusqlite::Result<i64> {
        conn.prepare_cached(&format!("SELECT count(*) FROM current c WHERE {clause}"))?
            .query_row(params_from_iter(params), |r| r.get(0))
    };
    if req.count_only {
        let count = count(&params)?;
        return Ok(RangeResponse {
            kvs: Vec::new(),
            count,
            more: false,
            revision: 0,
        });
    }
    let limit = req.limit.map_or(-1, |l| l as i64);
    let sql = format!(
        "SELECT {KV_COLUMNS} FROM current c JOIN log l ON l.id = c.id WHERE {clause} ORDER BY c.key LIMIT ?"
    );
    params.push(Value::Integer(limit));
    let kvs: Vec<KeyValue> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(&params), |r| kv_at(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    params.pop();
    let count = if limit >= 0 && kvs.len() as i64 == limit {
        count(&params)?
    } else {
        kvs.len() as i64
    };
    Ok(RangeResponse {
        more: (kvs.len() as i64) < count,
        kvs,
        count,
        revision: 0,
    })
}

/// The state at revision `at`: the latest state, with every key written after `at` rolled back
/// through its first later row's `prev_id`. Costs O(writes after `at` + keys returned): the
/// latest state is read lazily in key order and merged with the rolled-back keys.
fn range_past(conn: &Connection, req: &RangeRequest, at: Revision) -> rusqlite::Result<RangeResponse> {
    // Keys written after `at` -> their state at `at` (None: absent then).
    let (clause, mut params) = range_clause(&req.range, "key");
    params.insert(0, Value::Integer(last_id_of(at)));
    let sql = format!("SELECT key, prev_id FROM log WHERE id > ? AND {clause} ORDER BY id");
    let mut first_after: BTreeMap<Vec<u8>, Option<i64>> = BTreeMap::new();
    for row in conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(&params), |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Option<i64>>(1)?))
        })?
    {
        let (key, prev) = row?;
        first_after.entry(key).or_insert(prev);
    }
    let mut by_id = conn.prepare_cached(&format!("SELECT {KV_COLUMNS} FROM log l WHERE l.id = ?"))?;
    let mut rolled_back: BTreeMap<Vec<u8>, Option<KeyValue>> = BTreeMap::new();
    for (key, prev) in first_after {
        let kv = match prev {
            Some(id) => Some(by_id.query_row([id], |r| kv_at(r, 0))?),
            None => None,
        };
        rolled_back.insert(key, kv);
    }

    // Latest rows newer than `at` belong to rolled-back keys: they are skipped, and counted.
    let (clause, mut params) = range_clause(&req.range, "c.key");
    let count_sql =
        format!("SELECT count(*), count(CASE WHEN c.id > ? THEN 1 END) FROM current c WHERE {clause}");
    params.insert(0, Value::Integer(last_id_of(at)));
    let (latest_count, newer): (i64, i64) = conn
        .prepare_cached(&count_sql)?
        .query_row(params_from_iter(&params), |r| Ok((r.get(0)?, r.get(1)?)))?;
    params.remove(0);
    let count = latest_count - newer + rolled_back.values().flatten().count() as i64;
    if req.count_only {
        return Ok(RangeResponse {
            kvs: Vec::new(),
            count,
            more: false,
            revision: 0,
        });
    }

    // Merge, in key order, the latest rows not written after `at` with the rolled-back states;
    // the two never share a key.
    let limit = req.limit.unwrap_or(usize::MAX);
    let sql =
        format!("SELECT {KV_COLUMNS} FROM current c JOIN log l ON l.id = c.id WHERE {clause} ORDER BY c.key");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut latest = stmt
        .query_map(params_from_iter(&params), |r| kv_at(r, 0))?
        .filter(|kv| !matches!(kv, Ok(kv) if kv.mod_revision > at))
        .peekable();
    let mut older = rolled_back.into_values().flatten().peekable();
    let mut kvs = Vec::new();
    while kvs.len() < limit {
        let take_latest = match (latest.peek(), older.peek()) {
            (None, None) => break,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) => false,
            (Some(Ok(l)), Some(o)) => l.key < o.key,
        };
        match take_latest {
            true => kvs.push(latest.next().expect("peeked")?),
            false => kvs.push(older.next().expect("peeked")),
        }
    }
    Ok(RangeResponse {
        more: (kvs.len() as i64) < count,
        kvs,
        count,
        revision: 0,
    })
}

/// A page of history for a watch.
pub struct HistoryPage {
    pub events: Vec<Event>,
    /// Every revision up to here has been read (events outside the range were skipped).
    pub through: Revision,
    /// The snapshot's revision: when `through` reaches it, the watcher has caught up.
    pub snapshot: Revision,
}

/// The events in `range` with revisions in `(after, after + HISTORY_PAGE_REVISIONS]`.
pub fn history(conn: &Connection, snap: Snapshot, range: &KeyRange, after: Revision) -> Result<HistoryPage> {
    if after < snap.compact_revision {
        return Err(StoreError::Compacted {
            requested: after + 1,
            compact_revision: Some(snap.compact_revision),
        });
    }
    let through = snap.revision.min(after + HISTORY_PAGE_REVISIONS).max(after);
    let page = || -> rusqlite::Result<Vec<Event>> {
        let (clause, mut params) = range_clause(range, "l.key");
        params.insert(0, Value::Integer(last_id_of(after)));
        params.insert(1, Value::Integer(last_id_of(through)));
        let sql = format!(
            "SELECT {KV_COLUMNS}, l.deleted, p.id, p.key, p.value, p.create_rev, p.version, p.lease
             FROM log l LEFT JOIN log p ON p.id = l.prev_id
             WHERE l.id > ? AND l.id <= ? AND {clause} ORDER BY l.id"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(&params), |r| {
            let kv = kv_at(r, 0)?;
            let deleted: bool = r.get(6)?;
            let prev_kv = match r.get::<_, Option<i64>>(7)? {
                Some(_) => Some(kv_at(r, 7)?),
                None => None,
            };
            Ok(if deleted {
                let tombstone = KeyValue {
                    value: Bytes::new(),
                    create_revision: 0,
                    version: 0,
                    lease: None,
                    ..kv
                };
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone,
                    prev_kv,
                }
            } else {
                Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv,
                }
            })
        })?;
        rows.collect()
    };
    let events = page().map_err(|e| StoreError::Storage(e.to_string()))?;
    Ok(HistoryPage {
        events,
        through,
        snapshot: snap.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use store::Store;

    /// Commits newer than the durable revision are in the database but must stay invisible.
    #[tokio::test]
    async fn reads_stop_at_the_durable_revision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let durable = {
            let store = SqliteStore::open(&path).unwrap();
            store.put("/k/a", "1".into(), None).await.unwrap();
            let durable = store.put("/k/b", "1".into(), None).await.unwrap();
            // Pretend these were committed but not yet fsynced.
            store.put("/k/a", "2".into(), None).await.unwrap();
            store.delete("/k/b", None).await.unwrap();
            store.put("/k/c", "1".into(), None).await.unwrap();
            durable
        };
        let conn = crate::schema::open_reader(&path).unwrap();
        let all = RangeRequest::new(KeyRange::prefix("/k/"));
        let resp = in_snapshot(&conn, durable, |conn, snap| range(conn, snap, &all))
            .unwrap()
            .unwrap();
        assert_eq!(resp.revision, durable);
        let seen: Vec<(&str, &[u8])> = resp
            .kvs
            .iter()
            .map(|kv| (kv.key.as_str(), &kv.value[..]))
            .collect();
        assert_eq!(seen, [("/k/a", &b"1"[..]), ("/k/b", &b"1"[..])]);
        let newer = all.clone().at_revision(durable + 1);
        let err = in_snapshot(&conn, durable, |conn, snap| range(conn, snap, &newer)).unwrap();
        assert!(matches!(err, Err(StoreError::FutureRevision { .. })), "{err:?}");
        let page = in_snapshot(&conn, durable, |conn, snap| {
            history(conn, snap, &KeyRange::prefix("/k/"), 0)
        })
        .unwrap()
        .unwrap();
        assert_eq!(page.events.len(), 2, "history stops at the durable revision too");
    }
}
