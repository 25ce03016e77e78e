//! The harness the kubectl test files share: a child `rkube server` (free loopback port, SQLite
//! in a temporary data dir, a token file) and real kubectl binaries pointed at it.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod multinode;
pub mod pods;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bearer token every test server accepts (from its `--token-auth-file`).
pub const TOKEN: &str = "e2e-token-0123456789";

/// A kubectl binary: the default one on PATH (1.33) or an older release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kubectl {
    pub path: &'static str,
    /// A short name for messages and per-binary cache directories.
    pub label: &'static str,
}

/// kubectl 1.33, the default (`/usr/bin/kubectl`).
pub const KUBECTL_1_33: Kubectl = Kubectl {
    path: "kubectl",
    label: "1.33",
};

/// kubectl 1.29, which the Cloud SDK ships next to the default one.
pub const KUBECTL_1_29: Kubectl = Kubectl {
    path: "/usr/lib/google-cloud-sdk/bin/kubectl.1.29",
    label: "1.29",
};

/// Both kubectl releases the scenarios run against.
pub fn kubectls() -> [Kubectl; 2] {
    assert!(
        Path::new(KUBECTL_1_29.path).exists(),
        "{} is missing",
        KUBECTL_1_29.path
    );
    [KUBECTL_1_33, KUBECTL_1_29]
}

pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// The command line, for restarts.
    args: Vec<String>,
    /// The network namespace the server runs in, if not the test thread's.
    netns: Option<PathBuf>,
    /// A namespace this server's agent made for the test thread (see `launch`).
    _own_netns: Option<testkit::netns::NetNs>,
}

