//! Streaming through the API server to the node agent's kubelet API, with real kubectl
//! (1.33: WebSocket exec/attach and tunnelled-SPDY port-forward; 1.29 and the
//! `KUBECTL_*_WEBSOCKETS=false` fallbacks: SPDY): logs (tail, previous, timestamps, follow),
//! exec (exit codes, stdin, tty), cp both ways, attach, port-forward to a port bound to
//! 127.0.0.1 inside the pod, and the errors upstream gives. The pod objects are bound to the
//! server's node; their sandboxes and containers are made here with the runtime, over the
//! agent's runtime root, where the agent finds them (root: real runc).

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{KUBECTL_1_29, KUBECTL_1_33, Server};
use runtime::{
    ContainerConfig, ContainerState, ImageConfig, RuncRuntime, Runtime, RuntimeConfig, Sandbox, SandboxConfig,
};

const NODE: &str = "stream-node";
const T: Duration = Duration::from_secs(20);

/// The server's runtime root, seen from the test: sandboxes and containers made through it.
struct Pods {
    runtime: RuncRuntime,
    image: ImageConfig,
    layers: Vec<PathBuf>,
    logs: PathBuf,
    cgroup_base: String,
    _images: tempfile::TempDir,
}

impl Pods {
    fn new(server: &Server) -> Pods {
        let images_dir = tempfile::tempdir().unwrap();
        let store = images::Store::open(&images_dir.path().join("images")).unwrap();
        let names = store.import(&testkit::test_image("busybox-oci.tar")).unwrap();
        let image = store
            .resolve(&images::Reference::parse(&names[0]).unwrap())
            .unwrap()
            .unwrap();
        let blob = images_dir
            .path()
            .join("images/blobs")
            .join(image.config.replacen(':', "/", 1));
        let image_config = ImageConfig::from_config_blob(&std::fs::read(blob).unwrap()).unwrap();
        let layers = image.layers.iter().map(|l| store.layer_dir(&l.diff_id)).collect();
        let cgroup_base = format!("rkube-test-{}", uuid::Uuid::new_v4().simple());
        let data = server.dir.path().join("data/agent");
        let runtime = RuncRuntime::new(RuntimeConfig {
            root: data.join("runtime"),
            runc: "runc".into(),
            shim: vec![env!("CARGO_BIN_EXE_rkube").into(), "shim".into()],
            cgroup_root: format!("{cgroup_base}/kubepods"),
        })
        .unwrap();
        Pods {
            runtime,
            image: image_config,
            layers,
            logs: data.join("pods"),
            cgroup_base,
            _images: images_dir,
        }
    }

    /// A pod object bound to the node, and its sandbox (loopback up, as CNI would).
    fn pod(&self, server: &Server, name: &str, containers: &[&str]) -> Sandbox {
        let list: String = containers
            .iter()
            .map(|c| format!("  - name: {c}\n    image: busybox\n    stdin: true\n"))
            .collect();
        server.create(
            &format!("{name}.yaml"),
            &format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {NODE}\n  containers:\n{list}"),
        );
        // No pod workers here: the status says Running (kubectl port-forward checks it).
        server.ok(&[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running"}}"#,
        ]);
        let uid = server.ok(&["get", "pod", name, "-o", "jsonpath={.metadata.uid}"]);
        let sandbox = self
            .runtime
            .create_sandbox(&SandboxConfig {
                pod_uid: uid.trim().to_owned(),
                pod_name: name.into(),
                namespace: "default".into(),
                hostname: name.into(),
                ..Default::default()
            })
            .unwrap();
        let netns = sandbox.netns.as_ref().unwrap();
        let status = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(status.success());
        sandbox
    }

