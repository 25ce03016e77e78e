//! The Node object the agent registers and the status it posts, as kubelet 1.33 builds them:
//! labels, capacity and allocatable, addresses, node info, and the four conditions with
//! kubelet's reasons and messages.

use clientkit::kubelet::{self, Condition};
use serde_json::{Value, json};

use crate::Config;
use crate::eviction::EvictionHard;
use crate::machine::{Machine, Usage};

/// Pods per node (kubelet's maxPods default).
pub const MAX_PODS: u32 = 110;
/// The version this agent reports: the API server's `/version` gitVersion.
pub const KUBELET_VERSION: &str = concat!("v1.33.0+rkube-", env!("CARGO_PKG_VERSION"));
/// PID pressure when fewer than this share of kernel.pid_max is left (kubelet's pid.available
/// signal; kubelet sets no default threshold, so the agent keeps this headroom).
const PID_HEADROOM_PERCENT: u64 = 10;

/// The Node as the agent registers it: kubelet's own labels (and the control-plane role label
/// on the server's node, as k3s sets it), its annotation, and the status.
pub fn object(config: &Config, machine: &Machine, usage: &Usage) -> Value {
    let mut labels = json!({
        "beta.kubernetes.io/arch": machine.architecture,
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": machine.architecture,
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
    });
    if config.control_plane {
        labels["node-role.kubernetes.io/control-plane"] = "true".into();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": config.node_name,
            "labels": labels,
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {},
        "status": status(config, machine, usage, &Value::Null, &kubelet::now()),
    })
}

