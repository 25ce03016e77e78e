//! Strategic merge patch (`application/strategic-merge-patch+json`), applied server-side as
//! upstream's `k8s.io/apimachinery/pkg/util/strategicpatch` does: maps merge recursively and
//! `null` deletes; lists whose field has `patchStrategy=merge` merge by their `patchMergeKey`
//! (lists of scalars: union); other lists are replaced; directives `$patch` (replace / delete /
//! merge), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`
//! steer it. Patch metadata comes from the protobuf schema table (see [`meta`]); fields the
//! schema does not know merge like a JSON merge patch.
//!
//! Errors carry upstream's codes and messages: malformed directives are 400, lists of lists 422,
//! everything else upstream returns as a plain Go error: 500 with its text.

mod gofmt;
mod lists;
mod meta;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::status::ApiError;
use gofmt::{go_type, go_value};
use lists::{merge_list_field, merge_ordered_lists};
use meta::{FieldMeta, Schema};

type Object = Map<String, Value>;
type Result<T> = std::result::Result<T, Error>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Whether strategic merge patch applies to a kind: only built-in kinds, whose patch metadata
/// is known (upstream refuses it for custom resources).
pub fn supports(api_version: &str, kind: &str) -> bool {
    meta::for_kind(api_version, kind).is_some()
}

/// 415 for a PATCH whose content type is no patch type the kind accepts, listing those it does
/// as upstream does (custom resources take no strategic merge patch).
pub fn unsupported_patch_type(api_version: &str, kind: &str) -> ApiError {
    let accepted = if supports(api_version, kind) {
        "application/json-patch+json, application/merge-patch+json, \
         application/strategic-merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    };
    ApiError::unsupported_media_type_because(&format!(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    ))
}

/// Applies strategic merge patch `patch` to `original`, an object of the built-in kind
/// `api_version`/`kind`.
pub fn apply(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> std::result::Result<Value, ApiError> {
    let Some(schema) = meta::for_kind(api_version, kind) else {
        return Err(unsupported_patch_type(api_version, kind));
    };
    apply_with_schema(original, patch, schema)
}

fn apply_with_schema(
    original: &Value,
    patch: &Value,
    schema: Schema,
) -> std::result::Result<Value, ApiError> {
    let patch = match patch {
        Value::Object(patch) => patch.clone(),
        Value::Null => Object::new(),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                crate::selector::json_kind(other)
            )));
        }
    };
    let original = original.as_object().cloned().unwrap_or_default();
    let mut merged = merge_map(original, patch, schema).map_err(Error::into_api_error)?;
    strip_directives(&mut merged);
    Ok(Value::Object(merged))
}

/// A failure, classified as upstream's `interpretStrategicMergePatchError` does.
#[derive(Debug, PartialEq, Eq)]
enum Error {
    /// One of upstream's malformed-patch errors: 400.
    BadRequest(&'static str),
    /// A list of lists: 422.
    ListOfLists,
    /// Any other error: upstream returns it as a plain error, 500 with its text.
    Unknown(String),
}

impl Error {
    fn unknown(message: String) -> Self {
        Error::Unknown(message)
    }

