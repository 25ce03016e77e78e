//! Field sets: which fields of an object a manager owns, as a tree of path elements in the
//! FieldsV1 spelling (`f:spec`, `k:{"name":"c"}`, `v:"x"`, `i:0`). A node is a *member* when
//! the path to it is itself in the set (a leaf value, or an associative list item as such —
//! FieldsV1's `".": {}`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` as a member.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    pub fn get(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for element in path {
            node = node.children.get(element)?;
        }
        Some(node)
    }

    /// Whether `path` or anything below it is a member.
    pub fn covers(&self, path: &[String]) -> bool {
        self.get(path).is_some_and(|n| !n.is_empty())
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, v) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(v),
                None => v.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// The members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let child = match other.children.get(k) {
                Some(theirs) => v.difference(theirs),
                None => v.clone(),
            };
            if !child.is_empty() {
                out.children.insert(k.clone(), child);
            }
        }
        out
    }

    /// Like [`FieldSet::difference`], also dropping everything below the members of `other`.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let child = match other.children.get(k) {
                Some(theirs) if theirs.member => continue,
                Some(theirs) => v.recursive_difference(theirs),
                None => v.clone(),
            };
            if !child.is_empty() {
                out.children.insert(k.clone(), child);
            }
        }
        out
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(theirs) = other.children.get(k) {
                let child = v.intersection(theirs);
                if !child.is_empty() {
                    out.children.insert(k.clone(), child);
                }
            }
        }
        out
    }

    /// Every member path, depth first in element order.
    pub fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, v) in &self.children {
            prefix.push(k.clone());
            v.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, v) in &self.children {
            if !v.is_empty() {
                map.insert(k.clone(), v.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Parses FieldsV1 JSON (None when it is not an object tree).
    pub fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let mut root = FieldSet::default();
        for (k, v) in value.as_object()? {
            if k == "." {
                root.member = true;
                continue;
            }
            let mut child = FieldSet::from_fields_v1(v)?;
            if child.children.is_empty() {
                child.member = true;
            }
            root.children.insert(k.clone(), child);
        }
        Some(root)
    }
}

/// A path as upstream prints it in conflicts: `.spec.replicas`,
/// `.spec.containers[name="c"].image`, `.metadata.finalizers[="x"]`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trips() {
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}},
        });
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert!(
            set.get(&path(&["f:metadata", "f:labels", "f:app"]))
                .unwrap()
                .member
        );
        assert!(!set.get(&path(&["f:metadata"])).unwrap().member);
        assert!(
            set.get(&path(&["f:spec", "f:containers", "k:{\"name\":\"c\"}"]))
                .unwrap()
                .member
        );
        assert_eq!(set.to_fields_v1(), fields);
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&path(&["f:spec", "f:replicas"]));
        a.insert(&path(&["f:spec", "f:paused"]));
        let mut b = FieldSet::default();
        b.insert(&path(&["f:spec", "f:replicas"]));
        b.insert(&path(&["f:metadata", "f:labels", "f:x"]));
        assert_eq!(
            a.intersection(&b).members(),
            vec![path(&["f:spec", "f:replicas"])]
        );
        assert_eq!(a.difference(&b).members(), vec![path(&["f:spec", "f:paused"])]);
        assert_eq!(a.union(&b).members().len(), 3);
        let mut status = FieldSet::default();
        status.insert(&path(&["f:spec"]));
        assert!(a.recursive_difference(&status).is_empty());
        assert!(!a.difference(&status).is_empty());
    }

    #[test]
    fn paths_print_as_upstream() {
        assert_eq!(display(&path(&["f:spec", "f:replicas"])), ".spec.replicas");
        assert_eq!(
            display(&path(&[
                "f:spec",
                "f:ports",
                "k:{\"port\":80,\"protocol\":\"TCP\"}",
                "f:name"
            ])),
            ".spec.ports[port=80,protocol=\"TCP\"].name"
        );
        assert_eq!(
            display(&path(&["f:metadata", "f:finalizers", "v:\"x\""])),
            ".metadata.finalizers[=\"x\"]"
        );
    }
}
