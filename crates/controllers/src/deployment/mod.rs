//! The Deployment controller, as upstream's: owns ReplicaSets by selector, finds or creates
//! the new ReplicaSet for the current template (named `<deployment>-<pod-template-hash>`,
//! with revision annotations), rolls pods over with the RollingUpdate (maxSurge /
//! maxUnavailable) or Recreate strategy, scales proportionally when the Deployment is scaled
//! mid-rollout, keeps `revisionHistoryLimit` old ReplicaSets, and reports status and the
//! Available / Progressing conditions `kubectl rollout status` reads.
//!
//! Pieces: `util` (arithmetic, annotations, orderings), `rollout` (the two strategies),
//! `progress` (status and conditions); this module has the watches, the claim of
//! ReplicaSets, the new ReplicaSet, scaling and cleanup.

mod progress;
mod rollout;
pub mod util;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::controller_ref::{self, Owner};
use crate::informer::{self, Cache, Change};
use crate::pod_control::{self, controller_of, is_not_found};
use crate::replicaset::selector_of;
use crate::workqueue::{self, WorkQueue};
use clientkit::EventType;
use util::*;

/// Workers (kube-controller-manager's `--concurrent-deployment-syncs`, 5).
const WORKERS: usize = 5;

pub fn start(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

pub(crate) struct Controller {
    client: kube::Client,
    recorder: clientkit::Recorder,
    queue: WorkQueue,
    deployments: Cache<Deployment>,
    replica_sets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let shared: Arc<OnceLock<Arc<Controller>>> = Arc::default();
    let q = queue.clone();
    let (deployments, deployments_feed) = informer::informer(
        Api::<Deployment>::all(ctx.client.clone()),
        move |(old, new): Change<Deployment>| {
            if let Some(d) = new.as_ref().or(old.as_ref()) {
                q.add(key_of(&d.metadata));
            }
        },
    );
    let on_rs = {
        let shared = shared.clone();
        move |change: Change<ReplicaSet>| {
            if let Some(c) = shared.get() {
                c.replica_set_changed(change);
            }
        }
    };
    let (replica_sets, rs_feed) = informer::informer(Api::<ReplicaSet>::all(ctx.client.clone()), on_rs);
    let on_pod = {
        let shared = shared.clone();
        move |(old, new): Change<Pod>| {
            if let (Some(pod), None, Some(c)) = (old, new, shared.get()) {
                c.pod_deleted(&pod);
            }
        }
    };
    let (pods, _pods_subscription) = ctx.pods.subscribe(on_pod);
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        recorder: clientkit::Recorder::new(ctx.client.clone(), "deployment-controller"),
        queue: queue.clone(),
        deployments,
        replica_sets,
        pods,
    });
    let _ = shared.set(controller.clone());
    tokio::spawn(deployments_feed);
    tokio::spawn(rs_feed);
    controller.deployments.wait_synced().await;
    controller.replica_sets.wait_synced().await;
    controller.pods.wait_synced().await;
    let c = controller.clone();
    workqueue::run_workers(queue, WORKERS, "deployment-controller", move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
    .await;
    Ok(())
}

