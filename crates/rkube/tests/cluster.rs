//! Issue 4's acceptance: real kubectl against a real `rkube server` (controllers and scheduler
//! in-process) and `rkube sim` hollow nodes, both child processes.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// A server plus `nodes` hollow nodes named `hollow-0…`, heartbeating every second.
struct Cluster {
    server: Server,
    sim: Child,
    /// A file named after a node here silences that node (`rkube sim --stop-heartbeat-dir`).
    stop_dir: PathBuf,
}

impl Cluster {
    fn start(nodes: usize, server_flags: &[&str]) -> Cluster {
        let server = Server::start_with(server_flags);
        let log = std::fs::File::create(server.dir.path().join("sim.log")).unwrap();
        let stop_dir = server.dir.path().join("stopped");
        std::fs::create_dir_all(&stop_dir).unwrap();
        let sim = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["sim", "--nodes", &nodes.to_string(), "--name-prefix", "hollow-"])
            .args(["--heartbeat-interval", "1s"])
            .arg("--stop-heartbeat-dir")
            .arg(&stop_dir)
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Cluster {
            server,
            sim,
            stop_dir,
        };
        cluster.wait_for("all hollow nodes Ready", Duration::from_secs(60), || {
            let out = cluster.server.ok(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
            ]);
            out.lines().filter(|l| *l == "True").count() == nodes
        });
        cluster
    }

    fn ok(&self, args: &[&str]) -> String {
        self.server.ok(args)
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\nserver log:\n{}\nsim log:\n{}",
                tail(&self.server.log()),
                tail(&std::fs::read_to_string(self.server.dir.path().join("sim.log")).unwrap_or_default())
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Running pods of a label selector, per node.
    fn running_per_node(&self, selector: &str) -> BTreeMap<String, usize> {
        let out = self.ok(&[
            "get",
            "pods",
            "-l",
            selector,
            "--field-selector",
            "status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}",
        ]);
        let mut per_node = BTreeMap::new();
        for node in out.lines().filter(|l| !l.is_empty()) {
            *per_node.entry(node.to_owned()).or_default() += 1;
        }
        per_node
    }

    /// The node's heartbeats (Lease and status) stop, as if its kubelet died.
    fn silence(&self, node: &str) {
        std::fs::write(self.stop_dir.join(node), b"").unwrap();
    }

    /// Creates the objects of a YAML manifest.
    fn apply(&self, name: &str, yaml: &str) {
        self.server.create(name, yaml);
    }

    /// The nodes of the pods of a selector that are Running (one entry per pod), sorted.
    fn nodes_of(&self, selector: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .running_per_node(selector)
            .into_iter()
            .flat_map(|(node, n)| std::iter::repeat_n(node, n))
            .collect();
        nodes.sort();
        nodes
    }

    fn rollout_status(&self, deployment: &str) -> String {
        self.ok(&[
            "rollout",
            "status",
            deployment,
            "--timeout=120s",
            "--request-timeout=0",
        ])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.sim.kill(); // our own child, by PID
        let _ = self.sim.wait();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// What a ReplicaSet watch saw during a rollout: the most replicas the ReplicaSets asked for
/// together, and the fewest they reported available, at any revision.
#[derive(Debug, Default)]
struct RolloutBounds {
    max_pods: i32,
    min_available: i32,
    /// Every event seen: (ReplicaSet, spec.replicas, availableReplicas, resourceVersion).
    history: Vec<(String, i32, i32, String)>,
}

/// Watches the ReplicaSets of `selector` and tracks, at every event, the sum of their
/// `spec.replicas` and of their `status.availableReplicas` — what upstream's rolling update
/// bounds (pods of a scaled-down ReplicaSet may outlive its new count by the time its controller
/// takes to delete them). The watching thread ends with the test process.
fn watch_rollout(server: &Server, selector: &str) -> Arc<Mutex<RolloutBounds>> {
    let bounds = Arc::new(Mutex::new(RolloutBounds {
        max_pods: 0,
        min_available: i32::MAX,
        history: Vec::new(),
    }));
    let (sink, kubeconfig, selector) = (bounds.clone(), server.kubeconfig.clone(), selector.to_owned());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let client = clientkit::from_kubeconfig(&kubeconfig).await.unwrap();
            let sets: Api<ReplicaSet> = Api::namespaced(client, "default");
            let mut seen: BTreeMap<String, ReplicaSet> = BTreeMap::new();
            let stream = watcher(sets, watcher::Config::default().labels(&selector)).default_backoff();
            futures::pin_mut!(stream);
            let mut initial_done = false;
            while let Ok(Some(event)) = stream.try_next().await {
                match event {
                    watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                        sink.lock().unwrap().history.push((
                            rs.metadata.name.clone().unwrap_or_default(),
                            rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                            rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
                            rs.metadata.resource_version.clone().unwrap_or_default(),
                        ));
                        seen.insert(rs.metadata.name.clone().unwrap_or_default(), rs);
                    }
                    watcher::Event::Delete(rs) => {
                        seen.remove(rs.metadata.name.as_deref().unwrap_or_default());
                    }
                    watcher::Event::Init => seen.clear(),
                    watcher::Event::InitDone => {
                        if !initial_done {
                            initial_done = true;
                            let _ = ready_tx.send(());
                        }
                    }
                }
                if !initial_done {
                    continue;
                }
                let wanted: i32 = seen
                    .values()
                    .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
                    .sum();
                let available: i32 = seen
                    .values()
                    .map(|rs| rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0))
                    .sum();
                let mut b = sink.lock().unwrap();
                b.max_pods = b.max_pods.max(wanted);
                b.min_available = b.min_available.min(available);
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the ReplicaSet watch started");
    bounds
}

#[test]
fn deployments_roll_out_across_hollow_nodes() {
    let cluster = Cluster::start(3, &[]);
    cluster.ok(&["create", "deployment", "web", "--image=busybox", "--replicas=50"]);
    let status = cluster.rollout_status("deployment/web");
    assert!(status.contains("successfully rolled out"), "{status}");
    let per_node = cluster.running_per_node("app=web");
    assert_eq!(per_node.values().sum::<usize>(), 50, "{per_node:?}");
    // Spread by the default scoring (least allocated, balanced, default topology spread).
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    let (min, max) = (per_node.values().min().unwrap(), per_node.values().max().unwrap());
    assert!(max - min <= 4, "uneven spread {per_node:?}");

    // A rolling update never has more than replicas + maxSurge (25% of 50 → 13) pods nor fewer
    // than replicas - maxUnavailable (25% of 50 → 12) available.
    let bounds = watch_rollout(&cluster.server, "app=web");
    cluster.ok(&["set", "image", "deployment/web", "busybox=busybox:1.36"]);
    let status = cluster.rollout_status("deployment/web");
    assert!(status.contains("successfully rolled out"), "{status}");
    std::thread::sleep(Duration::from_secs(1));
    {
        let b = bounds.lock().unwrap();
        assert!(b.max_pods <= 63, "more than replicas + maxSurge pods: {b:?}");
        assert!(b.max_pods > 50, "the rollout never surged: {b:?}");
        assert!(
            b.min_available >= 38,
            "fewer than replicas - maxUnavailable available: {b:?}"
        );
    }
    let images = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    assert!(images.lines().all(|i| i == "busybox:1.36"), "{images}");

    let history = cluster.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("REVISION") && history.contains('1') && history.contains('2'),
        "{history}"
    );
    cluster.ok(&["rollout", "undo", "deployment/web"]);
    cluster.rollout_status("deployment/web");
    let template_image = cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(template_image, "busybox");

    // Pause: a template change waits; resume rolls it out.
    cluster.ok(&["rollout", "pause", "deployment/web"]);
    cluster.ok(&["set", "image", "deployment/web", "busybox=busybox:1.37"]);
    std::thread::sleep(Duration::from_secs(2));
    let updated = cluster.ok(&[
        "get",
        "deployment",
        "web",
        "-o",
        "jsonpath={.status.updatedReplicas}",
    ]);
    // 0 (omitted when zero, as Go's JSON does): no ReplicaSet for the new template yet.
    assert!(
        updated.is_empty() || updated == "0",
        "a paused deployment rolled out: {updated}"
    );
    cluster.ok(&["rollout", "resume", "deployment/web"]);
    cluster.rollout_status("deployment/web");
    cluster.ok(&["rollout", "restart", "deployment/web"]);
    cluster.rollout_status("deployment/web");

    // Scale down and up.
    cluster.ok(&["scale", "deployment/web", "--replicas=5"]);
    cluster.wait_for("5 pods", Duration::from_secs(60), || {
        cluster.running_per_node("app=web").values().sum::<usize>() == 5
            && cluster
                .ok(&["get", "pods", "-l", "app=web", "-o", "name"])
                .lines()
                .count()
                == 5
    });
    cluster.ok(&["scale", "deployment/web", "--replicas=12"]);
    cluster.rollout_status("deployment/web");
    assert_eq!(cluster.running_per_node("app=web").values().sum::<usize>(), 12);
}

