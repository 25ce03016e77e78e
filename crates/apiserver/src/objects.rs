//! Object metadata on untyped JSON: what every resource shares (name, namespace, uid,
//! resourceVersion, generation, timestamps), read and set the way upstream's generic registry
//! does. Objects are kept as `serde_json::Value` so that custom resources take the same path.

use apimachinery::status::ApiError;
use serde_json::{Map, Value};
use store::Revision;

pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"].as_object_mut().expect("just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)?.get(field)?.as_str()
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name").filter(|n| !n.is_empty())
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|n| !n.is_empty())
}

/// Drops empty (or null) labels, annotations, finalizers and ownerReferences: upstream decodes
/// every object's metadata into a typed ObjectMeta, whose `omitempty` leaves them out (so
/// `kubectl label x l-` of the last label leaves no `labels: {}` behind).
pub fn drop_empty_metadata_collections(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
        let empty = match meta.get(field) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

/// The revision a client put in `metadata.resourceVersion` (None when absent or empty).
pub fn resource_version(obj: &Value) -> Result<Option<Revision>, ApiError> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => parse_resource_version(rv).map(Some),
    }
}

pub fn parse_resource_version(rv: &str) -> Result<Revision, ApiError> {
    rv.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

/// Decodes a stored object and stamps it with its revision, as upstream's etcd3 store does (the
/// stored bytes never carry `resourceVersion`).
pub fn from_store(value: &[u8], mod_revision: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(value)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    metadata_mut(&mut obj).insert("resourceVersion".into(), Value::String(mod_revision.to_string()));
    Ok(obj)
}

/// Encodes an object for the store, without `resourceVersion`.
pub fn to_store(obj: &Value) -> bytes::Bytes {
    let mut obj = obj.clone();
    metadata_mut(&mut obj).remove("resourceVersion");
    bytes::Bytes::from(serde_json::to_vec(&obj).expect("a JSON value always serializes"))
}

/// How deep an object may nest: what serde_json reads back (its recursion limit stops at 128
/// levels). A deeper object could be written but never read again, and the server's recursive
/// walks over objects (validation, ownership, encoding) stay well within a worker's stack.
pub const MAX_DEPTH: usize = 127;

/// How many arrays and objects nest in `value` (0 for a scalar), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// RFC 3339 in UTC with second precision, as Kubernetes timestamps.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether anything outside `metadata` and `status` differs: upstream bumps `generation` only
/// for such (spec) changes.
pub fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_metadata_collections_are_dropped() {
        let mut obj = serde_json::json!({"metadata": {
            "name": "x", "labels": {}, "annotations": null, "finalizers": [],
            "ownerReferences": [], "uid": ""
        }});
        drop_empty_metadata_collections(&mut obj);
        assert_eq!(obj, serde_json::json!({"metadata": {"name": "x", "uid": ""}}));
        let mut kept = serde_json::json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["f"]}});
        let before = kept.clone();
        drop_empty_metadata_collections(&mut kept);
        assert_eq!(kept, before);
    }
    use serde_json::json;

    #[test]
    fn store_round_trip_sets_resource_version() {
        let obj = json!({"metadata": {"name": "a", "resourceVersion": "7"}, "data": {"k": "v"}});
        let stored = to_store(&obj);
        assert!(!String::from_utf8_lossy(&stored).contains("resourceVersion"));
        let back = from_store(&stored, 42).unwrap();
        assert_eq!(back["metadata"]["resourceVersion"], "42");
        assert_eq!(resource_version(&back).unwrap(), Some(42));
        assert!(resource_version(&json!({"metadata": {"resourceVersion": "x"}})).is_err());
    }

    #[test]
    fn generation_follows_spec_only() {
        let a = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1}, "status": {}});
        let labels = json!({"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 1}, "status": {"x": 1}});
        let spec = json!({"metadata": {}, "spec": {"replicas": 2}});
        assert!(!spec_changed(&a, &labels));
        assert!(spec_changed(&a, &spec));
        assert!(now_rfc3339().ends_with('Z'));
    }

    #[test]
    fn depth_counts_containers_up_to_what_serde_json_reads() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a": [1, {"b": {}}]})), 4);
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        let deepest: Value = serde_json::from_str(&nested(MAX_DEPTH)).unwrap();
        assert_eq!(depth(&deepest), MAX_DEPTH);
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH + 1)).is_err());
    }
}

/// A stored object as a list item, without materializing it: the top-level `kind` and
/// `apiVersion` dropped (list items of built-in kinds carry none) and `resourceVersion` put
/// first in `metadata`. None when the bytes are not a JSON object (the caller then parses).
pub fn raw_list_item(stored: &[u8], mod_revision: Revision) -> Option<Vec<u8>> {
    raw_with_revision(stored, mod_revision, true)
}

