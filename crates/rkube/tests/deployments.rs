//! Deployments, ReplicaSets and ReplicationControllers end to end: real kubectl against a
//! child `rkube server` whose controllers do the work. No scheduler or node runs here, so a
//! test-side fake kubelet (kube-rs) makes pods Running and Ready (with a pod IP) shortly after
//! they appear and finishes the deletion of pods that are being deleted. Images containing
//! `unready` never become ready (for progress deadlines).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

/// A fake kubelet and any test watchers, on their own runtime; stopped on drop.
struct Background {
    runtime: Option<tokio::runtime::Runtime>,
    client: kube::Client,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Background {
    fn start(server: &Server, ready_delay: Duration) -> Background {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(clientkit::from_kubeconfig(&server.kubeconfig))
            .unwrap();
        runtime.spawn(fake_kubelet(client.clone(), ready_delay));
        Background {
            runtime: Some(runtime),
            client,
        }
    }

    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.runtime.as_ref().unwrap().spawn(f);
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }
}

/// Marks new pods Running + Ready after `delay`, and removes pods being deleted.
async fn fake_kubelet(client: kube::Client, delay: Duration) {
    let pods: Api<Pod> = Api::all(client.clone());
    let started: Arc<Mutex<HashSet<String>>> = Arc::default();
    let counter = Arc::new(std::sync::atomic::AtomicU32::new(1));
    let mut stream = watcher::watcher(pods, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        let Ok(Event::Apply(pod) | Event::InitApply(pod)) = event else {
            continue;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            tokio::spawn(async move {
                let _ = api.delete(&name, &DeleteParams::default().grace_period(0)).await;
            });
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if image.contains("unready") || !started.lock().unwrap().insert(uid) {
            continue;
        }
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let now = jiff::Timestamp::now().to_string();
            let condition = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
            let status = json!({"status": {
                "phase": "Running",
                "podIP": format!("10.244.{}.{}", n / 250, n % 250 + 1),
                "startTime": now,
                "conditions": [condition("PodScheduled"), condition("Initialized"),
                               condition("ContainersReady"), condition("Ready")],
            }});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        });
    }
}

/// A server whose pods are run by the fake kubelet alone: no scheduler binds them to nodes.
fn start() -> Server {
    Server::start_with(&["--disable-scheduler"])
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn json_of(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&server.ok(&all)).unwrap()
}

/// Pods not being deleted, with the given selector.
fn live_pods(server: &Server, selector: &str) -> Vec<Value> {
    json_of(server, &["get", "pods", "-l", selector])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .cloned()
        .collect()
}

