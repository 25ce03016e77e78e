//! Services and the pod network across nodes (issue 6), on a three-node cluster built from
//! network namespaces (`common::multinode`): the server with its agent on node 1, agents on
//! nodes 2 and 3, the test as a client on the underlay. Each scenario runs with the host-gw
//! and with the VXLAN backend.

mod common;

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
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      echo hello from {name} > /www/index.html
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip
      chmod +x /www/cgi-bin/ip
      exec httpd -f -p 8080 -h /www
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      tcpSocket: {{port: 8080}}
      periodSeconds: 1
"#
    )
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
