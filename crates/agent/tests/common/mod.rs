//! The harness for the agent's real-runc tests (root): a temp runtime root, test images
//! imported into a temp image store, pod cgroups under a cgroup root of the test's own, pod
//! sandboxes (their own network namespace, `lo` up, no CNI), and a cleanup on drop that
//! removes what the test made. The shim is this test binary itself (see [`shim_hook`]).

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::probes::{EventSink, Target};
use clientkit::events::EventType;
use runtime::cgroups::Cgroups;
use runtime::{
    ContainerConfig, ImageConfig, QosClass, RuncRuntime, Runtime, RuntimeConfig, Sandbox, SandboxConfig,
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
    pub runtime: Arc<RuncRuntime>,
    store: images::Store,
    images: Mutex<HashMap<String, (ImageConfig, Vec<PathBuf>)>>,
    pub logs: PathBuf,
    pub cgroup_base: String,
}

impl Harness {
    pub fn new() -> Harness {
        let tmp = tempfile::Builder::new().prefix("rkube-agent-").tempdir().unwrap();
        let store = images::Store::open(&tmp.path().join("images")).unwrap();
        let cgroup_base = format!("rkube-test-{}", uuid::Uuid::new_v4().simple());
        let exe = std::env::current_exe().unwrap();
        let config = RuntimeConfig {
            root: tmp.path().join("runtime"),
            runc: "runc".into(),
            shim: vec![
                exe.into(),
                OsString::from(SHIM_HOOK),
                "--exact".into(),
                "--nocapture".into(),
            ],
            cgroup_root: format!("{cgroup_base}/kubepods"),
        };
        let runtime = Arc::new(RuncRuntime::new(config).unwrap());
        let logs = tmp.path().join("pods");
        Harness {
            tmp,
            runtime,
            store,
            images: Mutex::default(),
            logs,
            cgroup_base,
        }
    }

    /// A test image (`busybox-oci.tar`, `nginx-oci.tar`, …) imported once: its config and
    /// layer directories.
    pub fn image(&self, file: &str) -> (ImageConfig, Vec<PathBuf>) {
        let mut images = self.images.lock().unwrap();
        if let Some(image) = images.get(file) {
            return image.clone();
        }
        let names = self.store.import(&testkit::test_image(file)).unwrap();
        let reference = images::Reference::parse(&names[0]).unwrap();
        let image = self.store.resolve(&reference).unwrap().unwrap();
        let blob = self
            .tmp
            .path()
            .join("images/blobs")
            .join(image.config.replacen(':', "/", 1));
        let config = ImageConfig::from_config_blob(&std::fs::read(blob).unwrap()).unwrap();
        let layers: Vec<PathBuf> = image
            .layers
            .iter()
            .map(|l| self.store.layer_dir(&l.diff_id))
            .collect();
        images.insert(file.to_owned(), (config.clone(), layers.clone()));
        (config, layers)
    }

    /// A pod sandbox with its own network namespace, `lo` up (what CNI's loopback does).
    pub fn sandbox(&self, name: &str) -> Sandbox {
        let sandbox = self
            .runtime
            .create_sandbox(&SandboxConfig {
                pod_uid: uuid::Uuid::new_v4().to_string(),
                pod_name: name.into(),
                namespace: "default".into(),
                hostname: name.into(),
                qos: QosClass::Burstable,
                ..Default::default()
            })
            .unwrap();
        let netns = sandbox.netns.as_ref().expect("a pod network namespace");
        let status = std::process::Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(status.success());
        sandbox
    }

    /// A container of `image` running `command` (empty: the image's own).
    pub fn container(&self, sandbox: &Sandbox, name: &str, image: &str, command: &[&str]) -> ContainerConfig {
        let (image_config, layers) = self.image(&format!("{image}-oci.tar"));
        ContainerConfig {
            name: name.into(),
            image: format!("docker.io/library/{image}:latest"),
            image_config,
            layers,
            command: command.iter().map(|s| s.to_string()).collect(),
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

    /// A busybox container running `sh -c SCRIPT`.
    pub fn busybox(&self, sandbox: &Sandbox, name: &str, script: &str) -> ContainerConfig {
        self.container(sandbox, name, "busybox", &["sh", "-c", script])
    }

    /// Creates and starts a container.
    pub fn run(&self, sandbox: &Sandbox, config: &ContainerConfig) -> String {
        let id = self.runtime.create_container(&sandbox.pod_uid, config).unwrap();
        self.runtime.start_container(&id).unwrap();
        id
    }

    /// What probes of a container target: the pod at 127.0.0.1 inside its netns (no CNI).
    pub fn target(&self, sandbox: &Sandbox, id: &str) -> Target {
        Target {
            runtime: self.runtime.clone(),
            container_id: id.to_owned(),
            pod_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            netns: sandbox.netns.clone(),
        }
    }

    /// Waits until something in the pod listens on `port` (connecting from inside its netns).
    pub fn wait_listening(&self, sandbox: &Sandbox, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let netns = sandbox.netns.clone().unwrap();
        loop {
            let probe = std::process::Command::new("nsenter")
                .arg(format!("--net={}", netns.display()))
                .args(["bash", "-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if probe.success() {
                return;
            }
            assert!(Instant::now() < deadline, "nothing listens on :{port} in the pod");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's log lines (CRI format parsed) of one stream.
    pub fn output(&self, config: &ContainerConfig, stream: runtime::logs::Stream) -> Vec<String> {
        std::fs::read_to_string(&config.log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(runtime::logs::parse_record)
            .filter(|r| r.stream == stream)
            .map(|r| r.content)
            .collect()
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
        let root = self.tmp.path().to_string_lossy().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&root))
            .collect();
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

/// Events a probe worker or hook recorded, for assertions.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(EventType, String, String)>>>);

impl Events {
    pub fn sink(&self) -> EventSink {
        let events = self.0.clone();
        Arc::new(move |kind, reason, message| events.lock().unwrap().push((kind, reason.to_owned(), message)))
    }

    pub fn all(&self) -> Vec<(EventType, String, String)> {
        self.0.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<String> {
        self.all().into_iter().map(|(_, _, m)| m).collect()
    }
}