/// The status to post; `current` is the Node as the API server has it (or null), so that
/// unchanged conditions keep their lastTransitionTime.
pub fn status(config: &Config, machine: &Machine, usage: &Usage, current: &Value, now: &str) -> Value {
    let mut capacity = json!({
        "cpu": machine.cpus.to_string(),
        "ephemeral-storage": bytes_quantity(usage.fs_capacity),
        "memory": bytes_quantity(machine.memory_bytes),
        "pods": MAX_PODS.to_string(),
    });
    for (kib, bytes) in &machine.hugepages {
        capacity[format!("hugepages-{}", bytes_quantity(kib * 1024))] = bytes_quantity(*bytes).into();
    }
    let mut allocatable = capacity.clone();
    let eviction = &config.eviction_hard;
    allocatable["memory"] = bytes_quantity(
        machine
            .memory_bytes
            .saturating_sub(eviction.memory_available.reserved(machine.memory_bytes)),
    )
    .into();
    let nodefs_reserved = eviction.nodefs_available.reserved(usage.fs_capacity);
    allocatable["ephemeral-storage"] = bytes_quantity(usage.fs_capacity - nodefs_reserved).into();
    json!({
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": kubelet::conditions(&conditions(machine, usage, eviction), current, now),
        "addresses": [
            {"type": "InternalIP", "address": config.node_ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.system_uuid,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version,
            "osImage": machine.os_image,
            "containerRuntimeVersion": machine.container_runtime_version.as_deref().unwrap_or("runc://unknown"),
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": machine.architecture,
        },
    })
}

/// kubelet's `nodeStatusMaxImages`.
const MAX_IMAGES: usize = 50;

/// `status.images` as kubelet reports them: the largest images first, each named by its
/// digest (`repo@sha256:…`) and its tags.
pub fn images(store: &images::Store) -> Value {
    let Ok(named) = store.list() else {
        return Value::Array(Vec::new());
    };
    let mut by_manifest: std::collections::BTreeMap<String, (Vec<String>, u64)> = Default::default();
    for (name, image) in named {
        let entry = by_manifest
            .entry(image.manifest.clone())
            .or_insert_with(|| (Vec::new(), image.size));
        if let Ok(reference) = images::Reference::parse(&name) {
            let digest = format!("{}@{}", reference.name(), image.manifest);
            if !entry.0.contains(&digest) {
                entry.0.insert(0, digest);
            }
        }
        entry.0.push(name);
    }
    let mut list: Vec<(Vec<String>, u64)> = by_manifest.into_values().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(MAX_IMAGES);
    list.into_iter()
        .map(|(names, size)| json!({"names": names, "sizeBytes": size}))
        .collect()
}

/// The conditions kubelet's setters compute, from the machine's usage.
pub fn conditions(machine: &Machine, usage: &Usage, eviction: &EvictionHard) -> [Condition; 4] {
    let memory = if eviction
        .memory_available
        .crossed(usage.memory_available, machine.memory_bytes)
    {
        (
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        )
    } else {
        (
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        )
    };
    let disk = if eviction
        .nodefs_available
        .crossed(usage.fs_available, usage.fs_capacity)
    {
        ("True", "KubeletHasDiskPressure", "kubelet has disk pressure")
    } else {
        (
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        )
    };
    let pid = if (usage.pid_max.saturating_sub(usage.pids)) * 100 < usage.pid_max * PID_HEADROOM_PERCENT {
        (
            "True",
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        )
    } else {
        (
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        )
    };
    let ready = match machine.container_runtime_version {
        None => ("False", "KubeletNotReady", "container runtime is down"),
        // kubelet's words when the runtime reports NetworkReady=false.
        Some(_) if !usage.network_ready => (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        ),
        Some(_) => ("True", "KubeletReady", "kubelet is posting ready status"),
    };
    let condition = |kind, (status, reason, message): (&'static str, &'static str, &'static str)| Condition {
        kind,
        status,
        reason,
        message,
    };
    [
        condition("MemoryPressure", memory),
        condition("DiskPressure", disk),
        condition("PIDPressure", pid),
        condition("Ready", ready),
    ]
}

/// Bytes as a canonical binary-SI quantity, as kubelet prints them: the largest suffix that
/// divides exactly (`16Gi`, `16380412Ki`), else plain bytes.
pub fn bytes_quantity(bytes: u64) -> String {
    for (shift, suffix) in [(50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_bytes: 4 << 30,
            hugepages: vec![(2048, 0), (1 << 20, 0)],
            machine_id: "m".into(),
            system_uuid: "u".into(),
            boot_id: "b".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            container_runtime_version: Some("runc://1.1.5".into()),
            architecture: "amd64",
        }
    }

    fn usage() -> Usage {
        Usage {
            memory_available: 2 << 30,
            fs_capacity: 100 << 30,
            fs_available: 50 << 30,
            pid_max: 4_194_304,
            pids: 200,
            network_ready: true,
        }
    }

    fn config(control_plane: bool) -> Config {
        Config {
            node_name: "n1".into(),
            node_ip: [10, 0, 0, 5].into(),
            data_dir: "/tmp".into(),
            control_plane,
            pods: Default::default(),
            eviction_hard: Default::default(),
            kubelet_port: 10250,
            ca_pem: String::new(),
            network: Default::default(),
        }
    }

    #[test]
    fn capacity_allocatable_and_labels() {
        let node = object(&config(true), &machine(), &usage());
        let status = &node["status"];
        assert_eq!(status["capacity"]["memory"], "4Gi");
        assert_eq!(status["allocatable"]["memory"], "3996Mi");
        assert_eq!(status["capacity"]["ephemeral-storage"], "100Gi");
        assert_eq!(status["allocatable"]["ephemeral-storage"], "90Gi");
        assert_eq!(status["capacity"]["hugepages-2Mi"], "0");
        assert_eq!(status["capacity"]["hugepages-1Gi"], "0");
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(
            node["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
            "true"
        );
        let worker = object(&config(false), &machine(), &usage());
        assert!(worker["metadata"]["labels"]["node-role.kubernetes.io/control-plane"].is_null());
        assert_eq!(bytes_quantity(1000), "1000");
        assert_eq!(bytes_quantity(0), "0");
    }

    #[test]
    fn pressure_conditions() {
        let healthy = conditions(&machine(), &usage(), &EvictionHard::default());
        assert!(healthy[..3].iter().all(|c| c.status == "False"));
        assert_eq!((healthy[3].status, healthy[3].reason), ("True", "KubeletReady"));
        let starved = Usage {
            memory_available: 50 << 20,
            fs_available: 5 << 30,
            pids: 4_000_000,
            ..usage()
        };
        let pressure = conditions(&machine(), &starved, &EvictionHard::default());
        assert_eq!(pressure[0].reason, "KubeletHasInsufficientMemory");
        assert_eq!(pressure[1].reason, "KubeletHasDiskPressure");
        assert_eq!(pressure[2].reason, "KubeletHasInsufficientPID");
        let no_runtime = Machine {
            container_runtime_version: None,
            ..machine()
        };
        assert_eq!(
            conditions(&no_runtime, &usage(), &EvictionHard::default())[3].status,
            "False"
        );
        let no_network = Usage {
            network_ready: false,
            ..usage()
        };
        let ready = &conditions(&machine(), &no_network, &EvictionHard::default())[3];
        assert_eq!((ready.status, ready.reason), ("False", "KubeletNotReady"));
        assert!(ready.message.starts_with("container runtime network not ready"));
    }
}
