//! What a DELETE does to an object before (or instead of) removing it, as upstream's generic
//! registry (`Store.Delete`, `deletionFinalizersForGarbageCollection`, `markAsDeleting`) and the
//! namespace registry decide it:
//!
//! - the propagation policy becomes finalizers the garbage collector acts on: `Foreground`
//!   adds `foregroundDeletion`, `Orphan` (or the legacy `orphanDependents: true`) adds `orphan`,
//!   `Background` neither; without a policy the object's own finalizers, then the kind's default
//!   (ReplicationControllers and Jobs orphan for backwards compatibility, Events have no garbage
//!   collection), decide;
//! - an object left with finalizers is only marked deleted (`deletionTimestamp`,
//!   `deletionGracePeriodSeconds: 0`, generation bumped once) and goes when the last finalizer
//!   is removed; one without finalizers is removed at once;
//! - a namespace's first DELETE sets `deletionTimestamp` and phase `Terminating` (the namespace
//!   controller empties it, then removes `kubernetes` from `spec.finalizers` through
//!   `namespaces/NAME/finalize`); it is removed once both finalizer lists are empty.

use apimachinery::resources::ResourceDef;
use serde_json::{Value, json};

use crate::objects::{self, metadata_mut, now_rfc3339};
use crate::query::Query;

pub const ORPHAN: &str = "orphan";
pub const FOREGROUND: &str = "foregroundDeletion";

/// The parts of DeleteOptions (body or query) that choose what happens to dependents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Propagation {
    /// The legacy `orphanDependents` flag.
    pub orphan_dependents: Option<bool>,
    /// `propagationPolicy`: Foreground, Background or Orphan (validated before).
    pub policy: Option<String>,
}

impl Propagation {
    pub fn read(options: &Value, query: &Query) -> Propagation {
        let orphan_dependents = options
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
        let policy = match options.get("propagationPolicy") {
            Some(Value::String(p)) => Some(p.clone()),
            _ => query.get("propagationPolicy").map(str::to_owned),
        };
        Propagation {
            orphan_dependents,
            policy,
        }
    }
}

/// The status of a DELETE's answer: upstream answers 202 Accepted only when the object stays
/// (finalizers, a grace period) and the caller set the legacy `orphanDependents: false`; every
/// other delete gets 200, a foreground one included.
pub fn response_code(deleted: &Value, query: &Query, body: &[u8]) -> http::StatusCode {
    let options: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let kept = objects::meta_str(deleted, "deletionTimestamp").is_some();
    if kept && Propagation::read(&options, query).orphan_dependents == Some(false) {
        http::StatusCode::ACCEPTED
    } else {
        http::StatusCode::OK
    }
}

/// The warning upstream's Job registry adds to a delete that leaves the policy to the default
/// (which orphans the Job's pods in batch/v1).
pub fn warning(def: &ResourceDef, query: &Query, body: &[u8]) -> Option<String> {
    if (def.group, def.version, def.plural) != ("batch", "v1", "jobs") {
        return None;
    }
    let options: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let p = Propagation::read(&options, query);
    (p.policy.is_none() && p.orphan_dependents.is_none()).then(|| {
        "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background \
         to remove them or set propagationPolicy=Orphan to suppress this warning"
            .to_owned()
    })
}

/// A kind's default garbage collection policy (upstream's `DefaultGarbageCollectionPolicy`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum DefaultPolicy {
    DeleteDependents,
    OrphanDependents,
    Unsupported,
}

