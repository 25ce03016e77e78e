//! The harness for real-runc tests (run as root): a temp runtime root, the busybox test image
//! imported into a temp image store, pod cgroups under a cgroup root of the test's own, and a
//! cleanup on drop (even after a failure) that removes containers, sandboxes, mounts and
//! cgroups the test made. The shim is this test binary itself (see [`shim_hook`]), or with
//! `RKUBE_BIN=…/rkube` set, the real `rkube shim`.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime::cgroups::Cgroups;
use runtime::logs::{Record, parse_record};
use runtime::{
    ContainerConfig, ContainerState, ContainerStatus, ImageConfig, QosClass, RuncRuntime, Runtime,
    RuntimeConfig, Sandbox, SandboxConfig,
};

/// The name of the test that doubles as the shim when the runtime re-runs this binary.
pub const SHIM_HOOK: &str = "shim_hook";

/// Called by the `shim_hook` test: when the runtime started this binary as a shim (its last
/// argument is a container directory), runs the shim and exits; otherwise does nothing.
pub fn shim_hook() {
    let dir = std::env::args()
        .next_back()
        .map(PathBuf::from)
        .unwrap_or_default();
    if dir.join("shim.json").is_file() {
        std::process::exit(runtime::shim::run(&dir));
    }
}

pub struct Harness {
    pub tmp: tempfile::TempDir,
    pub config: RuntimeConfig,
    pub runtime: RuncRuntime,
    pub image: ImageConfig,
    pub layers: Vec<PathBuf>,
    pub logs: PathBuf,
    /// The first component of every pod cgroup of this test.
    pub cgroup_base: String,
}

fn test_image() -> PathBuf {
    testkit::test_image("busybox-oci.tar")
}

impl Harness {
    pub fn new() -> Harness {
        let tmp = tempfile::Builder::new()
            .prefix("rkube-runtime-")
            .tempdir()
            .unwrap();
        let store = images::Store::open(&tmp.path().join("images")).unwrap();
        let names = store.import(&test_image()).unwrap();
        let reference = images::Reference::parse(&names[0]).unwrap();
        let image = store.resolve(&reference).unwrap().unwrap();
        let config_blob = tmp
            .path()
            .join("images/blobs")
            .join(image.config.replacen(':', "/", 1));
        let image_config = ImageConfig::from_config_blob(&std::fs::read(config_blob).unwrap()).unwrap();
        let layers = image.layers.iter().map(|l| store.layer_dir(&l.diff_id)).collect();

        let cgroup_base = format!("rkube-test-{}", uuid::Uuid::new_v4().simple());
        // RKUBE_BIN=path/to/rkube runs the real `rkube shim` instead of this binary's hook.
        let shim = match std::env::var_os("RKUBE_BIN") {
            Some(rkube) => vec![rkube, "shim".into()],
            None => {
                let exe = std::env::current_exe().unwrap();
                vec![
                    exe.into(),
                    OsString::from(SHIM_HOOK),
                    "--exact".into(),
                    "--nocapture".into(),
                ]
            }
        };
        let config = RuntimeConfig {
            root: tmp.path().join("runtime"),
            runc: "runc".into(),
            shim,
            cgroup_root: format!("{cgroup_base}/kubepods"),
        };
        let runtime = RuncRuntime::new(config.clone()).unwrap();
        let logs = tmp.path().join("pods");
        Harness {
            tmp,
            config,
            runtime,
            image: image_config,
            layers,
            logs,
            cgroup_base,
        }
    }

    /// A new runtime object over the same root (what an agent restart sees).
    pub fn reopen(&mut self) {
        self.runtime = RuncRuntime::new(self.config.clone()).unwrap();
    }

    pub fn sandbox(&self, name: &str) -> Sandbox {
        self.sandbox_with(SandboxConfig {
            pod_uid: uuid::Uuid::new_v4().to_string(),
            pod_name: name.into(),
            namespace: "default".into(),
            hostname: name.into(),
            qos: QosClass::Burstable,
            ..Default::default()
        })
    }

    pub fn sandbox_with(&self, config: SandboxConfig) -> Sandbox {
        let sandbox = self.runtime.create_sandbox(&config).unwrap();
        // CNI's loopback plugin brings `lo` up in a real pod.
        if let Some(netns) = &sandbox.netns {
            let status = std::process::Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .args(["ip", "link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(status.success());
        }
        sandbox
    }

    /// A busybox container running `sh -c SCRIPT`.
    pub fn container(&self, sandbox: &Sandbox, name: &str, script: &str) -> ContainerConfig {
        ContainerConfig {
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
                0,
            ),
            ..Default::default()
        }
    }

    /// Creates and starts a container.
    pub fn run(&self, sandbox: &Sandbox, config: &ContainerConfig) -> String {
        let id = self.runtime.create_container(&sandbox.pod_uid, config).unwrap();
        self.runtime.start_container(&id).unwrap();
        id
    }

    pub fn wait_exited(&self, id: &str, timeout: Duration) -> ContainerStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.runtime.container_status(id).unwrap();
            if status.state == ContainerState::Exited {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} still {:?} after {timeout:?}",
                status.state
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self, status: &ContainerStatus) -> Vec<Record> {
        let text = std::fs::read_to_string(&status.log_path).unwrap_or_default();
        text.lines()
            .map(|l| parse_record(l).unwrap_or_else(|| panic!("not a CRI log line: {l:?}")))
            .collect()
    }

    /// The log's lines of one stream, as text.
    pub fn output(&self, status: &ContainerStatus, stream: runtime::logs::Stream) -> Vec<String> {
        self.log(status)
            .into_iter()
            .filter(|r| r.stream == stream)
            .map(|r| r.content)
            .collect()
    }

    /// Waits until a running container's log has a line.
    pub fn wait_log_line(&self, id: &str, line: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let status = self.runtime.container_status(id).unwrap();
        while !self.log(&status).iter().any(|r| r.content == line) {
            assert!(
                Instant::now() < deadline,
                "no log line {line:?} in {:?}",
                self.log(&status)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mount points under the test's temp dir.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.tmp.path().to_string_lossy().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&root))
            .collect()
    }

    /// Whether any hierarchy still has a cgroup of this test.
    pub fn cgroup_exists(&self, cgroup: &str) -> bool {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - cgroup"))
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| Path::new(m).join(cgroup.trim_start_matches('/')).exists())
    }
}

impl Drop for Harness {
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
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(Path::new(&m), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Ok(cgroups) = Cgroups::detect()
            && let Err(e) = cgroups.remove(&self.cgroup_base)
        {
            eprintln!("cleanup: cgroups {}: {e}", self.cgroup_base);
        }
    }
}
