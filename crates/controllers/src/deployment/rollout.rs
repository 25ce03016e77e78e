//! The two rollout strategies. RollingUpdate grows the new ReplicaSet while the total stays
//! within replicas + maxSurge and shrinks old ones while availability stays at least
//! replicas − maxUnavailable (unhealthy old replicas go first); Recreate scales every old
//! ReplicaSet to zero, waits until their pods are gone, then scales the new one up.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::Controller;
use super::progress::deployment_complete;
use super::util::*;

impl Controller {
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<()> {
        let (new_rs, old) = self.all_replica_sets(d, rs_list, true).await?;
        let Some(mut new_rs) = new_rs else {
            anyhow::bail!("no new replica set");
        };
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new_rs.clone()]).collect();
        if let Some(scaled) = self.reconcile_new_replica_set(&all, &new_rs, d).await? {
            new_rs = scaled;
            let all: Vec<ReplicaSet> = old.iter().cloned().chain([new_rs.clone()]).collect();
            return self.sync_rollout_status(d, &all, Some(&new_rs)).await;
        }
        let (scaled_down, old) = self.reconcile_old_replica_sets(&all, old, &new_rs, d).await?;
        let all: Vec<ReplicaSet> = old.iter().cloned().chain([new_rs.clone()]).collect();
        if scaled_down {
            return self.sync_rollout_status(d, &all, Some(&new_rs)).await;
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &all, Some(&new_rs)).await
    }

    /// Scales the new ReplicaSet toward the Deployment's replicas as far as maxSurge allows.
    async fn reconcile_new_replica_set(
        &self,
        all: &[ReplicaSet],
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> anyhow::Result<Option<ReplicaSet>> {
        let want = replicas(d);
        let size = if rs_replicas(new_rs) == want {
            return Ok(None);
        } else if rs_replicas(new_rs) > want {
            want
        } else {
            new_rs_new_replicas(d, all, new_rs)
        };
        if size == rs_replicas(new_rs) {
            return Ok(None);
        }
        Ok(Some(self.scale_and_record(new_rs, size, d).await?))
    }

    /// Scales old ReplicaSets down as far as maxUnavailable allows; whether any shrank, and the
    /// old ReplicaSets as written.
    async fn reconcile_old_replica_sets(
        &self,
        all: &[ReplicaSet],
        old: Vec<ReplicaSet>,
        new_rs: &ReplicaSet,
        d: &Deployment,
    ) -> anyhow::Result<(bool, Vec<ReplicaSet>)> {
        let active_old = active(&old);
        if spec_total(&active_old) == 0 {
            return Ok((false, old));
        }
        let all_pods = spec_total(all);
        let min_available = replicas(d) - max_unavailable(d);
        let new_unavailable = rs_replicas(new_rs) - rs_status(new_rs).available_replicas.unwrap_or(0);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok((false, old));
        }
        // Unhealthy replicas first: they cost no availability.
        let (active_old, cleaned) = self
            .cleanup_unhealthy_replicas(active_old, d, max_scaled_down)
            .await?;
        let all: Vec<ReplicaSet> = active_old.iter().cloned().chain([new_rs.clone()]).collect();
        let (active_old, scaled) = self
            .scale_down_old_for_rolling_update(&all, active_old, d)
            .await?;
        let mut old = old;
        for updated in active_old {
            for rs in old.iter_mut() {
                if rs.metadata.uid == updated.metadata.uid {
                    *rs = updated.clone();
                }
            }
        }
        Ok((cleaned + scaled > 0, old))
    }

    async fn cleanup_unhealthy_replicas(
        &self,
        mut old: Vec<ReplicaSet>,
        d: &Deployment,
        max_cleanup: i32,
    ) -> anyhow::Result<(Vec<ReplicaSet>, i32)> {
        old.sort_by(by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let size = rs_replicas(rs);
            let available = rs_status(rs).available_replicas.unwrap_or(0);
            if size == 0 || size == available {
                continue;
            }
            let down = (max_cleanup - total).min(size - available);
            if down < 0 {
                // The status still counts pods of a size this ReplicaSet had before: growing it
                // back would break maxSurge. Upstream refuses the same way; the sync is retried
                // once the status catches up.
                anyhow::bail!(
                    "when cleaning up unhealthy replicas, got invalid request to scale down {}/{} {size} -> {}",
                    rs.metadata.namespace.as_deref().unwrap_or_default(),
                    rs.metadata.name.as_deref().unwrap_or_default(),
                    size - down
                );
            }
            *rs = self.scale_and_record(rs, size - down, d).await?;
            total += down;
        }
        Ok((old, total))
    }

    async fn scale_down_old_for_rolling_update(
        &self,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
        d: &Deployment,
    ) -> anyhow::Result<(Vec<ReplicaSet>, i32)> {
        let min_available = replicas(d) - max_unavailable(d);
        let available = available_total(all);
        if available <= min_available {
            return Ok((old, 0));
        }
        old.sort_by(by_creation);
        let to_scale_down = available - min_available;
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= to_scale_down {
                break;
            }
            let size = rs_replicas(rs);
            if size == 0 {
                continue;
            }
            let down = size.min(to_scale_down - total);
            *rs = self.scale_and_record(rs, size - down, d).await?;
            total += down;
        }
        Ok((old, total))
    }

    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> anyhow::Result<()> {
        let (mut new_rs, mut old) = self.all_replica_sets(d, rs_list, false).await?;
        let all = |new_rs: &Option<ReplicaSet>, old: &[ReplicaSet]| -> Vec<ReplicaSet> {
            old.iter().cloned().chain(new_rs.clone()).collect()
        };
        // Old ReplicaSets to zero first.
        let mut scaled_down = false;
        for rs in old.iter_mut() {
            if rs_replicas(rs) > 0 {
                *rs = self.scale_and_record(rs, 0, d).await?;
                scaled_down = true;
            }
        }
        if scaled_down {
            return self
                .sync_rollout_status(d, &all(&new_rs, &old), new_rs.as_ref())
                .await;
        }
        // Then wait until none of their pods runs.
        if self.old_pods_running(d, new_rs.as_ref(), &old, rs_list) {
            return self
                .sync_rollout_status(d, &all(&new_rs, &old), new_rs.as_ref())
                .await;
        }
        if new_rs.is_none() {
            (new_rs, old) = self.all_replica_sets(d, rs_list, true).await?;
        }
        if let Some(rs) = new_rs.as_mut() {
            let want = replicas(d);
            *rs = self.scale_and_record(rs, want, d).await?;
        }
        if deployment_complete(d, &d.status.clone().unwrap_or_default()) {
            self.cleanup(d, &old).await?;
        }
        self.sync_rollout_status(d, &all(&new_rs, &old), new_rs.as_ref())
            .await
    }

    fn old_pods_running(
        &self,
        d: &Deployment,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        rs_list: &[ReplicaSet],
    ) -> bool {
        if actual_total(old) > 0 {
            return true;
        }
        let new_uid = new_rs.and_then(|rs| rs.metadata.uid.clone());
        self.pods_by_replica_set(d, rs_list).iter().any(|(uid, pods)| {
            Some(uid) != new_uid.as_ref()
                && pods
                    .iter()
                    .any(|p| !matches!(crate::pod_ranking::phase(p), "Failed" | "Succeeded"))
        })
    }
}
