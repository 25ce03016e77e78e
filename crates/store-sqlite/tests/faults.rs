//! Bad input and faults: each gives a clear error and leaves existing data as it was.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use store::{KeyRange, RangeRequest, Store, StoreError};
use store_sqlite::SqliteStore;

fn open_err(path: &Path) -> StoreError {
    match SqliteStore::open(path) {
        Ok(_) => panic!("{} opened, but should have been refused", path.display()),
        Err(err) => err,
    }
}

#[test]
fn missing_directory_is_reported_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/state.db");
    let err = open_err(&path);
    assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.path().join("no").exists());
}

#[test]
fn garbage_file_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let garbage: Vec<u8> = (0..16384u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let err = open_err(&path);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string().contains("state.db"),
        "the error names the file: {err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file was modified");
}

#[test]
fn foreign_sqlite_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('alice');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = open_err(&path);
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string().contains("did not create (tables: users)"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file was modified");
    assert!(
        !PathBuf::from(format!("{}-wal", path.display())).exists(),
        "switched a foreign file to WAL"
    );

    let other_app = dir.path().join("other.db");
    rusqlite::Connection::open(&other_app)
        .unwrap()
        .execute_batch("PRAGMA application_id = 1234;")
        .unwrap();
    let err = open_err(&other_app);
    assert!(err.to_string().contains("another application"), "{err}");
}

#[test]
fn second_opener_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let first = SqliteStore::open(&path).unwrap();
    let err = open_err(&path);
    assert!(err.to_string().contains("in use by another process"), "{err}");
    drop(first);
    SqliteStore::open(&path).expect("reopens once the first store is closed");
}

/// A tmpfs mounted for the test, unmounted (lazily, so it always goes) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path_str(dir.path()),
            ],
        );
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn remount(&self, options: &str) {
        run(
            "mount",
            &["-o", &format!("remount,{options}"), path_str(self.path())],
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["-l", path_str(self.dir.path())])
            .status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(
        status.success(),
        "{program} {args:?} failed (these tests need root)"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn read_only_file_system_is_reported_and_data_kept() {
    let fs = Tmpfs::mount("16m");
    let path = fs.path().join("state.db");
    runtime().block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        store.put("/kept", Bytes::from_static(b"v"), None).await.unwrap();
    });
    fs.remount("ro");
    let err = open_err(&path);
    assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
    assert!(err.to_string().contains("Read-only file system"), "{err}");
    fs.remount("rw");
    runtime().block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let kv = store.get("/kept").await.unwrap().expect("data survived");
        assert_eq!(kv.value, Bytes::from_static(b"v"));
    });
}

#[test]
fn full_disk_fails_writes_cleanly_and_loses_nothing() {
    let fs = Tmpfs::mount("1m");
    let path = fs.path().join("state.db");
    runtime().block_on(async {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        // Concurrent writers, so groups of several transactions fail together.
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut acked = Vec::new();
                    for i in 0.. {
                        let key = format!("/full/{w}/{i:06}");
                        match store.put(&key, Bytes::from(vec![b'x'; 4096]), None).await {
                            Ok(rev) => acked.push((key, rev)),
                            Err(err) => return (acked, err),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        let mut acked = Vec::new();
        for w in writers {
            let (mine, err) = w.await.unwrap();
            assert!(matches!(err, StoreError::Storage(_)), "{err:?}");
            assert!(
                err.to_string().contains("full"),
                "the error says the disk is full: {err}"
            );
            acked.extend(mine);
        }
        assert!(!acked.is_empty());
        check_all_present(&*store, &acked).await;

        // Reads keep working on a full disk; after the disk grows, writes resume on the next revision.
        let current = store.current_revision().await.unwrap();
        fs.remount("size=16m");
        let next = store
            .put("/full/after", Bytes::from_static(b"ok"), None)
            .await
            .unwrap();
        assert_eq!(next, current + 1, "no revision was burnt by the failed writes");
        drop(store);

        let reopened = SqliteStore::open(&path).unwrap();
        check_all_present(&reopened, &acked).await;
        assert_eq!(reopened.current_revision().await.unwrap(), next);
    });
}

async fn check_all_present(store: &dyn Store, acked: &[(String, i64)]) {
    let all = store
        .range(RangeRequest::new(KeyRange::prefix("/full/")))
        .await
        .unwrap();
    let stored: std::collections::HashMap<&str, i64> = all
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.mod_revision))
        .collect();
    for (key, rev) in acked {
        assert_eq!(
            stored.get(key.as_str()),
            Some(rev),
            "acknowledged {key}@{rev} lost"
        );
    }
    let mut revisions: Vec<i64> = stored.values().copied().collect();
    revisions.sort_unstable();
    assert_eq!(
        revisions,
        (2..2 + revisions.len() as i64).collect::<Vec<_>>(),
        "gaps in revisions"
    );
}
