//! InterPodAffinity: Filter enforces the pod's required affinity and anti-affinity to other
//! pods by topology domain (`topologyKey`), and the required anti-affinity of pods already
//! running; Score adds the weights of preferred terms (both the pod's and existing pods').
//! Terms select pods by label selector in `namespaces` / by `namespaceSelector`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::cache::Snapshot;
use crate::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Status,
};
use crate::node_info::NodeInfo;
use crate::pod_info::{AffinityTerm, NamespaceLabels, PodInfo};

pub const NAME: &str = "InterPodAffinity";
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// The weight of existing pods' *required* affinity terms when scoring (upstream's default
/// `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Pair = (String, String);

pub struct InterPodAffinity {
    pub namespaces: Arc<RwLock<NamespaceLabels>>,
}

impl Plugin for InterPodAffinity {
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

#[derive(Clone, Default)]
struct FilterState {
    /// Domains where an existing pod's required anti-affinity matches the incoming pod.
    existing_anti: HashMap<Pair, i64>,
    /// Domains with pods matching all the incoming pod's affinity terms.
    affinity: HashMap<Pair, i64>,
    /// Domains with pods matching one of the incoming pod's anti-affinity terms.
    anti_affinity: HashMap<Pair, i64>,
}

fn pair(term: &AffinityTerm, node: &NodeInfo) -> Option<Pair> {
    node.labels()
        .get(&term.topology_key)
        .map(|v| (term.topology_key.clone(), v.clone()))
}

fn bump(map: &mut HashMap<Pair, i64>, key: Pair, by: i64) {
    let v = map.entry(key.clone()).or_default();
    *v += by;
    if *v == 0 {
        map.remove(&key);
    }
}

impl InterPodAffinity {
    fn ns(&self) -> std::sync::RwLockReadGuard<'_, NamespaceLabels> {
        self.namespaces.read().expect("namespace labels lock")
    }

    /// Counts `existing` (on `node`) into the incoming pod's filter state, `by` = ±1.
    fn count(
        &self,
        st: &mut FilterState,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        ns: &NamespaceLabels,
        by: i64,
    ) {
        for term in &existing.required_anti_affinity {
            if term.matches(pod, ns)
                && let Some(p) = pair(term, node)
            {
                bump(&mut st.existing_anti, p, by);
            }
        }
        if !pod.required_affinity.is_empty() && pod.required_affinity.iter().all(|t| t.matches(existing, ns))
        {
            for term in &pod.required_affinity {
                if let Some(p) = pair(term, node) {
                    bump(&mut st.affinity, p, by);
                }
            }
        }
        for term in &pod.required_anti_affinity {
            if term.matches(existing, ns)
                && let Some(p) = pair(term, node)
            {
                bump(&mut st.anti_affinity, p, by);
            }
        }
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let has_own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !has_own && snapshot.with_required_anti_affinity.is_empty() {
            return (None, Status::skip());
        }
        let ns = self.ns();
        let mut st = FilterState::default();
        if has_own {
            for node in &snapshot.nodes {
                for existing in &node.pods {
                    self.count(&mut st, pod, existing, node, &ns, 1);
                }
            }
        } else {
            for &i in &snapshot.with_required_anti_affinity {
                let node = &snapshot.nodes[i];
                for existing in &node.pods_with_required_anti_affinity {
                    self.count(&mut st, pod, existing, node, &ns, 1);
                }
            }
        }
        drop(ns);
        state.write(NAME, st);
        (None, Status::success())
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        let ns = self.ns();
        if let Some(st) = state.read_mut::<FilterState>(NAME) {
            self.count(st, pod, added, node, &ns, 1);
        }
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        let ns = self.ns();
        if let Some(st) = state.read_mut::<FilterState>(NAME) {
            self.count(st, pod, removed, node, &ns, -1);
        }
    }
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        if !pod.required_affinity.is_empty() {
            let mut pods_exist = true;
            for term in &pod.required_affinity {
                match pair(term, node) {
                    None => return Status::unresolvable(ERR_AFFINITY),
                    Some(p) => {
                        if st.affinity.get(&p).copied().unwrap_or(0) <= 0 {
                            pods_exist = false;
                        }
                    }
                }
            }
            if !pods_exist {
                // The first pod of a group that selects itself may go anywhere with the keys.
                let ns = self.ns();
                let self_match = pod.required_affinity.iter().all(|t| t.matches(pod, &ns));
                if !(st.affinity.is_empty() && self_match) {
                    return Status::unresolvable(ERR_AFFINITY);
                }
            }
        }
        for term in &pod.required_anti_affinity {
            if let Some(p) = pair(term, node)
                && st.anti_affinity.get(&p).copied().unwrap_or(0) > 0
            {
                return Status::unschedulable(ERR_ANTI_AFFINITY);
            }
        }
        if !st.existing_anti.is_empty() {
            for (k, v) in node.labels() {
                if st
                    .existing_anti
                    .get(&(k.clone(), v.clone()))
                    .copied()
                    .unwrap_or(0)
                    > 0
                {
                    return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
                }
            }
        }
        Status::success()
    }
}

#[derive(Clone, Default)]
struct ScoreState(HashMap<Pair, i64>);

const SCORE_KEY: &str = "InterPodAffinity/score";

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let has_preferred = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_preferred && snapshot.with_affinity.is_empty() {
            return Status::skip();
        }
        let ns = self.ns();
        let mut scores: HashMap<Pair, i64> = HashMap::new();
        let mut visit = |existing: &PodInfo, node: &NodeInfo| {
            let mut add = |term: &AffinityTerm, weight: i64| {
                if let Some(p) = pair(term, node) {
                    *scores.entry(p).or_default() += weight;
                }
            };
            for t in &pod.preferred_affinity {
                if t.term.matches(existing, &ns) {
                    add(&t.term, t.weight);
                }
            }
            for t in &pod.preferred_anti_affinity {
                if t.term.matches(existing, &ns) {
                    add(&t.term, -t.weight);
                }
            }
            for t in &existing.preferred_affinity {
                if t.term.matches(pod, &ns) {
                    add(&t.term, t.weight);
                }
            }
            for t in &existing.preferred_anti_affinity {
                if t.term.matches(pod, &ns) {
                    add(&t.term, -t.weight);
                }
            }
            for t in &existing.required_affinity {
                if t.matches(pod, &ns) {
                    add(t, HARD_POD_AFFINITY_WEIGHT);
                }
            }
        };
        if has_preferred {
            for node in &snapshot.nodes {
                for existing in &node.pods {
                    visit(existing, node);
                }
            }
        } else {
            for &i in &snapshot.with_affinity {
                let node = &snapshot.nodes[i];
                for existing in &node.pods_with_affinity {
                    visit(existing, node);
                }
            }
        }
        drop(ns);
        scores.retain(|_, v| *v != 0);
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(SCORE_KEY, ScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(ScoreState(scores)) = state.read(SCORE_KEY) else {
            return 0;
        };
        let labels = node.labels();
        scores
            .iter()
            .filter(|((k, v), _)| labels.get(k) == Some(v))
            .map(|(_, s)| s)
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[Arc<NodeInfo>], scores: &mut [i64]) {
        let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
            return;
        };
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}