fn default_policy(def: &ResourceDef) -> DefaultPolicy {
    match (def.group, def.version, def.plural) {
        // Kept from before server-side garbage collection, in these versions only.
        ("", "v1", "replicationcontrollers") | ("batch", "v1", "jobs") => DefaultPolicy::OrphanDependents,
        ("", _, "events") | ("events.k8s.io", _, "events") => DefaultPolicy::Unsupported,
        _ => DefaultPolicy::DeleteDependents,
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    objects::metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn should_orphan(def: &ResourceDef, p: &Propagation, current: &[String]) -> bool {
    let default = default_policy(def);
    if default == DefaultPolicy::Unsupported {
        return false;
    }
    if let Some(orphan) = p.orphan_dependents {
        return orphan;
    }
    match p.policy.as_deref() {
        Some("Orphan") => return true,
        Some("Background" | "Foreground") => return false,
        _ => {}
    }
    for f in current {
        match f.as_str() {
            ORPHAN => return true,
            FOREGROUND => return false,
            _ => {}
        }
    }
    default == DefaultPolicy::OrphanDependents
}

fn should_delete_dependents_first(def: &ResourceDef, p: &Propagation, current: &[String]) -> bool {
    if default_policy(def) == DefaultPolicy::Unsupported || p.orphan_dependents.is_some() {
        return false;
    }
    match p.policy.as_deref() {
        Some("Foreground") => true,
        Some("Background" | "Orphan") => false,
        _ => current.iter().any(|f| f == FOREGROUND),
    }
}

/// The finalizers the object should have for this delete, when they differ (as a set) from
/// what it has: `orphan` and `foregroundDeletion` added or dropped as the options say.
fn finalizers_for_garbage_collection(def: &ResourceDef, p: &Propagation, obj: &Value) -> Option<Vec<String>> {
    let current = finalizers(obj);
    let mut new: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if should_orphan(def, p, &current) {
        new.push(ORPHAN.to_owned());
    }
    if should_delete_dependents_first(def, p, &current) {
        new.push(FOREGROUND.to_owned());
    }
    let as_set = |l: &[String]| l.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    (as_set(&new) != as_set(&current)).then_some(new)
}

/// Marks an object deleted but kept for its finalizers (upstream's `markAsDeleting`).
fn mark_as_deleting(obj: &mut Value) {
    let meta = metadata_mut(obj);
    if !meta.contains_key("deletionTimestamp") {
        if let Some(generation) = meta.get("generation").and_then(Value::as_i64).filter(|g| *g > 0) {
            meta.insert("generation".into(), (generation + 1).into());
        }
        meta.insert("deletionTimestamp".into(), now_rfc3339().into());
    }
    meta.insert("deletionGracePeriodSeconds".into(), 0.into());
}

/// What a DELETE does with the object it read.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// Remove it from the store now.
    Remove,
    /// Keep it, written as `prepare` left it (unless nothing changed).
    Keep,
}

/// Applies a DELETE's options to `obj` (finalizers, deletion marks) and says whether it goes now.
pub fn prepare(def: &ResourceDef, p: &Propagation, obj: &mut Value) -> Next {
    if is_namespace(def) && objects::meta_str(obj, "deletionTimestamp").is_none() {
        start_namespace_termination(p, obj);
        return Next::Keep;
    }
    if is_namespace(def) && !spec_finalizers_empty(obj) {
        // Terminating, waiting for the namespace controller.
        return Next::Keep;
    }
    if !finalizers_remain(def, p, obj) {
        return Next::Remove;
    }
    mark_as_deleting(obj);
    Next::Keep
}

/// Sets the finalizers the options ask for (as for a gracefully deleted pod, which `graceful`
/// marks instead); whether any finalizer holds the object.
pub fn finalizers_remain(def: &ResourceDef, p: &Propagation, obj: &mut Value) -> bool {
    if let Some(new) = finalizers_for_garbage_collection(def, p, obj) {
        metadata_mut(obj).insert("finalizers".into(), json!(new));
    }
    !finalizers(obj).is_empty()
}

fn is_namespace(def: &ResourceDef) -> bool {
    (def.group, def.plural) == ("", "namespaces")
}

fn spec_finalizers_empty(ns: &Value) -> bool {
    ns["spec"]["finalizers"].as_array().is_none_or(Vec::is_empty)
}

/// A namespace's first DELETE: marked deleted and Terminating, with the garbage collection
/// finalizers the options ask for (a namespace's own dependents follow its policy).
fn start_namespace_termination(p: &Propagation, ns: &mut Value) {
    let current = finalizers(ns);
    let orphan = p
        .orphan_dependents
        .or_else(|| p.policy.as_deref().map(|p| p == "Orphan"))
        .unwrap_or_else(|| current.iter().any(|f| f == ORPHAN));
    let foreground = p
        .orphan_dependents
        .map(|o| !o)
        .or_else(|| p.policy.as_deref().map(|p| p == "Foreground"))
        .unwrap_or_else(|| current.iter().any(|f| f == FOREGROUND));
    let mut new: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        new.push(ORPHAN.to_owned());
    }
    if foreground {
        new.push(FOREGROUND.to_owned());
    }
    let meta = metadata_mut(ns);
    meta.insert("deletionTimestamp".into(), now_rfc3339().into());
    if new.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".into(), json!(new));
    }
    if !ns["status"].is_object() {
        ns["status"] = json!({});
    }
    ns["status"]["phase"] = "Terminating".into();
}

