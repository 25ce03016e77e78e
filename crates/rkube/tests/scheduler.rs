//! The scheduler inside `rkube server`, end to end with real kubectl: Nodes are created by the
//! test (status set through the status subresource, as a kubelet would), pods are created, and
//! where the scheduler bound them (`spec.nodeName`), its events and the pods' PodScheduled
//! condition are checked.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

/// Registers a Ready node with the given allocatable cpu and pods, labels and taints.
fn add_node(server: &Server, name: &str, cpu: &str, labels: Value, taints: Value) {
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let node = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    });
    server.create(&format!("node-{name}.json"), &node.to_string());
    let resources = json!({"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
    }});
    server.ok(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// A pod of one container with a cpu request and extra spec fields.
fn pod(server: &Server, name: &str, cpu: &str, labels: Value, extra_spec: Value) {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}],
    });
    for (k, v) in extra_spec.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": spec,
    });
    server.create(&format!("pod-{name}.json"), &pod.to_string());
}

fn get_pod(server: &Server, name: &str) -> Value {
    serde_json::from_str(&server.ok(&["get", "pod", name, "-n", "default", "-o", "json"])).unwrap()
}

fn wait_until<T>(what: &str, server: &Server, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; server log: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the pod is bound and returns its node.
fn node_of(server: &Server, name: &str) -> String {
    wait_until(&format!("pod {name} to be scheduled"), server, || {
        get_pod(server, name)["spec"]["nodeName"]
            .as_str()
            .map(str::to_owned)
    })
}

/// Waits until the pod is marked unschedulable and returns the PodScheduled message.
fn unschedulable_message(server: &Server, name: &str) -> String {
    wait_until(&format!("pod {name} to be marked unschedulable"), server, || {
        let pod = get_pod(server, name);
        assert!(pod["spec"]["nodeName"].is_null(), "{name} was scheduled: {pod}");
        let conditions = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let c = conditions.iter().find(|c| c["type"] == "PodScheduled")?;
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "Unschedulable");
        c["message"].as_str().map(str::to_owned)
    })
}

/// The messages of the pod's events with this reason.
fn events(server: &Server, pod: &str, reason: &str) -> Vec<String> {
    let selector = format!("involvedObject.name={pod},reason={reason}");
    let list: Value = serde_json::from_str(&server.ok(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]))
    .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn wait_for_event(server: &Server, pod: &str, reason: &str) -> String {
    wait_until(&format!("a {reason} event on {pod}"), server, || {
        events(server, pod, reason).pop()
    })
}

#[test]
fn resource_fit_and_the_failed_scheduling_event() {
    let server = Server::start();
    let taint = json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]);
    add_node(&server, "small", "1", json!({}), json!([]));
    add_node(&server, "infra-1", "8", json!({}), taint.clone());
    add_node(&server, "infra-2", "8", json!({}), taint);

    pod(&server, "big", "2", json!({}), json!({}));
    let expected = "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: infra}. \
                    preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
                    2 Preemption is not helpful for scheduling..";
    assert_eq!(unschedulable_message(&server, "big"), expected);
    assert_eq!(wait_for_event(&server, "big", "FailedScheduling"), expected);
    let describe = server.ok(&["describe", "pod", "big"]);
    assert!(describe.contains("default-scheduler"), "{describe}");

    pod(&server, "fits", "500m", json!({}), json!({}));
    assert_eq!(node_of(&server, "fits"), "small");
    assert_eq!(
        wait_for_event(&server, "fits", "Scheduled"),
        "Successfully assigned default/fits to small"
    );
    // The node's remaining 500m takes another such pod, not a third.
    pod(&server, "fits-2", "500m", json!({}), json!({}));
    assert_eq!(node_of(&server, "fits-2"), "small");
    pod(&server, "fits-3", "500m", json!({}), json!({}));
    assert!(
        unschedulable_message(&server, "fits-3")
            .starts_with("0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint")
    );
    // A bigger node appears: the waiting pods are requeued and placed.
    add_node(&server, "large", "4", json!({}), json!([]));
    assert_eq!(node_of(&server, "big"), "large");
    assert_eq!(node_of(&server, "fits-3"), "large");
}

