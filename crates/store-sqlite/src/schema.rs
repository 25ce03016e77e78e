//! Opening a database file: checks that refuse anything that is not an rkube store (nothing is
//! written to a foreign or damaged file), the schema, and the connection settings.
//!
//! Layout (no index beyond the primary keys, so a write costs two B-tree inserts):
//! - `log`: every write ever made (until compaction). `id` = `revision << 20 | op index`, so id
//!   order is revision order and a revision range is an id range. Deletes are tombstone rows.
//!   `prev_id` links a row to the key's previous live row (prev_kv for watches, and the way
//!   back in time for ranges at a past revision).
//! - `current`: key → id of its latest live row in `log` (values are stored once, in `log`).
//! - `meta`: the initial revision, compact_revision, next_lease. `lease`: granted leases and their TTLs.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use store::{Result, StoreError};

/// `PRAGMA application_id` of rkube stores: "rkub".
pub const APPLICATION_ID: i32 = 0x726b_7562;
pub const SCHEMA_VERSION: i32 = 1;
/// Bits of a log id below the revision: the operation's index within its transaction.
pub const OP_BITS: u32 = 20;
pub const MAX_OPS_PER_TXN: usize = 1 << OP_BITS;

pub fn log_id(revision: i64, op_index: usize) -> i64 {
    (revision << OP_BITS) | op_index as i64
}

/// The highest log id a revision can have.
pub fn last_id_of(revision: i64) -> i64 {
    log_id(revision, MAX_OPS_PER_TXN - 1)
}

pub fn revision_of(id: i64) -> i64 {
    id >> OP_BITS
}

const SCHEMA: &str = "
CREATE TABLE log (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    prev_id INTEGER
);
CREATE TABLE current (key BLOB PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
INSERT INTO meta VALUES ('revision', 1), ('compact_revision', 0), ('next_lease', 1);
";

/// Maps a SQLite failure to the store's error kinds, naming the file.
pub fn sql_error(path: &Path, err: rusqlite::Error) -> StoreError {
    let what = format!("{}: {err}", path.display());
    match err.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(what),
        _ => StoreError::Storage(what),
    }
}

/// Opens the writer's connection: validates the file, creates the schema in an empty one, and
/// switches to WAL with `synchronous=NORMAL`.
pub fn open_writer(path: &Path) -> Result<Connection> {
    let err = |e| sql_error(path, e);
    let flags =
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(err)? {
        return Err(StoreError::Storage(format!(
            "{}: the database file is read-only",
            path.display()
        )));
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    // Reading the header is the first access: a file that is not SQLite fails here.
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    let version: i32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let tables: Vec<String> = {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(err)?;
        stmt.query_map([], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?
    };
    match app_id {
        0 if tables.is_empty() => {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(err)?;
        }
        APPLICATION_ID if version == SCHEMA_VERSION => {}
        APPLICATION_ID => {
            return Err(StoreError::Corrupt(format!(
                "{}: schema version {version} is not supported by this rkube (it reads {SCHEMA_VERSION})",
                path.display()
            )));
        }
        0 => {
            return Err(StoreError::Corrupt(format!(
                "{}: a SQLite database that rkube did not create (tables: {})",
                path.display(),
                tables.join(", ")
            )));
        }
        other => {
            return Err(StoreError::Corrupt(format!(
                "{}: a SQLite database of another application (application_id {other:#x})",
                path.display()
            )));
        }
    }
    // WAL: readers never block the writer. synchronous=NORMAL: a commit writes the WAL without
    // fsyncing it; the sync thread fsyncs before anything is acknowledged (see `syncer`), so an
    // acknowledged write survives power loss. Checkpoints still fsync the WAL and the database.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Storage(format!(
            "{}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    // Checkpoints run on their own thread (see `checkpointer`), not inside the writer's commits.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16000;",
    )
    .map_err(err)?;
    Ok(conn)
}

/// Opens the checkpointer's connection (it writes the database file, so not query-only).
pub fn open_checkpointer(path: &Path) -> Result<Connection> {
    let err = |e| sql_error(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    conn.execute_batch("PRAGMA synchronous = FULL;").map_err(err)?;
    Ok(conn)
}

/// Opens a reader connection on a database the writer has already validated.
pub fn open_reader(path: &Path) -> Result<Connection> {
    let err = |e| sql_error(path, e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -8000;")
        .map_err(err)?;
    Ok(conn)
}

/// The revision of the latest write: the newest log row's (compaction always keeps that row), or
/// the initial revision of an empty store. Deriving it saves a page write per commit.
pub fn current_revision(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT max((SELECT value FROM meta WHERE name = 'revision'), coalesce((SELECT max(id) FROM log), 0) >> ?1)",
    )?
    .query_row([OP_BITS], |r| r.get(0))
}

pub fn meta(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ids_order_by_revision_then_op() {
        assert!(log_id(5, MAX_OPS_PER_TXN - 1) < log_id(6, 0));
        assert_eq!(revision_of(log_id(42, 7)), 42);
        assert_eq!(revision_of(last_id_of(42)), 42);
    }
}
