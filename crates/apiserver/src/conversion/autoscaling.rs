//! autoscaling/v1 ⇄ autoscaling/v2 HorizontalPodAutoscalers, as upstream's
//! `pkg/apis/autoscaling/v1` conversion: v1 has only a CPU utilization target, so the other
//! metrics, the current metrics and the conditions travel in annotations through v1 and come
//! back from them.

use serde_json::{Map, Value, json};

const METRIC_SPECS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const METRIC_STATUSES: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// upstream's `autoscaling.DefaultCPUUtilization`: v1's implicit target.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

pub(super) fn v2_to_v1(obj: &mut Value) -> bool {
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    let mut annotations = Vec::new();
    if let Some(Value::Object(spec)) = map.get_mut("spec") {
        let metrics = match spec.remove("metrics") {
            Some(Value::Array(metrics)) => metrics,
            _ => Vec::new(),
        };
        // The first CPU metric decides v1's target (upstream stops at it, with or without one).
        if let Some(utilization) = metrics
            .iter()
            .find(|m| is_cpu(m, "resource"))
            .and_then(cpu_target)
        {
            spec.insert("targetCPUUtilizationPercentage".into(), utilization.clone());
        }
        let other: Vec<Value> = metrics
            .iter()
            .filter(|m| cpu_target(m).is_none())
            .map(metric_spec_to_v1)
            .collect();
        if !other.is_empty() {
            annotations.push((METRIC_SPECS, Value::Array(other)));
        }
        // v1 has no behavior; upstream drops it on the way through v1.
        spec.remove("behavior");
    }
    if let Some(Value::Object(status)) = map.get_mut("status") {
        let current = match status.remove("currentMetrics") {
            Some(Value::Array(current)) => current,
            _ => Vec::new(),
        };
        if let Some(cpu) = current.iter().find(|m| is_cpu(m, "resource")) {
            let utilization = &cpu["resource"]["current"]["averageUtilization"];
            if !utilization.is_null() {
                status.insert("currentCPUUtilizationPercentage".into(), utilization.clone());
            }
        }
        if !current.is_empty() {
            let current = current.iter().map(metric_status_to_v1).collect();
            annotations.push((METRIC_STATUSES, Value::Array(current)));
        }
        match status.remove("conditions") {
            Some(Value::Array(conditions)) if !conditions.is_empty() => {
                annotations.push((CONDITIONS, Value::Array(conditions)));
            }
            _ => {}
        }
    }
    if !annotations.is_empty() {
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let all = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(all) = all.as_object_mut() {
                for (key, value) in annotations {
                    all.insert(key.into(), value.to_string().into());
                }
            }
        }
    }
    true
}

pub(super) fn v1_to_v2(obj: &mut Value) -> bool {
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    let mut from_annotations = |key: &str| -> Option<Vec<Value>> {
        let all = map.get_mut("metadata")?.get_mut("annotations")?.as_object_mut()?;
        let raw = all.remove(key)?;
        if all.is_empty() {
            map.get_mut("metadata")?.as_object_mut()?.remove("annotations");
        }
        match serde_json::from_str(raw.as_str()?) {
            Ok(Value::Array(items)) => Some(items),
            _ => None,
        }
    };
    let other = from_annotations(METRIC_SPECS);
    let current = from_annotations(METRIC_STATUSES);
    let conditions = from_annotations(CONDITIONS);
    let spec = map.entry("spec").or_insert_with(|| json!({}));
    if let Some(spec) = spec.as_object_mut() {
        let mut metrics: Vec<Value> = other.unwrap_or_default().iter().map(metric_spec_to_v2).collect();
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.push(cpu_utilization(target));
        }
        if metrics.is_empty() {
            metrics.push(cpu_utilization(DEFAULT_CPU_UTILIZATION.into()));
        }
        spec.insert("metrics".into(), Value::Array(metrics));
    }
    if let Some(Value::Object(status)) = map.get_mut("status") {
        let cpu = status.remove("currentCPUUtilizationPercentage");
        match current {
            // The annotation has more than the CPU figure: it wins.
            Some(current) => {
                let current = current.iter().map(metric_status_to_v2).collect();
                status.insert("currentMetrics".into(), Value::Array(current));
            }
            None => {
                if let Some(cpu) = cpu {
                    status.insert(
                        "currentMetrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
                    );
                }
            }
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), Value::Array(conditions));
        }
    }
    true
}

fn cpu_utilization(target: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
}

/// The utilization target of a CPU `Resource` metric, if it has one.
fn cpu_target(metric: &Value) -> Option<&Value> {
    Some(&metric["resource"]["target"]["averageUtilization"])
        .filter(|u| is_cpu(metric, "resource") && !u.is_null())
}

