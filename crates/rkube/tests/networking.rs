//! Services and the pod network across nodes (issue 6), on a three-node cluster built from
//! network namespaces (`common::multinode`): the server with its agent on node 1, agents on
//! nodes 2 and 3, the test as a client on the underlay. Each scenario runs with the host-gw
//! and with the VXLAN backend.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::multinode::MultiNodeCluster;

/// A busybox pod pinned to a node, serving over HTTP on 8080 `hello from <name>` at `/` and
/// the client's address at `/cgi-bin/ip`.
fn web_pod(name: &str, node: &str, labels: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 10
  containers:
{}"#,
        web_container("  ")
    )
}

/// The web container (`indent` before each line): `hello from <hostname>` at `/`, the
/// client's address at `/cgi-bin/ip`; ready once it listens; a 5 s preStop so a deleted pod
/// keeps serving while it terminates.
fn web_container(indent: &str) -> String {
    let text = r#"- name: web
  image: busybox
  command: ["sh", "-c"]
  args:
  - |
    mkdir -p /www/cgi-bin
    echo hello from $(hostname) > /www/index.html
    printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip
    chmod +x /www/cgi-bin/ip
    exec httpd -f -p 8080 -h /www
  ports:
  - name: http
    containerPort: 8080
  readinessProbe:
    tcpSocket: {port: 8080}
    periodSeconds: 1
  lifecycle:
    preStop:
      exec: {command: ["sleep", "5"]}
"#;
    text.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// A busybox pod pinned to a node that just sleeps (a client to exec from).
fn client_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - name: client
    image: busybox
    command: ["sleep", "3600"]
"#
    )
}

