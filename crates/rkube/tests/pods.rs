//! Pods run as real containers (runc, CNI bridge, overlayfs) by `rkube server`'s own agent,
//! driven by real kubectl, inside a network namespace each test creates.

mod common;

use std::time::{Duration, Instant};

use common::pods::{NODE_IP, PodCluster};

#[test]
fn a_busybox_pod_runs_with_the_status_kubelet_reports() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&["run", "sleeper", "--image=busybox", "--", "sleep", "3600"]);
    cluster.wait_phase("sleeper", "Running", Duration::from_secs(60));
    let field = |path: &str| cluster.pod_field("sleeper", path);
    assert_eq!(field("{.status.hostIP}"), NODE_IP);
    let pod_ip = field("{.status.podIP}");
    assert!(pod_ip.starts_with("10.42."), "podIP {pod_ip}");
    assert_eq!(field("{.status.podIPs[0].ip}"), pod_ip);
    assert_eq!(field("{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
    assert_eq!(
        field("{.status.conditions[?(@.type==\"ContainersReady\")].status}"),
        "True"
    );
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Initialized\")].status}"),
        "True"
    );
    assert_eq!(
        field("{.status.conditions[?(@.type==\"PodReadyToStartContainers\")].status}"),
        "True"
    );
    assert_eq!(field("{.status.containerStatuses[0].ready}"), "true");
    assert_eq!(field("{.status.containerStatuses[0].started}"), "true");
    assert_eq!(field("{.status.containerStatuses[0].restartCount}"), "0");
    assert_eq!(
        field("{.status.containerStatuses[0].image}"),
        "docker.io/library/busybox:latest"
    );
    let image_id = field("{.status.containerStatuses[0].imageID}");
    assert!(
        image_id.starts_with("docker.io/library/busybox@sha256:"),
        "{image_id}"
    );
    assert!(field("{.status.containerStatuses[0].containerID}").starts_with("runc://"));
    assert!(!field("{.status.containerStatuses[0].state.running.startedAt}").is_empty());
    assert!(!field("{.status.startTime}").is_empty());

    // kubelet's events, in order.
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=sleeper",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    for reason in ["Pulling", "Pulled", "Created", "Started"] {
        assert!(
            events.lines().any(|l| l == reason),
            "no {reason} event in {events}"
        );
    }

    // `sleep` as PID 1 ignores SIGTERM: the grace period runs out, then SIGKILL.
    let started = Instant::now();
    s.ok(&["delete", "pod", "sleeper", "--grace-period=2"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "deleted in {took:?}, before the grace period ended"
    );
    assert!(took < Duration::from_secs(15), "deletion took {took:?}");
    cluster.wait_for("the containers to be removed", Duration::from_secs(10), || {
        cluster.runtime_containers() == 0
    });
}

