//! Unknown fields in request objects of built-in kinds, handled as the `fieldValidation`
//! parameter asks: `Strict` rejects them (400, "strict decoding error: unknown field …"),
//! `Warn` (the default) and `Ignore` drop them — as upstream's decoder does, which never
//! stores a field its types lack — with a warning for `Warn`. The fields of each kind come from
//! the protobuf schema table.

use apimachinery::protobuf::schema::{self, Kind};
use apimachinery::resources::ResourceDef;
use apimachinery::status::ApiError;
use serde_json::{Map, Value};

use crate::query::Query;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ignore,
    Warn,
    Strict,
}

impl Mode {
    pub fn from_query(query: &Query) -> Result<Mode, ApiError> {
        match query.get("fieldValidation").unwrap_or("") {
            "" | "Warn" => Ok(Mode::Warn),
            "Ignore" => Ok(Mode::Ignore),
            "Strict" => Ok(Mode::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, not {other:?}"
            ))),
        }
    }
}

/// Drops the fields of `obj` its kind does not have. Returns the warnings to send (`Warn`), or
/// the error to answer (`Strict`).
pub fn check(def: &ResourceDef, mode: Mode, obj: &mut Value) -> Result<Vec<String>, ApiError> {
    let Some(message) = schema::for_kind(&def.api_version(), def.kind) else {
        return Ok(Vec::new()); // not a built-in kind: custom resources prune by their schema
    };
    let mut unknown = Vec::new();
    if let Value::Object(map) = obj {
        // apiVersion and kind are Go's embedded TypeMeta, not message fields.
        let type_meta = ["apiVersion", "kind"];
        prune(message, map, "", &type_meta, &mut unknown);
    }
    outcome(def, mode, &unknown)
}

/// What `mode` makes of the unknown fields found (paths such as `spec.foo`): upstream's strict
/// decoding error, the warnings to send, or nothing. Built-in and custom kinds share it.
pub fn outcome(def: &ResourceDef, mode: Mode, unknown: &[String]) -> Result<Vec<String>, ApiError> {
    let described: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    match mode {
        Mode::Strict if !described.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            described.join(", "),
            kind = def.kind,
            version = def.version,
        ))),
        Mode::Warn => Ok(described),
        _ => Ok(Vec::new()),
    }
}

/// Removes the keys of `obj` that `message` lacks, recording their paths in `unknown`.
fn prune(message: &str, obj: &mut Map<String, Value>, path: &str, extra: &[&str], unknown: &mut Vec<String>) {
    let Some(fields) = schema::fields(message) else {
        return; // a special type (Time, Quantity, RawExtension, …): any JSON form is its own
    };
    if message.contains(".JsonSchemaPropsOr") {
        return; // CRD schema unions (a schema, a list or a bool in JSON): not their proto fields
    }
    let mut known: Vec<&schema::Field> = Vec::new();
    flatten(fields, &mut known);
    obj.retain(|key, value| {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let Some(field) = known.iter().find(|f| f.json == key) else {
            if extra.contains(&key.as_str()) {
                return true;
            }
            unknown.push(child);
            return false;
        };
        match (field.kind, value) {
            (Kind::Message(m), Value::Array(items)) if field.repeated => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Value::Object(item) = item {
                        prune(m, item, &format!("{child}[{i}]"), &[], unknown);
                    }
                }
            }
            (Kind::Message(m), Value::Object(inner)) => prune(m, inner, &child, &[], unknown),
            (Kind::MessageMap(m), Value::Object(entries)) => {
                for (k, entry) in entries.iter_mut() {
                    if let Value::Object(entry) = entry {
                        prune(m, entry, &format!("{child}.{k}"), &[], unknown);
                    }
                }
            }
            _ => {}
        }
        true
    });
}

/// The fields of a message with those of its embedded (inline) structs.
fn flatten(fields: &'static [schema::Field], out: &mut Vec<&'static schema::Field>) {
    for field in fields {
        match field.kind {
            Kind::Inline(m) => {
                if let Some(inner) = schema::fields(m) {
                    flatten(inner, out);
                }
            }
            _ => out.push(field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployments() -> &'static ResourceDef {
        apimachinery::resources::find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn unknown_fields_are_named_by_path_and_dropped() {
        let mut obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"a": "b"}, "bogus": 1},
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80, "what": 1}]},
                {"name": "d", "image": "i", "livenessProbe": {"httpGet": {"port": 8080}, "nope": true}},
            ]}}},
        });
        let warnings = check(deployments(), Mode::Warn, &mut obj).unwrap();
        assert_eq!(
            warnings,
            [
                "unknown field \"metadata.bogus\"",
                "unknown field \"spec.template.spec.containers[0].ports[0].what\"",
                "unknown field \"spec.template.spec.containers[1].livenessProbe.nope\"",
            ]
        );
        assert_eq!(obj["metadata"], json!({"name": "x", "labels": {"a": "b"}}));
        // Inline fields (the probe's handler) and special types (IntOrString) stay.
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][1]["livenessProbe"],
            json!({"httpGet": {"port": 8080}})
        );
    }

    #[test]
    fn strict_rejects_as_upstream_and_ignore_is_silent() {
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"foo": 1}});
        let err = check(deployments(), Mode::Strict, &mut obj.clone()).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.foo\""
        );
        assert!(check(deployments(), Mode::Ignore, &mut obj).unwrap().is_empty());
        assert_eq!(obj["spec"], json!({}));
    }
}
