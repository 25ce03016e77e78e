//! Probes and lifecycle hooks against real containers (runc, busybox; root): exec, httpGet
//! (busybox httpd in the pod's netns) and tcpSocket handlers with upstream's output texts, and
//! probe workers' thresholds, initial delay, startup gating and events.

mod common;

use std::time::{Duration, Instant, SystemTime};

use agent::probes::lifecycle::{pod_description, run_hook};
use agent::probes::{
    ContainerProbes, Handler, Outcome, ProbeKind, Purpose, WorkerConfig, run_handler, spawn,
};
use clientkit::events::EventType;
use common::{Events, Harness};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, HTTPHeader, LifecycleHandler, Probe, SleepAction,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use runtime::Sandbox;

/// Not a test: the runtime runs this binary with this test's name as its shim.
#[test]
fn shim_hook() {
    common::shim_hook();
}

fn exec(command: &[&str]) -> ExecAction {
    ExecAction {
        command: Some(command.iter().map(|s| s.to_string()).collect()),
    }
}

fn http_get(path: &str, port: IntOrString) -> HTTPGetAction {
    HTTPGetAction {
        path: Some(path.into()),
        port,
        ..Default::default()
    }
}

fn spec(name: &str) -> Container {
    Container {
        name: name.into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// busybox httpd on :8080 serving a page, a directory (redirected to its slash), and CGI
/// scripts: the request's User-Agent, a redirect to another host, a slow answer.
const HTTPD: &str = r#"
mkdir -p /www/sub /www/cgi-bin
echo ok > /www/index.html
echo sub > /www/sub/index.html
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$HTTP_USER_AGENT $HTTP_X_CUSTOM"\n' > /www/cgi-bin/ua
printf '#!/bin/sh\necho "Status: 302 Found"\necho "Location: http://192.0.2.1:81/elsewhere"\necho\necho moved\n' > /www/cgi-bin/away
printf '#!/bin/sh\nsleep 5\necho "Content-Type: text/plain"\necho\necho late\n' > /www/cgi-bin/slow
chmod +x /www/cgi-bin/*
exec httpd -f -p 8080 -h /www
"#;

fn httpd(h: &Harness) -> (Sandbox, String) {
    let pod = h.sandbox("web");
    let id = h.run(&pod, &h.busybox(&pod, "web", HTTPD));
    h.wait_listening(&pod, 8080);
    (pod, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_handler_success_failure_timeout_and_missing_container() {
    let h = Harness::new();
    let pod = h.sandbox("exec");
    let id = h.run(&pod, &h.busybox(&pod, "c", "sleep 3600"));
    let target = h.target(&pod, &id);
    let c = spec("c");
    // Generous, so that a loaded machine's slow `runc exec` is not a timeout.
    let one = Some(Duration::from_secs(5));

    let ok = exec(&["sh", "-c", "echo fine"]);
    let outcome = run_handler(Handler::Exec(&ok), Purpose::Probe, &c, &target, one).await;
    assert_eq!(outcome, Outcome::Success("fine\n".into()));

    // Output is stdout then stderr, as kubelet's RunInContainer appends them.
    let fail = exec(&["sh", "-c", "echo err >&2; echo out; exit 3"]);
    let outcome = run_handler(Handler::Exec(&fail), Purpose::Probe, &c, &target, one).await;
    assert_eq!(outcome, Outcome::Failure("out\nerr\n".into()));

    // At most 10 KiB of output is kept.
    let loud = exec(&["sh", "-c", "head -c 20000 /dev/zero | tr '\\0' a"]);
    let outcome = run_handler(Handler::Exec(&loud), Purpose::Probe, &c, &target, one).await;
    assert_eq!(outcome, Outcome::Success("a".repeat(10 * 1024)));

    let slow = exec(&["sleep", "30"]);
    let start = Instant::now();
    let outcome = run_handler(
        Handler::Exec(&slow),
        Purpose::Probe,
        &c,
        &target,
        Some(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(outcome, Outcome::Failure("command \"sleep 30\" timed out".into()));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    // The timed-out command was killed, not left behind in the container.
    let ps = exec(&["sh", "-c", "ps -o args | grep -c '^sleep 30' || true"]);
    let outcome = run_handler(Handler::Exec(&ps), Purpose::Probe, &c, &target, one).await;
    assert_eq!(outcome, Outcome::Success("0\n".into()));

    let mut gone = target.clone();
    gone.container_id = "nosuchcontainer".into();
    let outcome = run_handler(Handler::Exec(&ok), Purpose::Probe, &c, &gone, one).await;
    assert!(matches!(outcome, Outcome::Error(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_get_handler_statuses_redirects_headers_and_timeouts() {
    let h = Harness::new();
    let (pod, id) = httpd(&h);
    let target = h.target(&pod, &id);
    let c = spec("web");
    let one = Some(Duration::from_secs(3));
    let probe = |action: HTTPGetAction| {
        let target = target.clone();
        let c = c.clone();
        async move { run_handler(Handler::HttpGet(&action), Purpose::Probe, &c, &target, one).await }
    };

    assert_eq!(
        probe(http_get("/", IntOrString::Int(8080))).await,
        Outcome::Success("ok\n".into())
    );
    // By the container's port name; a directory's redirect to itself with a slash is followed.
    assert_eq!(
        probe(http_get("/sub", IntOrString::String("http".into()))).await,
        Outcome::Success("sub\n".into())
    );
    assert_eq!(
        probe(http_get("/missing", IntOrString::Int(8080))).await,
        Outcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    // kubelet's User-Agent, and the handler's own headers.
    let mut with_header = http_get("/cgi-bin/ua", IntOrString::Int(8080));
    with_header.http_headers = Some(vec![HTTPHeader {
        name: "x-custom".into(),
        value: "yes".into(),
    }]);
    assert_eq!(
        probe(with_header).await,
        Outcome::Success("kube-probe/1.33 yes\n".into())
    );
    // A redirect to another host ends the probe: success with a warning.
    assert_eq!(
        probe(http_get("/cgi-bin/away", IntOrString::Int(8080))).await,
        Outcome::Warning("Probe terminated redirects, Response body: moved\n".into())
    );
    let start = Instant::now();
    assert_eq!(
        probe(http_get("/cgi-bin/slow", IntOrString::Int(8080))).await,
        Outcome::Failure(
            "Get \"http://127.0.0.1:8080/cgi-bin/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                .into()
        )
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(
        probe(http_get("/", IntOrString::Int(8081))).await,
        Outcome::Failure(
            "Get \"http://127.0.0.1:8081/\": dial tcp 127.0.0.1:8081: connect: connection refused".into()
        )
    );
    // A port name the container does not declare cannot run at all.
    assert!(matches!(
        probe(http_get("/", IntOrString::String("nope".into()))).await,
        Outcome::Error(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_socket_handler_open_and_closed() {
    let h = Harness::new();
    let (pod, id) = httpd(&h);
    let target = h.target(&pod, &id);
    let c = spec("web");
    let one = Some(Duration::from_secs(1));
    let open = TCPSocketAction {
        port: IntOrString::String("http".into()),
        ..Default::default()
    };
    assert!(
        run_handler(Handler::TcpSocket(&open), Purpose::Probe, &c, &target, one)
            .await
            .is_success()
    );
    let closed = TCPSocketAction {
        port: IntOrString::Int(9090),
        ..Default::default()
    };
    assert_eq!(
        run_handler(Handler::TcpSocket(&closed), Purpose::Probe, &c, &target, one).await,
        Outcome::Failure("dial tcp 127.0.0.1:9090: connect: connection refused".into())
    );
}

fn probe_of(action: ExecAction, period: i32, success: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(action),
        period_seconds: Some(period),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        // Generous: a loaded machine's `runc exec` must not turn into a timeout here.
        timeout_seconds: Some(5),
        ..Default::default()
    }
}

async fn wait_result(
    rx: &mut tokio::sync::watch::Receiver<Option<bool>>,
    want: Option<bool>,
    within: Duration,
) {
    tokio::time::timeout(within, rx.wait_for(|r| *r == want))
        .await
        .unwrap_or_else(|_| panic!("the result did not become {want:?} within {within:?}"))
        .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_probe_with_thresholds_and_events() {
    let h = Harness::new();
    let pod = h.sandbox("ready");
    let id = h.run(&pod, &h.busybox(&pod, "c", "sleep 3600"));
    let target = h.target(&pod, &id);
    let events = Events::default();
    let handle = spawn(WorkerConfig {
        kind: ProbeKind::Readiness,
        probe: probe_of(exec(&["sh", "-c", "cat /tmp/ready"]), 1, 2, 1),
        container: spec("c"),
        target: target.clone(),
        started_at: SystemTime::now(),
        startup: None,
        events: events.sink(),
        wake: None,
    });
    let mut rx = handle.subscribe();
    assert_eq!(handle.result(), Some(false), "readiness starts false");
    let deadline = Instant::now() + Duration::from_secs(8);
    while events.all().is_empty() {
        assert!(Instant::now() < deadline, "no event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        events.all()[0],
        (
            EventType::Warning,
            "Unhealthy".to_owned(),
            "Readiness probe failed: cat: can't open '/tmp/ready': No such file or directory\n".to_owned()
        )
    );

    let make = exec(&["sh", "-c", "echo yes > /tmp/ready"]);
    let ran = run_handler(Handler::Exec(&make), Purpose::Probe, &spec("c"), &target, None).await;
    assert!(ran.is_success());
    let start = Instant::now();
    wait_result(&mut rx, Some(true), Duration::from_secs(8)).await;
    // successThreshold 2: two successes one period apart.
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );

    let remove = exec(&["rm", "/tmp/ready"]);
    assert!(
        run_handler(Handler::Exec(&remove), Purpose::Probe, &spec("c"), &target, None)
            .await
            .is_success()
    );
    wait_result(&mut rx, Some(false), Duration::from_secs(8)).await;

    // A container that is no longer running is not ready, whatever its probe said last.
    let make = exec(&["sh", "-c", "echo yes > /tmp/ready"]);
    assert!(
        run_handler(Handler::Exec(&make), Purpose::Probe, &spec("c"), &target, None)
            .await
            .is_success()
    );
    wait_result(&mut rx, Some(true), Duration::from_secs(8)).await;
    let runtime = h.runtime.clone();
    let stopped = id.clone();
    tokio::task::spawn_blocking(move || {
        runtime::Runtime::stop_container(&*runtime, &stopped, Duration::from_secs(1))
    })
    .await
    .unwrap()
    .unwrap();
    wait_result(&mut rx, Some(false), Duration::from_secs(8)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn liveness_fails_after_the_failure_threshold_then_holds() {
    let h = Harness::new();
    let pod = h.sandbox("live");
    let id = h.run(&pod, &h.busybox(&pod, "c", "sleep 3600"));
    let events = Events::default();
    let start = Instant::now();
    let handle = spawn(WorkerConfig {
        kind: ProbeKind::Liveness,
        probe: probe_of(exec(&["sh", "-c", "echo dead; exit 1"]), 1, 1, 3),
        container: spec("c"),
        target: h.target(&pod, &id),
        started_at: SystemTime::now(),
        startup: None,
        events: events.sink(),
        wake: None,
    });
    let mut rx = handle.subscribe();
    assert_eq!(handle.result(), Some(true), "liveness starts true");
    wait_result(&mut rx, Some(false), Duration::from_secs(12)).await;
    // Failures at 0 s, 1 s and 2 s: the third reaches failureThreshold 3.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(
        events.messages(),
        vec!["Liveness probe failed: dead\n".to_owned(); 3]
    );
    // On hold until the container is replaced: no more probes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events.all().len(), 3);
    assert_eq!(handle.result(), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_delay_and_startup_gating() {
    let h = Harness::new();
    let pod = h.sandbox("startup");
    let id = h.run(&pod, &h.busybox(&pod, "c", "sleep 3600"));
    let target = h.target(&pod, &id);
    let events = Events::default();
    let started_at = SystemTime::now();
    let start = Instant::now();

    // Readiness with initialDelaySeconds 2 succeeds from the first probe after 2 s.
    let mut delayed = probe_of(exec(&["true"]), 1, 1, 1);
    delayed.initial_delay_seconds = Some(2);
    let readiness = spawn(WorkerConfig {
        kind: ProbeKind::Readiness,
        probe: delayed,
        container: spec("c"),
        target: target.clone(),
        started_at,
        startup: None,
        events: events.sink(),
        wake: None,
    });

    // Liveness that fails at once, gated on a startup probe that waits for a file.
    let startup = spawn(WorkerConfig {
        kind: ProbeKind::Startup,
        probe: probe_of(exec(&["test", "-f", "/tmp/started"]), 1, 1, 30),
        container: spec("c"),
        target: target.clone(),
        started_at,
        startup: None,
        events: events.sink(),
        wake: None,
    });
    let liveness = spawn(WorkerConfig {
        kind: ProbeKind::Liveness,
        probe: probe_of(exec(&["false"]), 1, 1, 1),
        container: spec("c"),
        target: target.clone(),
        started_at,
        startup: Some(startup.subscribe()),
        events: events.sink(),
        wake: None,
    });
    assert_eq!(startup.result(), None, "startup starts unknown");

    let mut ready = readiness.subscribe();
    wait_result(&mut ready, Some(true), Duration::from_secs(8)).await;
    assert!(start.elapsed() >= Duration::from_secs(2), "{:?}", start.elapsed());

    // Not started yet: liveness has not probed, whatever its probe would say.
    assert_eq!(liveness.result(), Some(true));
    assert!(
        events
            .messages()
            .iter()
            .all(|m| m.starts_with("Startup probe failed"))
    );

    let touch = exec(&["touch", "/tmp/started"]);
    assert!(
        run_handler(Handler::Exec(&touch), Purpose::Probe, &spec("c"), &target, None)
            .await
            .is_success()
    );
    let mut started = startup.subscribe();
    wait_result(&mut started, Some(true), Duration::from_secs(8)).await;
    let mut live = liveness.subscribe();
    wait_result(&mut live, Some(false), Duration::from_secs(8)).await;
    assert!(events.messages().contains(&"Liveness probe failed: ".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_hooks_exec_http_and_sleep() {
    let h = Harness::new();
    let (pod, id) = httpd(&h);
    let target = h.target(&pod, &id);
    let c = spec("web");
    let events = Events::default();
    let pod_name = pod_description("web", "default", &pod.pod_uid);

    let ok = LifecycleHandler {
        exec: Some(exec(&["sh", "-c", "echo hooked > /tmp/hook"])),
        ..Default::default()
    };
    run_hook(&ok, &c, &target, &pod_name, &events.sink())
        .await
        .unwrap();
    let check = exec(&["cat", "/tmp/hook"]);
    assert_eq!(
        run_handler(Handler::Exec(&check), Purpose::Probe, &c, &target, None).await,
        Outcome::Success("hooked\n".into())
    );

    let failing = LifecycleHandler {
        exec: Some(exec(&["sh", "-c", "echo out; echo bad >&2; exit 3"])),
        ..Default::default()
    };
    let err = run_hook(&failing, &c, &target, &pod_name, &events.sink())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        format!(
            "Exec lifecycle hook ([sh -c echo out; echo bad >&2; exit 3]) for Container \"web\" in Pod \"web_default({})\" failed - error: command 'sh -c echo out; echo bad >&2; exit 3' exited with 3: bad\n, message: \"out\\nbad\\n\"",
            pod.pod_uid
        )
    );

    // An HTTP hook succeeds on any answer, a 404 included; it fails when nothing answers.
    let http = LifecycleHandler {
        http_get: Some(http_get("/missing", IntOrString::Int(8080))),
        ..Default::default()
    };
    run_hook(&http, &c, &target, &pod_name, &events.sink())
        .await
        .unwrap();
    let nothing = LifecycleHandler {
        http_get: Some(http_get("/x", IntOrString::Int(8081))),
        ..Default::default()
    };
    assert_eq!(
        run_hook(&nothing, &c, &target, &pod_name, &events.sink())
            .await
            .unwrap_err(),
        format!(
            "HTTP lifecycle hook (/x) for Container \"web\" in Pod \"web_default({})\" failed - error: Get \"http://127.0.0.1:8081/x\": dial tcp 127.0.0.1:8081: connect: connection refused",
            pod.pod_uid
        )
    );

    let sleep = LifecycleHandler {
        sleep: Some(SleepAction { seconds: 1 }),
        ..Default::default()
    };
    let start = Instant::now();
    run_hook(&sleep, &c, &target, &pod_name, &events.sink())
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(events.all().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn container_probes_report_started_ready_and_failed_and_wake_the_pod_worker() {
    let h = Harness::new();
    let pod = h.sandbox("wired");
    let id = h.run(&pod, &h.busybox(&pod, "c", "sleep 3600"));
    let target = h.target(&pod, &id);
    let mut container = spec("c");
    container.startup_probe = Some(probe_of(exec(&["test", "-f", "/tmp/started"]), 1, 1, 30));
    container.readiness_probe = Some(probe_of(exec(&["true"]), 1, 1, 1));
    container.liveness_probe = Some(probe_of(exec(&["test", "!", "-f", "/tmp/dead"]), 1, 1, 1));
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let events = Events::default();
    let probes = ContainerProbes::start(
        &container,
        target.clone(),
        SystemTime::now(),
        events.sink(),
        Some(wake.clone()),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!probes.started() && !probes.ready() && probes.failed().is_none());

    let touch = exec(&["touch", "/tmp/started"]);
    assert!(
        run_handler(Handler::Exec(&touch), Purpose::Probe, &container, &target, None)
            .await
            .is_success()
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while !(probes.started() && probes.ready()) {
        assert!(Instant::now() < deadline, "not started and ready");
        tokio::time::timeout(Duration::from_secs(8), wake.notified())
            .await
            .expect("a wake-up");
    }

    let kill = exec(&["touch", "/tmp/dead"]);
    assert!(
        run_handler(Handler::Exec(&kill), Purpose::Probe, &container, &target, None)
            .await
            .is_success()
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    while probes.failed().is_none() {
        assert!(Instant::now() < deadline, "liveness did not fail");
        tokio::time::timeout(Duration::from_secs(8), wake.notified())
            .await
            .expect("a wake-up");
    }
    assert_eq!(probes.failed(), Some(ProbeKind::Liveness));
    assert!(events.messages().contains(&"Liveness probe failed: ".to_owned()));
}
