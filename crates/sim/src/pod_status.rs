//! The pod status a kubelet reports, for containers that "run" without existing: init
//! containers completed, containers running and ready, conditions with timestamps, addresses.

use serde_json::{Value, json};

use crate::node::fake_hex;

/// Status of a pod running on a node at `host_ip` with address `pod_ip`.
pub fn running(pod: &Value, host_ip: &str, pod_ip: &str, now: &str) -> Value {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let started = pod["status"]["startTime"].as_str().unwrap_or(now).to_owned();
    let init: Vec<Value> = containers(pod, "initContainers")
        .map(|c| {
            let (name, image) = name_image(c);
            let mut status = container_status(uid, name, image);
            status["state"] = json!({"terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": started,
                "finishedAt": started,
                "containerID": status["containerID"],
            }});
            status["ready"] = true.into();
            status["started"] = false.into();
            status
        })
        .collect();
    let main: Vec<Value> = containers(pod, "containers")
        .map(|c| {
            let (name, image) = name_image(c);
            let mut status = container_status(uid, name, image);
            status["state"] = json!({"running": {"startedAt": started}});
            status["ready"] = true.into();
            status["started"] = true.into();
            status
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": conditions(pod, now, "True"),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "containerStatuses": main,
    });
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    status
}

/// Whether the pod already shows the running status this node would report (nothing to write).
pub fn is_running(pod: &Value) -> bool {
    let status = &pod["status"];
    let ready = status["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    let containers = containers(pod, "containers").count();
    status["phase"] == "Running"
        && ready
        && status["podIP"].is_string()
        && status["containerStatuses"]
            .as_array()
            .is_some_and(|s| s.len() == containers)
}

/// The status once the pod was deleted: every container terminated (a hollow container stops
/// at once on SIGTERM, exit code 0), not ready. The phase stays as it is: the kubelet removes
/// the pod right after.
pub fn terminated(pod: &Value, now: &str) -> Value {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
    let started = pod["status"]["startTime"].as_str().unwrap_or(now).to_owned();
    let main: Vec<Value> = containers(pod, "containers")
        .map(|c| {
            let (name, image) = name_image(c);
            let mut status = container_status(uid, name, image);
            status["state"] = json!({"terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": started,
                "finishedAt": now,
                "containerID": status["containerID"],
            }});
            status["ready"] = false.into();
            status["started"] = false.into();
            status
        })
        .collect();
    json!({
        "conditions": conditions(pod, now, "False"),
        "containerStatuses": main,
    })
}

/// Whether the pod already shows its containers terminated.
pub fn is_terminated(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|s| s.iter().all(|s| s["state"]["terminated"].is_object()))
}

/// Only what a hollow kubelet looks at, so 150,000 cached pods stay small: identity, deletion,
/// node, container names and images, and the status fields compared or carried over.
pub fn trim(pod: Value) -> Value {
    let slim = |field: &str| -> Value {
        containers(&pod, field)
            .map(|c| json!({"name": c["name"], "image": c["image"]}))
            .collect()
    };
    let meta = &pod["metadata"];
    let status = &pod["status"];
    let states: Value = status["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json!({"state": s["state"]}))
        .collect();
    json!({
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "deletionTimestamp": meta["deletionTimestamp"],
        },
        "spec": {
            "nodeName": pod["spec"]["nodeName"],
            "containers": slim("containers"),
            "initContainers": slim("initContainers"),
        },
        "status": {
            "phase": status["phase"],
            "podIP": status["podIP"],
            "startTime": status["startTime"],
            "conditions": status["conditions"],
            "containerStatuses": states,
        },
    })
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> + use<'a> {
    pod["spec"][field].as_array().into_iter().flatten()
}

fn name_image(container: &Value) -> (&str, &str) {
    (
        container["name"].as_str().unwrap_or_default(),
        container["image"].as_str().unwrap_or_default(),
    )
}

