//! Pods and pod templates: `ValidatePodSpec`, containers, ports, volumes and mounts,
//! resources, and `ValidatePodUpdate`'s rule that a pod's spec is fixed but for a few fields.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Errs;
use super::meta::{dns1123_label, labels_of};
use crate::quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];

pub fn pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    spec(&obj["spec"], "spec", errs);
    match old {
        Some(old) => update(&obj["spec"], &old["spec"], errs),
        // Ephemeral containers come only through the `ephemeralcontainers` subresource.
        None if obj["spec"]["ephemeralContainers"]
            .as_array()
            .is_some_and(|e| !e.is_empty()) =>
        {
            errs.forbidden("spec.ephemeralContainers", "cannot be set on create")
        }
        None => {}
    }
}

/// A pod template at `path` (its labels and spec).
pub fn template(template: &Value, path: &str, errs: &mut Errs) {
    if !template.is_object() {
        errs.required(path);
        return;
    }
    if let Some(labels) = template["metadata"]["labels"].as_object() {
        labels_of(labels, &format!("{path}.metadata.labels"), errs);
    }
    spec(&template["spec"], &format!("{path}.spec"), errs);
}

pub fn spec(spec: &Value, path: &str, errs: &mut Errs) {
    let mut volumes = BTreeSet::new();
    for (i, v) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let vpath = format!("{path}.volumes[{i}].name");
        match v["name"].as_str().filter(|n| !n.is_empty()) {
            None => errs.required(&vpath),
            Some(name) => {
                for msg in dns1123_label(name) {
                    errs.invalid(&vpath, &v["name"], &msg);
                }
                if !volumes.insert(name.to_owned()) {
                    errs.duplicate(&vpath, &format!("{name:?}"));
                }
            }
        }
    }
    let mut names = BTreeSet::new();
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        errs.required(&format!("{path}.containers"));
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in spec[key].as_array().into_iter().flatten().enumerate() {
            container(c, &format!("{path}.{key}[{i}]"), &volumes, &mut names, errs);
        }
    }
    for (i, c) in spec["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        ephemeral_container(
            spec,
            c,
            &format!("{path}.ephemeralContainers[{i}]"),
            &volumes,
            &mut names,
            errs,
        );
    }
    supported(spec, "restartPolicy", path, RESTART_POLICIES, errs);
    supported(spec, "dnsPolicy", path, DNS_POLICIES, errs);
    for key in ["terminationGracePeriodSeconds", "activeDeadlineSeconds"] {
        errs.non_negative(&format!("{path}.{key}"), &spec[key]);
    }
}

/// Fields of `EphemeralContainerCommon` an ephemeral container may not set (upstream's
/// `allowedEphemeralContainerFields` allow-list, inverted, in the struct's field order).
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];
const NOT_FOR_EPHEMERAL: &str = "cannot be set for an Ephemeral Container";

