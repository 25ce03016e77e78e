//! The scheduler's cache (upstream's `internal/cache`): every node's [`NodeInfo`], updated
//! incrementally from the pod and node watches and from the scheduler's own decisions. A pod
//! the scheduler has decided on is *assumed* on its node at once (so the next pod sees its
//! requests) and confirmed when the watch shows it bound, or forgotten when binding fails.
//!
//! [`Snapshot`] is what one scheduling cycle reads. Node infos are shared (`Arc`) and copied on
//! write, and a snapshot is brought up to date by replacing only the nodes that changed since
//! the last one, so taking it costs nothing per unchanged node.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

struct CachedPod {
    info: Arc<PodInfo>,
    node: String,
    assumed: bool,
}

#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, Arc<NodeInfo>>,
    /// Names of the nodes that have a Node object, in the order they appeared.
    order: Vec<String>,
    pods: HashMap<String, CachedPod>,
    /// Nodes changed since the last snapshot.
    dirty: HashSet<String>,
    /// The set of nodes (or their order) changed: the next snapshot is rebuilt.
    nodes_changed: bool,
    images_changed: bool,
}

/// What changed in a node update, for requeueing the pods that might now fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeChange {
    pub allocatable: bool,
    pub labels: bool,
    pub taints: bool,
    pub unschedulable: bool,
}

impl NodeChange {
    pub fn any(self) -> bool {
        self.allocatable || self.labels || self.taints || self.unschedulable
    }
}

impl Cache {
    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        self.dirty.insert(name.to_owned());
        Arc::make_mut(
            self.nodes
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(NodeInfo::new(name))),
        )
    }

    /// Adds or updates a node; says what changed (everything, for a new node).
    pub fn set_node(&mut self, node: Node) -> Option<NodeChange> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let old = self.nodes.get(&name).and_then(|n| n.node.clone());
        let change = match &old {
            None => None,
            Some(old) => Some(NodeChange {
                allocatable: old.status.as_ref().map(|s| &s.allocatable)
                    != node.status.as_ref().map(|s| &s.allocatable),
                labels: old.metadata.labels != node.metadata.labels,
                taints: old.spec.as_ref().map(|s| &s.taints) != node.spec.as_ref().map(|s| &s.taints),
                unschedulable: old.spec.as_ref().and_then(|s| s.unschedulable)
                    != node.spec.as_ref().and_then(|s| s.unschedulable),
            }),
        };
        let images_before = old.as_ref().map(|n| n.status.as_ref().map(|s| &s.images));
        if images_before != Some(node.status.as_ref().map(|s| &s.images)) {
            self.images_changed = true;
        }
        if old.is_none() {
            self.order.push(name.clone());
            self.nodes_changed = true;
        }
        self.node_mut(&name).set_node(Arc::new(node));
        change
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(info) = self.nodes.get(name) else {
            return;
        };
        if info.node.is_none() {
            return;
        }
        self.order.retain(|n| n != name);
        self.nodes_changed = true;
        self.images_changed = true;
        if info.pods.is_empty() {
            self.nodes.remove(name);
            self.dirty.remove(name);
        } else {
            // Its pods stay accounted until their deletions arrive.
            self.node_mut(name).node = None;
        }
    }

    /// A pod the watch shows bound to a node: confirms an assumed pod, or adds/updates it.
    /// Returns true when the pod is new to the cache (not merely confirmed or updated).
    pub fn add_or_update_pod(&mut self, info: Arc<PodInfo>) -> bool {
        let node = info.node_name().unwrap_or_default().to_owned();
        let uid = info.uid.clone();
        let mut is_new = true;
        if let Some(old) = self.pods.remove(&uid) {
            is_new = false;
            self.node_mut(&old.node).remove_pod(&uid);
        }
        self.node_mut(&node).add_pod(info.clone());
        self.pods.insert(
            uid,
            CachedPod {
                info,
                node,
                assumed: false,
            },
        );
        is_new
    }

    /// Removes a pod (deleted, or finished); the node it was on, if it was here.
    pub fn remove_pod(&mut self, uid: &str) -> Option<String> {
        let old = self.pods.remove(uid)?;
        self.node_mut(&old.node).remove_pod(uid);
        let node = self.nodes.get(&old.node);
        if node.is_some_and(|n| n.node.is_none() && n.pods.is_empty()) {
            self.nodes.remove(&old.node);
            self.dirty.remove(&old.node);
        }
        Some(old.node)
    }

    /// Counts a pod on the node the scheduler chose, before its binding is written.
    pub fn assume_pod(&mut self, info: Arc<PodInfo>, node: &str) {
        if self.pods.contains_key(&info.uid) {
            return;
        }
        self.node_mut(node).add_pod(info.clone());
        self.pods.insert(
            info.uid.clone(),
            CachedPod {
                info,
                node: node.to_owned(),
                assumed: true,
            },
        );
    }

    /// Undoes [`Cache::assume_pod`] after a failed binding (unless the watch confirmed it).
    pub fn forget_pod(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|p| p.assumed) {
            self.remove_pod(uid);
        }
    }

    pub fn pod(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.pods.get(uid).map(|p| p.info.clone())
    }

    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    /// Brings `snapshot` up to date with the cache.
    pub fn update_snapshot(&mut self, snapshot: &mut Snapshot) {
        if self.nodes_changed {
            snapshot.nodes = self
                .order
                .iter()
                .filter_map(|n| self.nodes.get(n).cloned())
                .collect();
            snapshot.index = self
                .order
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect();
            snapshot.with_affinity.clear();
            snapshot.with_required_anti_affinity.clear();
            snapshot.zone_pods_by_controller.clear();
            for (i, n) in snapshot.nodes.iter().enumerate() {
                account_zone_pods(&mut snapshot.zone_pods_by_controller, n, 1);
                if !n.pods_with_affinity.is_empty() {
                    snapshot.with_affinity.insert(i);
                }
                if !n.pods_with_required_anti_affinity.is_empty() {
                    snapshot.with_required_anti_affinity.insert(i);
                }
            }
        } else {
            for name in &self.dirty {
                let (Some(&i), Some(info)) = (snapshot.index.get(name), self.nodes.get(name)) else {
                    continue;
                };
                snapshot.replace(i, info.clone());
                if info.pods_with_affinity.is_empty() {
                    snapshot.with_affinity.remove(&i);
                } else {
                    snapshot.with_affinity.insert(i);
                }
                if info.pods_with_required_anti_affinity.is_empty() {
                    snapshot.with_required_anti_affinity.remove(&i);
                } else {
                    snapshot.with_required_anti_affinity.insert(i);
                }
            }
        }
        if self.images_changed {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for n in &snapshot.nodes {
                for image in n.images.keys() {
                    *counts.entry(image.clone()).or_default() += 1;
                }
            }
            snapshot.image_nodes = Arc::new(counts);
        }
        self.nodes_changed = false;
        self.images_changed = false;
        self.dirty.clear();
    }
}

