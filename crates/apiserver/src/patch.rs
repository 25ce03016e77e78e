//! A PATCH body applied to the current object: JSON patch, merge patch or strategic merge
//! patch, then the unknown-field check. Results that are no object are refused as upstream
//! refuses what it cannot decode into the kind's type.

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use apimachinery::strategic_merge;
use serde_json::Value;

use crate::field_validation::{self, Mode};
use crate::objects::{MAX_DEPTH, depth};

/// Upstream's limits on a JSON patch: operations in one patch, and bytes all its `copy`
/// operations may add (kube-apiserver's `JSONPatchMaxCopyBytes`).
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;
const MAX_JSON_PATCH_COPY_BYTES: usize = 3 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
}

/// The patched object (not yet merged with what the endpoint keeps, such as the status).
pub fn apply(
    def: &ResourceDef,
    kind: PatchKind,
    current: &Value,
    patch: &Value,
    field_validation: Mode,
) -> Result<(Value, Vec<String>), ApiError> {
    let mut patched = current.clone();
    match kind {
        PatchKind::Merge => {
            // evanphx/json-patch takes only an object or an array as a merge patch.
            if !patch.is_object() && !patch.is_array() {
                return Err(ApiError::bad_request("Invalid JSON Patch"));
            }
            json_patch::merge(&mut patched, patch);
        }
        PatchKind::Strategic => {
            patched = strategic_merge::apply(&def.api_version(), def.kind, current, patch)?;
        }
        PatchKind::Json => json_patch(&mut patched, patch)?,
    }
    if !patched.is_object() {
        return Err(not_an_object(&patched));
    }
    // Unknown fields a patch brings in are dropped, warned about, or rejected under Strict.
    let warnings = field_validation::check(def, field_validation, &mut patched)?;
    Ok((patched, warnings))
}

/// Upstream decodes the patched JSON into the kind's type; anything but an object fails there
/// (422 on the field `patch`, with the JSON decoder's complaint).
fn not_an_object(patched: &Value) -> ApiError {
    let go_type = apimachinery::selector::json_kind(patched);
    let detail = format!(
        "couldn't get version/kind; json parse error: json: cannot unmarshal {go_type} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}"
    );
    ApiError::invalid(
        "",
        "",
        "",
        vec![Cause::invalid(
            "patch",
            &Value::String(patched.to_string()),
            &detail,
        )],
    )
}

/// Applies a JSON patch one operation at a time, refusing what would exceed upstream's limits
/// or nest the object deeper than [`MAX_DEPTH`] (a patch can add at any depth, and `copy` a
/// subtree into itself) before the operation runs.
fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), ApiError> {
    use json_patch::PatchOperation as Op;
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "Request entity too large: The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    let mut copied = 0;
    for (index, op) in ops.iter().enumerate() {
        let placed = match op {
            Op::Add(op) => Some((op.path.as_str(), depth(&op.value))),
            Op::Replace(op) => Some((op.path.as_str(), depth(&op.value))),
            Op::Move(op) => doc
                .pointer(op.from.as_str())
                .map(|v| (op.path.as_str(), depth(v))),
            Op::Copy(op) => match doc.pointer(op.from.as_str()) {
                Some(value) => {
                    copied += serde_json::to_vec(value).map_or(0, |bytes| bytes.len());
                    if copied > MAX_JSON_PATCH_COPY_BYTES {
                        return Err(json_patch_error(format!(
                            "Unable to complete the copy, the accumulated size increase of copy is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}"
                        )));
                    }
                    Some((op.path.as_str(), depth(value)))
                }
                None => None,
            },
            Op::Remove(_) | Op::Test(_) => None,
        };
        if let Some((path, value_depth)) = placed
            && path.matches('/').count() + value_depth > MAX_DEPTH
        {
            return Err(json_patch_error(format!(
                "operation '/{index}' failed at path '{path}': the object would nest deeper than {MAX_DEPTH} levels"
            )));
        }
        // One operation at a time (the document is dropped on error, so no undo is needed).
        // Upstream answers a patch that does not apply with NewGenericServerResponse (422 in its
        // own wording; the json-patch error itself is dropped).
        json_patch::patch_unsafe(doc, std::slice::from_ref(op)).map_err(|_| ApiError::unprocessable())?;
    }
    Ok(())
}