/// An ephemeral container: a container's rules, a name unique across all containers, a target
/// that is a regular or init container, and none of the fields that make a workload container.
fn ephemeral_container(
    spec: &Value,
    c: &Value,
    path: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    errs: &mut Errs,
) {
    container(c, path, volumes, names, errs);
    if let Some(target) = c["targetContainerName"].as_str().filter(|t| !t.is_empty()) {
        let known = ["containers", "initContainers"]
            .iter()
            .flat_map(|key| spec[*key].as_array().into_iter().flatten())
            .any(|other| other["name"].as_str() == Some(target));
        if !known {
            errs.not_found(&format!("{path}.targetContainerName"), target);
        }
    }
    for field in EPHEMERAL_FORBIDDEN {
        let set = match &c[*field] {
            Value::Null => false,
            Value::Object(m) => !m.is_empty() || *field != "resources",
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if set {
            errs.forbidden(&format!("{path}.{field}"), NOT_FOR_EPHEMERAL);
        }
    }
    for (i, m) in c["volumeMounts"].as_array().into_iter().flatten().enumerate() {
        for field in ["subPath", "subPathExpr"] {
            if m[field].as_str().is_some_and(|s| !s.is_empty()) {
                errs.forbidden(&format!("{path}.volumeMounts[{i}].{field}"), NOT_FOR_EPHEMERAL);
            }
        }
    }
}

/// The ephemeralcontainers subresource may add ephemeral containers, never remove or change one.
pub fn ephemeral_containers_update(new: &Value, old: &Value, errs: &mut Errs) {
    let new_items = new["ephemeralContainers"].as_array().cloned().unwrap_or_default();
    for old_item in old["ephemeralContainers"].as_array().into_iter().flatten() {
        let name = old_item["name"].as_str().unwrap_or_default();
        match new_items.iter().find(|n| n["name"].as_str() == Some(name)) {
            None => errs.forbidden(
                "spec.ephemeralContainers",
                &format!("existing ephemeral containers {name:?} may not be removed\n"),
            ),
            Some(new_item) if new_item != old_item => errs.forbidden(
                &format!("spec.ephemeralContainers.{name}"),
                &format!(
                    "existing ephemeral containers {name:?} may not be changed\n{}",
                    value_diff(old_item, new_item)
                ),
            ),
            Some(_) => {}
        }
    }
}

/// A short line-per-field account of how `new` differs from `old` (upstream prints a
/// `cmp.Diff` of the Go structs here; the reader needs the changed fields).
fn value_diff(old: &Value, new: &Value) -> String {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return format!("- {old}\n+ {new}\n");
    };
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = String::new();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (a, b) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("- {key}: {a}\n"));
                }
                if let Some(b) = b {
                    out.push_str(&format!("+ {key}: {b}\n"));
                }
            }
        }
    }
    out
}

/// A present value of `obj[key]` must be one of `values`.
fn supported(obj: &Value, key: &str, path: &str, values: &[&str], errs: &mut Errs) {
    match &obj[key] {
        Value::Null => {}
        Value::String(s) if values.contains(&s.as_str()) => {}
        other => errs.not_supported(&format!("{path}.{key}"), other, values),
    }
}

fn container(
    c: &Value,
    path: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    errs: &mut Errs,
) {
    let name_path = format!("{path}.name");
    match c["name"].as_str().filter(|n| !n.is_empty()) {
        None => errs.required(&name_path),
        Some(name) => {
            for msg in dns1123_label(name) {
                errs.invalid(&name_path, &c["name"], &msg);
            }
            if !names.insert(name.to_owned()) {
                errs.duplicate(&name_path, &format!("{name:?}"));
            }
        }
    }
    if c["image"].as_str().is_none_or(str::is_empty) {
        errs.required(&format!("{path}.image"));
    }
    supported(c, "imagePullPolicy", path, PULL_POLICIES, errs);
    supported(c, "terminationMessagePolicy", path, MESSAGE_POLICIES, errs);
    let mut port_names = BTreeSet::new();
    for (i, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
        let ppath = format!("{path}.ports[{i}]");
        if let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) {
            let msgs = port_name(name);
            for msg in &msgs {
                errs.invalid(&format!("{ppath}.name"), &p["name"], msg);
            }
            if msgs.is_empty() && !port_names.insert(name.to_owned()) {
                errs.duplicate(&format!("{ppath}.name"), &format!("{name:?}"));
            }
        }
        match p["containerPort"].as_i64() {
            None | Some(0) => errs.required(&format!("{ppath}.containerPort")),
            Some(n) => port_number(n, &format!("{ppath}.containerPort"), errs),
        }
        if let Some(n) = p["hostPort"].as_i64().filter(|n| *n != 0) {
            port_number(n, &format!("{ppath}.hostPort"), errs);
        }
        match p["protocol"].as_str() {
            None | Some("") => errs.required(&format!("{ppath}.protocol")),
            Some(proto) if PROTOCOLS.contains(&proto) => {}
            Some(_) => errs.not_supported(&format!("{ppath}.protocol"), &p["protocol"], PROTOCOLS),
        }
    }
    for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
        if e["name"].as_str().is_none_or(str::is_empty) {
            errs.required(&format!("{path}.env[{i}].name"));
        }
    }
    for (i, m) in c["volumeMounts"].as_array().into_iter().flatten().enumerate() {
        let mpath = format!("{path}.volumeMounts[{i}]");
        match m["name"].as_str().filter(|n| !n.is_empty()) {
            None => errs.required(&format!("{mpath}.name")),
            Some(name) if !volumes.contains(name) => errs.not_found(&format!("{mpath}.name"), name),
            Some(_) => {}
        }
        if m["mountPath"].as_str().is_none_or(str::is_empty) {
            errs.required(&format!("{mpath}.mountPath"));
        }
    }
    resources(&c["resources"], &format!("{path}.resources"), errs);
}