/// `wget -qO- url` from a pod, given 3 s (Debian busybox's `wget -T` crashes): the body,
/// or the error text.
fn fetch(cluster: &MultiNodeCluster, pod: &str, url: &str) -> Result<String, String> {
    let out = cluster.exec(pod, &["timeout", "3", "wget", "-qO-", url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The client address the web pod at `url` saw (busybox httpd's `REMOTE_ADDR`, IPv4-mapped).
fn peer_address(cluster: &MultiNodeCluster, pod: &str, url: &str) -> Result<String, String> {
    let seen = fetch(cluster, pod, &format!("{url}cgi-bin/ip"))?;
    Ok(seen
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']')
        .to_owned())
}

/// An HTTP GET from the test thread (on the underlay, outside the cluster): the body.
fn http_get(addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("{addr}: {e}"))?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
        .unwrap_or_default())
}

/// busybox `nslookup args…` in a pod: stdout and stderr.
fn nslookup(cluster: &MultiNodeCluster, pod: &str, args: &[&str]) -> String {
    let mut command = vec!["nslookup"];
    command.extend_from_slice(args);
    let out = cluster.exec(pod, &command);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The addresses a Service's EndpointSlices mark ready, sorted. (Parsed from JSON: a slice
/// without endpoints has `"endpoints": null`, which kubectl's jsonpath filters refuse.)
fn ready_endpoints(cluster: &MultiNodeCluster, service: &str) -> Vec<String> {
    let out = cluster.server.ok(&[
        "get",
        "endpointslices",
        "-l",
        &format!("kubernetes.io/service-name={service}"),
        "-o",
        "json",
    ]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut ips: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|slice| slice["endpoints"].as_array())
        .flatten()
        .filter(|endpoint| endpoint["conditions"]["ready"] == true)
        .filter_map(|endpoint| endpoint["addresses"][0].as_str().map(str::to_owned))
        .collect();
    ips.sort();
    ips
}

fn service_field(cluster: &MultiNodeCluster, service: &str, path: &str) -> String {
    cluster
        .server
        .ok(&["get", "service", service, "-o", &format!("jsonpath={path}")])
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8081, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: example.com
"#;

/// Everything the issue's acceptance list names, on one cluster per backend.
fn services_and_dns(backend: &str) {
    let c = MultiNodeCluster::start(backend);
    let mut pods = web_pod("web-a", "node-2", "app: web");
    for (name, node) in [
        ("client-1", "node-1"),
        ("client-2", "node-2"),
        ("client-3", "node-3"),
    ] {
        pods.push_str("---\n");
        pods.push_str(&client_pod(name, node));
    }
    c.server.create("pods.yaml", &pods);
    c.server.create("services.yaml", SERVICES);
    for pod in ["web-a", "client-1", "client-2", "client-3"] {
        c.wait_running(pod);
    }
    let web_a = c.pod_field("web-a", "{.status.podIP}");
    c.wait_for("web's endpoint", Duration::from_secs(20), || {
        ready_endpoints(&c, "web") == [web_a.clone()]
    });
    let cluster_ip = service_field(&c, "web", "{.spec.clusterIP}");

    // ClusterIP from the endpoint's node, from the other nodes, and by DNS name.
    for client in ["client-2", "client-3", "client-1"] {
        assert_eq!(
            fetch(&c, client, &format!("http://{cluster_ip}/")),
            Ok("hello from web-a".to_owned()),
            "{client} → ClusterIP\n{}",
            c.logs()
        );
    }
    assert_eq!(
        fetch(&c, "client-3", "http://web/"),
        Ok("hello from web-a".to_owned())
    );
    assert_eq!(
        fetch(&c, "client-3", "http://web.default.svc.cluster.local/"),
        Ok("hello from web-a".to_owned())
    );
    // Hairpin: the endpoint reaches itself through its Service.
    assert_eq!(
        fetch(&c, "web-a", "http://web/"),
        Ok("hello from web-a".to_owned())
    );
    // Pod → ClusterIP keeps the client's address.
    let client_3 = c.pod_field("client-3", "{.status.podIP}");
    assert_eq!(
        peer_address(&c, "client-3", &format!("http://{cluster_ip}/")),
        Ok(client_3)
    );

    // NodePort and LoadBalancer from the underlay.
    for node in 1..=3 {
        assert_eq!(
            http_get(&format!("{}:30080", c.node_ip(node))),
            Ok("hello from web-a".to_owned())
        );
    }
    let node_ips = (1..=3).map(|i| c.node_ip(i)).collect::<Vec<_>>().join(" ");
    c.wait_for("the LoadBalancer's ingress", Duration::from_secs(10), || {
        service_field(&c, "web-lb", "{.status.loadBalancer.ingress[*].ip}") == node_ips
    });
    assert_eq!(
        http_get(&format!("{}:8081", c.node_ip(3))),
        Ok("hello from web-a".to_owned())
    );

    // Cluster DNS from a pod.
    let kubernetes = nslookup(&c, "client-3", &["kubernetes.default"]);
    assert!(
        kubernetes.contains("10.43.0.1"),
        "nslookup kubernetes.default:\n{kubernetes}"
    );
    let headless = nslookup(&c, "client-3", &["web-headless.default.svc.cluster.local"]);
    assert!(
        headless.contains(&web_a),
        "headless Service → pod IPs:\n{headless}"
    );
    let srv = nslookup(
        &c,
        "client-3",
        &["-type=SRV", "_http._tcp.web.default.svc.cluster.local"],
    );
    assert!(
        srv.contains("web.default.svc.cluster.local") && srv.contains(" 80 "),
        "SRV:\n{srv}"
    );
    let cname = nslookup(&c, "client-3", &["-type=CNAME", "ext.default.svc.cluster.local"]);
    assert!(cname.contains("example.com"), "ExternalName → CNAME:\n{cname}");

    // A second endpoint on another node: random balancing reaches both, affinity sticks.
    c.server
        .create("web-b.yaml", &web_pod("web-b", "node-3", "app: web"));
    c.wait_running("web-b");
    let web_b = c.pod_field("web-b", "{.status.podIP}");
    let mut both = vec![web_a.clone(), web_b.clone()];
    both.sort();
    c.wait_for("two endpoints", Duration::from_secs(20), || {
        ready_endpoints(&c, "web") == both
    });
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        seen.insert(fetch(&c, "client-1", "http://web/").unwrap());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.len(), 2, "random balancing reaches both endpoints: {seen:?}");
    let first = fetch(&c, "client-1", "http://sticky/").unwrap();
    for _ in 0..10 {
        assert_eq!(
            fetch(&c, "client-1", "http://sticky/"),
            Ok(first.clone()),
            "sessionAffinity: ClientIP"
        );
    }

    // A deleted pod leaves the rotation before it stops (its preStop keeps it 5 s).
    c.server.ok(&["delete", "pod", "web-b", "--wait=false"]);
    let deleted = Instant::now();
    c.wait_for("web-b to leave the endpoints", Duration::from_secs(5), || {
        ready_endpoints(&c, "web") == [web_a.clone()]
    });
    eprintln!("a deleted pod left the endpoints after {:?}", deleted.elapsed());
    assert_eq!(
        c.pod_field("web-b", "{.status.phase}"),
        "Running",
        "still terminating"
    );
    for _ in 0..10 {
        assert_eq!(
            fetch(&c, "client-1", "http://web/"),
            Ok("hello from web-a".to_owned())
        );
    }

    // Scaling a Deployment: endpoints and traffic follow within a second of readiness.
    let deployment = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: scale}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: scale}}}}
  template:
    metadata: {{labels: {{app: scale}}}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
{}---
apiVersion: v1
kind: Service
metadata: {{name: scale}}
spec:
  selector: {{app: scale}}
  ports: [{{port: 80, targetPort: 8080}}]
"#,
        web_container("      ")
    );
    c.server.create("scale.yaml", &deployment);
    c.wait_for("one scale endpoint", Duration::from_secs(30), || {
        ready_endpoints(&c, "scale").len() == 1
    });
    c.server.ok(&["scale", "deployment", "scale", "--replicas=3"]);
    let ready_pods = || {
        c.server
            .ok(&[
                "get",
                "pods",
                "-l",
                "app=scale",
                "-o",
                r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status} {end}"#,
            ])
            .matches("True")
            .count()
    };
    c.wait_for("three ready scale pods", Duration::from_secs(60), || {
        ready_pods() == 3
    });
    let ready_at = Instant::now();
    c.wait_for("three scale endpoints", Duration::from_secs(5), || {
        ready_endpoints(&c, "scale").len() == 3
    });
    let lag = ready_at.elapsed();
    eprintln!("endpoints followed readiness after {lag:?}");
    assert!(lag < Duration::from_secs(1), "endpoints lagged {lag:?}");
    let mut backends = std::collections::BTreeSet::new();
    let started = Instant::now();
    while backends.len() < 3 && started.elapsed() < Duration::from_secs(20) {
        backends.insert(fetch(&c, "client-2", "http://scale/").unwrap_or_default());
    }
    assert_eq!(backends.len(), 3, "traffic reaches every replica: {backends:?}");

    // kubectl port-forward svc/NAME (kubectl on the underlay picks a pod of the Service).
    let port = testkit::free_port();
    let forward = c
        .server
        .stream(&["port-forward", "svc/web", &format!("{port}:80")]);
    c.wait_for("kubectl port-forward to listen", Duration::from_secs(10), || {
        forward.lines().iter().any(|l| l.starts_with("Forwarding from"))
    });
    assert_eq!(
        http_get(&format!("127.0.0.1:{port}")),
        Ok("hello from web-a".to_owned())
    );
    drop(forward);
}

