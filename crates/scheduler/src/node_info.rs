//! A node with everything the plugins ask of it, kept up to date incrementally (upstream's
//! `framework.NodeInfo`): its pods, what they request, the host ports they hold, the pods with
//! affinity terms, and the images the node already has.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Taint};

use crate::pod_info::{HostPort, PodInfo};
use crate::resources::Resource;

#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    pub name: String,
    /// None while pods are known on a node the node watch has not shown (or no longer shows).
    pub node: Option<Arc<Node>>,
    pub allocatable: Resource,
    /// Image name (each of its names, normalized) → size in bytes.
    pub images: HashMap<String, i64>,
    pub pods: Vec<Arc<PodInfo>>,
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// The sum of the pods' effective requests.
    pub requested: Resource,
    /// cpu and memory requested, counting upstream's defaults for containers that name none.
    pub non_zero_cpu: i64,
    pub non_zero_memory: i64,
    pub used_ports: Vec<HostPort>,
    /// Pods that are not terminating, by `PodInfo::controller_key` (default topology spreading
    /// counts them per node for every pod it scores).
    pub pods_by_controller: crate::FastMap<String, i64>,
}

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl NodeInfo {
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            ..NodeInfo::default()
        }
    }

    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        self.allocatable = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .map(Resource::from_list)
            .unwrap_or_default();
        self.images.clear();
        for image in status.and_then(|s| s.images.as_ref()).into_iter().flatten() {
            for name in image.names.iter().flatten() {
                self.images
                    .insert(normalized_image_name(name), image.size_bytes.unwrap_or(0));
            }
        }
        self.node = Some(node);
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&NO_LABELS)
    }

    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
    }

    pub fn unschedulable(&self) -> bool {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_cpu += pod.non_zero_cpu;
        self.non_zero_memory += pod.non_zero_memory;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_affinity() {
            self.pods_with_affinity.push(pod.clone());
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        if let Some(key) = pod.controller_key.as_ref().filter(|_| !pod.terminating) {
            *self.pods_by_controller.entry(key.clone()).or_default() += 1;
        }
        self.pods.push(pod);
    }

    /// This node's pods (not terminating) of the controller `key`.
    pub fn controller_pods(&self, key: &str) -> i64 {
        self.pods_by_controller.get(key).copied().unwrap_or(0)
    }

    pub fn zone(&self) -> Option<&str> {
        self.labels().get(ZONE).map(String::as_str)
    }

    /// Removes the pod with this UID; false when it is not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(at) = self.pods.iter().position(|p| p.uid == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(at);
        self.pods_with_affinity.retain(|p| p.uid != uid);
        self.pods_with_required_anti_affinity.retain(|p| p.uid != uid);
        self.requested.sub(&pod.requests);
        self.non_zero_cpu -= pod.non_zero_cpu;
        self.non_zero_memory -= pod.non_zero_memory;
        if let Some(key) = pod.controller_key.as_ref().filter(|_| !pod.terminating)
            && let Some(n) = self.pods_by_controller.get_mut(key)
        {
            *n -= 1;
            if *n <= 0 {
                self.pods_by_controller.remove(key);
            }
        }
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
        true
    }
}

/// `nginx` → `nginx:latest`, as upstream's ImageLocality normalizes names (a digest or a tag
/// is kept as it is).
pub fn normalized_image_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}