/// Requests may not exceed limits; quantities may not be negative.
fn resources(resources: &Value, path: &str, errs: &mut Errs) {
    for kind in ["limits", "requests"] {
        for (name, q) in resources[kind].as_object().into_iter().flatten() {
            let qpath = format!("{path}.{kind}[{name}]");
            match quantity::of(q) {
                None => errs.invalid(&qpath, q, "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                Some(v) if v < 0.0 => errs.invalid(&qpath, q, "must be greater than or equal to 0"),
                Some(_) => {}
            }
        }
    }
    for (name, request) in resources["requests"].as_object().into_iter().flatten() {
        let limit = &resources["limits"][name];
        if let (Some(r), Some(l)) = (quantity::of(request), quantity::of(limit))
            && r > l
        {
            let shown = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            errs.invalid(
                &format!("{path}.requests"),
                &Value::String(shown(request)),
                &format!("must be less than or equal to {name} limit of {}", shown(limit)),
            );
        }
    }
}

/// Upstream's `IsValidPortNum` as a field error.
pub fn port_number(n: i64, path: &str, errs: &mut Errs) {
    if !(1..=65535).contains(&n) {
        errs.invalid(path, &Value::from(n), "must be between 1 and 65535, inclusive");
    }
}

/// Upstream's `IsValidPortName`.
pub fn port_name(name: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if name.len() > 15 {
        msgs.push("must be no more than 15 characters".to_owned());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        msgs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_owned());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        msgs.push("must contain at least one letter (a-z)".to_owned());
    }
    if name.contains("--") {
        msgs.push("must not contain consecutive hyphens".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') {
        msgs.push("must not begin or end with a hyphen".to_owned());
    }
    msgs
}

const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// A pod's spec may change only in images, the active deadline, added tolerations, the grace
/// period and removed scheduling gates.
fn update(new: &Value, old: &Value, errs: &mut Errs) {
    let mut comparable = new.clone();
    if !comparable.is_object() {
        return;
    }
    for key in ["containers", "initContainers"] {
        if let (Some(items), Some(old_items)) = (comparable[key].as_array_mut(), old[key].as_array())
            && items.len() == old_items.len()
        {
            for (item, old_item) in items.iter_mut().zip(old_items) {
                if item.is_object() {
                    item["image"] = old_item["image"].clone();
                }
            }
        }
    }
    let old_tolerations = old["tolerations"].as_array().cloned().unwrap_or_default();
    let kept_all = old_tolerations
        .iter()
        .all(|t| new["tolerations"].as_array().is_some_and(|n| n.contains(t)));
    if kept_all {
        comparable["tolerations"] = old["tolerations"].clone();
    }
    let gates_removed = new["schedulingGates"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|g| old["schedulingGates"].as_array().is_some_and(|o| o.contains(g)));
    if gates_removed {
        comparable["schedulingGates"] = old["schedulingGates"].clone();
    }
    for key in ["activeDeadlineSeconds", "terminationGracePeriodSeconds"] {
        comparable[key] = old[key].clone();
    }
    // Assigning a node is the binding subresource's (which writes through the same path).
    if old["nodeName"].as_str().is_none_or(str::is_empty) {
        comparable["nodeName"] = old["nodeName"].clone();
    }
    let strip_nulls = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.retain(|_, x| !x.is_null());
        }
        v
    };
    if strip_nulls(&comparable) != strip_nulls(old) {
        errs.forbidden("spec", POD_UPDATE_MSG);
    }
}
