//! Containers run by real runc in pod sandboxes (root): logs, exit codes, process settings,
//! shared localhost, hostname, OOM kills, graceful stop, securityContext, exec, stats, and
//! survival of a runtime restart.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Harness;
use runtime::logs::Stream;
use runtime::{ContainerState, Error, ExecConfig, Mount, Resources, Runtime, SandboxConfig, SecurityConfig};

const T: Duration = Duration::from_secs(20);

/// Not a test: the runtime runs this binary with this test's name as its shim.
#[test]
fn shim_hook() {
    common::shim_hook();
}

#[test]
fn echo_hello_exits_zero_with_a_cri_log_line() {
    let h = Harness::new();
    let pod = h.sandbox("hello");
    let config = h.container(&pod, "main", "echo hello");
    let id = h.runtime.create_container(&pod.pod_uid, &config).unwrap();
    assert_eq!(
        h.runtime.container_status(&id).unwrap().state,
        ContainerState::Created
    );
    h.runtime.start_container(&id).unwrap();
    let status = h.wait_exited(&id, T);
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(0), Some("Completed"))
    );
    assert!(status.started_at.is_some() && status.finished_at >= status.started_at);
    let log = std::fs::read_to_string(&status.log_path).unwrap();
    assert!(
        status
            .log_path
            .ends_with(format!("default_hello_{}/main/0.log", pod.pod_uid))
    );
    let line = log.lines().next().unwrap();
    let (time, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "stdout F hello");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "RFC 3339 time: {time}");
    assert!(matches!(
        h.runtime.start_container(&id),
        Err(Error::WrongState { .. })
    ));
}

#[test]
fn exit_codes_and_both_streams() {
    let h = Harness::new();
    let pod = h.sandbox("codes");
    let id = h.run(&pod, &h.container(&pod, "c", "echo out; echo err >&2; exit 3"));
    let status = h.wait_exited(&id, T);
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(3), Some("Error"))
    );
    assert_eq!(h.output(&status, Stream::Stdout), ["out"]);
    assert_eq!(h.output(&status, Stream::Stderr), ["err"]);

    let mut missing = h.container(&pod, "missing", "");
    missing.command = vec!["/no/such/binary".into()];
    let id = h.runtime.create_container(&pod.pod_uid, &missing).unwrap();
    let err = h.runtime.start_container(&id).unwrap_err();
    assert!(matches!(err, Error::Start { .. }), "{err}");
    let status = h.runtime.container_status(&id).unwrap();
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(128), Some("StartError"))
    );
    assert!(status.message.unwrap().contains("/no/such/binary"));
}

