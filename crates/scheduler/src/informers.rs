//! The scheduler's view of the cluster, from one watch per resource (list once, then watch,
//! relisting only when the watch breaks): pods feed the cache (bound pods) and the queue
//! (pending pods that are ours); nodes feed the cache; namespaces (labels, for affinity
//! `namespaceSelector`) and PodDisruptionBudgets (for preemption) are kept as they are.
//! Changes that may make pending pods schedulable are passed to the queue as cluster events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;

use crate::api::DEFAULT_SCHEDULER_NAME;
use crate::cache::Cache;
use crate::pod_info::{NamespaceLabels, PodInfo};
use crate::queue::{ClusterEvent, SchedulingQueue};

/// Runs a watch and hands each object to `apply` / `delete`. After each (re)list, objects that
/// disappeared meanwhile are deleted. `synced` is told once, after the first list.
async fn follow<K, A, D>(api: Api<K>, synced: mpsc::Sender<()>, mut apply: A, mut delete: D)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
    A: FnMut(K),
    D: FnMut(&str),
{
    let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut known: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut relisted: Option<std::collections::HashSet<String>> = None;
    let mut told = false;
    let key = |o: &K| {
        let m = o.meta();
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default()
        )
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(obj)) => {
                known.insert(key(&obj));
                apply(obj);
            }
            Ok(watcher::Event::Delete(obj)) => {
                let k = key(&obj);
                known.remove(&k);
                delete(&k);
            }
            Ok(watcher::Event::Init) => relisted = Some(Default::default()),
            Ok(watcher::Event::InitApply(obj)) => {
                let k = key(&obj);
                if let Some(r) = relisted.as_mut() {
                    r.insert(k.clone());
                }
                known.insert(k);
                apply(obj);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = relisted.take() {
                    let gone: Vec<String> = known.difference(&r).cloned().collect();
                    for k in gone {
                        known.remove(&k);
                        delete(&k);
                    }
                }
                if !told {
                    told = true;
                    let _ = synced.send(()).await;
                }
            }
            Err(err) => tracing::debug!("scheduler watch error: {err}"),
        }
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether this scheduler is the one to place the pod.
fn responsible(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == DEFAULT_SCHEDULER_NAME)
        && spec.is_none_or(|s| s.scheduling_gates.as_ref().is_none_or(Vec::is_empty))
}

pub async fn pods(
    client: kube::Client,
    cache: Arc<Mutex<Cache>>,
    queue: Arc<SchedulingQueue>,
    synced: mpsc::Sender<()>,
) {
    // Pods by namespace/name → uid, to resolve deletions.
    let uids: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let uids_on_delete = uids.clone();
    let (cache_d, queue_d) = (cache.clone(), queue.clone());
    follow(
        Api::<Pod>::all(client),
        synced,
        move |pod: Pod| {
            let info = Arc::new(PodInfo::new(pod));
            uids.lock()
                .expect("uids lock")
                .insert(info.key(), info.uid.clone());
            let terminal = is_terminal(&info.pod);
            if info.node_name().is_some() {
                queue.delete(&info.uid);
                if terminal {
                    let removed = cache.lock().expect("cache lock").remove_pod(&info.uid);
                    if removed.is_some() {
                        queue.on_event(ClusterEvent::AssignedPodDelete);
                    }
                    return;
                }
                let (old, is_new) = {
                    let mut c = cache.lock().expect("cache lock");
                    let old = c.pod(&info.uid);
                    (old, c.add_or_update_pod(info.clone()))
                };
                if is_new {
                    queue.on_event(ClusterEvent::AssignedPodAdd);
                } else if old.is_some_and(|o| o.labels() != info.labels()) {
                    queue.on_event(ClusterEvent::AssignedPodUpdate);
                }
            } else if responsible(&info.pod) && !terminal && !info.terminating {
                queue.add_or_update(info);
            } else {
                queue.delete(&info.uid);
            }
        },
        move |key: &str| {
            let Some(uid) = uids_on_delete.lock().expect("uids lock").remove(key) else {
                return;
            };
            queue_d.delete(&uid);
            let removed = cache_d.lock().expect("cache lock").remove_pod(&uid);
            if removed.is_some() {
                queue_d.on_event(ClusterEvent::AssignedPodDelete);
            }
        },
    )
    .await;
}

pub async fn nodes(
    client: kube::Client,
    cache: Arc<Mutex<Cache>>,
    queue: Arc<SchedulingQueue>,
    synced: mpsc::Sender<()>,
) {
    let cache_d = cache.clone();
    follow(
        Api::<Node>::all(client),
        synced,
        move |node: Node| {
            let change = cache.lock().expect("cache lock").set_node(node);
            match change {
                None => queue.on_event(ClusterEvent::NodeAdd),
                Some(c) if c.any() => queue.on_event(ClusterEvent::NodeUpdate(c)),
                Some(_) => {}
            }
        },
        move |key: &str| {
            let name = key.trim_start_matches('/');
            cache_d.lock().expect("cache lock").remove_node(name);
        },
    )
    .await;
}

pub async fn namespaces(
    client: kube::Client,
    labels: Arc<RwLock<NamespaceLabels>>,
    synced: mpsc::Sender<()>,
) {
    let labels_d = labels.clone();
    follow(
        Api::<Namespace>::all(client),
        synced,
        move |ns: Namespace| {
            let name = ns.metadata.name.clone().unwrap_or_default();
            let l = ns.metadata.labels.clone().unwrap_or_default();
            labels.write().expect("namespace labels lock").insert(name, l);
        },
        move |key: &str| {
            labels_d
                .write()
                .expect("namespace labels lock")
                .remove(key.trim_start_matches('/'));
        },
    )
    .await;
}

pub async fn pdbs(
    client: kube::Client,
    pdbs: Arc<RwLock<Vec<PodDisruptionBudget>>>,
    synced: mpsc::Sender<()>,
) {
    let by_key: Arc<Mutex<HashMap<String, PodDisruptionBudget>>> = Arc::default();
    let (by_key_d, pdbs_d) = (by_key.clone(), pdbs.clone());
    let publish = |map: &HashMap<String, PodDisruptionBudget>, out: &RwLock<Vec<PodDisruptionBudget>>| {
        *out.write().expect("pdb lock") = map.values().cloned().collect();
    };
    follow(
        Api::<PodDisruptionBudget>::all(client),
        synced,
        move |pdb: PodDisruptionBudget| {
            let key = format!(
                "{}/{}",
                pdb.metadata.namespace.as_deref().unwrap_or_default(),
                pdb.metadata.name.as_deref().unwrap_or_default()
            );
            let mut map = by_key.lock().expect("pdb map lock");
            map.insert(key, pdb);
            publish(&map, &pdbs);
        },
        move |key: &str| {
            let mut map = by_key_d.lock().expect("pdb map lock");
            map.remove(key);
            publish(&map, &pdbs_d);
        },
    )
    .await;
}