    /// Starts busybox `sh -c script` as run `restart` of container `name`.
    fn run(&self, sandbox: &Sandbox, name: &str, restart: u32, script: &str, stdin: bool) -> String {
        let config = ContainerConfig {
            name: name.into(),
            image: "docker.io/library/busybox:latest".into(),
            image_config: self.image.clone(),
            layers: self.layers.clone(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            log_path: runtime::logs::container_log_path(
                &runtime::logs::pod_log_dir(
                    &self.logs,
                    &sandbox.namespace,
                    &sandbox.pod_name,
                    &sandbox.pod_uid,
                ),
                name,
                restart,
            ),
            restart_count: restart,
            stdin,
            ..Default::default()
        };
        let id = self.runtime.create_container(&sandbox.pod_uid, &config).unwrap();
        self.runtime.start_container(&id).unwrap();
        id
    }

    fn wait_exited(&self, id: &str) {
        let deadline = Instant::now() + T;
        while self.runtime.container_status(id).unwrap().state != ContainerState::Exited {
            assert!(Instant::now() < deadline, "container {id} still runs");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        for c in self.runtime.list_containers(None).unwrap_or_default() {
            if let Err(e) = self.runtime.remove_container(&c.id) {
                eprintln!("cleanup: container {}: {e}", c.id);
            }
        }
        for s in self.runtime.list_sandboxes().unwrap_or_default() {
            if let Err(e) = self.runtime.remove_sandbox(&s.pod_uid) {
                eprintln!("cleanup: sandbox {}: {e}", s.pod_uid);
            }
        }
        if let Ok(cgroups) = runtime::cgroups::Cgroups::detect()
            && let Err(e) = cgroups.remove(&self.cgroup_base)
        {
            eprintln!("cleanup: cgroups {}: {e}", self.cgroup_base);
        }
    }
}

fn start() -> Server {
    let server = Server::start_with_agent(&["--node-name", NODE, "--node-ip", "127.0.0.1"]);
    let deadline = Instant::now() + T;
    loop {
        let out = server.kubectl(&[
            "get",
            "node",
            NODE,
            "-o",
            "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
        ]);
        if out.status.success() && !out.stdout.is_empty() {
            let port = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            assert_ne!(
                port, "10250",
                "the test server's agent listens on a port of its own"
            );
            break;
        }
        assert!(Instant::now() < deadline, "node not registered: {}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

/// kubectl with stdin from `input`.
fn kubectl_input(
    server: &Server,
    kubectl: common::Kubectl,
    env: &[(&str, &str)],
    args: &[&str],
    input: &[u8],
) -> Output {
    let mut child = server
        .with(kubectl)
        .command()
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = wait_with_timeout(child, T);
    writer.join().unwrap();
    output
}

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill(); // our own child, by PID
            let out = child.wait_with_output().unwrap();
            panic!(
                "kubectl did not finish in {timeout:?}: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn logs_tail_previous_timestamps_and_follow() {
    let server = start();
    let pods = Pods::new(&server);
    let pod = pods.pod(&server, "logger", &["main"]);
    let first = pods.run(&pod, "main", 0, "echo first run; exit 1", false);
    pods.wait_exited(&first);
    pods.run(
        &pod,
        "main",
        1,
        "echo line1; sleep 0.1; echo line2 >&2; sleep 0.1; echo line3; \
         while [ ! -e /tmp/go ]; do sleep 0.1; done; echo later; exec sleep 3600",
        false,
    );
    let deadline = Instant::now() + T;
    while server.ok(&["logs", "logger"]) != "line1\nline2\nline3\n" {
        assert!(
            Instant::now() < deadline,
            "logs: {:?}",
            server.kubectl(&["logs", "logger"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.ok(&["logs", "logger", "-c", "main", "--tail=1"]),
        "line3\n"
    );
    assert_eq!(server.ok(&["logs", "logger", "--previous"]), "first run\n");
    assert_eq!(server.ok(&["logs", "logger", "--limit-bytes=3"]), "lin");
    let stamped = server.ok(&["logs", "logger", "--timestamps", "--tail=1"]);
    let (time, rest) = stamped.split_once(' ').unwrap();
    assert_eq!(rest, "line3\n");
    assert!(
        time.parse::<jiff::Timestamp>().is_ok() && time.len() == 30,
        "{time}"
    );

    // -f: what was there, then what comes.
    let follow = server.stream(&["logs", "-f", "logger"]);
    follow.wait_for(3);
    server.ok(&["exec", "logger", "--", "touch", "/tmp/go"]);
    let deadline = Instant::now() + T;
    while !follow.lines().contains(&"later".to_owned()) {
        assert!(Instant::now() < deadline, "followed: {:?}", follow.lines());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(follow.lines(), ["line1", "line2", "line3", "later"]);

    // -f ends when the container exits.
    let short = pods.pod(&server, "short", &["c"]);
    pods.run(&short, "c", 0, "echo a; sleep 1; echo b", false);
    let child = server
        .client()
        .command()
        .args(["logs", "-f", "short"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, T);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "a\nb\n");

    // The node's summary through nodes/proxy.
    let summary: serde_json::Value = serde_json::from_str(&server.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], NODE);
    let pod_stats = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "logger")
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(pod_stats["containers"][0]["name"], "main");
    assert!(
        pod_stats["containers"][0]["memory"]["workingSetBytes"]
            .as_u64()
            .is_some(),
        "{pod_stats}"
    );

    // The kubelet API wants a client certificate from the cluster CA.
    let port = server.ok(&[
        "get",
        "node",
        NODE,
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let curl = |extra: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sk",
                "-w",
                " %{http_code}",
                &format!("https://127.0.0.1:{}/healthz", port.trim()),
            ])
            .args(extra)
            .output()
            .unwrap();
        stdout(&out)
    };
    assert_eq!(curl(&[]), "Unauthorized 401");
    let tls = server.dir.path().join("data/tls");
    let with_cert = |name: &str| {
        curl(&[
            "--cert",
            tls.join(format!("{name}.crt")).to_str().unwrap(),
            "--key",
            tls.join(format!("{name}.key")).to_str().unwrap(),
        ])
    };
    assert_eq!(with_cert("kubelet-client"), "ok 200");

    // Upstream's errors.
    let err = server.fails(&["logs", "logger", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod logger"),
        "{err}"
    );
    let err = server.fails(&["logs", "missing"]);
    assert!(err.contains("pods \"missing\" not found"), "{err}");
    server.create(
        "pending.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pending\nspec:\n  nodeName: other-node\n  containers:\n  - name: c\n    image: busybox\n",
    );
    let err = server.fails(&["exec", "pending", "--", "true"]);
    assert!(err.contains("nodes \"other-node\" not found"), "{err}");
    // Bound to this node, not started: kubelet's words.
    let _waiting = pods.pod(&server, "waiting", &["app"]);
    let err = server.fails(&["logs", "waiting"]);
    assert!(
        err.contains("container \"app\" in pod \"waiting\" is waiting to start: ContainerCreating"),
        "{err}"
    );
    let err = server.fails(&["exec", "waiting", "--", "true"]);
    assert!(err.contains("container not found (\"app\")"), "{err}");
}

#[test]
fn exec_exit_codes_stdin_tty_and_cp() {
    let server = start();
    let pods = Pods::new(&server);
    let pod = pods.pod(&server, "shell", &["main"]);
    pods.run(&pod, "main", 0, "exec sleep 3600", false);
    for (kubectl, env) in [
        (KUBECTL_1_33, &[][..]),
        (
            KUBECTL_1_33,
            &[("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")][..],
        ),
        (KUBECTL_1_29, &[][..]),
    ] {
        let what = format!("kubectl {} {env:?}", kubectl.label);
        let out = kubectl_input(
            &server,
            kubectl,
            env,
            &[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(3), "{what}: {out:?}");
        assert_eq!(stdout(&out), "out\n", "{what}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("err\n"),
            "{what}: {out:?}"
        );

        let out = kubectl_input(
            &server,
            kubectl,
            env,
            &["exec", "-i", "shell", "--", "sh", "-c", "cat; echo done"],
            b"abc\ndef",
        );
        assert!(out.status.success(), "{what}: {out:?}");
        assert_eq!(stdout(&out), "abc\ndefdone\n", "{what}");

        // A terminal: kubectl needs one of its own (script gives it a pty).
        let command = format!(
            "stty rows 45 cols 123; {} --kubeconfig {} exec -it shell -- sh -c 'tty; stty size'",
            kubectl.path,
            server.kubeconfig.display()
        );
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &command, "/dev/null"])
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let keep_open = child.stdin.take();
        let out = wait_with_timeout(child, T);
        drop(keep_open);
        let text = stdout(&out);
        assert!(out.status.success(), "{what}: {out:?}");
        assert!(text.contains("/dev/pts/"), "{what}: {text:?}");
        // kubectl's terminal size reached the exec'd process's terminal.
        assert!(text.contains("45 123"), "{what}: {text:?}");
    }

    // cp both ways (exec of tar; stdin's end must reach tar).
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("payload.txt");
    let payload: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, &payload).unwrap();
    server.ok(&["cp", file.to_str().unwrap(), "shell:/tmp/payload.txt"]);
    assert_eq!(
        server
            .ok(&["exec", "shell", "--", "wc", "-l", "/tmp/payload.txt"])
            .split_whitespace()
            .next(),
        Some("5000")
    );
    let back = local.path().join("back.txt");
    server.ok(&["cp", "shell:/tmp/payload.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), payload);
}

#[test]
fn attach_and_port_forward() {
    let server = start();
    let pods = Pods::new(&server);
    let pod = pods.pod(&server, "web", &["echo", "httpd"]);
    pods.run(
        &pod,
        "echo",
        0,
        "while read line; do echo \"got $line\"; done",
        true,
    );
    pods.run(
        &pod,
        "httpd",
        0,
        "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
        false,
    );

    // attach -i: input to the container's stdin, its output back.
    let mut child = server
        .client()
        .command()
        .args(["attach", "-i", "web", "-c", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("got hello") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let deadline = Instant::now() + T;
    while !reader.is_finished() && Instant::now() < deadline {
        let _ = stdin.write_all(b"hello\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = child.kill(); // our own child, by PID
    let _ = child.wait();
    let seen = reader.join().unwrap();
    assert!(seen.contains("got hello"), "attach saw {seen:?}");

    for (kubectl, env) in [
        (KUBECTL_1_33, &[][..]),
        (KUBECTL_1_33, &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")][..]),
        (KUBECTL_1_29, &[][..]),
    ] {
        let what = format!("kubectl {} {env:?}", kubectl.label);
        let port = testkit::free_port();
        let mut forward = server
            .with(kubectl)
            .command()
            .args(["port-forward", "pod/web", &format!("{port}:8080")])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + T;
        let page = loop {
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
                let mut page = String::new();
                let _ = conn.read_to_string(&mut page);
                if page.contains("hello-from-pod") {
                    break page;
                }
            }
            if Instant::now() > deadline {
                let _ = forward.kill(); // our own child, by PID
                let out = forward.wait_with_output().unwrap();
                panic!("{what}: no page through port-forward: {out:?}\n{}", server.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(page.starts_with("HTTP/1.1 200 OK"), "{what}: {page}");
        // A second connection through the same forward.
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut again = String::new();
        conn.read_to_string(&mut again).unwrap();
        assert!(again.contains("hello-from-pod"), "{what}: {again}");
        let _ = forward.kill(); // our own child, by PID
        let _ = forward.wait();
    }
}

/// kube-rs (WebSocket: `v5`/`v4.channel.k8s.io` exec, channel-form port-forward).
#[test]
fn kube_rs_exec_and_port_forward() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start();
    let pods = Pods::new(&server);
    let pod = pods.pod(&server, "kube-rs", &["main"]);
    pods.run(
        &pod,
        "main",
        0,
        "mkdir -p /www && echo hello-kube-rs > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
        false,
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Pod> = Api::default_namespaced(client);

        let mut attached = api
            .exec(
                "kube-rs",
                ["sh", "-c", "cat; echo bye >&2; exit 7"],
                &AttachParams::default().stdin(true).stderr(true),
            )
            .await
            .unwrap();
        let mut stdin = attached.stdin().unwrap();
        let mut stdout = attached.stdout().unwrap();
        let mut stderr = attached.stderr().unwrap();
        let status = attached.take_status().unwrap();
        stdin.write_all(b"from kube-rs\n").await.unwrap();
        // The end of stdin (v5's close signal); dropping the half would not end the stream.
        stdin.shutdown().await.unwrap();
        let mut out = String::new();
        let mut err = String::new();
        let (o, e) = tokio::time::timeout(T, async {
            tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err))
        })
        .await
        .unwrap_or_else(|_| panic!("exec output did not end: {out:?} {err:?}"));
        o.unwrap();
        e.unwrap();
        let status = tokio::time::timeout(T, status).await.expect("no status").unwrap();
        assert_eq!(out, "from kube-rs\n");
        assert_eq!(err, "bye\n");
        assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"), "{status:?}");
        let causes = status.details.unwrap().causes.unwrap();
        assert_eq!(causes[0].message.as_deref(), Some("7"));
        tokio::time::timeout(T, attached.join())
            .await
            .expect("exec did not end")
            .unwrap();

        let mut forwarder = tokio::time::timeout(T, api.portforward("kube-rs", &[8080]))
            .await
            .expect("no port-forward connection")
            .unwrap();
        let mut stream = forwarder.take_stream(8080).unwrap();
        stream
            .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut page = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&page).contains("hello-kube-rs") {
            let n = tokio::time::timeout(T, stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n > 0,
                "port-forward ended early: {:?}",
                String::from_utf8_lossy(&page)
            );
            page.extend_from_slice(&buf[..n]);
        }
        drop(stream);
        forwarder.abort();
    });
}
