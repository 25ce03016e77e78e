//! State that must survive closing and reopening the database.

use bytes::Bytes;
use store::{KeyRange, RangeRequest, Store};
use store_sqlite::SqliteStore;

#[tokio::test]
async fn revision_and_leases_survive_reopening_even_after_compacting_a_trailing_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (revision, lease) = {
        let store = SqliteStore::open(&path).unwrap();
        let lease = store.grant_lease(60).await.unwrap();
        store
            .put("/a", Bytes::from_static(b"1"), Some(lease))
            .await
            .unwrap();
        store.put("/b", Bytes::from_static(b"2"), None).await.unwrap();
        store.delete("/b", None).await.unwrap();
        let revision = store.current_revision().await.unwrap();
        // Compacting through the delete removes tombstones; the revision must not go back.
        store.compact(revision).await.unwrap();
        (revision, lease)
    };
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), revision);
    assert_eq!(
        store.put("/c", Bytes::from_static(b"3"), None).await.unwrap(),
        revision + 1
    );
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(a.lease, Some(lease));
    // The lease is still known and still owns its key.
    assert_eq!(store.keep_alive(lease).await.unwrap(), 60);
    store.revoke_lease(lease).await.unwrap();
    assert_eq!(store.get("/a").await.unwrap(), None);
    let all = store
        .range(RangeRequest::new(KeyRange::prefix("/")))
        .await
        .unwrap();
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(),
        ["/c"]
    );
}
