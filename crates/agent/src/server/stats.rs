//! `GET /stats/summary`: upstream's Summary API shape (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`)
//! for what the runtime measures: per pod and container cumulative CPU time and memory.

use runtime::{ContainerState, Runtime};
use serde_json::{Value, json};

fn usage_json(usage: &runtime::stats::Usage) -> (Value, Value) {
    let time = usage.timestamp.to_string();
    (
        json!({"time": time, "usageCoreNanoSeconds": usage.cpu_usage_nanos}),
        json!({"time": time, "usageBytes": usage.memory_usage_bytes, "workingSetBytes": usage.memory_working_set_bytes}),
    )
}

pub fn summary(runtime: &dyn Runtime, node_name: &str) -> Value {
    let mut pods = Vec::new();
    for sandbox in runtime.list_sandboxes().unwrap_or_default() {
        let mut containers = Vec::new();
        for container in runtime
            .list_containers(Some(&sandbox.pod_uid))
            .unwrap_or_default()
        {
            if container.state != ContainerState::Running {
                continue;
            }
            let mut entry = json!({
                "name": container.name,
                "startTime": container.started_at.unwrap_or(container.created_at).to_string(),
            });
            if let Ok(usage) = runtime.container_stats(&container.id) {
                let (cpu, memory) = usage_json(&usage);
                entry["cpu"] = cpu;
                entry["memory"] = memory;
            }
            containers.push(entry);
        }
        let mut pod = json!({
            "podRef": {"name": sandbox.pod_name, "namespace": sandbox.namespace, "uid": sandbox.pod_uid},
            "startTime": sandbox.created_at.to_string(),
            "containers": containers,
        });
        if let Ok(usage) = runtime.pod_stats(&sandbox.pod_uid) {
            let (cpu, memory) = usage_json(&usage);
            pod["cpu"] = cpu;
            pod["memory"] = memory;
        }
        pods.push(pod);
    }
    json!({"node": {"nodeName": node_name, "systemContainers": []}, "pods": pods})
}
