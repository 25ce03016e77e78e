//! Resource usage read from cgroups, for the agent's summary endpoint (what cAdvisor reports
//! to the metrics pipeline: cumulative CPU time and the memory working set).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub timestamp: jiff::Timestamp,
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_nanos: u64,
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file cache (what eviction and `kubectl top` use).
    pub memory_working_set_bytes: u64,
}
