//! Kind-specific rules applied before an object is stored: upstream's strategies'
//! `PrepareForCreate` (status reset to what a new object reports, pod phase and QoS class, Job
//! selectors) and which changes bump `metadata.generation`. Defaulting runs first
//! (`defaults`), validation after.

use apimachinery::resources::ResourceDef;
use serde_json::{Map, Value, json};

use crate::{objects, quantity};

/// Adjusts a new object of `def`'s kind before validation and storage.
pub fn prepare_for_create(def: &ResourceDef, obj: &mut Value) {
    if let Some(status) = initial_status(def) {
        obj["status"] = status;
    }
    match (def.group, def.plural) {
        ("", "namespaces") => namespace(obj),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            crate::crd::definition::prepare_for_create(obj)
        }
        ("", "pods") => {
            obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(&obj["spec"])});
            // A gated pod says why it is not scheduled (upstream's applySchedulingGatedCondition).
            if obj["spec"]["schedulingGates"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
            {
                obj["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                    "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates",
                    "lastProbeTime": null, "lastTransitionTime": objects::now_rfc3339()}]);
            }
        }
        ("", "persistentvolumes") => {
            obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": objects::now_rfc3339()});
        }
        ("", "persistentvolumeclaims") => obj["status"] = json!({"phase": "Pending"}),
        ("batch", "jobs") => job_selector(obj),
        ("certificates.k8s.io", "certificatesigningrequests") => crate::certificates::prepare_for_create(obj),
        ("apps", "daemonsets") => {
            objects::metadata_mut(obj)
                .entry("annotations")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|a| a.insert(TEMPLATE_GENERATION.into(), "1".into()));
        }
        _ => {}
    }
}

/// apps/v1 shows a DaemonSet's template generation (extensions' `spec.templateGeneration`) as
/// this annotation; it counts template changes.
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Adjusts an update of the main resource (upstream's `PrepareForUpdate`) beyond what every
/// kind gets (status kept, generation): a DaemonSet's template generation.
pub fn prepare_for_update(def: &ResourceDef, old: &Value, new: &mut Value) {
    if crate::crd::is_definition(def) {
        crate::crd::definition::prepare_for_update(new);
        return;
    }
    if (def.group, def.plural) != ("apps", "daemonsets") {
        return;
    }
    let Some(generation) = old["metadata"]["annotations"][TEMPLATE_GENERATION]
        .as_str()
        .and_then(|g| g.parse::<i64>().ok())
    else {
        return;
    };
    let next = if old["spec"]["template"] != new["spec"]["template"] {
        generation + 1
    } else {
        generation
    };
    if let Some(annotations) = objects::metadata_mut(new)
        .entry("annotations")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        annotations.insert(TEMPLATE_GENERATION.into(), next.to_string().into());
    }
}

/// What a `/status` write may change besides the status: a Deployment's annotations, as
/// upstream's deployment status strategy resets only spec and labels (the deployment
/// controller records `deployment.kubernetes.io/revision` this way, without a new generation).
pub fn status_write_metadata(
    def: &ResourceDef,
    subresource: Option<&str>,
    written: &Value,
    updated: &mut Value,
) {
    if subresource != Some("status") || (def.group, def.plural) != ("apps", "deployments") {
        return;
    }
    let annotations = written["metadata"].get("annotations").cloned();
    let meta = objects::metadata_mut(updated);
    match annotations {
        Some(a) => meta.insert("annotations".into(), a),
        None => meta.remove("annotations"),
    };
}