#[test]
fn restart_policy_never_ends_in_succeeded_or_failed_with_the_exit() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&[
        "run",
        "ok",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "echo done > /dev/termination-log",
    ]);
    s.ok(&[
        "run",
        "bad",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    cluster.wait_phase("ok", "Succeeded", Duration::from_secs(60));
    cluster.wait_phase("bad", "Failed", Duration::from_secs(60));
    let ok = |path: &str| cluster.pod_field("ok", path);
    assert_eq!(
        ok("{.status.containerStatuses[0].state.terminated.reason}"),
        "Completed"
    );
    assert_eq!(
        ok("{.status.containerStatuses[0].state.terminated.exitCode}"),
        "0"
    );
    assert_eq!(
        ok("{.status.containerStatuses[0].state.terminated.message}"),
        "done\n"
    );
    assert_eq!(
        ok("{.status.conditions[?(@.type==\"Ready\")].reason}"),
        "PodCompleted"
    );
    let bad = |path: &str| cluster.pod_field("bad", path);
    assert_eq!(
        bad("{.status.containerStatuses[0].state.terminated.reason}"),
        "Error"
    );
    assert_eq!(
        bad("{.status.containerStatuses[0].state.terminated.exitCode}"),
        "3"
    );
}

#[test]
fn init_containers_run_in_order_before_the_app_containers() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let mount = "volumeMounts: [{name: work, mountPath: /work}]";
    s.create(
        "init.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: init-order}}
spec:
  restartPolicy: Never
  volumes: [{{name: work, emptyDir: {{}}}}]
  initContainers:
  - {{name: first, image: busybox, command: [sh, -c, 'sleep 4; echo first >> /work/order'], {mount}}}
  - {{name: second, image: busybox, command: [sh, -c, 'echo second >> /work/order'], {mount}}}
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'echo main >> /work/order; cat /work/order > /dev/termination-log'], {mount}}}
"
        ),
    );
    cluster.wait_for("the first init container to run", Duration::from_secs(60), || {
        !cluster
            .pod_field(
                "init-order",
                "{.status.initContainerStatuses[0].state.running.startedAt}",
            )
            .is_empty()
    });
    let field = |path: &str| cluster.pod_field("init-order", path);
    assert_eq!(field("{.status.phase}"), "Pending");
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Initialized\")].status}"),
        "False"
    );
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Initialized\")].message}"),
        "containers with incomplete status: [first second]"
    );
    assert_eq!(
        field("{.status.initContainerStatuses[1].state.waiting.reason}"),
        "PodInitializing"
    );
    assert_eq!(
        field("{.status.containerStatuses[0].state.waiting.reason}"),
        "PodInitializing"
    );
    cluster.wait_phase("init-order", "Succeeded", Duration::from_secs(60));
    assert_eq!(
        field("{.status.containerStatuses[0].state.terminated.message}"),
        "first\nsecond\nmain\n"
    );
    assert_eq!(
        field("{.status.initContainerStatuses[*].state.terminated.reason}"),
        "Completed Completed"
    );
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Initialized\")].status}"),
        "True"
    );
}

#[test]
fn containers_of_a_pod_share_localhost_an_empty_dir_and_the_hostname() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let mount = "volumeMounts: [{name: shared, mountPath: /shared}]";
    s.create(
        "pair.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: pair}}
spec:
  restartPolicy: Never
  volumes: [{{name: shared, emptyDir: {{}}}}]
  containers:
  - name: server
    image: busybox
    command: [sh, -c, 'echo from-server > /shared/note; while true; do echo pong | nc -l -p 8080; done']
    {mount}
  - name: client
    image: busybox
    command: [sh, -c, 'until echo ping | nc 127.0.0.1 8080 > /tmp/out && [ -s /tmp/out ]; do sleep 0.2; done; cat /tmp/out /shared/note > /dev/termination-log; hostname >> /dev/termination-log']
    {mount}
"
        ),
    );
    cluster.wait_for("the client to finish", Duration::from_secs(60), || {
        cluster.pod_field(
            "pair",
            "{.status.containerStatuses[?(@.name==\"client\")].state.terminated.exitCode}",
        ) == "0"
    });
    assert_eq!(
        cluster.pod_field(
            "pair",
            "{.status.containerStatuses[?(@.name==\"client\")].state.terminated.message}"
        ),
        "pong\nfrom-server\npair\n"
    );
    // The server keeps running: the pod too.
    assert_eq!(cluster.pod_field("pair", "{.status.phase}"), "Running");
    assert_eq!(
        cluster.pod_field("pair", "{.status.conditions[?(@.type==\"Ready\")].message}"),
        "containers with unready status: [client]"
    );
}