/// Starts `rkube args…`, inside the network namespace `netns` if given (`nsenter --net`, which
/// execs: the child's PID is rkube's).
pub fn spawn_rkube(netns: Option<&Path>, args: &[String], log: std::fs::File) -> Child {
    let mut command = match netns {
        Some(path) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", path.display()))
                .arg("--")
                .arg(env!("CARGO_BIN_EXE_rkube"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_rkube")),
    };
    command
        .args(args)
        .env_remove("RKUBE_DATASTORE_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with extra `rkube server` flags (e.g. `--controllers=*,-deployment`,
    /// `--node-monitor-grace-period=5s`). Without an agent nothing needs the `kube-root-ca.crt`
    /// ConfigMaps, so the root CA publisher is off: a namespace holds only what the test makes.
    pub fn start_with(extra_args: &[&str]) -> Server {
        Server::launch(
            &["--disable-agent", "--controllers=*,-root-ca-cert-publisher"],
            extra_args,
        )
    }

    /// A server without an agent but with every controller, the root CA publisher included.
    pub fn start_with_root_ca(extra_args: &[&str]) -> Server {
        Server::launch(&["--disable-agent"], extra_args)
    }

    /// A server that runs its node agent (its own Node, heartbeats), with extra flags. A node
    /// agent programs its network (bridge, routes, nftables), never in the host's namespace:
    /// the test thread first moves into one of its own, with only loopback.
    pub fn start_with_agent(extra_args: &[&str]) -> Server {
        let netns = testkit::netns::NetNs::create("rkube-agent").unwrap();
        netns.enter().unwrap();
        let mut server = Server::launch(&[], extra_args);
        server._own_netns = Some(netns);
        server
    }

    /// Like [`Server::start_with_agent`], in the network namespace the test thread is in
    /// already (one the test made).
    pub fn start_with_agent_in_current_netns(extra_args: &[&str]) -> Server {
        Server::launch(&[], extra_args)
    }

    fn launch(agent_args: &[&str], extra_args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        // Each agent's kubelet API on a port of its own (tests run in parallel).
        let kubelet_port = testkit::free_port().to_string();
        let kubelet_args: &[&str] = if agent_args.is_empty() && !extra_args.contains(&"--kubelet-port") {
            &["--kubelet-port", &kubelet_port]
        } else {
            &[]
        };
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, format!("{TOKEN},token-user,1000,\"e2e\"\n")).unwrap();
        let mut args: Vec<String> = vec!["server".into()];
        args.extend(agent_args.iter().map(|a| a.to_string()));
        args.extend(kubelet_args.iter().map(|a| a.to_string()));
        args.extend(["--bind-address".into(), "127.0.0.1".into()]);
        args.extend(["--https-port".into(), testkit::free_port().to_string()]);
        args.extend(["--data-dir".into(), dir.path().join("data").display().to_string()]);
        args.extend(["--token-auth-file".into(), tokens.display().to_string()]);
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let child = spawn_rkube(None, &args, log);
        let kubeconfig = dir.path().join("data/kubeconfig.yaml");
        let server = Server {
            child,
            dir,
            kubeconfig,
            args,
            netns: None,
            _own_netns: None,
        };
        server.wait_ready()
    }

    /// A server with its agent inside the network namespace `netns` (a node of a
    /// multi-node test), listening on all its addresses at 6443; kubectl reaches it at
    /// `node_ip` from the test thread's namespace.
    pub fn start_in_netns(netns: &Path, node_ip: &str, extra_args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, format!("{TOKEN},token-user,1000,\"e2e\"\n")).unwrap();
        let mut args: Vec<String> = vec!["server".into(), "--node-ip".into(), node_ip.into()];
        args.extend(["--data-dir".into(), dir.path().join("data").display().to_string()]);
        args.extend(["--token-auth-file".into(), tokens.display().to_string()]);
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let child = spawn_rkube(Some(netns), &args, log);
        let kubeconfig = dir.path().join("kubeconfig-external.yaml");
        let server = Server {
            child,
            dir,
            kubeconfig,
            args,
            netns: Some(netns.to_owned()),
            _own_netns: None,
        };
        let written = server.dir.path().join("data/kubeconfig.yaml");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !written.exists() {
            assert!(Instant::now() < deadline, "no kubeconfig: {}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(50));
        let text = std::fs::read_to_string(&written)
            .unwrap()
            .replace("https://127.0.0.1:", &format!("https://{node_ip}:"));
        std::fs::write(&server.kubeconfig, text).unwrap();
        server.wait_ready()
    }

    /// The server's join token file (for agents).
    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("data/token")
    }

    /// Stops the server (SIGKILL: containers and shims outlive it, as after a crash) and
    /// starts it again on the same data dir, address and flags.
    pub fn restart(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        self.child = spawn_rkube(self.netns.as_deref(), &self.args, log);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.kubectl(&["get", "--raw", "/readyz"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "not ready after a restart: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_ready(mut self) -> Server {
        let server = &mut self;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(server.kubeconfig.exists() && server.kubectl(&["get", "--raw", "/readyz"]).status.success()) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rkube server exited with {status}: {}", server.log());
            }
            assert!(Instant::now() < deadline, "not ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A client running the given kubectl binary.
    pub fn with(&self, kubectl: Kubectl) -> Client<'_> {
        Client {
            server: self,
            kubectl,
        }
    }

    /// The default kubectl (1.33).
    pub fn client(&self) -> Client<'_> {
        self.with(KUBECTL_1_33)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.client().run(args)
    }

    pub fn kubectl_with_editor(&self, args: &[&str], editor: &str) -> Output {
        self.client().run_with_editor(args, editor)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.client().ok(args)
    }

    pub fn fails(&self, args: &[&str]) -> String {
        self.client().fails(args)
    }

    pub fn create(&self, file: &str, yaml: &str) -> String {
        self.client().create(file, yaml)
    }

    pub fn create_fails(&self, file: &str, yaml: &str) -> String {
        self.client().create_fails(file, yaml)
    }

    /// Writes a manifest into the test's directory and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Writes any bytes into the test's directory and returns the path.
    pub fn file(&self, name: &str, body: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// The server still runs and answers (nothing a test sent killed it).
    pub fn assert_serving(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("rkube server exited with {status}: {}", self.log());
        }
        self.ok(&["get", "configmaps", "-n", "default"]);
    }

    /// Starts a kubectl whose output keeps coming (`get -w`), with the default binary.
    pub fn stream(&self, args: &[&str]) -> Streaming {
        self.client().stream(args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
    }
}

/// One kubectl binary talking to one server.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub server: &'a Server,
    pub kubectl: Kubectl,
}

impl Client<'_> {
    /// kubectl against this server, with a discovery cache per binary.
    pub fn command(&self) -> Command {
        let cache = self
            .server
            .dir
            .path()
            .join(format!("cache-{}", self.kubectl.label));
        kubectl_command(self.kubectl, &self.server.kubeconfig, &cache)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_editor(args, "false")
    }

    /// kubectl with `KUBE_EDITOR` set (for `kubectl edit`).
    pub fn run_with_editor(&self, args: &[&str], editor: &str) -> Output {
        self.command()
            .args(["--request-timeout", "10s"])
            .args(args)
            .env("KUBE_EDITOR", editor)
            .output()
            .expect("kubectl is installed")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {} {args:?} failed: {}",
            self.kubectl.label,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubectl {} {args:?} should fail, printed {}",
            self.kubectl.label,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kubectl create -f` of a manifest written to `file` (validated by the server, strictly,
    /// as kubectl asks by default); returns stdout.
    pub fn create(&self, file: &str, yaml: &str) -> String {
        self.ok(&["create", "-f", &self.server.manifest(file, yaml)])
    }

    /// Like [`Client::create`], expecting failure; returns stderr.
    pub fn create_fails(&self, file: &str, yaml: &str) -> String {
        self.fails(&["create", "-f", &self.server.manifest(file, yaml)])
    }

    /// `kubectl apply -f` of a manifest written to `file`, with extra flags; returns stdout.
    pub fn apply(&self, file: &str, yaml: &str, flags: &[&str]) -> String {
        let path = self.server.manifest(file, yaml);
        let mut args = vec!["apply", "-f", &path];
        args.extend_from_slice(flags);
        self.ok(&args)
    }

    pub fn stream(&self, args: &[&str]) -> Streaming {
        let mut command = self.command();
        command.args(args);
        Streaming::spawn(command)
    }
}

/// A kubectl command line against `kubeconfig`, with the given discovery cache.
pub fn kubectl_command(kubectl: Kubectl, kubeconfig: &Path, cache: &Path) -> Command {
    let mut command = Command::new(kubectl.path);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache);
    command
}

/// A kubectl child whose stdout lines are collected as they come.
pub struct Streaming {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Streaming {
    fn spawn(mut command: Command) -> Streaming {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Streaming {
            child,
            lines,
            reader: Some(reader),
        }
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The lines so far, as words.
    pub fn rows(&self) -> Vec<Vec<String>> {
        words(&self.lines().join("\n"))
    }

    /// Waits until `count` lines arrived (10 s at most) and returns them as words.
    pub fn wait_for(&self, count: usize) -> Vec<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines.lock().unwrap().len() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.rows()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

pub fn configmap(namespace: &str, name: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  {data}\n---\n"
    )
}

pub fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\n")
}

/// A namespace and one ConfigMap in it, as one manifest.
pub fn namespace_with_configmap(namespace_name: &str, name: &str, data: &str) -> String {
    format!(
        "{}{}",
        namespace(namespace_name),
        configmap(namespace_name, name, data)
    )
}

/// A table kubectl printed, as the whitespace-separated words of each line.
pub fn words(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Whether a cell is an AGE as upstream prints them (`0s`, `5s`, `3m12s`, …).
pub fn is_age(cell: &str) -> bool {
    cell.len() >= 2
        && cell.starts_with(|c: char| c.is_ascii_digit())
        && cell.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
}
