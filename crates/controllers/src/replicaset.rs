//! The ReplicaSet controller, and the ReplicationController controller on the same logic (as
//! upstream, which runs its ReplicaSet code on RCs converted to ReplicaSets): keep
//! `spec.replicas` active pods per owner — creating in slow-start batches (1, 2, 4, …, at most
//! 500 per sync), deleting the pods upstream's ranking puts first — with expectations so a
//! lagging watch causes no duplicates; adopt and release pods by selector; report status
//! (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration, the
//! ReplicaFailure condition) and look again after minReadySeconds.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{self as metav1, Time};
use kube::Resource;
use kube::api::{Api, PostParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Context;
use crate::controller_ref::{self, Owner};
use crate::expectations::Expectations;
use crate::informer::{self, Cache, Change};
use crate::pod_control::{self, controller_of};
use crate::pod_ranking;
use crate::workqueue::{self, WorkQueue};

/// At most this many pods are created or deleted in one sync (upstream's `BurstReplicas`).
const BURST_REPLICAS: usize = 500;
/// Workers per controller (kube-controller-manager's `--concurrent-replicaset-syncs`, 5).
const WORKERS: usize = 5;

/// What the shared logic needs of the kind it manages.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The event source (`replicaset-controller`, `replication-controller`).
    const COMPONENT: &'static str;
    /// The object as a ReplicaSet (identity for ReplicaSets).
    fn as_replica_set(&self) -> ReplicaSet;
    /// The object with a new status, from the ReplicaSet form of it.
    fn with_status(&self, status: ReplicaSetStatus) -> Self;
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";

    fn as_replica_set(&self) -> ReplicaSet {
        self.clone()
    }

    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rs = self.clone();
        rs.status = Some(status);
        rs
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";

    fn as_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().map(|s| ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| ReplicaSetCondition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
            ..ReplicaSetStatus::default()
        });
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: metav1::LabelSelector {
                    match_labels: spec.selector,
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status,
        }
    }

    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rc = self.clone();
        rc.status = Some(ReplicationControllerStatus {
            replicas: status.replicas,
            fully_labeled_replicas: status.fully_labeled_replicas,
            ready_replicas: status.ready_replicas,
            available_replicas: status.available_replicas,
            observed_generation: status.observed_generation,
            conditions: status.conditions.map(|cs| {
                cs.into_iter()
                    .map(|c| ReplicationControllerCondition {
                        type_: c.type_,
                        status: c.status,
                        reason: c.reason,
                        message: c.message,
                        last_transition_time: c.last_transition_time,
                    })
                    .collect()
            }),
        });
        rc
    }
}

pub fn start_replica_sets(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run::<ReplicaSet>(ctx))
}

pub fn start_replication_controllers(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run::<ReplicationController>(ctx))
}

