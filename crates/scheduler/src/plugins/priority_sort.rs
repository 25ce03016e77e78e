//! PrioritySort (QueueSort): higher `spec.priority` first, then the pod queued earlier.

use std::time::Instant;

use crate::framework::{Plugin, QueueSortPlugin};
use crate::pod_info::PodInfo;

pub const NAME: &str = "PrioritySort";

pub struct PrioritySort;

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
    fn queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for PrioritySort {
    fn sort_key(&self, pod: &PodInfo, queued_at: Instant) -> (i64, Instant) {
        (-i64::from(pod.priority), queued_at)
    }
}