/// A stored object stamped with its revision without materializing it (as [`from_store`]
/// does by parsing), optionally without its `kind` and `apiVersion`.
pub fn raw_with_revision(stored: &[u8], mod_revision: Revision, strip_type: bool) -> Option<Vec<u8>> {
    let mut members = top_level_members(stored)?;
    // Upstream's order: kind, apiVersion, metadata, then the rest (a stable sort keeps theirs).
    members.sort_by_key(|(key, _)| crate::wire::key_rank(key));
    let mut out = Vec::with_capacity(stored.len() + 32);
    out.push(b'{');
    let mut has_metadata = false;
    for (key, value) in members {
        if strip_type && (key == b"kind" || key == b"apiVersion") {
            continue;
        }
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(key);
        out.extend_from_slice(b"\":");
        if key == b"metadata" && stored.get(value.start) == Some(&b'{') {
            has_metadata = true;
            out.extend_from_slice(format!("{{\"resourceVersion\":\"{mod_revision}\"").as_bytes());
            let inner = &stored[value.start + 1..value.end - 1];
            if inner.iter().any(|b| !b.is_ascii_whitespace()) {
                out.push(b',');
            }
            out.extend_from_slice(inner);
            out.push(b'}');
        } else {
            out.extend_from_slice(&stored[value]);
        }
    }
    if !has_metadata {
        return None;
    }
    out.push(b'}');
    Some(out)
}

/// The keys (raw, unescaped-free) and value byte ranges of a JSON object's top level; None for
/// anything else, or keys with escapes (never ours).
fn top_level_members(json: &[u8]) -> Option<Vec<(&[u8], std::ops::Range<usize>)>> {
    let mut i = skip_ws(json, 0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(json, i + 1);
    let mut members = Vec::new();
    if json.get(i) == Some(&b'}') {
        return Some(members);
    }
    loop {
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(json, i)?;
        let key = &json[i + 1..key_end - 1];
        if key.contains(&b'\\') {
            return None;
        }
        i = skip_ws(json, key_end);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(json, i + 1);
        let end = value_end(json, start)?;
        members.push((key, start..end));
        i = skip_ws(json, end);
        match json.get(i) {
            Some(b',') => i = skip_ws(json, i + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while json.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The index after the closing quote of the string starting at `start`.
fn string_end(json: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match json.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The index after the JSON value starting at `start`.
fn value_end(json: &[u8], start: usize) -> Option<usize> {
    match json.get(start)? {
        b'"' => string_end(json, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match json.get(i)? {
                    b'"' => {
                        i = string_end(json, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = start;
            while json
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;

    #[test]
    fn raw_objects_lead_with_type_meta_and_metadata() {
        let stored = br#"{"apiVersion":"v1","data":{"k":"v"},"kind":"ConfigMap","metadata":{"name":"a"}}"#;
        let object = raw_with_revision(stored, 3, false).unwrap();
        assert_eq!(
            String::from_utf8(object).unwrap(),
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"3","name":"a"},"data":{"k":"v"}}"#
        );
        let item = raw_list_item(stored, 3).unwrap();
        assert_eq!(
            String::from_utf8(item).unwrap(),
            r#"{"metadata":{"resourceVersion":"3","name":"a"},"data":{"k":"v"}}"#
        );
    }

    #[test]
    fn raw_list_items_match_the_parsed_path() {
        for stored in [
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"}{\"]"}},"spec":{"containers":[{"name":"c"}]},"status":{}}"#,
            r#"{"kind":"ConfigMap","data":{"k":"v"},"metadata":{}}"#,
            r#" { "metadata" : { "name" : "b" } , "n" : -1.5e3 , "t" : true , "z" : null } "#,
        ] {
            let raw = raw_list_item(stored.as_bytes(), 42).unwrap();
            let raw: Value = serde_json::from_slice(&raw).unwrap();
            let mut parsed = from_store(stored.as_bytes(), 42).unwrap();
            let map = parsed.as_object_mut().unwrap();
            map.remove("kind");
            map.remove("apiVersion");
            assert_eq!(raw, parsed, "{stored}");
        }
        assert!(raw_list_item(b"[1]", 1).is_none());
        assert!(raw_list_item(br#"{"a":1"#, 1).is_none());
        assert!(
            raw_list_item(br#"{"spec":{}}"#, 1).is_none(),
            "no metadata: parse instead"
        );
    }
}
