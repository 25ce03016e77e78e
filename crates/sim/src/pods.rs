//! Running the pods bound to hollow nodes: one pod watch (pods with a `spec.nodeName`) shared
//! by every node feeds a work queue; bounded workers report each pod's status as its kubelet
//! would, and finish deleted pods (containers terminated, then delete with grace period 0).
//! One node watch follows the nodes' `spec.podCIDR`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::queue::Queue;
use crate::{Sim, WRITE_CONCURRENCY, node, pod_status};

/// The pods bound to our nodes, by `namespace/name`, as the watch last showed them.
type PodCache = HashMap<String, Arc<Value>>;

#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    sim: Arc<Sim>,
    queue: Queue,
    receiver: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<String>>>,
    pods: Mutex<PodCache>,
    /// Keys of the pods on each node (to requeue a node's pods when it resumes or gets a range).
    by_node: Mutex<Vec<std::collections::HashSet<String>>>,
}

impl Runner {
    pub fn start(sim: Arc<Sim>) -> Runner {
        let (queue, receiver) = Queue::new();
        let nodes = sim.config.nodes;
        Runner {
            inner: Arc::new(Inner {
                sim,
                queue,
                receiver: Mutex::new(Some(receiver)),
                pods: Mutex::default(),
                by_node: Mutex::new(vec![Default::default(); nodes]),
            }),
        }
    }

    /// Queues every pod of node `index` (it resumed, or got its pod range).
    pub fn requeue_node(&self, index: usize) {
        let keys: Vec<String> = lock(&self.inner.by_node)[index].iter().cloned().collect();
        for key in keys {
            self.inner.queue.add(key);
        }
    }

