//! Webhook configurations (upstream's `ValidateMutatingWebhookConfiguration` and
//! `ValidateValidatingWebhookConfiguration` with the v1 options: unique webhook names, side
//! effects None/NoneOnDryRun, a recognised AdmissionReview version).

use serde_json::Value;

use super::Errs;
use super::gorepr::string_slice;
use super::meta::{dns1035_label, dns1123_subdomain};

const ACCEPTED_REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];
const SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun", "Some", "Unknown"];
const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];
const SCOPES: &[&str] = &["*", "Cluster", "Namespaced"];

pub fn webhook_configuration(obj: &Value, mutating: bool, errs: &mut Errs) {
    let mut names: Vec<&str> = Vec::new();
    for (i, hook) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
        let path = format!("webhooks[{i}]");
        let name = hook["name"].as_str().unwrap_or_default();
        if !name.is_empty() {
            if names.contains(&name) {
                errs.duplicate(&format!("{path}.name"), &super::gorepr::quote(name));
            } else {
                names.push(name);
            }
        }
        webhook(hook, mutating, &path, errs);
        review_versions(
            &hook["admissionReviewVersions"],
            &format!("{path}.admissionReviewVersions"),
            errs,
        );
    }
}

fn webhook(hook: &Value, mutating: bool, path: &str, errs: &mut Errs) {
    fully_qualified_name(
        hook["name"].as_str().unwrap_or_default(),
        &format!("{path}.name"),
        errs,
    );
    for (j, rule) in hook["rules"].as_array().into_iter().flatten().enumerate() {
        rule_with_operations(rule, &format!("{path}.rules[{j}]"), errs);
    }
    let one_of = |key: &str, supported: &[&str], errs: &mut Errs| {
        if let Some(v) = hook.get(key).filter(|v| !v.is_null())
            && !v.as_str().is_some_and(|s| supported.contains(&s))
        {
            errs.not_supported(&format!("{path}.{key}"), v, supported);
        }
    };
    one_of("failurePolicy", &["Fail", "Ignore"], errs);
    one_of("matchPolicy", &["Equivalent", "Exact"], errs);
    one_of("sideEffects", SIDE_EFFECTS, errs);
    match hook.get("sideEffects").filter(|v| !v.is_null()) {
        None => errs.required_because(
            &format!("{path}.sideEffects"),
            &format!("must specify one of {}", NO_SIDE_EFFECTS.join(", ")),
        ),
        Some(v) if !v.as_str().is_some_and(|s| NO_SIDE_EFFECTS.contains(&s)) => {
            errs.not_supported(&format!("{path}.sideEffects"), v, NO_SIDE_EFFECTS)
        }
        Some(_) => {}
    }
    if let Some(t) = hook["timeoutSeconds"].as_i64()
        && !(1..=30).contains(&t)
    {
        errs.invalid(
            &format!("{path}.timeoutSeconds"),
            &Value::from(t),
            "the timeout value must be between 1 and 30 seconds",
        );
    }
    if mutating {
        one_of("reinvocationPolicy", &["IfNeeded", "Never"], errs);
    }
    client_config(&hook["clientConfig"], &format!("{path}.clientConfig"), errs);
}

/// `IsFullyQualifiedName`: a DNS subdomain of at least three segments.
fn fully_qualified_name(name: &str, path: &str, errs: &mut Errs) {
    if name.is_empty() {
        errs.required(path);
        return;
    }
    let msgs = dns1123_subdomain(name);
    if !msgs.is_empty() {
        errs.invalid(path, &Value::from(name), &msgs.join(","));
    } else if name.split('.').count() < 3 {
        errs.invalid(
            path,
            &Value::from(name),
            "should be a domain with at least three segments separated by dots",
        );
    }
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default())
        .collect()
}

fn rule_with_operations(rule: &Value, path: &str, errs: &mut Errs) {
    let ops = strings(&rule["operations"]);
    let ops_path = format!("{path}.operations");
    if ops.is_empty() {
        errs.required(&ops_path);
    }
    if ops.len() > 1 && ops.contains(&"*") {
        errs.invalid_repr(
            &ops_path,
            &string_slice(&rule["operations"]),
            "if '*' is present, must not specify other operations",
        );
    }
    for (i, op) in ops.iter().enumerate() {
        if !OPERATIONS.contains(op) {
            errs.not_supported(&format!("{ops_path}[{i}]"), &Value::from(*op), OPERATIONS);
        }
    }
    for (key, what) in [("apiGroups", "API groups"), ("apiVersions", "API versions")] {
        let list = strings(&rule[key]);
        if list.is_empty() {
            errs.required(&format!("{path}.{key}"));
        }
        if list.len() > 1 && list.contains(&"*") {
            errs.invalid_repr(
                &format!("{path}.{key}"),
                &string_slice(&rule[key]),
                &format!("if '*' is present, must not specify other {what}"),
            );
        }
    }
    for (i, v) in strings(&rule["apiVersions"]).iter().enumerate() {
        if v.is_empty() {
            errs.required(&format!("{path}.apiVersions[{i}]"));
        }
    }
    resources(&rule["resources"], &format!("{path}.resources"), errs);
    if let Some(scope) = rule.get("scope").filter(|v| !v.is_null())
        && !scope.as_str().is_some_and(|s| SCOPES.contains(&s))
    {
        errs.not_supported(&format!("{path}.scope"), scope, SCOPES);
    }
}