fn container_status(uid: &str, name: &str, image: &str) -> Value {
    let image = normalize_image(image);
    let repository = image
        .rsplit_once('@')
        .map(|(r, _)| r)
        .or_else(|| {
            image
                .rsplit_once(':')
                .filter(|(_, tag)| !tag.contains('/'))
                .map(|(r, _)| r)
        })
        .unwrap_or(&image)
        .to_owned();
    json!({
        "name": name,
        "state": {},
        "lastState": {},
        "ready": false,
        "restartCount": 0,
        "image": image,
        "imageID": format!("{repository}@sha256:{}", fake_hex(&image, "image", 64)),
        "containerID": format!("containerd://{}", fake_hex(uid, name, 64)),
        "started": false,
    })
}

/// An image reference as the container runtime reports it: registry and tag filled in
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_image(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let has_registry = !first.is_empty() && (first.contains(['.', ':']) || first == "localhost");
    let mut full = match (first.is_empty(), has_registry) {
        (true, _) => format!("docker.io/library/{rest}"),
        (false, true) => image.to_owned(),
        (false, false) => format!("docker.io/{image}"),
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    if !last.contains([':', '@']) {
        full.push_str(":latest");
    }
    full
}

/// The kubelet's pod conditions; those whose status is unchanged keep their transition time.
/// PodScheduled is kept as the scheduler wrote it (or True, for pods bound by name).
fn conditions(pod: &Value, now: &str, ready: &str) -> Value {
    let existing = pod["status"]["conditions"].as_array();
    let old = |kind: &str| existing.and_then(|c| c.iter().find(|c| c["type"] == kind));
    let make = |kind: &str, status: &str| {
        let transition = match old(kind) {
            Some(o) if o["status"] == status => o["lastTransitionTime"].clone(),
            _ => now.into(),
        };
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition})
    };
    let scheduled = old("PodScheduled")
        .cloned()
        .unwrap_or_else(|| make("PodScheduled", "True"));
    let mut list = vec![
        make("PodReadyToStartContainers", ready),
        make("Initialized", "True"),
        make("Ready", ready),
        make("ContainersReady", ready),
        scheduled,
    ];
    if ready == "False" {
        for condition in &mut list[2..4] {
            condition["reason"] = "PodCompleted".into();
        }
    }
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_normalized_as_the_runtime_reports_them() {
        assert_eq!(normalize_image("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(normalize_image("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(normalize_image("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            normalize_image("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(normalize_image("localhost:5000/x"), "localhost:5000/x:latest");
    }

    #[test]
    fn trimmed_pods_keep_what_the_kubelet_compares() {
        let pod = serde_json::json!({
            "metadata": {"name": "p", "namespace": "d", "uid": "u", "managedFields": [{}], "labels": {"a": "b"}},
            "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "busybox", "env": []}]},
            "status": {"phase": "Pending"},
        });
        let mut trimmed = trim(pod);
        assert!(trimmed["metadata"].get("managedFields").is_none());
        assert!(!is_running(&trimmed));
        trimmed["status"] = running(&trimmed, "h", "10.42.0.2", "t");
        let trimmed = trim(trimmed);
        assert!(is_running(&trimmed));
        assert_eq!(trimmed["spec"]["containers"][0]["image"], "busybox");
    }

    #[test]
    fn running_status_is_complete() {
        let pod = serde_json::json!({
            "metadata": {"uid": "u1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "initContainers": [{"name": "i", "image": "busybox"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}]},
        });
        let status = running(&pod, "10.128.0.2", "10.42.0.2", "t1");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            "t1"
        );
        assert_eq!(
            status["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(status["conditions"][4]["lastTransitionTime"], "t0");
        let mut pod = pod;
        pod["status"] = status;
        assert!(is_running(&pod));
        assert!(!is_terminated(&pod));
        pod["status"] = terminated(&pod, "t2");
        assert!(is_terminated(&pod));
    }
}