/// The status a new object starts with, for kinds whose strategy resets it: the zero value of
/// the status struct as upstream serializes it (fields without `omitempty` appear as 0).
fn initial_status(def: &ResourceDef) -> Option<Value> {
    Some(match (def.group, def.plural) {
        ("apps", "deployments") | ("batch", "jobs") | ("batch", "cronjobs") | ("", "resourcequotas") => {
            json!({})
        }
        ("apps", "replicasets") | ("", "replicationcontrollers") => json!({"replicas": 0}),
        ("apps", "statefulsets") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "daemonsets") => json!({
            "currentNumberScheduled": 0, "numberMisscheduled": 0,
            "desiredNumberScheduled": 0, "numberReady": 0}),
        // v1 requires currentReplicas; v1 and v2 share storage without conversion yet, so both
        // versions start with it.
        ("autoscaling", "horizontalpodautoscalers") => json!({"currentReplicas": 0, "desiredReplicas": 0}),
        ("policy", "poddisruptionbudgets") => json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
        ("", "services") | ("networking.k8s.io", "ingresses") => json!({"loadBalancer": {}}),
        _ => return None,
    })
}

/// Kinds whose `metadata.generation` counts changes of the desired state (upstream's
/// strategies that set it).
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
            | "ingressclasses"
            | "customresourcedefinitions"
            | "pods"
            | "podtemplates"
            | "endpointslices"
    )
}

/// Whether an update from `old` to `new` bumps the generation: a spec change, and for
/// Deployments also an annotation change (annotations are copied to their ReplicaSets).
pub fn bumps_generation(def: &ResourceDef, old: &Value, new: &Value) -> bool {
    if !has_generation(def) {
        return false;
    }
    if def.plural == "pods" {
        // Binding a pod to a node is not a spec change upstream (it bypasses the strategy).
        let without_node = |pod: &Value| {
            let mut pod = pod.clone();
            if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("nodeName");
            }
            pod
        };
        return objects::spec_changed(&without_node(old), &without_node(new));
    }
    if objects::spec_changed(old, new) {
        return true;
    }
    def.plural == "deployments" && old["metadata"]["annotations"] != new["metadata"]["annotations"]
}

/// A namespace starts Active, with the `kubernetes` finalizer that the namespace controller
/// removes once everything in it is gone.
fn namespace(obj: &mut Value) {
    match obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("finalizers"))
        .and_then(Value::as_array_mut)
    {
        Some(list) if !list.is_empty() => {
            if !list.iter().any(|f| f == "kubernetes") {
                list.push("kubernetes".into());
            }
        }
        _ => obj["spec"] = json!({"finalizers": ["kubernetes"]}),
    }
    obj["status"] = json!({"phase": "Active"});
}

/// A Job without `manualSelector: true` selects its pods by its uid; its template carries the
/// uid and name labels (legacy and `batch.kubernetes.io/` forms), as upstream generates them.
fn job_selector(obj: &mut Value) {
    let manual = obj["spec"]["manualSelector"].as_bool() == Some(true);
    let uid = objects::meta_str(obj, "uid").unwrap_or_default().to_owned();
    let name = objects::name(obj).unwrap_or_default().to_owned();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if !manual {
        let Some(labels) = template_labels(spec) else {
            return;
        };
        labels
            .entry("controller-uid")
            .or_insert_with(|| uid.clone().into());
        labels.insert("batch.kubernetes.io/controller-uid".into(), uid.clone().into());
        if name.len() <= 63 {
            labels.entry("job-name").or_insert_with(|| name.clone().into());
            labels.insert("batch.kubernetes.io/job-name".into(), name.into());
        }
        if spec.get("selector").is_none_or(|s| !s.is_object()) {
            spec.insert("selector".into(), json!({}));
        }
        let selector = spec["selector"].as_object_mut().expect("just made an object");
        if !selector.get("matchLabels").is_some_and(Value::is_object) {
            selector.insert("matchLabels".into(), json!({}));
        }
        selector["matchLabels"]
            .as_object_mut()
            .expect("just made an object")
            .entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| uid.into());
    }
    // The Job's own labels default to its template's (upstream defaults them again whenever it
    // reads the object, so the generated labels show up there too).
    let labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .cloned();
    if let Some(labels) = labels
        && objects::metadata(obj)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        objects::metadata_mut(obj).insert("labels".into(), labels);
    }
}

fn template_labels(spec: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let template = spec.get_mut("template")?.as_object_mut()?;
    let meta = template.entry("metadata").or_insert_with(|| json!({}));
    let meta = meta.as_object_mut()?;
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta.insert("labels".into(), json!({}));
    }
    meta.get_mut("labels")?.as_object_mut()
}

