//! cgroup v2: the unified hierarchy; usage from `cpu.stat` and `memory.current`, OOM kills
//! from `memory.events`.

use std::path::Path;

use super::{QUOTA_PERIOD, join, keyed_value, write_file};
use crate::Error;
use crate::stats::Usage;

/// cgroup v2's cpu.weight for v1 shares (runc's `ConvertCPUSharesToCgroupV2Value`).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        0
    } else {
        1 + (shares.saturating_sub(2) * 9999) / 262_142
    }
}

pub(super) fn create_pod(
    root: &Path,
    cgroup: &str,
    shares: u64,
    quota: Option<i64>,
    memory: Option<i64>,
    pids: Option<i64>,
) -> Result<(), Error> {
    // Each ancestor delegates the controllers to its children before the pod's files exist.
    let mut dir = root.to_path_buf();
    for component in cgroup.trim_matches('/').split('/') {
        write_file(&dir, "cgroup.subtree_control", "+cpu +memory +pids")?;
        dir = dir.join(component);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    }
    write_file(&dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    if let Some(quota) = quota {
        write_file(&dir, "cpu.max", &format!("{quota} {QUOTA_PERIOD}"))?;
    }
    if let Some(memory) = memory {
        write_file(&dir, "memory.max", &memory.to_string())?;
    }
    if let Some(pids) = pids {
        write_file(&dir, "pids.max", &pids.to_string())?;
    }
    Ok(())
}

pub(super) fn oom_kills(root: &Path, cgroup: &str) -> Option<u64> {
    let text = std::fs::read_to_string(join(root, cgroup).join("memory.events")).ok()?;
    keyed_value(&text, "oom_kill")
}

pub(super) fn usage(root: &Path, cgroup: &str) -> Result<Usage, Error> {
    let dir = join(root, cgroup);
    let read = |name: &str| -> Result<String, Error> {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(Error::io(&path))
    };
    let cpu_usage_nanos = keyed_value(&read("cpu.stat")?, "usage_usec").unwrap_or(0) * 1000;
    let memory_usage_bytes: u64 = read("memory.current")?.trim().parse().unwrap_or(0);
    let inactive_file = keyed_value(&read("memory.stat")?, "inactive_file").unwrap_or(0);
    Ok(Usage {
        timestamp: jiff::Timestamp::now(),
        cpu_usage_nanos,
        memory_usage_bytes,
        memory_working_set_bytes: memory_usage_bytes.saturating_sub(inactive_file),
    })
}
