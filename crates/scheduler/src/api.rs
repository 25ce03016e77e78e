//! The scheduler's writes to the API server, each off the scheduling loop (spawned on the
//! runtime) so API latency never slows scheduling: pod status (PodScheduled condition,
//! nominatedNodeName), preemption victims' deletion, and Events.

use std::sync::Arc;

use clientkit::{EventType, Recorder};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::pod_info::PodInfo;

/// Upstream's component name, also `spec.schedulerName`'s default.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Clone)]
pub struct ApiWriter {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub runtime: tokio::runtime::Handle,
}

impl ApiWriter {
    pub fn new(client: kube::Client, runtime: tokio::runtime::Handle) -> ApiWriter {
        ApiWriter {
            recorder: Recorder::new(client.clone(), DEFAULT_SCHEDULER_NAME),
            client,
            runtime,
        }
    }

    pub fn event(&self, pod: &Pod, kind: EventType, reason: &'static str, message: String) {
        let recorder = self.recorder.clone();
        let reference = clientkit::events::reference(pod);
        self.runtime.spawn(async move {
            recorder.record(&reference, kind, reason, &message).await;
        });
    }

    /// A failed attempt: a FailedScheduling event, and the PodScheduled=False condition (and
    /// the nominated node) written to the pod's status when they change, as upstream's
    /// `handleSchedulingFailure`.
    pub fn scheduling_failed(
        &self,
        pod: Arc<Pod>,
        reason: &'static str,
        message: String,
        nominated: Option<String>,
    ) {
        self.event(&pod, EventType::Warning, "FailedScheduling", message.clone());
        let status = pod.status.as_ref();
        let current = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let condition_same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        let nominated_changed = nominated
            .as_ref()
            .is_some_and(|n| status.and_then(|s| s.nominated_node_name.as_ref()) != Some(n));
        if condition_same && !nominated_changed {
            return;
        }
        // The transition time moves only when the status flips.
        let transition = match current {
            Some(c) if c.status == "False" => c.last_transition_time.clone(),
            _ => None,
        }
        .unwrap_or(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        let condition = PodCondition {
            type_: "PodScheduled".to_owned(),
            status: "False".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_transition_time: Some(transition),
            ..PodCondition::default()
        };
        let mut patch = serde_json::json!({"status": {"conditions": [condition]}});
        if let Some(node) = nominated.filter(|_| nominated_changed) {
            patch["status"]["nominatedNodeName"] = node.into();
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.runtime.spawn(async move {
            if let Err(err) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, "cannot update the pod's PodScheduled condition: {err}");
            }
        });
    }

    /// Preemption: marks a victim with the DisruptionTarget condition, deletes it (gracefully)
    /// and records why on it, as upstream's preemption does.
    pub fn preempt(&self, victim: Arc<Pod>, preemptor: &PodInfo, node: &str) {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            victim.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = victim.metadata.name.clone().unwrap_or_default();
        let message = format!("Preempted by pod {} on node {node}", preemptor.uid);
        let scheduler_name = preemptor
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.clone())
            .unwrap_or_else(|| "default-scheduler".to_owned());
        let disruption = PodCondition {
            type_: "DisruptionTarget".to_owned(),
            status: "True".to_owned(),
            reason: Some("PreemptionByScheduler".to_owned()),
            message: Some(format!(
                "{scheduler_name}: preempting to accommodate a higher priority pod"
            )),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            ..PodCondition::default()
        };
        let recorder = self.recorder.clone();
        let reference = clientkit::events::reference(victim.as_ref());
        self.runtime.spawn(async move {
            let patch = serde_json::json!({"status": {"conditions": [disruption]}});
            if let Err(err) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                tracing::debug!(pod = %name, "cannot mark a preemption victim: {err}");
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    recorder
                        .record(&reference, EventType::Normal, "Preempted", &message)
                        .await
                }
                Err(err) => tracing::debug!(pod = %name, "cannot delete a preemption victim: {err}"),
            }
        });
    }

    /// Clears the nominated node of a pod that lost its nomination.
    pub fn clear_nominated_node(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.runtime.spawn(async move {
            let patch = serde_json::json!({"status": {"nominatedNodeName": null}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        });
    }
}
