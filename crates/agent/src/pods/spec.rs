//! What a pod's spec asks of the runtime, converted as kubelet converts it: QoS class, the pod
//! cgroup's and each container's resources, security settings, host ports, the OOM score.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use runtime::{PodResources, QosClass, Resources, SecurityConfig};

/// Every container of the pod's spec: init containers first, in order, then app containers.
pub fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// The pod's ephemeral containers as containers (the fields they share have the same names;
/// the workload-only ones are refused by the API server).
pub fn ephemeral_containers(spec: &PodSpec) -> Vec<Container> {
    spec.ephemeral_containers
        .iter()
        .flatten()
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

/// A sidecar: an init container with `restartPolicy: Always`, which keeps running beside the
/// app containers.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn milli(q: Option<&Quantity>) -> Option<i64> {
    q.and_then(|q| apimachinery::quantity::parse(&q.0))
        .map(|v| (v * 1000.0).ceil() as i64)
}

fn bytes(q: Option<&Quantity>) -> Option<i64> {
    q.and_then(|q| apimachinery::quantity::parse(&q.0))
        .map(|v| v.ceil() as i64)
}

fn get<'a>(map: Option<&'a BTreeMap<String, Quantity>>, name: &str) -> Option<&'a Quantity> {
    map.and_then(|m| m.get(name))
}

/// A container's requests, with limits standing in for missing requests (the API server's
/// defaulting does that already; older objects may lack it).
fn requests(r: &ResourceRequirements) -> (Option<i64>, Option<i64>) {
    let cpu = milli(get(r.requests.as_ref(), "cpu")).or(milli(get(r.limits.as_ref(), "cpu")));
    let memory = bytes(get(r.requests.as_ref(), "memory")).or(bytes(get(r.limits.as_ref(), "memory")));
    (cpu, memory)
}

/// The pod's QoS class as upstream's `GetPodQOS`: Guaranteed when every container has CPU and
/// memory limits equal to its requests; BestEffort when none asks for anything; else Burstable.
pub fn qos_class(pod: &Pod) -> QosClass {
    if let Some(class) = pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        return match class {
            "Guaranteed" => QosClass::Guaranteed,
            "BestEffort" => QosClass::BestEffort,
            _ => QosClass::Burstable,
        };
    }
    let Some(spec) = &pod.spec else {
        return QosClass::BestEffort;
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in all_containers(spec) {
        let r = c.resources.clone().unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = get(r.requests.as_ref(), name).or(get(r.limits.as_ref(), name));
            let limit = get(r.limits.as_ref(), name);
            any |= request.is_some() || limit.is_some();
            let equal = match (request, limit) {
                (Some(a), Some(b)) => {
                    apimachinery::quantity::parse(&a.0) == apimachinery::quantity::parse(&b.0)
                }
                _ => false,
            };
            guaranteed &= equal;
        }
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

/// A container's resources for its cgroup.
pub fn container_resources(container: &Container) -> Resources {
    let r = container.resources.clone().unwrap_or_default();
    Resources {
        cpu_request_milli: requests(&r).0,
        cpu_limit_milli: milli(get(r.limits.as_ref(), "cpu")),
        memory_limit_bytes: bytes(get(r.limits.as_ref(), "memory")),
        pids_limit: None,
    }
}

/// The pod cgroup's limits (kubelet's `ResourceConfigForPod`): the sum of CPU requests for
/// shares; quota and memory limit only when every container has one. Init containers count
/// as upstream's effective requests do: the larger of the app containers' sum (with sidecars)
/// and any single init container.
pub fn pod_resources(spec: &PodSpec) -> PodResources {
    let app: Vec<Resources> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten().filter(|c| is_sidecar(c)))
        .map(container_resources)
        .collect();
    let init: Vec<Resources> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| !is_sidecar(c))
        .map(container_resources)
        .collect();
    let sum = |f: fn(&Resources) -> Option<i64>, list: &[Resources]| -> Option<i64> {
        list.iter().map(f).sum::<Option<i64>>()
    };
    let max_init = |f: fn(&Resources) -> Option<i64>| init.iter().filter_map(f).max();
    let cpu_request = app.iter().filter_map(|r| r.cpu_request_milli).sum::<i64>();
    let cpu_request = cpu_request.max(max_init(|r| r.cpu_request_milli).unwrap_or(0));
    let all_limited = |f: fn(&Resources) -> Option<i64>| {
        init.iter()
            .all(|r| f(r).is_some())
            .then(|| sum(f, &app).map(|s| s.max(max_init(f).unwrap_or(0))))?
    };
    PodResources {
        cpu_request_milli: cpu_request,
        cpu_limit_milli: all_limited(|r| r.cpu_limit_milli),
        memory_limit_bytes: all_limited(|r| r.memory_limit_bytes),
        pids_limit: None,
    }
}