#[test]
fn a_crashing_container_backs_off_doubling() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&[
        "run",
        "crasher",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "echo oops > /dev/termination-log; exit 1",
    ]);
    cluster.wait_for("the first back-off", Duration::from_secs(60), || {
        cluster.pod_field("crasher", "{.status.containerStatuses[0].state.waiting.reason}")
            == "CrashLoopBackOff"
    });
    let field = |path: &str| cluster.pod_field("crasher", path);
    let message = field("{.status.containerStatuses[0].state.waiting.message}");
    assert!(
        message.starts_with("back-off 10s restarting failed container=crasher pod=crasher_default("),
        "{message}"
    );
    assert_eq!(
        field("{.status.containerStatuses[0].lastState.terminated.exitCode}"),
        "1"
    );
    assert_eq!(
        field("{.status.containerStatuses[0].lastState.terminated.message}"),
        "oops\n"
    );
    assert_eq!(field("{.status.phase}"), "Running");
    assert_eq!(field("{.status.containerStatuses[0].ready}"), "false");
    let restarts: u32 = field("{.status.containerStatuses[0].restartCount}")
        .parse()
        .unwrap();
    // After 10 s it runs again, fails again, and waits twice as long.
    cluster.wait_for("the second back-off", Duration::from_secs(40), || {
        field("{.status.containerStatuses[0].state.waiting.message}").starts_with("back-off 20s")
    });
    let later: u32 = field("{.status.containerStatuses[0].restartCount}")
        .parse()
        .unwrap();
    assert_eq!(later, restarts + 1);
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crasher,reason=BackOff",
        "-o",
        "jsonpath={.items[0].message}",
    ]);
    assert!(
        events.starts_with("Back-off restarting failed container crasher in pod crasher_default("),
        "{events}"
    );
}

#[test]
fn a_memory_hog_is_oom_killed() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "hog.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: busybox
    command: [sh, -c, 'head -c 300m /dev/zero | tail']
    resources: {limits: {memory: 32Mi}}
",
    );
    cluster.wait_phase("hog", "Failed", Duration::from_secs(60));
    let field = |path: &str| cluster.pod_field("hog", path);
    assert_eq!(
        field("{.status.containerStatuses[0].state.terminated.reason}"),
        "OOMKilled"
    );
    assert_eq!(
        field("{.status.containerStatuses[0].state.terminated.exitCode}"),
        "137"
    );
    assert_eq!(field("{.status.qosClass}"), "Burstable");
}

#[test]
fn a_missing_image_gives_err_image_pull_then_image_pull_back_off() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&["run", "ghost", "--image=busybox:no-such-tag"]);
    cluster.wait_for("ErrImagePull", Duration::from_secs(60), || {
        cluster.pod_field("ghost", "{.status.containerStatuses[0].state.waiting.reason}") == "ErrImagePull"
    });
    let message = cluster.pod_field("ghost", "{.status.containerStatuses[0].state.waiting.message}");
    assert!(message.starts_with("rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/library/busybox:no-such-tag\""), "{message}");
    cluster.wait_for("ImagePullBackOff", Duration::from_secs(30), || {
        cluster.pod_field("ghost", "{.status.containerStatuses[0].state.waiting.reason}")
            == "ImagePullBackOff"
    });
    let message = cluster.pod_field("ghost", "{.status.containerStatuses[0].state.waiting.message}");
    assert!(
        message.starts_with("Back-off pulling image \"busybox:no-such-tag\": ErrImagePull: rpc error"),
        "{message}"
    );
    assert_eq!(cluster.pod_field("ghost", "{.status.phase}"), "Pending");
    s.ok(&[
        "run",
        "never",
        "--image=busybox:absent",
        "--image-pull-policy=Never",
    ]);
    cluster.wait_for("ErrImageNeverPull", Duration::from_secs(30), || {
        cluster.pod_field("never", "{.status.containerStatuses[0].state.waiting.reason}")
            == "ErrImageNeverPull"
    });
    assert_eq!(
        cluster.pod_field("never", "{.status.containerStatuses[0].state.waiting.message}"),
        "Container image \"busybox:absent\" is not present with pull policy of Never"
    );
}

