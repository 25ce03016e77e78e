//! The backend-independent conformance suite: every [`Store`] implementation runs all of it.
//!
//! A backend's test file calls [`conformance_tests!`] with an async setup function returning
//! `(Arc<dyn Store>, guard)` for a fresh, empty store; the guard is dropped after the case.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

use crate::*;

/// Generates one `#[tokio::test]` per conformance case for a backend.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@cases $setup;
            revisions_are_global_and_strictly_increasing,
            create_is_create_if_absent,
            update_compares_mod_revision,
            delete_compares_mod_revision,
            txn_applies_all_or_nothing,
            txn_compares_follow_etcd,
            txn_rejects_invalid_requests,
            range_by_prefix_with_limit_and_count,
            range_at_past_revision,
            paginating_a_past_revision_sees_one_state,
            compaction_discards_history_only,
            watch_replays_from_revision_then_follows,
            watch_after_compaction_reports_compacted,
            watch_delivers_txn_events_together,
            slow_watcher_misses_nothing,
            concurrent_writers_and_watchers_agree,
            leases_expire_and_delete_their_keys,
            leases_revoke_and_keep_alive,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, guard) = $setup().await;
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put(store: &Arc<dyn Store>, key: &str, value: &str) -> Revision {
    store.put(key, b(value), None).await.expect("put")
}

/// Takes the next `n` events of a watch, failing the test after a generous timeout.
async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} watch events", events.len()));
        events.push(item.expect("watch stream ended").expect("watch error"));
    }
    events
}

/// What happened, where, at which revision: the parts of events most assertions compare.
fn summary(events: &[Event]) -> Vec<(EventKind, &str, Revision)> {
    events
        .iter()
        .map(|e| (e.kind, e.kv.key.as_str(), e.revision()))
        .collect()
}

/// Asserts that no event arrives within a short while.
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

pub async fn revisions_are_global_and_strictly_increasing(store: Arc<dyn Store>) {
    let r0 = store.current_revision().await.unwrap();
    assert_eq!(put(&store, "/a", "1").await, r0 + 1);
    assert_eq!(put(&store, "/b", "1").await, r0 + 2);
    assert_eq!(put(&store, "/a", "2").await, r0 + 3);
    let a = store.get("/a").await.unwrap().expect("/a exists");
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (r0 + 1, r0 + 3, 2)
    );
    assert_eq!(a.value, b("2"));
    assert_eq!(a.lease, None);

    let deleted = store.delete("/a", None).await.unwrap();
    assert!(
        matches!(deleted, WriteOutcome::Written { revision, prev: Some(ref p) } if revision == r0 + 4 && p.value == b("2"))
    );
    assert_eq!(store.get("/a").await.unwrap(), None);
    // Deleting what does not exist writes nothing and does not advance the revision.
    assert_eq!(
        store.delete("/a", None).await.unwrap(),
        WriteOutcome::Conflict { current: None }
    );
    assert_eq!(store.current_revision().await.unwrap(), r0 + 4);

    // Re-creation starts a new life: new create_revision, version 1.
    assert_eq!(put(&store, "/a", "3").await, r0 + 5);
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (r0 + 5, r0 + 5, 1)
    );
    let range = store
        .range(RangeRequest::new(KeyRange::prefix("/")))
        .await
        .unwrap();
    assert_eq!(range.revision, r0 + 5, "range reports the current revision");
}

pub async fn create_is_create_if_absent(store: Arc<dyn Store>) {
    let first = store.create("/c", b("v1"), None).await.unwrap();
    let WriteOutcome::Written { revision, prev: None } = first else {
        panic!("create failed: {first:?}")
    };
    let again = store.create("/c", b("v2"), None).await.unwrap();
    let WriteOutcome::Conflict {
        current: Some(current),
    } = again
    else {
        panic!("second create: {again:?}")
    };
    assert_eq!((current.value, current.mod_revision), (b("v1"), revision));
    assert_eq!(
        store.current_revision().await.unwrap(),
        revision,
        "a failed create writes nothing"
    );
}

