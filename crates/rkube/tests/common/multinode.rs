//! A three-node cluster on one machine, for the networking tests: one network namespace per
//! node joined by an underlay bridge (`testkit::netns::Lab`, no route out), `rkube server` with
//! its agent on node 1 and `rkube agent` on nodes 2 and 3, each started with `nsenter --net`.
//! The test thread sits in the underlay, as a client outside the cluster would; a docker
//! registry there is every node's `docker.io` mirror.

use std::path::Path;
use std::process::{Child, Output};
use std::time::Duration;

use super::Server;
use super::pods;

pub const NODES: usize = 3;

pub struct MultiNodeCluster {
    pub server: Server,
    agents: Vec<(Child, tempfile::TempDir)>,
    pub registry: testkit::registry::DockerRegistry,
    registries_yaml: tempfile::NamedTempFile,
    // Dropped last: processes inside must be gone first.
    pub lab: testkit::netns::Lab,
}

impl MultiNodeCluster {
    /// Starts the cluster with `--flannel-backend backend` on every node.
    pub fn start(backend: &str) -> MultiNodeCluster {
        let lab = testkit::netns::Lab::create(NODES, "172.31.0").unwrap();
        lab.enter().unwrap();
        let registry =
            testkit::registry::DockerRegistry::start_on(lab.underlay_ip().parse().unwrap()).unwrap();
        pods::push_test_images(&registry);
        let registries_yaml = tempfile::Builder::new()
            .prefix("rkube-registries-")
            .suffix(".yaml")
            .tempfile()
            .unwrap();
        std::fs::write(
            registries_yaml.path(),
            format!(
                "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
                registry.host()
            ),
        )
        .unwrap();
        let registries = registries_yaml.path().to_str().unwrap().to_owned();
        let node_args = |i: usize| -> Vec<String> {
            [
                "--node-name",
                &format!("node-{i}"),
                "--eviction-hard",
                "nodefs.available<1%",
                "--private-registry",
                &registries,
                "--flannel-backend",
                backend,
                // Cluster DNS in tests forwards nowhere.
                "--dns-upstream",
                "none",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let server_args = node_args(1);
        let server_args: Vec<&str> = server_args.iter().map(String::as_str).collect();
        let server = Server::start_in_netns(&lab.nodes[0].path(), &lab.node_ip(1), &server_args);
        let mut agents = Vec::new();
        for i in 2..=NODES {
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
            let mut args: Vec<String> = vec![
                "agent".into(),
                "--server".into(),
                format!("https://{}:6443", lab.node_ip(1)),
                "--token-file".into(),
                server.token_file().display().to_string(),
                "--data-dir".into(),
                dir.path().join("data").display().to_string(),
                "--node-ip".into(),
                lab.node_ip(i),
            ];
            args.extend(node_args(i));
            let child = super::spawn_rkube(Some(&lab.nodes[i - 1].path()), &args, log);
            agents.push((child, dir));
        }
        let cluster = MultiNodeCluster {
            server,
            agents,
            registry,
            registries_yaml,
            lab,
        };
        for i in 1..=NODES {
            let node = format!("node-{i}");
            cluster.wait_for(
                &format!("{node} to be Ready with a pod CIDR"),
                Duration::from_secs(60),
                || {
                    let out = cluster.server.kubectl(&[
                        "get",
                        "node",
                        &node,
                        "-o",
                        "jsonpath={.spec.podCIDR} {.status.conditions[?(@.type==\"Ready\")].status}",
                    ]);
                    let text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.ends_with("True") && !text.starts_with(' ')
                },
            );
        }
        cluster
    }

    /// Polls `ready` every 100 ms; fails with the nodes' logs after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, ready: impl FnMut() -> bool) {
        pods::wait_until(&self.server, what, timeout, ready, || self.logs());
    }

    /// The server's and the agents' logs.
    pub fn logs(&self) -> String {
        let mut out = format!("--- node-1 (server) ---\n{}", self.server.log());
        for (i, (_, dir)) in self.agents.iter().enumerate() {
            let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
            out.push_str(&format!("\n--- node-{} (agent) ---\n{log}", i + 2));
        }
        out
    }

    /// Node `i`'s address (from 1).
    pub fn node_ip(&self, i: usize) -> String {
        self.lab.node_ip(i)
    }

    /// A JSONPath of a pod in `default`.
    pub fn pod_field(&self, pod: &str, path: &str) -> String {
        pods::pod_field(&self.server, pod, path)
    }

    pub fn wait_running(&self, pod: &str) {
        self.wait_for(&format!("pod {pod} to run"), Duration::from_secs(60), || {
            self.pod_field(pod, "{.status.phase}") == "Running"
        });
    }

    /// `kubectl exec pod -- command…`.
    pub fn exec(&self, pod: &str, command: &[&str]) -> Output {
        let mut args = vec!["exec", pod, "--"];
        args.extend_from_slice(command);
        self.server.kubectl(&args)
    }

    /// The node data dirs (node 1's is the server's).
    fn data_dirs(&self) -> Vec<std::path::PathBuf> {
        let mut dirs = vec![self.server.dir.path().join("data")];
        dirs.extend(self.agents.iter().map(|(_, d)| d.path().join("data")));
        dirs
    }
}

impl Drop for MultiNodeCluster {
    fn drop(&mut self) {
        pods::delete_workloads(&self.server);
        let dirs = self.data_dirs();
        pods::wait_runtimes_empty(&dirs.iter().map(|d| d.join("agent")).collect::<Vec<_>>());
        for (child, _) in &mut self.agents {
            let _ = child.kill(); // our own child, by PID
            let _ = child.wait();
        }
        for dir in &dirs {
            pods::force_clean(Path::new(dir));
        }
        let _ = &self.registries_yaml;
    }
}
