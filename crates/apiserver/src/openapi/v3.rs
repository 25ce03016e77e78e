//! OpenAPI v3 documents, one per group-version as kube-apiserver serves them under
//! `/openapi/v3/apis/<group>/<version>`, converted from the v2 paths and definitions: schemas
//! move to `components/schemas`, request bodies and responses gain `content` per media type,
//! and a reference with its own description becomes `allOf: [{$ref}]` (a v3 `$ref` has no
//! siblings).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

const V2_PREFIX: &str = "#/definitions/";
const V3_PREFIX: &str = "#/components/schemas/";

/// The v3 document of the paths starting with `prefix` (`/api/v1/`, `/apis/apps/v1/`).
pub fn document(
    title_version: &str,
    prefix: &str,
    paths: &Map<String, Value>,
    defs: &Map<String, Value>,
) -> Value {
    let mut out_paths = Map::new();
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with(prefix)) {
        out_paths.insert(path.clone(), path_item(item));
    }
    // The schemas the paths reach, directly or through other schemas.
    let mut pending: Vec<String> = Vec::new();
    collect_refs(&Value::Object(out_paths.clone()), &mut pending);
    let mut seen = BTreeSet::new();
    let mut schemas = Map::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            let mut converted = schema(def);
            one_of_types(&name, &mut converted);
            collect_refs(&converted, &mut pending);
            schemas.insert(name, converted);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": title_version},
        "paths": out_paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    })
}

/// kube-openapi gives IntOrString and Quantity their alternatives as `oneOf` in v3 (v2 says
/// `type: string`); kubectl explain then names the type (`targetPort <IntOrString>`).
fn one_of_types(name: &str, schema: &mut Value) {
    let types = match name {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => ["integer", "string"],
        "io.k8s.apimachinery.pkg.api.resource.Quantity" => ["string", "number"],
        _ => return,
    };
    if let Some(map) = schema.as_object_mut() {
        map.remove("type");
        map.insert(
            "oneOf".into(),
            Value::Array(types.iter().map(|t| json!({"type": t})).collect()),
        );
    }
}

/// A v2 schema as v3.
pub fn schema(v2: &Value) -> Value {
    match v2 {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let value = if key == "$ref" {
                    Value::String(value.as_str().unwrap_or_default().replace(V2_PREFIX, V3_PREFIX))
                } else {
                    schema(value)
                };
                out.insert(key.clone(), value);
            }
            if out.len() > 1
                && let Some(reference) = out.remove("$ref")
            {
                out.insert("allOf".into(), json!([{"$ref": reference}]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(schema).collect()),
        other => other.clone(),
    }
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = if key == "parameters" {
            Value::Array(value.as_array().into_iter().flatten().map(parameter).collect())
        } else {
            operation(value)
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn parameter(v2: &Value) -> Value {
    let mut out = json!({
        "name": v2["name"],
        "in": v2["in"],
        "schema": {"type": v2["type"], "uniqueItems": true},
    });
    for key in ["description", "required"] {
        if let Some(value) = v2.get(key) {
            out[key] = value.clone();
        }
    }
    out
}

fn operation(v2: &Value) -> Value {
    let mut out = Map::new();
    for key in [
        "tags",
        "description",
        "operationId",
        "x-kubernetes-action",
        "x-kubernetes-group-version-kind",
    ] {
        if let Some(value) = v2.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    let media = |key: &str| -> Vec<String> {
        v2[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect()
    };
    let content = |types: &[String], schema_v2: &Value| -> Value {
        let schema = schema(schema_v2);
        Value::Object(
            types
                .iter()
                .map(|t| (t.clone(), json!({"schema": schema})))
                .collect(),
        )
    };
    let mut parameters = Vec::new();
    for param in v2["parameters"].as_array().into_iter().flatten() {
        if param["in"] == "body" {
            let mut body = json!({"content": content(&media("consumes"), &param["schema"])});
            if param["required"] == true {
                body["required"] = true.into();
            }
            out.insert("requestBody".into(), body);
        } else {
            parameters.push(parameter(param));
        }
    }
    if !parameters.is_empty() {
        out.insert("parameters".into(), Value::Array(parameters));
    }
    let produces = media("produces");
    let mut responses = Map::new();
    for (code, response) in v2["responses"].as_object().into_iter().flatten() {
        let mut converted = json!({"description": response["description"]});
        if let Some(schema) = response.get("schema") {
            converted["content"] = content(&produces, schema);
        }
        responses.insert(code.clone(), converted);
    }
    out.insert("responses".into(), Value::Object(responses));
    Value::Object(out)
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(V3_PREFIX) {
                            out.push(name.to_owned());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_references_become_all_of() {
        let v2 = json!({"description": "meta", "$ref": "#/definitions/a.B"});
        assert_eq!(
            schema(&v2),
            json!({"description": "meta", "allOf": [{"$ref": "#/components/schemas/a.B"}]})
        );
        let bare = json!({"$ref": "#/definitions/a.B"});
        assert_eq!(schema(&bare), json!({"$ref": "#/components/schemas/a.B"}));
    }

    #[test]
    fn int_or_string_and_quantity_are_one_of_two_types() {
        let mut int_or_string = json!({"type": "string", "format": "int-or-string"});
        one_of_types(
            "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
            &mut int_or_string,
        );
        assert_eq!(
            int_or_string,
            json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]})
        );
        let mut quantity = json!({"type": "string"});
        one_of_types("io.k8s.apimachinery.pkg.api.resource.Quantity", &mut quantity);
        assert_eq!(
            quantity,
            json!({"oneOf": [{"type": "string"}, {"type": "number"}]})
        );
        let mut other = json!({"type": "string"});
        one_of_types("io.k8s.apimachinery.pkg.apis.meta.v1.Time", &mut other);
        assert_eq!(other, json!({"type": "string"}));
    }
}
