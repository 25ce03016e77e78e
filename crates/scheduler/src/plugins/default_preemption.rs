//! DefaultPreemption (PostFilter): when a pod fits no node, looks for a node where evicting
//! pods of lower priority would make it fit, keeping as many of them as possible (those whose
//! PodDisruptionBudget forbids disruption first), picks the node whose victims matter least,
//! deletes the victims and nominates the node for the pod (`status.nominatedNodeName`). The pod
//! is tried again once the victims are gone.

use std::sync::{Arc, RwLock};

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use crate::api::ApiWriter;
use crate::framework::runtime::{Diagnosis, fit_error_message};
use crate::framework::{
    Code, CycleState, Framework, NodeToStatus, Plugin, PostFilterContext, PostFilterPlugin, Status,
};
use crate::node_info::NodeInfo;
use crate::pod_info::{PodInfo, Selector};

pub const NAME: &str = "DefaultPreemption";
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

pub struct DefaultPreemption {
    pub api: Option<ApiWriter>,
    pub pdbs: Arc<RwLock<Vec<PodDisruptionBudget>>>,
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
    fn post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

/// A node where preemption would work, and at what cost.
struct Candidate {
    node: String,
    /// Most important first.
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

/// Higher priority first, then the one that started earlier (upstream's `MoreImportantPod`).
fn more_important_first(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| a.start_time().cmp(&b.start_time()))
}

impl DefaultPreemption {
    /// Pods (most important first) split into those whose eviction would violate a PDB and the
    /// rest (upstream's `filterPodsWithPDBViolation`).
    fn split_by_pdb(&self, pods: Vec<Arc<PodInfo>>) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
        let pdbs = self.pdbs.read().expect("pdb lock");
        let mut allowed: Vec<i64> = pdbs
            .iter()
            .map(|p| p.status.as_ref().map_or(0, |s| i64::from(s.disruptions_allowed)))
            .collect();
        let (mut violating, mut fine) = (Vec::new(), Vec::new());
        for pod in pods {
            let mut violates = false;
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace.as_deref() != Some(pod.namespace.as_str()) {
                    continue;
                }
                let selector = Selector::from_api(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()));
                if selector.is_everything() || !selector.matches(pod.labels()) {
                    continue;
                }
                let already_disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(&pod.name));
                if already_disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violates = true;
                }
            }
            if violates {
                violating.push(pod)
            } else {
                fine.push(pod)
            }
        }
        (violating, fine)
    }

    /// What to evict on `node` so that `pod` fits, or why nothing would do.
    fn select_victims(
        &self,
        fw: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Result<Candidate, Status> {
        let mut lower: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if lower.is_empty() {
            return Err(Status::unresolvable(NO_VICTIMS));
        }
        let mut state = state.clone();
        let mut trial = node.clone();
        let pre_filters: Vec<_> = fw.pre_filter.iter().filter_map(|p| p.pre_filter()).collect();
        for victim in &lower {
            trial.remove_pod(&victim.uid);
            for pf in &pre_filters {
                pf.remove_pod(&mut state, pod, victim, node);
            }
        }
        let status = fw.run_filter(&state, pod, &trial);
        if !status.is_success() {
            return Err(status);
        }
        lower.sort_by(more_important_first);
        let (violating, fine) = self.split_by_pdb(lower);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        for (candidate, violates) in violating
            .into_iter()
            .map(|p| (p, true))
            .chain(fine.into_iter().map(|p| (p, false)))
        {
            // Reprieve: keep the pod when the preemptor still fits with it.
            trial.add_pod(candidate.clone());
            for pf in &pre_filters {
                pf.add_pod(&mut state, pod, &candidate, node);
            }
            if !fw.run_filter(&state, pod, &trial).is_success() {
                trial.remove_pod(&candidate.uid);
                for pf in &pre_filters {
                    pf.remove_pod(&mut state, pod, &candidate, node);
                }
                pdb_violations += usize::from(violates);
                victims.push(candidate);
            }
        }
        victims.sort_by(more_important_first);
        Ok(Candidate {
            node: node.name.clone(),
            victims,
            pdb_violations,
        })
    }
}

