//! Objects seen through their [`Shape`]: the field set an object sets, what changed between two
//! objects, merging an applied configuration into a live object, and removing fields.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::set::FieldSet;
use super::shape::{ListKind, Shape};

/// The fields `value` sets: every leaf, and every item of associative lists and sets.
pub fn field_set(value: &Value, shape: &Shape) -> FieldSet {
    let mut set = FieldSet::default();
    walk(value, shape, &mut Vec::new(), &mut set);
    set
}

fn walk(value: &Value, shape: &Shape, path: &mut Vec<String>, set: &mut FieldSet) {
    match (shape, value) {
        (Shape::Struct(_) | Shape::Map(_) | Shape::Untyped, Value::Object(map)) => {
            for (key, child) in map {
                path.push(format!("f:{key}"));
                walk(child, &shape.child(key), path, set);
                path.pop();
            }
        }
        (Shape::List(kind @ (ListKind::Set | ListKind::Map(_)), element), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                path.push(item_element(kind, item, i));
                set.insert(path);
                if matches!(kind, ListKind::Map(_)) {
                    walk(item, element, path, set);
                }
                path.pop();
            }
        }
        _ if path.is_empty() => {}
        _ => set.insert(path),
    }
}

/// The path element naming a list item: `k:{"name":"c"}`, `v:"x"` or `i:3`.
pub fn item_element(kind: &ListKind, item: &Value, index: usize) -> String {
    match kind {
        ListKind::Set => format!("v:{item}"),
        ListKind::Map(keys) => {
            let mut fields = BTreeMap::new();
            for key in keys {
                match item.get(*key) {
                    Some(v) => {
                        fields.insert(*key, v.clone());
                    }
                    // Upstream's schema defaults a port's protocol, which is part of its key.
                    None if *key == "protocol" => {
                        fields.insert(*key, Value::from("TCP"));
                    }
                    None => {}
                }
            }
            format!("k:{}", serde_json::to_string(&fields).expect("JSON"))
        }
        ListKind::Atomic => format!("i:{index}"),
    }
}

/// What changed from one object to another, as field sets.
#[derive(Debug, Default)]
pub struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn is_same(&self) -> bool {
        self.added.is_empty() && self.modified.is_empty() && self.removed.is_empty()
    }
}

pub fn compare(old: &Value, new: &Value, shape: &Shape) -> Comparison {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), shape, &mut Vec::new(), &mut out);
    out
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    shape: &Shape,
    path: &mut Vec<String>,
    out: &mut Comparison,
) {
    let (old, new) = match (old, new) {
        (None, None) => return,
        (None, Some(n)) => return added_or_removed(n, shape, path, &mut out.added),
        (Some(o), None) => return added_or_removed(o, shape, path, &mut out.removed),
        (Some(o), Some(n)) => (o, n),
    };
    match (shape, old, new) {
        (Shape::Struct(_) | Shape::Map(_) | Shape::Untyped, Value::Object(o), Value::Object(n)) => {
            for key in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                path.push(format!("f:{key}"));
                compare_at(o.get(key), n.get(key), &shape.child(key), path, out);
                path.pop();
            }
        }
        (
            Shape::List(kind @ (ListKind::Set | ListKind::Map(_)), element),
            Value::Array(o),
            Value::Array(n),
        ) => {
            let index = |items: &Vec<Value>| -> BTreeMap<String, usize> {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (item_element(kind, item, i), i))
                    .collect()
            };
            let (old_items, new_items) = (index(o), index(n));
            for (e, &i) in &old_items {
                path.push(e.clone());
                match new_items.get(e) {
                    Some(&j) if matches!(kind, ListKind::Map(_)) => {
                        compare_at(Some(&o[i]), Some(&n[j]), element, path, out);
                    }
                    Some(_) => {}
                    None => {
                        out.removed.insert(path);
                        if matches!(kind, ListKind::Map(_)) {
                            walk(&o[i], element, path, &mut out.removed);
                        }
                    }
                }
                path.pop();
            }
            for (e, &j) in new_items.iter().filter(|(e, _)| !old_items.contains_key(*e)) {
                path.push(e.clone());
                out.added.insert(path);
                if matches!(kind, ListKind::Map(_)) {
                    walk(&n[j], element, path, &mut out.added);
                }
                path.pop();
            }
        }
        _ if old != new && !path.is_empty() => out.modified.insert(path),
        _ => {}
    }
}

fn added_or_removed(value: &Value, shape: &Shape, path: &mut Vec<String>, set: &mut FieldSet) {
    let mut sub = FieldSet::default();
    walk(value, shape, path, &mut sub);
    if sub.is_empty() && !path.is_empty() {
        // An empty object or list: the field itself.
        sub.insert(path);
    }
    *set = set.union(&sub);
}

