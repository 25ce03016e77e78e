//! PodTopologySpread: spreads matching pods evenly over topology domains. Filter enforces the
//! pod's `DoNotSchedule` constraints (skew = pods in the domain + self − the global minimum ≤
//! maxSkew, with minDomains and the node inclusion policies); Score prefers domains with fewer
//! matching pods for `ScheduleAnyway` constraints, and for pods without constraints applies
//! upstream's system defaults (hostname maxSkew 3, zone maxSkew 5) to the pods of the same
//! controller.

use std::sync::Arc;

use rayon::prelude::*;

use super::helpers::first_untolerated;
use super::node_affinity::Required;
use crate::cache::Snapshot;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Status,
};
use crate::node_info::{HOSTNAME, NodeInfo, ZONE};
use crate::pod_info::{PodInfo, Requirement, Selector, SelectorOp};
use crate::{FastMap, FastSet};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
    fn pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Which pods a constraint counts.
#[derive(Clone, Debug)]
enum SpreadSelector {
    Labels(Selector),
    /// System defaults: the pods of the same controller (upstream builds the selector from the
    /// owning ReplicaSet / StatefulSet / Service).
    SameController(String),
}

#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: SpreadSelector,
    min_domains: usize,
    honor_node_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn counts(&self, other: &PodInfo, namespace: &str) -> bool {
        if other.namespace != namespace || other.terminating {
            return false;
        }
        match &self.selector {
            SpreadSelector::Labels(s) => s.matches(other.labels()),
            SpreadSelector::SameController(key) => other.controller_key.as_deref() == Some(key),
        }
    }

    fn count_on(&self, node: &NodeInfo, namespace: &str) -> i64 {
        match &self.selector {
            SpreadSelector::SameController(key) => node.controller_pods(key),
            SpreadSelector::Labels(_) => {
                node.pods.iter().filter(|p| self.counts(p, namespace)).count() as i64
            }
        }
    }

    /// Whether the node takes part in this constraint's domains (nodeAffinityPolicy,
    /// nodeTaintsPolicy).
    fn includes(&self, pod: &PodInfo, required: &Required, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !required.matches(node) {
            return false;
        }
        if self.honor_taints
            && first_untolerated(node.taints(), pod.tolerations(), &["NoSchedule", "NoExecute"]).is_some()
        {
            return false;
        }
        true
    }
}