pub async fn update_compares_mod_revision(store: Arc<dyn Store>) {
    assert_eq!(
        store.update("/u", b("x"), 1, None).await.unwrap(),
        WriteOutcome::Conflict { current: None }
    );
    let r1 = put(&store, "/u", "v1").await;
    let r2 = put(&store, "/u", "v2").await;
    let stale = store.update("/u", b("v3"), r1, None).await.unwrap();
    assert!(
        matches!(stale, WriteOutcome::Conflict { current: Some(ref kv) } if kv.mod_revision == r2 && kv.value == b("v2"))
    );
    let ok = store.update("/u", b("v3"), r2, None).await.unwrap();
    assert!(
        matches!(ok, WriteOutcome::Written { revision, prev: Some(ref p) } if revision == r2 + 1 && p.value == b("v2"))
    );
    let kv = store.get("/u").await.unwrap().unwrap();
    assert_eq!((kv.value, kv.version, kv.create_revision), (b("v3"), 3, r1));
}

pub async fn delete_compares_mod_revision(store: Arc<dyn Store>) {
    let r1 = put(&store, "/d", "v1").await;
    let r2 = put(&store, "/d", "v2").await;
    let stale = store.delete("/d", Some(r1)).await.unwrap();
    assert!(matches!(stale, WriteOutcome::Conflict { current: Some(ref kv) } if kv.mod_revision == r2));
    assert!(
        store.get("/d").await.unwrap().is_some(),
        "a failed delete deletes nothing"
    );
    let ok = store.delete("/d", Some(r2)).await.unwrap();
    assert!(
        matches!(ok, WriteOutcome::Written { revision, prev: Some(ref p) } if revision == r2 + 1 && p.value == b("v2"))
    );
    assert_eq!(
        store.delete("/d", Some(r2)).await.unwrap(),
        WriteOutcome::Conflict { current: None }
    );
}

pub async fn txn_applies_all_or_nothing(store: Arc<dyn Store>) {
    let r1 = put(&store, "/t/a", "a1").await;
    put(&store, "/t/gone", "x").await;
    // All compares hold: every write lands at one revision.
    let txn = Txn::when(vec![
        Compare::mod_revision("/t/a", CompareOp::Equal, r1),
        Compare::absent("/t/b"),
    ])
    .then(Op::put("/t/a", b("a2"), None))
    .then(Op::put("/t/b", b("b1"), None))
    .then(Op::delete("/t/gone"))
    .then(Op::get("/t/a"))
    .otherwise(Op::get("/t/a"));
    let resp = store.txn(txn.clone()).await.unwrap();
    assert!(resp.succeeded);
    let rev = resp.revision;
    assert_eq!(rev, r1 + 2);
    assert!(matches!(&resp.responses[0], OpResponse::Put { prev: Some(p) } if p.value == b("a1")));
    assert_eq!(resp.responses[1], OpResponse::Put { prev: None });
    assert!(matches!(&resp.responses[2], OpResponse::Delete { prev: Some(p) } if p.value == b("x")));
    assert!(
        matches!(&resp.responses[3], OpResponse::Get { kv: Some(kv) } if kv.value == b("a2") && kv.mod_revision == rev)
    );
    for key in ["/t/a", "/t/b"] {
        assert_eq!(store.get(key).await.unwrap().unwrap().mod_revision, rev);
    }
    assert_eq!(store.get("/t/gone").await.unwrap(), None);

    // The same txn again: its compares fail, nothing is written, the failure branch runs.
    let resp = store.txn(txn).await.unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.revision, rev, "a failed txn does not advance the revision");
    assert!(matches!(&resp.responses[..], [OpResponse::Get { kv: Some(kv) }] if kv.value == b("a2")));
    let all = store
        .range(RangeRequest::new(KeyRange::prefix("/t/")))
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 2);

    // A txn that only reads does not advance the revision either.
    let resp = store.txn(Txn::default().then(Op::get("/t/b"))).await.unwrap();
    assert!(resp.succeeded && resp.revision == rev);
}

