//! Adoption and release by selector, as upstream's `ControllerRefManager`: an owner claims the
//! objects its selector matches that have no controller (adopting them with an ownerReference
//! patch), keeps the ones it controls that still match, and releases the ones it controls that
//! no longer match. An owner being deleted adopts nothing and releases nothing; adoption first
//! checks once, against a fresh read, that the owner still exists with the same uid and is not
//! being deleted. Patches carry the object's uid so they cannot hit a same-named successor.

use std::sync::Arc;

use apimachinery::selector::LabelSelector;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::pod_control::{controller_of, is_not_found};

/// The owner doing the claiming.
pub struct Owner<'a> {
    pub controller: OwnerReference,
    pub namespace: &'a str,
    pub being_deleted: bool,
    pub selector: &'a LabelSelector,
}

/// Checks, once, that the owner may adopt (upstream's `RecheckDeletionTimestamp`).
pub type CanAdopt<'a> = Box<dyn Fn() -> BoxFuture<'a, anyhow::Result<()>> + Send + Sync + 'a>;

/// The objects among `objects` that `owner` controls after adopting and releasing.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &Owner<'_>,
    objects: Vec<Arc<K>>,
    can_adopt: CanAdopt<'_>,
) -> anyhow::Result<Vec<Arc<K>>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut claimed = Vec::new();
    let mut errors = Vec::new();
    let mut adoption_checked: Option<Result<(), String>> = None;
    for obj in objects {
        let meta = obj.meta();
        let matches = owner
            .selector
            .matches(meta.labels.as_ref().unwrap_or(&Default::default()));
        let name = meta.name.clone().unwrap_or_default();
        let uid = meta.uid.clone().unwrap_or_default();
        match controller_of(meta) {
            Some(r) if r.uid != owner.controller.uid => {}
            Some(_) => {
                if matches {
                    claimed.push(obj);
                } else if !owner.being_deleted {
                    let patch = json!({"metadata": {
                        "ownerReferences": [{"$patch": "delete", "uid": owner.controller.uid}],
                        "uid": uid,
                    }});
                    match api
                        .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                        .await
                    {
                        Ok(_) => {}
                        // Gone, or its ownerReferences are invalid: nothing to release.
                        Err(err) if is_not_found(&err) => {}
                        Err(kube::Error::Api(s)) if s.code == 422 => {}
                        Err(err) => errors.push(format!("releasing {name}: {err}")),
                    }
                }
            }
            None => {
                if owner.being_deleted || !matches || meta.deletion_timestamp.is_some() {
                    continue;
                }
                if meta.namespace.as_deref().unwrap_or_default() != owner.namespace {
                    continue;
                }
                if adoption_checked.is_none() {
                    adoption_checked = Some(can_adopt().await.map_err(|e| e.to_string()));
                }
                if let Some(Err(err)) = &adoption_checked {
                    errors.push(format!("cannot adopt {name}: {err}"));
                    continue;
                }
                let patch = json!({"metadata": {
                    "ownerReferences": [owner.controller],
                    "uid": uid,
                }});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => errors.push(format!("adopting {name}: {err}")),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(claimed)
    } else {
        Err(anyhow::anyhow!(errors.join("; ")))
    }
}

/// The usual adoption check: a fresh read of the owner shows the same uid and no deletion.
pub fn recheck_owner<'a, K>(
    api: Api<K>,
    namespace: &'a str,
    name: &'a str,
    uid: &'a str,
    kind: &'a str,
) -> CanAdopt<'a>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    Box::new(move || {
        let api = api.clone();
        Box::pin(async move {
            let fresh = api.get(name).await?;
            let fresh_uid = fresh.meta().uid.clone().unwrap_or_default();
            if fresh_uid != uid {
                anyhow::bail!(
                    "original {kind} {namespace}/{name} is gone: got uid {fresh_uid}, wanted {uid}"
                );
            }
            if let Some(at) = &fresh.meta().deletion_timestamp {
                anyhow::bail!("{namespace}/{name} has just been deleted at {}", at.0);
            }
            Ok(())
        })
    })
}
