//! The watch cache: one store watch over the whole key space keeps an in-memory copy
//! of every object and a window of recent events, and serves API watches and most lists, so a
//! thousand watchers cost one store watch (upstream's cacher, with one feeder for all
//! resources: its revision is then the store's, which makes "is the cache fresh enough for
//! resourceVersion N" answerable without etcd's progress notifications).
//!
//! It starts on first use (an idle server keeps no copy) and serves nothing until its initial
//! list is loaded; callers then use the store directly. If its store watch fails (compaction
//! overtook it, the store went away) it tells its watchers to end (they resume from their last
//! resourceVersion, as after any dropped watch) and reloads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use store::{Event, EventKind, KeyRange, KeyValue, RangeRequest, Revision, Store, StoreError};
use tokio::sync::{broadcast, watch};

/// Everything: the cache's revision must follow every write for freshness checks to hold.
const PREFIX: &str = "";
/// Events kept at most, and kept for at least this long when there are fewer (upstream sizes
/// its window to about 75 s of events).
const MAX_EVENTS: usize = 50_000;
const MIN_WINDOW: Duration = Duration::from_secs(150);
/// How long a request waits for the cache to reach the revision it asks for.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);
/// Live events buffered per watcher before it is cut off as too slow.
const WATCHER_BUFFER: usize = 4096;
const LOAD_PAGE: usize = 10_000;

#[derive(Clone)]
enum Signal {
    Event(Arc<Event>),
    /// The cache reloaded: its watchers must end.
    Reset,
}

#[derive(Default)]
struct State {
    ready: bool,
    /// Everything up to this revision is applied.
    revision: Revision,
    objects: BTreeMap<String, KeyValue>,
    /// Events after `oldest`, in revision order, with the time they arrived.
    history: VecDeque<(Instant, Arc<Event>)>,
    oldest: Revision,
}

pub struct Cache {
    store: Arc<dyn Store>,
    state: RwLock<State>,
    signals: broadcast::Sender<Signal>,
    progress: watch::Sender<Revision>,
    started: Mutex<bool>,
}

/// Where a cached watch starts.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// The current state as initial objects, then every change.
    Now,
    /// Every change after this revision.
    After(Revision),
}

/// A watch served from the cache: initial objects (for [`Start::Now`]) at `revision`, then
/// the events after it.
pub struct CachedWatch {
    pub initial: Vec<KeyValue>,
    pub revision: Revision,
    pub events: BoxStream<'static, Item>,
}

/// What a cached watch streams.
pub enum Item {
    Event(Event),
    /// Every change up to this revision has been streamed (sent at most every
    /// [`PROGRESS_INTERVAL`]; it becomes a BOOKMARK for clients that allow them).
    Progress(Revision),
}

/// How often a watcher learns how far it has come, as upstream's bookmark frequency.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(60);

impl Cache {
    pub fn new(store: Arc<dyn Store>) -> Arc<Cache> {
        Arc::new(Cache {
            store,
            state: RwLock::new(State::default()),
            signals: broadcast::channel(WATCHER_BUFFER).0,
            progress: watch::channel(0).0,
            started: Mutex::new(false),
        })
    }

    /// Starts the feeder the first time; true once the cache can serve.
    fn ready(self: &Arc<Self>) -> bool {
        let mut started = self.started.lock().expect("cache lock");
        if !*started {
            *started = true;
            tokio::spawn(self.clone().feed());
        }
        self.state.read().expect("cache lock").ready
    }