#[test]
fn services_and_dns_host_gw() {
    services_and_dns("host-gw");
}

#[test]
fn services_and_dns_vxlan() {
    services_and_dns("vxlan");
}

fn pod_to_pod_across_nodes(backend: &str) {
    let cluster = MultiNodeCluster::start(backend);
    cluster
        .server
        .create("web.yaml", &web_pod("web", "node-2", "app: web"));
    cluster
        .server
        .create("client.yaml", &client_pod("client", "node-3"));
    cluster
        .server
        .create("local.yaml", &client_pod("local", "node-2"));
    cluster.wait_running("web");
    cluster.wait_running("client");
    cluster.wait_running("local");
    let ip = cluster.pod_field("web", "{.status.podIP}");
    let url = format!("http://{ip}:8080/");
    assert_eq!(
        fetch(&cluster, "client", &url),
        Ok("hello from web".to_owned()),
        "node-3 → node-2\n{}",
        cluster.logs()
    );
    assert_eq!(fetch(&cluster, "local", &url), Ok("hello from web".to_owned()));
    // From the server's node, whose pods have no part in it: the node itself routes.
    let from_node1 = std::process::Command::new("nsenter")
        .arg(format!("--net={}", cluster.lab.nodes[0].path().display()))
        .args(["busybox", "timeout", "3", "busybox", "wget", "-qO-", &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_node1.stdout).trim(),
        "hello from web"
    );
    // Pod → pod keeps its source address (no masquerading inside the cluster CIDR).
    let client_ip = cluster.pod_field("client", "{.status.podIP}");
    assert_eq!(peer_address(&cluster, "client", &url), Ok(client_ip));
}

#[test]
fn pod_to_pod_across_nodes_host_gw() {
    pod_to_pod_across_nodes("host-gw");
}

#[test]
fn pod_to_pod_across_nodes_vxlan() {
    pod_to_pod_across_nodes("vxlan");
}
