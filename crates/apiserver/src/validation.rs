//! Validation shared by every kind (object names as upstream's `ValidateObjectMeta`), and which
//! kinds track `metadata.generation`. Kind-specific validation grows here, one function per kind.

use apimachinery::resources::ResourceDef;
use apimachinery::status::{ApiError, Cause};
use serde_json::Value;

use crate::objects;

/// Kinds whose `metadata.generation` counts spec changes (upstream's strategies that set it).
pub fn has_generation(def: &ResourceDef) -> bool {
    matches!(
        def.plural,
        "deployments"
            | "replicasets"
            | "statefulsets"
            | "daemonsets"
            | "replicationcontrollers"
            | "jobs"
            | "cronjobs"
            | "horizontalpodautoscalers"
            | "poddisruptionbudgets"
            | "networkpolicies"
            | "ingresses"
            | "customresourcedefinitions"
            | "pods"
            | "services"
    )
}

/// Validates an object about to be stored (`old` is the current object on update).
pub fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = objects::name(obj).unwrap_or_default();
    let mut causes = Vec::new();
    if old.is_none() {
        let rule = name_rule(def);
        if let Some(detail) = rule(name) {
            causes.push(Cause::invalid(
                "metadata.name",
                &Value::String(name.to_owned()),
                &detail,
            ));
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = objects::metadata(obj).and_then(|m| m.get(field))
            && !map.is_object()
            && !map.is_null()
        {
            causes.push(Cause::invalid(
                &format!("metadata.{field}"),
                map,
                "must be a map of strings",
            ));
        }
    }
    if crate::crd::is_definition(def) {
        causes.extend(crate::crd::definition::validate(obj, old));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(def.group, def.kind, name, causes))
    }
}

type NameRule = fn(&str) -> Option<String>;

/// Upstream's name rule per kind: DNS labels for namespaces, RFC 1035 labels for services,
/// DNS subdomains for the rest.
fn name_rule(def: &ResourceDef) -> NameRule {
    match def.plural {
        "namespaces" => dns1123_label,
        "services" => dns1035_label,
        _ => dns1123_subdomain,
    }
}

const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn dns1123_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s)).then(|| LABEL_MSG.to_owned())
}

fn dns1035_label(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    (!is_label(s) || !s.as_bytes()[0].is_ascii_lowercase()).then(|| DNS1035_MSG.to_owned())
}

fn dns1123_subdomain(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    (!s.split('.').all(is_label)).then(|| SUBDOMAIN_MSG.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;
    use serde_json::json;

    #[test]
    fn names_follow_the_kind_rule() {
        let cm = find("", "v1", "configmaps").unwrap();
        assert!(validate(cm, &json!({"metadata": {"name": "a.b-c"}}), None).is_ok());
        let err = validate(cm, &json!({"metadata": {"name": "Bad_Name"}}), None).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", err.message);
        let ns = find("", "v1", "namespaces").unwrap();
        assert!(validate(ns, &json!({"metadata": {"name": "a.b"}}), None).is_err());
        let svc = find("", "v1", "services").unwrap();
        assert!(validate(svc, &json!({"metadata": {"name": "1abc"}}), None).is_err());
        assert!(validate(svc, &json!({"metadata": {"name": "abc-1"}}), None).is_ok());
    }
}