fn json_patch_error(message: String) -> ApiError {
    ApiError::invalid("", "", "", vec![Cause::new("FieldValueInvalid", "", message)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(result: Result<(Value, Vec<String>), ApiError>) -> ApiError {
        match result {
            Ok(_) => panic!("the patch was accepted"),
            Err(e) => e,
        }
    }

    fn configmap() -> (&'static ResourceDef, Value) {
        let def = apimachinery::resources::find("", "v1", "configmaps").unwrap();
        (
            def,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}),
        )
    }

    #[test]
    fn merge_patches_and_results_must_be_objects() {
        let (def, cm) = configmap();
        let err = refused(apply(def, PatchKind::Merge, &cm, &json!(5), Mode::Warn));
        assert_eq!((err.code, err.message.as_str()), (400, "Invalid JSON Patch"));
        let err = refused(apply(def, PatchKind::Merge, &cm, &json!([1]), Mode::Warn));
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("cannot unmarshal array into Go value"),
            "{}",
            err.message
        );
        let replace_root = json!([{"op": "replace", "path": "", "value": "x"}]);
        let err = refused(apply(def, PatchKind::Json, &cm, &replace_root, Mode::Warn));
        assert!(
            err.message.contains("cannot unmarshal string into Go value"),
            "{}",
            err.message
        );
    }

    #[test]
    fn json_patches_keep_upstream_limits() {
        let (def, cm) = configmap();
        let many: Vec<Value> = (0..10_001)
            .map(|_| json!({"op": "test", "path": "/data/k", "value": "v"}))
            .collect();
        let err = refused(apply(def, PatchKind::Json, &cm, &Value::Array(many), Mode::Warn));
        assert_eq!(err.code, 413);
        assert_eq!(
            err.message,
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
        // Each copy of the root into itself doubles the object: refused at 3 MiB copied.
        let mut big = cm.clone();
        big["data"]["k"] = "x".repeat(1000).into();
        let doubling: Vec<Value> = (0..40)
            .map(|i| json!({"op": "copy", "from": "", "path": format!("/data/x{i}")}))
            .collect();
        let err = refused(apply(
            def,
            PatchKind::Json,
            &big,
            &Value::Array(doubling),
            Mode::Warn,
        ));
        assert_eq!(err.code, 422);
        assert!(
            err.message
                .contains("Unable to complete the copy, the accumulated size increase of copy is"),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with("exceeding the limit 3145728"),
            "{}",
            err.message
        );
    }

    #[test]
    fn json_patches_cannot_nest_deeper_than_the_limit() {
        let (def, cm) = configmap();
        // Copying a chain into its own tip doubles its depth with every operation.
        let mut ops = vec![json!({"op": "add", "path": "/data/c", "value": {}})];
        let mut tip = "/data/c".to_owned();
        for _ in 0..12 {
            ops.push(json!({"op": "copy", "from": "/data", "path": format!("{tip}/d")}));
            tip = format!("{tip}/d{}", tip.trim_start_matches("/data"));
        }
        let err = refused(apply(def, PatchKind::Json, &cm, &Value::Array(ops), Mode::Warn));
        assert!(
            err.message
                .contains("the object would nest deeper than 127 levels"),
            "{}",
            err.message
        );
        let ops = json!([{"op": "test", "path": "/data/k", "value": "v"}, {"op": "remove", "path": "/nope"}]);
        // A patch that does not apply: upstream's generic 422.
        let err = refused(apply(def, PatchKind::Json, &cm, &ops, Mode::Warn));
        assert_eq!(
            (err.code, err.message.as_str()),
            (
                422,
                "the server rejected our request due to an error in our request"
            )
        );
    }

    #[test]
    fn warn_mode_reports_the_unknown_fields_a_patch_brings() {
        let (def, cm) = configmap();
        let (patched, warnings) = apply(
            def,
            PatchKind::Merge,
            &cm,
            &json!({"bogus": 1, "data": {"k": "w"}}),
            Mode::Warn,
        )
        .unwrap();
        assert_eq!(warnings, ["unknown field \"bogus\""]);
        assert_eq!(patched["data"]["k"], "w");
        assert!(patched.get("bogus").is_none());
    }
}
