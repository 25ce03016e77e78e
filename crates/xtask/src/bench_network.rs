//! `cargo xtask bench-network`: the data path of Services and the pod network, on two nodes
//! built from network namespaces this command creates (`testkit::netns::Lab`: an underlay
//! bridge, no route out), release `rkube server` on node 1 and `rkube agent` on node 2:
//! - TCP throughput pod → pod IP and pod → ClusterIP (the proxy's cost), same node and across
//!   nodes (the backend's cost: host-gw or VXLAN);
//! - cluster DNS queries/s from a pod (a Service name, through the kube-dns ClusterIP).
//!
//! The workloads are Python scripts in the python test image (imported on both nodes first):
//! a sink that reads everything and answers with the byte count, a sender, and a DNS client
//! keeping a window of queries in flight on one UDP socket.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use crate::rkube_process;
use crate::rkube_process::Process;

#[derive(clap::Args)]
pub struct Args {
    /// The pod network backend: host-gw or vxlan.
    #[arg(long, default_value = "host-gw")]
    backend: String,
    /// Bytes sent per throughput run (MiB).
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Seconds of DNS queries.
    #[arg(long, default_value_t = 5)]
    dns_seconds: u64,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const SINK: &str = r#"
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5001)); s.listen(8)
while True:
    c, _ = s.accept()
    n = 0
    while True:
        b = c.recv(1 << 20)
        if not b: break
        n += len(b)
    c.sendall(str(n).encode()); c.close()
"#;

const SEND: &str = r#"
import socket, sys, time
host, total = sys.argv[1], int(sys.argv[2]) << 20
c = socket.create_connection((host, 5001))
buf = b"\0" * (1 << 20)
t = time.monotonic(); sent = 0
while sent < total:
    c.sendall(buf); sent += len(buf)
c.shutdown(socket.SHUT_WR)
ack = int(c.recv(64)); dt = time.monotonic() - t
assert ack == sent, (ack, sent)
print(f"{sent / dt / 1e6 * 8:.0f}")
"#;

const DNS: &str = r#"
import socket, struct, sys, time, select
server, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
def query(i): return struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((server, 53)); s.setblocking(False)
window, sent, answered, bad, i = 32, 0, 0, 0, 0
end = time.monotonic() + seconds
for _ in range(window):
    s.send(query(i & 0xffff)); i += 1; sent += 1
while time.monotonic() < end:
    r, _, _ = select.select([s], [], [], 1.0)
    if not r:
        for _ in range(window):
            s.send(query(i & 0xffff)); i += 1; sent += 1
        continue
    try:
        while True:
            data = s.recv(512)
            answered += 1
            if data[3] & 0xf != 0 or struct.unpack(">H", data[6:8])[0] == 0: bad += 1
            s.send(query(i & 0xffff)); i += 1; sent += 1
    except BlockingIOError:
        pass
print(f"{answered / seconds:.0f} {bad}")
"#;

