//! [`RuncRuntime`]: the [`Runtime`] of a real node. Everything it knows lives in files under
//! its root (see the crate docs), so a new instance over the same root — an agent restart —
//! finds the same sandboxes and containers.

use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::cgroups::{Cgroups, pod_cgroup};
use crate::runc::Runc;
use crate::shim::START_ERROR_EXIT_CODE;
use crate::spec::{Device, SpecInput};
use crate::state::{ContainerRecord, ShimConfig, ShimState, read_json, write_json};
use crate::stats::Usage;
use crate::{
    ContainerConfig, ContainerState, ContainerStatus, Error, ExecConfig, ExecProcess, Runtime, Sandbox,
    SandboxConfig, process, rootfs, sandbox, spec,
};

/// How long a start may take before the runtime gives up waiting for the shim.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGKILLed container may take to be reported gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The runtime's state directory (`<data-dir>/agent/runtime`).
    pub root: PathBuf,
    /// The OCI runtime binary: `runc` (from PATH), or a path to crun / youki.
    pub runc: PathBuf,
    /// The shim command; the container directory is appended (`rkube shim`).
    pub shim: Vec<OsString>,
    /// kubelet's cgroupRoot: pod cgroups go under `<cgroup_root>/<qos>/pod<uid>`.
    pub cgroup_root: String,
}

impl RuntimeConfig {
    /// runc from PATH, pods under `kubepods`, the shim as `<this executable> shim`.
    pub fn new(root: &Path) -> Result<RuntimeConfig, Error> {
        let exe = std::env::current_exe().map_err(Error::io(Path::new("/proc/self/exe")))?;
        Ok(RuntimeConfig {
            root: root.to_owned(),
            runc: "runc".into(),
            shim: vec![exe.into(), "shim".into()],
            cgroup_root: "kubepods".into(),
        })
    }
}

pub struct RuncRuntime {
    config: RuntimeConfig,
    runc: Runc,
    cgroups: Cgroups,
}