/// Everything of this node's pods the host could still hold: mounts, shim processes and cgroups
/// of the given pod uids, pod addresses, veth interfaces.
fn leftovers(cluster: &PodCluster, uids: &[String]) -> Vec<String> {
    let data = cluster.server.dir.path().join("data");
    let data = data.to_str().unwrap();
    let mut found = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(data))
            .map(|l| format!("mount: {l}")),
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(data) && !cmdline.contains(" server ") {
            found.push(format!(
                "process {}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    let cgroups = std::process::Command::new("find")
        .args(["/sys/fs/cgroup", "-type", "d", "-name", "pod*"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&cgroups.stdout).lines() {
        if uids.iter().any(|uid| line.contains(uid.as_str())) {
            found.push(format!("cgroup: {line}"));
        }
    }
    let networks = cluster.agent_dir().join("cni/networks");
    for network in std::fs::read_dir(networks).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(network.path()).unwrap().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                found.push(format!("allocated address: {name}"));
            }
        }
    }
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    found.extend(
        String::from_utf8_lossy(&links.stdout)
            .lines()
            .filter(|l| l.contains("veth"))
            .map(|l| format!("link: {l}")),
    );
    for dir in ["runtime/containers", "runtime/sandboxes", "pods"] {
        for entry in std::fs::read_dir(cluster.agent_dir().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            found.push(format!("{dir}: {}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn a_hundred_pods_created_and_deleted_leave_nothing_behind() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let mut uids = Vec::new();
    for round in 0..5 {
        let manifest: String = (0..20)
            .map(|i| {
                format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: cycle-{round}-{i}, labels: {{cycle: \"{round}\"}}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  volumes: [{{name: scratch, emptyDir: {{}}}}]\n  containers:\n  - {{name: c, image: busybox, command: [sleep, '3600'], volumeMounts: [{{name: scratch, mountPath: /scratch}}]}}\n"
                )
            })
            .collect();
        s.create(&format!("round-{round}.yaml"), &manifest);
        cluster.wait_for(
            &format!("round {round}'s pods to run"),
            Duration::from_secs(120),
            || {
                let phases = s.ok(&[
                    "get",
                    "pods",
                    "-l",
                    &format!("cycle={round}"),
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ]);
                phases.split_whitespace().filter(|p| *p == "Running").count() == 20
            },
        );
        let ids = s.ok(&[
            "get",
            "pods",
            "-l",
            &format!("cycle={round}"),
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ]);
        uids.extend(ids.split_whitespace().map(str::to_owned));
        if round == 0 {
            // The check sees what running pods hold.
            let held = leftovers(&cluster, &uids);
            for kind in [
                "mount:",
                "process",
                "cgroup:",
                "allocated address:",
                "link:",
                "runtime/sandboxes:",
            ] {
                assert!(
                    held.iter().any(|l| l.starts_with(kind)),
                    "no {kind} found for running pods in {held:#?}"
                );
            }
        }
        s.ok(&["delete", "pods", "-l", &format!("cycle={round}"), "--timeout=60s"]);
    }
    assert_eq!(uids.len(), 100);
    cluster.wait_for("the node to be clean", Duration::from_secs(30), || {
        leftovers(&cluster, &uids).is_empty()
    });
}

#[test]
fn a_failing_liveness_probe_restarts_the_container_and_readiness_gates_ready() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "probed.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  containers:
  - name: live
    image: busybox
    command: [sh, -c, 'touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600']
    livenessProbe: {exec: {command: [cat, /tmp/healthy]}, periodSeconds: 1, failureThreshold: 2}
  - name: web
    image: busybox
    command: [sh, -c, 'mkdir /www; (sleep 4; echo ok > /www/index.html) & httpd -f -p 8080 -h /www']
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
",
    );
    cluster.wait_phase("probed", "Running", Duration::from_secs(60));
    let field = |path: &str| cluster.pod_field("probed", path);
    assert_eq!(
        field("{.status.containerStatuses[?(@.name==\"web\")].ready}"),
        "false"
    );
    assert_eq!(
        field("{.status.conditions[?(@.type==\"Ready\")].status}"),
        "False"
    );
    cluster.wait_for("readiness", Duration::from_secs(30), || {
        field("{.status.containerStatuses[?(@.name==\"web\")].ready}") == "true"
    });
    cluster.wait_for("the liveness restart", Duration::from_secs(60), || {
        field("{.status.containerStatuses[?(@.name==\"live\")].restartCount}") == "1"
    });
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(
            "Unhealthy: Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory"
        ),
        "{events}"
    );
    assert!(
        events.contains("Killing: Container live failed liveness probe, will be restarted"),
        "{events}"
    );
    assert!(
        events.contains("Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404"),
        "{events}"
    );
}

#[test]
fn deletion_runs_the_pre_stop_hook_then_sigterm_within_the_grace_period() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let host = tempfile::tempdir().unwrap();
    s.create(
        "graceful.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  volumes: [{{name: host, hostPath: {{path: {}}}}}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'trap \"echo term >> /host/log; exit 0\" TERM; while true; do sleep 0.1; done']
    lifecycle: {{preStop: {{exec: {{command: [sh, -c, 'echo prestop >> /host/log; sleep 1']}}}}}}
    volumeMounts: [{{name: host, mountPath: /host}}]
",
            host.path().display()
        ),
    );
    cluster.wait_phase("graceful", "Running", Duration::from_secs(60));
    let started = Instant::now();
    s.ok(&["delete", "pod", "graceful"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "the preStop hook's second was skipped: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the container did not stop at SIGTERM: {took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("log")).unwrap(),
        "prestop\nterm\n"
    );
}

#[test]
fn a_restarted_agent_adopts_its_running_pods_and_cleans_up_deleted_ones() {
    let mut cluster = PodCluster::start();
    cluster
        .server
        .ok(&["run", "keeper", "--image=busybox", "--", "sleep", "3600"]);
    cluster
        .server
        .ok(&["run", "goner", "--image=busybox", "--", "sleep", "3600"]);
    cluster.wait_phase("keeper", "Running", Duration::from_secs(60));
    cluster.wait_phase("goner", "Running", Duration::from_secs(60));
    let before = |c: &PodCluster| {
        (
            c.pod_field("keeper", "{.status.containerStatuses[0].containerID}"),
            c.pod_field("keeper", "{.status.containerStatuses[0].imageID}"),
            c.pod_field("keeper", "{.status.podIP}"),
        )
    };
    let running = before(&cluster);
    // The agent goes away with the server; the containers stay. While it is gone, one pod is
    // force-deleted from the API.
    cluster.server.restart();
    cluster
        .server
        .ok(&["delete", "pod", "goner", "--grace-period=0", "--force"]);
    cluster.wait_for(
        "the deleted pod's containers to go",
        Duration::from_secs(30),
        || cluster.runtime_containers() == 1,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        before(&cluster),
        running,
        "the running pod was not adopted as it was"
    );
    assert_eq!(
        cluster.pod_field("keeper", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    assert_eq!(cluster.pod_field("keeper", "{.status.phase}"), "Running");
}

#[test]
fn image_garbage_collection_removes_unused_images_when_the_disk_is_full() {
    // Thresholds of 0 %: the disk is always "full", every unused image old enough goes.
    let cluster = PodCluster::start_with(&[
        "--image-gc-high-threshold=0",
        "--image-gc-low-threshold=0",
        "--image-gc-period=1s",
        "--image-minimum-gc-age=3s",
    ]);
    let s = &cluster.server;
    s.ok(&["run", "user", "--image=busybox", "--", "sleep", "3600"]);
    cluster.wait_phase("user", "Running", Duration::from_secs(60));
    let data = cluster.server.dir.path().join("data");
    let registries = data.join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
            cluster.registry.host()
        ),
    )
    .unwrap();
    let rkube = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    rkube(&[
        "image",
        "pull",
        "--registry-config",
        registries.to_str().unwrap(),
        "nginx:latest",
    ]);
    s.ok(&["get", "node"]);
    assert!(rkube(&["image", "ls"]).contains("docker.io/library/nginx "));
    cluster.wait_for(
        "the unused image to be collected",
        Duration::from_secs(30),
        || !rkube(&["image", "ls"]).contains("docker.io/library/nginx "),
    );
    // The image the running pod uses stays; the node says it could not free enough.
    assert!(rkube(&["image", "ls"]).contains("docker.io/library/busybox "));
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=ImageGCFailed",
        "-o",
        "jsonpath={.items[0].message}",
    ]);
    assert!(
        events.starts_with("Failed to garbage collect required amount of images."),
        "{events}"
    );
}