/// The cluster as one scheduling cycle sees it.
#[derive(Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<Arc<NodeInfo>>,
    pub index: HashMap<String, usize>,
    /// Nodes with pods that have affinity terms / required anti-affinity terms.
    pub with_affinity: BTreeSet<usize>,
    pub with_required_anti_affinity: BTreeSet<usize>,
    /// How many nodes have each image (for ImageLocality's spread factor).
    pub image_nodes: Arc<HashMap<String, usize>>,
    /// Controller key → zone → its pods (not terminating) on nodes of that zone: default
    /// topology spreading's zone counts without a pass over every node per pod.
    pub zone_pods_by_controller: ZoneCounts,
}

impl Snapshot {
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A copy with one node replaced (preemption's what-if on a node without its victims).
    pub fn with_node(&self, node: Arc<NodeInfo>) -> Snapshot {
        let mut copy = self.clone();
        if let Some(&i) = self.index.get(&node.name) {
            copy.replace(i, node);
        }
        copy
    }

    fn replace(&mut self, i: usize, node: Arc<NodeInfo>) {
        let old = std::mem::replace(&mut self.nodes[i], node);
        account_zone_pods(&mut self.zone_pods_by_controller, &old, -1);
        account_zone_pods(&mut self.zone_pods_by_controller, &self.nodes[i], 1);
    }
}

/// Controller key → zone → pods.
pub type ZoneCounts = crate::FastMap<String, crate::FastMap<String, i64>>;

/// Adds (`sign` 1) or removes (-1) a node's pods to the per-controller zone counts.
fn account_zone_pods(counts: &mut ZoneCounts, node: &NodeInfo, sign: i64) {
    let Some(zone) = node.zone() else {
        return;
    };
    for (key, n) in &node.pods_by_controller {
        let zones = counts.entry(key.clone()).or_default();
        let count = zones.entry(zone.to_owned()).or_default();
        *count += sign * n;
        if *count == 0 {
            zones.remove(zone);
            if zones.is_empty() {
                counts.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
        }))
        .unwrap()
    }

