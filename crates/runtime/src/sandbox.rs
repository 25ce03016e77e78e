//! Pod sandboxes without a pause process: the pod's network, IPC and UTS namespaces are made
//! by util-linux `unshare` and pinned by bind mounts on files under `ns/` (the workspace has no
//! `unsafe`, so no fork here), the hostname set inside the new UTS namespace; /dev/shm is a
//! tmpfs shared by the pod's containers. Removing unmounts and deletes them.

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;

use crate::rootfs::unmount;
use crate::{Error, Sandbox, SandboxConfig};

const SHM_SIZE: &str = "size=65536k";

pub fn dir(root: &Path, pod_uid: &str) -> PathBuf {
    root.join("sandboxes").join(pod_uid)
}

pub fn read(root: &Path, pod_uid: &str) -> Result<Option<Sandbox>, Error> {
    crate::state::read_json(&dir(root, pod_uid).join("sandbox.json"))
}

pub fn create(root: &Path, config: &SandboxConfig, cgroup_parent: String) -> Result<Sandbox, Error> {
    if config.pod_uid.is_empty() || config.pod_uid.contains('/') || config.pod_uid.starts_with('.') {
        return Err(Error::Invalid(format!("invalid pod uid {:?}", config.pod_uid)));
    }
    if let Some(existing) = read(root, &config.pod_uid)? {
        if pinned(&existing) {
            return Ok(existing);
        }
        // Its namespaces are gone (the node rebooted): make them again.
        tracing::info!(pod_uid = %config.pod_uid, "sandbox namespaces lost; recreating");
    }
    let dir = dir(root, &config.pod_uid);
    // A half-made sandbox from a crash: start over.
    destroy(&dir)?;
    let result = build(&dir, config, cgroup_parent);
    if result.is_err() {
        let _ = destroy(&dir);
    }
    result
}

fn build(dir: &Path, config: &SandboxConfig, cgroup_parent: String) -> Result<Sandbox, Error> {
    let ns = dir.join("ns");
    std::fs::create_dir_all(&ns).map_err(Error::io(&ns))?;
    let netns = (!config.host_network).then(|| ns.join("net"));
    let uts_ns = (!config.host_network).then(|| ns.join("uts"));
    let ipc_ns = (!config.host_ipc).then(|| ns.join("ipc"));

    let mut unshare = Command::new("unshare");
    let mut any = false;
    for (flag, file) in [("--net", &netns), ("--uts", &uts_ns), ("--ipc", &ipc_ns)] {
        if let Some(file) = file {
            std::fs::File::create(file).map_err(Error::io(file))?;
            unshare.arg(format!("{flag}={}", file.display()));
            any = true;
        }
    }
    let sysctls = sysctl_paths(config)?;
    if any {
        // Runs inside the new namespaces: the hostname goes into the new UTS namespace, the
        // pod's namespaced sysctls into its network and IPC namespaces (/proc/sys/net and
        // kernel.shm*/msg*/sem are the writer's namespace's).
        unshare.args([
            "sh",
            "-c",
            "[ -z \"$1\" ] || printf %s \"$1\" > /proc/sys/kernel/hostname || exit 1; shift
             while [ $# -gt 0 ]; do printf %s \"$2\" > \"/proc/sys/$1\" || exit 1; shift 2; done",
            "sh",
        ]);
        unshare.arg(if uts_ns.is_some() {
            config.hostname.as_str()
        } else {
            ""
        });
        for (path, value) in &sysctls {
            unshare.arg(path).arg(value);
        }
        let out = unshare.output().map_err(Error::io(Path::new("unshare")))?;
        if !out.status.success() {
            return Err(Error::Command {
                command: "unshare".into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
    }

    let shm = (!config.host_ipc).then(|| dir.join("shm"));
    if let Some(shm) = &shm {
        std::fs::create_dir_all(shm).map_err(Error::io(shm))?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        nix::mount::mount(
            Some("shm"),
            shm,
            Some("tmpfs"),
            flags,
            Some(format!("mode=1777,{SHM_SIZE}").as_str()),
        )
        .map_err(|e| Error::Mount(format!("mount tmpfs at {}: {e}", shm.display())))?;
    }

    let sandbox = Sandbox {
        pod_uid: config.pod_uid.clone(),
        pod_name: config.pod_name.clone(),
        namespace: config.namespace.clone(),
        hostname: config.hostname.clone(),
        netns,
        ipc_ns,
        uts_ns,
        shm,
        host_pid: config.host_pid,
        cgroup_parent,
        created_at: jiff::Timestamp::now(),
    };
    crate::state::write_json(&dir.join("sandbox.json"), &sandbox)?;
    Ok(sandbox)
}

/// Whether every namespace file of a sandbox still pins a namespace (an nsfs mount).
pub fn pinned(sandbox: &Sandbox) -> bool {
    [&sandbox.netns, &sandbox.ipc_ns, &sandbox.uts_ns]
        .into_iter()
        .flatten()
        .all(|path| {
            nix::sys::statfs::statfs(path)
                .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        })
}

/// The pod's sysctls as paths under /proc/sys. As kubelet, a name with a `/` uses `.` inside
/// a component (`net/ipv4/conf/eth0.1/rp_filter`), else dots separate components. Only
/// namespaced sysctls of namespaces the pod owns are taken.
fn sysctl_paths(config: &SandboxConfig) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (name, value) in &config.sysctls {
        let path = if name.contains('/') {
            name.clone()
        } else {
            name.replace('.', "/")
        };
        let valid = !path.is_empty()
            && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
        let ipc = path.starts_with("kernel/shm") || path.starts_with("kernel/msg") || path == "kernel/sem";
        let namespaced = (path.starts_with("net/") && !config.host_network) || (ipc && !config.host_ipc);
        if !valid || !namespaced {
            return Err(Error::Invalid(format!(
                "sysctl {name:?} is not a namespaced sysctl of this pod"
            )));
        }
        out.push((path, value.clone()));
    }
    Ok(out)
}

/// Unmounts the namespaces and /dev/shm and deletes the sandbox directory.
pub fn destroy(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    for name in ["ns/net", "ns/ipc", "ns/uts", "shm"] {
        unmount(&dir.join(name))?;
    }
    std::fs::remove_dir_all(dir).map_err(Error::io(dir))
}