/// The pod's own constraints with `whenUnsatisfiable` = `DoNotSchedule` (hard) or not.
fn own_constraints(pod: &PodInfo, hard: bool) -> Vec<Constraint> {
    let spec = pod.pod.spec.as_ref();
    let labels = pod.labels();
    spec.and_then(|s| s.topology_spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| (c.when_unsatisfiable == "DoNotSchedule") == hard)
        .map(|c| {
            let mut selector = Selector::from_api(c.label_selector.as_ref());
            // matchLabelKeys: the pod's own values of those keys join the selector.
            if let Selector::Requirements(reqs) = &mut selector {
                for key in c.match_label_keys.iter().flatten() {
                    if let Some(v) = labels.and_then(|l| l.get(key)) {
                        reqs.push(Requirement {
                            key: key.clone(),
                            op: SelectorOp::In,
                            values: vec![v.clone()],
                        });
                    }
                }
            }
            Constraint {
                max_skew: i64::from(c.max_skew),
                topology_key: c.topology_key.clone(),
                selector: SpreadSelector::Labels(selector),
                min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
                honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn system_default_constraints(pod: &PodInfo) -> Vec<Constraint> {
    let Some(controller) = pod.controller_key.clone() else {
        return Vec::new();
    };
    [(HOSTNAME, 3), (ZONE, 5)]
        .into_iter()
        .map(|(key, skew)| Constraint {
            max_skew: skew,
            topology_key: key.to_owned(),
            selector: SpreadSelector::SameController(controller.clone()),
            min_domains: 1,
            honor_node_affinity: true,
            honor_taints: false,
        })
        .collect()
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    let labels = node.labels();
    constraints.iter().all(|c| labels.contains_key(&c.topology_key))
}

#[derive(Clone)]
struct FilterState {
    constraints: Vec<Constraint>,
    required: Required,
    /// Per constraint: domain (label value) → matching pods.
    match_num: Vec<FastMap<String, i64>>,
    /// Per constraint: the smallest match count over its domains (0 below minDomains).
    min_match: Vec<i64>,
}

impl FilterState {
    fn recompute_minimums(&mut self) {
        self.min_match = self
            .constraints
            .iter()
            .zip(&self.match_num)
            .map(|(c, counts)| {
                if counts.len() < c.min_domains {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                }
            })
            .collect();
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        if !has_all_keys(node, &self.constraints) {
            return;
        }
        for (i, c) in self.constraints.iter().enumerate() {
            if c.includes(pod, &self.required, node) && c.counts(other, &pod.namespace) {
                let value = node.labels()[&c.topology_key].clone();
                *self.match_num[i].entry(value).or_default() += by;
            }
        }
        self.recompute_minimums();
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let constraints = own_constraints(pod, true);
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let required = Required::of(pod);
        let mut match_num: Vec<FastMap<String, i64>> = vec![FastMap::default(); constraints.len()];
        for node in &snapshot.nodes {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, &required, node) {
                    continue;
                }
                let value = &node.labels()[&c.topology_key];
                let count = c.count_on(node, &pod.namespace);
                match match_num[i].get_mut(value.as_str()) {
                    Some(n) => *n += count,
                    None => {
                        match_num[i].insert(value.clone(), count);
                    }
                }
            }
        }
        let mut st = FilterState {
            constraints,
            required,
            match_num,
            min_match: Vec::new(),
        };
        st.recompute_minimums();
        state.write(NAME, st);
        (None, Status::success())
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>(NAME) {
            st.update(pod, added, node, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>(NAME) {
            st.update(pod, removed, node, -1);
        }
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        let labels = node.labels();
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_MISSING_LABEL);
            };
            let self_match = i64::from(match &c.selector {
                SpreadSelector::Labels(s) => s.matches(pod.labels()),
                SpreadSelector::SameController(key) => pod.controller_key.as_deref() == Some(key),
            });
            let matched = st.match_num[i].get(value.as_str()).copied().unwrap_or(0);
            if matched + self_match - st.min_match[i] > c.max_skew {
                return Status::unschedulable(ERR_CONSTRAINTS);
            }
        }
        Status::success()
    }
}

#[derive(Clone)]
struct ScoreState {
    constraints: Vec<Constraint>,
    ignored: FastSet<String>,
    /// Per constraint (not hostname): domain → matching pods.
    pair_counts: Vec<FastMap<String, i64>>,
    weights: Vec<f64>,
}

const SCORE_KEY: &str = "PodTopologySpread/score";

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let has_own = pod.pod.spec.as_ref().is_some_and(|s| {
            s.topology_spread_constraints
                .as_ref()
                .is_some_and(|c| !c.is_empty())
        });
        let (constraints, require_all) = if has_own {
            (own_constraints(pod, false), true)
        } else {
            (system_default_constraints(pod), false)
        };
        if constraints.is_empty() {
            return Status::skip();
        }
        let required = Required::of(pod);
        let mut ignored = FastSet::default();
        let mut pair_counts: Vec<FastMap<String, i64>> = vec![FastMap::default(); constraints.len()];
        for node in nodes {
            if require_all && !has_all_keys(node, &constraints) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME {
                    continue;
                }
                let Some(value) = node.labels().get(&c.topology_key) else {
                    continue;
                };
                if !pair_counts[i].contains_key(value.as_str()) {
                    pair_counts[i].insert(value.clone(), 0);
                }
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    pair_counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        // Zone counts of the default constraints come from the snapshot's index when every
        // node takes part (no required node affinity, taints not honoured): the same sums as
        // the pass below.
        let indexed: Vec<bool> = constraints
            .iter()
            .map(|c| {
                !require_all
                    && c.topology_key == ZONE
                    && matches!(c.selector, SpreadSelector::SameController(_))
                    && !c.honor_taints
                    && (!c.honor_node_affinity || required.is_empty())
            })
            .collect();
        for (i, c) in constraints.iter().enumerate() {
            if let (true, SpreadSelector::SameController(key)) = (indexed[i], &c.selector)
                && let Some(zones) = snapshot.zone_pods_by_controller.get(key)
            {
                for (zone, n) in pair_counts[i].iter_mut() {
                    *n += zones.get(zone).copied().unwrap_or(0);
                }
            }
        }
        if pair_counts
            .iter()
            .zip(&indexed)
            .any(|(m, indexed)| !indexed && !m.is_empty())
        {
            // Every node's matching pods, counted in parallel (the one per-pod pass over all
            // nodes in scoring, as upstream's).
            let empty = || vec![FastMap::<&str, i64>::default(); constraints.len()];
            let counted = snapshot
                .nodes
                .par_iter()
                .with_min_len(256)
                .fold(empty, |mut acc, node| {
                    // Nodes without pods add nothing.
                    if node.pods.is_empty() || (require_all && !has_all_keys(node, &constraints)) {
                        return acc;
                    }
                    for (i, c) in constraints.iter().enumerate() {
                        if indexed[i] || c.topology_key == HOSTNAME || !c.includes(pod, &required, node) {
                            continue;
                        }
                        let Some(value) = node.labels().get(&c.topology_key) else {
                            continue;
                        };
                        if pair_counts[i].contains_key(value.as_str()) {
                            let n = c.count_on(node, &pod.namespace);
                            if n > 0 {
                                *acc[i].entry(value.as_str()).or_default() += n;
                            }
                        }
                    }
                    acc
                })
                .reduce(empty, |mut a, b| {
                    for (into, from) in a.iter_mut().zip(b) {
                        for (k, v) in from {
                            *into.entry(k).or_default() += v;
                        }
                    }
                    a
                });
            for (i, m) in counted.into_iter().enumerate() {
                for (k, v) in m {
                    if let Some(n) = pair_counts[i].get_mut(k) {
                        *n += v;
                    }
                }
            }
        }
        state.write(
            SCORE_KEY,
            ScoreState {
                constraints,
                ignored,
                pair_counts,
                weights,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(st) = state.read::<ScoreState>(SCORE_KEY) else {
            return 0;
        };
        if !st.ignored.is_empty() && st.ignored.contains(&node.name) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(value) = node.labels().get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == HOSTNAME {
                c.count_on(node, &pod.namespace)
            } else {
                st.pair_counts[i].get(value.as_str()).copied().unwrap_or(0)
            };
            score += count as f64 * st.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, nodes: &[Arc<NodeInfo>], scores: &mut [i64]) {
        let Some(st) = state.read::<ScoreState>(SCORE_KEY) else {
            return;
        };
        let considered = || {
            nodes
                .iter()
                .zip(scores.iter())
                .filter(|(n, _)| st.ignored.is_empty() || !st.ignored.contains(&n.name))
                .map(|(_, s)| *s)
        };
        let min = considered().min().unwrap_or(0);
        let max = considered().max().unwrap_or(0);
        for (node, s) in nodes.iter().zip(scores.iter_mut()) {
            *s = if !st.ignored.is_empty() && st.ignored.contains(&node.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}