impl RuncRuntime {
    pub fn new(config: RuntimeConfig) -> Result<RuncRuntime, Error> {
        if config.shim.is_empty() {
            return Err(Error::Invalid("no shim command".into()));
        }
        for dir in ["sandboxes", "containers", "runc"] {
            let path = config.root.join(dir);
            std::fs::create_dir_all(&path).map_err(Error::io(&path))?;
        }
        Ok(RuncRuntime {
            runc: Runc {
                binary: config.runc.clone(),
                root: config.root.join("runc"),
            },
            cgroups: Cgroups::detect()?,
            config,
        })
    }

    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf, Error> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::ContainerNotFound(id.to_owned()));
        }
        Ok(self.config.root.join("containers").join(id))
    }

    fn record(&self, id: &str) -> Result<(PathBuf, ContainerRecord), Error> {
        let dir = self.container_dir(id)?;
        let record =
            read_json(&dir.join("container.json"))?.ok_or_else(|| Error::ContainerNotFound(id.to_owned()))?;
        Ok((dir, record))
    }

    fn build_container(
        &self,
        dir: &Path,
        id: &str,
        sandbox: &Sandbox,
        config: &ContainerConfig,
    ) -> Result<ContainerRecord, Error> {
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        rootfs::mount(&config.layers, dir, &rootfs)?;
        let read_etc = |name: &str| read_image_file(&rootfs, &["etc", name]);
        let process = process::merge(
            &config.image_config,
            &config.command,
            &config.args,
            &config.env,
            config.working_dir.as_deref(),
            &sandbox.hostname,
        )
        .map_err(Error::Invalid)?;
        let user = process::resolve_user(
            config.image_config.user.as_deref(),
            &config.security,
            &read_etc("passwd"),
            &read_etc("group"),
        )
        .map_err(Error::Invalid)?;
        let devices = if config.security.privileged {
            host_devices()
        } else {
            Vec::new()
        };
        let cgroups_path = format!("{}/{id}", sandbox.cgroup_parent);
        let oci = spec::generate(&SpecInput {
            config,
            sandbox,
            process: &process,
            user: &user,
            rootfs: &rootfs,
            cgroups_path: &cgroups_path,
            devices: &devices,
            all_capabilities: &current_capabilities(),
        });
        write_json(&bundle.join("config.json"), &oci)?;
        let record = ContainerRecord {
            id: id.to_owned(),
            pod_uid: sandbox.pod_uid.clone(),
            created_at: Timestamp::now(),
            cgroups_path: cgroups_path.clone(),
            config: config.clone(),
        };
        write_json(
            &dir.join("shim.json"),
            &ShimConfig {
                id: id.to_owned(),
                runc: self.config.runc.clone(),
                runc_root: self.runc.root.clone(),
                bundle,
                log_path: config.log_path.clone(),
                cgroups_path,
                stdin: config.stdin,
                stdin_once: config.stdin_once,
                tty: config.tty,
            },
        )?;
        write_json(&dir.join("container.json"), &record)?;
        Ok(record)
    }

    fn status_of(&self, dir: &Path, record: ContainerRecord) -> Result<ContainerStatus, Error> {
        let state: Option<ShimState> = read_json(&dir.join("state.json"))?;
        let mut status = ContainerStatus {
            id: record.id,
            pod_uid: record.pod_uid,
            name: record.config.name,
            image: record.config.image,
            restart_count: record.config.restart_count,
            state: ContainerState::Created,
            pid: None,
            created_at: record.created_at,
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: None,
            message: None,
            log_path: record.config.log_path,
        };
        let Some(state) = state else { return Ok(status) };
        status.pid = state.pid;
        status.started_at = state.started_at;
        match state.finished_at {
            None if shim_alive(state.shim_pid) => status.state = ContainerState::Running,
            None => {
                status.state = ContainerState::Exited;
                status.exit_code = Some(255);
                status.reason = Some("Unknown".into());
                status.message = Some("the container's shim exited without recording its end".into());
            }
            Some(finished) => {
                status.state = ContainerState::Exited;
                status.finished_at = Some(finished);
                status.exit_code = state.exit_code;
                status.reason = Some(
                    if state.start_error.is_some() {
                        "StartError"
                    } else if state.oom_killed {
                        "OOMKilled"
                    } else if state.exit_code == Some(0) {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .into(),
                );
                status.message = state.start_error;
            }
        }
        Ok(status)
    }

    /// The shim may outlive its container by a moment: ask the recorded state, not the fifos.
    fn expect_running(&self, id: &str) -> Result<(), Error> {
        match self.container_status(id)?.state {
            ContainerState::Running => Ok(()),
            state => Err(Error::WrongState {
                id: id.to_owned(),
                state: state.as_str(),
                expected: "running",
            }),
        }
    }

    /// Waits until the container is no longer running.
    fn wait_exited(&self, id: &str, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.container_status(id)?.state != ContainerState::Running {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A regular file of the image (/etc/passwd): a symlink on the way could lead out of the
/// rootfs into the host's files, so any is refused (read as empty).
fn read_image_file(rootfs: &Path, components: &[&str]) -> String {
    let mut path = rootfs.to_path_buf();
    for component in components {
        path.push(component);
        if std::fs::symlink_metadata(&path).map_or(true, |m| m.file_type().is_symlink()) {
            return String::new();
        }
    }
    std::fs::read_to_string(&path).unwrap_or_default()
}

/// Opens a fifo the shim reads, without blocking when no shim does (the container is gone),
/// then makes writes blocking again.
fn open_fifo_writer(id: &str, path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(nix::libc::ENXIO) | Some(nix::libc::ENOENT) => Error::WrongState {
                id: id.to_owned(),
                state: "not attachable",
                expected: "running",
            },
            _ => Error::io(path)(e),
        })?;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty())).map_err(|e| {
        Error::Io {
            path: path.to_owned(),
            source: e.into(),
        }
    })?;
    Ok(file)
}

