//! `/openapi/v2` in protobuf: the gnostic `openapi_v2.Document` encoding kube-apiserver serves
//! and client-go's `OpenAPISchema()` insists on (it sends only the protobuf media type). kubectl
//! needs it for client-side validation, which it falls back to for kinds without a PATCH
//! operation (`kind: List` files, Bindings, reviews). Field numbers are gnostic's
//! `openapiv2/OpenAPIv2.proto`; vendor extensions carry their value as YAML text (JSON is YAML).

use serde_json::{Map, Value};

/// A protobuf message under construction.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, values: &Value) {
        for v in values.as_array().into_iter().flatten() {
            if let Some(s) = v.as_str() {
                self.bytes(field, s.as_bytes());
            }
        }
    }

    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: Option<i64>) {
        if let Some(v) = v.filter(|v| *v != 0) {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: Option<f64>) {
        if let Some(v) = v {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, build: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        build(&mut inner);
        self.bytes(field, &inner.0);
    }
}

/// The v2 document (as served in JSON) in protobuf.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    w.message(2, |info| {
        info.string(1, doc["info"]["title"].as_str().unwrap_or_default());
        info.string(2, doc["info"]["version"].as_str().unwrap_or_default());
    });
    w.message(8, |paths| {
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.message(2, |named| {
                named.string(1, path);
                named.message(2, |p| path_item(p, item));
            });
        }
    });
    w.message(9, |defs| {
        for (name, schema_value) in doc["definitions"].as_object().into_iter().flatten() {
            defs.message(1, |named| {
                named.string(1, name);
                named.message(2, |s| schema(s, schema_value));
            });
        }
    });
    for requirement in doc["security"].as_array().into_iter().flatten() {
        w.message(12, |req| {
            for (name, scopes) in requirement.as_object().into_iter().flatten() {
                req.message(1, |named| {
                    named.string(1, name);
                    named.message(2, |array| array.strings(1, scopes));
                });
            }
        });
    }
    w.message(13, |defs| {
        for (name, def) in doc["securityDefinitions"].as_object().into_iter().flatten() {
            defs.message(1, |named| {
                named.string(1, name);
                // SecurityDefinitionsItem.api_key_security
                named.message(2, |item| {
                    item.message(2, |key| {
                        key.string(1, def["type"].as_str().unwrap_or_default());
                        key.string(2, def["name"].as_str().unwrap_or_default());
                        key.string(3, def["in"].as_str().unwrap_or_default());
                        key.string(4, def["description"].as_str().unwrap_or_default());
                    });
                });
            });
        }
    });
    w.0
}

fn path_item(w: &mut Writer, item: &Value) {
    for (method, field) in [("get", 2), ("put", 3), ("post", 4), ("delete", 5), ("patch", 8)] {
        if let Some(op) = item.get(method) {
            w.message(field, |o| operation(o, op));
        }
    }
    for param in item["parameters"].as_array().into_iter().flatten() {
        w.message(9, |p| parameter(p, param));
    }
}

fn operation(w: &mut Writer, op: &Value) {
    w.strings(1, &op["tags"]);
    w.string(3, op["description"].as_str().unwrap_or_default());
    w.string(5, op["operationId"].as_str().unwrap_or_default());
    w.strings(6, &op["produces"]);
    w.strings(7, &op["consumes"]);
    for param in op["parameters"].as_array().into_iter().flatten() {
        w.message(8, |p| parameter(p, param));
    }
    w.message(9, |responses| {
        for (code, response) in op["responses"].as_object().into_iter().flatten() {
            responses.message(1, |named| {
                named.string(1, code);
                // ResponseValue.response
                named.message(2, |value| {
                    value.message(1, |r| {
                        r.string(1, response["description"].as_str().unwrap_or_default());
                        if let Some(s) = response.get("schema") {
                            // SchemaItem.schema
                            r.message(2, |item| item.message(1, |sw| schema(sw, s)));
                        }
                    });
                });
            });
        }
    });
    w.strings(10, &op["schemes"]);
    extensions(w, 13, op.as_object());
}