fn images(server: &Server, selector: &str) -> BTreeMap<String, usize> {
    let mut images = BTreeMap::new();
    for pod in live_pods(server, selector) {
        *images
            .entry(pod["spec"]["containers"][0]["image"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    images
}

fn rollout_status(server: &Server, deployment: &str) -> String {
    server.ok(&[
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=90s",
    ])
}

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

fn deployment_yaml(name: &str, replicas: i32, image: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  {strategy}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: {image}
"
    )
}

#[test]
fn deployment_creates_its_pods_and_rollout_status_succeeds() {
    let server = start();
    let _kubelet = Background::start(&server, Duration::from_millis(100));
    server.ok(&["create", "deployment", "web", "--image=busybox", "--replicas=5"]);
    let out = rollout_status(&server, "web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );

    let d = json_of(&server, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        d["metadata"]["generation"], 1,
        "the controller's writes are status writes"
    );
    assert_eq!(d["status"]["observedGeneration"], 1);
    // Each component's writes are recorded under its own name, as upstream's user agents make it.
    let managers = server.ok(&[
        "get",
        "deployment",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={range .metadata.managedFields[*]}{.manager}/{.subresource} {end}",
    ]);
    let mut managers: Vec<&str> = managers.split_whitespace().collect();
    managers.sort();
    assert_eq!(
        managers,
        // (The revision annotation goes through the status subresource, as upstream's.)
        ["kube-controller-manager/status", "kubectl-create/"]
    );
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(d["status"][field], 5, "{field}: {}", d["status"]);
    }
    assert!(d["status"].get("unavailableReplicas").is_none());
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["reason"], "MinimumReplicasAvailable");
    assert_eq!(available["message"], "Deployment has minimum availability.");
    let progressing = condition(&d, "Progressing");
    assert_eq!(progressing["status"], "True");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");

    let rss = json_of(&server, &["get", "rs", "-l", "app=web"]);
    let rs = &rss["items"][0];
    assert_eq!(rss["items"].as_array().unwrap().len(), 1);
    let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().unwrap();
    let rs_name = rs["metadata"]["name"].as_str().unwrap();
    assert_eq!(rs_name, format!("web-{hash}"));
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{rs_name}\" has successfully progressed.")
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "5"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "7"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
    assert_eq!(rs["status"]["readyReplicas"], 5);
    assert_eq!(rs["status"]["availableReplicas"], 5);
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 5);

    let pods = live_pods(&server, "app=web");
    assert_eq!(pods.len(), 5);
    for pod in &pods {
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["name"], rs_name);
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["blockOwnerDeletion"], true);
        assert_eq!(pod["metadata"]["generateName"], format!("{rs_name}-"));
        assert_eq!(pod["metadata"]["labels"]["pod-template-hash"], hash);
    }

    // Events as upstream's controllers word them.
    let events = server.ok(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    let has = |component: &str, reason: &str, message: &str| {
        events["items"].as_array().unwrap().iter().any(|e| {
            e["source"]["component"] == component
                && e["reason"] == reason
                && e["message"].as_str().unwrap().starts_with(message)
        })
    };
    assert!(has(
        "deployment-controller",
        "ScalingReplicaSet",
        &format!("Scaled up replica set {rs_name} from 0 to 5")
    ));
    assert!(has(
        "replicaset-controller",
        "SuccessfulCreate",
        &format!("Created pod: {rs_name}-")
    ));

    // kubectl's table columns for the Deployment.
    let table = server.ok(&["get", "deployment", "web"]);
    let row = common::words(&table);
    assert_eq!(&row[1][..4], ["web", "5/5", "5", "5"], "{table}");
}

/// Watches pods and ReplicaSets during a rolling update and records every violation of
/// maxSurge / maxUnavailable.
fn watch_rollout_bounds(
    bg: &Background,
    selector: &str,
    max_total: usize,
    min_available: usize,
) -> Arc<Mutex<Vec<String>>> {
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    let pods: Api<Pod> = Api::default_namespaced(bg.client.clone());
    let config = watcher::Config::default().labels(selector);
    let v = violations.clone();
    bg.spawn(async move {
        let mut live: BTreeMap<String, bool> = BTreeMap::new();
        let mut stream = watcher::watcher(pods, config).boxed();
        // Counts are checked on whole lists only.
        let mut listing = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => {
                    listing = true;
                    live.clear();
                    continue;
                }
                Ok(Event::InitDone) => listing = false,
                Ok(Event::Apply(p) | Event::InitApply(p)) => {
                    let name = p.metadata.name.clone().unwrap();
                    if p.metadata.deletion_timestamp.is_some() {
                        live.remove(&name);
                    } else {
                        let ready = p
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                        live.insert(name, ready);
                    }
                }
                Ok(Event::Delete(p)) => {
                    live.remove(&p.metadata.name.clone().unwrap());
                }
                _ => continue,
            }
            if listing {
                continue;
            }
            let available = live.values().filter(|r| **r).count();
            if live.len() > max_total || available < min_available {
                v.lock()
                    .unwrap()
                    .push(format!("{} pods, {available} available", live.len()));
            }
        }
    });
    let rss: Api<ReplicaSet> = Api::default_namespaced(bg.client.clone());
    let config = watcher::Config::default().labels(selector);
    let v = violations.clone();
    bg.spawn(async move {
        let mut sizes: BTreeMap<String, i32> = BTreeMap::new();
        // The events seen so far, quoted in a violation.
        let mut history: Vec<String> = Vec::new();
        let mut stream = watcher::watcher(rss, config).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(rs) | Event::InitApply(rs)) => {
                    let name = rs.metadata.name.clone().unwrap();
                    let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    let available = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
                    let rv = rs.metadata.resource_version.clone().unwrap_or_default();
                    history.push(format!("{name}={replicas} (available {available}, rv {rv})"));
                    sizes.insert(name, replicas);
                }
                Ok(Event::Delete(rs)) => {
                    sizes.remove(&rs.metadata.name.unwrap());
                }
                _ => continue,
            }
            let total: i32 = sizes.values().sum();
            if total as usize > max_total {
                v.lock()
                    .unwrap()
                    .push(format!("replica sets sized {sizes:?} after {history:?}"));
            }
        }
    });
    violations
}