#[test]
fn env_args_working_dir_and_image_cmd() {
    let h = Harness::new();
    let pod = h.sandbox("env-pod");
    let mut config = h.container(&pod, "c", "");
    config.command = vec!["sh".into(), "-c".into()];
    config.args = vec![
        "echo \"$GREETING|$0|$1|$(pwd)|$HOSTNAME|$PATH\"".into(),
        "first".into(),
        "second".into(),
    ];
    config.env = vec![("GREETING".into(), "hi there".into())];
    config.working_dir = Some("/tmp".into());
    let id = h.run(&pod, &config);
    let status = h.wait_exited(&id, T);
    assert_eq!(
        h.output(&status, Stream::Stdout),
        ["hi there|first|second|/tmp|env-pod|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );

    // No command: the image's Cmd (`sh`) with args replacing nothing else.
    let mut image_cmd = h.container(&pod, "image-cmd", "");
    image_cmd.command = vec![];
    image_cmd.args = vec!["-c".into(), "echo from image cmd".into()];
    image_cmd.image_config.entrypoint = Some(vec!["sh".into()]);
    let status = h.wait_exited(&h.run(&pod, &image_cmd), T);
    assert_eq!(h.output(&status, Stream::Stdout), ["from image cmd"]);
}

#[test]
fn containers_of_a_pod_share_localhost_hostname_and_shm() {
    let h = Harness::new();
    let pod = h.sandbox("web-0");
    let server = h.run(
        &pod,
        &h.container(
            &pod,
            "server",
            // The reply's stdin stays open a while: busybox nc hangs up when its stdin ends,
            // which could be before the client's "ping" arrived.
            "(echo pong; sleep 2) | nc -l -p 8080 > /dev/shm/got; cat /dev/shm/got",
        ),
    );
    let client = h.container(
        &pod,
        "client",
        "for i in $(seq 100); do echo ping | nc 127.0.0.1 8080 && exit 0; sleep 0.1; done; exit 1",
    );
    let client = h.run(&pod, &client);
    let client = h.wait_exited(&client, T);
    assert_eq!(client.exit_code, Some(0));
    assert_eq!(h.output(&client, Stream::Stdout), ["pong"]);
    let server = h.wait_exited(&server, T);
    assert_eq!(h.output(&server, Stream::Stdout), ["ping"]);

    let mut hostname_file = h.container(&pod, "hostname", "hostname; cat /etc/hostname; cat /dev/shm/got");
    let file = h.tmp.path().join("etc-hostname");
    std::fs::write(&file, "web-0\n").unwrap();
    hostname_file.hostname_file = Some(file);
    let status = h.wait_exited(&h.run(&pod, &hostname_file), T);
    assert_eq!(
        h.output(&status, Stream::Stdout),
        ["web-0", "web-0", "ping"],
        "hostname and the pod's /dev/shm"
    );

    // Another pod has its own network: nothing listens on its localhost.
    let other = h.sandbox("other");
    let probe = h.run(
        &other,
        &h.container(&other, "probe", "echo x | nc 127.0.0.1 8080"),
    );
    assert_ne!(h.wait_exited(&probe, T).exit_code, Some(0));
}

#[test]
fn pod_sysctls_apply_to_the_pod_namespaces_only() {
    let h = Harness::new();
    let config = |sysctls: &[(&str, &str)]| SandboxConfig {
        pod_uid: uuid::Uuid::new_v4().to_string(),
        pod_name: "sysctls".into(),
        namespace: "default".into(),
        hostname: "sysctls".into(),
        sysctls: sysctls
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let host_value = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    let pod = h.sandbox_with(config(&[
        ("net.ipv4.ip_unprivileged_port_start", "80"),
        ("kernel/shmmni", "1234"),
    ]));
    let script = "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni";
    let status = h.wait_exited(&h.run(&pod, &h.container(&pod, "c", script)), T);
    assert_eq!(h.output(&status, Stream::Stdout), ["80", "1234"]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap(),
        host_value
    );

    for bad in [
        ("kernel.hostname", "x"),
        ("net.ipv4.../../x", "1"),
        ("vm.swappiness", "1"),
    ] {
        let err = h.runtime.create_sandbox(&config(&[bad])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad:?}: {err}");
    }
    assert_eq!(
        h.runtime.list_sandboxes().unwrap().len(),
        1,
        "a refused sandbox leaves nothing"
    );
}

#[test]
fn host_network_and_host_pid_pods_share_the_host_namespaces() {
    let h = Harness::new();
    let pod = h.sandbox_with(SandboxConfig {
        pod_uid: uuid::Uuid::new_v4().to_string(),
        pod_name: "host".into(),
        namespace: "kube-system".into(),
        hostname: "ignored".into(),
        host_network: true,
        host_pid: true,
        ..Default::default()
    });
    assert!(pod.netns.is_none() && pod.uts_ns.is_none() && pod.ipc_ns.is_some());
    let id = h.run(
        &pod,
        &h.container(
            &pod,
            "c",
            "readlink /proc/self/ns/net; hostname; [ $$ != 1 ] && echo host pids",
        ),
    );
    let status = h.wait_exited(&id, T);
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        h.output(&status, Stream::Stdout),
        [
            host_net.to_string_lossy().to_string(),
            host_name.trim().to_owned(),
            "host pids".into()
        ]
    );
}

#[test]
fn memory_hog_is_oom_killed_with_137() {
    let h = Harness::new();
    let pod = h.sandbox("hog");
    let mut config = h.container(&pod, "hog", "tail /dev/zero");
    config.resources = Resources {
        memory_limit_bytes: Some(32 << 20),
        ..Default::default()
    };
    let id = h.run(&pod, &config);
    let status = h.wait_exited(&id, Duration::from_secs(60));
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(137), Some("OOMKilled"))
    );

    // A kill that is not the OOM killer's is an Error.
    let id = h.run(&pod, &h.container(&pod, "sleeper", "sleep 1000"));
    h.runtime.stop_container(&id, Duration::ZERO).unwrap();
    let status = h.runtime.container_status(&id).unwrap();
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(137), Some("Error"))
    );
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_grace_period() {
    let h = Harness::new();
    let pod = h.sandbox("stop");
    // A pid 1 without a handler ignores SIGTERM: killed after the grace period.
    let stubborn = h.run(&pod, &h.container(&pod, "stubborn", "sleep 1000"));
    let started = Instant::now();
    h.runtime
        .stop_container(&stubborn, Duration::from_millis(1500))
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited the grace period"
    );
    assert_eq!(
        h.runtime.container_status(&stubborn).unwrap().exit_code,
        Some(137)
    );

    // A handler gets SIGTERM and exits on its own, well before the grace period ends.
    let polite = h.container(
        &pod,
        "polite",
        "trap 'echo bye; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
    );
    let polite = h.run(&pod, &polite);
    h.wait_log_line(&polite, "ready", T);
    let started = Instant::now();
    h.runtime
        .stop_container(&polite, Duration::from_secs(30))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = h.runtime.container_status(&polite).unwrap();
    assert_eq!(status.exit_code, Some(3));
    assert_eq!(h.output(&status, Stream::Stdout), ["ready", "bye"]);
}

