//! `EtcdStore` against a real etcd: the shared conformance suite (a fresh etcd per case), plus
//! what only this backend has to show: an unreachable or silent etcd fails within the request
//! deadline, acknowledged writes survive etcd being SIGKILLed (and the same client reconnects),
//! a watch reports its etcd dying, and etcd's terse errors come back with their details.
//!
//! A SIGKILL leaves etcd's written pages in the kernel's cache, so the durability test checks
//! that etcd acknowledges only committed writes and recovers them, not fsync against power loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use store::{KeyRange, RangeRequest, Revision, Store, StoreError};
use store_etcd::EtcdStore;
use testkit::etcd::EtcdProcess;

async fn setup() -> (Arc<dyn Store>, EtcdProcess) {
    let etcd = tokio::task::block_in_place(EtcdProcess::start).expect("start etcd");
    let store = EtcdStore::connect(&[etcd.endpoint()])
        .await
        .expect("connect to etcd");
    (Arc::new(store), etcd)
}

store::conformance_tests!(setup);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_etcd_is_unavailable_quickly() {
    let endpoint = format!("http://127.0.0.1:{}", testkit::free_port());
    let started = Instant::now();
    let result = EtcdStore::connect(std::slice::from_ref(&endpoint)).await;
    let waited = started.elapsed();
    match result {
        Err(StoreError::Unavailable(message)) => {
            eprintln!("after {waited:?}: {message}");
            assert!(
                message.contains(&format!("cannot reach etcd at {endpoint}")),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
}

/// Every write etcd acknowledged before a SIGKILL is there after a restart, at the revision it
/// was acknowledged with, and the revisions have neither gaps nor duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    const KILL_AFTER: usize = 300;
    let (store, mut etcd) = setup().await;
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (store, acked) = (store.clone(), acked.clone());
        tokio::spawn(async move {
            let mut revisions: Vec<Revision> = Vec::new();
            for i in 0.. {
                match store
                    .put(&format!("/dur/{i:06}"), Bytes::from(format!("value {i}")), None)
                    .await
                {
                    Ok(rev) => {
                        revisions.push(rev);
                        acked.store(revisions.len(), Ordering::Release);
                    }
                    Err(e) => return (revisions, e),
                }
            }
            unreachable!()
        })
    };
    while acked.load(Ordering::Acquire) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| etcd.kill()).unwrap();
    let (revisions, error) = writer.await.unwrap();
    eprintln!("the writer saw: {error}");
    assert!(
        error.is_transient(),
        "a killed etcd is reported as unavailable: {error:?}"
    );
    assert!(revisions.len() >= KILL_AFTER);
    tokio::task::block_in_place(|| etcd.restart()).unwrap();

    // The same client finds the restarted etcd again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let current = loop {
        match store.current_revision().await {
            Ok(rev) => break rev,
            Err(e) if Instant::now() < deadline => eprintln!("waiting for etcd after restart: {e}"),
            Err(e) => panic!("store did not recover after the restart: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let first = revisions[0];
    let expected: Vec<Revision> = (first..first + revisions.len() as i64).collect();
    assert_eq!(revisions, expected, "acknowledged revisions are consecutive");
    let stored = store
        .range(RangeRequest::new(KeyRange::prefix("/dur/")))
        .await
        .unwrap();
    // The write in flight at the kill may or may not have been committed; nothing else may differ.
    assert!(
        stored.kvs.len() >= revisions.len(),
        "acknowledged writes were lost: {} stored",
        stored.kvs.len()
    );
    let in_flight = stored.kvs.len() - revisions.len();
    assert!(
        in_flight <= 1,
        "{} keys stored for {} acknowledged writes",
        stored.kvs.len(),
        revisions.len()
    );
    for (i, kv) in stored.kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("/dur/{i:06}"));
        assert_eq!(kv.value, Bytes::from(format!("value {i}")));
        assert_eq!((kv.mod_revision, kv.version), (first + i as i64, 1), "{}", kv.key);
    }
    assert_eq!(
        current,
        first + stored.kvs.len() as i64 - 1,
        "no revisions beyond the stored writes"
    );
    eprintln!(
        "{} writes acknowledged, {in_flight} in flight at the kill",
        revisions.len()
    );
}

/// An endpoint that accepts TCP connections but never speaks gRPC: requests hit the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_endpoint_is_unavailable_after_the_deadline() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let result = EtcdStore::connect(std::slice::from_ref(&endpoint)).await;
    let waited = started.elapsed();
    eprintln!("after {waited:?}: {result:?}");
    assert!(
        matches!(&result, Err(StoreError::Unavailable(m)) if m.contains("cannot reach etcd")),
        "{result:?}"
    );
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    drop(silent);
}

/// A watch whose etcd dies reports it (a retryable error) and ends, rather than going quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ends_with_an_error_when_etcd_dies() {
    let (store, mut etcd) = setup().await;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(KeyRange::prefix(""), start).await.unwrap();
    let rev = store.put("/w", Bytes::from_static(b"v"), None).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap();
    assert_eq!(
        next.unwrap().unwrap().revision(),
        rev,
        "a watch over all keys sees the put"
    );

    tokio::task::block_in_place(|| etcd.kill()).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch went quiet");
    eprintln!("the watch saw: {next:?}");
    assert!(matches!(&next, Some(Err(e)) if e.is_transient()), "{next:?}");
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends after its error: {end:?}");
}

/// etcd's errors carry less than the trait's; the store fills in what it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_failed() {
    let (store, _etcd) = setup().await;
    let current = store.put("/e", Bytes::from_static(b"v"), None).await.unwrap();
    let future = store
        .range(RangeRequest::new(KeyRange::key("/e")).at_revision(current + 5))
        .await;
    assert_eq!(
        future,
        Err(StoreError::FutureRevision {
            requested: current + 5,
            current
        })
    );
    assert_eq!(
        store.compact(current + 1).await,
        Err(StoreError::FutureRevision {
            requested: current + 1,
            current
        })
    );
    store.compact(current).await.unwrap();
    assert_eq!(
        store.compact(current).await,
        Err(StoreError::Compacted {
            requested: current,
            compact_revision: None
        })
    );

    let unknown = 0x1234_5678;
    assert_eq!(
        store.keep_alive(unknown).await,
        Err(StoreError::LeaseNotFound(unknown))
    );
    assert_eq!(
        store.revoke_lease(unknown).await,
        Err(StoreError::LeaseNotFound(unknown))
    );
    let put = store.put("/e", Bytes::new(), Some(unknown)).await;
    assert_eq!(put, Err(StoreError::LeaseNotFound(unknown)));

    // A limit of 0 returns no keys but still counts them.
    let none = store
        .range(RangeRequest::new(KeyRange::prefix("/")).with_limit(0))
        .await
        .unwrap();
    assert_eq!((none.kvs.len(), none.count, none.more), (0, 1, true));
}
