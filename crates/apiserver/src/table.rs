//! Server-side printing: `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` turns a get or
//! list into a `meta.k8s.io/v1` Table. Every kind gets upstream's default columns (Name,
//! Created At) for now; the per-kind columns of upstream's printers come with a later change.

use apimachinery::resources::ResourceDef;
use serde_json::{Value, json};

use crate::query::Query;

/// Whether the client asked for a Table (kubectl get does, with JSON as fallback).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.iter().any(|p| p.starts_with("v=v1"))
    })
}

/// A Table of one object or of a list's items.
pub fn to_table(def: &ResourceDef, obj: &Value, query: &Query) -> Value {
    let (items, metadata) = match obj.get("items").and_then(Value::as_array) {
        Some(items) => (items.clone(), obj["metadata"].clone()),
        None => (
            vec![obj.clone()],
            json!({"resourceVersion": obj["metadata"]["resourceVersion"].clone()}),
        ),
    };
    let include = query.get("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let cells = json!([item["metadata"]["name"].clone(), item["metadata"]["creationTimestamp"].clone()]);
            let object = match include {
                "None" => Value::Null,
                "Object" => {
                    let mut full = item.clone();
                    full["kind"] = def.kind.into();
                    full["apiVersion"] = def.api_version().into();
                    full
                }
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"].clone()}),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "priority": 0}
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_kubectl_accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn lists_become_rows() {
        let def = apimachinery::resources::find("", "v1", "configmaps").unwrap();
        let list = json!({"metadata": {"resourceVersion": "5"}, "items": [{"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z"}}]});
        let table = to_table(def, &list, &Query::default());
        assert_eq!(table["rows"][0]["cells"], json!(["a", "2026-01-01T00:00:00Z"]));
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(table["metadata"]["resourceVersion"], "5");
    }
}
