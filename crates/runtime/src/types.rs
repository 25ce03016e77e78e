//! The runtime API's data: what the agent passes in, what it reads back.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A pod's QoS class, which places its cgroup (kubelet's layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum QosClass {
    Guaranteed,
    #[default]
    Burstable,
    BestEffort,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SandboxConfig {
    pub pod_uid: String,
    pub pod_name: String,
    pub namespace: String,
    /// The pod's hostname (`spec.hostname`, else the pod's name); unused with host networking.
    pub hostname: String,
    /// `hostNetwork`: the host's network and UTS namespaces, no netns file.
    pub host_network: bool,
    /// `hostIPC`: the host's IPC namespace and /dev/shm.
    pub host_ipc: bool,
    /// `hostPID`: containers see the host's processes (no PID namespace of their own).
    pub host_pid: bool,
    pub qos: QosClass,
    /// `securityContext.sysctls`: namespaced net.* and IPC sysctls, set in the pod's namespaces.
    pub sysctls: Vec<(String, String)>,
    /// The pod cgroup's limits, as kubelet sums them (see [`PodResources`]).
    pub resources: PodResources,
}

/// A pod cgroup's limits as kubelet's `ResourceConfigForPod` computes them: CPU shares from the
/// pod's CPU requests; a CPU quota and a memory limit only when every container has one (the
/// sums); the node's pod PIDs limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodResources {
    pub cpu_request_milli: i64,
    pub cpu_limit_milli: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// A pod's sandbox as created.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sandbox {
    pub pod_uid: String,
    pub pod_name: String,
    pub namespace: String,
    pub hostname: String,
    /// The network namespace file CNI configures; `None` with host networking.
    pub netns: Option<PathBuf>,
    pub ipc_ns: Option<PathBuf>,
    pub uts_ns: Option<PathBuf>,
    /// The tmpfs mounted as every container's /dev/shm (`None`: the host's, with hostIPC).
    pub shm: Option<PathBuf>,
    #[serde(default)]
    pub host_pid: bool,
    /// The pod cgroup, relative to the hierarchy root (`/kubepods/burstable/pod<uid>`).
    pub cgroup_parent: String,
    pub created_at: Timestamp,
}

/// The parts of an image's config (`config` in the OCI image config) a container uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

impl ImageConfig {
    /// Reads the `config` object of an OCI / Docker image config blob.
    pub fn from_config_blob(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        #[derive(Deserialize)]
        struct Blob {
            #[serde(default)]
            config: Option<ImageConfig>,
        }
        Ok(serde_json::from_slice::<Blob>(bytes)?.config.unwrap_or_default())
    }
}

/// A bind mount into a container (a volume, a projected file, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub container_path: String,
    pub host_path: PathBuf,
    pub read_only: bool,
    #[serde(default)]
    pub propagation: Propagation,
}

/// `mountPropagation`: whether mounts made later under the volume travel host → container
/// (`HostToContainer`: rslave) or both ways (`Bidirectional`: rshared; privileged only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

/// The securityContext fields the runtime applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityConfig {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    pub read_only_root_filesystem: bool,
    pub privileged: bool,
    /// Capability names as Kubernetes spells them (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`).
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    pub allow_privilege_escalation: Option<bool>,
}

/// Container resources in the units kubelet converts from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_request_milli: Option<i64>,
    pub cpu_limit_milli: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub pids_limit: Option<i64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The container's name in the pod.
    pub name: String,
    /// The image reference (reported back in statuses).
    pub image: String,
    pub image_config: ImageConfig,
    /// Unpacked layer directories, bottom layer first.
    pub layers: Vec<PathBuf>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// Environment in order; later entries win (kubelet has resolved valueFrom and envFrom).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub mounts: Vec<Mount>,
    /// Files bind-mounted at /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub hosts_file: Option<PathBuf>,
    pub hostname_file: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub security: SecurityConfig,
    pub resources: Resources,
    /// Where the container's output goes, in the CRI log format.
    pub log_path: PathBuf,
    /// Clamped at 0: this node may not lower it (no CAP_SYS_RESOURCE).
    pub oom_score_adj: Option<i32>,
    pub restart_count: u32,
    /// `stdin`: the container reads what attachers write ([`crate::Runtime::attach_stdin`]).
    pub stdin: bool,
    /// `stdinOnce`: stdin closes (EOF) when the first attacher detaches.
    pub stdin_once: bool,
    /// `tty`: the container runs on a terminal; its output is logged as stdout.
    pub tty: bool,
    /// A PID namespace to join instead of the sandbox's (`/proc/<pid>/ns/pid` of an ephemeral
    /// container's `targetContainerName`).
    #[serde(default)]
    pub pid_namespace: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub image: String,
    pub restart_count: u32,
    pub state: ContainerState,
    pub pid: Option<i32>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError` (as containerd's CRI reports them).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub log_path: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct ExecConfig {
    pub command: Vec<String>,
    pub tty: bool,
    /// The terminal's initial size (rows, columns), with `tty`.
    pub terminal_size: Option<(u16, u16)>,
    /// Extra environment for the process.
    pub env: Vec<(String, String)>,
}

/// A process running in a container: the agent streams its stdio and must wait for its exit
/// code (`runc exec` exits with the process's status; unwaited, it stays a zombie). With a
/// terminal, the terminal carries input and both output streams.
pub struct ExecProcess {
    pub child: std::process::Child,
    /// With `tty`: the terminal the process runs on.
    pub terminal: Option<std::fs::File>,
    /// With `tty`: the path of the terminal's other end, which runc holds.
    pub terminal_path: Option<PathBuf>,
}

impl ExecProcess {
    /// Resizes the terminal: sets the size of runc's end (util-linux/coreutils `stty`; no
    /// ioctl without `unsafe`) and tells runc with SIGWINCH, which resizes the container's.
    pub fn resize(&self, rows: u16, columns: u16) -> Result<(), crate::Error> {
        let Some(path) = &self.terminal_path else {
            return Err(crate::Error::Invalid(
                "resize: the process has no terminal".into(),
            ));
        };
        let out = std::process::Command::new("stty")
            .arg("-F")
            .arg(path)
            .args(["rows", &rows.to_string(), "cols", &columns.to_string()])
            .output()
            .map_err(crate::Error::io(std::path::Path::new("stty")))?;
        if !out.status.success() {
            return Err(crate::Error::Command {
                command: "stty".into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        // The process may be gone already: nothing left to resize.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGWINCH);
        Ok(())
    }
}
