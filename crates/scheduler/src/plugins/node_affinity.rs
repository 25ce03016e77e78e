//! NodeAffinity: Filter requires the pod's `nodeSelector` and required node affinity terms
//! (labels, and `matchFields` on `metadata.name`) to match the node; PreFilter narrows the
//! nodes when the terms name them; Score adds the weights of the matching preferred terms.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::helpers::{NodeTerm, any_term_matches, default_normalize};
use crate::cache::Snapshot;
use crate::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreFilterResult, PreScorePlugin, ScorePlugin, Status,
};
use crate::node_info::NodeInfo;
use crate::pod_info::PodInfo;

pub const NAME: &str = "NodeAffinity";
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
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

/// The pod's required placement: nodeSelector labels and required terms (None: no terms).
#[derive(Clone)]
pub struct Required {
    node_selector: BTreeMap<String, String>,
    terms: Option<Vec<NodeTerm>>,
}

impl Required {
    pub fn of(pod: &PodInfo) -> Required {
        let spec = pod.pod.spec.as_ref();
        let terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|sel| sel.node_selector_terms.iter().map(NodeTerm::new).collect());
        Required {
            node_selector: spec.and_then(|s| s.node_selector.clone()).unwrap_or_default(),
            terms,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.terms.is_none()
    }

    pub fn matches(&self, node: &NodeInfo) -> bool {
        let labels = node.labels();
        self.node_selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| any_term_matches(terms, labels, &node.name))
    }
}

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, _: &Snapshot) -> (PreFilterResult, Status) {
        let required = Required::of(pod);
        if required.is_empty() {
            return (None, Status::skip());
        }
        // Every term names its nodes: only those need filtering.
        let names = required.terms.as_ref().and_then(|terms| {
            let mut all = HashSet::new();
            for t in terms {
                all.extend(t.names()?);
            }
            Some(all)
        });
        state.write(NAME, required);
        (names, Status::success())
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let fits = match state.read::<Required>(NAME) {
            Some(required) => required.matches(node),
            None => Required::of(pod).matches(node),
        };
        if fits {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

#[derive(Clone)]
struct Preferred(Vec<(NodeTerm, i64)>);

const PREFERRED: &str = "NodeAffinity/preferred";

impl PreScorePlugin for NodeAffinity {
    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _: &[Arc<NodeInfo>], _: &Snapshot) -> Status {
        let terms: Vec<(NodeTerm, i64)> = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| na.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0)
            .map(|t| (NodeTerm::new(&t.preference), i64::from(t.weight)))
            .collect();
        if terms.is_empty() {
            return Status::skip();
        }
        state.write(PREFERRED, Preferred(terms));
        Status::success()
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(Preferred(terms)) = state.read(PREFERRED) else {
            return 0;
        };
        terms
            .iter()
            .filter(|(t, _)| t.matches(node.labels(), &node.name))
            .map(|(_, w)| w)
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[Arc<NodeInfo>], scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}
