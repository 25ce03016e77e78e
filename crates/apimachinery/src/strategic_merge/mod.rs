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
mod meta;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::status::ApiError;
use gofmt::{go_lists, go_type, go_value};
use meta::{FieldMeta, Schema};

type Object = Map<String, Value>;
type Result<T> = std::result::Result<T, Error>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Refuses strategic merge patch for kinds that are not built in (custom resources): upstream
/// has no patch metadata for them and answers 415.
pub fn check_supported(api_version: &str, kind: &str) -> std::result::Result<(), ApiError> {
    match meta::for_kind(api_version, kind) {
        Some(_) => Ok(()),
        None => Err(ApiError::unsupported_media_type_because(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        )),
    }
}

/// Applies strategic merge patch `patch` to `original`, an object of the built-in kind
/// `api_version`/`kind`.
pub fn apply(
    api_version: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> std::result::Result<Value, ApiError> {
    check_supported(api_version, kind)?;
    let schema = meta::for_kind(api_version, kind).unwrap_or(Schema::Unknown);
    let patch = match patch {
        Value::Object(patch) => patch.clone(),
        Value::Null => Object::new(),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_type_name(other)
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
pub(crate) enum Error {
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
                Some(Value::Array(merge_list_field(o, p, sub, field, is_delete_list)?))
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

/// The `$setElementOrder/<field>` directives (upstream's `mergePatchIntoOriginal`): merges each
/// such list field now and orders it: the directive's order first, then the patch's, then the
/// live object's.
fn merge_ordered_lists(original: &mut Object, patch: &mut Object, schema: Schema) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let order = patch.remove(&directive).unwrap_or_default();
        let Value::Array(order) = order else {
            return Err(bad_arg_type(LIST_TYPE, &order));
        };
        let key = field_of(&directive, SET_ELEMENT_ORDER)?;
        let original_list = match original.get(&key) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type(LIST_TYPE, other)),
        };
        let patch_list = match patch.get(&key) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => return Err(bad_arg_type(LIST_TYPE, other)),
        };
        let (sub, field) = schema.lookup_slice(&key)?;
        let original_items = original_list.clone().unwrap_or_default();
        let patch_items = patch_list.clone().unwrap_or_default();
        check_order_matches_patch(&patch_items, &order, field.merge_key)?;

        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => match remove_directives(Value::Array(p)) {
                Some(Value::Array(p)) => p,
                _ => continue,
            },
            (Some(o), Some(p)) => merge_list_field(o, p, sub, field, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, field.merge_key)?;
        let is_map = element_is_map(&[&original_items, &patch_items])?;
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &original_items,
            field.merge_key,
            is_map,
        )?;
        original.insert(key.clone(), Value::Array(ordered));
        patch.remove(&key);
    }
    Ok(())
}

