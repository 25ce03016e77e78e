//! Conversion between built-in group-versions that share one storage, as upstream's scheme
//! converts through the internal version: core/v1 and events.k8s.io/v1 Events (stored as
//! core/v1), autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers (stored as v2).
//!
//! Objects are written in the storage version and converted to the version of each request on
//! the way out, so a client of either version sees every object, whichever version wrote it.
//! Objects stored before by another version are recognized by their `apiVersion`.

mod autoscaling;
mod events;

use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use serde_json::Value;
use store::Revision;

use crate::crd::{self, CustomVersion};

/// A stored object as a request for `def` shows it: custom resources in their served version,
/// built-ins converted from their storage version.
pub fn decode(
    def: &ResourceDef,
    custom: Option<&CustomVersion>,
    value: &[u8],
    revision: Revision,
) -> Result<Value, ApiError> {
    let obj = crd::resource::decode(custom, value, revision)?;
    Ok(match custom {
        Some(_) => obj,
        None => from_storage(def, obj),
    })
}

/// An object of a request for `def`, encoded as it is stored.
pub fn encode(def: &ResourceDef, custom: Option<&CustomVersion>, obj: &Value) -> bytes::Bytes {
    if custom.is_none() && converts(def) {
        return crate::objects::to_store(&to_storage(def, obj.clone()));
    }
    crd::resource::for_storage(custom, obj)
}

/// The storage version of a built-in resource served by more than one group-version.
fn storage_version(def: &ResourceDef) -> Option<&'static str> {
    match (def.group, def.plural) {
        ("" | "events.k8s.io", "events") => Some("v1"),
        ("autoscaling", "horizontalpodautoscalers") => Some("autoscaling/v2"),
        _ => None,
    }
}

/// Whether objects of `def` may need converting between storage and the request
/// (stored bytes cannot be served as they are).
pub fn converts(def: &ResourceDef) -> bool {
    storage_version(def).is_some_and(|storage| storage != def.api_version())
}

/// A stored object as `def`'s version shows it.
pub fn from_storage(def: &ResourceDef, obj: Value) -> Value {
    if storage_version(def).is_none() {
        return obj;
    }
    convert(obj, &def.api_version())
}

/// An object of `def`'s version as it is stored.
pub fn to_storage(def: &ResourceDef, obj: Value) -> Value {
    match storage_version(def) {
        Some(storage) => convert(obj, storage),
        None => obj,
    }
}

/// `obj` (of the version its `apiVersion` names) in version `to`.
fn convert(mut obj: Value, to: &str) -> Value {
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or(to)
        .to_owned();
    if from == to {
        return obj;
    }
    let converted = match (from.as_str(), to) {
        ("events.k8s.io/v1", "v1") => events::to_core(&mut obj),
        ("v1", "events.k8s.io/v1") => events::from_core(&mut obj),
        ("autoscaling/v1", "autoscaling/v2") => autoscaling::v1_to_v2(&mut obj),
        ("autoscaling/v2", "autoscaling/v1") => autoscaling::v2_to_v1(&mut obj),
        _ => false,
    };
    if converted {
        obj["apiVersion"] = to.into();
    }
    obj
}

/// Moves `obj[from]` to `obj[to]` (absent stays absent).
fn rename(obj: &mut serde_json::Map<String, Value>, from: &str, to: &str) {
    if let Some(value) = obj.remove(from) {
        obj.insert(to.to_owned(), value);
    }
}

#[cfg(test)]
mod tests;