/// A ParametersItem: `parameter` (body or non-body) — everything we serve is inline.
fn parameter(w: &mut Writer, p: &Value) {
    w.message(1, |param| {
        if p["in"] == "body" {
            param.message(1, |body| {
                body.string(1, p["description"].as_str().unwrap_or_default());
                body.string(2, p["name"].as_str().unwrap_or_default());
                body.string(3, "body");
                body.bool(4, p["required"] == true);
                if let Some(s) = p.get("schema") {
                    body.message(5, |sw| schema(sw, s));
                }
            });
            return;
        }
        param.message(2, |non_body| {
            let path = p["in"] == "path";
            // NonBodyParameter: query_parameter_sub_schema = 3, path_parameter_sub_schema = 4.
            non_body.message(if path { 4 } else { 3 }, |sub| {
                sub.bool(1, p["required"] == true);
                sub.string(2, p["in"].as_str().unwrap_or_default());
                sub.string(3, p["description"].as_str().unwrap_or_default());
                sub.string(4, p["name"].as_str().unwrap_or_default());
                if path {
                    sub.string(5, p["type"].as_str().unwrap_or_default());
                    sub.bool(19, p["uniqueItems"] == true);
                } else {
                    sub.string(6, p["type"].as_str().unwrap_or_default());
                    sub.bool(20, p["uniqueItems"] == true);
                }
            });
        });
    });
}

fn schema(w: &mut Writer, s: &Value) {
    let Some(map) = s.as_object() else {
        return;
    };
    w.string(1, map.get("$ref").and_then(Value::as_str).unwrap_or_default());
    w.string(2, map.get("format").and_then(Value::as_str).unwrap_or_default());
    w.string(3, map.get("title").and_then(Value::as_str).unwrap_or_default());
    w.string(
        4,
        map.get("description").and_then(Value::as_str).unwrap_or_default(),
    );
    w.double(7, map.get("maximum").and_then(Value::as_f64));
    w.double(9, map.get("minimum").and_then(Value::as_f64));
    w.int64(11, map.get("maxLength").and_then(Value::as_i64));
    w.int64(12, map.get("minLength").and_then(Value::as_i64));
    w.string(13, map.get("pattern").and_then(Value::as_str).unwrap_or_default());
    w.int64(14, map.get("maxItems").and_then(Value::as_i64));
    w.int64(15, map.get("minItems").and_then(Value::as_i64));
    w.bool(16, map.get("uniqueItems") == Some(&Value::Bool(true)));
    if let Some(required) = map.get("required") {
        w.strings(19, required);
    }
    for value in map.get("enum").and_then(Value::as_array).into_iter().flatten() {
        w.message(20, |any| any.string(2, &value.to_string()));
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(b)) => w.message(21, |item| {
            item.key(2, 0);
            item.varint(u64::from(*b));
        }),
        Some(additional) => w.message(21, |item| item.message(1, |sw| schema(sw, additional))),
        None => {}
    }
    if let Some(t) = map.get("type") {
        w.message(22, |types| match t {
            Value::Array(_) => types.strings(1, t),
            other => types.string(1, other.as_str().unwrap_or_default()),
        });
    }
    if let Some(items) = map.get("items") {
        w.message(23, |item| item.message(1, |sw| schema(sw, items)));
    }
    for part in map.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        w.message(24, |sw| schema(sw, part));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        w.message(25, |properties| {
            for (name, prop) in props {
                properties.message(1, |named| {
                    named.string(1, name);
                    named.message(2, |sw| schema(sw, prop));
                });
            }
        });
    }
    extensions(w, 31, Some(map));
}

/// `x-…` keys as NamedAny { name, value: Any { yaml } }.
fn extensions(w: &mut Writer, field: u32, map: Option<&Map<String, Value>>) {
    for (key, value) in map.into_iter().flatten().filter(|(k, _)| k.starts_with("x-")) {
        w.message(field, |named| {
            named.string(1, key);
            named.message(2, |any| any.string(2, &value.to_string()));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_gnostic_field_numbers() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1"},
            "paths": {},
            "definitions": {"a.B": {"type": "object", "x-kubernetes-group-version-kind": [{"group": "", "kind": "B", "version": "v1"}]}},
        });
        let bytes = encode(&doc);
        // Document.swagger (1) = "2.0"
        assert_eq!(&bytes[..5], &[0x0a, 3, b'2', b'.', b'0']);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains(r#"[{"group":"","kind":"B","version":"v1"}]"#));
    }
}
