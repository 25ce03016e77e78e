//! The in-tree plugins, one module each, the registry (name → factory) and upstream's default
//! profile (which plugins, in which order, with which score weights).

use std::sync::{Arc, RwLock};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::Config;
use crate::api::ApiWriter;
use crate::framework::{Framework, Plugin};
use crate::pod_info::NamespaceLabels;

pub mod balanced_allocation;
pub mod default_binder;
pub mod default_preemption;
pub mod helpers;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod taint_toleration;

/// What plugin factories may use.
#[derive(Clone, Default)]
pub struct Handle {
    pub client: Option<kube::Client>,
    pub api: Option<ApiWriter>,
    pub namespaces: Arc<RwLock<NamespaceLabels>>,
    pub pdbs: Arc<RwLock<Vec<PodDisruptionBudget>>>,
    pub config: Config,
}

/// Builds a plugin; None when the handle lacks what it needs (a binder without a client).
pub type Factory = fn(&Handle) -> Option<Arc<dyn Plugin>>;

/// Every in-tree plugin by its upstream name.
pub const REGISTRY: &[(&str, Factory)] = &[
    (priority_sort::NAME, |_| {
        Some(Arc::new(priority_sort::PrioritySort))
    }),
    (node_unschedulable::NAME, |_| {
        Some(Arc::new(node_unschedulable::NodeUnschedulable))
    }),
    (node_name::NAME, |_| Some(Arc::new(node_name::NodeName))),
    (taint_toleration::NAME, |_| {
        Some(Arc::new(taint_toleration::TaintToleration))
    }),
    (node_affinity::NAME, |_| {
        Some(Arc::new(node_affinity::NodeAffinity))
    }),
    (node_ports::NAME, |_| Some(Arc::new(node_ports::NodePorts))),
    (node_resources_fit::NAME, |h| {
        Some(Arc::new(node_resources_fit::NodeResourcesFit {
            strategy: h.config.scoring_strategy,
        }))
    }),
    (pod_topology_spread::NAME, |_| {
        Some(Arc::new(pod_topology_spread::PodTopologySpread))
    }),
    (inter_pod_affinity::NAME, |h| {
        Some(Arc::new(inter_pod_affinity::InterPodAffinity {
            namespaces: h.namespaces.clone(),
        }))
    }),
    (default_preemption::NAME, |h| {
        Some(Arc::new(default_preemption::DefaultPreemption {
            api: h.api.clone(),
            pdbs: h.pdbs.clone(),
        }))
    }),
    (balanced_allocation::NAME, |_| {
        Some(Arc::new(balanced_allocation::BalancedAllocation))
    }),
    (image_locality::NAME, |_| {
        Some(Arc::new(image_locality::ImageLocality))
    }),
    (default_binder::NAME, |h| {
        h.client
            .clone()
            .map(|client| Arc::new(default_binder::DefaultBinder { client }) as Arc<dyn Plugin>)
    }),
];

/// Upstream's default profile (v1 `getDefaultPlugins` MultiPoint), in order, with score
/// weights (0 = not a Score plugin). Filter order decides which reason a node reports.
pub const DEFAULT_PROFILE: &[(&str, i64)] = &[
    (priority_sort::NAME, 0),
    (node_unschedulable::NAME, 0),
    (node_name::NAME, 0),
    (taint_toleration::NAME, 3),
    (node_affinity::NAME, 2),
    (node_ports::NAME, 0),
    (node_resources_fit::NAME, 1),
    (pod_topology_spread::NAME, 2),
    (inter_pod_affinity::NAME, 2),
    (default_preemption::NAME, 0),
    (balanced_allocation::NAME, 1),
    (image_locality::NAME, 1),
    (default_binder::NAME, 0),
];

/// The default profile's framework.
pub fn default_framework(handle: &Handle) -> Framework {
    let mut queue_sort: Option<Arc<dyn Plugin>> = None;
    let mut fw = Framework {
        scheduler_name: crate::api::DEFAULT_SCHEDULER_NAME.to_owned(),
        queue_sort: Arc::new(priority_sort::PrioritySort),
        pre_filter: Vec::new(),
        filter: Vec::new(),
        post_filter: Vec::new(),
        pre_score: Vec::new(),
        score: Vec::new(),
        reserve: Vec::new(),
        bind: Vec::new(),
        percentage_of_nodes_to_score: handle.config.percentage_of_nodes_to_score,
    };
    for (name, weight) in DEFAULT_PROFILE {
        let Some((_, factory)) = REGISTRY.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let Some(plugin) = factory(handle) else { continue };
        if plugin.queue_sort().is_some() && queue_sort.is_none() {
            queue_sort = Some(plugin.clone());
        }
        if plugin.pre_filter().is_some() {
            fw.pre_filter.push(plugin.clone());
        }
        if plugin.filter().is_some() {
            fw.filter.push(plugin.clone());
        }
        if plugin.post_filter().is_some() {
            fw.post_filter.push(plugin.clone());
        }
        if plugin.pre_score().is_some() {
            fw.pre_score.push(plugin.clone());
        }
        if plugin.score().is_some() {
            fw.score.push((plugin.clone(), *weight));
        }
        if plugin.reserve().is_some() {
            fw.reserve.push(plugin.clone());
        }
        if plugin.bind().is_some() {
            fw.bind.push(plugin.clone());
        }
    }
    if let Some(q) = queue_sort {
        fw.queue_sort = q;
    }
    fw
}