#[test]
fn deletion_cascades_as_asked() {
    let cluster = Cluster::start(2, &[]);
    let count = |what: &str, selector: &str| {
        cluster
            .ok(&["get", what, "-l", selector, "-o", "name"])
            .lines()
            .count()
    };
    for name in ["bg", "orphan", "fg"] {
        cluster.ok(&["create", "deployment", name, "--image=busybox", "--replicas=3"]);
        cluster.rollout_status(&format!("deployment/{name}"));
    }
    // Background (the default): the ReplicaSet and its pods go too.
    cluster.ok(&["delete", "deployment", "bg"]);
    cluster.wait_for("bg's replica sets and pods gone", Duration::from_secs(60), || {
        count("replicasets", "app=bg") == 0 && count("pods", "app=bg") == 0
    });
    // Orphan: the ReplicaSet and pods stay, without an owner.
    cluster.ok(&["delete", "deployment", "orphan", "--cascade=orphan"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count("replicasets", "app=orphan"), 1);
    assert_eq!(count("pods", "app=orphan"), 3);
    let owners = cluster.ok(&[
        "get",
        "replicasets",
        "-l",
        "app=orphan",
        "-o",
        "jsonpath={.items[0].metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "");
    // Foreground: dependents first, then the owner.
    cluster.ok(&[
        "delete",
        "deployment",
        "fg",
        "--cascade=foreground",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(count("replicasets", "app=fg"), 0);
    assert_eq!(count("pods", "app=fg"), 0);

    // Deleting a namespace removes all it holds.
    cluster.ok(&["create", "namespace", "scratch"]);
    cluster.ok(&[
        "create",
        "deployment",
        "inner",
        "--image=busybox",
        "--replicas=2",
        "-n",
        "scratch",
    ]);
    cluster.ok(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "scratch",
        "--from-literal=a=b",
    ]);
    cluster.ok(&[
        "rollout",
        "status",
        "deployment/inner",
        "-n",
        "scratch",
        "--timeout=60s",
        "--request-timeout=0",
    ]);
    cluster.ok(&["delete", "namespace", "scratch", "--timeout=60s"]);
    let gone = cluster.server.client().run(&["get", "namespace", "scratch"]);
    assert!(!gone.status.success());
    let left = cluster.ok(&[
        "get",
        "pods,replicasets,configmaps",
        "-n",
        "scratch",
        "-o",
        "name",
    ]);
    assert_eq!(left, "");
}

/// A Deployment of `replicas` busybox pods labelled `app: NAME`; `spec` is extra pod spec YAML
/// indented for the pod template's spec (six spaces).
fn deployment(name: &str, replicas: usize, cpu: &str, spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        \
         app: {name}\n    spec:\n      containers:\n      - name: main\n        image: busybox\n        \
         resources:\n          requests:\n            cpu: {cpu}\n{spec}"
    )
}

#[test]
fn a_silent_nodes_pods_are_recreated_on_the_others() {
    let cluster = Cluster::start(3, &["--node-monitor-grace-period=4s", "--node-monitor-period=1s"]);
    // Tolerating an unreachable node for 2 s instead of DefaultTolerationSeconds' 300.
    let tolerations = "      tolerations:\n      - key: node.kubernetes.io/unreachable\n        \
                       operator: Exists\n        effect: NoExecute\n        tolerationSeconds: 2\n";
    cluster.apply("web.yaml", &deployment("web", 6, "100m", tolerations));
    cluster.rollout_status("deployment/web");
    let before = cluster.running_per_node("app=web");
    assert_eq!(before.len(), 3, "spread over every node: {before:?}");
    let victims = before["hollow-1"];

    cluster.silence("hollow-1");
    cluster.wait_for("hollow-1 NotReady and tainted", Duration::from_secs(30), || {
        let taints = cluster.ok(&["get", "node", "hollow-1", "-o", "jsonpath={.spec.taints}"]);
        cluster.ok(&["get", "node", "hollow-1"]).contains("NotReady")
            && taints.contains("node.kubernetes.io/unreachable")
            && taints.contains("NoExecute")
    });
    // Its pods are evicted (they stay Terminating: their node cannot confirm) and replaced on
    // the nodes that are left.
    cluster.wait_for("six web pods running elsewhere", Duration::from_secs(60), || {
        let now = cluster.running_per_node("app=web");
        let elsewhere: usize = now.iter().filter(|(n, _)| *n != "hollow-1").map(|(_, c)| c).sum();
        elsewhere == 6
    });
    let terminating = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "--field-selector",
        "spec.nodeName=hollow-1",
        "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        terminating.lines().filter(|l| !l.is_empty()).count(),
        victims,
        "{terminating}"
    );
    let status = cluster.rollout_status("deployment/web");
    assert!(status.contains("successfully rolled out"), "{status}");
    let reasons = cluster.ok(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert!(reasons.contains("TaintManagerEviction"), "{reasons}");
}

#[test]
fn scheduling_constraints_place_pods_on_hollow_nodes() {
    let cluster = Cluster::start(4, &[]);
    for (node, zone) in [
        ("hollow-0", "a"),
        ("hollow-1", "a"),
        ("hollow-2", "b"),
        ("hollow-3", "b"),
    ] {
        cluster.ok(&[
            "label",
            "node",
            node,
            &format!("topology.kubernetes.io/zone=zone-{zone}"),
        ]);
    }
    cluster.ok(&["label", "node", "hollow-2", "disk=ssd"]);
    cluster.ok(&["taint", "node", "hollow-3", "dedicated=infra:NoSchedule"]);

    // nodeSelector.
    cluster.apply(
        "ssd.yaml",
        &deployment("ssd", 3, "100m", "      nodeSelector:\n        disk: ssd\n"),
    );
    cluster.rollout_status("deployment/ssd");
    assert_eq!(cluster.nodes_of("app=ssd"), ["hollow-2"; 3]);

    // Taints keep pods away unless tolerated.
    let on_infra = "      nodeSelector:\n        kubernetes.io/hostname: hollow-3\n";
    let tolerate = "      tolerations:\n      - key: dedicated\n        operator: Equal\n        \
                    value: infra\n        effect: NoSchedule\n";
    cluster.apply(
        "infra.yaml",
        &deployment("infra", 2, "100m", &format!("{on_infra}{tolerate}")),
    );
    cluster.rollout_status("deployment/infra");
    assert_eq!(cluster.nodes_of("app=infra"), ["hollow-3"; 2]);
    cluster.apply("intruder.yaml", &deployment("intruder", 1, "100m", on_infra));
    cluster.wait_for(
        "intruder's FailedScheduling event",
        Duration::from_secs(30),
        || {
            cluster
                .ok(&[
                    "get",
                    "events",
                    "--field-selector",
                    "reason=FailedScheduling",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])
                .contains(
                    "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, \
                 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are \
                 available: 4 Preemption is not helpful for scheduling.",
                )
        },
    );
    let phases = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=intruder",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(phases, "Pending");

    // Required node affinity by zone.
    let zone_a = "      affinity:\n        nodeAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n            \
                  nodeSelectorTerms:\n            - matchExpressions:\n              - key: topology.kubernetes.io/zone\n                \
                  operator: In\n                values: [zone-a]\n";
    cluster.apply("zonal.yaml", &deployment("zonal", 4, "100m", zone_a));
    cluster.rollout_status("deployment/zonal");
    let zonal = cluster.nodes_of("app=zonal");
    assert!(
        zonal.iter().all(|n| n == "hollow-0" || n == "hollow-1"),
        "{zonal:?}"
    );

    // Required pod anti-affinity by hostname: one per schedulable node (hollow-3 is tainted),
    // the fourth waits.
    let anti = "      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          \
                - labelSelector:\n              matchLabels:\n                app: db\n            \
                topologyKey: kubernetes.io/hostname\n";
    cluster.apply("db.yaml", &deployment("db", 4, "100m", anti));
    cluster.wait_for("three db pods running", Duration::from_secs(30), || {
        cluster.nodes_of("app=db") == ["hollow-0", "hollow-1", "hollow-2"]
    });
    std::thread::sleep(Duration::from_secs(1));
    let pending = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "--field-selector",
        "status.phase=Pending",
        "-o",
        "name",
    ]);
    assert_eq!(pending.lines().count(), 1, "{pending}");

    // Topology spread over zones with maxSkew 1: as many per zone (zone b has only hollow-2
    // schedulable, so half the pods land there).
    let spread = "      topologySpreadConstraints:\n      - maxSkew: 1\n        topologyKey: topology.kubernetes.io/zone\n        \
                  whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: spread\n";
    cluster.apply("spread.yaml", &deployment("spread", 6, "100m", spread));
    cluster.rollout_status("deployment/spread");
    let spread_nodes = cluster.nodes_of("app=spread");
    let in_b = spread_nodes.iter().filter(|n| *n == "hollow-2").count();
    assert_eq!(in_b, 3, "{spread_nodes:?}");
}

#[test]
fn a_high_priority_pod_preempts_on_hollow_nodes() {
    let cluster = Cluster::start(2, &[]);
    cluster.apply(
        "classes.yaml",
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n---\n\
         apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: low\nvalue: 10\n",
    );
    // Each hollow node has 4 cpus: two 1500m low-priority pods per node fill them up.
    let low = "      priorityClassName: low\n      terminationGracePeriodSeconds: 1\n";
    cluster.apply("filler.yaml", &deployment("filler", 4, "1500m", low));
    cluster.rollout_status("deployment/filler");
    assert_eq!(cluster.running_per_node("app=filler").len(), 2);

    let high = "      priorityClassName: high\n";
    cluster.apply("vip.yaml", &deployment("vip", 1, "2", high));
    cluster.rollout_status("deployment/vip");
    let vip_node = cluster.nodes_of("app=vip");
    assert_eq!(vip_node.len(), 1);
    // One filler pod gave way on that node; its replacement cannot fit anywhere.
    let fillers = cluster.running_per_node("app=filler");
    assert_eq!(fillers.values().sum::<usize>(), 3, "{fillers:?}");
    assert_eq!(fillers.get(&vip_node[0]), Some(&1), "{fillers:?}");
    let reasons = cluster.ok(&["get", "events", "-o", "jsonpath={.items[*].reason}"]);
    assert!(reasons.contains("Preempted"), "{reasons}");
}
