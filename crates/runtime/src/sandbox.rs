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
        return Ok(existing);
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
    if any {
        // Runs inside the new namespaces: the hostname goes into the new UTS namespace.
        unshare.args([
            "sh",
            "-c",
            "[ -z \"$1\" ] || printf %s \"$1\" > /proc/sys/kernel/hostname",
            "sh",
        ]);
        unshare.arg(if uts_ns.is_some() {
            config.hostname.as_str()
        } else {
            ""
        });
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
        cgroup_parent,
        created_at: jiff::Timestamp::now(),
    };
    crate::state::write_json(&dir.join("sandbox.json"), &sandbox)?;
    Ok(sandbox)
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
