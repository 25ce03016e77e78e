//! Custom resources on the generic REST path: what upstream's customresource strategy and codec
//! do around the store. On the way in: pruning, defaults, the status split and schema
//! validation; objects are stored in the CRD's storage version. On the way out: the requested
//! version (conversion strategy None only rewrites `apiVersion`), pruned and defaulted by that
//! version's schema.

use apimachinery::status::{ApiError, Cause};
use serde_json::Value;
use store::Revision;

use super::CustomVersion;
use super::schema;
use super::validation_rules;
use crate::objects::{self, from_store};

/// Decodes a stored object for a request of `custom`'s version (or as is, for built-ins).
pub fn decode(custom: Option<&CustomVersion>, value: &[u8], revision: Revision) -> Result<Value, ApiError> {
    let mut obj = from_store(value, revision)?;
    if let Some(custom) = custom {
        obj["apiVersion"] = custom.def.api_version().into();
        // Upstream prunes and defaults on the way out of storage too: what a version's schema
        // does not declare (written through another version, or before a schema change) is not
        // shown, and defaults added since apply.
        if let Some(schema) = &custom.schema {
            let _ = schema::prune(&mut obj, schema);
            schema::default(&mut obj, schema);
        }
    }
    Ok(obj)
}

/// The object as stored: in the storage version.
pub fn for_storage(custom: Option<&CustomVersion>, obj: &Value) -> bytes::Bytes {
    match custom {
        Some(custom) => {
            let mut stored = obj.clone();
            stored["apiVersion"] = format!("{}/{}", custom.def.group, custom.storage_version).into();
            objects::to_store(&stored)
        }
        None => objects::to_store(obj),
    }
}

/// A create: no custom resources while the CRD is being deleted; status is dropped when the
/// status subresource owns it; then pruning, defaults and validation.
pub fn admit_create(custom: &CustomVersion, obj: &mut Value) -> Result<(), ApiError> {
    if custom.terminating {
        let mut err = ApiError::method_not_allowed();
        err.message = "create not allowed while custom resource definition is terminating".into();
        return Err(err);
    }
    if custom.has_status()
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    admit(custom, obj, None)
}

/// Pruning, defaults and schema validation of an object about to be written.
/// On updates (`old`), errors the current object already had are let through (upstream's
/// validation ratcheting: a schema tightened later does not block unrelated changes).
pub fn admit(custom: &CustomVersion, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let Some(schema) = &custom.schema else {
        return Ok(());
    };
    let _ = schema::prune(obj, schema);
    schema::default(obj, schema);
    let mut causes = schema::validate(obj, schema);
    check_label_maps(obj, &mut causes);
    if let Some(old) = old {
        let existing = schema::validate(old, schema);
        causes.retain(|c| !existing.contains(c));
    }
    // Upstream runs x-kubernetes-validations only on an object of the schema's shape.
    const BLOCKING: [&str; 5] = [
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    ];
    if causes.iter().any(|c| BLOCKING.contains(&c.reason.as_str())) {
        causes.push(Cause::invalid(
            "<nil>",
            &Value::Null,
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        ));
    } else {
        causes.extend(validation_rules::validate(obj, old, schema));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        let name = objects::name(obj).unwrap_or_default().to_owned();
        Err(ApiError::invalid(
            custom.def.group,
            custom.def.kind,
            &name,
            causes,
        ))
    }
}

/// Labels and annotations must be string maps (upstream's ObjectMeta decoding refuses others).
fn check_label_maps(obj: &Value, causes: &mut Vec<Cause>) {
    for field in ["labels", "annotations"] {
        if let Some(map) = obj["metadata"][field].as_object()
            && let Some((k, v)) = map.iter().find(|(_, v)| !v.is_string())
        {
            causes.push(Cause::invalid(
                &format!("metadata.{field}.{k}"),
                v,
                "must be a string",
            ));
        }
    }
}

/// Fields the schema does not declare, under `fieldValidation` (upstream's strict decoding for
/// custom resources): `Strict` rejects them, `Warn` (the default) returns the warnings to send,
/// `Ignore` drops them silently (pruning drops them in every mode).
pub fn check_unknown_fields(
    def: &apimachinery::resources::ResourceDef,
    custom: &CustomVersion,
    mode: crate::field_validation::Mode,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let Some(schema) = &custom.schema else {
        return Ok(Vec::new());
    };
    let unknown = schema::prune(obj, schema);
    crate::field_validation::outcome(def, mode, &unknown)
}

/// An apply configuration's fields the schema does not declare: under `Strict`, refused with
/// the wording of upstream's typed apply (`.spec.foo: field not declared in schema`); otherwise
/// pruned.
pub fn check_applied_fields(
    def: &apimachinery::resources::ResourceDef,
    custom: &CustomVersion,
    mode: crate::field_validation::Mode,
    config: &mut Value,
) -> Result<(), ApiError> {
    let Some(schema) = &custom.schema else {
        return Ok(());
    };
    let unknown = schema::prune(config, schema);
    if mode != crate::field_validation::Mode::Strict || unknown.is_empty() {
        return Ok(());
    }
    let name = objects::name(config).unwrap_or_default();
    let namespace = objects::namespace(config).unwrap_or_default();
    let errors: Vec<String> = unknown
        .iter()
        .map(|f| format!(".{f}: field not declared in schema"))
        .collect();
    Err(ApiError::bad_request(format!(
        "failed to create typed patch object ({namespace}/{name}; {}, Kind={}): {}",
        def.api_version(),
        def.kind,
        errors.join("\n")
    )))
}

/// What a DELETE of a custom resource answers, as upstream's registry (which does not return
/// deleted custom resources): a Success Status once it is gone, or 202 Accepted with the object
/// while finalizers hold it.
pub fn delete_response(def: &apimachinery::resources::ResourceDef, obj: Value) -> (http::StatusCode, Value) {
    if objects::meta_str(&obj, "deletionTimestamp").is_some() {
        return (http::StatusCode::ACCEPTED, obj);
    }
    let name = objects::name(&obj).unwrap_or_default();
    let status = apimachinery::status::success(def.group_resource(), name, objects::meta_str(&obj, "uid"));
    (http::StatusCode::OK, status)
}
