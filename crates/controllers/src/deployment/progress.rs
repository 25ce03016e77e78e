//! Deployment status and its conditions, as upstream's `sync.go` / `progress.go`: the
//! counts summed over the ReplicaSets, Available (MinimumReplicasAvailable / Unavailable),
//! Progressing (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//! NewReplicaSetAvailable, ProgressDeadlineExceeded), ReplicaFailure copied from a
//! ReplicaSet, and a requeue for when the progress deadline would pass.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};

use super::util::*;
use super::{Controller, key_of};

/// All replicas updated and available, and the latest spec observed.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = replicas(d);
    status.updated_replicas.unwrap_or(0) == want
        && status.replicas.unwrap_or(0) == want
        && status.available_replicas.unwrap_or(0) == want
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Any progress since the last status: more updated, ready or available, or fewer old.
fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

fn deployment_timed_out(d: &Deployment, status: &DeploymentStatus) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(status, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < Timestamp::now()),
    }
}

fn calculate_status(all: &[ReplicaSet], new_rs: Option<&ReplicaSet>, d: &Deployment) -> DeploymentStatus {
    let available = available_total(all);
    let unavailable = (spec_total(all) - available).max(0);
    let nonzero = |n: i32| Some(n).filter(|n| *n != 0);
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation.filter(|g| *g != 0),
        replicas: nonzero(actual_total(all)),
        updated_replicas: nonzero(new_rs.map(|rs| rs_status(rs).replicas).unwrap_or(0)),
        ready_replicas: nonzero(ready_total(all)),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero(unavailable),
        collision_count: current.collision_count,
        conditions: current.conditions,
        ..DeploymentStatus::default()
    };
    let condition = if available >= replicas(d) - max_unavailable(d) {
        new_condition(
            "Available",
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.",
        )
    } else {
        new_condition(
            "Available",
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut status, condition);
    status
}

/// The first ReplicaFailure condition among the ReplicaSets (the new one first).
fn replica_failure(all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let from = |rs: &ReplicaSet| {
        rs_status(rs)
            .conditions
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "ReplicaFailure")
            .map(|c| DeploymentCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time,
            })
    };
    new_rs
        .and_then(from)
        .or_else(|| all.iter().filter(|rs| Some(*rs) != new_rs).find_map(from))
}

impl Controller {
    /// Status for scaling, pausing and deletion: counts and Available only.
    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        new_rs: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> anyhow::Result<()> {
        let all: Vec<ReplicaSet> = old.iter().cloned().chain(new_rs.cloned()).collect();
        let status = calculate_status(&all, new_rs, d);
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    /// Status during a rollout, with the Progressing condition (upstream's `syncRolloutStatus`).
    pub(super) async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        all: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
    ) -> anyhow::Result<()> {
        let mut status = calculate_status(all, new_rs, d);
        if progress_deadline(d).is_none() {
            remove_condition(&mut status, "Progressing");
        }
        let current_status = d.status.clone().unwrap_or_default();
        let current = condition(&current_status, "Progressing").cloned();
        let complete = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        let rs_name = new_rs.and_then(|rs| rs.metadata.name.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        if progress_deadline(d).is_some() && !complete {
            if deployment_complete(d, &status) {
                let message = match &rs_name {
                    Some(rs) => format!("ReplicaSet {rs:?} has successfully progressed."),
                    None => format!("Deployment {d_name:?} has successfully progressed."),
                };
                set_condition(
                    &mut status,
                    new_condition("Progressing", "True", NEW_RS_AVAILABLE, &message),
                );
            } else if deployment_progressing(d, &status) {
                let message = match &rs_name {
                    Some(rs) => format!("ReplicaSet {rs:?} is progressing."),
                    None => format!("Deployment {d_name:?} is progressing."),
                };
                let mut condition = new_condition("Progressing", "True", RS_UPDATED, &message);
                if let Some(current) = &current {
                    if current.status == "True" {
                        condition.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, condition);
            } else if deployment_timed_out(d, &status) {
                let message = match &rs_name {
                    Some(rs) => format!("ReplicaSet {rs:?} has timed out progressing."),
                    None => format!("Deployment {d_name:?} has timed out progressing."),
                };
                set_condition(
                    &mut status,
                    new_condition("Progressing", "False", TIMED_OUT, &message),
                );
            }
        }
        match replica_failure(all, new_rs) {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if d.status.as_ref() == Some(&status) {
            self.requeue_stuck(d, &status);
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    /// Looks again when the progress deadline would pass, so a stuck rollout times out.
    fn requeue_stuck(&self, d: &Deployment, status: &DeploymentStatus) {
        let Some(deadline) = progress_deadline(d) else {
            return;
        };
        let current_status = d.status.clone().unwrap_or_default();
        let Some(current) = condition(&current_status, "Progressing") else {
            return;
        };
        if deployment_complete(d, status) || current.reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let Some(updated) = current.last_update_time.as_ref() else {
            return;
        };
        let due = updated.0 + jiff::SignedDuration::from_secs(i64::from(deadline));
        let after = due.duration_since(Timestamp::now());
        let key = key_of(&d.metadata);
        if after < jiff::SignedDuration::from_secs(1) {
            self.queue.add_rate_limited(key);
        } else {
            let after = Duration::try_from(after).unwrap_or_default() + Duration::from_secs(1);
            self.queue.add_after(key, after);
        }
    }
}
