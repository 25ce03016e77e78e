//! cgroup v2: the unified hierarchy; usage from `cpu.stat` and `memory.current`, OOM kills
//! from `memory.events`.

use std::path::Path;

use super::{join, keyed_value};
use crate::Error;
use crate::stats::Usage;

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
