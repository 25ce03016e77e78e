//! The Node a kubelet registers and the status it posts: labels, capacity and allocatable,
//! addresses, node info, and the four conditions with the kubelet's reasons and messages.

use std::net::Ipv4Addr;

use clientkit::kubelet::{self, Condition};
use serde_json::{Value, json};

use crate::Config;

/// The kubelet version hollow nodes report.
pub const KUBELET_VERSION: &str = "v1.33.0";
/// Ephemeral storage a hollow node reports (a kubelet reads its root filesystem).
const EPHEMERAL_STORAGE_BYTES: u64 = 100 << 30;
/// The kubelet's default hard eviction thresholds, which allocatable leaves out:
/// memory.available < 100Mi, nodefs.available < 10%.
const EVICTION_MEMORY_BYTES: u64 = 100 << 20;

/// The fake, never-contacted address of node `index`: 10.128.0.0/9 and up, clear of the
/// default cluster (10.42/16) and service (10.43/16) ranges.
pub fn internal_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 2)).wrapping_add(index as u32))
}

/// The Node object as the kubelet creates it (labels it sets itself, its annotation, status).
pub fn object(config: &Config, name: &str, index: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
            },
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {},
        "status": status(config, name, index, &Value::Null, &now()),
    })
}

/// The status the kubelet posts. `current` is the Node as the API server has it (or null):
/// a condition keeps its lastTransitionTime while its status does not change.
pub fn status(config: &Config, name: &str, index: usize, current: &Value, now: &str) -> Value {
    let memory = parse_quantity_bytes(&config.memory).unwrap_or(16 << 30);
    let capacity = json!({
        "cpu": config.cpu,
        "ephemeral-storage": format!("{}Ki", EPHEMERAL_STORAGE_BYTES >> 10),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": format!("{}Ki", memory >> 10),
        "pods": config.pods.to_string(),
    });
    let mut allocatable = capacity.clone();
    allocatable["memory"] = format!("{}Ki", memory.saturating_sub(EVICTION_MEMORY_BYTES) >> 10).into();
    allocatable["ephemeral-storage"] = (EPHEMERAL_STORAGE_BYTES / 10 * 9).to_string().into();
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": kubelet::conditions(&HEALTHY, current, now),
        "addresses": [
            {"type": "InternalIP", "address": internal_ip(index).to_string()},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": fake_hex(name, "machine", 32),
            "systemUUID": kubelet::uuid_from_hex(&fake_hex(name, "system", 32)),
            "bootID": kubelet::uuid_from_hex(&fake_hex(name, "boot", 32)),
            "kernelVersion": "6.8.0-hollow",
            "osImage": "rkube hollow node",
            "containerRuntimeVersion": "containerd://2.0.5",
            "kubeletVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    })
}

/// The healthy conditions (kubelet's setters).
const HEALTHY: [Condition; 4] = [
    Condition {
        kind: "MemoryPressure",
        status: "False",
        reason: "KubeletHasSufficientMemory",
        message: "kubelet has sufficient memory available",
    },
    Condition {
        kind: "DiskPressure",
        status: "False",
        reason: "KubeletHasNoDiskPressure",
        message: "kubelet has no disk pressure",
    },
    Condition {
        kind: "PIDPressure",
        status: "False",
        reason: "KubeletHasSufficientPID",
        message: "kubelet has sufficient PID available",
    },
    Condition {
        kind: "Ready",
        status: "True",
        reason: "KubeletReady",
        message: "kubelet is posting ready status",
    },
];

/// Whether the conditions the API server has differ from the healthy ones a hollow node posts.
pub fn status_changed(current: &Value) -> bool {
    kubelet::conditions_changed(&HEALTHY, current)
}

pub use kubelet::now;

/// A quantity in bytes (`16Gi`, `512Mi`, `1G`, `1000000`), for memory sizes.
pub fn parse_quantity_bytes(quantity: &str) -> Option<u64> {
    let digits_end = quantity
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(digits_end);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Deterministic fake hex of `len` digits: stable across restarts of the simulation.
pub fn fake_hex(seed: &str, purpose: &str, len: usize) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = String::with_capacity(len + 16);
    let mut round = 0u64;
    while out.len() < len {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (seed, purpose, round).hash(&mut hasher);
        out.push_str(&format!("{:016x}", hasher.finish()));
        round += 1;
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_status() {
        assert_eq!(parse_quantity_bytes("16Gi"), Some(16 << 30));
        assert_eq!(parse_quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_quantity_bytes("x"), None);
        let config = Config {
            nodes: 1,
            name_prefix: "hollow-".into(),
            cpu: "4".into(),
            memory: "16Gi".into(),
            pods: 110,
            heartbeat_interval: std::time::Duration::from_secs(10),
            stop_heartbeat_dir: None,
        };
        let node = object(&config, "hollow-0", 0);
        assert_eq!(node["status"]["capacity"]["memory"], "16777216Ki");
        assert_eq!(node["status"]["allocatable"]["memory"], "16674816Ki");
        assert_eq!(node["status"]["addresses"][0]["address"], "10.128.0.2");
        assert!(!status_changed(&node));
        let mut unknown = node.clone();
        unknown["status"]["conditions"][3]["status"] = "Unknown".into();
        assert!(status_changed(&unknown));
        let again = status(&config, "hollow-0", 0, &unknown, "later");
        assert_eq!(again["conditions"][3]["lastTransitionTime"], "later");
        assert_ne!(again["conditions"][0]["lastTransitionTime"], "later");
    }
}