pub async fn txn_compares_follow_etcd(store: Arc<dyn Store>) {
    let r1 = put(&store, "/k", "m").await;
    put(&store, "/k", "n").await;
    let holds = |c: Compare| {
        let store = store.clone();
        async move { store.txn(Txn::when(vec![c])).await.unwrap().succeeded }
    };
    assert!(holds(Compare::version("/k", CompareOp::Equal, 2)).await);
    assert!(holds(Compare::version("/k", CompareOp::Greater, 1)).await);
    assert!(holds(Compare::create_revision("/k", CompareOp::Equal, r1)).await);
    assert!(holds(Compare::mod_revision("/k", CompareOp::Greater, r1)).await);
    assert!(holds(Compare::mod_revision("/k", CompareOp::NotEqual, r1)).await);
    assert!(holds(Compare::value("/k", CompareOp::Equal, b("n"))).await);
    assert!(holds(Compare::value("/k", CompareOp::Less, b("o"))).await);
    assert!(!holds(Compare::value("/k", CompareOp::Greater, b("o"))).await);
    // Absent keys: revisions and version are 0, value comparisons are false.
    assert!(holds(Compare::mod_revision("/none", CompareOp::Equal, 0)).await);
    assert!(holds(Compare::version("/none", CompareOp::Less, 1)).await);
    assert!(!holds(Compare::value("/none", CompareOp::NotEqual, b("x"))).await);
    // Every compare must hold.
    assert!(!holds(Compare::exists("/none")).await);
    let both = Txn::when(vec![Compare::exists("/k"), Compare::exists("/none")]);
    assert!(!store.txn(both).await.unwrap().succeeded);
}

