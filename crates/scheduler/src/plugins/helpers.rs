//! Matching shared by several plugins: tolerations against taints, and node selector terms
//! (node affinity) against a node's labels and name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Taint, Toleration};

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeOp {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
    Invalid,
}

#[derive(Clone, Debug)]
struct NodeRequirement {
    key: String,
    op: NodeOp,
    values: Vec<String>,
}

impl NodeRequirement {
    fn new(r: &NodeSelectorRequirement) -> NodeRequirement {
        let op = match r.operator.as_str() {
            "In" => NodeOp::In,
            "NotIn" => NodeOp::NotIn,
            "Exists" => NodeOp::Exists,
            "DoesNotExist" => NodeOp::DoesNotExist,
            "Gt" => NodeOp::Gt,
            "Lt" => NodeOp::Lt,
            _ => NodeOp::Invalid,
        };
        NodeRequirement {
            key: r.key.clone(),
            op,
            values: r.values.clone().unwrap_or_default(),
        }
    }

    fn matches(&self, value: Option<&str>) -> bool {
        let number = |s: &str| s.parse::<i64>().ok();
        match self.op {
            NodeOp::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            NodeOp::NotIn => value.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            NodeOp::Exists => value.is_some(),
            NodeOp::DoesNotExist => value.is_none(),
            NodeOp::Gt | NodeOp::Lt => {
                let (Some(v), Some(bound)) = (
                    value.and_then(number),
                    self.values.first().and_then(|b| number(b)),
                ) else {
                    return false;
                };
                if self.op == NodeOp::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
            NodeOp::Invalid => false,
        }
    }
}

/// One compiled node selector term: label expressions and `metadata.name` field expressions.
#[derive(Clone, Debug)]
pub struct NodeTerm {
    expressions: Vec<NodeRequirement>,
    fields: Vec<NodeRequirement>,
}

impl NodeTerm {
    pub fn new(term: &NodeSelectorTerm) -> NodeTerm {
        NodeTerm {
            expressions: term
                .match_expressions
                .iter()
                .flatten()
                .map(NodeRequirement::new)
                .collect(),
            fields: term
                .match_fields
                .iter()
                .flatten()
                .map(NodeRequirement::new)
                .collect(),
        }
    }

    /// An empty term matches no node, as upstream's.
    pub fn matches(&self, labels: &BTreeMap<String, String>, node_name: &str) -> bool {
        if self.expressions.is_empty() && self.fields.is_empty() {
            return false;
        }
        self.expressions
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
            && self
                .fields
                .iter()
                .all(|r| r.key == "metadata.name" && r.matches(Some(node_name)))
    }

    /// The node names this term restricts to, when it is `metadata.name In [...]` only.
    pub fn names(&self) -> Option<Vec<String>> {
        let [field] = self.fields.as_slice() else {
            return None;
        };
        (field.key == "metadata.name" && field.op == NodeOp::In).then(|| field.values.clone())
    }
}

/// Terms ORed together (`nodeSelectorTerms`).
pub fn any_term_matches(terms: &[NodeTerm], labels: &BTreeMap<String, String>, node_name: &str) -> bool {
    terms.iter().any(|t| t.matches(labels, node_name))
}

/// Scales raw scores into 0..=100 by the highest (upstream's `DefaultNormalizeScore`); with
/// `reverse`, fewer is better.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores
                .iter_mut()
                .for_each(|s| *s = crate::framework::MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = crate::framework::MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = crate::framework::MAX_NODE_SCORE - *s;
        }
    }
}
