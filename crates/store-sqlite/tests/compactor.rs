//! The background compaction policy, run against the SQLite backend.

use std::sync::Arc;
use std::time::Duration;

use store::{CompactionPolicy, KeyRange, RangeRequest, Store, StoreError, spawn_compactor};
use store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactor_keeps_the_configured_history() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("state.db")).unwrap());
    for i in 0..50 {
        store
            .put("/compact/k", format!("{i}").into(), None)
            .await
            .unwrap();
    }
    let now = store.current_revision().await.unwrap();
    let policy = CompactionPolicy {
        interval: Duration::from_millis(100),
        retain_revisions: 10,
    };
    let compactor = spawn_compactor(store.clone(), policy);

    let keep_from = now - 10;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let old = store
            .range(RangeRequest::new(KeyRange::key("/compact/k")).at_revision(keep_from - 1))
            .await;
        if matches!(old, Err(StoreError::Compacted { .. })) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history was not compacted: {old:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The retained history is still readable.
    let kept = store
        .range(RangeRequest::new(KeyRange::key("/compact/k")).at_revision(keep_from))
        .await
        .unwrap();
    assert_eq!(kept.kvs[0].value, format!("{}", keep_from - 2).into_bytes());
    compactor.abort();
}