/// Upstream's `validatePatchWithSetOrderList`: the patch's items must appear in the
/// `$setElementOrder` list, in the same relative order.
fn check_order_matches_patch(patch: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let kept: Vec<Value> = if merge_key.is_empty() {
        patch.to_vec()
    } else {
        split_deletions(patch.to_vec())?.0
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_equal(&kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(Error::unknown(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_value(&Value::Array(patch.to_vec())),
            go_value(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

fn merge_key_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let (Value::Object(l), Value::Object(r)) = (left, right) else {
        let bad = if left.is_object() { right } else { left };
        return Err(bad_arg_type(MAP_TYPE, bad));
    };
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

/// A list field present in both: merged if its strategy is `merge` (or it is a
/// `$deleteFromPrimitiveList`), else replaced by the patch's list.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    field: FieldMeta,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if strategy(field) == "merge" || is_delete_list {
        merge_list(original, patch, schema, field.merge_key, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// Upstream's `mergeSlice`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = element_is_map(&[&original, &patch])?;
    let (original, patch, merged) = if !is_map {
        if is_delete_list {
            return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (original, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(Error::unknown(format!(
                "cannot merge lists without merge key for {}",
                schema.go_kind()
            )));
        }
        let (original, patch) = apply_list_directives(original, patch, merge_key)?;
        let merged = merge_by_key(original.clone(), patch.clone(), merge_key, schema)?;
        (original, patch, merged)
    };
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    normalize_element_order(in_patch, server_only, &patch, &original, merge_key, is_map)
}

/// `$patch` items of a list of maps (upstream's `mergeSliceWithSpecialElements`): `delete`
/// removes the original items with that key, `replace` makes the patch's other items the whole
/// list. Returns the original and the patch without those items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(bad_arg_type(MAP_TYPE, &item));
        };
        match map.get(DIRECTIVE) {
            None => plain.push(item),
            Some(Value::String(d)) if d == "delete" => {
                let Some(value) = map.get(merge_key) else {
                    return Err(no_merge_key(map, merge_key));
                };
                let mut kept = Vec::with_capacity(original.len());
                for (i, o) in original.into_iter().enumerate() {
                    let Value::Object(o) = &o else {
                        return Err(Error::unknown(format!("value for key {i} is not a map")));
                    };
                    if o.get(merge_key) != Some(value) {
                        kept.push(Value::Object(o.clone()));
                    }
                }
                original = kept;
            }
            Some(Value::String(d)) if d == "replace" => replace = true,
            Some(Value::String(d)) if d == "merge" => {
                return Err(Error::unknown(
                    "merging lists cannot yet be specified in the patch".into(),
                ));
            }
            Some(other) => return Err(bad_patch_type(other, map)),
        }
    }
    if replace {
        return Ok((plain, Vec::new()));
    }
    Ok((original, plain))
}

/// Upstream's `mergeSliceWithoutSpecialElements`: items whose merge key matches an original
/// item are merged into it, the others appended.
fn merge_by_key(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    schema: Schema,
) -> Result<Vec<Value>> {
    for item in patch {
        let Value::Object(map) = item else {
            return Err(bad_arg_type(MAP_TYPE, &item));
        };
        let Some(value) = map.get(merge_key) else {
            return Err(no_merge_key(&map, merge_key));
        };
        match find_by_key(&original, merge_key, value)? {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut original[i]) else {
                    unreachable!("find_by_key checked every item is a map")
                };
                original[i] = Value::Object(merge_map(o, map, schema)?);
            }
            None => original.push(Value::Object(map)),
        }
    }
    Ok(original)
}

fn find_by_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(Error::unknown(format!("value for key {i} is not a map")));
        };
        if map.get(merge_key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Whether the lists' items are maps (upstream's `sliceElementType`, which also insists every
/// item has the same type and refuses lists of lists).
fn element_is_map(lists: &[&[Value]]) -> Result<bool> {
    let mut first: Option<&str> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        if item.is_null() && first.is_none() {
            continue;
        }
        let t = go_type(item);
        match first {
            None if item.is_array() => return Err(Error::ListOfLists),
            None => first = Some(t),
            Some(f) if f != t => {
                return Err(Error::unknown(format!(
                    "list element types are not identical: {}",
                    go_lists(lists)
                )));
            }
            Some(_) => {}
        }
    }
    match first {
        Some(t) => Ok(t == MAP_TYPE),
        None => Err(Error::unknown("no elements in any of the given slices".into())),
    }
}

/// Splits `merged` into the items present in `by` (by merge key for maps, by value otherwise)
/// and the others, keeping their order.
fn partition(merged: Vec<Value>, by: &[Value], merge_key: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::with_capacity(merged.len());
    for item in merged {
        let found = if merge_key.is_empty() {
            by.contains(&item)
        } else {
            let Value::Object(map) = &item else {
                return Err(bad_arg_type(MAP_TYPE, &item));
            };
            let Some(value) = map.get(merge_key) else {
                return Err(no_merge_key(map, merge_key));
            };
            find_by_key(by, merge_key, value)?.is_some()
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Upstream's `normalizeElementOrder`: the patch's items sorted by `patch_order`, the
/// server-only items by `server_order`, then interleaved so both keep their relative order and
/// server-only items stay where they were relative to the patch's items.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    is_map: bool,
) -> Result<Vec<Value>> {
    let patch = sort_by_order(patch, patch_order, merge_key, is_map)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, is_map)?;
    // Insert each server-only item before the first patch item it precedes in the live list.
    let less = |l: &Value, r: &Value| match (
        position(server_order, l, merge_key, is_map),
        position(server_order, r, merge_key, is_map),
    ) {
        (Some(li), Some(ri)) => li < ri,
        _ => false,
    };
    let mut out = Vec::with_capacity(patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                if less(l, r) {
                    out.extend(left.next());
                } else {
                    out.extend(right.next());
                }
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => return Ok(out),
        }
    }
}

/// Upstream's `normalizeSliceOrder`: a stable sort by position in `order`; `$patch: delete`
/// items go last.
fn sort_by_order(items: Vec<Value>, order: &[Value], merge_key: &str, is_map: bool) -> Result<Vec<Value>> {
    let (mut items, deletions) = if is_map {
        for item in items.iter().chain(order) {
            let Value::Object(map) = item else {
                return Err(bad_arg_type(MAP_TYPE, item));
            };
            if !map.contains_key(merge_key) {
                return Err(no_merge_key(map, merge_key));
            }
        }
        split_deletions(items)?
    } else {
        (items, Vec::new())
    };
    // Upstream's comparison puts items missing from `order` first.
    items.sort_by_key(|item| position(order, item, merge_key, is_map).map_or(-1, |i| i as i64));
    items.extend(deletions);
    Ok(items)
}

/// Position of `item` in `list`: by merge key value for maps, by value otherwise.
fn position(list: &[Value], item: &Value, merge_key: &str, is_map: bool) -> Option<usize> {
    if !is_map {
        return list.iter().position(|v| v == item);
    }
    fn key_of<'a>(v: &'a Value, merge_key: &str) -> Option<&'a Value> {
        v.as_object().and_then(|m| m.get(merge_key))
    }
    let wanted = key_of(item, merge_key);
    list.iter().position(|v| key_of(v, merge_key) == wanted)
}

/// Items with `$patch: delete` apart from the others.
fn split_deletions(items: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut kept = Vec::with_capacity(items.len());
    let mut deletions = Vec::new();
    for item in items {
        let Value::Object(map) = &item else {
            return Err(bad_arg_type(MAP_TYPE, &item));
        };
        if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            deletions.push(item);
        } else {
            kept.push(item);
        }
    }
    Ok((kept, deletions))
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

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
