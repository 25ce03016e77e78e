//! The node agent end to end: a real `rkube server` running its own agent, `rkube agent` child
//! processes joining it with the join token, and real kubectl.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// The server URL from the server's admin kubeconfig.
fn server_url(server: &Server) -> String {
    let kubeconfig = std::fs::read_to_string(&server.kubeconfig).unwrap();
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .trim_matches('"')
        .to_owned()
}

fn agent_command(server: &Server, token_file: &Path, node_name: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rkube"));
    command
        .args(["agent", "--server", &server_url(server), "--node-ip", "127.0.0.1"])
        .arg("--token-file")
        .arg(token_file)
        .arg("--data-dir")
        .arg(server.dir.path().join(format!("agent-{node_name}")))
        .args(["--node-name", node_name])
        .args(["--kubelet-port", &testkit::free_port().to_string()]);
    command
}

/// A `rkube agent` child, killed by PID when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(server: &Server, name: &str) -> Value {
    serde_json::from_str(&server.ok(&["get", "node", name, "-o", "json"])).unwrap()
}

fn ready_status(server: &Server, name: &str) -> Option<String> {
    let out = server.kubectl(&[
        "get",
        "node",
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_with(what: &str, timeout: Duration, show: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            show()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn proc_number(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn online_cpus() -> usize {
    let list = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    list.trim()
        .split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// Bytes of a quantity as kubelet writes them (`123Ki`, `4Gi`, plain bytes).
fn bytes(quantity: &Value) -> u64 {
    let q = quantity.as_str().unwrap();
    for (suffix, shift) in [("Ki", 10), ("Mi", 20), ("Gi", 30), ("Ti", 40)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap() << shift;
        }
    }
    q.parse().unwrap()
}

#[test]
fn server_node_is_ready_at_once_with_the_machines_capacity() {
    let started = Instant::now();
    // Test machines' disks can be over kubelet's default nodefs.available<10%; the events
    // checked below name the no-pressure case.
    let server = Server::start_with_agent(&[
        "--node-name",
        "cp-1",
        "--node-ip",
        "127.0.0.1",
        "--eviction-hard",
        "nodefs.available<1%",
    ]);
    let serving = Instant::now();
    wait_for("the server's node to be Ready", Duration::from_secs(2), || {
        ready_status(&server, "cp-1").as_deref() == Some("True")
    });
    eprintln!(
        "node Ready {:?} after start ({:?} after /readyz)",
        started.elapsed(),
        serving.elapsed()
    );
    // kubelet's events about its node.
    wait_for_with(
        "the node's events",
        Duration::from_secs(10),
        || server.ok(&["get", "events", "-A"]),
        || {
            let reasons = server.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.kind=Node,involvedObject.name=cp-1",
                "-o",
                "jsonpath={.items[*].reason}",
            ]);
            [
                "Starting",
                "NodeAllocatableEnforced",
                "NodeHasSufficientMemory",
                "NodeHasNoDiskPressure",
                "NodeReady",
            ]
            .iter()
            .all(|r| reasons.split_whitespace().any(|have| have == *r))
        },
    );
    let node = node(&server, "cp-1");
    let status = &node["status"];
    assert_eq!(status["capacity"]["cpu"], online_cpus().to_string());
    let mem_total = proc_number("/proc/meminfo", "MemTotal:") * 1024;
    assert_eq!(bytes(&status["capacity"]["memory"]), mem_total);
    assert_eq!(bytes(&status["allocatable"]["memory"]), mem_total - (100 << 20));
    assert_eq!(status["capacity"]["pods"], "110");
    let storage = bytes(&status["capacity"]["ephemeral-storage"]);
    let allocatable_storage = bytes(&status["allocatable"]["ephemeral-storage"]);
    // Allocatable leaves out the hard eviction threshold (nodefs.available<1% here).
    assert!(
        storage > 0 && allocatable_storage == storage - storage / 100,
        "{status}"
    );
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["kubernetes.io/hostname"], "cp-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
    assert_eq!(
        status["addresses"],
        serde_json::json!([{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "cp-1"}])
    );
    let version: Value = serde_json::from_str(&server.ok(&["get", "--raw", "/version"])).unwrap();
    let info = &status["nodeInfo"];
    assert_eq!(info["kubeletVersion"], version["gitVersion"]);
    assert_eq!(info["operatingSystem"], "linux");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["kernelVersion"], kernel.trim());
    assert!(
        info["containerRuntimeVersion"]
            .as_str()
            .unwrap()
            .starts_with("runc://1."),
        "{info}"
    );
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(info["bootID"], boot_id.trim());
    // The Lease kubelet keeps, owned by the Node.
    let lease: Value =
        serde_json::from_str(&server.ok(&["get", "lease", "-n", "kube-node-lease", "cp-1", "-o", "json"]))
            .unwrap();
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );

    let table = server.ok(&["get", "nodes"]);
    assert!(
        table.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.len() == 5 && cells[0] == "cp-1" && cells[1] == "Ready" && cells[2] == "control-plane"
        }),
        "{table}"
    );
    let describe = server.ok(&["describe", "node", "cp-1"]);
    for expected in [
        "Roles:              control-plane",
        "kubelet is posting ready status",
        "KubeletHasSufficientMemory",
        "InternalIP:  127.0.0.1",
        "Container Runtime Version:  runc://",
        "Kubelet Version:",
        "HolderIdentity:  cp-1",
    ] {
        assert!(
            describe.contains(expected),
            "{expected:?} missing from:\n{describe}"
        );
    }

    // A deleted Node is registered again by its agent.
    let uid = node["metadata"]["uid"].as_str().unwrap().to_owned();
    server.ok(&["delete", "node", "cp-1"]);
    wait_for("the Node to be registered again", Duration::from_secs(15), || {
        let out = server.kubectl(&["get", "node", "cp-1", "-o", "jsonpath={.metadata.uid}"]);
        out.status.success() && !out.stdout.is_empty() && String::from_utf8_lossy(&out.stdout) != uid
    });
}

