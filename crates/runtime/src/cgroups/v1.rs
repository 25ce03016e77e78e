//! cgroup v1: one hierarchy per controller; usage from `cpuacct.usage` and the memory
//! controller, OOM kills from `memory.oom_control`.

use std::path::PathBuf;

use super::{MountInfo, QUOTA_PERIOD, join, keyed_value, write_file};
use crate::Error;
use crate::stats::Usage;

#[derive(Clone, Debug)]
pub struct Hierarchies {
    /// (controllers or `name=…`, mount point) of every cgroup / cgroup2 mount.
    mounts: Vec<(Vec<String>, PathBuf)>,
}

const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];

impl Hierarchies {
    pub(super) fn from_mounts(mounts: &[MountInfo]) -> Hierarchies {
        let mut found: Vec<(Vec<String>, PathBuf)> = Vec::new();
        for m in mounts {
            let controllers: Vec<String> = match m.fstype.as_str() {
                "cgroup" => m
                    .super_options
                    .split(',')
                    .filter(|o| CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_owned)
                    .collect(),
                "cgroup2" => Vec::new(),
                _ => continue,
            };
            // The same hierarchy can be mounted twice (bind mounts): keep the first.
            if m.fstype == "cgroup" && found.iter().any(|(c, _)| *c == controllers) {
                continue;
            }
            found.push((controllers, PathBuf::from(&m.mountpoint)));
        }
        Hierarchies { mounts: found }
    }

    pub fn controller_root(&self, controller: &str) -> Option<PathBuf> {
        self.mounts
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, p)| p.clone())
    }

    pub(super) fn all_roots(&self) -> Vec<PathBuf> {
        self.mounts.iter().map(|(_, p)| p.clone()).collect()
    }

    fn file(&self, controller: &str, cgroup: &str, name: &str) -> Option<PathBuf> {
        Some(join(&self.controller_root(controller)?, cgroup).join(name))
    }

    pub(super) fn create_pod(
        &self,
        cgroup: &str,
        shares: u64,
        quota: Option<i64>,
        memory: Option<i64>,
        pids: Option<i64>,
    ) -> Result<(), Error> {
        let dir = |controller: &str| -> Result<Option<PathBuf>, Error> {
            let Some(root) = self.controller_root(controller) else {
                return Ok(None);
            };
            let dir = join(&root, cgroup);
            std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
            Ok(Some(dir))
        };
        if let Some(cpu) = dir("cpu")? {
            write_file(&cpu, "cpu.shares", &shares.to_string())?;
            if let Some(quota) = quota {
                write_file(&cpu, "cpu.cfs_period_us", &QUOTA_PERIOD.to_string())?;
                write_file(&cpu, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if let Some(memory) = memory
            && let Some(dir) = dir("memory")?
        {
            write_file(&dir, "memory.limit_in_bytes", &memory.to_string())?;
        }
        if let Some(pids) = pids
            && let Some(dir) = dir("pids")?
        {
            write_file(&dir, "pids.max", &pids.to_string())?;
        }
        Ok(())
    }

    pub(super) fn oom_kills(&self, cgroup: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.file("memory", cgroup, "memory.oom_control")?).ok()?;
        keyed_value(&text, "oom_kill")
    }

    pub(super) fn usage(&self, cgroup: &str) -> Result<Usage, Error> {
        let read = |controller: &str, name: &str| -> Result<String, Error> {
            let path = self
                .file(controller, cgroup, name)
                .ok_or_else(|| Error::Invalid(format!("no cgroup v1 {controller} hierarchy")))?;
            std::fs::read_to_string(&path).map_err(Error::io(&path))
        };
        let cpu_usage_nanos = read("cpuacct", "cpuacct.usage")?.trim().parse().unwrap_or(0);
        let memory_usage_bytes: u64 = read("memory", "memory.usage_in_bytes")?
            .trim()
            .parse()
            .unwrap_or(0);
        let inactive_file = keyed_value(&read("memory", "memory.stat")?, "total_inactive_file").unwrap_or(0);
        Ok(Usage {
            timestamp: jiff::Timestamp::now(),
            cpu_usage_nanos,
            memory_usage_bytes,
            memory_working_set_bytes: memory_usage_bytes.saturating_sub(inactive_file),
        })
    }
}
