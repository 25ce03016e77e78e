//! What the collector does with a node (upstream's `attemptToDeleteItem`,
//! `processDeletingDependentsItem`, `attemptToOrphanWorker`): every decision is made on a live
//! read of the object and of its owners, never on the graph alone, which may lag.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use serde_json::json;
use tokio::sync::mpsc;

use super::graph::{Change, FOREGROUND, Graph, Identity, Node, ORPHAN};
use super::queue::WorkQueue;
use crate::discovery::{Resources, Served};

pub struct Collector {
    pub client: kube::Client,
    pub resources: Arc<RwLock<Resources>>,
    pub graph: Mutex<Graph>,
    /// Node uids to look at: garbage to delete, or an owner deleting in the foreground.
    pub attempt_to_delete: Arc<WorkQueue<String>>,
    /// Owner uids whose dependents are to be orphaned.
    pub attempt_to_orphan: Arc<WorkQueue<String>>,
    pub changes: mpsc::UnboundedSender<Change>,
    /// Owners known to be gone, by uid and the namespace they were looked for in.
    pub absent: Mutex<HashSet<(String, Option<String>)>>,
}

/// Upstream's absent owner cache holds 500 entries; a uid never comes back, so forgetting is
/// only a cost.
const ABSENT_CACHE: usize = 500;

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("unable to get REST mapping for {0}/{1}")]
    NoMapping(String, String),
    /// Reported to the graph as absent: nothing more to do here.
    #[error("object is absent")]
    Absent,
    /// A cluster-scoped dependent names a namespaced owner: retrying does not help.
    #[error("cluster-scoped object refers to a namespaced owner")]
    NamespacedOwnerOfClusterScoped,
}

fn not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

fn conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

/// A live object's metadata, or None when it is gone (or another object has its name).
enum Live {
    Present(Box<ObjectMeta>),
    Gone,
}

impl Collector {
    pub fn apply(&self, change: Change) {
        let work = self.graph.lock().expect("graph lock").apply(change);
        for uid in work.attempt_to_delete {
            self.attempt_to_delete.add(uid);
        }
        for uid in work.attempt_to_orphan {
            self.attempt_to_orphan.add(uid);
        }
    }

    fn node(&self, uid: &str) -> Option<Node> {
        self.graph.lock().expect("graph lock").node(uid).cloned()
    }

    fn mapping(&self, api_version: &str, kind: &str) -> Result<Served, Error> {
        self.resources
            .read()
            .expect("resources lock")
            .resolve(api_version, kind)
            .ok_or_else(|| Error::NoMapping(api_version.to_owned(), kind.to_owned()))
    }

    async fn get(&self, identity: &Identity) -> Result<Live, Error> {
        let served = self.mapping(&identity.api_version, &identity.kind)?;
        let api = served.api(&self.client, identity.namespace.as_deref());
        match api.get_metadata(&identity.name).await {
            Ok(obj) if obj.metadata.uid.as_deref() == Some(&identity.uid) => {
                Ok(Live::Present(Box::new(obj.metadata)))
            }
            Ok(_) => Ok(Live::Gone),
            Err(err) if not_found(&err) => Ok(Live::Gone),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn delete_worker(self: Arc<Self>) {
        loop {
            let uid = self.attempt_to_delete.get().await;
            let outcome = match self.node(&uid) {
                None => Ok(true),
                Some(node) => self.attempt_to_delete_item(&node).await.map(|()| node.observed),
            };
            match outcome {
                Ok(true) | Err(Error::Absent | Error::NamespacedOwnerOfClusterScoped) => {
                    self.attempt_to_delete.forget(&uid)
                }
                // A virtual node that exists: looked at again until its watch reports it.
                Ok(false) => self.attempt_to_delete.add_rate_limited(uid.clone()),
                Err(err) => {
                    tracing::debug!(%uid, "garbage collector: {err}");
                    self.attempt_to_delete.add_rate_limited(uid.clone());
                }
            }
            self.attempt_to_delete.done(&uid);
        }
    }

    async fn attempt_to_delete_item(&self, node: &Node) -> Result<(), Error> {
        // Being deleted is a one-way trip: wait for the object to go, then see its dependents.
        if node.being_deleted && !node.deleting_dependents {
            return Ok(());
        }
        let latest = match self.get(&node.identity).await? {
            Live::Present(meta) => meta,
            Live::Gone => {
                let _ = self.changes.send(Change::Absent(node.identity.clone()));
                return Err(Error::Absent);
            }
        };
        if node.deleting_dependents {
            return self.process_deleting_dependents(node).await;
        }
        let owners = latest.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for owner in &owners {
            match self.owner_state(owner, &node.identity).await? {
                OwnerState::Absent => dangling.push(owner.uid.clone()),
                OwnerState::DeletingDependents => waiting.push(owner.uid.clone()),
                OwnerState::Solid => solid.push(owner.uid.clone()),
            }
        }
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // Another owner keeps it: only the references to owners that are gone (or that
            // wait for their dependents) are dropped, or those owners would wait forever.
            let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
            return self.remove_owner_references(&node.identity, &drop).await;
        }
        let has_dependents = !node.dependents.is_empty();
        let policy = if !waiting.is_empty() && has_dependents {
            // Deleting it in the foreground too keeps the waiting owner waiting for the
            // grandchildren. A dependent that waits itself would make a cycle: stop blocking.
            let cycle = self
                .graph
                .lock()
                .expect("graph lock")
                .dependents(&node.identity.uid)
                .iter()
                .any(|d| d.deleting_dependents);
            if cycle {
                self.unblock_owner_references(&node.identity).await?;
            }
            PropagationPolicy::Foreground
        } else {
            let has = |f: &str| latest.finalizers.iter().flatten().any(|x| x == f);
            if has(ORPHAN) {
                PropagationPolicy::Orphan
            } else if has(FOREGROUND) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }
        };
        self.delete_object(&node.identity, &latest, policy).await
    }