#[test]
fn taints_and_tolerations() {
    let server = Server::start();
    add_node(
        &server,
        "gpu",
        "4",
        json!({"hw": "gpu"}),
        json!([{"key": "gpu", "value": "true", "effect": "NoSchedule"}]),
    );
    add_node(
        &server,
        "plain",
        "4",
        json!({}),
        json!([{"key": "spot", "effect": "PreferNoSchedule"}]),
    );
    let tolerate = json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
                          "nodeSelector": {"hw": "gpu"}});
    pod(&server, "trainer", "1", json!({}), tolerate);
    assert_eq!(node_of(&server, "trainer"), "gpu");
    for i in 0..3 {
        let name = format!("web-{i}");
        pod(&server, &name, "100m", json!({}), json!({}));
        assert_eq!(node_of(&server, &name), "plain", "untolerated NoSchedule taint");
    }
    // A pod that tolerates everything prefers the node without the PreferNoSchedule taint.
    pod(
        &server,
        "anywhere",
        "100m",
        json!({}),
        json!({"tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}),
    );
    assert_eq!(node_of(&server, "anywhere"), "gpu");
}

#[test]
fn node_selector_and_node_affinity() {
    let server = Server::start();
    add_node(
        &server,
        "ssd-1",
        "4",
        json!({"disk": "ssd", "topology.kubernetes.io/zone": "a"}),
        json!([]),
    );
    add_node(
        &server,
        "hdd-1",
        "4",
        json!({"disk": "hdd", "topology.kubernetes.io/zone": "b"}),
        json!([]),
    );
    add_node(
        &server,
        "hdd-2",
        "4",
        json!({"disk": "hdd", "topology.kubernetes.io/zone": "c"}),
        json!([]),
    );

    pod(
        &server,
        "selector",
        "100m",
        json!({}),
        json!({"nodeSelector": {"disk": "ssd"}}),
    );
    assert_eq!(node_of(&server, "selector"), "ssd-1");

    let required = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "disk", "operator": "In", "values": ["hdd"]},
        {"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["b"]},
    ]}]}}}});
    pod(&server, "required", "100m", json!({}), required);
    assert_eq!(node_of(&server, "required"), "hdd-2");

    let by_name = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["hdd-1"]}]}]}}}});
    pod(&server, "by-name", "100m", json!({}), by_name);
    assert_eq!(node_of(&server, "by-name"), "hdd-1");

    let preferred = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}},
    ]}}});
    for i in 0..3 {
        let name = format!("preferred-{i}");
        pod(&server, &name, "100m", json!({}), preferred.clone());
        assert_eq!(node_of(&server, &name), "hdd-1");
    }

    pod(
        &server,
        "nowhere",
        "100m",
        json!({}),
        json!({"nodeSelector": {"disk": "nvme"}}),
    );
    assert_eq!(
        unschedulable_message(&server, "nowhere"),
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    // Labelling a node makes it fit: the node update requeues the pod.
    server.ok(&["label", "node", "ssd-1", "disk=nvme", "--overwrite"]);
    assert_eq!(node_of(&server, "nowhere"), "ssd-1");
}

#[test]
fn pod_anti_affinity_by_hostname() {
    let server = Server::start();
    for n in ["n1", "n2", "n3"] {
        add_node(&server, n, "4", json!({}), json!([]));
    }
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"},
    ]}}});
    let mut nodes = Vec::new();
    for i in 0..3 {
        let name = format!("db-{i}");
        pod(&server, &name, "100m", json!({"app": "db"}), anti.clone());
        nodes.push(node_of(&server, &name));
    }
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "one per node");
    pod(&server, "db-3", "100m", json!({"app": "db"}), anti.clone());
    assert_eq!(
        unschedulable_message(&server, "db-3"),
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
    );
    // Existing pods' anti-affinity keeps other matching pods away too (here: a pod without terms).
    pod(&server, "plain-db", "100m", json!({"app": "db"}), json!({}));
    assert!(
        unschedulable_message(&server, "plain-db")
            .contains("3 node(s) didn't satisfy existing pods anti-affinity rules")
    );
    // Deleting one of them frees its node for the waiting pod (the deletion requeues it). These
    // nodes have no kubelet to finish a graceful deletion, so it is forced, as for a dead node.
    let db0 = node_of(&server, "db-0");
    server.ok(&["delete", "pod", "db-0", "--grace-period=0", "--force"]);
    assert_eq!(node_of(&server, "db-3"), db0);
    // Pod affinity: a pod follows the pod its required term selects.
    server.ok(&["delete", "pod", "plain-db"]);
    server.ok(&["label", "pod", "db-1", "app=other", "--overwrite"]);
    server.ok(&["label", "pod", "db-2", "app=other", "--overwrite"]);
    let follow = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"},
    ]}}});
    pod(&server, "cache", "100m", json!({}), follow);
    assert_eq!(node_of(&server, "cache"), db0);
}