    /// Waits until the cache has applied `revision` (false after [`FRESHNESS_WAIT`]).
    async fn reach(&self, revision: Revision) -> bool {
        let mut progress = self.progress.subscribe();
        tokio::time::timeout(FRESHNESS_WAIT, progress.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The objects in `range` and the revision they are current at, once the cache has
    /// reached `min_revision`; None when the cache cannot serve (not loaded, or too far behind).
    pub async fn list(
        self: &Arc<Self>,
        range: &KeyRange,
        min_revision: Option<Revision>,
    ) -> Option<(Revision, Vec<KeyValue>)> {
        if !self.ready() {
            return None;
        }
        if let Some(min) = min_revision
            && !self.reach(min).await
        {
            return None;
        }
        let state = self.state.read().expect("cache lock");
        if !state.ready {
            return None;
        }
        Some((state.revision, objects_in(&state, range)))
    }

    /// A watch of `range`; None when the cache cannot serve it — not loaded, or a start older
    /// than its window — and the caller watches the store. A start the cache has not reached
    /// within a few seconds fails with `FutureRevision`, as upstream's cacher answers.
    pub async fn watch(
        self: &Arc<Self>,
        range: KeyRange,
        start: Start,
    ) -> Option<Result<CachedWatch, StoreError>> {
        if !self.ready() {
            return None;
        }
        if let Start::After(rev) = start
            && !self.reach(rev).await
        {
            let current = *self.progress.borrow();
            return Some(Err(StoreError::FutureRevision {
                requested: rev,
                current,
            }));
        }
        let state = self.state.read().expect("cache lock");
        if !state.ready {
            return None;
        }
        // Subscribing under the lock: every event is either in the history read below or
        // arrives on the channel (the feeder publishes under the write lock).
        let signals = self.signals.subscribe();
        let (initial, after) = match start {
            Start::Now => (objects_in(&state, &range), state.revision),
            // Older than the window: the store's history may still have it (it answers 410
            // Expired itself once compaction took it).
            Start::After(rev) if rev < state.oldest => return None,
            Start::After(rev) => (Vec::new(), rev),
        };
        let replay: Vec<Arc<Event>> = state
            .history
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.revision() > after && range.contains(e.kv.key.as_bytes()))
            .cloned()
            .collect();
        let revision = state.revision;
        drop(state);
        let events = stream::iter(replay.into_iter().map(|e| Item::Event((*e).clone())))
            .chain(live_events(signals, range))
            .boxed();
        Some(Ok(CachedWatch {
            initial,
            revision: revision.max(after),
            events,
        }))
    }

    /// Loads everything, then follows the store's changes; reloads after any failure.
    async fn feed(self: Arc<Self>) {
        loop {
            match self.load().await {
                Ok(revision) => match self.store.watch(KeyRange::prefix(PREFIX), revision).await {
                    Ok(mut changes) => {
                        while let Some(change) = changes.next().await {
                            match change {
                                Ok(event) => self.apply(event),
                                Err(err) => {
                                    tracing::info!(%err, "watch cache: store watch ended; reloading");
                                    break;
                                }
                            }
                        }
                    }
                    Err(err) => tracing::warn!(%err, "watch cache: cannot watch the store"),
                },
                Err(err) => tracing::warn!(%err, "watch cache: cannot load from the store"),
            }
            {
                let mut state = self.state.write().expect("cache lock");
                state.ready = false;
                let _ = self.signals.send(Signal::Reset);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn load(&self) -> Result<Revision, StoreError> {
        let mut objects = BTreeMap::new();
        let mut range = KeyRange::prefix(PREFIX);
        let mut at = None;
        loop {
            let mut request = RangeRequest::new(range.clone());
            request.revision = at;
            request.limit = Some(LOAD_PAGE);
            let page = self.store.range(request).await?;
            at = Some(page.revision);
            let last = page.kvs.last().map(|kv| kv.key.clone());
            for kv in page.kvs {
                objects.insert(kv.key.clone(), kv);
            }
            match last {
                Some(last) if page.more => range = KeyRange::prefix_after(PREFIX, &last),
                _ => break,
            }
        }
        let revision = at.unwrap_or(0);
        let mut state = self.state.write().expect("cache lock");
        *state = State {
            ready: true,
            revision,
            objects,
            history: VecDeque::new(),
            oldest: revision,
        };
        self.progress.send_replace(revision);
        Ok(revision)
    }

    fn apply(&self, event: Event) {
        let event = Arc::new(event);
        let mut state = self.state.write().expect("cache lock");
        match event.kind {
            EventKind::Put => {
                state.objects.insert(event.kv.key.clone(), event.kv.clone());
            }
            EventKind::Delete => {
                state.objects.remove(&event.kv.key);
            }
        }
        state.revision = event.revision();
        let now = Instant::now();
        state.history.push_back((now, event.clone()));
        while let Some((at, oldest)) = state.history.front() {
            let too_many = state.history.len() > MAX_EVENTS;
            if !too_many && now.duration_since(*at) < MIN_WINDOW {
                break;
            }
            let rev = oldest.revision();
            state.history.pop_front();
            state.oldest = rev;
        }
        // Published under the lock (see `watch`); a full channel only means slow watchers lag.
        let _ = self.signals.send(Signal::Event(event));
        self.progress.send_replace(state.revision);
    }
}

fn objects_in(state: &State, range: &KeyRange) -> Vec<KeyValue> {
    let start = String::from_utf8_lossy(&range.start).into_owned();
    state
        .objects
        .range(start..)
        .take_while(|(k, _)| range.contains(k.as_bytes()))
        .map(|(_, kv)| kv.clone())
        .collect()
}

/// The live events of `range` (all newer than what the watch replayed: it subscribed under
/// the same lock the feeder publishes under), with progress now and then. Ends when the
/// watcher falls too far behind or the cache reloads: the client re-watches from its last
/// revision, as after any dropped watch.
fn live_events(signals: broadcast::Receiver<Signal>, range: KeyRange) -> BoxStream<'static, Item> {
    let last_progress = Instant::now();
    stream::unfold(Some((signals, range, last_progress)), |state| async move {
        let (mut signals, range, mut last_progress) = state?;
        loop {
            match signals.recv().await {
                Ok(Signal::Event(event)) if range.contains(event.kv.key.as_bytes()) => {
                    let event = (*event).clone();
                    return Some((Item::Event(event), Some((signals, range, last_progress))));
                }
                // Another resource's change: this watcher has seen everything up to it.
                Ok(Signal::Event(event)) if last_progress.elapsed() >= PROGRESS_INTERVAL => {
                    last_progress = Instant::now();
                    let item = Item::Progress(event.revision());
                    return Some((item, Some((signals, range, last_progress))));
                }
                Ok(Signal::Event(_)) => {}
                Ok(Signal::Reset) | Err(_) => return None,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap();
        (dir, Arc::new(store))
    }

    async fn loaded(store: &Arc<dyn Store>) -> Arc<Cache> {
        let cache = Cache::new(store.clone());
        for _ in 0..100 {
            if cache.ready() {
                return cache;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the cache did not load");
    }

    async fn put(store: &Arc<dyn Store>, key: &str, value: &str) -> Revision {
        match store
            .create(key, bytes::Bytes::from(value.to_owned()), None)
            .await
            .unwrap()
        {
            store::WriteOutcome::Written { revision, .. } => revision,
            other => panic!("{other:?}"),
        }
    }

    fn keys(items: &[KeyValue]) -> Vec<&str> {
        items.iter().map(|kv| kv.key.as_str()).collect()
    }

    #[tokio::test]
    async fn lists_and_watches_come_from_one_store_watch() {
        let (_dir, store) = store().await;
        put(&store, "/registry/pods/a/p1", "1").await;
        put(&store, "/registry/configmaps/a/c1", "1").await;
        let cache = loaded(&store).await;
        let pods = KeyRange::prefix("/registry/pods/");
        let (_, items) = cache.list(&pods, None).await.unwrap();
        assert_eq!(keys(&items), ["/registry/pods/a/p1"]);

        let mut watch = cache.watch(pods.clone(), Start::Now).await.unwrap().unwrap();
        assert_eq!(keys(&watch.initial), ["/registry/pods/a/p1"]);
        put(&store, "/registry/configmaps/a/c2", "2").await; // another resource: not seen
        let rev = put(&store, "/registry/pods/a/p2", "2").await;
        let Some(Item::Event(event)) = watch.events.next().await else {
            panic!("no event")
        };
        assert_eq!(
            (event.kv.key.as_str(), event.revision()),
            ("/registry/pods/a/p2", rev)
        );

        // A list at the latest revision waits for the cache to reach it.
        let (at, items) = cache.list(&pods, Some(rev)).await.unwrap();
        assert!(at >= rev);
        assert_eq!(items.len(), 2);

        // Resuming after a revision replays the window.
        let mut resumed = cache.watch(pods, Start::After(rev - 2)).await.unwrap().unwrap();
        let Some(Item::Event(event)) = resumed.events.next().await else {
            panic!("no replay")
        };
        assert_eq!(event.kv.key, "/registry/pods/a/p2");
    }

    #[tokio::test]
    async fn starts_outside_the_window_go_to_the_store_or_wait() {
        let (_dir, store) = store().await;
        let first = put(&store, "/registry/pods/a/p1", "1").await;
        let cache = loaded(&store).await;
        let pods = KeyRange::prefix("/registry/pods/");
        // Before the cache's window: not served (the store answers).
        assert!(cache.watch(pods.clone(), Start::After(first - 1)).await.is_none());
        // Far in the future: Too large resource version, after the wait.
        let err = cache
            .watch(pods, Start::After(first + 1000))
            .await
            .unwrap()
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    }
}
