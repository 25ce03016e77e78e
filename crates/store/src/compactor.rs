//! Background compaction: the same policy for every backend.

use std::sync::Arc;
use std::time::Duration;

use crate::{Revision, Store, StoreError};

/// Keeps at least `retain_revisions` revisions and at least one `interval` of history, like
/// kube-apiserver's compactor (which compacts to the revision it saw one interval earlier).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    pub interval: Duration,
    pub retain_revisions: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(300),
            retain_revisions: 1000,
        }
    }
}

impl CompactionPolicy {
    /// The revision to compact to now, given the revision seen one interval ago.
    pub fn target(&self, previous_tick: Revision, now: Revision) -> Revision {
        previous_tick.min(now - self.retain_revisions)
    }
}

/// Runs the policy until the returned task is aborted or the store closes.
pub fn spawn_compactor(store: Arc<dyn Store>, policy: CompactionPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(policy.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous_tick: Revision = 0;
        let mut compacted: Revision = 0;
        loop {
            ticker.tick().await;
            let now = match store.current_revision().await {
                Ok(rev) => rev,
                Err(StoreError::Closed) => return,
                Err(err) => {
                    tracing::warn!(%err, "compactor: cannot read the current revision");
                    continue;
                }
            };
            let target = policy.target(previous_tick, now);
            previous_tick = now;
            if target <= compacted {
                continue;
            }
            match store.compact(target).await {
                // Another server compacted further already: that is the goal anyway.
                Ok(()) | Err(StoreError::Compacted { .. }) => {
                    tracing::debug!(revision = target, "compacted");
                    compacted = target;
                }
                Err(StoreError::Closed) => return,
                Err(err) => tracing::warn!(%err, revision = target, "compaction failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_interval_and_a_minimum_of_history() {
        let policy = CompactionPolicy {
            interval: Duration::from_secs(1),
            retain_revisions: 100,
        };
        assert_eq!(policy.target(0, 50), -50, "nothing to compact on the first tick");
        assert_eq!(policy.target(500, 550), 450, "keep at least 100 revisions");
        assert_eq!(policy.target(500, 5000), 500, "keep at least one interval");
    }
}
