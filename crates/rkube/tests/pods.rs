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