#[test]
fn topology_spread_across_zones() {
    let server = Server::start();
    add_node(
        &server,
        "a-1",
        "4",
        json!({"topology.kubernetes.io/zone": "a"}),
        json!([]),
    );
    add_node(
        &server,
        "a-2",
        "4",
        json!({"topology.kubernetes.io/zone": "a"}),
        json!([]),
    );
    add_node(
        &server,
        "a-3",
        "4",
        json!({"topology.kubernetes.io/zone": "a"}),
        json!([]),
    );
    add_node(
        &server,
        "b-1",
        "4",
        json!({"topology.kubernetes.io/zone": "b"}),
        json!([]),
    );
    let spread = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}},
    }]});
    let mut zones = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..6 {
        let name = format!("spread-{i}");
        pod(&server, &name, "100m", json!({"app": "spread"}), spread.clone());
        let node = node_of(&server, &name);
        *zones.entry(node[..1].to_owned()).or_default() += 1;
        let (a, b) = (
            zones.get("a").copied().unwrap_or(0),
            zones.get("b").copied().unwrap_or(0),
        );
        assert!(a.abs_diff(b) <= 1, "skew over 1 after {name}: {zones:?}");
    }
    assert_eq!(zones, [("a".to_owned(), 3), ("b".to_owned(), 3)].into());
    // With b-1 cordoned, zone a may take one more (skew 1) but not two.
    server.ok(&["cordon", "b-1"]);
    pod(
        &server,
        "spread-6",
        "100m",
        json!({"app": "spread"}),
        spread.clone(),
    );
    assert!(node_of(&server, "spread-6").starts_with("a-"));
    pod(
        &server,
        "spread-7",
        "100m",
        json!({"app": "spread"}),
        spread.clone(),
    );
    assert_eq!(
        unschedulable_message(&server, "spread-7"),
        "0/4 nodes are available: 1 node(s) were unschedulable, 3 node(s) didn't match pod topology spread constraints. \
         preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.."
    );
    server.ok(&["uncordon", "b-1"]);
    assert_eq!(node_of(&server, "spread-7"), "b-1");
}

#[test]
fn host_ports_conflict() {
    let server = Server::start();
    add_node(&server, "p1", "4", json!({}), json!([]));
    add_node(&server, "p2", "4", json!({}), json!([]));
    let port = |name: &str| {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
        });
        server.create(&format!("{name}.json"), &pod.to_string());
    };
    port("hp-1");
    port("hp-2");
    let (a, b) = (node_of(&server, "hp-1"), node_of(&server, "hp-2"));
    assert_ne!(a, b, "the same host port on one node");
    port("hp-3");
    assert_eq!(
        unschedulable_message(&server, "hp-3"),
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.."
    );
}

#[test]
fn a_high_priority_pod_preempts_a_lower_one() {
    let server = Server::start();
    add_node(&server, "only", "1", json!({}), json!([]));
    server.create(
        "classes.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: never\nvalue: 2000\npreemptionPolicy: Never\n",
    );
    pod(&server, "low", "800m", json!({}), json!({}));
    assert_eq!(node_of(&server, "low"), "only");

    // preemptionPolicy Never: waits, does not preempt.
    pod(
        &server,
        "polite",
        "800m",
        json!({}),
        json!({"priorityClassName": "never"}),
    );
    assert_eq!(
        unschedulable_message(&server, "polite"),
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
    );
    server.ok(&["delete", "pod", "polite"]);

    pod(
        &server,
        "high",
        "800m",
        json!({}),
        json!({"priorityClassName": "high"}),
    );
    let nominated = wait_until("high to be nominated", &server, || {
        get_pod(&server, "high")["status"]["nominatedNodeName"]
            .as_str()
            .map(str::to_owned)
    });
    assert_eq!(nominated, "only");
    let preempted = wait_for_event(&server, "low", "Preempted");
    let uid = get_pod(&server, "high")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(preempted, format!("Preempted by pod {uid} on node only"));
    let low = get_pod(&server, "low");
    let disruption = low["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .cloned()
        .unwrap_or_default();
    assert_eq!(disruption["reason"], "PreemptionByScheduler", "{low}");
    assert_eq!(
        disruption["message"],
        "default-scheduler: preempting to accommodate a higher priority pod"
    );
    // The victim is deleted (gracefully; no kubelet here, so finish it off if it lingers).
    wait_until("low to be deleted", &server, || {
        let out = server.kubectl(&["get", "pod", "low", "-o", "json"]);
        if !out.status.success() {
            return Some(());
        }
        let low: Value = serde_json::from_slice(&out.stdout).unwrap();
        if low["metadata"]["deletionTimestamp"].is_string() {
            server.ok(&["delete", "pod", "low", "--grace-period=0", "--force"]);
            return Some(());
        }
        None
    });
    assert_eq!(node_of(&server, "high"), "only");
}

#[test]
fn pods_wait_for_nodes_to_appear() {
    let server = Server::start();
    pod(&server, "early", "100m", json!({}), json!({}));
    let failed = wait_for_event(&server, "early", "FailedScheduling");
    assert_eq!(failed, "no nodes available to schedule pods");
    add_node(&server, "late", "2", json!({}), json!([]));
    assert_eq!(node_of(&server, "early"), "late");
    // Pods for another scheduler are left alone.
    pod(
        &server,
        "other",
        "100m",
        json!({}),
        json!({"schedulerName": "my-scheduler"}),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(get_pod(&server, "other")["spec"]["nodeName"].is_null());
}
