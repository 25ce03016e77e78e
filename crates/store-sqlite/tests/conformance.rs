//! The shared Store conformance suite against the SQLite backend.

use std::sync::Arc;

use store::Store;
use store_sqlite::SqliteStore;
use tempfile::TempDir;

async fn fresh_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    (Arc::new(store), dir)
}

store::conformance_tests!(fresh_store);
