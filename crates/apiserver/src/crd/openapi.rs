//! What the OpenAPI documents publish of custom resources (upstream's CRD OpenAPI builder, the
//! essentials): one definition per served version, named by the reversed group
//! (`com.example.v1.Widget`), the version's schema with `apiVersion`, `kind` and `metadata`
//! (ObjectMeta) filled in, so that `kubectl explain` and kubectl's validation see them.

use serde_json::json;

use super::Catalog;
use crate::openapi::CustomSchema;
use crate::openapi::definitions::{API_VERSION_DOC, KIND_DOC};

const OBJECT_META: &str = "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// Upstream's definition name: the group's labels reversed, the version, the kind.
pub fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The schemas of every served custom resource version.
pub fn schemas(catalog: &Catalog) -> Vec<CustomSchema> {
    catalog
        .custom
        .iter()
        .map(|c| {
            let mut schema = c
                .raw_schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            if !schema["properties"].is_object() {
                schema["properties"] = json!({});
            }
            let props = &mut schema["properties"];
            props["apiVersion"] = json!({"description": API_VERSION_DOC, "type": "string"});
            props["kind"] = json!({"description": KIND_DOC, "type": "string"});
            props["metadata"] = json!({"description": METADATA_DOC, "$ref": OBJECT_META});
            schema["type"] = "object".into();
            CustomSchema {
                def: c.def,
                name: definition_name(c.def.group, c.def.version, c.def.kind),
                schema,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reverse_the_group() {
        assert_eq!(
            definition_name("example.com", "v1", "Widget"),
            "com.example.v1.Widget"
        );
        assert_eq!(
            definition_name("stable.example.com", "v1beta1", "CronTab"),
            "com.example.stable.v1beta1.CronTab"
        );
    }
}
