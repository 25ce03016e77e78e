//! The OCI runtime spec (`config.json`) of a container, as containerd's CRI plugin builds it
//! for kubelet: the default mounts a pod expects, the sandbox's namespaces joined by path,
//! the securityContext (user, capabilities, privileged, no_new_privs, read-only root) and
//! resources as kubelet converts them. A pure function of its inputs.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cgroups::{QUOTA_PERIOD, milli_cpu_to_quota, milli_cpu_to_shares};
use crate::process::{Process, User};
use crate::{ContainerConfig, Propagation, Sandbox};

/// The capabilities a container gets by default (containerd's `defaultUnixCaps`, the same
/// 14 Docker grants).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux defines (numbers 0–40), for privileged containers and `ALL`.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths masked in unprivileged containers (containerd's defaults).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths read-only in unprivileged containers (containerd's defaults).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A host device given to a privileged container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

pub struct SpecInput<'a> {
    pub config: &'a ContainerConfig,
    pub sandbox: &'a Sandbox,
    pub process: &'a Process,
    pub user: &'a User,
    pub rootfs: &'a Path,
    pub cgroups_path: &'a str,
    /// Host devices (privileged containers only).
    pub devices: &'a [Device],
    /// The capabilities a privileged container or `add: [ALL]` gets (the runtime's own).
    pub all_capabilities: &'a [String],
}