#[test]
fn rolling_update_stays_within_max_surge_and_max_unavailable() {
    let server = start();
    let bg = Background::start(&server, Duration::from_millis(300));
    let strategy = "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 2, maxUnavailable: 1}}";
    server.create("d.yaml", &deployment_yaml("web", 6, "nginx:1.0", strategy));
    rollout_status(&server, "web");
    std::thread::sleep(Duration::from_millis(500));
    let violations = watch_rollout_bounds(&bg, "app=web", 8, 5);
    std::thread::sleep(Duration::from_millis(500));

    server.ok(&["set", "image", "deployment/web", "main=nginx:2.0"]);
    let out = rollout_status(&server, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_until("only new pods", Duration::from_secs(30), || {
        images(&server, "app=web") == BTreeMap::from([("nginx:2.0".to_owned(), 6)])
    });
    let violations = violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "bounds violated: {violations:?}\nserver log:\n{}",
        server.log()
    );

    let d = json_of(&server, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(d["status"]["updatedReplicas"], 6);
    let rss = json_of(&server, &["get", "rs", "-l", "app=web"]);
    let mut sizes: Vec<(String, i64)> = rss["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                rs["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    sizes.sort();
    assert_eq!(sizes, [("1".to_owned(), 0), ("2".to_owned(), 6)]);
    // Upstream's events for the rollout's steps.
    let events = server.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=Deployment",
    ]);
    assert!(events.contains("Scaled down replica set web-"), "{events}");
}

