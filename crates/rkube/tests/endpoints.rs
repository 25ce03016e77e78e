//! The EndpointSlice, Endpoints and service load balancer controllers end to end, through a
//! child `rkube server` without agents: the test registers Nodes and creates pods bound to
//! them, then plays the kubelet — pod IPs, phase and the Ready condition through
//! `pods/NAME/status`, node readiness through `nodes/NAME/status` — and checks the slices,
//! Endpoints and LoadBalancer status the controllers write, and how kubectl shows them.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A server (no node lifecycle controller: these Nodes have no kubelet to keep them Ready;
/// no scheduler: the test binds pods itself) and a kube-rs client on a runtime of its own.
struct Cluster {
    server: Server,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

impl Cluster {
    fn start() -> Cluster {
        let server = Server::start_with(&["--disable-scheduler", "--controllers=-node-lifecycle"]);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(clientkit::from_kubeconfig(&server.kubeconfig))
            .unwrap();
        Cluster {
            server,
            runtime,
            client,
        }
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A Ready node with an InternalIP and a zone.
    fn node(&self, name: &str, ip: &str, zone: &str) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}}});
        self.block_on(nodes.create(&PostParams::default(), &serde_json::from_value(node).unwrap()))
            .unwrap();
        self.node_ready(name, ip, true);
    }

    fn node_ready(&self, name: &str, ip: &str, ready: bool) {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let status = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": "KubeletReady", "message": "kubelet is posting ready status"}]}});
        self.block_on(nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)))
            .unwrap();
    }

    /// A pod bound to `node` whose container has `http` at `port`; `extra` is merged into the
    /// pod (labels, hostname, finalizers…).
    fn pod(&self, name: &str, node: &str, port: i32, ip: &str, ready: bool, extra: Value) {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
                "ports": [{"name": "http", "containerPort": port}]}]}});
        merge(&mut pod, extra);
        self.block_on(
            self.pods()
                .create(&PostParams::default(), &serde_json::from_value(pod).unwrap()),
        )
        .unwrap();
        let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [ready_condition(ready)]}});
        self.block_on(
            self.pods()
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status)),
        )
        .unwrap();
    }

    fn set_ready(&self, pod: &str, ready: bool) {
        let status = json!({"status": {"conditions": [ready_condition(ready)]}});
        self.block_on(
            self.pods()
                .patch_status(pod, &PatchParams::default(), &Patch::Merge(&status)),
        )
        .unwrap();
    }

    fn create_service(&self, svc: Value) {
        self.block_on(
            self.services()
                .create(&PostParams::default(), &serde_json::from_value(svc).unwrap()),
        )
        .unwrap();
    }

    fn patch_service(&self, name: &str, patch: Value) {
        self.block_on(
            self.services()
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .unwrap();
    }

    /// The service's slices (by the service-name label), as JSON, sorted by their first port.
    fn slices(&self, service: &str) -> Vec<Value> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), "default");
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let list = self.block_on(api.list(&params)).unwrap();
        let mut slices: Vec<Value> = list
            .items
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        slices.sort_by_key(|s| s["ports"][0]["port"].as_i64());
        slices
    }

    fn endpoints(&self, name: &str) -> Option<Value> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), "default");
        self.block_on(api.get_opt(name))
            .unwrap()
            .map(|e| serde_json::to_value(e).unwrap())
    }

    fn service(&self, name: &str) -> Value {
        serde_json::to_value(self.block_on(self.services().get(name)).unwrap()).unwrap()
    }

    /// Polls `check` until it gives a value; returns it and how long it took.
    fn wait<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> (T, Duration) {
        let start = Instant::now();
        loop {
            if let Some(v) = check() {
                return (v, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; server log:\n{}",
                tail(&self.server.log())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nothing may outlive the test's runtime.
        let runtime = std::mem::replace(
            &mut self.runtime,
            tokio::runtime::Builder::new_current_thread().build().unwrap(),
        );
        runtime.shutdown_background();
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn ready_condition(ready: bool) -> Value {
    json!({"type": "Ready", "status": if ready { "True" } else { "False" },
           "lastTransitionTime": jiff::Timestamp::now().to_string()})
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// The endpoints of all slices, keyed by pod name.
fn endpoints_by_pod(slices: &[Value]) -> std::collections::BTreeMap<String, Value> {
    slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| (e["targetRef"]["name"].as_str().unwrap().to_owned(), e))
        .collect()
}

fn conditions(e: &Value) -> (bool, bool, bool) {
    let c = &e["conditions"];
    (
        c["ready"].as_bool().unwrap(),
        c["serving"].as_bool().unwrap(),
        c["terminating"].as_bool().unwrap(),
    )
}

#[test]
fn slices_and_endpoints_follow_pods() {
    let cluster = Cluster::start();
    cluster.node("n1", "10.0.0.1", "zone-a");
    cluster.node("n2", "10.0.0.2", "zone-b");
    cluster.create_service(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"team": "blue"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}));
    // Without pods: one placeholder slice, and Endpoints without subsets.
    let (slices, _) = cluster.wait("the placeholder slice", Duration::from_secs(10), || {
        Some(cluster.slices("web")).filter(|s| s.len() == 1)
    });
    assert_eq!(slices[0]["endpoints"], json!([]));
    assert!(slices[0]["ports"].is_null(), "{}", slices[0]);
    cluster.wait("the Endpoints", Duration::from_secs(10), || {
        cluster.endpoints("web")
    });

    cluster.pod(
        "w1",
        "n1",
        8080,
        "10.42.1.1",
        true,
        json!({"metadata": {"finalizers": ["test.rkube.io/hold"]}}),
    );
    cluster.pod("w2", "n2", 9090, "10.42.2.1", true, json!({}));
    cluster.pod("w3", "n1", 8080, "10.42.1.3", false, json!({}));
    cluster.pod(
        "w4",
        "n1",
        8080,
        "10.42.1.4",
        true,
        json!({"spec": {"hostname": "h4", "subdomain": "web"}}),
    );
    cluster.pod(
        "other",
        "n1",
        8080,
        "10.42.1.9",
        true,
        json!({"metadata": {"labels": {"app": "other"}}}),
    );
    cluster.pod("done", "n1", 8080, "10.42.1.8", true, json!({}));
    // Finished as a kubelet reports it: Succeeded and no longer Ready.
    let done = json!({"status": {"phase": "Succeeded", "conditions": [ready_condition(false)]}});
    cluster
        .block_on(
            cluster
                .pods()
                .patch_status("done", &PatchParams::default(), &Patch::Merge(&done)),
        )
        .unwrap();

    // The named target port resolves to 8080 on three pods and 9090 on one: two slices.
    let (slices, _) = cluster.wait("two slices with four endpoints", Duration::from_secs(10), || {
        let slices = cluster.slices("web");
        (slices.len() == 2 && endpoints_by_pod(&slices).len() == 4).then_some(slices)
    });
    assert_eq!(
        slices[0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        slices[1]["ports"],
        json!([{"name": "http", "port": 9090, "protocol": "TCP"}])
    );
    for slice in &slices {
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["metadata"]["generateName"], "web-");
        let name = slice["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"team": "blue", "kubernetes.io/service-name": "web",
                   "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        );
        let owner = &slice["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["kind"],
                &owner["name"],
                &owner["controller"],
                &owner["blockOwnerDeletion"]
            ),
            (&json!("Service"), &json!("web"), &json!(true), &json!(true))
        );
    }
    // The time of the change behind the last write (a write caused by no pod or service change
    // clears it, as upstream's).
    let triggers: Vec<&str> = slices
        .iter()
        .filter_map(|s| {
            s["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"].as_str()
        })
        .collect();
    assert!(!triggers.is_empty());
    assert!(
        triggers.iter().all(|t| t.parse::<jiff::Timestamp>().is_ok()),
        "{triggers:?}"
    );
    let eps = endpoints_by_pod(&slices);
    let w1 = &eps["w1"];
    assert_eq!(w1["addresses"], json!(["10.42.1.1"]));
    assert_eq!(conditions(w1), (true, true, false));
    assert_eq!((&w1["nodeName"], &w1["zone"]), (&json!("n1"), &json!("zone-a")));
    assert_eq!(w1["targetRef"]["kind"], "Pod");
    assert_eq!(w1["targetRef"]["namespace"], "default");
    assert!(w1["targetRef"]["uid"].is_string());
    assert!(w1.get("hostname").is_none());
    assert_eq!(eps["w2"]["zone"], "zone-b");
    assert_eq!(conditions(&eps["w3"]), (false, false, false));
    assert_eq!(eps["w4"]["hostname"], "h4");

    // Endpoints: one subset per port number, not-ready pods apart, hostname and node kept.
    let (endpoints, _) = cluster.wait("Endpoints of four pods", Duration::from_secs(5), || {
        cluster
            .endpoints("web")
            .filter(|e| e.to_string().matches("\"ip\"").count() == 4 && !e.to_string().contains("10.42.1.8"))
    });
    assert_eq!(endpoints["metadata"]["labels"], json!({"team": "blue"}));
    let subsets = endpoints["subsets"].as_array().unwrap();
    assert_eq!(subsets.len(), 2, "{endpoints}");
    let by_port = |port: i64| subsets.iter().find(|s| s["ports"][0]["port"] == port).unwrap();
    let s8080 = by_port(8080);
    let ips = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|a| a["ip"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ips(&s8080["addresses"]), ["10.42.1.1", "10.42.1.4"]);
    assert_eq!(ips(&s8080["notReadyAddresses"]), ["10.42.1.3"]);
    assert_eq!(s8080["addresses"][1]["hostname"], "h4");
    assert_eq!(s8080["addresses"][0]["nodeName"], "n1");
    assert_eq!(s8080["addresses"][0]["targetRef"]["name"], "w1");
    assert_eq!(
        s8080["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(ips(&by_port(9090)["addresses"]), ["10.42.2.1"]);

    // kubectl's views.
    let table = cluster
        .server
        .ok(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web"]);
    let rows = common::words(&table);
    assert_eq!(rows[0], ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]);
    let cells: Vec<(String, String, String)> = rows[1..]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone(), r[3].clone()))
        .collect();
    assert!(
        cells.contains(&("IPv4".into(), "9090".into(), "10.42.2.1".into())),
        "{table}"
    );
    assert!(
        cells.iter().any(|c| c.1 == "8080" && c.2.split(',').count() == 3),
        "{table}"
    );
    let out = cluster.server.kubectl(&["get", "endpoints", "web"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n"
    );
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("10.42.1.1:8080,10.42.1.4:8080,10.42.2.1:9090"),
        "{table}"
    );
    let describe = cluster.server.ok(&["describe", "service", "web"]);
    // kubectl 1.33 reads the slices for this line, in the order they are listed.
    let line = describe.lines().find(|l| l.starts_with("Endpoints:")).unwrap();
    let mut listed: Vec<&str> = line.split_whitespace().nth(1).unwrap().split(',').collect();
    listed.sort();
    assert_eq!(
        listed,
        ["10.42.1.1:8080", "10.42.1.4:8080", "10.42.2.1:9090"],
        "{describe}"
    );

    // A pod on a node not (yet) known is left out, with upstream's event, until the node comes.
    cluster.pod("lost", "n9", 8080, "10.42.9.1", true, json!({}));
    cluster.wait("the FailedToUpdateEndpointSlices event", Duration::from_secs(5), || {
        let events = cluster.server.ok(&["get", "events", "--field-selector", "involvedObject.name=web"]);
        events
            .contains("Error updating Endpoint Slices for Service default/web: skipping Pod lost for Service default/web: Node n9 Not Found")
            .then_some(())
    });
    assert!(!endpoints_by_pod(&cluster.slices("web")).contains_key("lost"));
    cluster.node("n9", "10.0.0.9", "zone-c");
    cluster.wait("the lost pod in its slice", Duration::from_secs(5), || {
        endpoints_by_pod(&cluster.slices("web"))
            .get("lost")
            .filter(|e| e["zone"] == "zone-c")
            .map(|_| ())
    });
    cluster
        .block_on(
            cluster
                .pods()
                .delete("lost", &DeleteParams::default().grace_period(0)),
        )
        .unwrap();

    // A readiness change reaches the slice and the Endpoints within a second.
    cluster.set_ready("w3", true);
    let (_, latency) = cluster.wait("w3 ready in its slice", Duration::from_secs(3), || {
        let slices = cluster.slices("web");
        endpoints_by_pod(&slices)
            .get("w3")
            .filter(|e| conditions(e) == (true, true, false))
            .map(|_| ())
    });
    println!("pod readiness → EndpointSlice: {latency:?}");
    let (_, latency) = cluster.wait("w3 ready in the Endpoints", Duration::from_secs(3), || {
        let e = cluster.endpoints("web")?;
        ips(&e["subsets"][0]["addresses"])
            .contains(&"10.42.1.3".to_owned())
            .then_some(())
    });
    println!("pod readiness → Endpoints: {latency:?}");

    // Terminating (held by a finalizer): still in the slice, serving, not ready; gone from
    // the Endpoints.
    cluster
        .block_on(
            cluster
                .pods()
                .delete("w1", &DeleteParams::default().grace_period(0)),
        )
        .unwrap();
    let (_, latency) = cluster.wait("w1 terminating", Duration::from_secs(3), || {
        let slices = cluster.slices("web");
        endpoints_by_pod(&slices)
            .get("w1")
            .filter(|e| conditions(e) == (false, true, true))
            .map(|_| ())
    });
    println!("pod deletion → terminating endpoint: {latency:?}");
    cluster.wait("w1 out of the Endpoints", Duration::from_secs(3), || {
        let e = cluster.endpoints("web")?;
        (!e.to_string().contains("10.42.1.1")).then_some(())
    });
    let release = json!({"metadata": {"finalizers": null}});
    cluster
        .block_on(
            cluster
                .pods()
                .patch("w1", &PatchParams::default(), &Patch::Merge(&release)),
        )
        .unwrap();
    cluster.wait("w1 gone from the slices", Duration::from_secs(3), || {
        (!endpoints_by_pod(&cluster.slices("web")).contains_key("w1")).then_some(())
    });

    // A pod relabelled out of the selector leaves; relabelled back, it returns.
    let relabel = |app: &str| {
        let patch = json!({"metadata": {"labels": {"app": app}}});
        cluster
            .block_on(
                cluster
                    .pods()
                    .patch("w2", &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .unwrap();
    };
    relabel("elsewhere");
    cluster.wait("w2 out of the slices", Duration::from_secs(3), || {
        (!endpoints_by_pod(&cluster.slices("web")).contains_key("w2")).then_some(())
    });
    relabel("web");
    cluster.wait("w2 back in the slices", Duration::from_secs(3), || {
        endpoints_by_pod(&cluster.slices("web"))
            .contains_key("w2")
            .then_some(())
    });

    // The service's labels follow; a selector change swaps the pods.
    cluster.patch_service(
        "web",
        json!({"metadata": {"labels": {"team": "red"}}, "spec": {"selector": {"app": "other"}}}),
    );
    let (slices, _) = cluster.wait("the slices of app=other", Duration::from_secs(5), || {
        let slices = cluster.slices("web");
        let eps = endpoints_by_pod(&slices);
        (eps.len() == 1 && eps.contains_key("other") && slices.len() == 1).then_some(slices)
    });
    assert_eq!(slices[0]["metadata"]["labels"]["team"], "red");
    cluster.wait("Endpoints of app=other", Duration::from_secs(5), || {
        let e = cluster.endpoints("web")?;
        (ips(&e["subsets"][0]["addresses"]) == ["10.42.1.9"] && e["metadata"]["labels"]["team"] == "red")
            .then_some(())
    });

    // Deleting the service takes its Endpoints and (through the garbage collector) its slices.
    cluster
        .block_on(cluster.services().delete("web", &DeleteParams::default()))
        .unwrap();
    cluster.wait("the Endpoints deleted", Duration::from_secs(10), || {
        cluster.endpoints("web").is_none().then_some(())
    });
    cluster.wait("the slices deleted", Duration::from_secs(20), || {
        cluster.slices("web").is_empty().then_some(())
    });
    // The API server's own `kubernetes` Service keeps its Endpoints and slice.
    assert!(cluster.endpoints("kubernetes").is_some());
    assert_eq!(cluster.slices("kubernetes").len(), 1);
}

#[test]
fn headless_publish_not_ready_and_many_pods() {
    let mut cluster = Cluster::start();
    cluster.node("n1", "10.0.0.1", "zone-a");
    cluster.create_service(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "selector": {"app": "web"},
                 "ports": [{"name": "sql", "port": 5432, "targetPort": 5432}]}}));
    let count = 230;
    cluster.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let pods = cluster.pods();
            tasks.spawn(async move {
                let name = format!("db-{i:03}");
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"app": "web"}},
                    "spec": {"nodeName": "n1", "hostname": name, "subdomain": "db",
                             "containers": [{"name": "c", "image": "busybox"}]}});
                pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap())
                    .await
                    .unwrap();
                let ip = format!("10.42.{}.{}", i / 200, i % 200 + 1);
                // Only `podIP`, as older kubelets write it.
                let status = json!({"status": {"phase": "Running", "podIP": ip,
                    "conditions": [ready_condition(false)]}});
                pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    });
    let (slices, took) = cluster.wait("230 endpoints", Duration::from_secs(20), || {
        let slices = cluster.slices("db");
        (endpoints_by_pod(&slices).len() == count).then_some(slices)
    });
    println!("{count} pods → slices: {took:?}");
    let mut sizes: Vec<usize> = slices
        .iter()
        .map(|s| s["endpoints"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    for slice in &slices {
        assert_eq!(slice["metadata"]["labels"]["service.kubernetes.io/headless"], "");
        for e in slice["endpoints"].as_array().unwrap() {
            // publishNotReadyAddresses: ready although the pods are not.
            assert_eq!(conditions(e), (true, false, false), "{e}");
            assert_eq!(e["hostname"], e["targetRef"]["name"]);
        }
    }
    let (endpoints, _) = cluster.wait("230 addresses in the Endpoints", Duration::from_secs(10), || {
        cluster
            .endpoints("db")
            .filter(|e| e["subsets"][0]["addresses"].as_array().map(Vec::len) == Some(count))
    });
    assert_eq!(
        endpoints["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    assert_eq!(endpoints["subsets"].as_array().unwrap().len(), 1);
    assert_eq!(
        endpoints["subsets"][0]["addresses"].as_array().unwrap().len(),
        count
    );
    assert!(endpoints["subsets"][0].get("notReadyAddresses").is_none());

    // Scaled down to 150: still no slice over 100, and no churn into new slices.
    cluster.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 150..count {
            let pods = cluster.pods();
            tasks.spawn(async move {
                pods.delete(&format!("db-{i:03}"), &DeleteParams::default().grace_period(0))
                    .await
                    .unwrap();
            });
        }
        while tasks.join_next().await.is_some() {}
    });
    let names: Vec<Value> = slices.iter().map(|s| s["metadata"]["name"].clone()).collect();
    let (slices, _) = cluster.wait("150 endpoints", Duration::from_secs(10), || {
        let slices = cluster.slices("db");
        (endpoints_by_pod(&slices).len() == 150).then_some(slices)
    });
    assert!(slices.iter().all(|s| names.contains(&s["metadata"]["name"])));

    // A restarted server's controllers find everything in order: not one write.
    let versions = |cluster: &Cluster| -> Vec<(Value, Value)> {
        let mut v: Vec<(Value, Value)> = cluster
            .slices("db")
            .iter()
            .map(|s| {
                (
                    s["metadata"]["name"].clone(),
                    s["metadata"]["resourceVersion"].clone(),
                )
            })
            .collect();
        v.sort_by_key(|(name, _)| name.to_string());
        let endpoints = cluster.endpoints("db").unwrap();
        v.push((
            json!("endpoints"),
            endpoints["metadata"]["resourceVersion"].clone(),
        ));
        v
    };
    let before = versions(&cluster);
    let holder = |cluster: &Cluster| {
        let args = ["get", "lease", "-n", "kube-system", "kube-controller-manager"];
        cluster
            .server
            .ok(&[&args[..], &["-o", "jsonpath={.spec.holderIdentity}"]].concat())
    };
    let old_holder = holder(&cluster);
    cluster.server.restart();
    // The controllers run once the new process holds the leader lease; then give them time.
    cluster.wait("the controllers back", Duration::from_secs(60), || {
        (holder(&cluster) != old_holder).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(versions(&cluster), before);
}

#[test]
fn load_balancer_ingress_is_the_ready_nodes() {
    let cluster = Cluster::start();
    cluster.node("n1", "10.0.0.1", "zone-a");
    cluster.node("n2", "10.0.0.2", "zone-a");
    cluster.create_service(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}));
    cluster.create_service(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "other-class"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "selector": {"app": "web"},
                 "ports": [{"port": 80}]}}));
    let ingress = |cluster: &Cluster| cluster.service("lb")["status"]["loadBalancer"]["ingress"].clone();
    let wait_ingress = |want: Value| {
        cluster.wait(&format!("ingress {want}"), Duration::from_secs(10), || {
            (ingress(&cluster) == want).then_some(())
        });
    };
    wait_ingress(json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2", "ipMode": "VIP"}]));
    let table = cluster.server.ok(&["get", "service", "lb"]);
    assert!(
        common::words(&table)[1][3] == "10.0.0.1,10.0.0.2",
        "EXTERNAL-IP: {table}"
    );

    cluster.wait("the UpdatedLoadBalancer event", Duration::from_secs(5), || {
        let events = cluster
            .server
            .ok(&["get", "events", "--field-selector", "involvedObject.name=lb"]);
        events
            .contains("UpdatedLoadBalancer")
            .then_some(())
            .filter(|_| events.contains("Updated LoadBalancer with new IPs: [] -> [10.0.0.1 10.0.0.2]"))
    });

    cluster.node("n3", "10.0.0.3", "zone-b");
    wait_ingress(
        json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2", "ipMode": "VIP"},
                        {"ip": "10.0.0.3", "ipMode": "VIP"}]),
    );
    cluster.node_ready("n2", "10.0.0.2", false);
    wait_ingress(json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.3", "ipMode": "VIP"}]));
    // Another class's load balancer is not ours to fill.
    assert!(cluster.service("other-class")["status"]["loadBalancer"]["ingress"].is_null());

    // No longer a LoadBalancer: the ingress goes.
    cluster.patch_service("lb", json!({"spec": {"type": "ClusterIP"}}));
    wait_ingress(Value::Null);
}