#[test]
fn security_context_and_resources_reach_the_container_and_its_cgroups() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "secure.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: secure}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 3000}
  containers:
  - name: check
    image: busybox
    command: [sh, -c, 'id -u > /dev/termination-log; id -g >> /dev/termination-log; touch /x 2>> /dev/termination-log; grep CapEff /proc/self/status >> /dev/termination-log']
    securityContext: {readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    resources: {limits: {cpu: 250m, memory: 32Mi}}
  - name: keep
    image: busybox
    command: [sleep, '3600']
    resources: {limits: {cpu: 250m, memory: 32Mi}}
",
    );
    cluster.wait_for("the check", Duration::from_secs(60), || {
        cluster.pod_field(
            "secure",
            "{.status.containerStatuses[?(@.name==\"check\")].state.terminated.exitCode}",
        ) == "0"
    });
    assert_eq!(
        cluster.pod_field(
            "secure",
            "{.status.containerStatuses[?(@.name==\"check\")].state.terminated.message}"
        ),
        "1000\n3000\ntouch: /x: Read-only file system\nCapEff:\t0000000000000000\n"
    );
    assert_eq!(cluster.pod_field("secure", "{.status.qosClass}"), "Guaranteed");
    let uid = cluster.pod_field("secure", "{.metadata.uid}");
    // Guaranteed pods sit right under kubepods, limited to the sum of their containers'.
    let pod_cgroup = |controller: &str, file: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/kubepods/pod{uid}/{file}"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|e| format!("{e}"))
    };
    assert_eq!(
        pod_cgroup("memory", "memory.limit_in_bytes"),
        (64 << 20).to_string()
    );
    assert_eq!(pod_cgroup("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(pod_cgroup("cpu", "cpu.shares"), "512");
}

#[test]
fn host_network_pods_use_the_nodes_address_and_on_failure_restarts_only_failures() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "host.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: host}
spec:
  hostNetwork: true
  containers:
  - {name: c, image: busybox, command: [sleep, '3600']}
---
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: OnFailure
  volumes: [{name: state, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'if [ -e /state/tried ]; then exit 0; fi; touch /state/tried; exit 7']
    volumeMounts: [{name: state, mountPath: /state}]
",
    );
    cluster.wait_phase("host", "Running", Duration::from_secs(60));
    assert_eq!(cluster.pod_field("host", "{.status.podIP}"), NODE_IP);
    cluster.wait_phase("once", "Succeeded", Duration::from_secs(60));
    assert_eq!(
        cluster.pod_field("once", "{.status.containerStatuses[0].restartCount}"),
        "1"
    );
    assert_eq!(
        cluster.pod_field(
            "once",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "7"
    );
}

#[test]
fn config_maps_secrets_and_the_downward_api_reach_env_and_files_and_follow_updates() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=greeting=hello",
        "--from-literal=color=blue",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    s.create(
        "reader.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: reader, labels: {app: reader, tier: test}}
spec:
  restartPolicy: Never
  volumes:
  - {name: cfg, configMap: {name: settings}}
  - {name: sec, secret: {secretName: creds}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: snapshot
    image: busybox
    command: [sh, -c, 'echo \"$GREETING $PASSWORD $POD_NAME $MEMORY $CFG_color $COMBINED\" > /dev/termination-log; cat /cfg/greeting /sec/password >> /dev/termination-log; echo >> /dev/termination-log; cat /info/labels >> /dev/termination-log']
    resources: {limits: {memory: 64Mi}}
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MEMORY, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: COMBINED, value: '$(GREETING)-$(POD_NAME)'}
    envFrom: [{prefix: CFG_, configMapRef: {name: settings}}]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
  - name: watcher
    image: busybox
    command: [sh, -c, 'until grep -q updated /cfg/greeting; do sleep 0.2; done; cat /cfg/greeting > /dev/termination-log']
    volumeMounts: [{name: cfg, mountPath: /cfg}]
",
    );
    cluster.wait_for("the snapshot", Duration::from_secs(60), || {
        cluster.pod_field(
            "reader",
            "{.status.containerStatuses[?(@.name==\"snapshot\")].state.terminated.exitCode}",
        ) == "0"
    });
    assert_eq!(
        cluster.pod_field(
            "reader",
            "{.status.containerStatuses[?(@.name==\"snapshot\")].state.terminated.message}"
        ),
        "hello s3cret reader 64 blue hello-reader\nhellos3cret\napp=\"reader\"\ntier=\"test\""
    );
    s.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"greeting":"updated"}}"#,
    ]);
    let changed = Instant::now();
    cluster.wait_for(
        "the mounted file to follow the ConfigMap",
        Duration::from_secs(30),
        || {
            cluster.pod_field(
                "reader",
                "{.status.containerStatuses[?(@.name==\"watcher\")].state.terminated.message}",
            ) == "updated"
        },
    );
    assert!(
        changed.elapsed() < Duration::from_secs(15),
        "propagation took {:?}",
        changed.elapsed()
    );
}