/// The names of the capabilities in a `/proc/<pid>/status` mask (`CapBnd` and friends).
pub fn capabilities_in_mask(mask: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The capability set: the default set (all when privileged), then `ALL` in add / drop, then
/// the named ones (containerd's order, so `add: [ALL], drop: [CHOWN]` is all but CHOWN).
/// "All" is `all`: the capabilities this process has (containerd's
/// `WithAllCurrentCapabilities`), since a container cannot get more than its runtime holds.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String], all: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = if privileged {
        all.to_vec()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    if add.iter().any(is_all) {
        caps = all.to_vec();
    }
    if drop.iter().any(is_all) {
        caps.clear();
    }
    for cap in add.iter().filter(|c| !is_all(c)).map(|c| normalize_capability(c)) {
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    for cap in drop
        .iter()
        .filter(|c| !is_all(c))
        .map(|c| normalize_capability(c))
    {
        caps.retain(|c| *c != cap);
    }
    caps
}

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` all name CAP_NET_ADMIN.
pub fn normalize_capability(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

fn bind(destination: &str, source: &Path, read_only: bool) -> Value {
    bind_propagating(destination, source, read_only, Propagation::None)
}

fn bind_propagating(destination: &str, source: &Path, read_only: bool, propagation: Propagation) -> Value {
    let propagation = match propagation {
        Propagation::None => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    };
    json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", propagation, if read_only { "ro" } else { "rw" }],
    })
}

pub fn generate(input: &SpecInput) -> Value {
    let config = input.config;
    let security = &config.security;
    let privileged = security.privileged;
    let caps = capabilities(
        privileged,
        &security.capabilities_add,
        &security.capabilities_drop,
        input.all_capabilities,
    );
    let no_new_privileges = !privileged && security.allow_privilege_escalation == Some(false);

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if privileged { "rw" } else { "ro" }]}),
    ];
    match &input.sandbox.shm {
        Some(shm) => mounts.push(bind("/dev/shm", shm, false)),
        None => mounts.push(bind("/dev/shm", Path::new("/dev/shm"), false)),
    }
    let read_only_root = security.read_only_root_filesystem;
    for (destination, file) in [
        ("/etc/hosts", &config.hosts_file),
        ("/etc/hostname", &config.hostname_file),
        ("/etc/resolv.conf", &config.resolv_conf),
    ] {
        if let Some(file) = file {
            mounts.push(bind(destination, file, read_only_root));
        }
    }
    // Parents before children, whatever order the volumes came in.
    let mut volumes: Vec<_> = config.mounts.iter().collect();
    volumes.sort_by_key(|m| Path::new(&m.container_path).components().count());
    for m in &volumes {
        mounts.push(bind_propagating(
            &m.container_path,
            &m.host_path,
            m.read_only,
            m.propagation,
        ));
    }
    // A propagating volume needs a root mount that propagates too (as containerd sets it).
    let rootfs_propagation = if volumes
        .iter()
        .any(|m| m.propagation == Propagation::Bidirectional)
    {
        Some("rshared")
    } else if volumes
        .iter()
        .any(|m| m.propagation == Propagation::HostToContainer)
    {
        Some("rslave")
    } else {
        None
    };

    let mut namespaces = vec![json!({"type": "mount"})];
    match &config.pid_namespace {
        Some(path) => namespaces.insert(0, json!({"type": "pid", "path": path})),
        None if !input.sandbox.host_pid => namespaces.insert(0, json!({"type": "pid"})),
        None => {}
    }
    for (kind, path) in [
        ("network", &input.sandbox.netns),
        ("ipc", &input.sandbox.ipc_ns),
        ("uts", &input.sandbox.uts_ns),
    ] {
        if let Some(path) = path {
            namespaces.push(json!({"type": kind, "path": path}));
        }
    }

    let resources = &config.resources;
    let mut cpu = json!({"shares": milli_cpu_to_shares(resources.cpu_request_milli.unwrap_or(0))});
    if let Some(limit) = resources.cpu_limit_milli.filter(|l| *l > 0) {
        cpu["quota"] = json!(milli_cpu_to_quota(limit, QUOTA_PERIOD));
        cpu["period"] = json!(QUOTA_PERIOD);
    }
    let mut linux_resources = json!({
        "devices": if privileged {
            json!([{"allow": true, "access": "rwm"}])
        } else {
            json!([{"allow": false, "access": "rwm"}])
        },
        "cpu": cpu,
    });
    if let Some(limit) = resources.memory_limit_bytes.filter(|l| *l > 0) {
        linux_resources["memory"] = json!({"limit": limit});
    }
    if let Some(limit) = resources.pids_limit.filter(|l| *l > 0) {
        linux_resources["pids"] = json!({"limit": limit});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": linux_resources,
        "cgroupsPath": input.cgroups_path,
    });
    if let Some(propagation) = rootfs_propagation {
        linux["rootfsPropagation"] = json!(propagation);
    }
    if privileged {
        let devices: Vec<Value> = input
            .devices
            .iter()
            .map(|d| {
                json!({"path": d.path, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                       "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
            })
            .collect();
        linux["devices"] = json!(devices);
    } else {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }

    let mut process = json!({
        "terminal": config.tty,
        "user": {"uid": input.user.uid, "gid": input.user.gid},
        "args": input.process.args,
        "env": input.process.env,
        "cwd": input.process.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": no_new_privileges,
    });
    if !input.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.user.additional_gids);
    }
    if let Some(adj) = config.oom_score_adj {
        // Lowering it needs CAP_SYS_RESOURCE, which this node may not have.
        process["oomScoreAdj"] = json!(adj.max(0));
    }

    json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": read_only_root},
        "mounts": mounts,
        "linux": linux,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mount, Resources, SecurityConfig};

    fn sandbox() -> Sandbox {
        Sandbox {
            pod_uid: "u1".into(),
            pod_name: "web".into(),
            namespace: "default".into(),
            hostname: "web".into(),
            netns: Some("/r/sandboxes/u1/ns/net".into()),
            ipc_ns: Some("/r/sandboxes/u1/ns/ipc".into()),
            uts_ns: Some("/r/sandboxes/u1/ns/uts".into()),
            shm: Some("/r/sandboxes/u1/shm".into()),
            host_pid: false,
            cgroup_parent: "/kubepods/burstable/podu1".into(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn spec_of(config: &ContainerConfig, sandbox: &Sandbox) -> Value {
        let process = Process {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
        };
        let user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![],
        };
        generate(&SpecInput {
            config,
            sandbox,
            process: &process,
            user: &user,
            rootfs: Path::new("/r/containers/c1/bundle/rootfs"),
            cgroups_path: "/kubepods/burstable/podu1/c1",
            devices: &[],
            all_capabilities: &all(),
        })
    }

    fn all() -> Vec<String> {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    }

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn capabilities_default_add_drop_all() {
        let s = |v: &[&str]| v.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        let all = all();
        assert_eq!(capabilities(false, &[], &[], &all).len(), 14);
        let caps = capabilities(false, &s(&["NET_ADMIN", "cap_sys_time"]), &s(&["KILL"]), &all);
        assert!(caps.contains(&"CAP_NET_ADMIN".into()) && caps.contains(&"CAP_SYS_TIME".into()));
        assert!(!caps.contains(&"CAP_KILL".into()));
        assert_eq!(capabilities(false, &s(&["ALL"]), &s(&["CHOWN"]), &all).len(), 40);
        assert_eq!(
            capabilities(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"]), &all),
            vec!["CAP_NET_BIND_SERVICE"]
        );
        assert_eq!(capabilities(true, &[], &[], &all).len(), 41);
        let without_sys_resource = capabilities_in_mask(0x1ff_ffff_ffff & !(1 << 24));
        assert_eq!(without_sys_resource.len(), 40);
        assert!(!without_sys_resource.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert_eq!(
            capabilities(true, &[], &[], &without_sys_resource),
            without_sys_resource
        );
    }

    #[test]
    fn pod_defaults_namespaces_and_mounts() {
        let config = ContainerConfig {
            hosts_file: Some("/p/etc-hosts".into()),
            mounts: vec![
                Mount {
                    container_path: "/data/sub".into(),
                    host_path: "/v/sub".into(),
                    read_only: false,
                    propagation: Propagation::HostToContainer,
                },
                Mount {
                    container_path: "/data".into(),
                    host_path: "/v/data".into(),
                    read_only: true,
                    propagation: Propagation::None,
                },
            ],
            ..Default::default()
        };
        let spec = spec_of(&config, &sandbox());
        let destinations: Vec<&str> = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            destinations,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/shm",
                "/etc/hosts",
                "/data",
                "/data/sub"
            ]
        );
        assert_eq!(spec["mounts"][8]["options"], json!(["rbind", "rprivate", "ro"]));
        assert_eq!(spec["mounts"][9]["options"], json!(["rbind", "rslave", "rw"]));
        assert_eq!(spec["linux"]["rootfsPropagation"], "rslave");
        assert_eq!(spec["mounts"][4]["options"][3], "ro", "/sys is read-only");
        assert_eq!(spec["mounts"][6]["source"], "/r/sandboxes/u1/shm");
        let ns = &spec["linux"]["namespaces"];
        assert_eq!(ns[0], json!({"type": "pid"}));
        assert_eq!(
            ns[2],
            json!({"type": "network", "path": "/r/sandboxes/u1/ns/net"})
        );
        assert_eq!(strings(&spec["linux"]["maskedPaths"]).len(), MASKED_PATHS.len());
        assert_eq!(spec["process"]["noNewPrivileges"], false);
        assert_eq!(spec["process"]["user"], json!({"uid": 1000, "gid": 1000}));
        assert_eq!(spec["root"]["readonly"], false);
        assert!(spec.pointer("/process/oomScoreAdj").is_none());
        assert_eq!(spec["linux"]["cgroupsPath"], "/kubepods/burstable/podu1/c1");

        let host = Sandbox {
            netns: None,
            uts_ns: None,
            ..sandbox()
        };
        let no_volumes = ContainerConfig::default();
        assert!(
            spec_of(&no_volumes, &sandbox())["linux"]
                .get("rootfsPropagation")
                .is_none()
        );
        let ns = spec_of(&config, &host)["linux"]["namespaces"].clone();
        assert_eq!(
            ns,
            json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc", "path": "/r/sandboxes/u1/ns/ipc"}])
        );
        let host_pid = Sandbox {
            host_pid: true,
            ..sandbox()
        };
        assert_eq!(
            spec_of(&config, &host_pid)["linux"]["namespaces"][0],
            json!({"type": "mount"})
        );
    }

    #[test]
    fn security_context() {
        let config = ContainerConfig {
            security: SecurityConfig {
                read_only_root_filesystem: true,
                allow_privilege_escalation: Some(false),
                ..Default::default()
            },
            resolv_conf: Some("/p/resolv.conf".into()),
            oom_score_adj: Some(-997),
            ..Default::default()
        };
        let spec = spec_of(&config, &sandbox());
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(spec["process"]["noNewPrivileges"], true);
        assert_eq!(spec["process"]["oomScoreAdj"], 0, "never negative");
        assert_eq!(
            spec["mounts"][7]["options"][2], "ro",
            "resolv.conf read-only with a read-only root"
        );

        let privileged = ContainerConfig {
            security: SecurityConfig {
                privileged: true,
                allow_privilege_escalation: Some(false),
                ..Default::default()
            },
            ..Default::default()
        };
        let spec = spec_of(&privileged, &sandbox());
        assert_eq!(strings(&spec["process"]["capabilities"]["bounding"]).len(), 41);
        assert!(spec["linux"].get("maskedPaths").is_none());
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert_eq!(spec["mounts"][4]["options"][3], "rw");
        assert_eq!(spec["process"]["noNewPrivileges"], false);
    }

    #[test]
    fn resources_as_kubelet_converts_them() {
        let config = ContainerConfig {
            resources: Resources {
                cpu_request_milli: Some(250),
                cpu_limit_milli: Some(500),
                memory_limit_bytes: Some(64 << 20),
                pids_limit: Some(100),
            },
            ..Default::default()
        };
        let r = spec_of(&config, &sandbox())["linux"]["resources"].clone();
        assert_eq!(
            r["cpu"],
            json!({"shares": 256, "quota": 50_000, "period": 100_000})
        );
        assert_eq!(r["memory"], json!({"limit": 64 << 20}));
        assert_eq!(r["pids"], json!({"limit": 100}));
        let best_effort = spec_of(&ContainerConfig::default(), &sandbox())["linux"]["resources"].clone();
        assert_eq!(best_effort["cpu"], json!({"shares": 2}));
        assert!(best_effort.get("memory").is_none());
    }
}