    async fn owner_state(&self, owner: &OwnerReference, item: &Identity) -> Result<OwnerState, Error> {
        let served = self.mapping(&owner.api_version, &owner.kind)?;
        let namespace = served.namespaced.then(|| item.namespace.clone()).flatten();
        if served.namespaced && item.namespace.is_none() {
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        let cache_key = (owner.uid.clone(), namespace.clone());
        if self.absent.lock().expect("absent lock").contains(&cache_key) {
            return Ok(OwnerState::Absent);
        }
        let api = served.api(&self.client, namespace.as_deref());
        let meta = match api.get_metadata(&owner.name).await {
            Ok(obj) if obj.metadata.uid.as_deref() == Some(&owner.uid) => obj.metadata,
            Ok(_) => return Ok(self.remember_absent(cache_key)),
            Err(err) if not_found(&err) => return Ok(self.remember_absent(cache_key)),
            Err(err) => return Err(err.into()),
        };
        let deleting =
            meta.deletion_timestamp.is_some() && meta.finalizers.iter().flatten().any(|f| f == FOREGROUND);
        Ok(if deleting {
            OwnerState::DeletingDependents
        } else {
            OwnerState::Solid
        })
    }

    fn remember_absent(&self, key: (String, Option<String>)) -> OwnerState {
        let mut absent = self.absent.lock().expect("absent lock");
        if absent.len() >= ABSENT_CACHE {
            absent.clear();
        }
        absent.insert(key);
        OwnerState::Absent
    }

    /// An owner deleting in the foreground goes once no dependent blocks it.
    async fn process_deleting_dependents(&self, node: &Node) -> Result<(), Error> {
        let blocking = self
            .graph
            .lock()
            .expect("graph lock")
            .blocking_dependents(&node.identity.uid);
        if blocking.is_empty() {
            return self.remove_finalizer(&node.identity, FOREGROUND).await;
        }
        for dependent in blocking.iter().filter(|d| !d.deleting_dependents) {
            self.attempt_to_delete.add(dependent.identity.uid.clone());
        }
        Ok(())
    }

    async fn delete_object(
        &self,
        identity: &Identity,
        latest: &ObjectMeta,
        policy: PropagationPolicy,
    ) -> Result<(), Error> {
        let served = self.mapping(&identity.api_version, &identity.kind)?;
        let api = served.api(&self.client, identity.namespace.as_deref());
        let mut params = DeleteParams {
            propagation_policy: Some(policy.clone()),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version: latest.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&identity.name, &params).await {
            Ok(_) => Ok(()),
            Err(err) if not_found(&err) => Ok(()),
            Err(err) if conflict(&err) => {
                // Changed since read: still delete if its owners did not change.
                match api.get_metadata(&identity.name).await {
                    Err(e) if not_found(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                    Ok(live) if live.metadata.owner_references == latest.owner_references => {
                        params.preconditions = Some(Preconditions {
                            uid: Some(identity.uid.clone()),
                            resource_version: None,
                        });
                        match api.delete(&identity.name, &params).await {
                            Err(e) if !not_found(&e) => Err(e.into()),
                            _ => Ok(()),
                        }
                    }
                    Ok(_) => Err(err.into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Reads the object and writes `change(metadata)` back as a merge patch guarded by its
    /// resourceVersion, retrying on conflicts; a missing object is fine.
    async fn patch_metadata(
        &self,
        identity: &Identity,
        change: impl Fn(&ObjectMeta) -> Option<serde_json::Value>,
    ) -> Result<(), Error> {
        let served = self.mapping(&identity.api_version, &identity.kind)?;
        let api = served.api(&self.client, identity.namespace.as_deref());
        loop {
            let live = match api.get_metadata(&identity.name).await {
                Ok(live) if live.metadata.uid.as_deref() == Some(&identity.uid) => live.metadata,
                Ok(_) => return Ok(()),
                Err(err) if not_found(&err) => return Ok(()),
                Err(err) => return Err(err.into()),
            };
            let Some(mut patch) = change(&live) else {
                return Ok(());
            };
            patch["resourceVersion"] = json!(live.resource_version);
            let body = json!({"metadata": patch});
            match api
                .patch(&identity.name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => return Ok(()),
                Err(err) if not_found(&err) => return Ok(()),
                Err(err) if conflict(&err) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    async fn remove_finalizer(&self, identity: &Identity, finalizer: &str) -> Result<(), Error> {
        self.patch_metadata(identity, |meta| {
            let current = meta.finalizers.clone().unwrap_or_default();
            let kept: Vec<String> = current.iter().filter(|f| *f != finalizer).cloned().collect();
            (kept.len() != current.len()).then(|| json!({"finalizers": kept}))
        })
        .await
    }

    async fn remove_owner_references(&self, identity: &Identity, owners: &[String]) -> Result<(), Error> {
        self.patch_metadata(identity, |meta| {
            let current = meta.owner_references.clone().unwrap_or_default();
            let kept: Vec<&OwnerReference> = current.iter().filter(|o| !owners.contains(&o.uid)).collect();
            (kept.len() != current.len()).then(|| json!({"ownerReferences": kept}))
        })
        .await
    }

    /// Sets `blockOwnerDeletion: false` on every owner reference that blocks.
    async fn unblock_owner_references(&self, identity: &Identity) -> Result<(), Error> {
        self.patch_metadata(identity, |meta| {
            let mut refs = meta.owner_references.clone().unwrap_or_default();
            let mut changed = false;
            for r in refs.iter_mut().filter(|r| r.block_owner_deletion == Some(true)) {
                r.block_owner_deletion = Some(false);
                changed = true;
            }
            changed.then(|| json!({"ownerReferences": refs}))
        })
        .await
    }

    pub async fn orphan_worker(self: Arc<Self>) {
        loop {
            let uid = self.attempt_to_orphan.get().await;
            if let Some(owner) = self.node(&uid) {
                match self.orphan(&owner).await {
                    Ok(()) => self.attempt_to_orphan.forget(&uid),
                    Err(err) => {
                        tracing::debug!(%uid, "garbage collector: orphaning failed: {err}");
                        self.attempt_to_orphan.add_rate_limited(uid.clone());
                    }
                }
            }
            self.attempt_to_orphan.done(&uid);
        }
    }

    /// Releases every dependent of `owner` (its reference removed), then the `orphan` finalizer.
    async fn orphan(&self, owner: &Node) -> Result<(), Error> {
        let dependents = self
            .graph
            .lock()
            .expect("graph lock")
            .dependents(&owner.identity.uid);
        let owner_uid = [owner.identity.uid.clone()];
        let results = futures::future::join_all(
            dependents
                .iter()
                .map(|d| self.remove_owner_references(&d.identity, &owner_uid)),
        )
        .await;
        results.into_iter().collect::<Result<Vec<()>, Error>>()?;
        self.remove_finalizer(&owner.identity, ORPHAN).await
    }
}

enum OwnerState {
    Solid,
    Absent,
    DeletingDependents,
}
