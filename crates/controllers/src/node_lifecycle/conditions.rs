//! What the node lifecycle controller writes about a node that stopped reporting: its
//! conditions Unknown, and the taints its conditions call for.

use serde_json::{Value, json};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// The kubelet's conditions besides Ready that go Unknown with it.
const OTHER_CONDITIONS: [&str; 3] = ["MemoryPressure", "DiskPressure", "PIDPressure"];

/// The node's conditions once it is considered silent: every one Unknown, as upstream's
/// `tryUpdateNodeHealth` sets them. None if nothing changes.
pub fn unknown_conditions(node: &Value, now: &str) -> Option<Value> {
    let mut conditions = node["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let created = node["metadata"]["creationTimestamp"].clone();
    let mut changed = false;
    for kind in std::iter::once("Ready").chain(OTHER_CONDITIONS) {
        match conditions.iter_mut().find(|c| c["type"] == kind) {
            None => {
                conditions.push(json!({
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": now,
                }));
                changed = true;
            }
            Some(c) if c["status"] != "Unknown" => {
                c["status"] = "Unknown".into();
                c["reason"] = "NodeStatusUnknown".into();
                c["message"] = "Kubelet stopped posting node status.".into();
                c["lastTransitionTime"] = now.into();
                changed = true;
            }
            Some(_) => {}
        }
    }
    changed.then_some(Value::Array(conditions))
}

/// The NoSchedule taints upstream's TaintNodesByCondition derives from conditions and
/// `spec.unschedulable`, as (key) — all managed keys are listed by [`NO_SCHEDULE_KEYS`].
pub fn no_schedule_taints(node: &Value) -> Vec<&'static str> {
    let status = |kind: &str| {
        node["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == kind))
            .and_then(|c| c["status"].as_str())
    };
    let mut keys = Vec::new();
    match status("Ready") {
        Some("False") => keys.push(TAINT_NOT_READY),
        Some("Unknown") => keys.push(TAINT_UNREACHABLE),
        _ => {}
    }
    for (kind, key) in [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        ("NetworkUnavailable", "node.kubernetes.io/network-unavailable"),
    ] {
        if status(kind) == Some("True") {
            keys.push(key);
        }
    }
    if node["spec"]["unschedulable"] == true {
        keys.push("node.kubernetes.io/unschedulable");
    }
    keys
}

pub const NO_SCHEDULE_KEYS: [&str; 7] = [
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/network-unavailable",
    "node.kubernetes.io/unschedulable",
];

/// The Ready condition's status (`Unknown` when there is none).
pub fn ready_status(node: &Value) -> &str {
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
}

/// The node's taints with the NoSchedule ones from conditions set to `no_schedule` and the
/// NoExecute not-ready / unreachable one set to `no_execute` (None: neither), keeping
/// everything else (and the timeAdded of a NoExecute taint that stays).
pub fn desired_taints(node: &Value, no_schedule: &[&str], no_execute: Option<&str>, now: &str) -> Vec<Value> {
    let current = node["spec"]["taints"].as_array().cloned().unwrap_or_default();
    let managed_no_execute = |t: &Value| {
        t["effect"] == "NoExecute" && (t["key"] == TAINT_NOT_READY || t["key"] == TAINT_UNREACHABLE)
    };
    let managed_no_schedule =
        |t: &Value| t["effect"] == "NoSchedule" && NO_SCHEDULE_KEYS.iter().any(|k| t["key"] == *k);
    let mut taints: Vec<Value> = current
        .iter()
        .filter(|t| {
            (!managed_no_schedule(t) || no_schedule.iter().any(|k| t["key"] == *k))
                && (!managed_no_execute(t) || no_execute.is_some_and(|k| t["key"] == k))
        })
        .cloned()
        .collect();
    for key in no_schedule {
        if !taints
            .iter()
            .any(|t| t["key"] == *key && t["effect"] == "NoSchedule")
        {
            taints.push(json!({"key": key, "effect": "NoSchedule"}));
        }
    }
    if let Some(key) = no_execute
        && !taints
            .iter()
            .any(|t| t["key"] == key && t["effect"] == "NoExecute")
    {
        taints.push(json!({"key": key, "effect": "NoExecute", "timeAdded": now}));
    }
    taints
}

/// The node's current NoExecute not-ready / unreachable taint key, if any.
pub fn no_execute_taint(node: &Value) -> Option<&str> {
    node["spec"]["taints"].as_array()?.iter().find_map(|t| {
        let key = t["key"].as_str()?;
        (t["effect"] == "NoExecute" && (key == TAINT_NOT_READY || key == TAINT_UNREACHABLE)).then_some(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_node_goes_unknown_and_gets_tainted() {
        let node = json!({
            "metadata": {"creationTimestamp": "t0"},
            "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "t1"},
            ]},
        });
        let conditions = unknown_conditions(&node, "t2").unwrap();
        assert_eq!(conditions[0]["status"], "Unknown");
        assert_eq!(conditions[0]["reason"], "NodeStatusUnknown");
        assert_eq!(conditions[0]["message"], "Kubelet stopped posting node status.");
        assert_eq!(conditions[0]["lastHeartbeatTime"], "t1");
        assert_eq!(conditions[1]["reason"], "NodeStatusNeverUpdated");
        let mut node = node;
        node["status"]["conditions"] = conditions;
        assert!(unknown_conditions(&node, "t3").is_none());
        assert_eq!(ready_status(&node), "Unknown");
        let no_schedule = no_schedule_taints(&node);
        assert_eq!(no_schedule, [TAINT_UNREACHABLE]);
        let taints = desired_taints(&node, &no_schedule, Some(TAINT_UNREACHABLE), "t4");
        assert_eq!(taints.len(), 3);
        assert_eq!(taints[2]["timeAdded"], "t4");
        node["spec"]["taints"] = Value::Array(taints);
        assert_eq!(no_execute_taint(&node), Some(TAINT_UNREACHABLE));
        // Recovered: only the user's taint stays.
        let taints = desired_taints(&node, &[], None, "t5");
        assert_eq!(
            taints,
            vec![json!({"key": "dedicated", "value": "x", "effect": "NoSchedule"})]
        );
    }
}
