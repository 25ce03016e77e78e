//! Deleting a CRD as upstream does: the first DELETE marks it (deletionTimestamp, the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer, condition Terminating), then the
//! finalizer's owner — any server, started from the registry's CRD watch — deletes every custom
//! resource (ones with finalizers of their own are marked and waited for), and only then drops
//! the finalizer, which lets the CRD go.

use std::time::Duration;

use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, WriteOutcome};

use super::definition::{CLEANUP_FINALIZER, set_condition};
use crate::objects::{self, from_store, metadata_mut, now_rfc3339, to_store};
use crate::rest::{Rest, store_error};

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether a CRD is deleted and waits for its instances to be removed.
pub fn pending(crd: &Value) -> bool {
    objects::meta_str(crd, "deletionTimestamp").is_some()
        && finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER)
}

/// The first DELETE of a CRD: the cleanup finalizer and the Terminating condition (the generic
/// delete then sets the deletionTimestamp, since the CRD now has a finalizer).
pub fn mark_for_deletion(crd: &mut Value) {
    if objects::meta_str(crd, "deletionTimestamp").is_some() {
        return;
    }
    let mut list = finalizers(crd);
    if !list.iter().any(|f| f == CLEANUP_FINALIZER) {
        list.push(CLEANUP_FINALIZER.to_owned());
    }
    metadata_mut(crd).insert("finalizers".into(), json!(list));
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    set_condition(
        &mut crd["status"],
        "Terminating",
        "True",
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
}

/// Removes every instance of a deleted CRD, then its finalizer (and so the CRD).
pub async fn finalize(rest: &Rest, crd: &Value) -> Result<(), apimachinery::status::ApiError> {
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["status"]["acceptedNames"]["plural"]
        .as_str()
        .or(crd["spec"]["names"]["plural"].as_str())
        .unwrap_or_default();
    if group.is_empty() || plural.is_empty() {
        return Ok(());
    }
    let prefix = format!("/registry/{group}/{plural}/");
    let key = format!("{}{}", super::CRD_PREFIX, objects::name(crd).unwrap_or_default());
    let uid = objects::meta_str(crd, "uid").unwrap_or_default().to_owned();
    set_terminating(
        rest,
        &key,
        &uid,
        "InstanceDeletionInProgress",
        "CustomResource deletion is in progress",
    )
    .await?;
    loop {
        // A CRD of the same name created since is not ours to empty (a repeated or late
        // finalization must leave it and its instances alone).
        if !still_deleting(rest, &key, &uid).await? {
            return Ok(());
        }
        let resp = rest
            .store
            .range(RangeRequest::new(KeyRange::prefix(&prefix)))
            .await
            .map_err(store_error)?;
        if resp.kvs.is_empty() {
            break;
        }
        for kv in &resp.kvs {
            let mut obj = from_store(&kv.value, kv.mod_revision)?;
            if finalizers(&obj).is_empty() {
                rest.store
                    .delete(&kv.key, Some(kv.mod_revision))
                    .await
                    .map_err(store_error)?;
            } else if objects::meta_str(&obj, "deletionTimestamp").is_none() {
                let meta = metadata_mut(&mut obj);
                meta.insert("deletionTimestamp".into(), now_rfc3339().into());
                meta.insert("deletionGracePeriodSeconds".into(), 0.into());
                rest.store
                    .update(&kv.key, to_store(&obj), kv.mod_revision, None)
                    .await
                    .map_err(store_error)?;
            }
        }
        // Instances with finalizers go when their controllers release them.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for _ in 0..16 {
        let Some(kv) = rest.store.get(&key).await.map_err(store_error)? else {
            return Ok(());
        };
        let mut current = from_store(&kv.value, kv.mod_revision)?;
        if objects::meta_str(&current, "uid") != Some(uid.as_str()) {
            return Ok(());
        }
        let remaining: Vec<String> = finalizers(&current)
            .into_iter()
            .filter(|f| f != CLEANUP_FINALIZER)
            .collect();
        let outcome = if remaining.is_empty() {
            rest.store.delete(&key, Some(kv.mod_revision)).await
        } else {
            metadata_mut(&mut current).insert("finalizers".into(), json!(remaining));
            set_condition(
                &mut current["status"],
                "Terminating",
                "False",
                "InstanceDeletionCompleted",
                "removed all instances",
            );
            rest.store
                .update(&key, to_store(&current), kv.mod_revision, None)
                .await
        };
        if let WriteOutcome::Written { .. } = outcome.map_err(store_error)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Whether the CRD at `key` is still the deleted one (`uid`) waiting for its instances.
async fn still_deleting(rest: &Rest, key: &str, uid: &str) -> Result<bool, apimachinery::status::ApiError> {
    let Some(kv) = rest.store.get(key).await.map_err(store_error)? else {
        return Ok(false);
    };
    let current = from_store(&kv.value, kv.mod_revision)?;
    Ok(objects::meta_str(&current, "uid") == Some(uid) && pending(&current))
}

/// Sets the Terminating condition of a deleted CRD (the progress upstream's finalizer reports).
async fn set_terminating(
    rest: &Rest,
    key: &str,
    uid: &str,
    reason: &str,
    message: &str,
) -> Result<(), apimachinery::status::ApiError> {
    for _ in 0..16 {
        let Some(kv) = rest.store.get(key).await.map_err(store_error)? else {
            return Ok(());
        };
        let mut current = from_store(&kv.value, kv.mod_revision)?;
        if objects::meta_str(&current, "uid") != Some(uid) {
            return Ok(());
        }
        if current["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Terminating" && c["reason"] == reason)
        }) {
            return Ok(());
        }
        if !current["status"].is_object() {
            current["status"] = json!({});
        }
        set_condition(&mut current["status"], "Terminating", "True", reason, message);
        let outcome = rest
            .store
            .update(key, to_store(&current), kv.mod_revision, None)
            .await
            .map_err(store_error)?;
        if let WriteOutcome::Written { .. } = outcome {
            return Ok(());
        }
    }
    Ok(())
}