pub async fn txn_rejects_invalid_requests(store: Arc<dyn Store>) {
    let before = store.current_revision().await.unwrap();
    let dup = Txn::default()
        .then(Op::put("/x", b("1"), None))
        .then(Op::put("/x", b("2"), None));
    assert!(matches!(
        store.txn(dup).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let empty = Txn::default().then(Op::put("", b("1"), None));
    assert!(matches!(
        store.txn(empty).await,
        Err(StoreError::InvalidArgument(_))
    ));
    let bad_lease = store.put("/x", b("1"), Some(0x7eed_5eed)).await;
    assert!(
        matches!(bad_lease, Err(StoreError::LeaseNotFound(_))),
        "{bad_lease:?}"
    );
    assert_eq!(store.current_revision().await.unwrap(), before);
    assert_eq!(store.get("/x").await.unwrap(), None);
}

pub async fn range_by_prefix_with_limit_and_count(store: Arc<dyn Store>) {
    for key in ["/r/3", "/r/1", "/r/5", "/r/2", "/r/4", "/s/1", "/r"] {
        put(&store, key, key).await;
    }
    let all = store
        .range(RangeRequest::new(KeyRange::prefix("/r/")))
        .await
        .unwrap();
    let keys: Vec<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/1", "/r/2", "/r/3", "/r/4", "/r/5"]);
    assert_eq!((all.count, all.more), (5, false));

    let page = store
        .range(RangeRequest::new(KeyRange::prefix("/r/")).with_limit(2))
        .await
        .unwrap();
    let keys: Vec<&str> = page.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/1", "/r/2"]);
    assert_eq!((page.count, page.more), (5, true));

    // Continue after the last key of the page, at the page's revision.
    let next = RangeRequest::new(KeyRange::prefix_after("/r/", "/r/2"))
        .with_limit(2)
        .at_revision(page.revision);
    let next = store.range(next).await.unwrap();
    let keys: Vec<&str> = next.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/3", "/r/4"]);
    assert_eq!((next.count, next.more), (3, true));

    let count = store
        .range(RangeRequest::new(KeyRange::prefix("/r/")).count_only())
        .await
        .unwrap();
    assert!(count.kvs.is_empty());
    assert_eq!(count.count, 5);

    let everything = store
        .range(RangeRequest::new(KeyRange::prefix("")))
        .await
        .unwrap();
    assert_eq!(everything.count, 7);
    let single = store.range(RangeRequest::new(KeyRange::key("/r"))).await.unwrap();
    assert_eq!(single.kvs.len(), 1);
    assert_eq!(single.kvs[0].value, b("/r"));
}

pub async fn range_at_past_revision(store: Arc<dyn Store>) {
    let r1 = put(&store, "/p/a", "v1").await;
    let r2 = put(&store, "/p/a", "v2").await;
    let r3 = store.delete("/p/a", None).await.unwrap();
    let WriteOutcome::Written { revision: r3, .. } = r3 else {
        panic!()
    };
    let r4 = put(&store, "/p/b", "b").await;

    let at = |rev: Revision| {
        let store = store.clone();
        async move {
            let resp = store
                .range(RangeRequest::new(KeyRange::prefix("/p/")).at_revision(rev))
                .await
                .unwrap();
            assert_eq!(resp.revision, r4, "the header carries the current revision");
            resp.kvs
                .into_iter()
                .map(|kv| (kv.key, kv.value, kv.mod_revision))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at(r1).await, [("/p/a".to_owned(), b("v1"), r1)]);
    assert_eq!(at(r2).await, [("/p/a".to_owned(), b("v2"), r2)]);
    assert_eq!(at(r3).await, []);
    assert_eq!(at(r4).await, [("/p/b".to_owned(), b("b"), r4)]);
    let old = store
        .range(
            RangeRequest::new(KeyRange::key("/p/a"))
                .at_revision(r1)
                .count_only(),
        )
        .await
        .unwrap();
    assert_eq!(old.count, 1);

    let future = store
        .range(RangeRequest::new(KeyRange::prefix("/p/")).at_revision(r4 + 10))
        .await;
    assert!(
        matches!(future, Err(StoreError::FutureRevision { .. })),
        "{future:?}"
    );
}

pub async fn paginating_a_past_revision_sees_one_state(store: Arc<dyn Store>) {
    for i in (0..30).step_by(2) {
        put(&store, &format!("/pg/{i:02}"), "old").await;
    }
    let snapshot = store
        .range(RangeRequest::new(KeyRange::prefix("/pg/")))
        .await
        .unwrap();
    let at = snapshot.revision;
    // Afterwards: updates, deletes, new keys in between and at both ends.
    for i in [0, 7, 8, 13, 14, 29, 31] {
        put(&store, &format!("/pg/{i:02}"), "new").await;
    }
    for i in [2, 8, 16, 28] {
        store.delete(&format!("/pg/{i:02}"), None).await.unwrap();
    }
    let mut pages = Vec::new();
    let mut req = RangeRequest::new(KeyRange::prefix("/pg/"))
        .with_limit(4)
        .at_revision(at);
    loop {
        let page = store.range(req.clone()).await.unwrap();
        let last = page.kvs.last().map(|kv| kv.key.clone());
        pages.extend(page.kvs);
        match last {
            Some(last) if page.more => req.range = KeyRange::prefix_after("/pg/", &last),
            _ => break,
        }
    }
    assert_eq!(
        pages, snapshot.kvs,
        "pages at a past revision add up to that revision's state"
    );
    let counted = store
        .range(
            RangeRequest::new(KeyRange::prefix("/pg/"))
                .at_revision(at)
                .count_only(),
        )
        .await;
    assert_eq!(counted.unwrap().count, 15);
}

pub async fn compaction_discards_history_only(store: Arc<dyn Store>) {
    let r1 = put(&store, "/c/a", "v1").await;
    let r2 = put(&store, "/c/a", "v2").await;
    let r3 = put(&store, "/c/b", "b1").await;
    put(&store, "/c/gone", "x").await;
    store.delete("/c/gone", None).await.unwrap();
    let r6 = put(&store, "/c/a", "v3").await;
    store.compact(r3).await.unwrap();

    let old = store
        .range(RangeRequest::new(KeyRange::prefix("/c/")).at_revision(r1))
        .await;
    assert!(
        matches!(old, Err(StoreError::Compacted { requested, .. }) if requested == r1),
        "{old:?}"
    );
    // The compacted revision itself stays readable, and so does everything after it.
    let at_r3 = store
        .range(RangeRequest::new(KeyRange::prefix("/c/")).at_revision(r3))
        .await
        .unwrap();
    let values: Vec<_> = at_r3
        .kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(values, [("/c/a", b("v2")), ("/c/b", b("b1"))]);
    assert_eq!(at_r3.kvs[0].mod_revision, r2);
    let now = store
        .range(RangeRequest::new(KeyRange::prefix("/c/")))
        .await
        .unwrap();
    assert_eq!(now.kvs.len(), 2);
    assert_eq!(
        (
            now.kvs[0].version,
            now.kvs[0].create_revision,
            now.kvs[0].mod_revision
        ),
        (3, r1, r6)
    );
    // Compacting backwards is an error that names the compaction.
    assert!(matches!(
        store.compact(r2).await,
        Err(StoreError::Compacted { .. })
    ));
    // Writes go on at the next revision.
    assert_eq!(put(&store, "/c/b", "b2").await, r6 + 1);
}

pub async fn watch_replays_from_revision_then_follows(store: Arc<dyn Store>) {
    let r1 = put(&store, "/w/a", "1").await;
    let r2 = put(&store, "/w/a", "2").await;
    put(&store, "/other", "x").await;
    let r4 = put(&store, "/w/b", "1").await;
    let WriteOutcome::Written { revision: r5, .. } = store.delete("/w/a", None).await.unwrap() else {
        panic!()
    };

    let mut watch = store.watch(KeyRange::prefix("/w/"), r1).await.unwrap();
    let events = next_events(&mut watch, 3).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "/w/a", r2),
            (EventKind::Put, "/w/b", r4),
            (EventKind::Delete, "/w/a", r5)
        ]
    );
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b("1"));
    assert_eq!(events[0].kv.version, 2);
    assert_eq!(events[1].prev_kv, None);
    assert_eq!(events[2].prev_kv.as_ref().unwrap().value, b("2"));
    assert!(events[2].kv.value.is_empty());

    // Live events follow the replay without a gap.
    let r6 = put(&store, "/w/c", "live").await;
    put(&store, "/elsewhere", "x").await;
    let live = next_events(&mut watch, 1).await;
    assert_eq!(
        (
            live[0].kv.key.as_str(),
            live[0].revision(),
            live[0].kv.value.clone()
        ),
        ("/w/c", r6, b("live"))
    );
    assert_quiet(&mut watch).await;

    // A single-key watch from "now" sees only that key's future writes.
    let now = store.current_revision().await.unwrap();
    let mut one = store.watch(KeyRange::key("/w/c"), now).await.unwrap();
    put(&store, "/w/cc", "no").await;
    let r = put(&store, "/w/c", "yes").await;
    let got = next_events(&mut one, 1).await;
    assert_eq!((got[0].kv.key.as_str(), got[0].revision()), ("/w/c", r));
    assert_quiet(&mut one).await;
}

