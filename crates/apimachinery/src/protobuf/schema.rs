//! The protobuf schema of the Kubernetes API: for each message, its fields' numbers, JSON names
//! and types. Messages are named `<package>.<Message>` with short packages (`meta.v1`,
//! `core.v1`, `apps.v1`, `resource` for Quantity, …). The table itself is generated (see
//! `scripts/gen-protobuf-schema`) from the prost definitions of the k8s-pb crate and the JSON
//! names of the k8s-openapi crate.

use super::schema_generated::{ATOMIC_STRUCTS, KINDS, MESSAGES, OMIT_ZERO, PATCH_META};

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    /// Raw bytes: a base64 string in JSON.
    Bytes,
    Bool,
    Int32,
    Int64,
    Double,
    Message(&'static str),
    /// A Go struct embedded in its parent: its fields appear in the parent's JSON object.
    Inline(&'static str),
    StringMap,
    /// A map of raw bytes: base64 strings in JSON.
    BytesMap,
    MessageMap(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub tag: u32,
    /// Empty for [`Kind::Inline`].
    pub json: &'static str,
    pub kind: Kind,
    pub repeated: bool,
}

/// How a field merges, from upstream's markers (`+patchStrategy=merge`, `+patchMergeKey=name`,
/// `+listType=map`, `+listMapKey=…`, `+mapType=…`); empty strings where a marker is absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchMeta {
    /// `merge`, `replace`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
    pub merge_key: &'static str,
    /// `atomic`, `set` or `map`.
    pub list_type: &'static str,
    pub map_keys: &'static [&'static str],
    /// `atomic` or `granular`.
    pub map_type: &'static str,
}

/// The patch metadata of a message's field (by JSON name), if it carries any marker.
pub fn patch_meta(message: &str, json: &str) -> Option<&'static PatchMeta> {
    PATCH_META
        .binary_search_by(|(m, f, _)| (*m, *f).cmp(&(message, json)))
        .ok()
        .map(|i| &PATCH_META[i].2)
}

/// Whether upstream marks the message `+structType=atomic` (owned and replaced as a whole).
pub fn is_atomic_struct(name: &str) -> bool {
    ATOMIC_STRUCTS.binary_search(&name).is_ok()
}

/// The field numbers of a message that Go omits from JSON at their zero value (non-pointer
/// scalars tagged `omitempty`): gogo protobuf writes them regardless, so a decoded zero there
/// means "unset".
pub fn omit_zero(message: &str) -> &'static [u32] {
    OMIT_ZERO
        .binary_search_by(|(m, _)| (*m).cmp(message))
        .map_or(&[], |i| OMIT_ZERO[i].1)
}

/// The names of all messages.
pub fn message_names() -> impl Iterator<Item = &'static str> {
    MESSAGES.iter().map(|(name, _)| *name)
}

/// The fields of a message, by name.
pub fn fields(name: &str) -> Option<&'static [Field]> {
    MESSAGES
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| MESSAGES[i].1)
}

/// Kinds posted to subresources, which the generated table (resources only) lacks.
const SUBRESOURCE_KINDS: &[(&str, &str, &str)] = &[(
    "authentication.k8s.io/v1",
    "TokenRequest",
    "authentication.v1.TokenRequest",
)];

/// The message of a top-level kind.
pub fn for_kind(api_version: &str, kind: &str) -> Option<&'static str> {
    // Upstream registers the options kinds in every group version (metav1.AddToGroupVersion): a
    // typed client encodes its DeleteOptions with its own group's apiVersion.
    if kind == "DeleteOptions" {
        return Some("meta.v1.DeleteOptions");
    }
    KINDS
        .iter()
        .chain(SUBRESOURCE_KINDS)
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECIAL: [&str; 9] = [
        "authentication.v1.ExtraValue",
        "authorization.v1.ExtraValue",
        "apiextensions.v1.Json",
        "meta.v1.Time",
        "meta.v1.MicroTime",
        "meta.v1.FieldsV1",
        "runtime.RawExtension",
        "intstr.IntOrString",
        "resource.Quantity",
    ];

    #[test]
    fn every_referenced_message_has_a_schema() {
        assert!(
            MESSAGES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted, for binary search"
        );
        for (name, fields) in MESSAGES {
            for field in *fields {
                if let Kind::Message(m) | Kind::MessageMap(m) | Kind::Inline(m) = field.kind {
                    assert!(
                        super::fields(m).is_some() || SPECIAL.contains(&m),
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

    #[test]
    fn every_stored_builtin_kind_has_a_message() {
        for def in crate::resources::BUILTIN {
            let message = for_kind(&def.api_version(), def.kind);
            assert!(
                message.is_some_and(|m| fields(m).is_some()),
                "{}/{}",
                def.api_version(),
                def.kind
            );
        }
    }

    #[test]
    fn json_names_come_from_the_api() {
        let status = fields("core.v1.PodStatus").unwrap();
        let names: Vec<&str> = status.iter().map(|f| f.json).collect();
        for name in ["podIP", "podIPs", "hostIP", "hostIPs", "qosClass", "startTime"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let probe = fields("core.v1.Probe").unwrap();
        assert!(
            probe
                .iter()
                .any(|f| f.kind == Kind::Inline("core.v1.ProbeHandler"))
        );
    }

    #[test]
    fn patch_meta_matches_upstream_struct_tags() {
        let meta = |m, f| patch_meta(m, f).map(|p| (p.strategy, p.merge_key));
        assert!(
            PATCH_META.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
            "sorted, for binary search"
        );
        for (message, field, strategy, key) in [
            ("core.v1.PodSpec", "containers", "merge", "name"),
            ("core.v1.PodSpec", "volumes", "merge,retainKeys", "name"),
            ("core.v1.Container", "ports", "merge", "containerPort"),
            ("core.v1.Container", "env", "merge", "name"),
            ("meta.v1.ObjectMeta", "finalizers", "merge", ""),
            ("meta.v1.ObjectMeta", "ownerReferences", "merge", "uid"),
            ("core.v1.ServiceSpec", "ports", "merge", "port"),
            ("apps.v1.DeploymentSpec", "strategy", "retainKeys", ""),
            ("policy.v1.PodDisruptionBudgetSpec", "selector", "replace", ""),
        ] {
            assert_eq!(meta(message, field), Some((strategy, key)), "{message}.{field}");
        }
        let ports = patch_meta("core.v1.ServiceSpec", "ports").unwrap();
        assert_eq!(
            (ports.list_type, ports.map_keys),
            ("map", &["port", "protocol"][..])
        );
        assert_eq!(
            patch_meta("core.v1.PodSpec", "nodeSelector").unwrap().map_type,
            "atomic"
        );
        assert_eq!(meta("core.v1.PodSpec", "tolerations"), Some(("", "")));
        assert_eq!(patch_meta("core.v1.Container", "image"), None);
    }
}
