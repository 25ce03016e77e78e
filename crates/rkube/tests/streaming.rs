//! Streaming through the API server to the node agent's kubelet API, with real kubectl
//! (1.33: WebSocket exec/attach and tunnelled-SPDY port-forward; 1.29 and the
//! `KUBECTL_*_WEBSOCKETS=false` fallbacks: SPDY): logs (tail, previous, timestamps, follow),
//! exec (exit codes, stdin, tty), cp both ways, attach, port-forward to a port bound to
//! 127.0.0.1 inside the pod, and the errors upstream gives. Pods run on the server's own node
//! (real runc and CNI) inside a network namespace each test creates (`common::pods`).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::pods::PodCluster;
use common::{KUBECTL_1_29, KUBECTL_1_33, Server};

const T: Duration = Duration::from_secs(20);

/// A single-node cluster whose agent serves the kubelet API on a port of its own.
fn start() -> PodCluster {
    let cluster = PodCluster::start();
    let port = cluster.server.ok(&[
        "get",
        "node",
        "node-1",
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    assert_ne!(
        port, "10250",
        "the test server's agent listens on a port of its own"
    );
    cluster
}

/// Creates a pod from YAML and waits for it to run.
fn run_pod(cluster: &PodCluster, name: &str, yaml: &str) {
    cluster.server.create(&format!("{name}.yaml"), yaml);
    cluster.wait_phase(name, "Running", Duration::from_secs(60));
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
    let cluster = start();
    let server = &cluster.server;
    // The first run fails; the second prints and waits.
    run_pod(
        &cluster,
        "logger",
        "apiVersion: v1
kind: Pod
metadata: {name: logger}
spec:
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: main
    image: busybox
    volumeMounts: [{name: state, mountPath: /state}]
    command:
    - sh
    - -c
    - |
      if [ ! -e /state/ran ]; then touch /state/ran; echo first run; exit 1; fi
      echo line1; sleep 0.1; echo line2 >&2; sleep 0.1; echo line3
      while [ ! -e /tmp/go ]; do sleep 0.1; done; echo later; exec sleep 3600
",
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
    run_pod(
        &cluster,
        "short",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: short}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: busybox, command: [sh, -c, 'echo a; sleep 2; echo b']}\n",
    );
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
    let summary: serde_json::Value =
        serde_json::from_str(&server.ok(&["get", "--raw", "/api/v1/nodes/node-1/proxy/stats/summary"]))
            .unwrap();
    assert_eq!(summary["node"]["nodeName"], "node-1");
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
        "node-1",
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
    assert_eq!(
        curl(&[
            "--cert",
            tls.join("kubelet-client.crt").to_str().unwrap(),
            "--key",
            tls.join("kubelet-client.key").to_str().unwrap(),
        ]),
        "ok 200"
    );

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
    // A container that cannot start: kubelet's words from the pod's status.
    server.create(
        "no-image.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: no-image\nspec:\n  containers:\n  - name: c\n    image: no-such-image\n",
    );
    cluster.wait_for("an image pull error", T, || {
        let reason = cluster.pod_field("no-image", "{.status.containerStatuses[0].state.waiting.reason}");
        reason == "ErrImagePull" || reason == "ImagePullBackOff"
    });
    let err = server.fails(&["logs", "no-image"]);
    assert!(
        err.contains("container \"c\" in pod \"no-image\" is waiting to start: image can't be pulled")
            || err.contains(
                "container \"c\" in pod \"no-image\" is waiting to start: trying and failing to pull image"
            ),
        "{err}"
    );
}

#[test]
fn exec_exit_codes_stdin_tty_and_cp() {
    let cluster = start();
    let server = &cluster.server;
    run_pod(
        &cluster,
        "shell",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: shell}\nspec:\n  containers:\n  - {name: main, image: busybox, command: [sleep, '3600']}\n",
    );
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
            server,
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
            server,
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
    let cluster = start();
    let server = &cluster.server;
    run_pod(
        &cluster,
        "web",
        "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: echo
    image: busybox
    stdin: true
    command: [sh, -c, 'while read line; do echo \"got $line\"; done']
  - name: httpd
    image: busybox
    command: [sh, -c, 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']
",
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

#[test]
fn an_nginx_deployment_serves_its_page_through_port_forward() {
    let cluster = start();
    let server = &cluster.server;
    server.ok(&["create", "deployment", "nginx", "--image=nginx"]);
    cluster.wait_for("the Deployment to be available", Duration::from_secs(90), || {
        server
            .kubectl(&[
                "get",
                "deployment",
                "nginx",
                "-o",
                "jsonpath={.status.availableReplicas}",
            ])
            .stdout
            == b"1"
    });
    let port = testkit::free_port();
    let mut forward = server
        .client()
        .command()
        .args(["port-forward", "deployment/nginx", &format!("{port}:80")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    let page = loop {
        if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut page = String::new();
            let _ = conn.read_to_string(&mut page);
            if !page.is_empty() {
                break page;
            }
        }
        if Instant::now() > deadline {
            let _ = forward.kill(); // our own child, by PID
            let out = forward.wait_with_output().unwrap();
            panic!("no page through port-forward: {out:?}\n{}", server.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = forward.kill(); // our own child, by PID
    let _ = forward.wait();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(page.contains("<title>Welcome to nginx!</title>"), "{page}");
    // nginx logs the request to stdout, as the official image does.
    let logs = server.ok(&["logs", "deployment/nginx"]);
    assert!(logs.contains("\"GET / HTTP/1.0\" 200"), "{logs}");
    // Gone with its ReplicaSet and pods before the cluster's cleanup deletes pods (a live
    // ReplicaSet would replace them and leave a container behind).
    server.ok(&[
        "delete",
        "deployment",
        "nginx",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
}

/// kube-rs (WebSocket: `v5.channel.k8s.io` exec with its close signal, channel-form
/// port-forward).
#[test]
fn kube_rs_exec_and_port_forward() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let cluster = start();
    run_pod(
        &cluster,
        "kube-rs",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-rs}\nspec:\n  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, 'mkdir -p /www && echo hello-kube-rs > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']\n",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.server.kubeconfig).unwrap();
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
        .expect("exec output did not end");
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

#[test]
fn kubectl_run_interactive_attaches_to_the_new_pod_and_removes_it() {
    let cluster = start();
    let server = &cluster.server;
    // kubectl needs a terminal of its own for -t: `script` gives it one.
    let command = format!(
        "kubectl --kubeconfig {} run -it --rm once --image=busybox --restart=Never -- sh -c 'read line; echo \"got $line\"'",
        server.kubeconfig.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The line goes in once the session is up (kubectl prints its hint first).
    let writer = std::thread::spawn(move || {
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(500));
            if stdin.write_all(b"hello\r").is_err() {
                break;
            }
        }
    });
    let out = wait_with_timeout(child, Duration::from_secs(90));
    let _ = writer.join();
    let text = stdout(&out);
    assert!(
        text.contains("got hello"),
        "{text:?} {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pod \"once\" deleted"), "{text:?}");
    assert!(out.status.success(), "{out:?}");
}

/// `pods/{name}/proxy` and `services/{name}/proxy` reach the pod over HTTP through the API
/// server (kubectl get/create --raw, as `kubectl proxy` users do): the pod's first container
/// port by default, a Service port by number, the method, query and body passed through, and
/// upstream's errors for a missing port and a refused connection.
#[test]
fn pods_and_services_are_reachable_through_the_api_servers_proxy() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let script = "mkdir -p /www/cgi-bin && echo hello > /www/index.html && \
        printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho method=$REQUEST_METHOD query=$QUERY_STRING\\ncat\\n' > /www/cgi-bin/echo && \
        chmod +x /www/cgi-bin/echo && exec httpd -f -p 8080 -h /www";
    s.ok(&[
        "run",
        "web",
        "--image=busybox",
        "--port=8080",
        "--expose",
        "--",
        "sh",
        "-c",
        script,
    ]);
    cluster.wait_phase("web", "Running", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .ok(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .is_empty()
    {
        assert!(Instant::now() < deadline, "no ready endpoint for web");
        std::thread::sleep(Duration::from_millis(200));
    }
    let get = |path: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = s.kubectl(&["get", "--raw", path]);
            if out.status.success() || Instant::now() > deadline {
                return out;
            }
            // httpd may still be binding its port.
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let text = |out: Output| String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        text(get("/api/v1/namespaces/default/pods/web/proxy/index.html")),
        "hello"
    );
    assert_eq!(
        text(get(
            "/api/v1/namespaces/default/services/web:8080/proxy/index.html"
        )),
        "hello"
    );
    let body = s.file("body.txt", b"posted body");
    let echoed = s.ok(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/services/web/proxy/cgi-bin/echo?x=1",
        "-f",
        &body,
    ]);
    // (kubectl adds its own `timeout` to the query.)
    assert!(echoed.contains("method=POST query="), "{echoed}");
    assert!(echoed.contains("x=1"), "{echoed}");
    assert!(echoed.contains("posted body"), "{echoed}");
    let missing = s.fails(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/web:9999/proxy/",
    ]);
    assert!(
        missing.contains(
            "Error from server (ServiceUnavailable): no service port 9999 found for service \"web\""
        ),
        "{missing}"
    );
    let refused = s.fails(&["get", "--raw", "/api/v1/namespaces/default/pods/web:81/proxy/"]);
    assert!(
        refused.contains("error trying to reach service: dial tcp")
            && refused.contains(":81: connect: connection refused"),
        "{refused}"
    );
}

#[test]
fn kubectl_debug_runs_an_ephemeral_container_in_the_target_pid_namespace() {
    let cluster = start();
    run_pod(
        &cluster,
        "target",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: target}\nspec:\n  containers:\n  - {name: app, image: busybox, command: [sleep, '3600']}\n",
    );
    let app_id = cluster.pod_field("target", "{.status.containerStatuses[0].containerID}");
    cluster.server.ok(&[
        "debug",
        "target",
        "--image=busybox",
        "--target=app",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "ps; sleep 1",
    ]);
    cluster.wait_for("the debugger to terminate", Duration::from_secs(60), || {
        cluster.pod_field(
            "target",
            "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
        ) == "0"
    });
    // It saw the target's processes (sharing its PID namespace), and ran once.
    let logs = cluster.server.ok(&["logs", "target", "-c", "dbg"]);
    assert!(logs.contains("sleep 3600"), "{logs}");
    assert_eq!(
        cluster.pod_field("target", "{.status.ephemeralContainerStatuses[0].restartCount}"),
        "0"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        cluster.pod_field("target", "{.status.ephemeralContainerStatuses[0].restartCount}"),
        "0"
    );
    assert_eq!(
        cluster.pod_field("target", "{.status.ephemeralContainerStatuses[0].ready}"),
        "false"
    );
    // The app container is unaffected.
    assert_eq!(cluster.pod_field("target", "{.status.phase}"), "Running");
    assert_eq!(
        cluster.pod_field("target", "{.status.containerStatuses[0].containerID}"),
        app_id
    );
    assert_eq!(
        cluster.pod_field("target", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
}