    fn pod(uid: &str, node: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": uid, "namespace": "default", "uid": uid},
                "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]}
            }))
            .unwrap(),
        ))
    }

    fn zonal_node(name: &str, zone: &str) -> Node {
        let mut n = node(name);
        n.metadata.labels = Some([(crate::node_info::ZONE.to_owned(), zone.to_owned())].into());
        n
    }

    fn replica(uid: &str, node: &str, owner: &str, terminating: bool) -> Arc<PodInfo> {
        let mut info = PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": uid, "namespace": "default", "uid": uid,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                                  "uid": owner, "controller": true}]},
                "spec": {"nodeName": node, "containers": [{"name": "c"}]}
            }))
            .unwrap(),
        );
        info.terminating = terminating;
        Arc::new(info)
    }

    /// The zone index, recomputed from scratch.
    fn brute_force(snap: &Snapshot) -> ZoneCounts {
        let mut counts = ZoneCounts::default();
        for n in &snap.nodes {
            for p in n.pods.iter().filter(|p| !p.terminating) {
                if let (Some(zone), Some(key)) = (n.zone(), &p.controller_key) {
                    *counts
                        .entry(key.clone())
                        .or_default()
                        .entry(zone.to_owned())
                        .or_default() += 1;
                }
            }
        }
        counts
    }

    #[test]
    fn zone_counts_per_controller_follow_pods_and_relabelled_nodes() {
        let mut cache = Cache::default();
        cache.set_node(zonal_node("a", "z1"));
        cache.set_node(zonal_node("b", "z1"));
        cache.set_node(zonal_node("c", "z2"));
        cache.set_node(node("no-zone"));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        for (i, n) in ["a", "b", "c", "no-zone", "a"].iter().enumerate() {
            cache.add_or_update_pod(replica(&format!("p{i}"), n, "rs1", false));
        }
        cache.add_or_update_pod(replica("other", "c", "rs2", false));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.zone_pods_by_controller["default/rs1"]["z1"], 3);
        assert_eq!(snap.zone_pods_by_controller, brute_force(&snap));
        // A terminating pod stops counting; a removed one too; a node moves zones.
        cache.add_or_update_pod(replica("p0", "a", "rs1", true));
        cache.remove_pod("p2");
        cache.set_node(zonal_node("b", "z2"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.zone_pods_by_controller, brute_force(&snap));
        assert_eq!(snap.zone_pods_by_controller["default/rs1"].get("z2"), Some(&1));
        cache.remove_pod("other");
        cache.update_snapshot(&mut snap);
        assert!(!snap.zone_pods_by_controller.contains_key("default/rs2"));
        assert_eq!(snap.zone_pods_by_controller, brute_force(&snap));
    }

    #[test]
    fn assume_confirm_forget_and_incremental_snapshots() {
        let mut cache = Cache::default();
        cache.set_node(node("a"));
        cache.set_node(node("b"));
        let mut snap = Snapshot::default();
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.len(), 2);
        let before = snap.get("b").unwrap().clone();

        cache.assume_pod(pod("p1", ""), "a");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 500);
        // The unchanged node is shared, not copied.
        assert!(Arc::ptr_eq(&before, snap.get("b").unwrap()));

        // Confirmed by the watch: still counted once.
        cache.add_or_update_pod(pod("p1", "a"));
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().pods.len(), 1);
        cache.forget_pod("p1"); // confirmed pods are not forgotten
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("a").unwrap().requested.milli_cpu, 500);

        cache.assume_pod(pod("p2", ""), "b");
        cache.forget_pod("p2");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.get("b").unwrap().requested.milli_cpu, 0);

        cache.remove_node("a");
        cache.update_snapshot(&mut snap);
        assert_eq!(snap.len(), 1);
        cache.remove_pod("p1");
        assert!(!cache.nodes.contains_key("a"));
    }
}
