//! Pod facts the workload controllers share — active, ready, available — and upstream's order
//! of which pods to delete first when scaling down (`ActivePodsWithRanks`): unassigned before
//! assigned, Pending before Unknown before Running, not ready before ready, lower
//! `controller.kubernetes.io/pod-deletion-cost` first, pods doubled up on a node first, then
//! ready for less time, more container restarts, and newer — the times compared on a log₂ scale
//! (LogarithmicScaleDown) so pods created close together count as equally old.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodCondition};

pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Neither finished (Succeeded/Failed) nor being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready (None when not ready or unknown).
fn ready_since(pod: &Pod) -> Option<Timestamp> {
    if !is_ready(pod) {
        return None;
    }
    ready_condition(pod)?.last_transition_time.as_ref().map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_condition(pod)
        .and_then(|c| c.last_transition_time.as_ref())
        .is_some_and(|t| {
            let since = t.0 + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
            since < now
        })
}

/// The pod's `controller.kubernetes.io/pod-deletion-cost` (0 when absent or invalid).
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    let Some(status) = pod.status.as_ref() else {
        return 0;
    };
    let containers = status.container_statuses.iter().flatten();
    // Restartable init containers (sidecars) count as well.
    let sidecars = status.init_container_statuses.iter().flatten().filter(|s| {
        pod.spec.as_ref().is_some_and(|spec| {
            spec.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == s.name && c.restart_policy.as_deref() == Some("Always"))
        })
    });
    containers
        .chain(sidecars)
        .map(|s| s.restart_count)
        .max()
        .unwrap_or(0)
}

fn phase_ordinal(pod: &Pod) -> i32 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => -1,
    }
}

/// log₂ of the nanoseconds since `t`, -1 for none (upstream's `logarithmicRankDiff` pieces).
fn log_age(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - t.as_nanosecond();
    if nanos > 0 {
        (nanos as f64).log2() as i64
    } else {
        -1
    }
}

/// Where a pod goes in the order of deletion (smaller first), upstream's ActivePodsWithRanks:
/// unassigned before assigned; pending before unknown before running; not ready before ready;
/// lower `pod-deletion-cost` first; more related pods on its node first; ready for less time
/// first (by logarithmic bucket); more restarts first; newer first (by bucket); then by uid.
type DeletionKey = (
    bool,
    i32,
    bool,
    i32,
    Reverse<usize>,
    i64,
    Reverse<i32>,
    i64,
    String,
);

fn deletion_key(pod: &Pod, rank: usize, now: Timestamp) -> DeletionKey {
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let ready = is_ready(pod);
    // Unknown times sort first (as upstream's "empty time < less time").
    let bucket = |t: Option<Timestamp>| t.map_or(i64::MIN, |t| log_age(t, now));
    let ready_bucket = if ready { bucket(ready_since(pod)) } else { 0 };
    let created = bucket(pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
    (
        assigned,
        phase_ordinal(pod),
        ready,
        deletion_cost(pod),
        Reverse(rank),
        ready_bucket,
        Reverse(max_restarts(pod)),
        created,
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// The `count` pods to delete first among `pods`, ranking each by how many active `related`
/// pods (of the same owner's family) share its node.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        *on_node.entry(node).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, usize)> = pods
        .iter()
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (p.clone(), on_node.get(&node).copied().unwrap_or(0))
        })
        .collect();
    // A key per pod rather than a pairwise comparison: the logarithmic age buckets with their
    // uid tie-break are not transitive pairwise (Rust's sort refuses such an order).
    ranked.sort_by_cached_key(|(pod, rank)| deletion_key(pod, *rank, now));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready: Option<&str>) -> Arc<Pod> {
        let mut conditions = vec![];
        if let Some(since) = ready {
            conditions.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": since}));
        }
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": phase, "conditions": conditions},
            }))
            .unwrap(),
        )
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter().map(|p| p.metadata.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn upstream_deletion_order() {
        let now: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let pods = vec![
            pod("running-ready-old", "n1", "Running", Some("2026-01-01T00:00:00Z")),
            pod("running-ready-new", "n2", "Running", Some("2026-01-01T09:59:58Z")),
            pod("running-not-ready", "n3", "Running", None),
            pod("unknown", "n4", "Unknown", None),
            pod("pending", "n5", "Pending", None),
            pod("unassigned", "", "Pending", None),
        ];
        let order = pods_to_delete(&pods, &pods, 5, now);
        assert_eq!(
            names(&order),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "running-ready-new"
            ]
        );
    }

    #[test]
    fn doubled_up_and_deletion_cost() {
        let now: Timestamp = "2026-01-01T10:00:00Z".parse().unwrap();
        let t = Some("2026-01-01T00:00:00Z");
        let pods = vec![
            pod("alone", "n1", "Running", t),
            pod("shared", "n2", "Running", t),
        ];
        let related = vec![
            pods[0].clone(),
            pods[1].clone(),
            pod("sibling", "n2", "Running", t),
        ];
        assert_eq!(names(&pods_to_delete(&pods, &related, 1, now)), ["shared"]);

        let mut cheap = (*pods[0]).clone();
        cheap.metadata.annotations = Some([(POD_DELETION_COST.to_owned(), "-5".to_owned())].into());
        let pods = vec![Arc::new(cheap), pods[1].clone()];
        assert_eq!(names(&pods_to_delete(&pods, &related, 1, now)), ["alone"]);
    }

    #[test]
    fn available_after_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some("2026-01-01T00:00:00Z"));
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert!(is_available(&p, 0, at("2026-01-01T00:00:00Z")));
        assert!(!is_available(&p, 10, at("2026-01-01T00:00:05Z")));
        assert!(is_available(&p, 10, at("2026-01-01T00:00:11Z")));
        assert!(!is_available(
            &pod("q", "n", "Running", None),
            0,
            at("2026-01-01T00:00:11Z")
        ));
    }

    #[test]
    fn many_ready_pods_sort_without_an_inconsistent_order() {
        // Ready times spread over buckets with uids in every order: a pairwise comparison
        // with a uid tie-break per bucket is not transitive and made the sort panic.
        let pods: Vec<Arc<Pod>> = (0..200)
            .map(|i| {
                let since = format!("2026-01-01T00:{:02}:{:02}Z", (i * 7) % 60, (i * 13) % 60);
                pod(&format!("p{:03}", (i * 37) % 200), "n1", "Running", Some(&since))
            })
            .collect();
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let first = pods_to_delete(&pods, &pods, 50, now);
        assert_eq!(first.len(), 50);
        let mut reversed = pods.clone();
        reversed.reverse();
        assert_eq!(names(&pods_to_delete(&reversed, &pods, 50, now)), names(&first));
    }
}