/// A `Resource` metric (spec or status) about CPU.
fn is_cpu(metric: &Value, source: &str) -> bool {
    metric["type"] == "Resource" && metric[source]["name"] == "cpu"
}

/// The metric source's key for a metric type (`Resource` → `resource`).
fn source_key(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "External" => "external",
        _ => return None,
    })
}

/// Copies the listed fields that are set: (from, to) pairs of dotted paths.
fn moved(from: &Value, pairs: &[(&str, &str)]) -> Value {
    let mut out = Map::new();
    for (source, dest) in pairs {
        let value = source.split('.').fold(from, |v, part| &v[part]);
        if value.is_null() {
            continue;
        }
        let mut target = &mut out;
        let mut parts = dest.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                target.insert(part.to_owned(), value.clone());
                break;
            }
            target = target
                .entry(part)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("built as objects");
        }
    }
    Value::Object(out)
}

/// v2 → v1 field pairs of each metric source (spec), as upstream's converters map them.
fn spec_pairs(key: &str) -> &'static [(&'static str, &'static str)] {
    match key {
        "object" => &[
            ("describedObject", "target"),
            ("metric.name", "metricName"),
            ("metric.selector", "selector"),
            ("target.value", "targetValue"),
            ("target.averageValue", "averageValue"),
        ],
        "pods" => &[
            ("metric.name", "metricName"),
            ("metric.selector", "selector"),
            ("target.averageValue", "targetAverageValue"),
        ],
        "resource" => &[
            ("name", "name"),
            ("target.averageUtilization", "targetAverageUtilization"),
            ("target.averageValue", "targetAverageValue"),
        ],
        "containerResource" => &[
            ("name", "name"),
            ("container", "container"),
            ("target.averageUtilization", "targetAverageUtilization"),
            ("target.averageValue", "targetAverageValue"),
        ],
        _ => &[
            ("metric.name", "metricName"),
            ("metric.selector", "metricSelector"),
            ("target.value", "targetValue"),
            ("target.averageValue", "targetAverageValue"),
        ],
    }
}

/// v2 → v1 field pairs of each metric source (status).
fn status_pairs(key: &str) -> &'static [(&'static str, &'static str)] {
    match key {
        "object" => &[
            ("describedObject", "target"),
            ("metric.name", "metricName"),
            ("metric.selector", "selector"),
            ("current.value", "currentValue"),
            ("current.averageValue", "averageValue"),
        ],
        "pods" => &[
            ("metric.name", "metricName"),
            ("metric.selector", "selector"),
            ("current.averageValue", "currentAverageValue"),
        ],
        "resource" => &[
            ("name", "name"),
            ("current.averageUtilization", "currentAverageUtilization"),
            ("current.averageValue", "currentAverageValue"),
        ],
        "containerResource" => &[
            ("name", "name"),
            ("container", "container"),
            ("current.averageUtilization", "currentAverageUtilization"),
            ("current.averageValue", "currentAverageValue"),
        ],
        _ => &[
            ("metric.name", "metricName"),
            ("metric.selector", "metricSelector"),
            ("current.value", "currentValue"),
            ("current.averageValue", "currentAverageValue"),
        ],
    }
}

fn reversed(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    pairs.iter().map(|(a, b)| (*b, *a)).collect()
}

fn metric_spec_to_v1(metric: &Value) -> Value {
    convert_metric(metric, |key, source| moved(source, spec_pairs(key)))
}

fn metric_status_to_v1(metric: &Value) -> Value {
    convert_metric(metric, |key, source| moved(source, status_pairs(key)))
}

fn metric_spec_to_v2(metric: &Value) -> Value {
    convert_metric(metric, |key, source| {
        let mut out = moved(source, &reversed(spec_pairs(key)));
        // v1 has no target type: upstream derives it from which value is set.
        let target_type = match key {
            "resource" | "containerResource" if !source["targetAverageUtilization"].is_null() => {
                "Utilization"
            }
            "object" if source["averageValue"].is_null() => "Value",
            "external" if !source["targetValue"].is_null() => "Value",
            _ => "AverageValue",
        };
        if let Some(target) = out
            .as_object_mut()
            .map(|o| o.entry("target").or_insert_with(|| json!({})))
        {
            target["type"] = target_type.into();
        }
        out
    })
}

fn metric_status_to_v2(metric: &Value) -> Value {
    convert_metric(metric, |key, source| moved(source, &reversed(status_pairs(key))))
}

/// Keeps `type` and converts the one source the type names.
fn convert_metric(metric: &Value, convert: impl Fn(&str, &Value) -> Value) -> Value {
    let kind = metric["type"].as_str().unwrap_or_default();
    let mut out = json!({"type": kind});
    if let Some(key) = source_key(kind)
        && metric[key].is_object()
    {
        out[key] = convert(key, &metric[key]);
    }
    out
}
