//! The smaller kinds: RBAC roles and bindings, PersistentVolumeClaims, HorizontalPodAutoscalers,
//! PriorityClasses and StorageClasses.

use serde_json::Value;

use super::Errs;
use super::gorepr::quote;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Roles and ClusterRoles: each rule has verbs, and either resources (with groups) or
/// non-resource URLs (cluster roles only).
pub fn role(obj: &Value, namespaced: bool, errs: &mut Errs) {
    for (i, rule) in obj["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("rules[{i}]");
        let len = |key: &str| rule[key].as_array().map_or(0, Vec::len);
        if len("verbs") == 0 {
            errs.required_because(&format!("{path}.verbs"), "verbs must contain at least one value");
        }
        if len("nonResourceURLs") > 0 {
            let urls = super::gorepr::string_slice(&rule["nonResourceURLs"]);
            if namespaced {
                errs.invalid_repr(
                    &format!("{path}.nonResourceURLs"),
                    &urls,
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if len("apiGroups") > 0 || len("resources") > 0 || len("resourceNames") > 0 {
                errs.invalid_repr(
                    &format!("{path}.nonResourceURLs"),
                    &urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if len("apiGroups") == 0 {
            errs.required_because(
                &format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if len("resources") == 0 {
            errs.required_because(
                &format!("{path}.resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

fn role_ref_repr(r: &Value) -> String {
    format!(
        "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
        quote(r["apiGroup"].as_str().unwrap_or_default()),
        quote(r["kind"].as_str().unwrap_or_default()),
        quote(r["name"].as_str().unwrap_or_default())
    )
}

/// RoleBindings and ClusterRoleBindings: a role reference that never changes, and subjects.
pub fn role_binding(obj: &Value, old: Option<&Value>, cluster: bool, errs: &mut Errs) {
    let role_ref = &obj["roleRef"];
    if role_ref["apiGroup"] != RBAC_GROUP {
        errs.not_supported(
            "roleRef.apiGroup",
            &value_or_empty(&role_ref["apiGroup"]),
            &[RBAC_GROUP],
        );
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&role_ref["kind"].as_str().unwrap_or_default()) {
        errs.not_supported("roleRef.kind", &value_or_empty(&role_ref["kind"]), kinds);
    }
    if role_ref["name"].as_str().is_none_or(str::is_empty) {
        errs.required("roleRef.name");
    }
    for (i, subject) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
        let path = format!("subjects[{i}]");
        if subject["name"].as_str().is_none_or(str::is_empty) {
            errs.required(&format!("{path}.name"));
        }
        match subject["kind"].as_str().unwrap_or_default() {
            "ServiceAccount" => {
                if subject["apiGroup"].as_str().is_some_and(|g| !g.is_empty()) {
                    errs.not_supported(&format!("{path}.apiGroup"), &subject["apiGroup"], &[""]);
                }
                if cluster && subject["namespace"].as_str().is_none_or(str::is_empty) {
                    errs.required(&format!("{path}.namespace"));
                }
            }
            "User" | "Group" => {
                if subject["apiGroup"] != RBAC_GROUP {
                    errs.not_supported(
                        &format!("{path}.apiGroup"),
                        &value_or_empty(&subject["apiGroup"]),
                        &[RBAC_GROUP],
                    );
                }
            }
            _ => errs.not_supported(
                &format!("{path}.kind"),
                &value_or_empty(&subject["kind"]),
                &["ServiceAccount", "User", "Group"],
            ),
        }
    }
    if let Some(old) = old
        && old["roleRef"] != *role_ref
    {
        errs.invalid_repr("roleRef", &role_ref_repr(role_ref), "cannot change roleRef");
    }
}

fn value_or_empty(v: &Value) -> Value {
    if v.is_null() {
        Value::String(String::new())
    } else {
        v.clone()
    }
}

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

pub fn persistent_volume_claim(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    match spec["accessModes"].as_array() {
        Some(modes) if !modes.is_empty() => {
            for mode in modes {
                if !ACCESS_MODES.contains(&mode.as_str().unwrap_or_default()) {
                    errs.not_supported("spec.accessModes", mode, ACCESS_MODES);
                }
            }
        }
        _ => errs.required_because("spec.accessModes", "at least 1 access mode is required"),
    }
    if spec["resources"]["requests"]["storage"].is_null() {
        errs.required("spec.resources[storage]");
    }
}

pub fn horizontal_pod_autoscaler(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    for key in ["kind", "name"] {
        if spec["scaleTargetRef"][key].as_str().is_none_or(str::is_empty) {
            errs.required(&format!("spec.scaleTargetRef.{key}"));
        }
    }
    let min = spec["minReplicas"].as_i64();
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.invalid(
            "spec.minReplicas",
            &Value::from(m),
            "must be greater than or equal to 1",
        );
    }
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max < 1 {
        errs.invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than or equal to 1",
        );
    }
    if min.is_some_and(|m| m > max) {
        errs.invalid(
            "spec.maxReplicas",
            &Value::from(max),
            "must be greater than or equal to `minReplicas`",
        );
    }
}

/// The highest value a PriorityClass not named `system-…` may have.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub fn priority_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let value = obj["value"].as_i64().unwrap_or(0);
    if old.is_none() {
        let known = crate::admission::SYSTEM_PRIORITY_CLASSES
            .iter()
            .any(|(n, v, _)| *n == name && *v == value);
        if name.starts_with("system-") && !known {
            errs.forbidden(
                "metadata.name",
                &format!("priority class names with 'system-' prefix are reserved for system use only. error: {name} is not a known system priority class"),
            );
        } else if !name.starts_with("system-") && value > HIGHEST_USER_PRIORITY {
            errs.forbidden(
                "value",
                &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
            );
        }
    }
    if let Some(old) = old {
        if obj["value"] != old["value"] {
            errs.forbidden("value", "may not be changed in an update.");
        }
        errs.immutable(
            "preemptionPolicy",
            &obj["preemptionPolicy"],
            &old["preemptionPolicy"],
            |v| quote(v.as_str().unwrap_or_default()),
        );
    }
}

pub fn storage_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    if obj["provisioner"].as_str().is_none_or(str::is_empty) {
        errs.required("provisioner");
    }
    if let Some(old) = old {
        for key in ["parameters", "provisioner", "reclaimPolicy"] {
            if obj[key] != old[key] {
                errs.forbidden(key, &format!("updates to {key} are forbidden."));
            }
        }
        errs.immutable(
            "volumeBindingMode",
            &obj["volumeBindingMode"],
            &old["volumeBindingMode"],
            |v| quote(v.as_str().unwrap_or_default()),
        );
    }
}
