//! The node's container runtime: the only crate of the node agent that mounts, enters namespaces,
//! touches cgroups or runs the OCI runtime. The agent drives it through the [`Runtime`] trait
//! (so it can be tested with a fake); [`RuncRuntime`] is the real one:
//!
//! ```text
//! <root>/sandboxes/<pod-uid>/sandbox.json       the pod's sandbox (namespaces, cgroup parent)
//! <root>/sandboxes/<pod-uid>/ns/{net,ipc,uts}    namespaces pinned by bind mounts (no pause process)
//! <root>/sandboxes/<pod-uid>/shm                 the pod's /dev/shm (tmpfs shared by its containers)
//! <root>/containers/<id>/container.json          what the container was created from
//! <root>/containers/<id>/bundle/{config.json,rootfs}  the OCI bundle (rootfs: overlayfs mount)
//! <root>/containers/<id>/{upper,work}            the overlay's writable layer
//! <root>/containers/<id>/state.json              written by the shim: pid, start, exit, OOM
//! <root>/containers/<id>/{stdin,resize}          fifos the shim reads (attach input, terminal size)
//! <root>/runc                                    runc's own state (`runc --root`)
//! ```
//!
//! Each container runs under a small shim process (`rkube shim <container dir>`, [`shim::run`]),
//! which runs `runc run`, writes the container's output in the CRI log format ([`logs`]) and
//! records how it ended; containers and shims outlive the agent, and everything the runtime
//! knows is read back from those files, so a restarted agent finds its containers again.
//!
//! A pod's life as the agent drives it:
//!
//! ```text
//! create_sandbox (idempotent) → CNI setup on sandbox.netns → per container: create_container
//! → start_container → container_status (poll; exit code, OOMKilled) → stop_container(grace)
//! → remove_container → CNI teardown → remove_sandbox (unmounts, removes the pod cgroup)
//! ```
//!
//! Modules: `process` (image config + Kubernetes command/args/env/workingDir/user, as kubelet
//! and containerd merge them), `spec` (the OCI config.json), `rootfs` (overlayfs), `sandbox`
//! (namespaces), `cgroups` (paths by QoS class, CPU/memory conversions, v1 and v2 files),
//! `stats`, `shim`, `runc`, `logs`; `fake` is an in-memory runtime for the agent's tests.

pub mod cgroups;
pub mod fake;
pub mod logs;
pub mod process;
mod rootfs;
mod runc;
mod runtime;
mod sandbox;
pub mod shim;
pub mod spec;
mod state;
pub mod stats;
mod types;

pub use runtime::{RuncRuntime, RuntimeConfig};
pub use types::*;

/// What the node agent needs from a container runtime. Blocking calls: the agent runs them on
/// blocking threads.
pub trait Runtime: Send + Sync {
    /// Creates the pod's sandbox (namespaces, hostname, /dev/shm); idempotent per pod uid.
    fn create_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, Error>;
    /// The sandbox of a pod, if it exists.
    fn sandbox(&self, pod_uid: &str) -> Result<Option<Sandbox>, Error>;
    /// Every sandbox on the node.
    fn list_sandboxes(&self) -> Result<Vec<Sandbox>, Error>;
    /// Removes a sandbox: its containers must be removed first. Unmounts and deletes its
    /// namespaces and /dev/shm, removes the pod cgroup. Missing is not an error.
    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), Error>;

    /// Prepares a container (rootfs, OCI bundle) in a sandbox; returns its id.
    fn create_container(&self, pod_uid: &str, config: &ContainerConfig) -> Result<String, Error>;
    /// Starts a created container; returns once it runs (or failed to start: an error, and
    /// the status says `StartError`).
    fn start_container(&self, id: &str) -> Result<(), Error>;
    /// SIGTERM, then SIGKILL after `grace`; returns once the container has exited.
    fn stop_container(&self, id: &str, grace: std::time::Duration) -> Result<(), Error>;
    /// Removes a container (killing it if it still runs); its log file stays.
    fn remove_container(&self, id: &str) -> Result<(), Error>;
    fn container_status(&self, id: &str) -> Result<ContainerStatus, Error>;
    /// Every container on the node (optionally only one sandbox's), oldest first.
    fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerStatus>, Error>;
    /// Runs a process in a running container; the agent streams its pipes (or terminal).
    fn exec(&self, id: &str, config: &ExecConfig) -> Result<ExecProcess, Error>;
    /// A writer into the stdin of a running container created with `stdin` (what `kubectl
    /// attach -i` sends); with `stdin_once`, closing it closes the container's stdin. Output
    /// is followed in the container's log.
    fn attach_stdin(&self, id: &str) -> Result<std::fs::File, Error>;
    /// Resizes the terminal of a running container created with `tty`.
    fn resize_terminal(&self, id: &str, rows: u16, columns: u16) -> Result<(), Error>;
    /// CPU and memory usage of a container, from its cgroup.
    fn container_stats(&self, id: &str) -> Result<stats::Usage, Error>;
    /// CPU and memory usage of a whole pod (its containers'), from the pod cgroup.
    fn pod_stats(&self, pod_uid: &str) -> Result<stats::Usage, Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("sandbox for pod {0} not found")]
    SandboxNotFound(String),
    #[error("sandbox for pod {0} still has containers")]
    SandboxNotEmpty(String),
    #[error("container {id} is {state}, not {expected}")]
    WrongState {
        id: String,
        state: &'static str,
        expected: &'static str,
    },
    #[error("invalid container config: {0}")]
    Invalid(String),
    #[error("{command} failed: {message}")]
    Command { command: String, message: String },
    #[error("failed to start container {id}: {message}")]
    Start { id: String, message: String },
    #[error("{0}")]
    Mount(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}
