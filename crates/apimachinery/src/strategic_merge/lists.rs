//! Lists in a strategic merge patch: merged by key (or as a set of scalars) when their field's
//! strategy is `merge`, with `$patch` items, `$deleteFromPrimitiveList` and `$setElementOrder`;
//! ordered as upstream orders them (patch items first where the live list gives no order).

use serde_json::Value;

use super::gofmt::{go_lists, go_type, go_value};
use super::meta::{FieldMeta, Schema};
use super::{
    DIRECTIVE, Error, LIST_TYPE, MAP_TYPE, Object, Result, SET_ELEMENT_ORDER, bad_arg_type, bad_patch_type,
    field_of, merge_map, no_merge_key, remove_directives, strategy,
};

/// The `$setElementOrder/<field>` directives (upstream's `mergePatchIntoOriginal`): merges each
/// such list field now and orders it: the directive's order first, then the patch's, then the
/// live object's.
pub(super) fn merge_ordered_lists(original: &mut Object, patch: &mut Object, schema: Schema) -> Result<()> {
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

        let (merged, server_order) = match (original_list, patch_list) {
            (Some(o), None) => (o, original_items.clone()),
            (None, Some(p)) => match remove_directives(Value::Array(p)) {
                Some(Value::Array(p)) => (p, original_items.clone()),
                _ => continue,
            },
            (Some(o), Some(p)) => {
                let merged = merge_list_field(o, p, sub, field, false)?;
                (merged.items, merged.original_view)
            }
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, field.merge_key)?;
        let is_map = element_is_map(&[&original_items, &patch_items])?;
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &server_order,
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

/// A merged list field, and the original list as upstream's later ordering step sees it.
pub(super) struct MergedList {
    pub items: Vec<Value>,
    /// Upstream merges Go slices in place: deleting an item shifts the original's backing
    /// array and appended items fill the freed tail, so the caller's view of the original list
    /// (which `$setElementOrder` orders server-only items by) changes with them. Mirrored here so
    /// that orders come out exactly as upstream's.
    original_view: Vec<Value>,
}

/// A list field present in both: merged if its strategy is `merge` (or it is a
/// `$deleteFromPrimitiveList`), else replaced by the patch's list.
pub(super) fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    field: FieldMeta,
    is_delete_list: bool,
) -> Result<MergedList> {
    if strategy(field) == "merge" || is_delete_list {
        merge_list(original, patch, schema, field.merge_key, is_delete_list)
    } else {
        Ok(MergedList {
            items: patch,
            original_view: original,
        })
    }
}

/// Upstream's `mergeSlice`.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<MergedList> {
    if original.is_empty() && patch.is_empty() {
        return Ok(MergedList {
            items: original,
            original_view: Vec::new(),
        });
    }
    let is_map = element_is_map(&[&original, &patch])?;
    if !is_map {
        let items = if is_delete_list {
            original.iter().filter(|v| !patch.contains(v)).cloned().collect()
        } else {
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(&patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
            normalize_element_order(in_patch, server_only, &patch, &original, merge_key, false)?
        };
        return Ok(MergedList {
            items,
            original_view: original,
        });
    }
    if merge_key.is_empty() {
        return Err(Error::unknown(format!(
            "cannot merge lists without merge key for {}",
            schema.go_kind()
        )));
    }
    let mut view = original;
    let (remaining, patch) = apply_list_directives(&mut view, patch, merge_key)?;
    let (original, in_place) = match remaining {
        Remaining::InPlace(len) => (view[..len].to_vec(), Some(len)),
        Remaining::Replaced(items) => (items, None),
    };
    let merged = merge_by_key(original.clone(), patch.clone(), merge_key, schema)?;
    if let Some(len) = in_place {
        // Appended items land in the tail the deletions freed.
        for (slot, item) in view[len..].iter_mut().zip(&merged[len..]) {
            *slot = item.clone();
        }
    }
    let (in_patch, server_only) = partition(merged, &patch, merge_key)?;
    let items = normalize_element_order(in_patch, server_only, &patch, &original, merge_key, true)?;
    Ok(MergedList {
        items,
        original_view: view,
    })
}

/// What is left of the original list after `$patch` items.
enum Remaining {
    /// The first `len` items of the (shifted) original list.
    InPlace(usize),
    /// `$patch: replace`: the patch's other items.
    Replaced(Vec<Value>),
}

/// `$patch` items of a list of maps (upstream's `mergeSliceWithSpecialElements`): `delete`
/// removes the original items with that key (shifting the rest down in `original`, as Go's
/// in-place delete does), `replace` makes the patch's other items the whole list. Returns what
/// remains of the original and the patch without those items.
fn apply_list_directives(
    original: &mut [Value],
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Remaining, Vec<Value>)> {
    let mut len = original.len();
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
                while let Some(i) = find_by_key(&original[..len], merge_key, value)? {
                    for j in i..len - 1 {
                        original[j] = original[j + 1].clone();
                    }
                    len -= 1;
                }
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
        return Ok((Remaining::Replaced(plain), Vec::new()));
    }
    Ok((Remaining::InPlace(len), plain))
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
