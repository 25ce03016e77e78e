//! The protobuf schema of the messages decoded so far: field numbers, JSON names and types, as in
//! upstream's generated.proto files (read from the k8s-pb crate's prost definitions). Messages
//! are named `<package>.<Message>`, packages shortened (`meta.v1`, `core.v1`, …).
//!
//! This table is written by hand for some of the kinds kubectl's generators create; a generated
//! table for every built-in kind replaces it later.

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Bool,
    Int32,
    Int64,
    Message(&'static str),
    StringMap,
    /// A map of raw bytes: base64 strings in JSON.
    BytesMap,
    MessageMap(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

const fn one(tag: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        json,
        kind,
        repeated: false,
    }
}

const fn many(tag: u32, json: &'static str, kind: Kind) -> Field {
    Field {
        tag,
        json,
        kind,
        repeated: true,
    }
}

use Kind::*;

static MESSAGES: &[(&str, &[Field])] = &[
    (
        "meta.v1.ObjectMeta",
        &[
            one(1, "name", String),
            one(2, "generateName", String),
            one(3, "namespace", String),
            one(4, "selfLink", String),
            one(5, "uid", String),
            one(6, "resourceVersion", String),
            one(7, "generation", Int64),
            one(8, "creationTimestamp", Message("meta.v1.Time")),
            one(9, "deletionTimestamp", Message("meta.v1.Time")),
            one(10, "deletionGracePeriodSeconds", Int64),
            one(11, "labels", StringMap),
            one(12, "annotations", StringMap),
            many(13, "ownerReferences", Message("meta.v1.OwnerReference")),
            many(14, "finalizers", String),
            many(17, "managedFields", Message("meta.v1.ManagedFieldsEntry")),
        ],
    ),
    (
        "meta.v1.OwnerReference",
        &[
            one(1, "kind", String),
            one(3, "name", String),
            one(4, "uid", String),
            one(5, "apiVersion", String),
            one(6, "controller", Bool),
            one(7, "blockOwnerDeletion", Bool),
        ],
    ),
    (
        "meta.v1.ManagedFieldsEntry",
        &[
            one(1, "manager", String),
            one(2, "operation", String),
            one(3, "apiVersion", String),
            one(4, "time", Message("meta.v1.Time")),
            one(6, "fieldsType", String),
            one(7, "fieldsV1", Message("meta.v1.FieldsV1")),
            one(8, "subresource", String),
        ],
    ),
    (
        "core.v1.Namespace",
        &[
            one(1, "metadata", Message("meta.v1.ObjectMeta")),
            one(2, "spec", Message("core.v1.NamespaceSpec")),
            one(3, "status", Message("core.v1.NamespaceStatus")),
        ],
    ),
    ("core.v1.NamespaceSpec", &[many(1, "finalizers", String)]),
    (
        "core.v1.NamespaceStatus",
        &[
            one(1, "phase", String),
            many(2, "conditions", Message("core.v1.NamespaceCondition")),
        ],
    ),
    (
        "core.v1.NamespaceCondition",
        &[
            one(1, "type", String),
            one(2, "status", String),
            one(4, "lastTransitionTime", Message("meta.v1.Time")),
            one(5, "reason", String),
            one(6, "message", String),
        ],
    ),
    (
        "core.v1.ConfigMap",
        &[
            one(1, "metadata", Message("meta.v1.ObjectMeta")),
            one(2, "data", StringMap),
            one(3, "binaryData", BytesMap),
            one(4, "immutable", Bool),
        ],
    ),
    (
        "core.v1.Secret",
        &[
            one(1, "metadata", Message("meta.v1.ObjectMeta")),
            one(2, "data", BytesMap),
            one(3, "type", String),
            one(4, "stringData", StringMap),
            one(5, "immutable", Bool),
        ],
    ),
    (
        "core.v1.ResourceQuota",
        &[
            one(1, "metadata", Message("meta.v1.ObjectMeta")),
            one(2, "spec", Message("core.v1.ResourceQuotaSpec")),
            one(3, "status", Message("core.v1.ResourceQuotaStatus")),
        ],
    ),
    (
        "core.v1.ResourceQuotaSpec",
        &[
            one(1, "hard", MessageMap("resource.Quantity")),
            many(2, "scopes", String),
            one(3, "scopeSelector", Message("core.v1.ScopeSelector")),
        ],
    ),
    (
        "core.v1.ResourceQuotaStatus",
        &[
            one(1, "hard", MessageMap("resource.Quantity")),
            one(2, "used", MessageMap("resource.Quantity")),
        ],
    ),
    (
        "core.v1.ScopeSelector",
        &[many(
            1,
            "matchExpressions",
            Message("core.v1.ScopedResourceSelectorRequirement"),
        )],
    ),
    (
        "core.v1.ScopedResourceSelectorRequirement",
        &[
            one(1, "scopeName", String),
            one(2, "operator", String),
            many(3, "values", String),
        ],
    ),
    (
        "scheduling.v1.PriorityClass",
        &[
            one(1, "metadata", Message("meta.v1.ObjectMeta")),
            one(2, "value", Int32),
            one(3, "globalDefault", Bool),
            one(4, "description", String),
            one(5, "preemptionPolicy", String),
        ],
    ),
];

/// The fields of a message, by name.
pub fn fields(name: &str) -> Option<&'static [Field]> {
    MESSAGES.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The message of a top-level kind, if this table covers it.
pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static str> {
    let name = match (api_version, kind) {
        ("v1", "Namespace") => "core.v1.Namespace",
        ("v1", "ConfigMap") => "core.v1.ConfigMap",
        ("v1", "Secret") => "core.v1.Secret",
        ("v1", "ResourceQuota") => "core.v1.ResourceQuota",
        ("scheduling.k8s.io/v1", "PriorityClass") => "scheduling.v1.PriorityClass",
        _ => return None,
    };
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_message_has_a_schema() {
        let special = [
            "meta.v1.Time",
            "meta.v1.MicroTime",
            "meta.v1.FieldsV1",
            "runtime.RawExtension",
            "intstr.IntOrString",
            "resource.Quantity",
        ];
        for (name, fields) in MESSAGES {
            for field in *fields {
                if let Kind::Message(m) | Kind::MessageMap(m) = field.kind {
                    assert!(
                        fields_known(m) || special.contains(&m),
                        "{name}.{} refers to unknown {m}",
                        field.json
                    );
                }
            }
            let mut tags: Vec<u32> = fields.iter().map(|f| f.tag).collect();
            tags.sort_unstable();
            assert!(tags.windows(2).all(|w| w[0] != w[1]), "duplicate tag in {name}");
        }
    }

    fn fields_known(name: &str) -> bool {
        super::fields(name).is_some()
    }
}