    /// The pod watch and the workers; runs for good.
    pub async fn run(self) -> anyhow::Result<()> {
        let Some(mut receiver) = lock(&self.inner.receiver).take() else {
            anyhow::bail!("the pod runner runs once");
        };
        let watch = self.clone().watch_pods();
        let workers = async {
            let permits = Arc::new(Semaphore::new(WRITE_CONCURRENCY));
            while let Some(key) = receiver.recv().await {
                let permit = permits.clone().acquire_owned().await?;
                let runner = self.clone();
                tokio::spawn(async move {
                    runner.inner.queue.start(&key);
                    if let Err(err) = runner.sync(&key).await {
                        tracing::warn!(pod = %key, "hollow kubelet: {err:#}");
                        // Retried on the pod's next change or after a pause, as the kubelet's
                        // status manager retries.
                        let again = runner.clone();
                        let key2 = key.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            again.inner.queue.add(key2);
                        });
                    }
                    runner.inner.queue.done(&key);
                    drop(permit);
                });
            }
            anyhow::Ok(())
        };
        tokio::select! {
            result = watch => result,
            result = workers => result,
        }
    }

    async fn watch_pods(self) -> anyhow::Result<()> {
        let api: Api<Pod> = Api::all(self.inner.sim.client.clone());
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut events = watcher(api, config).default_backoff().boxed();
        let mut listed: Option<PodCache> = None;
        while let Some(event) = events.try_next().await? {
            match event {
                watcher::Event::Init => listed = Some(HashMap::new()),
                watcher::Event::InitApply(pod) => {
                    let pod = pod_status::trim(serde_json::to_value(&pod)?);
                    if let (Some(listed), Some(key)) = (listed.as_mut(), key_of(&pod)) {
                        listed.insert(key, Arc::new(pod));
                    }
                }
                watcher::Event::InitDone => {
                    // A fresh list: pods missing from it are gone.
                    let fresh = listed.take().unwrap_or_default();
                    let old = std::mem::take(&mut *lock(&self.inner.pods));
                    for (key, pod) in &old {
                        if !fresh.contains_key(key) {
                            self.forget(key, pod);
                        }
                    }
                    for (key, pod) in fresh {
                        self.observe(key, pod);
                    }
                }
                watcher::Event::Apply(pod) => {
                    let pod = pod_status::trim(serde_json::to_value(&pod)?);
                    if let Some(key) = key_of(&pod) {
                        self.observe(key, Arc::new(pod));
                    }
                }
                watcher::Event::Delete(pod) => {
                    let pod = serde_json::to_value(&pod)?;
                    if let Some(key) = key_of(&pod) {
                        let old = lock(&self.inner.pods).remove(&key);
                        if let Some(old) = old {
                            self.forget(&key, &old);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A pod as the watch shows it: cached and queued if it is on one of our nodes.
    fn observe(&self, key: String, pod: Arc<Value>) {
        let Some(index) = pod["spec"]["nodeName"]
            .as_str()
            .and_then(|n| self.inner.sim.index(n))
        else {
            return;
        };
        lock(&self.inner.by_node)[index].insert(key.clone());
        lock(&self.inner.pods).insert(key.clone(), pod);
        self.inner.queue.add(key);
    }

    fn forget(&self, key: &str, pod: &Value) {
        if let Some(index) = pod["spec"]["nodeName"]
            .as_str()
            .and_then(|n| self.inner.sim.index(n))
        {
            lock(&self.inner.by_node)[index].remove(key);
            if let Some(ips) = self.inner.sim.node(index).pod_ips.as_mut() {
                ips.release(key);
            }
        }
    }

    /// What the kubelet of the pod's node does about it now.
    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let Some(pod) = lock(&self.inner.pods).get(key).cloned() else {
            return Ok(());
        };
        let sim = &self.inner.sim;
        let Some(index) = pod["spec"]["nodeName"].as_str().and_then(|n| sim.index(n)) else {
            return Ok(());
        };
        let (namespace, name) = key.split_once('/').unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(sim.client.clone(), namespace);
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let now = node::now();
        let (down, ip) = {
            let mut state = sim.node(index);
            let reported = pod["status"]["podIP"].as_str();
            let deleting = pod["metadata"]["deletionTimestamp"].is_string();
            let terminal = matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            let ip = match state.pod_ips.as_mut() {
                Some(ips) if !deleting && !terminal => ips.assign(key, &uid, reported),
                _ => None,
            };
            (state.down, ip)
        };
        if down {
            // A dead kubelet does nothing; the pod is looked at again when the node resumes.
            return Ok(());
        }
        if pod["metadata"]["deletionTimestamp"].is_string() {
            if !pod_status::is_terminated(&pod) {
                let patch = json!({"status": pod_status::terminated(&pod, &now)});
                match api
                    .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            let options = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            return match api.delete(name, &options).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if matches!(pod["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
            return Ok(());
        }
        let Some(ip) = ip else {
            // No pod range yet (requeued when node IPAM assigns one), or the range is full.
            return Ok(());
        };
        let ip = ip.to_string();
        if pod_status::is_running(&pod) && pod["status"]["podIP"] == ip.as_str() {
            return Ok(());
        }
        let host = node::internal_ip(index).to_string();
        let patch = json!({"status": pod_status::running(&pod, &host, &ip, &now)});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The node watch: learns each hollow node's uid and pod range (node IPAM assigns it
    /// after registration) and keeps the current Node for status comparisons.
    pub async fn watch_nodes(self) -> anyhow::Result<()> {
        let sim = self.inner.sim.clone();
        let api: Api<Node> = Api::all(sim.client.clone());
        let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = events.try_next().await? {
            let node = match event {
                watcher::Event::Apply(node) | watcher::Event::InitApply(node) => node,
                _ => continue,
            };
            let name = node.metadata.name.as_deref().unwrap_or_default();
            let Some(index) = sim.index(name) else {
                continue;
            };
            let value = serde_json::to_value(&node)?;
            let cidr = value["spec"]["podCIDR"].as_str().map(str::to_owned);
            let got_range = {
                let mut state = sim.node(index);
                state.uid = node.metadata.uid.clone();
                state.current = Some(Arc::new(value));
                // A range once assigned stays (podCIDR is immutable); it replaces a fallback.
                let assigned = cidr
                    .as_deref()
                    .filter(|c| Some(*c) != state.pod_ips.as_ref().map(|p| p.cidr()))
                    .and_then(crate::podips::PodIps::new);
                let got_range = assigned.is_some();
                if got_range {
                    state.pod_ips = assigned;
                }
                got_range
            };
            if got_range {
                self.requeue_node(index);
            }
        }
        Ok(())
    }
}

fn key_of(pod: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str()?,
        pod["metadata"]["name"].as_str()?
    ))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