#[test]
fn security_context_user_groups_and_read_only_root() {
    let h = Harness::new();
    let pod = h.sandbox("secure");
    let mut config = h.container(&pod, "c", "id -u; id -g; id -G; touch /tmp/x && echo writable");
    config.security = SecurityConfig {
        run_as_user: Some(65534),
        run_as_group: Some(65534),
        supplemental_groups: vec![4000],
        ..Default::default()
    };
    let status = h.wait_exited(&h.run(&pod, &config), T);
    assert_eq!(
        h.output(&status, Stream::Stdout),
        ["65534", "65534", "65534 4000", "writable"]
    );

    let mut config = h.container(
        &pod,
        "ro",
        "touch /x; echo $?; echo data > /data/f && cat /data/f",
    );
    let volume = h.tmp.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    config.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: volume.clone(),
        read_only: false,
        ..Default::default()
    }];
    config.security.read_only_root_filesystem = true;
    let status = h.wait_exited(&h.run(&pod, &config), T);
    assert_eq!(h.output(&status, Stream::Stdout), ["1", "data"]);
    assert!(h.output(&status, Stream::Stderr)[0].contains("Read-only file system"));
    assert_eq!(std::fs::read_to_string(volume.join("f")).unwrap(), "data\n");

    let mut config = h.container(&pod, "ro-volume", "echo x > /data/g");
    config.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: volume,
        read_only: true,
        ..Default::default()
    }];
    assert_ne!(h.wait_exited(&h.run(&pod, &config), T).exit_code, Some(0));
}

#[test]
fn capabilities_default_added_dropped_and_privileged() {
    let h = Harness::new();
    let pod = h.sandbox("caps");
    let caps = |name: &str, security: SecurityConfig| {
        let mut config = h.container(&pod, name, "grep CapEff /proc/self/status; ls /dev | wc -l");
        config.security = security;
        let status = h.wait_exited(&h.run(&pod, &config), T);
        let out = h.output(&status, Stream::Stdout);
        (
            out[0].split_whitespace().last().unwrap().to_owned(),
            out[1].parse::<usize>().unwrap(),
        )
    };
    // The 14 default capabilities: Docker's and containerd's well-known mask.
    assert_eq!(caps("default", SecurityConfig::default()).0, "00000000a80425fb");
    let added = caps(
        "added",
        SecurityConfig {
            capabilities_add: vec!["NET_ADMIN".into()],
            capabilities_drop: vec!["KILL".into(), "CHOWN".into()],
            ..Default::default()
        },
    );
    assert_eq!(
        added.0,
        format!("{:016x}", (0xa80425fbu64 | 1 << 12) & !(1 << 5) & !1)
    );
    let (privileged, devices) = caps(
        "privileged",
        SecurityConfig {
            privileged: true,
            ..Default::default()
        },
    );
    // Privileged: every capability the runtime itself holds (this node lacks CAP_SYS_RESOURCE).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert_eq!(privileged, bounding);
    let (_, default_devices) = caps("default-again", SecurityConfig::default());
    assert!(
        devices > default_devices,
        "privileged containers see the host's devices"
    );
}