/// Upstream's `pickOneNodeForPreemption`: fewest PDB violations, then the lowest highest victim
/// priority, then the lowest priority sum, then the fewest victims.
fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    candidates.into_iter().min_by_key(|c| {
        let highest = c.victims.first().map_or(i64::MIN, |v| i64::from(v.priority));
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum();
        (c.pdb_violations, highest, sum, c.victims.len())
    })
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        ctx: &PostFilterContext<'_>,
        pod: &PodInfo,
        statuses: &NodeToStatus,
    ) -> (Option<String>, Status) {
        let spec = pod.pod.spec.as_ref();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return (
                None,
                Status::unschedulable("preemption: not eligible due to preemptionPolicy=Never."),
            );
        }
        // Already nominated, and victims there are still terminating: wait for them.
        if let Some(nominated) = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            && let Some(node) = ctx.snapshot.get(nominated)
            && node
                .pods
                .iter()
                .any(|p| p.terminating && p.priority < pod.priority)
        {
            return (
                None,
                Status::unschedulable(
                    "preemption: not eligible due to a terminating pod on the nominated node.",
                ),
            );
        }
        let mut diagnosis = Diagnosis::default();
        let mut candidates = Vec::new();
        let wanted = (ctx.snapshot.len() / 10).max(100);
        for node in &ctx.snapshot.nodes {
            let helpful = statuses
                .get(&node.name)
                .is_some_and(|s| s.code == Code::Unschedulable);
            if !helpful || candidates.len() >= wanted {
                diagnosis
                    .node_to_status
                    .insert(node.name.clone(), Status::unresolvable(NOT_HELPFUL));
                continue;
            }
            match self.select_victims(ctx.framework, ctx.state, pod, node) {
                Ok(c) => candidates.push(c),
                Err(status) => {
                    diagnosis.node_to_status.insert(node.name.clone(), status);
                }
            }
        }
        let Some(best) = pick(candidates) else {
            let message = fit_error_message(ctx.snapshot.len(), &diagnosis);
            return (None, Status::unschedulable(format!("preemption: {message}")));
        };
        if let Some(api) = &self.api {
            for victim in &best.victims {
                api.preempt(victim.pod.clone(), pod, &best.node);
            }
        }
        tracing::info!(pod = %pod.key(), node = %best.node, victims = best.victims.len(), "preempting");
        (Some(best.node), Status::success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::plugins::{Handle, default_framework};

    fn pod(name: &str, cpu: &str, priority: i32, node: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": name}},
                "spec": {"nodeName": node, "priority": priority,
                         "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]}
            }))
            .unwrap(),
        ))
    }

    #[test]
    fn victims_spare_pods_protected_by_a_pdb() {
        let handle = Handle::default();
        let pdb: PodDisruptionBudget = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "b"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
        }))
        .unwrap();
        let fw = default_framework(&handle);
        let mut cache = Cache::default();
        cache.set_node(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "10"}}
            }))
            .unwrap(),
        );
        cache.add_or_update_pod(pod("a", "1500m", 0, "n"));
        cache.add_or_update_pod(pod("b", "1500m", 0, "n"));
        cache.add_or_update_pod(pod("critical", "500m", 1000, "n"));
        let mut snapshot = crate::cache::Snapshot::default();
        cache.update_snapshot(&mut snapshot);
        let preemptor = pod("p", "2", 100, "");
        let mut state = CycleState::default();
        assert!(
            fw.run_pre_filter(&mut state, &preemptor, &snapshot)
                .1
                .is_success()
        );
        let plugin = DefaultPreemption {
            api: None,
            pdbs: handle.pdbs.clone(),
        };
        let node = snapshot.get("n").unwrap();

        // Without a PDB the less important of equals goes: the later one, b.
        let c = plugin.select_victims(&fw, &state, &preemptor, node).ok().unwrap();
        assert_eq!(
            c.victims.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        // b's PDB allows no disruption: a goes instead.
        handle.pdbs.write().unwrap().push(pdb);
        let c = plugin.select_victims(&fw, &state, &preemptor, node).ok().unwrap();
        assert_eq!(
            c.victims.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(c.pdb_violations, 0);
        // Higher-priority pods are never victims: 4 cpu are not to be had.
        let huge = pod("huge", "4", 100, "");
        assert!(plugin.select_victims(&fw, &state, &huge, node).is_err());
    }
}