impl Controller {
    fn resolve(
        &self,
        namespace: &str,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Option<Arc<Deployment>> {
        if r.kind != "Deployment" {
            return None;
        }
        let d = self.deployments.get(namespace, &r.name)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_selecting(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        for d in self.deployments.list(ns) {
            let Some(selector) = d.spec.as_ref().and_then(|s| selector_of(&s.selector)) else {
                continue;
            };
            if !selector.is_empty() && selector.matches(&labels) {
                self.queue.add(key_of(&d.metadata));
            }
        }
    }

    fn enqueue_owner(&self, rs: &ReplicaSet) -> bool {
        let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
        match controller_of(&rs.metadata) {
            Some(r) => {
                if let Some(d) = self.resolve(ns, r) {
                    self.queue.add(key_of(&d.metadata));
                }
                true
            }
            None => false,
        }
    }

    fn replica_set_changed(&self, (old, new): Change<ReplicaSet>) {
        match (old, new) {
            (None, Some(rs)) => {
                if !self.enqueue_owner(&rs) {
                    self.enqueue_selecting(&rs);
                }
            }
            (Some(old), Some(cur)) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                let (old_ref, cur_ref) = (controller_of(&old.metadata), controller_of(&cur.metadata));
                let ref_changed = old_ref != cur_ref;
                if ref_changed {
                    self.enqueue_owner(&old);
                }
                if !self.enqueue_owner(&cur) && (old.metadata.labels != cur.metadata.labels || ref_changed) {
                    self.enqueue_selecting(&cur);
                }
            }
            (Some(rs), None) => {
                self.enqueue_owner(&rs);
            }
            (None, None) => {}
        }
    }

    /// A Recreate rollout waits for the old pods to be gone.
    fn pod_deleted(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self.replica_sets.get(ns, &r.name) else {
            return;
        };
        let Some(d) = controller_of(&rs.metadata).and_then(|r| self.resolve(ns, r)) else {
            return;
        };
        if !is_rolling_update(&d) {
            self.queue.add(key_of(&d.metadata));
        }
    }

    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        let Some(cached) = self.deployments.get(ns, name) else {
            return Ok(());
        };
        let mut d = (*cached).clone();
        let selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        if selector.match_labels.as_ref().is_none_or(|l| l.is_empty())
            && selector.match_expressions.as_ref().is_none_or(|e| e.is_empty())
        {
            self.recorder
                .record(
                    &clientkit::events::reference(&d),
                    EventType::Warning,
                    "SelectingAll",
                    "This deployment is selecting all pods. A non-empty selector is required.",
                )
                .await;
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                status.observed_generation = d.metadata.generation;
                self.update_status(&mut d).await?;
            }
            return Ok(());
        }
        let rs_list = self.claim_replica_sets(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new_rs, old_rss) = self.all_replica_sets(&mut d, &rs_list, false).await?;
            return self.sync_status_only(&mut d, new_rs.as_ref(), &old_rss).await;
        }
        self.check_paused_conditions(&mut d).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event(&mut d, &rs_list).await? {
            return self.sync_scale(&mut d, &rs_list).await;
        }
        if is_rolling_update(&d) {
            self.rollout_rolling(&mut d, &rs_list).await
        } else {
            self.rollout_recreate(&mut d, &rs_list).await
        }
    }

    /// The ReplicaSets this Deployment controls after adopting and releasing by selector.
    async fn claim_replica_sets(&self, d: &Deployment) -> anyhow::Result<Vec<ReplicaSet>> {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let name = d.metadata.name.as_deref().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let selector = d
            .spec
            .as_ref()
            .and_then(|s| selector_of(&s.selector))
            .ok_or_else(|| anyhow::anyhow!("invalid selector"))?;
        let owner = Owner {
            controller: pod_control::controller_ref("apps/v1", "Deployment", &d.metadata),
            namespace: ns,
            being_deleted: d.metadata.deletion_timestamp.is_some(),
            selector: &selector,
        };
        let can_adopt = controller_ref::recheck_owner(
            Api::<Deployment>::namespaced(self.client.clone(), ns),
            ns,
            name,
            &uid,
            "Deployment",
        );
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let claimed = controller_ref::claim(&api, &owner, self.replica_sets.list(ns), can_adopt).await?;
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    /// The new ReplicaSet (created when `create` and missing) and all the old ones, with the
    /// revision annotations brought up to date (upstream's `getAllReplicaSetsAndSyncRevision`).
    async fn all_replica_sets(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> anyhow::Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let existing = find_new_replica_set(d, rs_list);
        let old: Vec<ReplicaSet> = rs_list
            .iter()
            .filter(|rs| {
                existing
                    .as_ref()
                    .is_none_or(|n| n.metadata.uid != rs.metadata.uid)
            })
            .cloned()
            .collect();
        let new_rs = self.new_replica_set(d, existing, &old, create).await?;
        Ok((new_rs, old))
    }

    async fn new_replica_set(
        &self,
        d: &mut Deployment,
        existing: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> anyhow::Result<Option<ReplicaSet>> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let new_revision = (max_revision(old) + 1).to_string();
        let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(existing) = existing {
            let mut rs = existing.clone();
            let annotations_changed = set_new_rs_annotations(d, &mut rs, &new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let name = rs.metadata.name.clone().unwrap_or_default();
                return Ok(Some(api.replace(&name, &PostParams::default(), &rs).await?));
            }
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            let mut needs_update = set_deployment_revision(d, &revision);
            let has_progressing = d
                .status
                .as_ref()
                .is_some_and(|s| condition(s, "Progressing").is_some());
            if progress_deadline(d).is_some() && !has_progressing {
                let message = format!(
                    "Found new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                );
                set_condition(
                    d.status.get_or_insert_with(Default::default),
                    new_condition("Progressing", "True", FOUND_NEW_RS, &message),
                );
                needs_update = true;
            }
            if needs_update {
                self.update_status(d).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let template = d
            .spec
            .as_ref()
            .and_then(|s| s.template.clone().into())
            .unwrap_or_default();
        let hash = compute_hash(&template, collision_count);
        let mut new_template = template.clone();
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let mut selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.to_owned(), hash.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{d_name}-{hash}")),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![pod_control::controller_ref(
                    "apps/v1",
                    "Deployment",
                    &d.metadata,
                )]),
                labels: new_template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(new_template),
            }),
            status: None,
        };
        let mut all: Vec<ReplicaSet> = old.to_vec();
        all.push(new_rs.clone());
        let new_replicas = new_rs_new_replicas(d, &all, &new_rs);
        new_rs.spec.as_mut().unwrap().replicas = Some(new_replicas);
        set_new_rs_annotations(d, &mut new_rs, &new_revision, false);
        let reference = clientkit::events::reference(&*d);
        let rs_name = new_rs.metadata.name.clone().unwrap_or_default();
        let (created, already_existed) = match api.create(&PostParams::default(), &new_rs).await {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours already (a stale cache)? Otherwise a hash collision: count it so the
                // next hash differs.
                let found = api.get(&rs_name).await?;
                let ours =
                    controller_of(&found.metadata).is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template));
                if ours && same {
                    (found, true)
                } else {
                    let status = d.status.get_or_insert_with(Default::default);
                    status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                    self.update_status(d).await?;
                    anyhow::bail!("hash collision for replica set {rs_name}");
                }
            }
            Err(kube::Error::Api(s)) if s.code == 403 => anyhow::bail!(s.message),
            Err(err) => {
                let message = format!(
                    "Failed to create new replica set {rs_name:?}: {}",
                    pod_control::error_message(&err)
                );
                if progress_deadline(d).is_some() {
                    set_condition(
                        d.status.get_or_insert_with(Default::default),
                        new_condition("Progressing", "False", FAILED_RS_CREATE, &message),
                    );
                    let _ = self.update_status(d).await;
                }
                self.recorder
                    .record(&reference, EventType::Warning, FAILED_RS_CREATE, &message)
                    .await;
                return Err(err.into());
            }
        };
        if !already_existed && new_replicas > 0 {
            let message = format!("Scaled up replica set {rs_name} from 0 to {new_replicas}");
            self.recorder
                .record(&reference, EventType::Normal, "ScalingReplicaSet", &message)
                .await;
        }
        let mut needs_update = set_deployment_revision(d, &new_revision);
        if !already_existed && progress_deadline(d).is_some() {
            let message = format!("Created new replica set {rs_name:?}");
            set_condition(
                d.status.get_or_insert_with(Default::default),
                new_condition("Progressing", "True", NEW_RS_CREATED, &message),
            );
            needs_update = true;
        }
        if needs_update {
            self.update_status(d).await?;
        }
        Ok(Some(created))
    }

    /// Writes the Deployment's status (and, as upstream's status strategy allows, its
    /// annotations), keeping the written object as the current one.
    async fn update_status(&self, d: &mut Deployment) -> anyhow::Result<()> {
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &ns);
        *d = api.replace_status(&name, &PostParams::default(), d).await?;
        Ok(())
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> anyhow::Result<()> {
        if progress_deadline(d).is_none() {
            return Ok(());
        }
        let status = d.status.clone().unwrap_or_default();
        let current = condition(&status, "Progressing");
        if current.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
            return Ok(());
        }
        let paused_condition = current.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let condition = if paused && !paused_condition {
            new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused")
        } else if !paused && paused_condition {
            new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed")
        } else {
            return Ok(());
        };
        set_condition(d.status.get_or_insert_with(Default::default), condition);
        self.update_status(d).await
    }

    async fn is_scaling_event(&self, d: &mut Deployment, rs_list: &[ReplicaSet]) -> anyhow::Result<bool> {
        let (new_rs, old) = self.all_replica_sets(d, rs_list, false).await?;
        let mut all = old;
        all.extend(new_rs);
        Ok(active(&all)
            .iter()
            .filter_map(desired_replicas_annotation)
            .any(|desired| desired != replicas(d)))
    }

    /// Scaling (and a paused Deployment): resize without rolling (upstream's `sync`).
    async fn sync_scale(&self, d: &mut Deployment, rs_list: &[ReplicaSet]) -> anyhow::Result<()> {
        let (new_rs, old) = self.all_replica_sets(d, rs_list, false).await?;
        let (new_rs, old) = self.scale(d, new_rs, old).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused {
            self.cleanup(d, &old).await?;
        }
        self.sync_status_only(d, new_rs.as_ref(), &old).await
    }

    /// Resizes the ReplicaSets to the Deployment's replicas: the only active one, or the old
    /// ones down once the new one is saturated, or all in proportion during a rollout.
    async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> anyhow::Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let want = replicas(d);
        if let Some(target) = find_active_or_latest(new_rs.as_ref(), &old) {
            if rs_replicas(&target) != want {
                let updated = self.scale_and_record(&target, want, d).await?;
                return Ok(replace_in(new_rs, old, updated));
            }
            return Ok((new_rs, old));
        }
        if is_saturated(d, new_rs.as_ref()) {
            for rs in old.iter_mut() {
                if rs_replicas(rs) > 0 {
                    *rs = self.scale_and_record(rs, 0, d).await?;
                }
            }
            return Ok((new_rs, old));
        }
        if !is_rolling_update(d) {
            return Ok((new_rs, old));
        }
        let mut all: Vec<ReplicaSet> = old.iter().cloned().chain(new_rs.clone()).collect();
        all = active(&all);
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let to_add = allowed - spec_total(&all);
        let operation = if to_add > 0 {
            all.sort_by(by_size_newer);
            "up"
        } else {
            all.sort_by(by_size_older);
            "down"
        };
        let mut added = 0;
        let mut sizes: HashMap<String, i32> = HashMap::new();
        for rs in &all {
            let name = rs.metadata.name.clone().unwrap_or_default();
            if to_add != 0 {
                let share = proportion(rs, d, to_add, added);
                sizes.insert(name, rs_replicas(rs) + share);
                added += share;
            } else {
                sizes.insert(name, rs_replicas(rs));
            }
        }
        if to_add != added
            && let Some(first) = all.first()
        {
            let name = first.metadata.name.clone().unwrap_or_default();
            let size = sizes.entry(name).or_default();
            *size = (*size + to_add - added).max(0);
        }
        let mut result = (new_rs, old);
        for rs in &all {
            let size = sizes[rs.metadata.name.as_deref().unwrap_or_default()];
            let (updated, _) = self.scale_replica_set(rs, size, d, operation).await?;
            result = replace_in(result.0, result.1, updated);
        }
        Ok(result)
    }

    /// Scales `rs` to `size` recording a ScalingReplicaSet event; the ReplicaSet as written.
    pub(crate) async fn scale_and_record(
        &self,
        rs: &ReplicaSet,
        size: i32,
        d: &Deployment,
    ) -> anyhow::Result<ReplicaSet> {
        if rs_replicas(rs) == size {
            return Ok(rs.clone());
        }
        let operation = if rs_replicas(rs) < size { "up" } else { "down" };
        Ok(self.scale_replica_set(rs, size, d, operation).await?.0)
    }

    async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        size: i32,
        d: &Deployment,
        operation: &str,
    ) -> anyhow::Result<(ReplicaSet, bool)> {
        let old_size = rs_replicas(rs);
        let size_changed = old_size != size;
        let want = replicas(d);
        let max = want + max_surge(d);
        if !size_changed && !replicas_annotations_need_update(rs, want, max) {
            return Ok((rs.clone(), false));
        }
        let mut updated = rs.clone();
        updated.spec.get_or_insert_with(Default::default).replicas = Some(size);
        set_replicas_annotations(&mut updated, want, max);
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let name = rs.metadata.name.clone().unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
        let written = api.replace(&name, &PostParams::default(), &updated).await?;
        if size_changed {
            let message = format!("Scaled {operation} replica set {name} from {old_size} to {size}");
            self.recorder
                .record(
                    &clientkit::events::reference(d),
                    EventType::Normal,
                    "ScalingReplicaSet",
                    &message,
                )
                .await;
        }
        Ok((written, size_changed))
    }

    /// Deletes the oldest unused ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup(&self, d: &Deployment, old: &[ReplicaSet]) -> anyhow::Result<()> {
        let Some(limit) = revision_history_limit(d) else {
            return Ok(());
        };
        let mut cleanable: Vec<ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let excess = cleanable.len() as i32 - limit;
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by(by_revision);
        for rs in cleanable.iter().take(excess as usize) {
            let status = rs_status(rs);
            if status.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0)
            {
                continue;
            }
            let ns = rs.metadata.namespace.clone().unwrap_or_default();
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &ns);
            match api
                .delete(
                    rs.metadata.name.as_deref().unwrap_or_default(),
                    &DeleteParams::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(err) if is_not_found(&err) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// The pods of each ReplicaSet, by ReplicaSet uid (for Recreate).
    fn pods_by_replica_set(&self, d: &Deployment, rs_list: &[ReplicaSet]) -> HashMap<String, Vec<Arc<Pod>>> {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        let mut map: HashMap<String, Vec<Arc<Pod>>> = rs_list
            .iter()
            .filter_map(|rs| rs.metadata.uid.clone())
            .map(|uid| (uid, Vec::new()))
            .collect();
        let Some(selector) = d.spec.as_ref().and_then(|s| selector_of(&s.selector)) else {
            return map;
        };
        for pod in self.pods.list(ns) {
            if !selector.matches(&pod.metadata.labels.clone().unwrap_or_default()) {
                continue;
            }
            if let Some(r) = controller_of(&pod.metadata)
                && let Some(pods) = map.get_mut(&r.uid)
            {
                pods.push(pod.clone());
            }
        }
        map
    }
}

/// The ReplicaSet whose template is the Deployment's (the oldest such, should there be more).
fn find_new_replica_set(d: &Deployment, rs_list: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let mut sorted = rs_list.to_vec();
    sorted.sort_by(by_creation);
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, &template))
    })
}

/// The only active ReplicaSet, or the newest when none is active (upstream's `FindActiveOrLatest`).
fn find_active_or_latest(new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Option<ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut old = old.to_vec();
    old.sort_by(|a, b| by_creation(b, a));
    let all: Vec<ReplicaSet> = old.iter().cloned().chain(new_rs.cloned()).collect();
    let active = active(&all);
    match active.len() {
        0 => new_rs.cloned().or_else(|| old.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

/// Puts the written `updated` in place of its older copy.
fn replace_in(
    new_rs: Option<ReplicaSet>,
    mut old: Vec<ReplicaSet>,
    updated: ReplicaSet,
) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    if new_rs
        .as_ref()
        .is_some_and(|n| n.metadata.uid == updated.metadata.uid)
    {
        return (Some(updated), old);
    }
    for rs in old.iter_mut() {
        if rs.metadata.uid == updated.metadata.uid {
            *rs = updated.clone();
        }
    }
    (new_rs, old)
}