/// runc reads an exec's process file as it starts; files older than a minute are done with.
/// (Exec probes run every few seconds for the container's whole life.)
fn remove_stale_process_files(exec_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(exec_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(60));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The capabilities in this process's bounding set (what runc, its child, can grant).
fn current_capabilities() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    spec::capabilities_in_mask(mask)
}

/// The shim is alive if its pid exists and is not a zombie.
fn shim_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                != Some('Z')
        }
        Err(_) => false,
    }
}

/// The host's device nodes for a privileged container (/dev and its subdirectories but the
/// pseudo-terminal, shm and mqueue mounts the container gets its own of).
fn host_devices() -> Vec<Device> {
    fn walk(dir: &Path, out: &mut Vec<Device>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                if !["/dev/pts", "/dev/shm", "/dev/mqueue"]
                    .iter()
                    .any(|p| path == Path::new(p))
                {
                    walk(&path, out);
                }
            } else if kind.is_char_device() || kind.is_block_device() {
                if path == Path::new("/dev/console") || path == Path::new("/dev/ptmx") {
                    continue;
                }
                let rdev = meta.rdev();
                out.push(Device {
                    path,
                    kind: if kind.is_char_device() { 'c' } else { 'b' },
                    major: nix::sys::stat::major(rdev),
                    minor: nix::sys::stat::minor(rdev),
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

impl Runtime for RuncRuntime {
    fn create_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, Error> {
        let cgroup_parent = pod_cgroup(&self.config.cgroup_root, config.qos, &config.pod_uid);
        let sandbox = sandbox::create(&self.config.root, config, cgroup_parent)?;
        if let Err(e) = self.cgroups.create_pod(&sandbox.cgroup_parent, &config.resources) {
            let _ = sandbox::destroy(&sandbox::dir(&self.config.root, &config.pod_uid));
            let _ = self.cgroups.remove(&sandbox.cgroup_parent);
            return Err(e);
        }
        Ok(sandbox)
    }

    fn sandbox(&self, pod_uid: &str) -> Result<Option<Sandbox>, Error> {
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Ok(None);
        }
        sandbox::read(&self.config.root, pod_uid)
    }

    fn list_sandboxes(&self) -> Result<Vec<Sandbox>, Error> {
        let dir = self.config.root.join("sandboxes");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir))?.flatten() {
            if let Some(s) = sandbox::read(&self.config.root, &entry.file_name().to_string_lossy())? {
                out.push(s);
            }
        }
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), Error> {
        if !self.list_containers(Some(pod_uid))?.is_empty() {
            return Err(Error::SandboxNotEmpty(pod_uid.to_owned()));
        }
        let existing = self.sandbox(pod_uid)?;
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Ok(());
        }
        sandbox::destroy(&sandbox::dir(&self.config.root, pod_uid))?;
        if let Some(s) = existing {
            self.cgroups.remove(&s.cgroup_parent)?;
        }
        Ok(())
    }

    fn create_container(&self, pod_uid: &str, config: &ContainerConfig) -> Result<String, Error> {
        let sandbox = self
            .sandbox(pod_uid)?
            .ok_or_else(|| Error::SandboxNotFound(pod_uid.to_owned()))?;
        if !config.log_path.is_absolute() {
            return Err(Error::Invalid(format!(
                "log path {} is not absolute",
                config.log_path.display()
            )));
        }
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let dir = self.container_dir(&id)?;
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        match self.build_container(&dir, &id, &sandbox, config) {
            Ok(_) => Ok(id),
            Err(e) => {
                let _ = rootfs::unmount(&dir.join("bundle/rootfs"));
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn start_container(&self, id: &str) -> Result<(), Error> {
        let (dir, _) = self.record(id)?;
        if dir.join("state.json").exists() {
            let state = self.container_status(id)?.state;
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: state.as_str(),
                expected: "created",
            });
        }
        let shim_log = dir.join("shim.log");
        let stderr = std::fs::File::create(&shim_log).map_err(Error::io(&shim_log))?;
        let mut child = Command::new(&self.config.shim[0])
            .args(&self.config.shim[1..])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group: a signal to the agent's group (^C) leaves containers be.
            .process_group(0)
            .spawn()
            .map_err(Error::io(Path::new(&self.config.shim[0])))?;
        // The agent reaps its shims; after an agent restart they are init's.
        let (exited_tx, exited_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited_tx.send(child.wait());
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(state) = read_json::<ShimState>(&dir.join("state.json"))? {
                return match state.start_error {
                    Some(message) => Err(Error::Start {
                        id: id.to_owned(),
                        message,
                    }),
                    None => Ok(()),
                };
            }
            if exited_rx.try_recv().is_ok() && !dir.join("state.json").exists() {
                let message = std::fs::read_to_string(&shim_log)
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                write_json(
                    &dir.join("state.json"),
                    &ShimState {
                        finished_at: Some(Timestamp::now()),
                        exit_code: Some(START_ERROR_EXIT_CODE),
                        start_error: Some(format!("the shim exited: {message}")),
                        ..Default::default()
                    },
                )?;
                return Err(Error::Start {
                    id: id.to_owned(),
                    message: format!("the shim exited: {message}"),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "container {id} did not start within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), Error> {
        if self.container_status(id)?.state != ContainerState::Running {
            return Ok(());
        }
        // The container may exit between the check and the signal: runc then refuses.
        if let Err(e) = self.runc.kill(id, "TERM") {
            tracing::debug!(id, error = %e, "SIGTERM");
        }
        if self.wait_exited(id, grace)? {
            return Ok(());
        }
        if let Err(e) = self.runc.kill(id, "KILL") {
            tracing::debug!(id, error = %e, "SIGKILL");
        }
        if self.wait_exited(id, KILL_TIMEOUT)? {
            return Ok(());
        }
        Err(Error::Timeout(format!(
            "container {id} still runs {KILL_TIMEOUT:?} after SIGKILL"
        )))
    }

    fn remove_container(&self, id: &str) -> Result<(), Error> {
        let dir = match self.record(id) {
            Ok((dir, _)) => dir,
            Err(Error::ContainerNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.container_status(id)?.state == ContainerState::Running {
            let _ = self.runc.kill(id, "KILL");
            if !self.wait_exited(id, KILL_TIMEOUT)? {
                return Err(Error::Timeout(format!(
                    "container {id} still runs {KILL_TIMEOUT:?} after SIGKILL"
                )));
            }
        }
        self.runc.delete(id, true)?;
        rootfs::unmount(&dir.join("bundle/rootfs"))?;
        std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus, Error> {
        let (dir, record) = self.record(id)?;
        self.status_of(&dir, record)
    }

    fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerStatus>, Error> {
        let dir = self.config.root.join("containers");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io(&dir))?.flatten() {
            let path = entry.path();
            let Some(record) = read_json::<ContainerRecord>(&path.join("container.json"))? else {
                continue;
            };
            if pod_uid.is_some_and(|uid| uid != record.pod_uid) {
                continue;
            }
            out.push(self.status_of(&path, record)?);
        }
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    fn exec(&self, id: &str, config: &ExecConfig) -> Result<ExecProcess, Error> {
        let status = self.container_status(id)?;
        if status.state != ContainerState::Running {
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: status.state.as_str(),
                expected: "running",
            });
        }
        if config.command.is_empty() {
            return Err(Error::Invalid("exec: no command".into()));
        }
        let dir = self.container_dir(id)?;
        let bundle_config = dir.join("bundle/config.json");
        let oci: serde_json::Value =
            read_json(&bundle_config)?.ok_or_else(|| Error::ContainerNotFound(id.to_owned()))?;
        // The container's own user, environment, capabilities and cwd; the exec's command.
        let mut process = oci["process"].clone();
        process["args"] = serde_json::json!(config.command);
        process["terminal"] = serde_json::json!(config.tty);
        if let Some(env) = process["env"].as_array_mut() {
            env.extend(
                config
                    .env
                    .iter()
                    .map(|(k, v)| serde_json::json!(format!("{k}={v}"))),
            );
        }
        let exec_dir = dir.join("exec");
        std::fs::create_dir_all(&exec_dir).map_err(Error::io(&exec_dir))?;
        remove_stale_process_files(&exec_dir);
        let process_file = exec_dir.join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        write_json(&process_file, &process)?;
        let mut command = self.runc.exec_command(id, &process_file);
        let (terminal, terminal_path) = if config.tty {
            let (master, path) = crate::runc::on_new_terminal(&mut command, config.terminal_size)?;
            (Some(master), path)
        } else {
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            (None, None)
        };
        let child = command.spawn().map_err(Error::io(&self.config.runc))?;
        Ok(ExecProcess {
            child,
            terminal,
            terminal_path,
        })
    }

    fn container_stats(&self, id: &str) -> Result<Usage, Error> {
        let (_, record) = self.record(id)?;
        self.cgroups.usage(&record.cgroups_path)
    }

    fn attach_stdin(&self, id: &str) -> Result<std::fs::File, Error> {
        let (dir, record) = self.record(id)?;
        if !record.config.stdin {
            return Err(Error::Invalid(format!("container {id} has no stdin")));
        }
        self.expect_running(id)?;
        open_fifo_writer(id, &dir.join("stdin"))
    }

    fn resize_terminal(&self, id: &str, rows: u16, columns: u16) -> Result<(), Error> {
        let (dir, record) = self.record(id)?;
        if !record.config.tty {
            return Err(Error::Invalid(format!("container {id} has no terminal")));
        }
        self.expect_running(id)?;
        let path = dir.join("resize");
        let mut fifo = open_fifo_writer(id, &path)?;
        std::io::Write::write_all(&mut fifo, format!("{rows} {columns}\n").as_bytes())
            .map_err(Error::io(&path))
    }

    fn pod_stats(&self, pod_uid: &str) -> Result<Usage, Error> {
        let sandbox = self
            .sandbox(pod_uid)?
            .ok_or_else(|| Error::SandboxNotFound(pod_uid.to_owned()))?;
        self.cgroups.usage(&sandbox.cgroup_parent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_files_behind_symlinks_are_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("host-secret");
        std::fs::write(&secret, "root:x:0:0::/:/bin/sh\n").unwrap();
        let good = tmp.path().join("good");
        std::fs::create_dir_all(good.join("etc")).unwrap();
        std::fs::write(good.join("etc/passwd"), "app:x:1:1::/:/bin/sh\n").unwrap();
        assert_eq!(
            read_image_file(&good, &["etc", "passwd"]),
            "app:x:1:1::/:/bin/sh\n"
        );
        let linked_file = tmp.path().join("linked-file");
        std::fs::create_dir_all(linked_file.join("etc")).unwrap();
        std::os::unix::fs::symlink(&secret, linked_file.join("etc/passwd")).unwrap();
        assert_eq!(read_image_file(&linked_file, &["etc", "passwd"]), "");
        let linked_dir = tmp.path().join("linked-dir");
        std::fs::create_dir_all(&linked_dir).unwrap();
        std::os::unix::fs::symlink(good.join("etc"), linked_dir.join("etc")).unwrap();
        assert_eq!(read_image_file(&linked_dir, &["etc", "passwd"]), "");
        assert_eq!(read_image_file(&good, &["etc", "group"]), "");
    }
}
