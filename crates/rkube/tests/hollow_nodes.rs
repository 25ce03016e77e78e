//! Hollow nodes end to end: a real `rkube server` (with its controllers), a `rkube sim` child
//! process playing the kubelets, and real kubectl. Pods are bound by `spec.nodeName` (no
//! scheduler is involved).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// A `rkube sim` child, killed (by PID) when dropped.
struct Sim {
    child: Child,
    log: PathBuf,
    stop_dir: PathBuf,
}

impl Sim {
    fn start(server: &Server, nodes: usize) -> Sim {
        let log = server.dir.path().join("sim.log");
        let stop_dir = server.dir.path().join("stopped");
        std::fs::create_dir_all(&stop_dir).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .arg("sim")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["--nodes", &nodes.to_string(), "--heartbeat-interval", "1s"])
            .arg("--stop-heartbeat-dir")
            .arg(&stop_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Sim { child, log, stop_dir }
    }

    fn stop(&self, node: &str) {
        std::fs::write(self.stop_dir.join(node), b"").unwrap();
    }

    fn resume(&self, node: &str) {
        std::fs::remove_file(self.stop_dir.join(node)).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns Some, or fails with `what` and the logs.
fn wait_for<T>(
    server: &Server,
    sim: &Sim,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- sim log:\n{}\n--- server log:\n{}",
            sim.log(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&server.ok(&all)).unwrap()
}

fn condition<'a>(obj: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&serde_json::Value::Null)
}

/// Waits until `count` hollow nodes are Ready with pod ranges; returns the node list.
fn ready_nodes(server: &Server, sim: &Sim, count: usize) -> Vec<serde_json::Value> {
    wait_for(
        server,
        sim,
        "ready nodes with pod CIDRs",
        Duration::from_secs(60),
        || {
            let nodes = json(server, &["get", "nodes"]);
            let items = nodes["items"].as_array().cloned().unwrap_or_default();
            let ready = items
                .iter()
                .filter(|n| condition(n, "Ready")["status"] == "True" && n["spec"]["podCIDR"].is_string())
                .count();
            (items.len() == count && ready == count).then_some(items)
        },
    )
}

fn pod_manifest(name: &str, node: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         initContainers:\n  - name: init\n    image: busybox\n  containers:\n  - name: main\n    \
         image: nginx:1.27\n{extra_spec}"
    )
}

fn running_pod(server: &Server, sim: &Sim, name: &str) -> serde_json::Value {
    wait_for(
        server,
        sim,
        &format!("pod {name} running"),
        Duration::from_secs(30),
        || {
            let pod = json(server, &["get", "pod", name]);
            (pod["status"]["phase"] == "Running" && condition(&pod, "Ready")["status"] == "True")
                .then_some(pod)
        },
    )
}