#[test]
fn exec_in_a_running_container() {
    let h = Harness::new();
    let pod = h.sandbox("exec");
    let mut config = h.container(&pod, "c", "sleep 1000");
    config.env = vec![("FROM_POD".into(), "yes".into())];
    let id = h.run(&pod, &config);

    let exec = |command: &[&str], tty: bool| {
        let config = ExecConfig {
            command: command.iter().map(|s| s.to_string()).collect(),
            tty,
            terminal_size: tty.then_some((40, 100)),
            env: vec![("EXTRA".into(), "1".into())],
        };
        h.runtime.exec(&id, &config).unwrap()
    };
    let out = exec(
        &["sh", "-c", "echo $FROM_POD$EXTRA; echo oops >&2; exit 5"],
        false,
    )
    .child
    .wait_with_output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "yes1\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.status.code(), Some(5));

    let mut cat = exec(&["cat"], false);
    cat.child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = cat.child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // A terminal of the size asked for, resized while the process runs.
    let mut tty = exec(
        &[
            "sh",
            "-c",
            // The first `stty size` can find no size yet (see below): retried.
            "tty; until stty size 2>/dev/null; do sleep 0.1; done; while read x; do stty size; done; exit 7",
        ],
        true,
    );
    let mut terminal = tty.terminal.take().unwrap();
    // Read on a thread, so a terminal that stays silent fails the test instead of hanging it.
    let (chunks_tx, chunks) = std::sync::mpsc::channel();
    let mut reader = terminal.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            if chunks_tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    // runc sets the exec'd terminal's size once its console is up, which can be after the
    // command's first `stty size` (0×0 then; the shell retries): resizing to the same size
    // nudges it, as kubectl sends its terminal size at the start of an exec anyway.
    let deadline = Instant::now() + T;
    while !seen.split("\r\n").any(|l| l == "40 100") {
        assert!(Instant::now() < deadline, "no size on the terminal: {seen:?}");
        match chunks.recv_timeout(std::time::Duration::from_millis(500)) {
            Ok(chunk) => seen.push_str(&chunk),
            Err(_) => tty.resize(40, 100).unwrap(),
        }
    }
    // Reads until the terminal has shown `count` sizes (`stty size` lines); returns the last.
    let mut read_sizes = |_: &mut std::fs::File, count: usize| loop {
        let sizes: Vec<&str> = seen
            .split("\r\n")
            .filter(|l| l.split(' ').all(|n| n.parse::<u16>().is_ok()))
            .collect();
        if sizes.len() >= count {
            return (sizes.last().unwrap().to_string(), seen.clone());
        }
        match chunks.recv_timeout(T) {
            Ok(chunk) => seen.push_str(&chunk),
            Err(e) => panic!("no size {count} on the terminal ({e}): {seen:?}"),
        }
    };
    let (size, output) = read_sizes(&mut terminal, 1);
    assert_eq!(size, "40 100");
    assert!(output.starts_with("/dev/pts/"), "{output:?}");
    tty.resize(30, 120).unwrap();
    // runc applies the new size asynchronously (on SIGWINCH): ask until the shell sees it.
    let deadline = Instant::now() + T;
    for asked in 2.. {
        terminal.write_all(b"size?\n").unwrap();
        if read_sizes(&mut terminal, asked).0 == "30 120" {
            break;
        }
        assert!(Instant::now() < deadline, "the terminal was never resized");
        std::thread::sleep(Duration::from_millis(20));
    }
    terminal.write_all(&[4]).unwrap(); // ^D: end of input
    assert_eq!(tty.child.wait().unwrap().code(), Some(7));
    h.runtime.stop_container(&id, Duration::ZERO).unwrap();
    assert!(matches!(exec_err(&h, &id), Error::WrongState { .. }));
}

fn exec_err(h: &Harness, id: &str) -> Error {
    let config = ExecConfig {
        command: vec!["true".into()],
        ..Default::default()
    };
    h.runtime.exec(id, &config).err().unwrap()
}

#[test]
fn usage_stats_from_the_cgroup() {
    let h = Harness::new();
    let pod = h.sandbox("stats");
    let mut config = h.container(
        &pod,
        "c",
        "head -c 4000000 /dev/zero > /dev/shm/blob; echo ready; sleep 1000",
    );
    config.resources.cpu_request_milli = Some(100);
    let id = h.run(&pod, &config);
    h.wait_log_line(&id, "ready", T);
    let usage = h.runtime.container_stats(&id).unwrap();
    assert!(usage.cpu_usage_nanos > 0, "{usage:?}");
    assert!(usage.memory_working_set_bytes > 1 << 20, "{usage:?}");
    assert!(usage.memory_usage_bytes >= usage.memory_working_set_bytes);
    let pod_usage = h.runtime.pod_stats(&pod.pod_uid).unwrap();
    assert!(pod_usage.memory_working_set_bytes >= 1 << 20, "{pod_usage:?}");
    assert!(
        pod_usage.cpu_usage_nanos >= usage.cpu_usage_nanos,
        "the pod's usage includes its container's"
    );
}

