//! cgroups: where a pod's and a container's cgroups go (kubelet's layout for the cgroupfs
//! driver), kubelet's CPU conversions, and the files read back (usage, OOM kills) from either
//! a v1 hierarchy per controller (`v1`, this machine's hybrid layout) or the unified v2
//! hierarchy (`v2`, real hosts). runc creates and limits the container cgroups itself.

mod v1;
mod v2;

use std::path::{Path, PathBuf};

use crate::stats::Usage;
use crate::{Error, PodResources, QosClass};

/// kubelet's `MinShares` / `MaxShares` / `SharesPerCPU` / `MilliCPUToCPU`.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const MILLI_CPU_TO_CPU: i64 = 1000;
/// The CFS period kubelet uses (100 ms) and the smallest quota it sets (1 ms).
pub const QUOTA_PERIOD: u64 = 100_000;
const MIN_QUOTA_PERIOD: i64 = 1000;

/// `cpu.shares` for a CPU request (kubelet's `MilliCPUToShares`): no request → 2.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = (milli_cpu * SHARES_PER_CPU / MILLI_CPU_TO_CPU) as u64;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// CFS quota for a CPU limit over `period` µs (kubelet's `MilliCPUToQuota`): none → 0.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    let quota = milli_cpu * period as i64 / MILLI_CPU_TO_CPU;
    quota.max(MIN_QUOTA_PERIOD)
}

/// The pod cgroup under `root` (kubelet's cgroupRoot, `kubepods` by default):
/// `/kubepods/pod<uid>` for Guaranteed pods, `/kubepods/{burstable,besteffort}/pod<uid>`.
pub fn pod_cgroup(root: &str, qos: QosClass, pod_uid: &str) -> String {
    let root = root.trim_matches('/');
    match qos {
        QosClass::Guaranteed => format!("/{root}/pod{pod_uid}"),
        QosClass::Burstable => format!("/{root}/burstable/pod{pod_uid}"),
        QosClass::BestEffort => format!("/{root}/besteffort/pod{pod_uid}"),
    }
}

/// The cgroup hierarchies of this host.
#[derive(Clone, Debug)]
pub enum Cgroups {
    /// One hierarchy per controller (or group of controllers): (controllers, mount point).
    V1(v1::Hierarchies),
    /// The unified hierarchy's mount point.
    V2(PathBuf),
}

impl Cgroups {
    /// Reads /proc/self/mountinfo: v2 when /sys/fs/cgroup itself is cgroup2, else v1.
    pub fn detect() -> Result<Cgroups, Error> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Ok(Self::from_mountinfo(&text))
    }

    fn from_mountinfo(text: &str) -> Cgroups {
        let mounts = parse_mountinfo(text);
        if let Some(m) = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2" && m.mountpoint == "/sys/fs/cgroup")
        {
            return Cgroups::V2(PathBuf::from(&m.mountpoint));
        }
        Cgroups::V1(v1::Hierarchies::from_mounts(&mounts))
    }

    pub fn is_v2(&self) -> bool {
        matches!(self, Cgroups::V2(_))
    }

    /// How many processes the kernel's OOM killer killed in a cgroup (None: no such cgroup).
    pub fn oom_kills(&self, cgroup: &str) -> Option<u64> {
        match self {
            Cgroups::V1(h) => h.oom_kills(cgroup),
            Cgroups::V2(root) => v2::oom_kills(root, cgroup),
        }
    }

    /// CPU and memory usage of a cgroup.
    pub fn usage(&self, cgroup: &str) -> Result<Usage, Error> {
        match self {
            Cgroups::V1(h) => h.usage(cgroup),
            Cgroups::V2(root) => v2::usage(root, cgroup),
        }
    }

    /// Creates a pod cgroup with its limits (kubelet's pod container manager); runc then
    /// creates the containers' cgroups below it.
    pub fn create_pod(&self, cgroup: &str, resources: &PodResources) -> Result<(), Error> {
        let shares = milli_cpu_to_shares(resources.cpu_request_milli);
        let quota = resources
            .cpu_limit_milli
            .map(|l| milli_cpu_to_quota(l, QUOTA_PERIOD))
            .filter(|q| *q > 0);
        let memory = resources.memory_limit_bytes.filter(|m| *m > 0);
        let pids = resources.pids_limit.filter(|p| *p > 0);
        match self {
            Cgroups::V1(h) => h.create_pod(cgroup, shares, quota, memory, pids),
            Cgroups::V2(root) => v2::create_pod(root, cgroup, shares, quota, memory, pids),
        }
    }

    /// Removes a cgroup and every cgroup below it in every hierarchy (bottom-up rmdir; a
    /// cgroup that still has processes fails with EBUSY). Missing is fine.
    pub fn remove(&self, cgroup: &str) -> Result<(), Error> {
        let roots = match self {
            Cgroups::V1(h) => h.all_roots(),
            Cgroups::V2(root) => vec![root.clone()],
        };
        for root in roots {
            remove_tree(&join(&root, cgroup))?;
        }
        Ok(())
    }
}

/// Writes one cgroup control file.
pub(crate) fn write_file(dir: &Path, name: &str, value: &str) -> Result<(), Error> {
    let path = dir.join(name);
    std::fs::write(&path, value).map_err(Error::io(&path))
}

pub(crate) fn join(root: &Path, cgroup: &str) -> PathBuf {
    root.join(cgroup.trim_start_matches('/'))
}

