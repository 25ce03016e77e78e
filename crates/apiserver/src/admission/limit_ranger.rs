//! LimitRanger: a pod's containers get the default limits and requests of the LimitRanges in
//! its namespace, recorded in the `kubernetes.io/limit-ranger` annotation, and a pod outside a
//! range's min, max or limit/request ratio is refused, in upstream's words.

use serde_json::{Map, Value, json};

use crate::quantity;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// Applies the ranges' container defaults to `pod`; the reasons it violates them, if any.
pub fn admit(pod: &mut Value, ranges: &[Value]) -> Vec<String> {
    let mut notes = Vec::new();
    for range in ranges {
        for item in container_items(range) {
            for (key, field) in [("initContainers", "init container"), ("containers", "container")] {
                let Some(containers) = pod["spec"][key].as_array_mut() else {
                    continue;
                };
                for c in containers.iter_mut().filter(|c| c.is_object()) {
                    let name = c["name"].as_str().unwrap_or_default().to_owned();
                    if !c["resources"].is_object() {
                        c["resources"] = json!({});
                    }
                    let set_limits = fill(&mut c["resources"], "limits", &item["default"]);
                    let set_requests = fill(&mut c["resources"], "requests", &item["defaultRequest"]);
                    if !set_requests.is_empty() {
                        notes.push(format!("{} request for {field} {name}", set_requests.join(", ")));
                    }
                    if !set_limits.is_empty() {
                        notes.push(format!("{} limit for {field} {name}", set_limits.join(", ")));
                    }
                }
            }
        }
    }
    if !notes.is_empty()
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                ANNOTATION.into(),
                format!("LimitRanger plugin set: {}", notes.join("; ")).into(),
            );
        }
    }
    let mut errors = Vec::new();
    for range in ranges {
        for item in container_items(range) {
            for key in ["initContainers", "containers"] {
                for c in pod["spec"][key].as_array().into_iter().flatten() {
                    check(&c["resources"], item, &mut errors);
                }
            }
        }
    }
    errors
}

/// The `type: Container` items of a LimitRange.
fn container_items(range: &Value) -> impl Iterator<Item = &Value> {
    range["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "Container")
}

/// Adds the defaults missing from `resources[kind]`; the names it set, sorted.
fn fill(resources: &mut Value, kind: &str, defaults: &Value) -> Vec<String> {
    let Some(defaults) = defaults.as_object().filter(|d| !d.is_empty()) else {
        return Vec::new();
    };
    if !resources[kind].is_object() {
        resources[kind] = Value::Object(Map::new());
    }
    let mut set = Vec::new();
    if let Some(list) = resources[kind].as_object_mut() {
        for (name, value) in defaults {
            if !list.contains_key(name) {
                list.insert(name.clone(), value.clone());
                set.push(name.clone());
            }
        }
    }
    set.sort();
    set
}

fn text(q: &Value) -> String {
    q.as_str().map_or_else(|| q.to_string(), str::to_owned)
}

/// Upstream's min, max and ratio constraints for one container.
fn check(resources: &Value, item: &Value, errors: &mut Vec<String>) {
    let (requests, limits) = (&resources["requests"], &resources["limits"]);
    for (name, min) in item["min"].as_object().into_iter().flatten() {
        let request = &requests[name];
        match (quantity::of(request), quantity::of(min)) {
            (None, _) => errors.push(format!(
                "minimum {name} usage per Container is {}.  No request is specified",
                text(min)
            )),
            (Some(r), Some(m)) if r < m => errors.push(format!(
                "minimum {name} usage per Container is {}, but request is {}",
                text(min),
                text(request)
            )),
            _ => {}
        }
    }
    for (name, max) in item["max"].as_object().into_iter().flatten() {
        let limit = &limits[name];
        match (quantity::of(limit), quantity::of(max)) {
            (None, _) => errors.push(format!(
                "maximum {name} usage per Container is {}.  No limit is specified",
                text(max)
            )),
            (Some(l), Some(m)) if l > m => errors.push(format!(
                "maximum {name} usage per Container is {}, but limit is {}",
                text(max),
                text(limit)
            )),
            _ => {}
        }
    }
    for (name, ratio) in item["maxLimitRequestRatio"].as_object().into_iter().flatten() {
        let (Some(limit), Some(request), Some(max)) = (
            quantity::of(&limits[name]),
            quantity::of(&requests[name]),
            quantity::of(ratio),
        ) else {
            continue;
        };
        if request > 0.0 && limit / request > max {
            errors.push(format!(
                "{name} max limit to request ratio per Container is {}, but provided ratio is {:.6}",
                text(ratio),
                limit / request
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Value {
        json!({"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
            "defaultRequest": {"cpu": "100m"}, "max": {"memory": "1Gi"}}]}})
    }

    #[test]
    fn defaults_fill_in_and_are_noted() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "512Mi"}}}]}});
        assert!(admit(&mut pod, &[range()]).is_empty());
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m"}})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu request for container a; cpu limit for container a"
        );
    }

    #[test]
    fn limits_above_the_maximum_are_refused() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"memory": "2Gi"}}}]}});
        assert_eq!(
            admit(&mut pod, &[range()]),
            ["maximum memory usage per Container is 1Gi, but limit is 2Gi"]
        );
    }
}