/// The live object with the applied configuration merged in: the configuration's values win,
/// structs and maps merge key by key, associative lists item by item, sets by value.
pub fn merge(live: &Value, config: &Value, shape: &Shape) -> Value {
    match (shape, live, config) {
        (Shape::Struct(_) | Shape::Map(_) | Shape::Untyped, Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (key, value) in c {
                let merged = match l.get(key) {
                    Some(existing) => merge(existing, value, &shape.child(key)),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (
            Shape::List(kind @ (ListKind::Set | ListKind::Map(_)), element),
            Value::Array(l),
            Value::Array(c),
        ) => {
            let mut out = l.clone();
            for (i, item) in c.iter().enumerate() {
                let e = item_element(kind, item, i);
                match out
                    .iter()
                    .enumerate()
                    .position(|(j, existing)| item_element(kind, existing, j) == e)
                {
                    Some(pos) if matches!(kind, ListKind::Map(_)) => {
                        out[pos] = merge(&out[pos], item, element)
                    }
                    Some(_) => {}
                    None => out.push(item.clone()),
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the members of `set` from `value`. Maps and lists left empty go, as Go's
/// `omitempty` drops them.
pub fn remove(value: &mut Value, set: &FieldSet, shape: &Shape) {
    match value {
        Value::Object(map) => {
            for (element, child) in &set.children {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                let child_shape = shape.child(name);
                if child.member {
                    map.remove(name);
                } else if let Some(v) = map.get_mut(name) {
                    remove(v, child, &child_shape);
                    if is_empty_collection(v, &child_shape) {
                        map.remove(name);
                    }
                }
            }
        }
        Value::Array(items) => {
            let Shape::List(kind, element) = shape else {
                return;
            };
            for (e, child) in &set.children {
                let Some(i) = items
                    .iter()
                    .enumerate()
                    .position(|(i, item)| item_element(kind, item, i) == *e)
                else {
                    continue;
                };
                if child.member {
                    items.remove(i);
                } else {
                    remove(&mut items[i], child, element);
                }
            }
        }
        _ => {}
    }
}

fn is_empty_collection(value: &Value, shape: &Shape) -> bool {
    match (shape, value) {
        (Shape::Map(_), Value::Object(m)) => m.is_empty(),
        (Shape::List(..), Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// A copy of `obj` without `metadata.managedFields` (they describe the object, they are not
/// part of what is owned or compared).
pub fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    obj
}

/// Inserts `fields` as `metadata.managedFields` (or removes the key when there are none).
pub fn set_managed_fields(obj: &mut Value, fields: Option<Value>) {
    if !obj["metadata"].is_object() {
        obj["metadata"] = Value::Object(Map::new());
    }
    let meta = obj["metadata"].as_object_mut().expect("object");
    match fields {
        Some(f) => {
            meta.insert("managedFields".into(), f);
        }
        None => {
            meta.remove("managedFields");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed_fields::shape::for_kind;
    use serde_json::json;

    fn deployment() -> Shape {
        for_kind("apps/v1", "Deployment")
    }

    #[test]
    fn field_sets_name_leaves_and_list_items() {
        let obj = json!({
            "apiVersion": "apps/v1",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "c", "image": "nginx", "args": ["x"], "ports": [{"containerPort": 80}]}
            ]}}},
        });
        let set = field_set(&obj, &deployment());
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:apiVersion": {},
                "f:metadata": {"f:name": {}, "f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
                }}}},
            })
        );
    }

    #[test]
    fn comparisons_see_items_by_key() {
        let old = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}}});
        let new = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "b", "image": "2"}, {"name": "c", "image": "1"}]}}}});
        let c = compare(&old, &new, &deployment());
        let show = |s: &FieldSet| -> Vec<String> {
            s.members()
                .iter()
                .map(|p| super::super::set::display(p))
                .collect()
        };
        assert_eq!(
            show(&c.modified),
            [
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"b\"].image"
            ]
        );
        assert_eq!(
            show(&c.added),
            [
                ".spec.template.spec.containers[name=\"c\"]",
                ".spec.template.spec.containers[name=\"c\"].image",
                ".spec.template.spec.containers[name=\"c\"].name"
            ]
        );
        assert_eq!(show(&c.removed).len(), 3);
    }

    #[test]
    fn merge_and_remove() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "1", "imagePullPolicy": "Always"}]}}}});
        let config = json!({"metadata": {"labels": {"b": "3"}}, "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "2"}, {"name": "z", "image": "1"}]}}}});
        let mut merged = merge(&live, &config, &deployment());
        assert_eq!(merged["metadata"]["labels"], json!({"a": "1", "b": "3"}));
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "2", "imagePullPolicy": "Always"}, {"name": "z", "image": "1"}])
        );
        let mut gone = FieldSet::default();
        gone.insert(&["f:metadata".into(), "f:labels".into(), "f:a".into()]);
        gone.insert(&["f:metadata".into(), "f:labels".into(), "f:b".into()]);
        gone.insert(&[
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"z\"}".into(),
        ]);
        remove(&mut merged, &gone, &deployment());
        assert_eq!(merged["metadata"], json!({}), "the emptied map goes");
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }
}
