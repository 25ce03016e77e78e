//! Response bodies in upstream's key order. Go's encoder writes struct fields in declaration
//! order, so every object starts with `kind`, `apiVersion`, `metadata` (lists then `items`), and
//! watch events with `type`, `object`. Our `Value`s keep keys sorted; clients that stream-decode
//! (kube-rs reports decode errors by column) see the difference, so the top level is reordered
//! while serializing, without copying or re-parsing.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// The keys Go's TypeMeta and ObjectMeta put first, in their order.
pub const LEADING_KEYS: [&str; 3] = ["kind", "apiVersion", "metadata"];

/// Where a top-level key goes: the leading keys by position, everything else after them.
pub fn key_rank(key: &[u8]) -> usize {
    LEADING_KEYS
        .iter()
        .position(|k| k.as_bytes() == key)
        .unwrap_or(LEADING_KEYS.len())
}

/// Serializes an object with [`LEADING_KEYS`] first, the rest in their (sorted) order.
pub struct UpstreamOrder<'a>(pub &'a Value);

impl Serialize for UpstreamOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in LEADING_KEYS {
            if let Some(value) = map.get(key) {
                out.serialize_entry(key, value)?;
            }
        }
        for (key, value) in map.iter().filter(|(k, _)| !LEADING_KEYS.contains(&k.as_str())) {
            out.serialize_entry(key, value)?;
        }
        out.end()
    }
}

/// An object's JSON in upstream's top-level order.
pub fn to_vec(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&UpstreamOrder(value)).expect("a JSON value always serializes")
}

/// A watch event line (`{"type":…,"object":…}` and the newline) with the object in upstream's order.
pub fn event_line(kind: &str, object: &Value) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: UpstreamOrder<'a>,
    }
    let mut line = serde_json::to_vec(&Event {
        kind,
        object: UpstreamOrder(object),
    })
    .expect("a JSON value always serializes");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_lead_with_type_meta_then_metadata() {
        let secret = json!({"apiVersion": "v1", "data": {"k": "dg=="}, "kind": "Secret",
            "metadata": {"name": "s"}, "type": "Opaque"});
        assert_eq!(
            String::from_utf8(to_vec(&secret)).unwrap(),
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s"},"data":{"k":"dg=="},"type":"Opaque"}"#
        );
        let list = json!({"items": [], "apiVersion": "v1", "metadata": {}, "kind": "PodList"});
        assert_eq!(
            String::from_utf8(to_vec(&list)).unwrap(),
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#
        );
        assert_eq!(to_vec(&json!([1, {"b": 1, "a": 2}])), br#"[1,{"a":2,"b":1}]"#);
    }

    #[test]
    fn watch_events_lead_with_type() {
        let line = event_line(
            "ADDED",
            &json!({"metadata": {}, "apiVersion": "v1", "kind": "Pod"}),
        );
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{}}}\n"
        );
    }
}
