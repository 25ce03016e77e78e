//! Issue 4's acceptance: real kubectl against a real `rkube server` (controllers and scheduler
//! in-process) and `rkube sim` hollow nodes, both child processes.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// A server plus `nodes` hollow nodes named `hollow-0…`.
struct Cluster {
    server: Server,
    sim: Child,
}

impl Cluster {
    fn start(nodes: usize, server_flags: &[&str]) -> Cluster {
        let server = Server::start_with(server_flags);
        let log = std::fs::File::create(server.dir.path().join("sim.log")).unwrap();
        let sim = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["sim", "--nodes", &nodes.to_string(), "--name-prefix", "hollow-"])
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let cluster = Cluster { server, sim };
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