#[test]
fn containers_survive_a_runtime_restart() {
    let mut h = Harness::new();
    let pod = h.sandbox("restart");
    // The container waits on a fifo in the pod's /dev/shm until the test writes to it.
    let fifo = pod.shm.clone().unwrap().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let id = h.run(
        &pod,
        &h.container(&pod, "c", "echo before; read line < /dev/shm/fifo; echo after"),
    );
    h.wait_log_line(&id, "before", T);

    h.reopen();
    assert_eq!(h.runtime.sandbox(&pod.pod_uid).unwrap().as_ref(), Some(&pod));
    let status = h.runtime.container_status(&id).unwrap();
    assert_eq!(status.state, ContainerState::Running);
    assert_eq!(h.runtime.list_containers(Some(&pod.pod_uid)).unwrap().len(), 1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    let status = h.wait_exited(&id, T);
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(h.output(&status, Stream::Stdout), ["before", "after"]);
}

#[test]
fn removal_leaves_no_mounts_cgroups_or_runc_state() {
    let h = Harness::new();
    let pod = h.sandbox("cleanup");
    let running = h.run(&pod, &h.container(&pod, "running", "sleep 1000"));
    let done = h.run(&pod, &h.container(&pod, "done", "true"));
    let created = h
        .runtime
        .create_container(&pod.pod_uid, &h.container(&pod, "created", "true"))
        .unwrap();
    h.wait_exited(&done, T);
    assert!(h.cgroup_exists(&pod.cgroup_parent));
    assert!(matches!(
        h.runtime.remove_sandbox(&pod.pod_uid),
        Err(Error::SandboxNotEmpty(_))
    ));

    for id in [&running, &done, &created] {
        h.runtime.remove_container(id).unwrap();
        assert!(matches!(
            h.runtime.container_status(id),
            Err(Error::ContainerNotFound(_))
        ));
    }
    h.runtime.remove_container(&running).unwrap();
    h.runtime.remove_sandbox(&pod.pod_uid).unwrap();
    assert_eq!(h.mounts(), Vec::<String>::new());
    assert!(!h.cgroup_exists(&pod.cgroup_parent));
    assert_eq!(std::fs::read_dir(h.config.root.join("runc")).unwrap().count(), 0);
    assert_eq!(h.runtime.list_sandboxes().unwrap(), vec![]);
    assert!(std::fs::metadata(pod.netns.unwrap()).is_err());
}

#[test]
fn create_remove_cycles_leak_nothing() {
    let h = Harness::new();
    let mut pod_cgroups = Vec::new();
    for i in 0..10 {
        let pod = h.sandbox(&format!("cycle-{i}"));
        // Half still run when removed; half have exited.
        let script = if i % 2 == 0 { "sleep 1000" } else { "echo done" };
        let id = h.run(&pod, &h.container(&pod, "c", script));
        if i % 2 == 1 {
            h.wait_exited(&id, T);
        }
        h.runtime.remove_container(&id).unwrap();
        h.runtime.remove_sandbox(&pod.pod_uid).unwrap();
        pod_cgroups.push(pod.cgroup_parent);
    }
    assert_eq!(h.mounts(), Vec::<String>::new());
    assert!(pod_cgroups.iter().all(|c| !h.cgroup_exists(c)));
    for dir in ["runc", "containers", "sandboxes"] {
        assert_eq!(
            std::fs::read_dir(h.config.root.join(dir)).unwrap().count(),
            0,
            "{dir} is empty"
        );
    }
    // No shim (its command line names a container directory) or container process is left.
    let root = h.tmp.path().to_string_lossy().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&root))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn attach_to_stdin_once() {
    let h = Harness::new();
    let pod = h.sandbox("attach");
    let mut config = h.container(&pod, "c", "echo waiting; cat; echo stdin closed");
    config.stdin = true;
    config.stdin_once = true;
    let id = h.run(&pod, &config);
    h.wait_log_line(&id, "waiting", T);
    let mut stdin = h.runtime.attach_stdin(&id).unwrap();
    stdin.write_all(b"hello from the attacher\n").unwrap();
    drop(stdin);
    let status = h.wait_exited(&id, T);
    assert_eq!(status.exit_code, Some(0));
    assert_eq!(
        h.output(&status, Stream::Stdout),
        ["waiting", "hello from the attacher", "stdin closed"]
    );
    assert!(
        matches!(h.runtime.attach_stdin(&id), Err(Error::WrongState { .. })),
        "nobody reads any more"
    );

    let plain = h.run(&pod, &h.container(&pod, "plain", "true"));
    assert!(matches!(h.runtime.attach_stdin(&plain), Err(Error::Invalid(_))));
}