/// Upstream's `validateResources`: `res/sub` pairs with their wildcard exclusions.
fn resources(value: &Value, path: &str, errs: &mut Errs) {
    let list = strings(value);
    if list.is_empty() {
        errs.required(path);
    }
    let mut wildcard_sub_of: Vec<&str> = Vec::new();
    let mut wildcard_res_of: Vec<&str> = Vec::new();
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, entry) in list.iter().enumerate() {
        if entry.is_empty() {
            errs.required(&format!("{path}[{i}]"));
            continue;
        }
        double |= *entry == "*/*";
        single |= *entry == "*";
        let Some((res, sub)) = entry.split_once('/') else {
            plain = *entry != "*";
            continue;
        };
        if wildcard_sub_of.contains(&res) {
            let msg = format!("if '{res}/*' is present, must not specify {entry}");
            errs.invalid(&format!("{path}[{i}]"), &Value::from(*entry), &msg);
        }
        if wildcard_res_of.contains(&sub) {
            let msg = format!("if '*/{sub}' is present, must not specify {entry}");
            errs.invalid(&format!("{path}[{i}]"), &Value::from(*entry), &msg);
        }
        if sub == "*" {
            wildcard_sub_of.push(res);
        }
        if res == "*" {
            wildcard_res_of.push(sub);
        }
    }
    if list.len() > 1 && double {
        errs.invalid_repr(
            path,
            &string_slice(value),
            "if '*/*' is present, must not specify other resources",
        );
    }
    if single && plain {
        errs.invalid_repr(
            path,
            &string_slice(value),
            "if '*' is present, must not specify other resources without subresources",
        );
    }
}

fn review_versions(value: &Value, path: &str, errs: &mut Errs) {
    let versions = strings(value);
    if versions.is_empty() {
        errs.required_because(
            path,
            &format!("must specify one of {}", ACCEPTED_REVIEW_VERSIONS.join(", ")),
        );
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        if seen.contains(v) {
            errs.invalid(&format!("{path}[{i}]"), &Value::from(*v), "duplicate version");
            continue;
        }
        seen.push(v);
        for msg in dns1035_label(v) {
            errs.invalid(&format!("{path}[{i}]"), &Value::from(*v), &msg);
        }
    }
    if !versions.iter().any(|v| ACCEPTED_REVIEW_VERSIONS.contains(v)) {
        errs.invalid_repr(
            path,
            &string_slice(value),
            &format!(
                "must include at least one of {}",
                ACCEPTED_REVIEW_VERSIONS.join(", ")
            ),
        );
    }
}

/// Exactly one of `url` (https, with a host, no user info, query or fragment) and `service`.
fn client_config(cc: &Value, path: &str, errs: &mut Errs) {
    let url = cc["url"].as_str();
    let service = cc["service"].as_object();
    match (url, service) {
        (Some(url), None) => webhook_url(url, &format!("{path}.url"), errs),
        (None, Some(service)) => webhook_service(service, &format!("{path}.service"), errs),
        _ => errs.required_because(path, "exactly one of url or service is required"),
    }
}

fn webhook_url(raw: &str, path: &str, errs: &mut Errs) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
    let (rest, fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = if raw.contains("://") {
        rest.split('/').next().unwrap_or_default()
    } else {
        ""
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (Some(user), host),
        None => (None, authority),
    };
    if scheme != "https" {
        errs.invalid(
            path,
            &Value::from(scheme),
            &format!("'https' is the only allowed URL scheme{FORM}"),
        );
    }
    if host.is_empty() {
        errs.invalid(path, &Value::from(host), &format!("host must be specified{FORM}"));
    }
    if let Some(user) = user {
        errs.invalid(
            path,
            &Value::from(user),
            "user information is not permitted in the URL",
        );
    }
    if !fragment.is_empty() {
        errs.invalid(
            path,
            &Value::from(fragment),
            "fragments are not permitted in the URL",
        );
    }
    if !query.is_empty() {
        errs.invalid(
            path,
            &Value::from(query),
            "query parameters are not permitted in the URL",
        );
    }
}

fn webhook_service(service: &serde_json::Map<String, Value>, path: &str, errs: &mut Errs) {
    let text = |k: &str| service.get(k).and_then(Value::as_str).unwrap_or_default();
    if text("name").is_empty() {
        errs.required_because(&format!("{path}.name"), "service name is required");
    }
    if text("namespace").is_empty() {
        errs.required_because(&format!("{path}.namespace"), "service namespace is required");
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.invalid(
            &format!("{path}.port"),
            &Value::from(port),
            "port is not valid: must be between 1 and 65535, inclusive",
        );
    }
    let url_path = text("path");
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    let p = format!("{path}.path");
    if url_path == "//" {
        errs.invalid(&p, &Value::from(url_path), "segment[0] may not be empty");
        return;
    }
    if !url_path.starts_with('/') {
        errs.invalid(&p, &Value::from(url_path), "must start with a '/'");
    }
    let trimmed = url_path.strip_prefix('/').unwrap_or(url_path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, step) in trimmed.split('/').enumerate() {
        if step.is_empty() {
            errs.invalid(
                &p,
                &Value::from(url_path),
                &format!("segment[{i}] may not be empty"),
            );
            continue;
        }
        for msg in dns1123_subdomain(step) {
            errs.invalid(&p, &Value::from(url_path), &format!("segment[{i}]: {msg}"));
        }
    }
}
