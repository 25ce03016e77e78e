//! Running a profile's plugins at each extension point (upstream's `frameworkImpl`), and the
//! FitError message users see in FailedScheduling events.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use super::{Code, CycleState, Framework, MAX_NODE_SCORE, NodeToStatus, PreFilterResult, Status};
use crate::cache::Snapshot;
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

/// Below this many nodes every node is filtered (upstream's `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// How many feasible nodes to find before scoring (upstream's `numFeasibleNodesToFind`):
/// all of a small cluster; of a large one a percentage, by default 50% less 1% per 125 nodes.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = percentage as usize;
    if percentage == 0 {
        percentage = 50usize
            .saturating_sub(num_all_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    (num_all_nodes * percentage.min(100) / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

impl Framework {
    /// Runs every PreFilter; the first rejection ends it. Results (node name sets) intersect.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut result: PreFilterResult = None;
        for plugin in &self.pre_filter {
            let Some(p) = plugin.pre_filter() else { continue };
            let (nodes, status) = p.pre_filter(state, pod, snapshot);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filter.push(plugin.name());
                    continue;
                }
                _ => return (None, status.with_plugin(plugin.name())),
            }
            if let Some(nodes) = nodes {
                result = Some(match result {
                    None => nodes,
                    Some(prev) => prev.intersection(&nodes).cloned().collect(),
                });
                if result.as_ref().is_some_and(HashSet::is_empty) {
                    let reason = format!(
                        "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                        plugin.name()
                    );
                    return (result, Status::unresolvable(reason).with_plugin(plugin.name()));
                }
            }
        }
        (result, Status::success())
    }

    /// Runs the Filter plugins on one node; the first failure is the node's status.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for plugin in &self.filter {
            if !state.skip_filter.is_empty() && state.skip_filter.contains(&plugin.name()) {
                continue;
            }
            let Some(p) = plugin.filter() else { continue };
            let status = p.filter(state, pod, node);
            if !status.is_success() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Filters with the pods nominated to this node (of at least this pod's priority) counted
    /// as if already there, then without them, as upstream's `RunFilterPluginsWithNominatedPods`:
    /// the pod must fit both ways.
    pub fn run_filter_with_nominated(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        nominated: &[Arc<PodInfo>],
    ) -> Status {
        let relevant: Vec<&Arc<PodInfo>> = nominated
            .iter()
            .filter(|n| n.uid != pod.uid && n.priority >= pod.priority)
            .collect();
        if relevant.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let mut with = node.clone();
        for n in relevant {
            with.add_pod(n.clone());
        }
        let status = self.run_filter(state, pod, &with);
        if !status.is_success() {
            return status;
        }
        self.run_filter(state, pod, node)
    }

    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        for plugin in &self.pre_score {
            let Some(p) = plugin.pre_score() else { continue };
            let status = p.pre_score(state, pod, nodes, snapshot);
            match status.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_score.push(plugin.name());
                }
                _ => return status.with_plugin(plugin.name()),
            }
        }
        Status::success()
    }

    /// Each node's weighted total over the Score plugins (nodes scored in parallel, then each
    /// plugin's scores normalized).
    pub fn run_score(&self, state: &CycleState, pod: &PodInfo, nodes: &[Arc<NodeInfo>]) -> Vec<i64> {
        let active: Vec<(&dyn super::ScorePlugin, i64)> = self
            .score
            .iter()
            .filter(|(p, _)| !state.skip_score.contains(&p.name()))
            .filter_map(|(p, w)| p.score().map(|s| (s, *w)))
            .collect();
        let raw: Vec<Vec<i64>> = nodes
            .par_iter()
            .with_min_len(64)
            .map(|n| active.iter().map(|(p, _)| p.score(state, pod, n)).collect())
            .collect();
        let mut totals = vec![0i64; nodes.len()];
        for (i, (plugin, weight)) in active.iter().enumerate() {
            let mut column: Vec<i64> = raw.iter().map(|r| r[i]).collect();
            plugin.normalize(state, pod, nodes, &mut column);
            for (t, s) in totals.iter_mut().zip(&column) {
                *t += s.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        totals
    }

    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for (i, plugin) in self.reserve.iter().enumerate() {
            let Some(p) = plugin.reserve() else { continue };
            let status = p.reserve(state, pod, node);
            if !status.is_success() {
                for undo in self.reserve[..=i].iter().rev() {
                    if let Some(u) = undo.reserve() {
                        u.unreserve(state, pod, node);
                    }
                }
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }
}

/// Why a pod fits no node: per-node statuses and the PreFilter / PostFilter messages.
#[derive(Debug, Default)]
pub struct Diagnosis {
    pub node_to_status: NodeToStatus,
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
    /// Plugins that rejected the pod (for requeueing on the events they care about).
    pub unschedulable_plugins: HashSet<&'static str>,
}

/// Upstream's `FitError.Error()`: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had
/// untolerated taint {k: v}. preemption: …". Reasons are counted over nodes, printed as
/// "N reason" and sorted as strings.
pub fn fit_error_message(num_all_nodes: usize, diagnosis: &Diagnosis) -> String {
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !diagnosis.pre_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", diagnosis.pre_filter_msg));
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for status in diagnosis.node_to_status.values() {
            for reason in &status.reasons {
                *counts.entry(reason.as_str()).or_default() += 1;
            }
        }
        let mut reasons: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        reasons.sort();
        if !reasons.is_empty() {
            msg.push_str(&format!(" {}.", reasons.join(", ")));
        }
    }
    if !diagnosis.post_filter_msg.is_empty() {
        msg.push_str(&format!(" {}.", diagnosis.post_filter_msg));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_is_adaptive() {
        assert_eq!(num_feasible_nodes_to_find(0, 3), 3);
        assert_eq!(num_feasible_nodes_to_find(0, 99), 99);
        assert_eq!(num_feasible_nodes_to_find(0, 100), 100);
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
        assert_eq!(num_feasible_nodes_to_find(50, 1000), 500);
    }

    #[test]
    fn fit_error_counts_and_sorts_reasons() {
        let mut d = Diagnosis::default();
        d.node_to_status
            .insert("a".into(), Status::unschedulable("Insufficient cpu"));
        d.node_to_status.insert(
            "b".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        d.node_to_status.insert(
            "c".into(),
            Status::unresolvable("node(s) had untolerated taint {k: v}"),
        );
        d.post_filter_msg = "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.".into();
        assert_eq!(
            fit_error_message(3, &d),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {k: v}. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.."
        );
    }
}
