//! `ValidateObjectMeta`: the name by the kind's rule, labels and annotations.

use apimachinery::resources::ResourceDef;
use apimachinery::selector::{is_qualified_name, is_valid_label_value};
use serde_json::Value;

use super::Errs;
use crate::objects;

/// Upstream's limit on all annotations of an object together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

pub fn object_meta(def: &ResourceDef, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let name = objects::name(obj).unwrap_or_default();
    if old.is_none() {
        let rule = name_rule(def);
        for detail in rule(name) {
            errs.invalid("metadata.name", &Value::String(name.to_owned()), &detail);
        }
    }
    let meta = objects::metadata(obj);
    match meta.and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(labels)) => labels_of(labels, "metadata.labels", errs),
        Some(other) => errs.invalid("metadata.labels", other, "must be a map of strings"),
    }
    finalizers(meta.and_then(|m| m.get("finalizers")), errs);
    owner_references(meta.and_then(|m| m.get("ownerReferences")), errs);
    match meta.and_then(|m| m.get("annotations")) {
        None | Some(Value::Null) => {}
        Some(Value::Object(annotations)) => {
            let mut size = 0;
            for (key, value) in annotations {
                for msg in is_qualified_name(&key.to_lowercase()) {
                    errs.invalid("metadata.annotations", &Value::String(key.clone()), &msg);
                }
                size += key.len() + value.as_str().map_or(0, str::len);
            }
            if size > ANNOTATIONS_MAX_BYTES {
                errs.too_long("metadata.annotations", ANNOTATIONS_MAX_BYTES);
            }
        }
        Some(other) => errs.invalid("metadata.annotations", other, "must be a map of strings"),
    }
}

/// Finalizers: qualified names, with a domain unless one of the standard ones.
fn finalizers(list: Option<&Value>, errs: &mut Errs) {
    finalizer_names(list, "metadata.finalizers", errs);
}

/// A namespace's `spec.finalizers` follow the same rule.
pub(super) fn namespace_finalizers(ns: &Value, errs: &mut Errs) {
    finalizer_names(ns["spec"].get("finalizers"), "spec.finalizers", errs);
}

fn finalizer_names(list: Option<&Value>, path: &str, errs: &mut Errs) {
    const STANDARD: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];
    for f in list.and_then(Value::as_array).into_iter().flatten() {
        let name = f.as_str().unwrap_or_default();
        let msgs = is_qualified_name(name);
        for msg in &msgs {
            errs.invalid(path, f, msg);
        }
        if msgs.is_empty() && !STANDARD.contains(&name) && !name.contains('/') {
            errs.invalid(
                path,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            );
        }
    }
}

/// Owner references name their owner fully, and at most one is the controller.
fn owner_references(list: Option<&Value>, errs: &mut Errs) {
    let mut controllers = Vec::new();
    for r in list.and_then(Value::as_array).into_iter().flatten() {
        let api_version = r["apiVersion"].as_str().unwrap_or_default();
        let version = api_version.rsplit('/').next().unwrap_or_default();
        let checks = [
            ("apiVersion", version, "version must not be empty"),
            (
                "kind",
                r["kind"].as_str().unwrap_or_default(),
                "kind must not be empty",
            ),
            (
                "name",
                r["name"].as_str().unwrap_or_default(),
                "name must not be empty",
            ),
            (
                "uid",
                r["uid"].as_str().unwrap_or_default(),
                "uid must not be empty",
            ),
        ];
        for (field, value, detail) in checks {
            if value.is_empty() {
                let shown = if field == "apiVersion" { api_version } else { value };
                errs.invalid(
                    &format!("metadata.ownerReferences.{field}"),
                    &Value::String(shown.to_owned()),
                    detail,
                );
            }
        }
        if r["controller"].as_bool() == Some(true) {
            controllers.push(r["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    if let [first, second, ..] = controllers.as_slice() {
        errs.invalid_repr(
            "metadata.ownerReferences",
            "[]v1.OwnerReference{…}",
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {second}"
            ),
        );
    }
}

/// `ValidateLabels`: qualified-name keys and label values, reported at `path`.
pub fn labels_of(labels: &serde_json::Map<String, Value>, path: &str, errs: &mut Errs) {
    let mut keys: Vec<&String> = labels.keys().collect();
    keys.sort();
    for key in keys {
        for msg in is_qualified_name(key) {
            errs.invalid(path, &Value::String(key.clone()), &msg);
        }
        match &labels[key] {
            Value::String(value) => {
                for msg in is_valid_label_value(value) {
                    errs.invalid(path, &labels[key], &msg);
                }
            }
            other => errs.invalid(path, other, "must be a string"),
        }
    }
}

type NameRule = fn(&str) -> Vec<String>;

/// Upstream's name rule per kind: DNS labels for namespaces, RFC 1035 labels for services,
/// DNS subdomains for the rest.
fn name_rule(def: &ResourceDef) -> NameRule {
    match (def.group, def.plural) {
        ("", "namespaces") => dns1123_label,
        ("", "services") => dns1035_label,
        // RBAC names are path segments: `system:controller:…` is a valid role name.
        ("rbac.authorization.k8s.io", _) => path_segment,
        // APIServices are named `<version>.<group>` (checked with the spec).
        ("apiregistration.k8s.io", "apiservices") => path_segment,
        _ => dns1123_subdomain,
    }
}

/// Upstream's `IsValidPathSegmentName`.
pub fn path_segment(s: &str) -> Vec<String> {
    match s {
        "." => return vec!["may not be '.'".to_owned()],
        ".." => return vec!["may not be '..'".to_owned()],
        _ => {}
    }
    let mut errs = Vec::new();
    for illegal in ["/", "%"] {
        if s.contains(illegal) {
            errs.push(format!("may not contain '{illegal}'"));
        }
    }
    errs
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Upstream's `IsDNS1123Label`.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !is_label(s) {
        errs.push(LABEL_MSG.to_owned());
    }
    errs
}

/// Upstream's `IsDNS1035Label`.
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".into());
    }
    if !is_label(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        errs.push(DNS1035_MSG.to_owned());
    }
    errs
}

pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    apimachinery::selector::is_dns1123_subdomain(s)
}