#[test]
fn tty_containers_log_their_terminal_and_resize() {
    let h = Harness::new();
    let pod = h.sandbox("tty");
    let mut config = h.container(
        &pod,
        "c",
        "tty; echo to stderr >&2; while read x; do echo \"got $x\"; stty size; done",
    );
    config.stdin = true;
    config.tty = true;
    let id = h.run(&pod, &config);
    h.wait_log_line(&id, "to stderr", T);
    let mut stdin = h.runtime.attach_stdin(&id).unwrap();
    h.runtime.resize_terminal(&id, 30, 120).unwrap();
    // runc applies the size asynchronously: ask until the container sees it.
    let deadline = Instant::now() + T;
    let status = h.runtime.container_status(&id).unwrap();
    loop {
        stdin.write_all(b"line\n").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        if h.log(&status).iter().any(|r| r.content == "30 120") {
            break;
        }
        assert!(Instant::now() < deadline, "never resized: {:?}", h.log(&status));
    }
    let log = h.log(&status);
    assert!(
        log.iter().all(|r| r.stream == Stream::Stdout),
        "a terminal has one stream"
    );
    assert!(log[0].content.starts_with("/dev/pts/"), "{log:?}");
    assert!(log.iter().any(|r| r.content == "got line"));
    h.runtime.stop_container(&id, Duration::ZERO).unwrap();
    assert!(matches!(
        h.runtime.resize_terminal(&id, 1, 1),
        Err(Error::WrongState { .. })
    ));
}

#[test]
fn sandboxes_whose_namespaces_are_lost_are_made_again() {
    let h = Harness::new();
    let pod = h.sandbox("reboot");
    assert_eq!(
        h.runtime.create_sandbox(&config_of(&pod)).unwrap(),
        pod,
        "idempotent"
    );
    // What a reboot does: the bind mounts pinning the namespaces are gone.
    for ns in [&pod.netns, &pod.ipc_ns, &pod.uts_ns].into_iter().flatten() {
        nix::mount::umount2(ns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    let again = h.runtime.create_sandbox(&config_of(&pod)).unwrap();
    assert!(again.created_at > pod.created_at);
    let id = h.run(&again, &h.container(&again, "c", "hostname"));
    assert_eq!(h.output(&h.wait_exited(&id, T), Stream::Stdout), ["reboot"]);
}

fn config_of(pod: &runtime::Sandbox) -> SandboxConfig {
    SandboxConfig {
        pod_uid: pod.pod_uid.clone(),
        pod_name: pod.pod_name.clone(),
        namespace: pod.namespace.clone(),
        hostname: pod.hostname.clone(),
        ..Default::default()
    }
}

#[test]
fn pod_cgroup_limits_as_kubelet_sets_them() {
    let h = Harness::new();
    let mut config = config_of(&h.sandbox("probe-only"));
    config.pod_uid = uuid::Uuid::new_v4().to_string();
    config.pod_name = "limited".into();
    config.resources = runtime::PodResources {
        cpu_request_milli: 250,
        cpu_limit_milli: Some(500),
        memory_limit_bytes: Some(32 << 20),
        pids_limit: Some(100),
    };
    let pod = h.runtime.create_sandbox(&config).unwrap();
    let runtime::cgroups::Cgroups::V1(hierarchies) = h.runtime.cgroups().clone() else {
        return; // the v2 writer is covered by unit tests; this machine is v1
    };
    let read = |controller: &str, file: &str| {
        let root = hierarchies.controller_root(controller).unwrap();
        std::fs::read_to_string(root.join(pod.cgroup_parent.trim_start_matches('/')).join(file)).unwrap()
    };
    assert_eq!(read("cpu", "cpu.shares").trim(), "256");
    assert_eq!(read("cpu", "cpu.cfs_quota_us").trim(), "50000");
    assert_eq!(
        read("memory", "memory.limit_in_bytes").trim(),
        (32 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max").trim(), "100");

    // A container without limits of its own is held by the pod's.
    let id = h.run(&pod, &h.container(&pod, "hog", "tail /dev/zero"));
    let status = h.wait_exited(&id, Duration::from_secs(60));
    assert_eq!(
        (status.exit_code, status.reason.as_deref()),
        (Some(137), Some("OOMKilled"))
    );
}