    fn into_api_error(self) -> ApiError {
        match self {
            Error::BadRequest(message) => ApiError::bad_request(message),
            Error::ListOfLists => ApiError::unprocessable(),
            Error::Unknown(message) => ApiError::unknown(message),
        }
    }
}

const BAD_PRIMITIVE_LIST: Error = Error::BadRequest("invalid patch format of primitive list");
const BAD_RETAIN_KEYS: Error = Error::BadRequest("invalid patch format of retainKeys");
const BAD_SET_ELEMENT_ORDER: Error = Error::BadRequest("invalid patch format of setElementOrder list");

fn no_merge_key(map: &Object, key: &str) -> Error {
    Error::unknown(format!(
        "map: {} does not contain declared merge key: {key}",
        go_value(&Value::Object(map.clone()))
    ))
}

fn bad_arg_type(expected: &str, actual: &Value) -> Error {
    Error::unknown(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn bad_patch_type(directive: &Value, map: &Object) -> Error {
    let directive = match directive {
        Value::String(s) => s.clone(),
        other => format!("%!s({}={})", go_type(other), go_value(other)),
    };
    Error::unknown(format!(
        "unknown patch type: {directive} in map: {}",
        go_value(&Value::Object(map.clone()))
    ))
}

const MAP_TYPE: &str = "map[string]interface {}";
const LIST_TYPE: &str = "[]interface {}";

/// Merges `patch` into `original` (upstream's `mergeMap`, server-side options: parallel lists
/// are applied and unmatched nulls ignored).
fn merge_map(mut original: Object, mut patch: Object, schema: Schema) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_ordered_lists(&mut original, &mut patch, schema)?;

    for (key, mut patch_value) in patch {
        let (key, is_delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(_) => (field_of(&key, DELETE_FROM_PRIMITIVE_LIST)?, true),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(original_value) = original.remove(&key) else {
            if !is_delete_list {
                discard_nulls(&mut patch_value);
                if let Some(value) = remove_directives(patch_value) {
                    original.insert(key, value);
                }
            }
            continue;
        };
        let merged = match (original_value, patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                let (sub, field) = schema.lookup_struct(&key)?;
                if strategy(field) == "replace" {
                    Some(Value::Object(p))
                } else {
                    Some(Value::Object(merge_map(o, p, sub)?))
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                let (sub, field) = schema.lookup_slice(&key)?;
                Some(Value::Array(
                    merge_list_field(o, p, sub, field, is_delete_list)?.items,
                ))
            }
            (original_value, mut patch_value) => {
                if is_delete_list && !same_type(&original_value, &patch_value) {
                    Some(original_value)
                } else {
                    if !same_type(&original_value, &patch_value) {
                        discard_nulls(&mut patch_value);
                    }
                    remove_directives(patch_value)
                }
            }
        };
        if let Some(value) = merged {
            original.insert(key, value);
        }
    }
    Ok(original)
}

/// The patch strategy without `retainKeys` (upstream's `extractRetainKeysPatchStrategy`).
fn strategy(field: FieldMeta) -> &'static str {
    field
        .strategy
        .split(',')
        .find(|s| *s != "retainKeys")
        .unwrap_or_default()
}

/// Go's `reflect.TypeOf(a) == reflect.TypeOf(b)` for decoded JSON.
fn same_type(a: &Value, b: &Value) -> bool {
    go_type(a) == go_type(b)
}

/// `$deleteFromPrimitiveList/finalizers` → `finalizers`.
fn field_of(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Ok(field.to_owned()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(BAD_PRIMITIVE_LIST),
        _ => Err(BAD_SET_ELEMENT_ORDER),
    }
}

/// `$retainKeys`: keys of the original missing from the list are cleared; every key the patch
/// sets must be in the list.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(BAD_RETAIN_KEYS);
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained(key) {
            return Err(BAD_RETAIN_KEYS);
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// A patch value taken as is: maps carrying `$patch` are dropped (`None` at the top).
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let map = map
                .into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(map))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Drops `null` members of maps, at any depth (a null cannot delete what is not there).
fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Directive keys left in places upstream's algorithm copies verbatim (items appended to a
/// merged list, lists replaced wholesale): upstream's conversion to the typed object drops them
/// as unknown fields, so they are never stored.
fn strip_directives(map: &mut Object) {
    map.retain(|k, _| !is_directive(k));
    for value in map.values_mut() {
        strip_directives_in(value);
    }
}

fn strip_directives_in(value: &mut Value) {
    match value {
        Value::Object(map) => strip_directives(map),
        Value::Array(items) => items.iter_mut().for_each(strip_directives_in),
        _ => {}
    }
}

fn is_directive(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}
