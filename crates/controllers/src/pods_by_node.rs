//! The pods bound to nodes, indexed by node name, from one pod watch (`spec.nodeName!=`):
//! what node controllers need without relisting pods per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

type Index = HashMap<String, HashMap<String, Arc<Pod>>>;

#[derive(Clone)]
pub struct PodsByNode {
    index: Arc<Mutex<Index>>,
    synced: watch::Receiver<bool>,
}

impl PodsByNode {
    /// The index and the future that keeps it up to date (run it alongside its users).
    pub fn new(client: kube::Client) -> (PodsByNode, impl Future<Output = anyhow::Result<()>>) {
        let index: Arc<Mutex<Index>> = Arc::default();
        let (tx, synced) = watch::channel(false);
        let pods = PodsByNode {
            index: index.clone(),
            synced,
        };
        let driver = async move {
            let api: Api<Pod> = Api::all(client);
            let config = watcher::Config::default().fields("spec.nodeName!=");
            let mut events = watcher(api, config).default_backoff().boxed();
            let mut listed: Index = HashMap::new();
            while let Some(event) = events.try_next().await? {
                match event {
                    watcher::Event::Init => listed.clear(),
                    watcher::Event::InitApply(pod) => insert(&mut listed, pod),
                    watcher::Event::InitDone => {
                        *lock(&index) = std::mem::take(&mut listed);
                        let _ = tx.send(true);
                    }
                    watcher::Event::Apply(pod) => insert(&mut lock(&index), pod),
                    watcher::Event::Delete(pod) => {
                        let (node, key) = node_and_key(&pod);
                        if let Some(pods) = lock(&index).get_mut(&node) {
                            pods.remove(&key);
                        }
                    }
                }
            }
            Ok(())
        };
        (pods, driver)
    }

    /// Waits for the first complete list.
    pub async fn synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }

    pub fn on(&self, node: &str) -> Vec<Arc<Pod>> {
        lock(&self.index)
            .get(node)
            .map(|pods| pods.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn node_and_key(pod: &Pod) -> (String, String) {
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let key = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    (node, key)
}

fn insert(index: &mut Index, mut pod: Pod) {
    // Field ownership is most of a pod's size and no node controller reads it.
    pod.metadata.managed_fields = None;
    let (node, key) = node_and_key(&pod);
    index.entry(node).or_default().insert(key, Arc::new(pod));
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
