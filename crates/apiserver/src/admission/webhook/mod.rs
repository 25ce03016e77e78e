//! Dynamic admission (upstream's MutatingAdmissionWebhook and ValidatingAdmissionWebhook
//! plugins): the webhook configurations in the watch cache are matched against each write and
//! their endpoints are sent an AdmissionReview v1. Mutating webhooks run first, ordered by
//! configuration name then webhook, each seeing the object as the previous one left it;
//! validating webhooks follow.

mod call;
mod conditions;
mod context;
mod matching;
mod service;

use std::sync::Arc;

use apimachinery::resources::{self, ResourceDef};
use apimachinery::status::ApiError;
use serde_json::{Value, json};
use store::{KeyRange, RangeRequest, Store};

use crate::cache::Cache;
use crate::objects::from_store;
use crate::rest::store_error;

pub use context::{in_request, set_user};

/// What a write is, as the webhooks see it.
pub struct Attributes<'a> {
    pub def: &'a ResourceDef,
    pub subresource: Option<&'a str>,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'static str,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub dry_run: bool,
    pub old: Option<&'a Value>,
}

/// Runs the mutating webhooks on `obj` (`mutating`), or the validating ones (after the
/// object passed validation).
pub async fn admit(
    store: &dyn Store,
    cache: &Arc<Cache>,
    attrs: &Attributes<'_>,
    obj: &mut Value,
    mutating: bool,
) -> Result<(), ApiError> {
    // Webhooks never see writes to webhook configurations (upstream exempts them so a broken
    // webhook cannot lock itself in).
    if attrs.def.group == "admissionregistration.k8s.io" {
        return Ok(());
    }
    let plural = if mutating {
        "mutatingwebhookconfigurations"
    } else {
        "validatingwebhookconfigurations"
    };
    let configs = configurations(store, cache, plural).await?;
    // Read once, and only when a webhook that matched the write has a namespaceSelector.
    let mut namespace_labels: Option<Value> = None;
    for config in &configs {
        for hook in config["webhooks"].as_array().into_iter().flatten() {
            if !matching::matches_write(hook, attrs, obj) {
                continue;
            }
            if matching::needs_namespace_labels(hook, attrs) {
                if namespace_labels.is_none() {
                    namespace_labels = Some(match attrs.namespace {
                        Some(ns) => namespace_labels_of(store, ns).await?,
                        // A namespace is selected by its own labels.
                        None => obj["metadata"]["labels"].clone(),
                    });
                }
                if !matching::namespace_matches(hook, namespace_labels.as_ref().expect("just set")) {
                    continue;
                }
            }
            call::run(store, hook, attrs, obj, mutating).await?;
        }
    }
    Ok(())
}

/// The configurations of one kind, sorted by name (the cache's key order).
async fn configurations(store: &dyn Store, cache: &Arc<Cache>, plural: &str) -> Result<Vec<Value>, ApiError> {
    let def = resources::find("admissionregistration.k8s.io", "v1", plural).expect("built in");
    let range = KeyRange::prefix(&def.key_prefix(None));
    let kvs = match cache.list(&range, None).await {
        Some((_, kvs)) => kvs,
        None => {
            store
                .range(RangeRequest::new(range))
                .await
                .map_err(store_error)?
                .kvs
        }
    };
    kvs.iter()
        .map(|kv| from_store(&kv.value, kv.mod_revision))
        .collect()
}

async fn namespace_labels_of(store: &dyn Store, namespace: &str) -> Result<Value, ApiError> {
    let def = resources::find("", "v1", "namespaces").expect("built in");
    Ok(
        match store.get(&def.key(None, namespace)).await.map_err(store_error)? {
            Some(kv) => from_store(&kv.value, kv.mod_revision)?["metadata"]["labels"].clone(),
            None => json!({}),
        },
    )
}
