//! Whether a webhook applies to a write: its rules (operations, groups, versions,
//! `resource/subresource` with wildcards, scope), namespaceSelector and objectSelector.

use apimachinery::selector::LabelSelector;
use serde_json::Value;

use super::Attributes;

/// The checks that need nothing but the write: rules and objectSelector.
pub fn matches_write(hook: &Value, attrs: &Attributes<'_>, obj: &Value) -> bool {
    let rules = hook["rules"].as_array().map(Vec::as_slice).unwrap_or_default();
    rules.iter().any(|rule| rule_matches(rule, attrs)) && object_matches(hook, attrs, obj)
}

/// Whether the namespaceSelector applies: the write is namespaced (or a namespace) and the
/// selector selects something less than everything.
pub fn needs_namespace_labels(hook: &Value, attrs: &Attributes<'_>) -> bool {
    let is_namespace = attrs.def.group.is_empty() && attrs.def.plural == "namespaces";
    let selector = &hook["namespaceSelector"];
    (attrs.namespace.is_some() || is_namespace)
        && !selector.is_null()
        && selector.as_object().is_none_or(|s| !s.is_empty())
}

fn has(list: &Value, value: &str) -> bool {
    list.as_array()
        .into_iter()
        .flatten()
        .any(|v| v == "*" || v.as_str() == Some(value))
}

fn rule_matches(rule: &Value, attrs: &Attributes<'_>) -> bool {
    let def = attrs.def;
    let resource_ok = rule["resources"].as_array().into_iter().flatten().any(|r| {
        let r = r.as_str().unwrap_or_default();
        let (res, sub) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == def.plural) && (sub == "*" || sub == attrs.subresource.unwrap_or(""))
    });
    let scope_ok = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => !def.namespaced,
        "Namespaced" => def.namespaced,
        _ => true,
    };
    has(&rule["operations"], attrs.operation)
        && has(&rule["apiGroups"], def.group)
        && has(&rule["apiVersions"], def.version)
        && resource_ok
        && scope_ok
}

fn selector_matches(selector: &Value, labels: Option<&Value>) -> bool {
    match LabelSelector::from_json(selector) {
        Ok(sel) => sel.matches_json(labels),
        Err(_) => false,
    }
}

/// The namespaceSelector against the labels of the write's namespace (see
/// [`needs_namespace_labels`] for when it applies).
pub fn namespace_matches(hook: &Value, namespace_labels: &Value) -> bool {
    selector_matches(&hook["namespaceSelector"], Some(namespace_labels))
}

/// Either the new or the old object's labels match.
fn object_matches(hook: &Value, attrs: &Attributes<'_>, obj: &Value) -> bool {
    let selector = &hook["objectSelector"];
    if selector.is_null() {
        return true;
    }
    [Some(obj), attrs.old]
        .into_iter()
        .flatten()
        .any(|o| selector_matches(selector, Some(&o["metadata"]["labels"])))
}