fn remove_tree(dir: &Path) -> Result<(), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir)(e)),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    // A cgroup emptied a moment ago can still be busy while the kernel finishes its exit.
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io(dir)(e)),
        }
    }
}

pub(crate) struct MountInfo {
    pub mountpoint: String,
    pub fstype: String,
    pub super_options: String,
}

pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mountpoint = pre.split(' ').nth(4)?.replace("\\040", " ");
            let mut post = post.split(' ');
            let fstype = post.next()?.to_owned();
            let _source = post.next();
            let super_options = post.next().unwrap_or_default().to_owned();
            Some(MountInfo {
                mountpoint,
                fstype,
                super_options,
            })
        })
        .collect()
}

/// Reads `key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_cpu_conversions() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(500_000), 262_144);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), 0);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), 1000, "at least 1 ms");
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, QUOTA_PERIOD), 200_000);
    }

    #[test]
    fn pod_cgroups_by_qos() {
        assert_eq!(
            pod_cgroup("kubepods", QosClass::Guaranteed, "u1"),
            "/kubepods/podu1"
        );
        assert_eq!(
            pod_cgroup("/kubepods/", QosClass::Burstable, "u1"),
            "/kubepods/burstable/podu1"
        );
        assert_eq!(
            pod_cgroup("t/kubepods", QosClass::BestEffort, "u1"),
            "/t/kubepods/besteffort/podu1"
        );
    }

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
38 35 0:33 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
39 35 0:34 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
";

    #[test]
    fn detects_hybrid_as_v1_and_unified_as_v2() {
        let Cgroups::V1(h) = Cgroups::from_mountinfo(HYBRID) else {
            panic!("hybrid is v1")
        };
        assert_eq!(
            h.controller_root("cpuacct"),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            h.controller_root("memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(h.controller_root("pids"), None);
        assert_eq!(
            h.all_roots().len(),
            4,
            "cleanup covers named and unified hierarchies too"
        );
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert!(Cgroups::from_mountinfo(unified).is_v2());
    }

    #[test]
    fn keyed_values() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(3));
        assert_eq!(keyed_value(text, "oom"), None);
    }

    fn write(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    #[test]
    fn v1_usage_and_oom_kills_from_controller_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().display();
        let mountinfo = format!(
            "37 35 0:32 / {root}/cpuacct rw - cgroup cgroup rw,cpuacct\n38 35 0:33 / {root}/memory rw - cgroup cgroup rw,memory\n"
        );
        let cgroups = Cgroups::from_mountinfo(&mountinfo);
        let cgroup = "/kubepods/burstable/podu/c1";
        write(
            &tmp.path().join("cpuacct/kubepods/burstable/podu/c1"),
            &[("cpuacct.usage", "123456789\n")],
        );
        write(
            &tmp.path().join("memory/kubepods/burstable/podu/c1"),
            &[
                ("memory.usage_in_bytes", "10000000\n"),
                (
                    "memory.stat",
                    "cache 5\ntotal_inactive_file 4000000\ntotal_active_file 1\n",
                ),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ),
            ],
        );
        let usage = cgroups.usage(cgroup).unwrap();
        assert_eq!(
            (
                usage.cpu_usage_nanos,
                usage.memory_usage_bytes,
                usage.memory_working_set_bytes
            ),
            (123_456_789, 10_000_000, 6_000_000)
        );
        assert_eq!(cgroups.oom_kills(cgroup), Some(2));
        assert_eq!(cgroups.oom_kills("/kubepods/other"), None);
    }

    #[test]
    fn v2_usage_and_oom_kills_from_unified_files() {
        let tmp = tempfile::tempdir().unwrap();
        let cgroups = Cgroups::V2(tmp.path().to_owned());
        write(
            &tmp.path().join("kubepods/podu/c1"),
            &[
                ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"),
                ("memory.current", "3000000\n"),
                ("memory.stat", "anon 100\nfile 2000000\ninactive_file 1000000\n"),
                ("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"),
            ],
        );
        let usage = cgroups.usage("/kubepods/podu/c1").unwrap();
        assert_eq!(
            (
                usage.cpu_usage_nanos,
                usage.memory_usage_bytes,
                usage.memory_working_set_bytes
            ),
            (1_500_000, 3_000_000, 2_000_000)
        );
        assert_eq!(cgroups.oom_kills("/kubepods/podu/c1"), Some(1));
        assert!(cgroups.usage("/kubepods/missing").is_err());
    }

    #[test]
    fn v2_pod_cgroup_delegates_controllers_and_writes_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let cgroups = Cgroups::V2(tmp.path().to_owned());
        let resources = PodResources {
            cpu_request_milli: 250,
            cpu_limit_milli: Some(500),
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(1024),
        };
        cgroups
            .create_pod("/kubepods/burstable/podu", &resources)
            .unwrap();
        let read = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap();
        assert_eq!(read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(
            read("kubepods/burstable/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
        assert_eq!(read("kubepods/burstable/podu/cpu.weight"), "10", "256 shares");
        assert_eq!(read("kubepods/burstable/podu/cpu.max"), "50000 100000");
        assert_eq!(read("kubepods/burstable/podu/memory.max"), (64 << 20).to_string());
        assert_eq!(read("kubepods/burstable/podu/pids.max"), "1024");
        assert_eq!(v2::shares_to_weight(2), 1);
        assert_eq!(v2::shares_to_weight(1024), 39);
        assert_eq!(v2::shares_to_weight(262_144), 10_000);
    }
}