struct Controller<K: Replicated> {
    client: kube::Client,
    recorder: clientkit::Recorder,
    expectations: Expectations,
    queue: WorkQueue,
    owners: Cache<K>,
    pods: Cache<Pod>,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn meta_key(meta: &metav1::ObjectMeta) -> String {
    key(
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

pub(crate) fn selector_of(selector: &metav1::LabelSelector) -> Option<LabelSelector> {
    LabelSelector::from_json(&serde_json::to_value(selector).ok()?).ok()
}

fn labels(meta: &metav1::ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

async fn run<K: Replicated>(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let shared: Arc<std::sync::OnceLock<Arc<Controller<K>>>> = Arc::default();

    let q = queue.clone();
    let on_owner = {
        let shared = shared.clone();
        move |(old, new): Change<K>| {
            let obj = new.as_ref().or(old.as_ref()).expect("a change has an object");
            let k = meta_key(obj.meta());
            if new.is_none()
                && let Some(c) = shared.get()
            {
                c.expectations.delete(&k);
            }
            q.add(k);
        }
    };
    let (owners, owners_feed) = informer::informer(Api::<K>::all(ctx.client.clone()), on_owner);
    let on_pod = {
        let shared = shared.clone();
        move |change: Change<Pod>| {
            if let Some(c) = shared.get() {
                c.pod_changed(change);
            }
        }
    };
    let (pods, _pods_subscription) = ctx.pods.subscribe(on_pod);
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        recorder: clientkit::Recorder::new(ctx.client.clone(), K::COMPONENT),
        expectations: Expectations::default(),
        queue: queue.clone(),
        owners,
        pods,
    });
    let _ = shared.set(controller.clone());
    tokio::spawn(owners_feed);
    controller.owners.wait_synced().await;
    controller.pods.wait_synced().await;
    let c = controller.clone();
    workqueue::run_workers(queue, WORKERS, K::COMPONENT, move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
    .await;
    Ok(())
}

impl<K: Replicated> Controller<K> {
    /// The owner a pod's controllerRef names, if it is one of ours and still the same object.
    fn resolve(&self, namespace: &str, r: &metav1::OwnerReference) -> Option<Arc<K>> {
        if r.kind != K::kind(&()) {
            return None;
        }
        let owner = self.owners.get(namespace, &r.name)?;
        (owner.meta().uid.as_deref() == Some(r.uid.as_str())).then_some(owner)
    }

    /// Owners in the pod's namespace whose selector matches it (for orphans).
    fn owners_selecting(&self, pod: &Pod) -> Vec<Arc<K>> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let pod_labels = labels(&pod.metadata);
        self.owners
            .list(ns)
            .into_iter()
            .filter(|o| {
                let rs = o.as_replica_set();
                let Some(spec) = rs.spec.as_ref() else {
                    return false;
                };
                selector_of(&spec.selector).is_some_and(|s| !s.is_empty() && s.matches(&pod_labels))
            })
            .collect()
    }

    fn pod_changed(&self, (old, new): Change<Pod>) {
        match (old, new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(&pod);
                }
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                if let Some(r) = controller_of(&pod.metadata) {
                    if let Some(owner) = self.resolve(ns, r) {
                        let k = meta_key(owner.meta());
                        self.expectations.creation_observed(&k);
                        self.queue.add(k);
                    }
                    return;
                }
                for owner in self.owners_selecting(&pod) {
                    self.queue.add(meta_key(owner.meta()));
                }
            }
            (Some(old), Some(cur)) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                let label_changed = old.metadata.labels != cur.metadata.labels;
                if cur.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(&cur);
                    if label_changed {
                        self.pod_deleted(&old);
                    }
                    return;
                }
                let ns = cur.metadata.namespace.as_deref().unwrap_or_default();
                let (old_ref, cur_ref) = (controller_of(&old.metadata), controller_of(&cur.metadata));
                let ref_changed = old_ref != cur_ref;
                if ref_changed && let Some(owner) = old_ref.and_then(|r| self.resolve(ns, r)) {
                    self.queue.add(meta_key(owner.meta()));
                }
                if let Some(r) = cur_ref {
                    if let Some(owner) = self.resolve(ns, r) {
                        let k = meta_key(owner.meta());
                        let min_ready = owner
                            .as_replica_set()
                            .spec
                            .and_then(|s| s.min_ready_seconds)
                            .unwrap_or(0);
                        if !pod_ranking::is_ready(&old) && pod_ranking::is_ready(&cur) && min_ready > 0 {
                            // Look again once the pod counts as available.
                            let after = Duration::from_secs(min_ready as u64) + Duration::from_secs(1);
                            self.queue.add_after(k.clone(), after);
                        }
                        self.queue.add(k);
                    }
                    return;
                }
                if label_changed || ref_changed {
                    for owner in self.owners_selecting(&cur) {
                        self.queue.add(meta_key(owner.meta()));
                    }
                }
            }
            (Some(pod), None) => self.pod_deleted(&pod),
            (None, None) => {}
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(owner) = controller_of(&pod.metadata).and_then(|r| self.resolve(ns, r)) else {
            return;
        };
        let k = meta_key(owner.meta());
        self.expectations.deletion_observed(&k, &meta_key(&pod.metadata));
        self.queue.add(k);
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(owner) = self.owners.get(ns, name) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let rs = owner.as_replica_set();
        let spec = rs.spec.clone().unwrap_or_default();
        let needs_sync = self.expectations.satisfied(key);
        let Some(selector) = selector_of(&spec.selector) else {
            return Ok(());
        };
        let active: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| pod_ranking::is_active(p))
            .collect();
        let api_version = K::api_version(&()).into_owned();
        let kind = K::kind(&()).into_owned();
        let claimer = Owner {
            controller: pod_control::controller_ref(&api_version, &kind, &rs.metadata),
            namespace: ns,
            being_deleted: rs.metadata.deletion_timestamp.is_some(),
            selector: &selector,
        };
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let can_adopt = controller_ref::recheck_owner(
            Api::<K>::namespaced(self.client.clone(), ns),
            ns,
            name,
            &uid,
            &kind,
        );
        let pods_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pods = controller_ref::claim(&pods_api, &claimer, active, can_adopt).await?;

        let mut manage_error = None;
        if needs_sync
            && rs.metadata.deletion_timestamp.is_none()
            && let Err(err) = self.manage_replicas(key, &owner, &rs, &pods).await
        {
            manage_error = Some(err);
        }
        let status = calculate_status(&rs, &pods, manage_error.as_ref().map(|e| e.to_string()));
        let updated = self.update_status(&owner, &rs, status).await?;
        let updated_status = updated.as_replica_set().status.unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1);
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if manage_error.is_none()
            && min_ready > 0
            && updated_status.ready_replicas.unwrap_or(0) == replicas
            && updated_status.available_replicas.unwrap_or(0) != replicas
        {
            self.queue
                .add_after(key.to_owned(), Duration::from_secs(min_ready as u64));
        }
        match manage_error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    async fn manage_replicas(
        &self,
        key: &str,
        owner: &K,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
    ) -> anyhow::Result<()> {
        let spec = rs.spec.clone().unwrap_or_default();
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let wanted = spec.replicas.unwrap_or(1).max(0) as usize;
        let reference = clientkit::events::reference(owner);
        if pods.len() < wanted {
            let diff = (wanted - pods.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, diff);
            let template = spec.template.clone().unwrap_or_default();
            let controller = pod_control::controller_ref(&K::api_version(&()), &K::kind(&()), &rs.metadata);
            let (created, err) = slow_start_batch(diff, || {
                let (template, controller, reference) =
                    (template.clone(), controller.clone(), reference.clone());
                async move {
                    pod_control::create_pod(
                        &self.client,
                        &self.recorder,
                        ns,
                        &template,
                        name,
                        controller,
                        &reference,
                    )
                    .await
                    .map(|_| ())
                }
            })
            .await;
            for _ in created..diff {
                self.expectations.creation_observed(key);
            }
            if let Some(err) = err {
                anyhow::bail!(err);
            }
        } else if pods.len() > wanted {
            let diff = (pods.len() - wanted).min(BURST_REPLICAS);
            let related = self.related_pods(rs);
            let victims = pod_ranking::pods_to_delete(pods, &related, diff, jiff::Timestamp::now());
            self.expectations
                .expect_deletions(key, victims.iter().map(|p| meta_key(&p.metadata)));
            let deletions = victims.iter().map(|pod| {
                let reference = reference.clone();
                async move {
                    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                    match pod_control::delete_pod(&self.client, &self.recorder, ns, pod_name, &reference)
                        .await
                    {
                        Ok(()) => Ok(()),
                        Err(err) => {
                            self.expectations.deletion_observed(key, &meta_key(&pod.metadata));
                            if pod_control::is_not_found(&err) {
                                Ok(())
                            } else {
                                Err(pod_control::error_message(&err))
                            }
                        }
                    }
                }
            });
            let results = futures::future::join_all(deletions).await;
            if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
                anyhow::bail!(err);
            }
        }
        Ok(())
    }

    /// The pods of every ReplicaSet with the same controller (a Deployment's family), for
    /// ranking by how crowded their nodes are.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let Some(controller) = controller_of(&rs.metadata) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut related = Vec::new();
        let all_pods = self.pods.list(ns);
        for sibling in self.owners.list(ns) {
            let sibling = sibling.as_replica_set();
            if controller_of(&sibling.metadata).is_none_or(|r| r.uid != controller.uid) {
                continue;
            }
            let Some(selector) = sibling.spec.as_ref().and_then(|s| selector_of(&s.selector)) else {
                continue;
            };
            for pod in &all_pods {
                if selector.matches(&labels(&pod.metadata)) && seen.insert(pod.metadata.uid.clone()) {
                    related.push(pod.clone());
                }
            }
        }
        related
    }

    async fn update_status(
        &self,
        owner: &Arc<K>,
        rs: &ReplicaSet,
        mut status: ReplicaSetStatus,
    ) -> anyhow::Result<K> {
        let generation = rs.metadata.generation;
        let current = rs.status.clone().unwrap_or_default();
        status.observed_generation = generation.filter(|g| *g != 0);
        if status == current {
            return Ok((**owner).clone());
        }
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        match api
            .replace_status(name, &PostParams::default(), &owner.with_status(status.clone()))
            .await
        {
            Ok(updated) => Ok(updated),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Stale copy: retry once on a fresh read, as upstream does.
                let fresh = api.get(name).await?;
                let fresh_generation = fresh.meta().generation;
                status.observed_generation = fresh_generation.filter(|g| *g != 0);
                Ok(api
                    .replace_status(name, &PostParams::default(), &fresh.with_status(status))
                    .await?)
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Runs `count` calls of `op` in batches of 1, 2, 4, … (all of a batch at once), stopping
/// after the first batch with a failure; returns the successes and the first error.
async fn slow_start_batch<F, Fut>(count: usize, op: F) -> (usize, Option<String>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut remaining = count;
    let mut batch = 1usize.min(count);
    let mut successes = 0;
    while batch > 0 {
        let results = futures::future::join_all((0..batch).map(|_| op())).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        successes += ok;
        if let Some(Err(err)) = results.into_iter().find(Result::is_err) {
            return (successes, Some(err));
        }
        remaining -= batch;
        batch = remaining.min(2 * batch);
    }
    (successes, None)
}

fn calculate_status(rs: &ReplicaSet, pods: &[Arc<Pod>], manage_error: Option<String>) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let mut status = rs.status.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = jiff::Timestamp::now();
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let pod_labels = labels(&pod.metadata);
        if template_labels.iter().all(|(k, v)| pod_labels.get(k) == Some(v)) {
            fully_labeled += 1;
        }
        if pod_ranking::is_ready(pod) {
            ready += 1;
            if pod_ranking::is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let conditions = status.conditions.take().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    let conditions: Vec<_> = match (&manage_error, has_failure) {
        (Some(_), true) | (None, false) => conditions,
        (Some(message), false) => {
            let wanted = spec.replicas.unwrap_or(1) as usize;
            let reason = if pods.len() < wanted {
                "FailedCreate"
            } else if pods.len() > wanted {
                "FailedDelete"
            } else {
                ""
            };
            let mut conditions = conditions;
            conditions.push(ReplicaSetCondition {
                type_: "ReplicaFailure".into(),
                status: "True".into(),
                reason: Some(reason.into()).filter(|r: &String| !r.is_empty()),
                message: Some(message.clone()),
                last_transition_time: Some(Time(now)),
            });
            conditions
        }
        (None, true) => conditions
            .into_iter()
            .filter(|c| c.type_ != "ReplicaFailure")
            .collect(),
    };
    status.conditions = Some(conditions).filter(|c| !c.is_empty());
    status.replicas = pods.len() as i32;
    // Zero counts are omitted, as upstream's `omitempty` serializes them.
    let nonzero = |n: i32| Some(n).filter(|n| *n != 0);
    status.fully_labeled_replicas = nonzero(fully_labeled);
    status.ready_replicas = nonzero(ready);
    status.available_replicas = nonzero(available);
    status
}

#[cfg(test)]
mod tests {
    use super::slow_start_batch;
    use std::sync::Mutex;

    #[tokio::test]
    async fn slow_start_doubles_and_stops_at_the_first_failing_batch() {
        let calls = Mutex::new(0);
        let (ok, err) = slow_start_batch(10, || {
            *calls.lock().unwrap() += 1;
            async { Ok(()) }
        })
        .await;
        assert_eq!((ok, err), (10, None));
        assert_eq!(*calls.lock().unwrap(), 10);

        // Batches 1, 2, 4: the third call fails, so the batch of 4 is not started.
        let n = Mutex::new(0);
        let (ok, err) = slow_start_batch(10, || {
            let mut n = n.lock().unwrap();
            *n += 1;
            let fail = *n == 3;
            async move { if fail { Err("boom".to_owned()) } else { Ok(()) } }
        })
        .await;
        assert_eq!((ok, err.as_deref()), (2, Some("boom")));
        assert_eq!(*n.lock().unwrap(), 3);
    }
}