#[test]
fn a_missing_config_map_keeps_the_container_waiting_with_kubelets_reason() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    s.create(
        "missing.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: missing}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '3600']
    env: [{name: X, valueFrom: {configMapKeyRef: {name: absent, key: k}}}]
",
    );
    cluster.wait_for("CreateContainerConfigError", Duration::from_secs(60), || {
        cluster.pod_field("missing", "{.status.containerStatuses[0].state.waiting.reason}")
            == "CreateContainerConfigError"
    });
    assert_eq!(
        cluster.pod_field("missing", "{.status.containerStatuses[0].state.waiting.message}"),
        "configmap \"absent\" not found"
    );
    s.ok(&["create", "configmap", "absent", "--from-literal=k=v"]);
    cluster.wait_phase("missing", "Running", Duration::from_secs(30));
}

#[test]
fn image_pull_secrets_give_credentials_for_a_private_registry() {
    let cluster = PodCluster::start();
    let s = &cluster.server;
    let private = testkit::registry::DockerRegistry::start_with_htpasswd("puller", "s3cret").unwrap();
    let image = testkit::test_image("busybox-oci.tar");
    private
        .push(&format!("oci-archive:{}", image.display()), "team/tool:1")
        .unwrap();
    let reference = format!("{}/team/tool:1", private.host());
    // Without credentials the registry refuses.
    s.ok(&[
        "run",
        "anonymous",
        &format!("--image={reference}"),
        "--",
        "sleep",
        "3600",
    ]);
    cluster.wait_for("ErrImagePull", Duration::from_secs(60), || {
        cluster.pod_field("anonymous", "{.status.containerStatuses[0].state.waiting.reason}")
            == "ErrImagePull"
    });
    let message = cluster.pod_field(
        "anonymous",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        message.contains("401 Unauthorized") || message.contains("unauthorized"),
        "{message}"
    );
    // A dockerconfigjson Secret named in imagePullSecrets.
    s.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", private.host()),
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]);
    s.create(
        "authorized.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: authorized}}\nspec:\n  imagePullSecrets: [{{name: regcred}}]\n  containers:\n  - {{name: c, image: '{reference}', command: [sleep, '3600']}}\n"
        ),
    );
    cluster.wait_phase("authorized", "Running", Duration::from_secs(60));
    assert!(
        cluster
            .pod_field("authorized", "{.status.containerStatuses[0].imageID}")
            .starts_with(&format!("{}/team/tool@sha256:", private.host()))
    );
}