/// Whether an update leaves a deleted object with nothing holding it, so that it is removed
/// instead of written (upstream's `ShouldDeleteDuringUpdate`; a namespace also waits for its
/// `spec.finalizers`).
pub fn should_delete_during_update(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    if (def.group, def.plural) == ("", "pods") {
        return crate::graceful::delete_during_update(old, new);
    }
    if !finalizers(new).is_empty() || objects::meta_str(old, "deletionTimestamp").is_none() {
        return false;
    }
    if is_namespace(def) && !spec_finalizers_empty(new) {
        return false;
    }
    objects::metadata(old)
        .and_then(|m| m.get("deletionGracePeriodSeconds"))
        .and_then(Value::as_i64)
        .is_none_or(|g| g == 0)
}

/// A namespace's `spec.finalizers` change only through `namespaces/NAME/finalize` (upstream's
/// namespace strategy keeps them on every other update).
pub fn keep_namespace_finalizers(def: &ResourceDef, subresource: Option<&str>, old: &Value, new: &mut Value) {
    if !is_namespace(def) || subresource == Some("finalize") || !new.is_object() {
        return;
    }
    match old["spec"].get("finalizers") {
        Some(f) => {
            if !new["spec"].is_object() {
                new["spec"] = json!({});
            }
            new["spec"]["finalizers"] = f.clone();
        }
        None => {
            if let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("finalizers");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    fn propagation(policy: Option<&str>, orphan: Option<bool>) -> Propagation {
        Propagation {
            orphan_dependents: orphan,
            policy: policy.map(str::to_owned),
        }
    }

    fn cm(finalizers: &[&str]) -> Value {
        json!({"metadata": {"name": "c", "finalizers": finalizers}})
    }

    #[test]
    fn policies_become_finalizers() {
        let cms = find("", "v1", "configmaps").unwrap();
        let mut obj = cm(&[]);
        assert_eq!(
            prepare(cms, &propagation(Some("Background"), None), &mut obj),
            Next::Remove
        );
        let mut obj = cm(&[]);
        assert_eq!(prepare(cms, &propagation(None, None), &mut obj), Next::Remove);
        let mut obj = cm(&[]);
        assert_eq!(
            prepare(cms, &propagation(Some("Foreground"), None), &mut obj),
            Next::Keep
        );
        assert_eq!(obj["metadata"]["finalizers"], json!(["foregroundDeletion"]));
        assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 0);
        let mut obj = cm(&[]);
        assert_eq!(prepare(cms, &propagation(None, Some(true)), &mut obj), Next::Keep);
        assert_eq!(obj["metadata"]["finalizers"], json!(["orphan"]));
        // A later Background delete drops the orphan finalizer again.
        let mut obj = cm(&["orphan", "example.com/x"]);
        assert_eq!(
            prepare(cms, &propagation(Some("Background"), None), &mut obj),
            Next::Keep
        );
        assert_eq!(obj["metadata"]["finalizers"], json!(["example.com/x"]));
    }

    #[test]
    fn legacy_kinds_orphan_by_default_and_events_never_collect() {
        let rcs = find("", "v1", "replicationcontrollers").unwrap();
        let mut obj = cm(&[]);
        assert_eq!(prepare(rcs, &propagation(None, None), &mut obj), Next::Keep);
        assert_eq!(obj["metadata"]["finalizers"], json!(["orphan"]));
        let events = find("", "v1", "events").unwrap();
        let mut obj = cm(&[]);
        assert_eq!(
            prepare(events, &propagation(Some("Orphan"), None), &mut obj),
            Next::Remove
        );
    }

    #[test]
    fn generation_bumps_once() {
        let deployments = find("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "d", "generation": 3}});
        prepare(deployments, &propagation(Some("Foreground"), None), &mut obj);
        prepare(deployments, &propagation(Some("Foreground"), None), &mut obj);
        assert_eq!(obj["metadata"]["generation"], 4);
    }

    #[test]
    fn namespaces_terminate_then_go_without_finalizers() {
        let ns = find("", "v1", "namespaces").unwrap();
        let mut obj = json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}});
        assert_eq!(
            prepare(ns, &propagation(Some("Background"), None), &mut obj),
            Next::Keep
        );
        assert_eq!(obj["status"]["phase"], "Terminating");
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
        assert!(obj["metadata"].get("deletionGracePeriodSeconds").is_none());
        assert_eq!(prepare(ns, &propagation(None, None), &mut obj), Next::Keep);
        let old = obj.clone();
        let mut finalized = obj.clone();
        finalized["spec"]["finalizers"] = json!([]);
        assert!(!should_delete_during_update(ns, &old, &obj));
        assert!(should_delete_during_update(ns, &old, &finalized));
        let mut updated = finalized.clone();
        keep_namespace_finalizers(ns, None, &old, &mut updated);
        assert_eq!(updated["spec"]["finalizers"], json!(["kubernetes"]));
    }
}
