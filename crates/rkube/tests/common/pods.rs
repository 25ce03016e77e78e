//! A single-node cluster that runs real containers, for the pod tests: the test thread enters
//! a network namespace of its own (no route out; the node's address on a dummy interface), a
//! docker registry inside it serves the test images as the `docker.io` mirror, and `rkube
//! server` runs with its agent there. On drop, pods are deleted and waited for, so their
//! containers, mounts, cgroups and addresses go with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Server;

pub const NODE_IP: &str = "172.31.0.1";

pub struct PodCluster {
    pub server: Server,
    pub registry: testkit::registry::DockerRegistry,
    // Dropped last: processes inside must be gone first.
    pub netns: testkit::netns::NetNs,
}

impl PodCluster {
    pub fn start() -> PodCluster {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> PodCluster {
        let netns = testkit::netns::NetNs::create("rkube-pods").unwrap();
        netns.add_interface("node0", &format!("{NODE_IP}/24")).unwrap();
        netns.enter().unwrap();
        let registry = testkit::registry::DockerRegistry::start().unwrap();
        push_test_images(&registry);
        let registries = tempfile::Builder::new()
            .prefix("rkube-registries-")
            .suffix(".yaml")
            .tempfile()
            .unwrap();
        std::fs::write(
            registries.path(),
            format!(
                "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
                registry.host()
            ),
        )
        .unwrap();
        let (_, registries_path) = registries.keep().unwrap();
        let mut args = vec![
            "--node-ip",
            NODE_IP,
            "--node-name",
            "node-1",
            "--eviction-hard",
            "nodefs.available<1%",
            "--private-registry",
            registries_path.to_str().unwrap(),
            // Cluster DNS in tests forwards nowhere.
            "--dns-upstream",
            "none",
        ];
        args.extend_from_slice(extra_args);
        let server = Server::start_with_agent_in_current_netns(&args);
        let cluster = PodCluster {
            server,
            registry,
            netns,
        };
        cluster.wait_for(
            "the node to be Ready with a pod CIDR",
            Duration::from_secs(30),
            || {
                let out = cluster.server.kubectl(&[
                    "get",
                    "node",
                    "node-1",
                    "-o",
                    "jsonpath={.spec.podCIDR} {.status.conditions[?(@.type==\"Ready\")].status}",
                ]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.ends_with("True") && !text.starts_with(' ')
            },
        );
        let _ = std::fs::remove_file(registries_path);
        cluster
    }

    /// Polls `ready` every 100 ms until it holds; fails the test with the server log after
    /// `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl FnMut() -> bool) {
        wait_until(&self.server, what, timeout, ready, || self.server.log());
    }

    /// A JSONPath of a pod (`{.status.phase}`).
    pub fn pod_field(&self, pod: &str, path: &str) -> String {
        pod_field(&self.server, pod, path)
    }

    /// Waits until the pod's phase is `phase`.
    pub fn wait_phase(&self, pod: &str, phase: &str, timeout: Duration) {
        self.wait_for(&format!("pod {pod} to be {phase}"), timeout, || {
            self.pod_field(pod, "{.status.phase}") == phase
        });
    }

    /// The agent's directory in the server's data dir.
    pub fn agent_dir(&self) -> PathBuf {
        self.server.dir.path().join("data/agent")
    }

    /// Sandboxes the node's runtime still has.
    pub fn runtime_sandboxes(&self) -> usize {
        count_entries(&self.agent_dir().join("runtime/sandboxes"))
    }

    /// Containers the node's runtime still has.
    pub fn runtime_containers(&self) -> usize {
        count_entries(&self.agent_dir().join("runtime/containers"))
    }
}

impl Drop for PodCluster {
    fn drop(&mut self) {
        delete_workloads(&self.server);
        wait_runtimes_empty(&[self.agent_dir()]);
        force_clean(&self.server.dir.path().join("data"));
    }
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// Pushes the busybox and nginx test images into `registry` as docker.io's library images.
pub fn push_test_images(registry: &testkit::registry::DockerRegistry) {
    for (file, name) in [
        ("busybox-oci.tar", "library/busybox:latest"),
        ("nginx-oci.tar", "library/nginx:latest"),
    ] {
        let path = testkit::test_image(file);
        registry
            .push(&format!("oci-archive:{}", path.display()), name)
            .unwrap();
    }
}

/// Polls `ready` every 100 ms until it holds; fails the test with the pods and `logs()`
/// after `timeout`.
pub fn wait_until(
    server: &Server,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
    logs: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- pods ---\n{}\n{}",
            String::from_utf8_lossy(&server.kubectl(&["describe", "pods", "-A"]).stdout),
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A JSONPath of a pod in `default` (`{.status.phase}`).
pub fn pod_field(server: &Server, pod: &str, path: &str) -> String {
    let out = server.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes workloads first (their controllers would make new pods), then the pods: their
/// containers, mounts, cgroups and addresses go with them.
pub fn delete_workloads(server: &Server) {
    let _ = server.kubectl(&[
        "delete",
        "deployments,replicasets,replicationcontrollers,daemonsets,statefulsets,jobs",
        "--all",
        "--all-namespaces",
        "--wait=false",
    ]);
    let _ = server.kubectl(&[
        "delete",
        "pods",
        "--all",
        "--all-namespaces",
        "--grace-period=1",
        "--timeout=60s",
    ]);
}

/// Waits (up to 30 s) until the runtimes under these agent dirs hold no container or sandbox.
pub fn wait_runtimes_empty(agent_dirs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let busy = || {
        agent_dirs.iter().any(|d| {
            count_entries(&d.join("runtime/containers")) > 0
                || count_entries(&d.join("runtime/sandboxes")) > 0
        })
    };
    while busy() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whatever a failed test left in a node's data dir: containers killed, mounts gone, so the
/// temporary directory can be removed.
pub fn force_clean(data_dir: &Path) {
    let runtime = data_dir.join("agent/runtime");
    for entry in std::fs::read_dir(runtime.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::process::Command::new("runc")
            .arg("--root")
            .arg(runtime.join("runc"))
            .args(["delete", "--force"])
            .arg(entry.file_name())
            .output();
    }
    let data = data_dir.to_string_lossy().into_owned();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&data))
        .collect();
    mounts.sort_by(|a, b| b.cmp(a));
    for mount in mounts {
        let _ = std::process::Command::new("umount").args(["-l", &mount]).output();
    }
}