#[test]
fn rollout_history_undo_and_to_revision() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.create("d.yaml", &deployment_yaml("web", 2, "nginx:1", ""));
    rollout_status(&server, "web");
    for (image, cause) in [("nginx:2", "to two"), ("nginx:3", "to three")] {
        // The change-cause goes to the ReplicaSet of the current template (as upstream, an
        // annotation made before the change would mark the previous revision).
        server.ok(&["set", "image", "deployment/web", &format!("main={image}")]);
        server.ok(&[
            "annotate",
            "deployment/web",
            &format!("kubernetes.io/change-cause={cause}"),
            "--overwrite",
        ]);
        rollout_status(&server, "web");
    }
    let history = server.ok(&["rollout", "history", "deployment/web"]);
    let rows = common::words(&history);
    assert_eq!(rows[0], ["deployment.apps/web"], "{history}");
    assert_eq!(rows[1], ["REVISION", "CHANGE-CAUSE"]);
    assert_eq!(rows[2], ["1", "<none>"]);
    assert_eq!(rows[3], ["2", "to", "two"]);
    assert_eq!(rows[4], ["3", "to", "three"]);
    let detail = server.ok(&["rollout", "history", "deployment/web", "--revision=2"]);
    assert!(detail.contains("nginx:2"), "{detail}");

    // Undo: back to revision 2's template, which becomes revision 4.
    let out = server.ok(&["rollout", "undo", "deployment/web"]);
    assert!(out.contains("rolled back"), "{out}");
    rollout_status(&server, "web");
    wait_until("nginx:2 pods", Duration::from_secs(30), || {
        images(&server, "app=web") == BTreeMap::from([("nginx:2".to_owned(), 2)])
    });
    let d = json_of(&server, &["get", "deployment", "web"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "4"
    );
    let history = server.ok(&["rollout", "history", "deployment/web"]);
    let revisions: Vec<String> = common::words(&history)[2..]
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(revisions, ["1", "3", "4"], "{history}");
    let rs = json_of(&server, &["get", "rs", "-l", "app=web"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rs| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4")
        .cloned()
        .unwrap();
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
        "2"
    );

    // To an explicit revision.
    server.ok(&["rollout", "undo", "deployment/web", "--to-revision=1"]);
    rollout_status(&server, "web");
    wait_until("nginx:1 pods", Duration::from_secs(30), || {
        images(&server, "app=web") == BTreeMap::from([("nginx:1".to_owned(), 2)])
    });
    let err = server.fails(&["rollout", "undo", "deployment/web", "--to-revision=42"]);
    assert!(
        err.contains("unable to find specified revision 42 in history"),
        "{err}"
    );
}

#[test]
fn pause_resume_and_restart() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.create("d.yaml", &deployment_yaml("web", 2, "nginx:1", ""));
    rollout_status(&server, "web");

    server.ok(&["rollout", "pause", "deployment/web"]);
    server.ok(&["set", "image", "deployment/web", "main=nginx:2"]);
    wait_until("the paused condition", Duration::from_secs(20), || {
        let d = json_of(&server, &["get", "deployment", "web"]);
        let c = condition(&d, "Progressing");
        c["reason"] == "DeploymentPaused"
            && c["status"] == "Unknown"
            && c["message"] == "Deployment is paused"
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        json_of(&server, &["get", "rs", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        images(&server, "app=web"),
        BTreeMap::from([("nginx:1".to_owned(), 2)])
    );

    server.ok(&["rollout", "resume", "deployment/web"]);
    rollout_status(&server, "web");
    wait_until("nginx:2 pods", Duration::from_secs(30), || {
        images(&server, "app=web") == BTreeMap::from([("nginx:2".to_owned(), 2)])
    });

    let out = server.ok(&["rollout", "restart", "deployment/web"]);
    assert!(out.contains("restarted"), "{out}");
    rollout_status(&server, "web");
    let d = json_of(&server, &["get", "deployment", "web"]);
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let pods = live_pods(&server, "app=web");
    wait_until("restarted pods only", Duration::from_secs(30), || {
        live_pods(&server, "app=web")
            .iter()
            .all(|p| p["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string())
            && live_pods(&server, "app=web").len() == 2
    });
    drop(pods);
}

#[test]
fn scale_up_and_down() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.ok(&["create", "deployment", "web", "--image=nginx", "--replicas=2"]);
    rollout_status(&server, "web");
    server.ok(&["scale", "deployment/web", "--replicas=7"]);
    rollout_status(&server, "web");
    wait_until("7 pods", Duration::from_secs(30), || {
        live_pods(&server, "app=web").len() == 7
    });
    server.ok(&["scale", "deployment/web", "--replicas=1"]);
    rollout_status(&server, "web");
    wait_until("1 pod", Duration::from_secs(30), || {
        live_pods(&server, "app=web").len() == 1
    });
    let d = json_of(&server, &["get", "deployment", "web"]);
    assert_eq!(d["status"]["replicas"], 1);
    let rs = &json_of(&server, &["get", "rs", "-l", "app=web"])["items"][0];
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "1"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let events = server.ok(&["get", "events", "--field-selector", "reason=ScalingReplicaSet"]);
    assert!(events.contains("from 7 to 1"), "{events}");
}

#[test]
fn proportional_scaling_during_a_rollout() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    let strategy = "strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 3, maxUnavailable: 2}}";
    server.create("d.yaml", &deployment_yaml("web", 10, "nginx:1", strategy));
    rollout_status(&server, "web");
    // A new template whose pods never become ready: the rollout stalls midway.
    server.ok(&["set", "image", "deployment/web", "main=nginx:unready"]);
    wait_until("a stalled rollout", Duration::from_secs(30), || {
        let rss = json_of(&server, &["get", "rs", "-l", "app=web"]);
        let sizes: Vec<i64> = rss["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap())
            .collect();
        sizes.len() == 2 && sizes.iter().sum::<i64>() == 13 && sizes.contains(&8)
    });
    // 8 old + 5 new = 13 = 10 + 3 surge; scaling to 20 (max 23) spreads the 10 more in
    // proportion: old 8 → 8·23/13 ≈ 14, new 5 → 5·23/13 ≈ 9.
    server.ok(&["scale", "deployment/web", "--replicas=20"]);
    wait_until("proportional sizes", Duration::from_secs(30), || {
        let rss = json_of(&server, &["get", "rs", "-l", "app=web"]);
        let mut sizes: Vec<i64> = rss["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap())
            .collect();
        sizes.sort();
        sizes == [9, 14]
    });
}

#[test]
fn recreate_strategy_never_runs_old_and_new_together() {
    let server = start();
    let bg = Background::start(&server, Duration::from_millis(100));
    server.create(
        "d.yaml",
        &deployment_yaml("web", 3, "nginx:1", "strategy: {type: Recreate}"),
    );
    rollout_status(&server, "web");
    let mixed: Arc<Mutex<Vec<String>>> = Arc::default();
    let pods: Api<Pod> = Api::default_namespaced(bg.client.clone());
    let m = mixed.clone();
    bg.spawn(async move {
        let mut live: BTreeMap<String, String> = BTreeMap::new();
        let mut stream = watcher::watcher(pods, watcher::Config::default().labels("app=web")).boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(p) | Event::InitApply(p)) => {
                    let image = p.spec.as_ref().unwrap().containers[0].image.clone().unwrap();
                    live.insert(p.metadata.name.clone().unwrap(), image);
                }
                Ok(Event::Delete(p)) => {
                    live.remove(&p.metadata.name.unwrap());
                }
                _ => continue,
            }
            let kinds: HashSet<&String> = live.values().collect();
            if kinds.len() > 1 {
                m.lock().unwrap().push(format!("{live:?}"));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    server.ok(&["set", "image", "deployment/web", "main=nginx:2"]);
    rollout_status(&server, "web");
    wait_until("nginx:2 pods", Duration::from_secs(30), || {
        images(&server, "app=web") == BTreeMap::from([("nginx:2".to_owned(), 3)])
    });
    let mixed = mixed.lock().unwrap().clone();
    assert!(mixed.is_empty(), "old and new pods together: {mixed:?}");
}

#[test]
fn progress_deadline_exceeded() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    let yaml = deployment_yaml("stuck", 2, "nginx:unready", "progressDeadlineSeconds: 3");
    server.create("d.yaml", &yaml);
    let out = server
        .client()
        .run(&["rollout", "status", "deployment/stuck", "--timeout=60s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deployment \"stuck\" exceeded its progress deadline"),
        "{err}"
    );
    let d = json_of(&server, &["get", "deployment", "stuck"]);
    let c = condition(&d, "Progressing");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ProgressDeadlineExceeded");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .ends_with("has timed out progressing."),
        "{c}"
    );
    let a = condition(&d, "Available");
    assert_eq!(a["status"], "False");
    assert_eq!(a["reason"], "MinimumReplicasUnavailable");
    assert_eq!(d["status"]["unavailableReplicas"], 2);
}

#[test]
fn replica_set_adopts_and_releases_pods_by_label() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.create(
        "orphan.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: orphan, labels: {app: cache}}\nspec:\n  containers: [{name: c, image: redis}]\n",
    );
    server.create(
        "rs.yaml",
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: c, image: redis}]
",
    );
    wait_until("adoption", Duration::from_secs(30), || {
        let pod = json_of(&server, &["get", "pod", "orphan"]);
        pod["metadata"]["ownerReferences"][0]["name"] == "cache"
            && pod["metadata"]["ownerReferences"][0]["controller"] == true
    });
    wait_until("2 pods", Duration::from_secs(30), || {
        let rs = json_of(&server, &["get", "rs", "cache"]);
        rs["status"]["readyReplicas"] == 2
    });
    assert_eq!(
        live_pods(&server, "app=cache").len(),
        2,
        "the orphan counts as one"
    );

    // A label change releases the pod; the ReplicaSet replaces it.
    server.ok(&["label", "pod", "orphan", "app=other", "--overwrite"]);
    wait_until("release", Duration::from_secs(30), || {
        let pod = json_of(&server, &["get", "pod", "orphan"]);
        pod["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    });
    wait_until("a replacement", Duration::from_secs(30), || {
        live_pods(&server, "app=cache").len() == 2
    });
    let orphan = json_of(&server, &["get", "pod", "orphan"]);
    assert!(
        orphan["metadata"]["deletionTimestamp"].is_null(),
        "released, not deleted"
    );
}

#[test]
fn replication_controllers_keep_their_replicas() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.create(
        "rc.yaml",
        "apiVersion: v1
kind: ReplicationController
metadata: {name: legacy}
spec:
  replicas: 3
  selector: {app: legacy}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: c, image: nginx}]
",
    );
    wait_until("3 ready", Duration::from_secs(30), || {
        let rc = json_of(&server, &["get", "rc", "legacy"]);
        rc["status"]["readyReplicas"] == 3 && rc["status"]["availableReplicas"] == 3
    });
    let pods = live_pods(&server, "app=legacy");
    assert_eq!(pods.len(), 3);
    assert_eq!(
        pods[0]["metadata"]["ownerReferences"][0]["kind"],
        "ReplicationController"
    );
    assert_eq!(pods[0]["metadata"]["ownerReferences"][0]["apiVersion"], "v1");
    server.ok(&["scale", "rc/legacy", "--replicas=1"]);
    wait_until("1 pod", Duration::from_secs(30), || {
        live_pods(&server, "app=legacy").len() == 1
    });
    let rc = json_of(&server, &["get", "rc", "legacy"]);
    assert_eq!(rc["status"]["replicas"], 1);
    assert_eq!(rc["status"]["observedGeneration"], 2);
    let events = server.ok(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    assert!(events["items"].as_array().unwrap().iter().any(|e| {
        e["source"]["component"] == "replication-controller" && e["reason"] == "SuccessfulDelete"
    }));
}

#[test]
fn no_duplicate_pods_while_the_watch_lags() {
    let server = start();
    let bg = Background::start(&server, Duration::from_millis(0));
    let created: Arc<Mutex<HashSet<String>>> = Arc::default();
    let pods: Api<Pod> = Api::default_namespaced(bg.client.clone());
    let c = created.clone();
    bg.spawn(async move {
        let mut stream = watcher::watcher(pods, watcher::Config::default().labels("app=many")).boxed();
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = event {
                c.lock().unwrap().insert(p.metadata.name.unwrap());
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    server.create(
        "rs.yaml",
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: many}
spec:
  replicas: 40
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      containers: [{name: c, image: nginx}]
",
    );
    wait_until("40 ready", Duration::from_secs(60), || {
        json_of(&server, &["get", "rs", "many"])["status"]["readyReplicas"] == 40
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(created.lock().unwrap().len(), 40, "every pod ever created");
    assert_eq!(live_pods(&server, "app=many").len(), 40);
    // The Deployment side of the same: its ReplicaSet API objects are never duplicated either.
    let rs: Api<ReplicaSet> = Api::default_namespaced(bg.client.clone());
    let list = bg.block_on(rs.list(&Default::default())).unwrap();
    assert_eq!(list.items.len(), 1);
    let _: Option<Deployment> = None;
}

#[test]
fn available_only_after_min_ready_seconds() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    server.create(
        "rs.yaml",
        "apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: slow}
spec:
  replicas: 2
  minReadySeconds: 3
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      containers: [{name: c, image: nginx}]
",
    );
    wait_until("2 ready", Duration::from_secs(20), || {
        json_of(&server, &["get", "rs", "slow"])["status"]["readyReplicas"] == 2
    });
    let status = json_of(&server, &["get", "rs", "slow"])["status"].clone();
    assert!(
        status.get("availableReplicas").is_none(),
        "ready but not yet available: {status}"
    );
    // No pod changes after this: only the controller's requeue can count them available.
    wait_until("2 available", Duration::from_secs(20), || {
        json_of(&server, &["get", "rs", "slow"])["status"]["availableReplicas"] == 2
    });
}

#[test]
fn failed_pod_creates_surface_as_replica_failure() {
    let server = start();
    let _bg = Background::start(&server, Duration::from_millis(50));
    // Admission refuses the pods (no such PriorityClass), not the Deployment.
    let yaml = deployment_yaml("bad", 2, "nginx", "").replace(
        "      containers:",
        "      priorityClassName: nope\n      containers:",
    );
    server.create("d.yaml", &yaml);
    wait_until("the ReplicaFailure conditions", Duration::from_secs(30), || {
        let d = json_of(&server, &["get", "deployment", "bad"]);
        condition(&d, "ReplicaFailure")["status"] == "True"
    });
    let rs = &json_of(&server, &["get", "rs", "-l", "app=bad"])["items"][0];
    let failure = condition(rs, "ReplicaFailure");
    assert_eq!(failure["reason"], "FailedCreate", "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("no PriorityClass with name nope was found"),
        "{failure}"
    );
    let d = json_of(&server, &["get", "deployment", "bad"]);
    assert_eq!(condition(&d, "ReplicaFailure")["reason"], "FailedCreate");
    let events = server.ok(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_str(&events).unwrap();
    assert!(events["items"].as_array().unwrap().iter().any(|e| {
        e["source"]["component"] == "replicaset-controller"
            && e["reason"] == "FailedCreate"
            && e["type"] == "Warning"
            && e["message"].as_str().unwrap().starts_with("Error creating: ")
    }));
    assert!(live_pods(&server, "app=bad").is_empty());
}