#[test]
fn selectorless_endpoints_are_mirrored() {
    let cluster = Cluster::start();
    let endpoints_api: Api<Endpoints> = Api::namespaced(cluster.client.clone(), "default");
    let create_endpoints = |ep: Value| {
        cluster
            .block_on(endpoints_api.create(&PostParams::default(), &serde_json::from_value(ep).unwrap()))
            .unwrap();
    };
    // Endpoints may come before their Service: they are kept, and mirrored once it exists.
    create_endpoints(
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "early"},
        "subsets": [{"addresses": [{"ip": "192.0.2.30"}], "ports": [{"port": 8080}]}]}),
    );
    std::thread::sleep(Duration::from_millis(500));
    for name in ["ext", "skipped", "early"] {
        cluster.create_service(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]}}),
        );
    }
    create_endpoints(json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "ext", "labels": {"source": "user"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
                     "ports": [{"name": "http", "port": 8080}]}]}));
    create_endpoints(json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "skipped", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "192.0.2.20"}], "ports": [{"port": 8080}]}]}));
    let (slices, _) = cluster.wait("the mirrored slice", Duration::from_secs(10), || {
        Some(cluster.slices("ext")).filter(|s| s.len() == 1)
    });
    let slice = &slices[0];
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"source": "user", "kubernetes.io/service-name": "ext",
               "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"})
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Endpoints");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        slice["endpoints"],
        json!([{"addresses": ["192.0.2.10"], "conditions": {"ready": true}},
               {"addresses": ["192.0.2.11"], "conditions": {"ready": false}}])
    );
    // The user's Endpoints are theirs: the Endpoints controller leaves them as written.
    let ep = cluster.endpoints("ext").unwrap();
    assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");

    // An update is mirrored; deleting the Endpoints takes the mirror.
    let patch = json!({"subsets": [{"addresses": [{"ip": "192.0.2.12"}], "ports": [{"name": "http", "port": 8080}]}]});
    cluster
        .block_on(endpoints_api.patch("ext", &PatchParams::default(), &Patch::Merge(&patch)))
        .unwrap();
    cluster.wait("the mirror updated", Duration::from_secs(5), || {
        let slices = cluster.slices("ext");
        (slices.len() == 1 && slices[0]["endpoints"][0]["addresses"] == json!(["192.0.2.12"])).then_some(())
    });
    assert!(cluster.slices("skipped").is_empty());
    let (early, _) = cluster.wait("the early Endpoints mirrored", Duration::from_secs(5), || {
        Some(cluster.slices("early")).filter(|s| s.len() == 1)
    });
    assert_eq!(early[0]["endpoints"][0]["addresses"], json!(["192.0.2.30"]));
    assert!(cluster.endpoints("early").is_some());
    cluster
        .block_on(endpoints_api.delete("ext", &DeleteParams::default()))
        .unwrap();
    cluster.wait("the mirror deleted", Duration::from_secs(10), || {
        cluster.slices("ext").is_empty().then_some(())
    });
}
