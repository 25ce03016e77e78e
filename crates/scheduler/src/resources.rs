//! Resource amounts as the scheduler counts them: CPU in millicores, everything else in base
//! units, read from quantities (`500m`, `1Gi`, `2e3`), and a pod's effective requests as
//! upstream's `resourcehelper.PodRequests` computes them (containers summed, init containers as
//! a maximum, restartable init containers (sidecars) counted along, plus the pod overhead).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Requests the scoring plugins assume for a container that names none (upstream's
/// `DefaultMilliCPURequest` and `DefaultMemoryRequest`), so that empty pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The value of a quantity in base units, or None when it does not parse.
pub use apimachinery::quantity::parse as parse_quantity;

/// A quantity in thousandths of its unit, rounded up (upstream's `MilliValue`).
pub fn milli_value(q: &Quantity) -> i64 {
    parse_quantity(&q.0).map_or(0, |v| (v * 1000.0).ceil() as i64)
}

/// A quantity in its unit, rounded up (upstream's `Value`).
pub fn value(q: &Quantity) -> i64 {
    parse_quantity(&q.0).map_or(0, |v| v.ceil() as i64)
}

/// Amounts of the resources the scheduler fits: cpu, memory, ephemeral-storage, a pod count
/// (allocatable only) and extended ("scalar") resources such as `example.com/gpu`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub allowed_pod_number: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// From a resource list (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resource {
        let mut r = Resource::default();
        for (name, q) in list {
            r.add_one(name, q);
        }
        r
    }

    fn add_one(&mut self, name: &str, q: &Quantity) {
        match name {
            "cpu" => self.milli_cpu += milli_value(q),
            "memory" => self.memory += value(q),
            "ephemeral-storage" => self.ephemeral_storage += value(q),
            "pods" => self.allowed_pod_number += value(q),
            other if is_scalar_resource(other) => {
                *self.scalar.entry(other.to_owned()).or_default() += value(q)
            }
            _ => {}
        }
    }

    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (name, v) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (name, v) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() -= v;
        }
    }

    /// Each amount becomes the larger of the two.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.allowed_pod_number = self.allowed_pod_number.max(other.allowed_pod_number);
        for (name, v) in &other.scalar {
            let mine = self.scalar.entry(name.clone()).or_default();
            *mine = (*mine).max(*v);
        }
    }

    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }

    /// The amount of a resource by its API name (`cpu` in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pod_number,
            other => self.scalar(other),
        }
    }
}

/// Extended resources (domain-qualified names outside kubernetes.io), hugepages and
/// attachable volumes count as scalar resources, as upstream's `IsScalarResourceName`.
fn is_scalar_resource(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/") && !name.starts_with("requests."))
}

fn container_requests(c: &Container, non_missing: bool) -> Resource {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = requests.map(Resource::from_list).unwrap_or_default();
    if non_missing {
        if !requests.is_some_and(|q| q.contains_key("cpu")) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !requests.is_some_and(|q| q.contains_key("memory")) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A pod's effective requests. With `non_missing`, containers without a cpu or memory request
/// count upstream's defaults (what the scoring plugins use).
pub fn pod_requests(pod: &Pod, non_missing: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut total = Resource::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_missing));
    }
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let mut reqs = container_requests(c, non_missing);
        if c.restart_policy.as_deref() == Some("Always") {
            total.add(&reqs);
            sidecars.add(&reqs);
            reqs = sidecars.clone();
        } else {
            reqs.add(&sidecars);
        }
        init_max.set_max(&reqs);
    }
    total.set_max(&init_max);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resource::from_list(overhead));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("x"), None);
        assert_eq!(milli_value(&Quantity("2".into())), 2000);
        assert_eq!(milli_value(&Quantity("100m".into())), 100);
    }

    #[test]
    fn init_containers_count_as_a_maximum_and_sidecars_add_up() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
                ],
                "initContainers": [
                    {"name": "i", "resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},
                    {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "10m"}}}
                ],
                "overhead": {"cpu": "5m"}
            }
        }))
        .unwrap();
        let r = pod_requests(&pod, false);
        // max(300m + 10m sidecar, 1000m init) + 5m overhead
        assert_eq!(r.milli_cpu, 1005);
        assert_eq!(r.memory, 100 * 1024 * 1024);
        let n = pod_requests(&pod, true);
        assert_eq!(n.memory, (100 + 200 + 200) * 1024 * 1024);
    }
}
