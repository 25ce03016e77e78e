//! The pods bound to nodes, indexed by node name, kept from the controllers' shared pod watch:
//! what node controllers need without relisting pods per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;

use crate::informer::{Cache, Change, Shared, Subscription};

type Index = HashMap<String, HashMap<String, Arc<Pod>>>;

pub struct PodsByNode {
    index: Arc<Mutex<Index>>,
    cache: Cache<Pod>,
    _subscription: Subscription<Pod>,
}

impl PodsByNode {
    /// The index, following `pods` from now on (and seeded with what its cache holds).
    pub fn new(pods: &Shared<Pod>) -> PodsByNode {
        let index: Arc<Mutex<Index>> = Arc::default();
        let handler_index = index.clone();
        let (cache, subscription) = pods.subscribe(move |(old, new): Change<Pod>| {
            let mut index = lock(&handler_index);
            if let Some(old) = old {
                remove(&mut index, &old);
            }
            if let Some(new) = new {
                insert(&mut index, new);
            }
        });
        // Subscribed first, then seeded under the lock: a change the handler applies after
        // this is newer than what the cache held here.
        {
            let mut index = lock(&index);
            for pod in cache.all() {
                insert(&mut index, pod);
            }
        }
        PodsByNode {
            index,
            cache,
            _subscription: subscription,
        }
    }

    /// Waits for the first complete list.
    pub async fn synced(&self) {
        self.cache.wait_synced().await;
    }

    pub fn on(&self, node: &str) -> Vec<Arc<Pod>> {
        lock(&self.index)
            .get(node)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// The pod's node ("" when unscheduled) and its `namespace/name`.
fn node_and_key(pod: &Pod) -> (&str, String) {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    (node, key)
}

fn insert(index: &mut Index, pod: Arc<Pod>) {
    let (node, key) = node_and_key(&pod);
    if node.is_empty() {
        return;
    }
    let node = node.to_owned();
    index.entry(node).or_default().insert(key, pod);
}

fn remove(index: &mut Index, pod: &Pod) {
    let (node, key) = node_and_key(pod);
    if let Some(pods) = index.get_mut(node) {
        pods.remove(&key);
        if pods.is_empty() {
            index.remove(node);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
