//! `/openapi/v2` as protobuf (gnostic's `openapi.v2.Document`), which client-go asks for first
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and kubectl needs when a kind
//! is missing from OpenAPI v3: its field-validation check falls back to v2 and fails on a 406.
//! The document carries the definitions (what kubectl's v2 models, validation and
//! `explain --output=plaintext-openapiv2` read); vendor extensions and other free-form values
//! go as gnostic's `Any` with the value as YAML (JSON is YAML).

use serde_json::Value;

/// The v2 media type client-go asks for.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The Content-Type of the answer: `@` is not valid in a media type (Go's mime parser, which
/// client-go runs on every response, rejects it), so kube-openapi answers with a `.`.
pub const CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Encodes a v2 document (swagger, info and definitions).
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, doc["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Vec::new();
    string(&mut info, 1, doc["info"]["title"].as_str().unwrap_or_default());
    string(&mut info, 2, doc["info"]["version"].as_str().unwrap_or_default());
    message(&mut out, 2, &info);
    let mut definitions = Vec::new();
    if let Some(defs) = doc["definitions"].as_object() {
        for (name, schema_value) in defs {
            message(&mut definitions, 1, &named_schema(name, schema_value));
        }
    }
    message(&mut out, 9, &definitions);
    out
}

fn named_schema(name: &str, value: &Value) -> Vec<u8> {
    let mut named = Vec::new();
    string(&mut named, 1, name);
    message(&mut named, 2, &schema(value));
    named
}

/// gnostic's `Schema` message.
fn schema(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(map) = value.as_object() else {
        return out;
    };
    for (key, v) in map {
        match key.as_str() {
            "$ref" => string(&mut out, 1, v.as_str().unwrap_or_default()),
            "format" => string(&mut out, 2, v.as_str().unwrap_or_default()),
            "title" => string(&mut out, 3, v.as_str().unwrap_or_default()),
            "description" => string(&mut out, 4, v.as_str().unwrap_or_default()),
            "default" => message(&mut out, 5, &any(v)),
            "multipleOf" => double(&mut out, 6, v),
            "maximum" => double(&mut out, 7, v),
            "exclusiveMaximum" => boolean(&mut out, 8, v),
            "minimum" => double(&mut out, 9, v),
            "exclusiveMinimum" => boolean(&mut out, 10, v),
            "maxLength" => int(&mut out, 11, v),
            "minLength" => int(&mut out, 12, v),
            "pattern" => string(&mut out, 13, v.as_str().unwrap_or_default()),
            "maxItems" => int(&mut out, 14, v),
            "minItems" => int(&mut out, 15, v),
            "uniqueItems" => boolean(&mut out, 16, v),
            "maxProperties" => int(&mut out, 17, v),
            "minProperties" => int(&mut out, 18, v),
            "required" => {
                for r in v.as_array().into_iter().flatten() {
                    string(&mut out, 19, r.as_str().unwrap_or_default());
                }
            }
            "enum" => {
                for e in v.as_array().into_iter().flatten() {
                    message(&mut out, 20, &any(e));
                }
            }
            "additionalProperties" => {
                let mut item = Vec::new();
                match v {
                    Value::Bool(b) => {
                        key_of(&mut item, 2, 0);
                        varint(&mut item, u64::from(*b));
                    }
                    other => message(&mut item, 1, &schema(other)),
                }
                message(&mut out, 21, &item);
            }
            "type" => {
                let mut types = Vec::new();
                match v {
                    Value::Array(all) => {
                        for t in all {
                            string(&mut types, 1, t.as_str().unwrap_or_default());
                        }
                    }
                    other => string(&mut types, 1, other.as_str().unwrap_or_default()),
                }
                message(&mut out, 22, &types);
            }
            "items" => {
                let mut items = Vec::new();
                match v {
                    Value::Array(all) => {
                        for s in all {
                            message(&mut items, 1, &schema(s));
                        }
                    }
                    other => message(&mut items, 1, &schema(other)),
                }
                message(&mut out, 23, &items);
            }
            "allOf" => {
                for s in v.as_array().into_iter().flatten() {
                    message(&mut out, 24, &schema(s));
                }
            }
            "properties" => {
                let mut properties = Vec::new();
                for (name, s) in v.as_object().into_iter().flatten() {
                    message(&mut properties, 1, &named_schema(name, s));
                }
                message(&mut out, 25, &properties);
            }
            "discriminator" => string(&mut out, 26, v.as_str().unwrap_or_default()),
            "readOnly" => boolean(&mut out, 27, v),
            "example" => message(&mut out, 30, &any(v)),
            extension if extension.starts_with("x-") => {
                let mut named = Vec::new();
                string(&mut named, 1, extension);
                message(&mut named, 2, &any(v));
                message(&mut out, 31, &named);
            }
            _ => {}
        }
    }
    out
}

/// gnostic's `Any`: the value as YAML text.
fn any(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 2, &value.to_string());
    out
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key_of(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    key_of(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string field (proto3 leaves empty strings out).
fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        bytes_field(out, field, value.as_bytes());
    }
}

/// A nested message (present even when empty).
fn message(out: &mut Vec<u8>, field: u32, encoded: &[u8]) {
    bytes_field(out, field, encoded);
}

fn double(out: &mut Vec<u8>, field: u32, value: &Value) {
    if let Some(f) = value.as_f64().filter(|f| *f != 0.0) {
        key_of(out, field, 1);
        out.extend_from_slice(&f.to_le_bytes());
    }
}

fn int(out: &mut Vec<u8>, field: u32, value: &Value) {
    if let Some(i) = value.as_i64().filter(|i| *i != 0) {
        key_of(out, field, 0);
        varint(out, i as u64);
    }
}

fn boolean(out: &mut Vec<u8>, field: u32, value: &Value) {
    if value.as_bool() == Some(true) {
        key_of(out, field, 0);
        varint(out, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_encodes_as_gnostic_messages() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "T", "version": "v"},
            "definitions": {"a.B": {
                "type": "object",
                "required": ["x"],
                "properties": {"x": {"type": "integer", "format": "int32"}},
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "B", "version": "v1"}],
            }},
        });
        let encoded = encode(&doc);
        // swagger = "2.0" (field 1), info {title "T", version "v"} (field 2).
        assert_eq!(encoded[..5], [0x0a, 3, b'2', b'.', b'0']);
        assert_eq!(encoded[5..13], [0x12, 6, 0x0a, 1, b'T', 0x12, 1, b'v']);
        let text = String::from_utf8_lossy(&encoded);
        assert!(text.contains("a.B") && text.contains("int32"), "{text}");
        assert!(
            text.contains("x-kubernetes-group-version-kind")
                && text.contains(r#"[{"group":"","kind":"B","version":"v1"}]"#),
            "{text}"
        );
        // definitions (field 9) is the last field and spans the rest.
        assert_eq!(encoded[13], 0x4a);
    }

    #[test]
    fn varints_use_seven_bits_per_byte() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