#[test]
fn agents_join_with_the_token_and_go_unknown_when_stopped() {
    // The agents program their network: in a namespace of the test's own, not the host's.
    let netns = testkit::netns::NetNs::create("rkube-agents").unwrap();
    netns.enter().unwrap();
    let server = Server::start_with(&[
        "--node-monitor-grace-period",
        "3s",
        "--node-monitor-period",
        "1s",
        "--node-ip",
        "127.0.0.2",
    ]);
    let token_file = server.dir.path().join("data/token");

    // Agents reach the server by its node IP: the serving certificate covers it.
    let cert = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(server.dir.path().join("data/tls/serving.crt"))
        .output()
        .unwrap();
    let sans = String::from_utf8_lossy(&cert.stdout);
    assert!(
        sans.contains("IP Address:127.0.0.2") && sans.contains("IP Address:127.0.0.1"),
        "{sans}"
    );

    // A wrong secret with the right CA hash: refused, with one readable line.
    let token = std::fs::read_to_string(&token_file).unwrap();
    let (pinned, _) = token.trim().rsplit_once("::server:").unwrap();
    let wrong = server.file("wrong-token", format!("{pinned}::server:0000\n").as_bytes());
    let out = agent_command(&server, Path::new(&wrong), "intruder")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("refused the join token (401 Unauthorized)"),
        "{stderr}"
    );
    // A bare wrong secret (no CA hash): refused the same way.
    let bare = server.file("bare-token", b"not-the-secret\n");
    let out = agent_command(&server, Path::new(&bare), "intruder")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !out.status.success() && stderr.contains("refused the join token"),
        "{stderr}"
    );
    // A token pinning another CA: the server is not trusted, nothing is sent.
    let other_ca = server.file(
        "other-ca-token",
        format!("K10{}::server:x\n", "0".repeat(64)).as_bytes(),
    );
    let out = agent_command(&server, Path::new(&other_ca), "intruder")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("does not match the join token's CA hash"),
        "{stderr}"
    );
    assert!(!server.kubectl(&["get", "node", "intruder"]).status.success());

    // The real token: the node joins and goes Ready.
    let log = std::fs::File::create(server.dir.path().join("agent.log")).unwrap();
    let agent = Agent(
        agent_command(&server, &token_file, "worker-1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for("worker-1 to be Ready", Duration::from_secs(10), || {
        ready_status(&server, "worker-1").as_deref() == Some("True")
    });
    let worker = node(&server, "worker-1");
    assert!(worker["metadata"]["labels"]["node-role.kubernetes.io/control-plane"].is_null());
    assert_eq!(worker["status"]["addresses"][0]["address"], "127.0.0.1");

    // Stopped (killed by PID): after the grace period the node lifecycle controller marks it
    // Unknown and taints it unreachable.
    drop(agent);
    wait_for("worker-1 to go Unknown", Duration::from_secs(20), || {
        ready_status(&server, "worker-1").as_deref() == Some("Unknown")
    });
    let table = server.ok(&["get", "node", "worker-1"]);
    assert!(table.contains("NotReady"), "{table}");
    wait_for("the unreachable taint", Duration::from_secs(10), || {
        server
            .ok(&["get", "node", "worker-1", "-o", "jsonpath={.spec.taints[*].key}"])
            .contains("node.kubernetes.io/unreachable")
    });

    // Restarted, the agent takes its Node over again and posts Ready at once.
    let uid = worker["metadata"]["uid"].clone();
    let _agent = Agent(
        agent_command(&server, &token_file, "worker-1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("worker-1 to be Ready again", Duration::from_secs(10), || {
        ready_status(&server, "worker-1").as_deref() == Some("True")
    });
    assert_eq!(node(&server, "worker-1")["metadata"]["uid"], uid);
}