pub async fn watch_after_compaction_reports_compacted(store: Arc<dyn Store>) {
    let r1 = put(&store, "/wc/a", "1").await;
    put(&store, "/wc/a", "2").await;
    let r3 = put(&store, "/wc/a", "3").await;
    let r4 = put(&store, "/wc/a", "4").await;
    store.compact(r3).await.unwrap();

    let mut stale = store.watch(KeyRange::prefix("/wc/"), r1 - 1).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), stale.next())
        .await
        .expect("no answer");
    assert!(
        matches!(first, Some(Err(StoreError::Compacted { .. }))),
        "{first:?}"
    );

    // From the compacted revision on, history is complete.
    let mut ok = store.watch(KeyRange::prefix("/wc/"), r3).await.unwrap();
    let events = next_events(&mut ok, 1).await;
    assert_eq!(events[0].revision(), r4);
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b("3"));
}

pub async fn watch_delivers_txn_events_together(store: Arc<dyn Store>) {
    put(&store, "/tx/gone", "x").await;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(KeyRange::prefix("/tx/"), start).await.unwrap();
    let txn = Txn::default()
        .then(Op::put("/tx/a", b("a"), None))
        .then(Op::delete("/tx/gone"))
        .then(Op::put("/tx/b", b("b"), None));
    let rev = store.txn(txn).await.unwrap().revision;
    let events = next_events(&mut watch, 3).await;
    assert_eq!(
        summary(&events),
        [
            (EventKind::Put, "/tx/a", rev),
            (EventKind::Delete, "/tx/gone", rev),
            (EventKind::Put, "/tx/b", rev)
        ]
    );
}

/// Number of writes in [`slow_watcher_misses_nothing`]; enough to overflow any in-memory buffer
/// between a backend's writer and a watcher that does not read.
pub const SLOW_WATCHER_WRITES: usize = 3000;