pub fn run(args: Args) -> anyhow::Result<()> {
    let binary = rkube_process::build_release()?;
    let image = rkube_process::test_image("python-oci.tar")?;
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let work = tempfile::tempdir_in(&base)?;
    let root = std::fs::canonicalize(work.path())?;

    let lab = testkit::netns::Lab::create(2, "172.31.0")?;
    lab.enter()?;
    let data = |i: usize| root.join(format!("node-{i}"));
    for i in 1..=2 {
        let status = Command::new(&binary)
            .args(["image", "import", "--data-dir"])
            .arg(data(i))
            .arg(&image)
            .stdout(Stdio::null())
            .status()?;
        ensure!(status.success(), "rkube image import failed");
    }
    let in_node = |i: usize| {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", lab.nodes[i - 1].path().display()))
            .arg("--")
            .arg(&binary);
        c
    };
    let common = |i: usize| -> Vec<String> {
        [
            "--node-name",
            &format!("node-{i}"),
            "--node-ip",
            &lab.node_ip(i),
            "--eviction-hard",
            "nodefs.available<1%",
            "--flannel-backend",
            &args.backend,
            "--dns-upstream",
            "none",
            "--data-dir",
            &data(i).display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let _server = Process(
        in_node(1)
            .arg("server")
            .args(common(1))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("server.log"))?)
            .spawn()
            .context("cannot start rkube server")?,
    );
    let written = data(1).join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data(1).join("token").exists() || !written.exists() {
        ensure!(
            Instant::now() < deadline,
            "rkube server did not start (see server.log)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    let kubeconfig = root.join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&written)?
            .replace("https://127.0.0.1:", &format!("https://{}:", lab.node_ip(1))),
    )?;
    let _agent = Process(
        in_node(2)
            .arg("agent")
            .args(["--server", &format!("https://{}:6443", lab.node_ip(1))])
            .arg("--token-file")
            .arg(data(1).join("token"))
            .args(common(2))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("agent.log"))?)
            .spawn()
            .context("cannot start rkube agent")?,
    );
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .context("cannot run kubectl")?;
        ensure!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let wait = |what: &str, check: &dyn Fn() -> bool| -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !check() {
            ensure!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    };
    wait("both nodes Ready", &|| {
        kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}"#,
        ])
        .is_ok_and(|s| s == "True True")
    })?;
    wait("the default ServiceAccount", &|| {
        kubectl(&["get", "serviceaccount", "default"]).is_ok()
    })?;
    let manifest = root.join("pods.yaml");
    std::fs::write(&manifest, manifest_yaml())?;
    kubectl(&["apply", "-f", manifest.to_str().unwrap()])?;
    for pod in ["sink", "client-1", "client-2"] {
        wait(&format!("pod {pod}"), &|| {
            kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.phase}"]).is_ok_and(|p| p == "Running")
        })?;
    }
    wait("the sink's endpoint", &|| {
        kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=sink",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}",
        ])
        .is_ok_and(|s| !s.is_empty())
    })?;
    let pod_ip = kubectl(&["get", "pod", "sink", "-o", "jsonpath={.status.podIP}"])?;
    let cluster_ip = kubectl(&["get", "service", "sink", "-o", "jsonpath={.spec.clusterIP}"])?;
    let mib = args.mib.to_string();
    let throughput = |client: &str, target: &str| -> anyhow::Result<String> {
        // Once to warm up (connection tracking, ARP, the first segments), then measured.
        kubectl(&["exec", client, "--", "python3", "-c", SEND, target, "16"])?;
        kubectl(&["exec", client, "--", "python3", "-c", SEND, target, &mib])
    };
    println!(
        "\nbackend {}, {} MiB per run, Python sender and sink\n",
        args.backend, args.mib
    );
    println!("| path | pod IP (Mbit/s) | ClusterIP (Mbit/s) |");
    println!("|---|---|---|");
    for (client, label) in [("client-2", "same node"), ("client-1", "across nodes")] {
        let direct = throughput(client, &pod_ip)?;
        let service = throughput(client, &cluster_ip)?;
        println!("| pod → pod, {label} | {direct} | {service} |");
    }
    let dns_ip = kubectl(&[
        "get",
        "service",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])?;
    let seconds = args.dns_seconds.to_string();
    let out = kubectl(&[
        "exec",
        "client-1",
        "--",
        "python3",
        "-c",
        DNS,
        &dns_ip,
        "sink.default.svc.cluster.local",
        &seconds,
    ])?;
    let (qps, bad) = out.split_once(' ').unwrap_or((&out, "?"));
    println!(
        "\n| DNS from a pod (A sink.default.svc.cluster.local via {dns_ip}, 32 in flight) | {qps} queries/s ({bad} failed) |"
    );
    // The pods go before the nodes: their containers, mounts and cgroups with them.
    kubectl(&["delete", "pods", "--all", "--grace-period=1", "--timeout=60s"])?;
    Ok(())
}

fn manifest_yaml() -> String {
    let pod = |name: &str, node: &str, labels: &str, script: &str| {
        let script: String = script.lines().map(|l| format!("      {l}\n")).collect();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: python\n    imagePullPolicy: IfNotPresent\n    command: [\"python3\", \"-c\"]\n    args:\n    - |\n{script}---\n"
        )
    };
    let mut yaml = pod("sink", "node-2", "app: sink", SINK);
    yaml.push_str(&pod(
        "client-1",
        "node-1",
        "role: client",
        "import time\ntime.sleep(86400)",
    ));
    yaml.push_str(&pod(
        "client-2",
        "node-2",
        "role: client",
        "import time\ntime.sleep(86400)",
    ));
    yaml.push_str(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: sink\nspec:\n  selector: {app: sink}\n  ports: [{port: 5001, targetPort: 5001}]\n",
    );
    yaml
}
