//! A watch-fed cache of one resource with change callbacks: client-go's shared informer in
//! small. One list+watch (kube-rs's watcher, which relists and resumes by itself) keeps an
//! in-memory copy indexed by namespace; every change calls the handler with the old and the
//! new object, so controllers can react to what changed (a pod's labels, its deletion).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::Resource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

type Objects<K> = HashMap<String, HashMap<String, Arc<K>>>;

/// The cache: namespace → name → object. Cheap to clone.
pub struct Cache<K> {
    objects: Arc<RwLock<Objects<K>>>,
    synced: watch::Receiver<bool>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            objects: self.objects.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<K> Cache<K> {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects.get(namespace).and_then(|m| m.get(name)).cloned()
    }

    /// Every object in `namespace`.
    pub fn list(&self, namespace: &str) -> Vec<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object in every namespace.
    pub fn all(&self) -> Vec<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// Waits until the first full list has arrived.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }
}

/// What changed: `(None, Some)` added, `(Some, Some)` updated, `(Some, None)` deleted.
pub type Change<K> = (Option<Arc<K>>, Option<Arc<K>>);

/// Starts watching `api`; returns the cache and the future that feeds it (run it for good),
/// calling `on_change` for every change after it is in the cache.
pub fn informer<K, F>(
    api: kube::Api<K>,
    on_change: F,
) -> (Cache<K>, impl std::future::Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    F: Fn(Change<K>) + Send + Sync + 'static,
{
    let (synced_tx, synced_rx) = watch::channel(false);
    let cache = Cache {
        objects: Arc::default(),
        synced: synced_rx,
    };
    let objects = cache.objects.clone();
    let feed = async move {
        let config = watcher::Config::default().page_size(500);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        // Objects seen since the last (re)list began, to find the ones deleted meanwhile.
        let mut relisted: Option<HashMap<(String, String), ()>> = None;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    tracing::debug!("watch error: {err}");
                    continue;
                }
            };
            match event {
                Event::Init => relisted = Some(HashMap::new()),
                Event::InitApply(obj) | Event::Apply(obj) => {
                    let key = key_of(&obj);
                    if let Some(seen) = relisted.as_mut() {
                        seen.insert(key.clone(), ());
                    }
                    let new = Arc::new(obj);
                    let old = objects
                        .write()
                        .expect("cache lock")
                        .entry(key.0)
                        .or_default()
                        .insert(key.1, new.clone());
                    on_change((old, Some(new)));
                }
                Event::Delete(obj) => {
                    let key = key_of(&obj);
                    let old = remove(&objects, &key);
                    on_change((Some(old.unwrap_or_else(|| Arc::new(obj))), None));
                }
                Event::InitDone => {
                    let seen = relisted.take().unwrap_or_default();
                    let gone: Vec<(String, String)> = {
                        let objects = objects.read().expect("cache lock");
                        objects
                            .iter()
                            .flat_map(|(ns, m)| m.keys().map(move |n| (ns.clone(), n.clone())))
                            .filter(|k| !seen.contains_key(k))
                            .collect()
                    };
                    for key in gone {
                        if let Some(old) = remove(&objects, &key) {
                            on_change((Some(old), None));
                        }
                    }
                    let _ = synced_tx.send(true);
                }
            }
        }
    };
    (cache, feed)
}

fn key_of<K: Resource>(obj: &K) -> (String, String) {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

fn remove<K>(objects: &RwLock<Objects<K>>, key: &(String, String)) -> Option<Arc<K>> {
    let mut objects = objects.write().expect("cache lock");
    let ns = objects.get_mut(&key.0)?;
    let old = ns.remove(&key.1);
    if ns.is_empty() {
        objects.remove(&key.0);
    }
    old
}

type Handler<K> = Arc<dyn Fn(Change<K>) + Send + Sync>;
type Handlers<K> = Arc<RwLock<Vec<(u64, Handler<K>)>>>;

/// One watch shared by every controller that needs the resource (client-go's shared informer
/// factory, in small): one cache, any number of change handlers. The watch starts with the
/// first subscription and runs for good; a handler stays until its [`Subscription`] drops (a
/// restarted controller subscribes again). A late subscriber sees changes from then on; the
/// cache already holds everything before.
pub struct Shared<K> {
    api: kube::Api<K>,
    cache: std::sync::Mutex<Option<Cache<K>>>,
    handlers: Handlers<K>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Keeps a handler registered; dropping it unregisters the handler.
pub struct Subscription<K> {
    id: u64,
    handlers: Handlers<K>,
}

impl<K> Drop for Subscription<K> {
    fn drop(&mut self) {
        self.handlers
            .write()
            .expect("handlers lock")
            .retain(|(id, _)| *id != self.id);
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    pub fn new(api: kube::Api<K>) -> Shared<K> {
        Shared {
            api,
            cache: std::sync::Mutex::default(),
            handlers: Arc::default(),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The shared cache, with `on_change` called for every change from now on.
    pub fn subscribe<F>(&self, on_change: F) -> (Cache<K>, Subscription<K>)
    where
        F: Fn(Change<K>) + Send + Sync + 'static,
    {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.handlers
            .write()
            .expect("handlers lock")
            .push((id, Arc::new(on_change)));
        let subscription = Subscription {
            id,
            handlers: self.handlers.clone(),
        };
        let mut cache = self.cache.lock().expect("informer lock");
        let cache = cache.get_or_insert_with(|| {
            let handlers = self.handlers.clone();
            let (cache, feed) = informer(self.api.clone(), move |change: Change<K>| {
                // Handlers only enqueue keys: calling them under the read lock is cheap.
                for (_, handler) in handlers.read().expect("handlers lock").iter() {
                    handler(change.clone());
                }
            });
            tokio::spawn(feed);
            cache
        });
        (cache.clone(), subscription)
    }
}
