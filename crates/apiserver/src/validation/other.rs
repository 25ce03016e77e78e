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
    for (i, metric) in spec["metrics"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.metrics[{i}]");
        for source in ["resource", "containerResource"] {
            let src = &metric[source];
            if !src.is_object() {
                continue;
            }
            let path = format!("{path}.{source}");
            if src["name"].as_str().is_none_or(str::is_empty) {
                errs.required_because(&format!("{path}.name"), "must specify a resource name");
            }
            metric_target(&src["target"], &format!("{path}.target"), errs);
            let target = &src["target"];
            match (
                target["averageUtilization"].is_null(),
                target["averageValue"].is_null(),
            ) {
                (true, true) => errs.required_because(
                    &format!("{path}.target.averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ),
                (false, false) => errs.forbidden(
                    &format!("{path}.target.averageValue"),
                    "may not set both a target raw value and a target utilization",
                ),
                _ => {}
            }
        }
        for source in ["object", "pods", "external"] {
            if metric[source].is_object() {
                metric_target(
                    &metric[source]["target"],
                    &format!("{path}.{source}.target"),
                    errs,
                );
            }
        }
    }
}

/// upstream's `validateMetricTarget` (the checks that need no quantity arithmetic).
fn metric_target(target: &Value, path: &str, errs: &mut Errs) {
    match target["type"].as_str() {
        None | Some("") => {
            errs.required_because(&format!("{path}.type"), "must specify a metric target type")
        }
        Some("Utilization" | "Value" | "AverageValue") => {}
        Some(other) => errs.invalid(
            &format!("{path}.type"),
            &Value::from(other),
            "must be either Utilization, Value, or AverageValue",
        ),
    }
    if let Some(utilization) = target["averageUtilization"].as_i64().filter(|u| *u < 1) {
        errs.invalid(
            &format!("{path}.averageUtilization"),
            &Value::from(utilization),
            "must be greater than 0",
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

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

/// Ingresses: hosts, paths and their types, and backends.
pub fn ingress(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            for msg in super::meta::dns1123_subdomain(bare) {
                errs.invalid(&format!("{path}.host"), &rule["host"], &msg);
            }
        }
        if rule["http"].is_null() {
            continue;
        }
        let paths = rule["http"]["paths"].as_array().map_or(&[][..], Vec::as_slice);
        if paths.is_empty() {
            errs.required(&format!("{path}.http.paths"));
        }
        for (j, p) in paths.iter().enumerate() {
            let ppath = format!("{path}.http.paths[{j}]");
            match p["pathType"].as_str() {
                None | Some("") => {
                    errs.required_because(&format!("{ppath}.pathType"), "pathType must be specified")
                }
                Some(t) if PATH_TYPES.contains(&t) => {
                    let value = p["path"].as_str().unwrap_or_default();
                    if t != "ImplementationSpecific" && !value.starts_with('/') {
                        errs.invalid(&format!("{ppath}.path"), &p["path"], "must be an absolute path");
                    }
                }
                Some(_) => errs.not_supported(&format!("{ppath}.pathType"), &p["pathType"], PATH_TYPES),
            }
            backend(&p["backend"], &format!("{ppath}.backend"), errs);
        }
    }
    if !spec["defaultBackend"].is_null() {
        backend(&spec["defaultBackend"], "spec.defaultBackend", errs);
    }
}

fn backend(backend: &Value, path: &str, errs: &mut Errs) {
    let service = &backend["service"];
    match (service.is_null(), backend["resource"].is_null()) {
        (true, true) => errs.required_because(path, "one backend must be specified"),
        (false, false) => errs.forbidden(path, "cannot set both resource and service backends"),
        _ => {}
    }
    if service.is_null() {
        return;
    }
    if service["name"].as_str().is_none_or(str::is_empty) {
        errs.required(&format!("{path}.service.name"));
    }
    let port = &service["port"];
    let name = port["name"].as_str().unwrap_or_default();
    let number = port["number"].as_i64().unwrap_or(0);
    let repr = format!(
        "networking.ServiceBackendPort{{Name:{}, Number:{number}}}",
        quote(name)
    );
    let port_path = format!("{path}.service.port");
    match (!name.is_empty(), number != 0) {
        (true, true) => errs.invalid_repr(&port_path, &repr, "cannot set both port name & port number"),
        (false, false) => errs.invalid_repr(&port_path, &repr, "port name or number is required"),
        (false, true) => super::pod::port_number(number, &format!("{path}.service.port.number"), errs),
        (true, false) => {}
    }
}

/// PodDisruptionBudgets: one of minAvailable and maxUnavailable, each a count or a percent.
pub fn pod_disruption_budget(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        errs.invalid_repr(
            "spec",
            "policy.PodDisruptionBudgetSpec{…}",
            "minAvailable and maxUnavailable cannot be both set",
        );
    }
    for key in ["minAvailable", "maxUnavailable"] {
        let path = format!("spec.{key}");
        match &spec[key] {
            Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => {
                errs.invalid(&path, &spec[key], "must be greater than or equal to 0");
            }
            Value::String(s) => match s.strip_suffix('%').map(str::parse::<u32>) {
                Some(Ok(p)) if p > 100 => errs.invalid(&path, &spec[key], "must not be greater than 100%"),
                Some(Ok(_)) => {}
                _ => errs.invalid(
                    &path,
                    &spec[key],
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ),
            },
            _ => {}
        }
    }
}

/// APIServices (kube-aggregator's `ValidateAPIService`): named `<version>.<group>`, priorities in
/// range, and a service reference unless local.
pub fn api_service(obj: &Value, errs: &mut Errs) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let version = spec["version"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let required_name = format!("{version}.{group}");
    if super::meta::path_segment(name).is_empty() && name != required_name {
        errs.invalid(
            "metadata.name",
            &Value::from(name),
            &format!(
                "must be `spec.version+\".\"+spec.group`: {}",
                quote(&required_name)
            ),
        );
    }
    if group.is_empty() && version != "v1" {
        errs.required_because(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        );
    }
    if !group.is_empty() {
        for msg in super::meta::dns1123_subdomain(group) {
            errs.invalid("spec.group", &Value::from(group), &msg);
        }
    }
    for msg in super::meta::dns1035_label(version) {
        errs.invalid("spec.version", &Value::from(version), &msg);
    }
    let group_priority = spec["groupPriorityMinimum"].as_i64().unwrap_or(0);
    if !(1..=20000).contains(&group_priority) {
        errs.invalid(
            "spec.groupPriorityMinimum",
            &Value::from(group_priority),
            "must be positive and less than 20000",
        );
    }
    let version_priority = spec["versionPriority"].as_i64().unwrap_or(0);
    if !(1..=1000).contains(&version_priority) {
        errs.invalid(
            "spec.versionPriority",
            &Value::from(version_priority),
            "must be positive and less than 1000",
        );
    }
    let ca_bundle = spec["caBundle"].as_str().unwrap_or_default();
    let insecure = spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false);
    let Some(service) = spec["service"].as_object() else {
        if !ca_bundle.is_empty() {
            // The bundle is base64 in JSON; upstream counts decoded bytes.
            let bytes = ca_bundle.trim_end_matches('=').len() * 3 / 4;
            errs.invalid(
                "spec.caBundle",
                &Value::from(format!("{bytes} bytes")),
                "local APIServices may not have a caBundle",
            );
        }
        if insecure {
            errs.invalid(
                "spec.insecureSkipTLSVerify",
                &Value::Bool(true),
                "local APIServices may not have insecureSkipTLSVerify",
            );
        }
        return;
    };
    for key in ["namespace", "name"] {
        if service.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            errs.required(&format!("spec.service.{key}"));
        }
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.invalid(
            "spec.service.port",
            &Value::from(port),
            "port is not valid: must be between 1 and 65535, inclusive",
        );
    }
    if insecure && !ca_bundle.is_empty() {
        errs.invalid(
            "spec.insecureSkipTLSVerify",
            &Value::Bool(true),
            "may not be true if caBundle is present",
        );
    }
}