#[test]
fn hollow_nodes_register_run_pods_and_finish_deleted_ones() {
    let server = Server::start();
    let sim = Sim::start(&server, 3);
    let nodes = ready_nodes(&server, &sim, 3);
    let node = nodes
        .iter()
        .find(|n| n["metadata"]["name"] == "hollow-1")
        .unwrap();
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "hollow-1");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert_eq!(node["status"]["capacity"]["cpu"], "4");
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.33.0");
    assert_eq!(condition(node, "Ready")["reason"], "KubeletReady");
    assert_eq!(
        condition(node, "Ready")["message"],
        "kubelet is posting ready status"
    );
    assert_eq!(
        condition(node, "MemoryPressure")["reason"],
        "KubeletHasSufficientMemory"
    );
    let cidr = node["spec"]["podCIDR"].as_str().unwrap().to_owned();
    assert!(cidr.starts_with("10.42.") && cidr.ends_with(".0/24"), "{cidr}");
    let cidrs: std::collections::HashSet<_> = nodes.iter().map(|n| n["spec"]["podCIDR"].clone()).collect();
    assert_eq!(cidrs.len(), 3, "every node has its own range");
    let node_ip = node["status"]["addresses"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease = json(&server, &["get", "lease", "-n", "kube-node-lease", "hollow-1"]);
    assert_eq!(lease["spec"]["holderIdentity"], "hollow-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");

    // A pod bound by name runs with an address from its node's range.
    server.create("web.yaml", &pod_manifest("web", "hollow-1", ""));
    let pod = running_pod(&server, &sim, "web");
    let prefix = cidr.trim_end_matches("0/24");
    let ip = pod["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with(prefix), "{ip} not in {cidr}");
    assert_eq!(pod["status"]["podIPs"][0]["ip"], ip);
    assert_eq!(pod["status"]["hostIP"], node_ip.as_str());
    let main = &pod["status"]["containerStatuses"][0];
    assert_eq!(main["image"], "docker.io/library/nginx:1.27");
    assert!(main["state"]["running"]["startedAt"].is_string());
    assert!(main["containerID"].as_str().unwrap().starts_with("containerd://"));
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "PodScheduled",
    ] {
        assert_eq!(condition(&pod, kind)["status"], "True", "{kind}");
    }
    let table = server.ok(&["get", "pod", "web", "-o", "wide"]);
    assert!(
        table.contains("Running") && table.contains("hollow-1") && table.contains(ip),
        "{table}"
    );

    // kubectl delete waits until the node finished the pod.
    let started = Instant::now();
    server.ok(&["delete", "pod", "web", "--timeout=30s"]);
    assert!(started.elapsed() < Duration::from_secs(20));
    server.fails(&["get", "pod", "web"]);

    // An unbound pod goes at once.
    let unbound = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: unbound\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
    server.create("unbound.yaml", unbound);
    server.ok(&["delete", "pod", "unbound", "--wait=false"]);
    assert!(server.fails(&["get", "pod", "unbound"]).contains("NotFound"));

    // On a node that is down, a deleted pod stays Terminating until its node comes back.
    server.create("slow.yaml", &pod_manifest("slow", "hollow-2", ""));
    server.create("forced.yaml", &pod_manifest("forced", "hollow-2", ""));
    running_pod(&server, &sim, "slow");
    running_pod(&server, &sim, "forced");
    sim.stop("hollow-2");
    std::thread::sleep(Duration::from_secs(2));
    server.ok(&["delete", "pod", "slow", "--wait=false"]);
    let pod = json(&server, &["get", "pod", "slow"]);
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(server.ok(&["get", "pod", "slow"]).contains("Terminating"));
    // A second delete with a longer grace period changes nothing; a shorter one shortens it.
    server.ok(&["delete", "pod", "slow", "--wait=false", "--grace-period=60"]);
    assert_eq!(
        json(&server, &["get", "pod", "slow"])["metadata"]["deletionGracePeriodSeconds"],
        30
    );
    server.ok(&["delete", "pod", "slow", "--wait=false", "--grace-period=20"]);
    assert_eq!(
        json(&server, &["get", "pod", "slow"])["metadata"]["deletionGracePeriodSeconds"],
        20
    );
    // Forced deletion does not wait for the node.
    server.ok(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    server.fails(&["get", "pod", "forced"]);
    sim.resume("hollow-2");
    wait_for(
        &server,
        &sim,
        "the resumed node to finish the pod",
        Duration::from_secs(30),
        || {
            server
                .kubectl(&["get", "pod", "slow"])
                .status
                .code()
                .filter(|c| *c != 0)
        },
    );
}

#[test]
fn silent_hollow_node_goes_unknown_is_tainted_and_its_pods_evicted() {
    let server = Server::start_with(&["--node-monitor-grace-period=5s", "--node-monitor-period=1s"]);
    let sim = Sim::start(&server, 3);
    ready_nodes(&server, &sim, 3);
    let tolerations = |seconds: &str| {
        format!(
            "  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n    \
             effect: NoExecute\n{seconds}"
        )
    };
    server.create(
        "victim.yaml",
        &pod_manifest("victim", "hollow-0", &tolerations("    tolerationSeconds: 2\n")),
    );
    server.create(
        "tolerant.yaml",
        &pod_manifest("tolerant", "hollow-0", &tolerations("")),
    );
    server.create("elsewhere.yaml", &pod_manifest("elsewhere", "hollow-1", ""));
    running_pod(&server, &sim, "victim");
    running_pod(&server, &sim, "tolerant");
    running_pod(&server, &sim, "elsewhere");
    let victim_tolerations = json(&server, &["get", "pod", "victim"])["spec"]["tolerations"].clone();
    assert!(
        victim_tolerations
            .to_string()
            .contains("node.kubernetes.io/not-ready"),
        "DefaultTolerationSeconds added the not-ready toleration: {victim_tolerations}"
    );

    sim.stop("hollow-0");
    let node = wait_for(
        &server,
        &sim,
        "hollow-0 Unknown and tainted",
        Duration::from_secs(30),
        || {
            let node = json(&server, &["get", "node", "hollow-0"]);
            let taints = node["spec"]["taints"].to_string();
            (condition(&node, "Ready")["status"] == "Unknown"
                && taints.contains("\"NoExecute\"")
                && taints.contains("\"NoSchedule\""))
            .then_some(node)
        },
    );
    let ready = condition(&node, "Ready");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    assert_eq!(condition(&node, "MemoryPressure")["status"], "Unknown");
    for taint in node["spec"]["taints"].as_array().unwrap() {
        assert_eq!(taint["key"], "node.kubernetes.io/unreachable", "{taint}");
    }
    assert!(server.ok(&["get", "nodes"]).contains("NotReady"));

    // The pod tolerating the taint for 2 s is evicted (its node is down: it stays Terminating).
    let victim = wait_for(&server, &sim, "victim evicted", Duration::from_secs(20), || {
        let pod = json(&server, &["get", "pod", "victim"]);
        pod["metadata"]["deletionTimestamp"].is_string().then_some(pod)
    });
    assert_eq!(
        condition(&victim, "DisruptionTarget")["reason"],
        "DeletionByTaintManager"
    );
    // The one tolerating it for good stays, marked not ready.
    let tolerant = wait_for(
        &server,
        &sim,
        "tolerant pod not ready",
        Duration::from_secs(10),
        || {
            let pod = json(&server, &["get", "pod", "tolerant"]);
            (condition(&pod, "Ready")["status"] == "False").then_some(pod)
        },
    );
    assert!(tolerant["metadata"]["deletionTimestamp"].is_null());
    let elsewhere = json(&server, &["get", "pod", "elsewhere"]);
    assert_eq!(condition(&elsewhere, "Ready")["status"], "True");
    let reasons = server.ok(&["get", "events", "-A", "-o", "jsonpath={.items[*].reason}"]);
    for reason in ["NodeNotReady", "TaintManagerEviction", "RegisteredNode"] {
        assert!(reasons.contains(reason), "no {reason} event: {reasons}");
    }

    // Heartbeats resume: Ready again, taints gone, the evicted pod finished by its node.
    sim.resume("hollow-0");
    wait_for(
        &server,
        &sim,
        "hollow-0 Ready without taints",
        Duration::from_secs(30),
        || {
            let node = json(&server, &["get", "node", "hollow-0"]);
            (condition(&node, "Ready")["status"] == "True" && node["spec"]["taints"].is_null()).then_some(())
        },
    );
    wait_for(&server, &sim, "victim gone", Duration::from_secs(30), || {
        server
            .kubectl(&["get", "pod", "victim"])
            .status
            .code()
            .filter(|c| *c != 0)
    });
    running_pod(&server, &sim, "tolerant");
}

#[test]
fn node_ipam_hands_out_ranges_until_exhausted_and_reuses_released_ones() {
    // Two /24 ranges for three nodes.
    let server = Server::start_with(&["--cluster-cidr=10.99.0.0/23"]);
    let sim = Sim::start(&server, 3);
    let cidrs = || -> Vec<(String, String)> {
        let nodes = json(&server, &["get", "nodes"]);
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let name = n["metadata"]["name"].as_str().unwrap().to_owned();
                (name, n["spec"]["podCIDR"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    let assigned = wait_for(
        &server,
        &sim,
        "two nodes with ranges",
        Duration::from_secs(60),
        || {
            let all = cidrs();
            let with: Vec<_> = all.iter().filter(|(_, c)| !c.is_empty()).cloned().collect();
            (all.len() == 3 && with.len() == 2).then_some(all)
        },
    );
    let mut ranges: Vec<&str> = assigned
        .iter()
        .map(|(_, c)| c.as_str())
        .filter(|c| !c.is_empty())
        .collect();
    ranges.sort();
    assert_eq!(ranges, ["10.99.0.0/24", "10.99.1.0/24"]);
    let (starved, _) = assigned.iter().find(|(_, c)| c.is_empty()).unwrap().clone();
    wait_for(
        &server,
        &sim,
        "CIDRNotAvailable event",
        Duration::from_secs(30),
        || {
            let events = server.ok(&[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.name={starved},reason=CIDRNotAvailable"),
                "-o",
                "jsonpath={.items[*].message}",
            ]);
            events
                .contains(&format!("Node {starved} status is now: CIDRNotAvailable"))
                .then_some(())
        },
    );
    // Its kubelet still runs pods, from a fallback range (as with a CNI doing its own IPAM).
    server.create("fallback.yaml", &pod_manifest("fallback", &starved, ""));
    let pod = running_pod(&server, &sim, "fallback");
    assert!(
        pod["status"]["podIP"].as_str().unwrap().starts_with("100."),
        "{pod}"
    );
    // A deleted node's range goes to the node that had none.
    let (victim, freed) = assigned.iter().find(|(_, c)| !c.is_empty()).unwrap().clone();
    server.ok(&["delete", "node", &victim]);
    wait_for(
        &server,
        &sim,
        "the freed range reassigned",
        Duration::from_secs(60),
        || {
            cidrs()
                .into_iter()
                .find(|(n, c)| *n == starved && *c == freed)
                .map(|_| ())
        },
    );
}
