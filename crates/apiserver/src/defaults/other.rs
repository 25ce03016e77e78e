//! Defaults of the smaller groups: autoscaling, networking, RBAC, storage, scheduling,
//! discovery.

use serde_json::{Map, Value, json};

use super::{child, default_unset, default_zero, items};

type Obj = Map<String, Value>;

pub fn horizontal_pod_autoscaler(version: &str, o: &mut Obj) {
    let Some(spec) = child(o, "spec") else {
        return;
    };
    default_unset(spec, "minReplicas", 1);
    if version != "v2" {
        return;
    }
    default_zero(
        spec,
        "metrics",
        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
    );
    // Behavior is filled in only when the client gave one.
    if let Some(behavior) = child(spec, "behavior") {
        let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        let down = json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        for (key, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            let Value::Object(defaults) = defaults else {
                continue;
            };
            match behavior.get_mut(key) {
                Some(Value::Object(rules)) => {
                    for (k, v) in defaults {
                        default_unset(rules, &k, v);
                    }
                }
                None | Some(Value::Null) => {
                    behavior.insert(key.into(), Value::Object(defaults));
                }
                Some(_) => {}
            }
        }
    }
}

pub fn network_policy(o: &mut Obj) {
    let Some(spec) = child(o, "spec") else {
        return;
    };
    for (rules, peers) in [("ingress", "ports"), ("egress", "ports")] {
        for rule in items(spec, rules) {
            for p in items(rule, peers) {
                default_unset(p, "protocol", "TCP");
            }
        }
    }
    let has_egress = spec
        .get("egress")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty());
    let types = if has_egress {
        json!(["Ingress", "Egress"])
    } else {
        json!(["Ingress"])
    };
    default_zero(spec, "policyTypes", types);
}

pub fn ingress_class(o: &mut Obj) {
    if let Some(spec) = child(o, "spec")
        && let Some(params) = child(spec, "parameters")
    {
        default_unset(params, "scope", "Cluster");
    }
}

pub fn role_binding(o: &mut Obj) {
    if let Some(role_ref) = child(o, "roleRef") {
        default_zero(role_ref, "apiGroup", "rbac.authorization.k8s.io");
    }
    for subject in items(o, "subjects") {
        let group = match subject.get("kind").and_then(Value::as_str) {
            Some("User" | "Group") => "rbac.authorization.k8s.io",
            _ => continue,
        };
        default_zero(subject, "apiGroup", group);
    }
}

pub fn storage_class(o: &mut Obj) {
    default_unset(o, "reclaimPolicy", "Delete");
    default_unset(o, "volumeBindingMode", "Immediate");
}

pub fn priority_class(o: &mut Obj) {
    default_unset(o, "preemptionPolicy", "PreemptLowerPriority");
}

/// kube-aggregator's `SetDefaults_ServiceReference`: port 443.
pub fn api_service(o: &mut Obj) {
    if let Some(service) = child(o, "spec").and_then(|spec| child(spec, "service")) {
        default_unset(service, "port", 443);
    }
}

pub fn endpoint_slice(o: &mut Obj) {
    for p in items(o, "ports") {
        default_unset(p, "name", "");
        default_unset(p, "protocol", "TCP");
    }
}