/// Upstream's `GetPodQOS`: BestEffort without any cpu/memory requests or limits; Guaranteed
/// when every container limits both and requests equal limits; Burstable otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut requests: Map<String, Value> = Map::new();
    let mut limits: Map<String, Value> = Map::new();
    let mut guaranteed = true;
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten();
    let add = |sum: &mut Map<String, Value>, name: &str, q: f64| {
        let total = sum.get(name).and_then(Value::as_f64).unwrap_or(0.0) + q;
        sum.insert(name.to_owned(), json!(total));
    };
    for c in containers {
        let mut found = Vec::new();
        for (kind, sum) in [("requests", &mut requests), ("limits", &mut limits)] {
            for (name, q) in c["resources"][kind].as_object().into_iter().flatten() {
                if !matches!(name.as_str(), "cpu" | "memory") {
                    continue;
                }
                if let Some(q) = quantity::of(q).filter(|q| *q != 0.0) {
                    add(sum, name, q);
                    if kind == "limits" {
                        found.push(name.clone());
                    }
                }
            }
        }
        if !(found.iter().any(|n| n == "cpu") && found.iter().any(|n| n == "memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests.iter().all(|(k, v)| limits.get(k) == Some(v)) && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::resources::find;

    #[test]
    fn namespaces_start_active_with_the_kubernetes_finalizer() {
        let def = find("", "v1", "namespaces").unwrap();
        let mut ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        prepare_for_create(def, &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
    }

    #[test]
    fn pods_start_pending_with_their_qos_class() {
        let def = find("", "v1", "pods").unwrap();
        let cases = [
            (json!({}), "BestEffort"),
            (json!({"requests": {"cpu": "100m"}}), "Burstable"),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}}),
                "Guaranteed",
            ),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}),
                "Burstable",
            ),
        ];
        for (resources, class) in cases {
            let mut pod = json!({"spec": {"containers": [{"name": "a", "resources": resources}]}, "status": {"phase": "Running"}});
            prepare_for_create(def, &mut pod);
            assert_eq!(pod["status"], json!({"phase": "Pending", "qosClass": class}));
        }
    }

    #[test]
    fn jobs_select_their_pods_by_uid() {
        let def = find("batch", "v1", "jobs").unwrap();
        let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"spec": {}}}});
        prepare_for_create(def, &mut job);
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        let labels = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1", "job-name": "pi"});
        assert_eq!(job["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(job["metadata"]["labels"], labels);
        assert_eq!(job["status"], json!({}));
    }

    #[test]
    fn daemonsets_count_template_changes_in_an_annotation() {
        let def = find("apps", "v1", "daemonsets").unwrap();
        let mut ds = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"a": 1}}}});
        prepare_for_create(def, &mut ds);
        assert_eq!(ds["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut same = ds.clone();
        same["metadata"]["annotations"] = json!({});
        prepare_for_update(def, &ds, &mut same);
        assert_eq!(same["metadata"]["annotations"][TEMPLATE_GENERATION], "1");
        let mut changed = ds.clone();
        changed["spec"]["template"]["spec"]["a"] = json!(2);
        prepare_for_update(def, &ds, &mut changed);
        assert_eq!(changed["metadata"]["annotations"][TEMPLATE_GENERATION], "2");
    }

    #[test]
    fn deployments_bump_generation_on_annotation_changes_too() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let rs = find("apps", "v1", "replicasets").unwrap();
        let old = json!({"metadata": {"annotations": {"a": "1"}}, "spec": {"replicas": 1}});
        let new = json!({"metadata": {"annotations": {"a": "2"}}, "spec": {"replicas": 1}});
        assert!(bumps_generation(deploy, &old, &new));
        assert!(!bumps_generation(rs, &old, &new));
        let svc = find("", "v1", "services").unwrap();
        assert!(!bumps_generation(svc, &old, &json!({"spec": {"replicas": 2}})));
    }
}