/// The container's security settings, the pod's securityContext filling what the
/// container's leaves unset.
pub fn security(spec: &PodSpec, container: &Container) -> SecurityConfig {
    let pod = spec.security_context.clone().unwrap_or_default();
    let own = container.security_context.clone().unwrap_or_default();
    let caps = own.capabilities.clone().unwrap_or_default();
    let mut groups: Vec<i64> = pod.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs_group) = pod.fs_group {
        groups.push(fs_group);
    }
    SecurityConfig {
        run_as_user: own.run_as_user.or(pod.run_as_user),
        run_as_group: own.run_as_group.or(pod.run_as_group),
        supplemental_groups: groups,
        read_only_root_filesystem: own.read_only_root_filesystem.unwrap_or(false),
        privileged: own.privileged.unwrap_or(false),
        capabilities_add: caps.add.unwrap_or_default(),
        capabilities_drop: caps.drop.unwrap_or_default(),
        allow_privilege_escalation: own.allow_privilege_escalation,
    }
}

/// kubelet's OOM score adjustment (`GetContainerOOMScoreAdjust`): Guaranteed -997,
/// BestEffort 1000, Burstable by the share of the node's memory the container requests.
pub fn oom_score_adj(qos: QosClass, container: &Container, memory_capacity: i64) -> i32 {
    match qos {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let request = container
                .resources
                .as_ref()
                .map(|r| requests(r).1.unwrap_or(0))
                .unwrap_or(0);
            if memory_capacity <= 0 {
                return 999;
            }
            let adj = 1000 - (1000 * request as i128 / memory_capacity as i128) as i64;
            adj.clamp(2, 999) as i32
        }
    }
}

/// Host ports the pod's containers ask for (the portmap plugin opens them).
pub fn port_mappings(spec: &PodSpec) -> Vec<cni::PortMapping> {
    all_containers(spec)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p != 0)?;
            Some(cni::PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: cni::Protocol::from_k8s(p.protocol.as_deref())?,
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
            })
        })
        .collect()
}

/// The pod's grace period for a stop (kubelet's: the deletion's if it set one, else the
/// spec's, default 30 s).
pub fn grace_period(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn qos_classes_follow_requests_and_limits() {
        let best = pod(json!({"containers": [{"name": "a"}]}));
        assert_eq!(qos_class(&best), QosClass::BestEffort);
        let guaranteed = pod(json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "100m", "memory": "64Mi"}, "requests": {"cpu": "0.1", "memory": "64Mi"}}}]}));
        assert_eq!(qos_class(&guaranteed), QosClass::Guaranteed);
        let burstable =
            pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}));
        assert_eq!(qos_class(&burstable), QosClass::Burstable);
    }

    #[test]
    fn pod_limits_need_every_container_limited() {
        let spec = pod(json!({"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "10Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "20Mi", "cpu": "1"}}}
        ]}))
        .spec
        .unwrap();
        let r = pod_resources(&spec);
        assert_eq!(r.cpu_request_milli, 350);
        assert_eq!(r.cpu_limit_milli, None);
        assert_eq!(r.memory_limit_bytes, Some(30 * 1024 * 1024));
    }

    #[test]
    fn burstable_oom_score_scales_with_the_request() {
        let c: Container =
            serde_json::from_value(json!({"name": "a", "resources": {"requests": {"memory": "1Gi"}}}))
                .unwrap();
        assert_eq!(oom_score_adj(QosClass::Burstable, &c, 4 << 30), 750);
        assert_eq!(oom_score_adj(QosClass::Guaranteed, &c, 4 << 30), -997);
    }
}