pub async fn slow_watcher_misses_nothing(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch(KeyRange::prefix("/slow/"), start).await.unwrap();
    // First the watcher catches up and follows live changes...
    put(&store, "/slow/first", "x").await;
    next_events(&mut watch, 1).await;
    let start = start + 1;
    // ...then it reads nothing while two tasks write (so a batching backend still commits
    // many small groups), overflowing any in-memory buffer between writer and watcher.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..SLOW_WATCHER_WRITES).step_by(2) {
                    store
                        .put(&format!("/slow/{i:05}"), Bytes::from(vec![b'x'; 256]), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let events = next_events(&mut watch, SLOW_WATCHER_WRITES).await;
    let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
    let expected: Vec<Revision> = (start + 1..=start + SLOW_WATCHER_WRITES as i64).collect();
    assert_eq!(revisions, expected, "every revision exactly once, in order");
}

pub async fn concurrent_writers_and_watchers_agree(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 25;
    put(&store, "/cc/counter", "0").await;
    let start = store.current_revision().await.unwrap();
    let watchers: Vec<WatchStream> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(store.watch(KeyRange::prefix("/cc/"), start).await.unwrap());
        }
        v
    };
    // Every task increments the counter with compare-and-swap, retrying on conflict, and also
    // writes keys of its own.
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..INCREMENTS {
                    loop {
                        let kv = store.get("/cc/counter").await.unwrap().unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        let next = Bytes::from((n + 1).to_string());
                        match store
                            .update("/cc/counter", next, kv.mod_revision, None)
                            .await
                            .unwrap()
                        {
                            WriteOutcome::Written { .. } => break,
                            WriteOutcome::Conflict { .. } => conflicts += 1,
                        }
                    }
                    store
                        .put(&format!("/cc/own/{t}/{i}"), b("x"), None)
                        .await
                        .unwrap();
                }
                conflicts
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = TASKS * INCREMENTS;
    let counter = store.get("/cc/counter").await.unwrap().unwrap();
    assert_eq!(counter.value, Bytes::from(total.to_string()), "no lost update");
    assert_eq!(counter.version as usize, total + 1);
    let end = store.current_revision().await.unwrap();
    assert_eq!(end - start, 2 * total as i64, "one revision per successful write");

    for mut watch in watchers {
        let events = next_events(&mut watch, 2 * total).await;
        let revisions: Vec<Revision> = events.iter().map(Event::revision).collect();
        assert_eq!(revisions, (start + 1..=end).collect::<Vec<_>>());
        // The counter's values, as seen by the watcher, go up by one each time.
        let counts: Vec<u64> = events
            .iter()
            .filter(|e| e.kv.key == "/cc/counter")
            .map(|e| std::str::from_utf8(&e.kv.value).unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts, (1..=total as u64).collect::<Vec<_>>());
    }
}

pub async fn leases_expire_and_delete_their_keys(store: Arc<dyn Store>) {
    let lease = store.grant_lease(2).await.unwrap();
    store.put("/l/event", b("e"), Some(lease)).await.unwrap();
    let r = store.put("/l/keep", b("k"), None).await.unwrap();
    assert_eq!(store.get("/l/event").await.unwrap().unwrap().lease, Some(lease));
    let mut watch = store.watch(KeyRange::prefix("/l/"), r).await.unwrap();
    let granted = Instant::now();
    // etcd rounds short TTLs up to its minimum and checks expiry twice a second; allow for it.
    let events = next_events(&mut watch, 1).await;
    assert_eq!(
        (events[0].kind, events[0].kv.key.as_str()),
        (EventKind::Delete, "/l/event")
    );
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b("e"));
    let waited = granted.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "expired after only {waited:?}"
    );
    assert!(waited < Duration::from_secs(12), "expired only after {waited:?}");
    assert_eq!(store.get("/l/event").await.unwrap(), None);
    assert!(store.get("/l/keep").await.unwrap().is_some());
    assert!(matches!(
        store.keep_alive(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}

pub async fn leases_revoke_and_keep_alive(store: Arc<dyn Store>) {
    let lease = store.grant_lease(3).await.unwrap();
    let mut keys = BTreeMap::new();
    for i in 0..3 {
        let key = format!("/lr/{i}");
        keys.insert(key.clone(), store.put(&key, b("v"), Some(lease)).await.unwrap());
    }
    // Keeping the lease alive past its TTL keeps the keys.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let ttl = store.keep_alive(lease).await.unwrap();
        assert!(ttl >= 3, "keep-alive renews the full TTL, got {ttl}");
    }
    let listed = store
        .range(RangeRequest::new(KeyRange::prefix("/lr/")))
        .await
        .unwrap();
    assert_eq!(listed.count, 3, "keys of a kept-alive lease survive");
    let before = store.current_revision().await.unwrap();
    store.revoke_lease(lease).await.unwrap();
    let listed = store
        .range(RangeRequest::new(KeyRange::prefix("/lr/")))
        .await
        .unwrap();
    assert_eq!(listed.count, 0, "revoking deletes the keys at once");
    let mut watch = store.watch(KeyRange::prefix("/lr/"), before).await.unwrap();
    let events = next_events(&mut watch, 3).await;
    assert!(
        events
            .iter()
            .all(|e| e.kind == EventKind::Delete && e.revision() == before + 1)
    );
    assert!(matches!(
        store.revoke_lease(lease).await,
        Err(StoreError::LeaseNotFound(_))
    ));
    assert!(matches!(
        store.put("/lr/x", b("v"), Some(lease)).await,
        Err(StoreError::LeaseNotFound(_))
    ));
}
