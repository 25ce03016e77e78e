//! NodeResourcesFit: Filter checks the pod's requests (cpu, memory, ephemeral-storage,
//! extended resources, and one more pod) against what is left of the node's allocatable;
//! Score ranks nodes by the configured strategy, LeastAllocated (default: spread) or
//! MostAllocated (bin packing), over cpu and memory with weight 1 each.

use crate::framework::{CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, ScorePlugin, Status};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub const NAME: &str = "NodeResourcesFit";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScoringStrategy {
    #[default]
    LeastAllocated,
    MostAllocated,
}

pub struct NodeResourcesFit {
    pub strategy: ScoringStrategy,
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// The reasons the pod does not fit the node (upstream's `fitsRequest`), empty when it fits.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push("Too many pods".to_owned());
    }
    let req = &pod.requests;
    if req.is_zero() {
        return reasons;
    }
    let used = &node.requested;
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu - used.milli_cpu {
        reasons.push("Insufficient cpu".to_owned());
    }
    if req.memory > 0 && req.memory > alloc.memory - used.memory {
        reasons.push("Insufficient memory".to_owned());
    }
    if req.ephemeral_storage > 0 && req.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage {
        reasons.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, want) in &req.scalar {
        if *want > 0 && *want > alloc.scalar(name) - used.scalar(name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            return Status::success();
        }
        Status {
            code: crate::framework::Code::Unschedulable,
            reasons,
            plugin: NAME,
        }
    }
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let per_resource = [
            (node.non_zero_cpu + pod.non_zero_cpu, node.allocatable.milli_cpu),
            (
                node.non_zero_memory + pod.non_zero_memory,
                node.allocatable.memory,
            ),
        ];
        let (mut total, mut weights) = (0, 0);
        for (requested, capacity) in per_resource {
            if capacity == 0 {
                continue;
            }
            total += match self.strategy {
                ScoringStrategy::LeastAllocated => least_requested(requested, capacity),
                ScoringStrategy::MostAllocated => most_requested(requested, capacity),
            };
            weights += 1;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}
