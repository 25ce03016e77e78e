//! The nginx and python test images (`scripts/build-test-images`, from Debian packages) run
//! with real runc in a pod sandbox of their own (root): nginx is PID 1 in the foreground and
//! serves its welcome page on :80, logging requests to stdout; python runs a program.

mod common;

use std::time::{Duration, Instant};

use agent::probes::{Handler, Outcome, Purpose, run_handler};
use common::Harness;
use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime::logs::Stream;
use runtime::{ContainerState, ContainerStatus, Runtime};

/// Not a test: the runtime runs this binary with this test's name as its shim.
#[test]
fn shim_hook() {
    common::shim_hook();
}

fn wait_exited(h: &Harness, id: &str) -> ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = h.runtime.container_status(id).unwrap();
        if status.state == ContainerState::Exited {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} still {:?}",
            status.state
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_serves_the_welcome_page_on_port_80() {
    let h = Harness::new();
    let pod = h.sandbox("nginx");
    let config = h.container(&pod, "nginx", "nginx", &[]);
    let id = h.run(&pod, &config);
    h.wait_listening(&pod, 80);
    let target = h.target(&pod, &id);
    let c = Container {
        name: "nginx".into(),
        ..Default::default()
    };
    let get = HTTPGetAction {
        path: Some("/".into()),
        port: IntOrString::Int(80),
        ..Default::default()
    };
    let outcome = run_handler(
        Handler::HttpGet(&get),
        Purpose::Probe,
        &c,
        &target,
        Some(Duration::from_secs(5)),
    )
    .await;
    let Outcome::Success(body) = outcome else {
        panic!("GET / on nginx: {outcome:?}")
    };
    assert!(body.contains("<title>Welcome to nginx!</title>"), "{body}");

    // The image's command runs as PID 1, in the foreground.
    let cmdline = ExecAction {
        command: Some(vec!["cat".into(), "/proc/1/cmdline".into()]),
    };
    let outcome = run_handler(
        Handler::Exec(&cmdline),
        Purpose::Probe,
        &c,
        &target,
        Some(Duration::from_secs(5)),
    )
    .await;
    let Outcome::Success(pid1) = outcome else {
        panic!("cat /proc/1/cmdline: {outcome:?}")
    };
    assert!(
        pid1.starts_with("nginx: master process nginx -g daemon off;"),
        "{pid1:?}"
    );

    // The access log is the container's stdout.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stdout = h.output(&config, Stream::Stdout);
        if stdout
            .iter()
            .any(|l| l.contains("\"GET / HTTP/1.1\" 200") && l.contains("kube-probe/1.33"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no access log line in {stdout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.runtime.stop_container(&id, Duration::from_secs(5)).unwrap();
}

#[test]
fn python_runs_a_program() {
    let h = Harness::new();
    let pod = h.sandbox("python");
    let config = h.container(
        &pod,
        "py",
        "python",
        &[
            "python3",
            "-c",
            "import json, http.server; print(1+1); print(json.dumps({'ok': True}))",
        ],
    );
    let id = h.run(&pod, &config);
    let status = wait_exited(&h, &id);
    assert_eq!(
        (status.exit_code, h.output(&config, Stream::Stderr)),
        (Some(0), vec![])
    );
    assert_eq!(h.output(&config, Stream::Stdout), ["2", "{\"ok\": true}"]);
}
