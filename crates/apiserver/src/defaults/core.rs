//! Core (v1) defaults: pods and pod templates (spec, containers, probes, volumes), services,
//! replication controllers, secrets, namespaces, nodes, volumes and claims, endpoints, limits.

use serde_json::{Map, Value, json};

use super::{child, child_or_empty, default_unset, default_zero, items, resource_list, unset, zero};

type Obj = Map<String, Value>;

/// A Pod: the pod spec's defaults plus what only pods get (`SetDefaults_Pod`).
pub fn pod(o: &mut Obj) {
    if let Some(status) = child(o, "status") {
        singular_matches_plural(status, "podIP", "podIPs", |ip| json!({"ip": ip}));
        singular_matches_plural(status, "hostIP", "hostIPs", |ip| json!({"ip": ip}));
    }
    let Some(spec) = child(o, "spec") else {
        return;
    };
    pod_spec(spec);
    // Requests default to limits for each container (pods only, not templates).
    for key in ["containers", "initContainers"] {
        for c in items(spec, key) {
            requests_from_limits(c);
        }
    }
    default_unset(spec, "enableServiceLinks", true);
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for key in ["containers", "initContainers"] {
            for c in items(spec, key) {
                for p in items(c, "ports") {
                    if zero(p, "hostPort")
                        && let Some(port) = p.get("containerPort").cloned()
                    {
                        p.insert("hostPort".into(), port);
                    }
                }
            }
        }
    }
}

fn requests_from_limits(c: &mut Obj) {
    let Some(resources) = child(c, "resources") else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child_or_empty(resources, "requests") else {
        return;
    };
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// The pod template at `key` of `o` (workloads, PodTemplate): spec defaults, and the template's
/// metadata as upstream 1.33 serializes it (`creationTimestamp: null`).
pub fn pod_template_in(o: &mut Obj, key: &str) {
    let Some(template) = child_or_empty(o, key) else {
        return;
    };
    embedded_meta(template);
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

/// The metadata of an embedded object (templates): as upstream 1.33 serializes an embedded
/// ObjectMeta, its unset creationTimestamp shows as null.
pub fn embedded_meta(o: &mut Obj) {
    if let Some(meta) = child_or_empty(o, "metadata") {
        meta.entry("creationTimestamp").or_insert(Value::Null);
    }
}

/// `SetDefaults_PodSpec` and the defaults of everything a pod spec holds.
pub fn pod_spec(spec: &mut Obj) {
    default_zero(spec, "dnsPolicy", "ClusterFirst");
    default_zero(spec, "restartPolicy", "Always");
    default_unset(spec, "securityContext", json!({}));
    default_unset(spec, "terminationGracePeriodSeconds", 30);
    default_zero(spec, "schedulerName", "default-scheduler");
    // v1's deprecated `serviceAccount` mirrors `serviceAccountName` (conversion keeps both).
    if zero(spec, "serviceAccountName")
        && let Some(sa) = spec.get("serviceAccount").filter(|v| !v.is_null()).cloned()
    {
        spec.insert("serviceAccountName".into(), sa);
    }
    if let Some(sa) = spec.get("serviceAccountName").filter(|v| !zero_value(v)).cloned() {
        spec.insert("serviceAccount".into(), sa);
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in items(spec, key) {
            container(c);
        }
    }
    for v in items(spec, "volumes") {
        volume(v);
    }
    resource_list(spec, "overhead");
    if let Some(r) = child(spec, "resources") {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
}

fn zero_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `SetDefaults_Container` plus ports, env, probes and lifecycle handlers.
pub fn container(c: &mut Obj) {
    if zero(c, "imagePullPolicy") {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let policy = if image_tag(image).as_deref() == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), policy.into());
    }
    default_zero(c, "terminationMessagePath", "/dev/termination-log");
    default_zero(c, "terminationMessagePolicy", "File");
    // ResourceRequirements is a struct, not a pointer: it always serializes.
    default_unset(c, "resources", json!({}));
    if let Some(r) = child(c, "resources") {
        resource_list(r, "limits");
        resource_list(r, "requests");
    }
    for p in items(c, "ports") {
        default_zero(p, "protocol", "TCP");
    }
    for e in items(c, "env") {
        if let Some(from) = child(e, "valueFrom") {
            field_ref(from);
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = child(c, probe) {
            default_zero(p, "timeoutSeconds", 1);
            default_zero(p, "periodSeconds", 10);
            default_zero(p, "successThreshold", 1);
            default_zero(p, "failureThreshold", 3);
            handler(p);
            if let Some(grpc) = child(p, "grpc") {
                default_unset(grpc, "service", "");
            }
        }
    }
    if let Some(lifecycle) = child(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = child(lifecycle, hook) {
                handler(h);
            }
        }
    }
}

fn handler(h: &mut Obj) {
    if let Some(get) = child(h, "httpGet") {
        default_zero(get, "path", "/");
        default_zero(get, "scheme", "HTTP");
    }
}

fn field_ref(from: &mut Obj) {
    if let Some(f) = child(from, "fieldRef") {
        default_zero(f, "apiVersion", "v1");
    }
}

/// The tag of an image reference as upstream's `ParseImageName` sees it: `latest` when there
/// is neither tag nor digest; None when only a digest is given or the reference does not parse
/// (empty, or upper case in the repository path), which upstream treats as "not latest".
pub fn image_tag(image: &str) -> Option<String> {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (name, None),
    };
    // The first component is a registry host when it looks like one (may be upper case).
    let path = match repo.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repo,
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    match (tag, digest) {
        (Some(t), _) => Some(t.to_owned()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_owned()),
    }
}

/// `SetDefaults_Volume` and the defaults of each volume source.
pub fn volume(v: &mut Obj) {
    let has_source = v.iter().any(|(k, val)| k != "name" && !val.is_null());
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    if let Some(e) = child(v, "emptyDir")
        && let Some(size) = e
            .get("sizeLimit")
            .and_then(|q| crate::quantity::canonical_value(q, -9))
    {
        e.insert("sizeLimit".into(), size);
    }
    volume_source(v);
    for (key, mode) in [("secret", 420), ("configMap", 420), ("downwardAPI", 420)] {
        if let Some(s) = child(v, key) {
            default_unset(s, "defaultMode", mode);
        }
    }
    if let Some(d) = child(v, "downwardAPI") {
        for item in items(d, "items") {
            field_ref(item);
        }
    }
    if let Some(p) = child(v, "projected") {
        default_unset(p, "defaultMode", 420);
        for source in items(p, "sources") {
            if let Some(t) = child(source, "serviceAccountToken") {
                default_unset(t, "expirationSeconds", 3600);
            }
            if let Some(d) = child(source, "downwardAPI") {
                for item in items(d, "items") {
                    field_ref(item);
                }
            }
        }
    }
    if let Some(e) = child(v, "ephemeral")
        && let Some(t) = child(e, "volumeClaimTemplate")
        && let Some(spec) = child(t, "spec")
    {
        default_unset(spec, "volumeMode", "Filesystem");
    }
}

/// Sources shared by pod volumes and persistent volumes.
fn volume_source(v: &mut Obj) {
    if let Some(h) = child(v, "hostPath") {
        default_unset(h, "type", "");
    }
    if let Some(i) = child(v, "iscsi") {
        default_zero(i, "iscsiInterface", "default");
    }
    if let Some(r) = child(v, "rbd") {
        default_zero(r, "pool", "rbd");
        default_zero(r, "user", "admin");
        default_zero(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(a) = child(v, "azureDisk") {
        default_unset(a, "cachingMode", "ReadWrite");
        default_unset(a, "fsType", "ext4");
        default_unset(a, "readOnly", false);
        default_unset(a, "kind", "Shared");
    }
    if let Some(s) = child(v, "scaleIO") {
        default_zero(s, "storageMode", "ThinProvisioned");
        default_zero(s, "fsType", "xfs");
    }
}

/// `SetDefaults_ReplicationController`: selector and labels from the template's labels.
pub fn replication_controller(o: &mut Obj) {
    let labels = o
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(labels) = labels {
        if let Some(spec) = child(o, "spec") {
            default_zero(spec, "selector", labels.clone());
        }
        if let Some(meta) = child_or_empty(o, "metadata") {
            default_zero(meta, "labels", labels);
        }
    }
    if let Some(spec) = child_or_empty(o, "spec") {
        default_unset(spec, "replicas", 1);
        if spec.get("template").is_some_and(Value::is_object) {
            pod_template_in(spec, "template");
        }
    }
}

/// `SetDefaults_Service`. Cluster IPs, IP families and node ports are the allocator's.
pub fn service(o: &mut Obj) {
    let Some(spec) = child_or_empty(o, "spec") else {
        return;
    };
    default_zero(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_zero(spec, "type", "ClusterIP");
    for p in items(spec, "ports") {
        default_zero(p, "protocol", "TCP");
        if zero(p, "targetPort")
            && let Some(port) = p.get("port").cloned()
        {
            p.insert("targetPort".into(), port);
        }
    }
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let externally_accessible =
        kind == "LoadBalancer" || kind == "NodePort" || (kind == "ClusterIP" && !zero(spec, "externalIPs"));
    if externally_accessible {
        default_zero(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(kind.as_str(), "NodePort" | "LoadBalancer" | "ClusterIP") {
        default_unset(spec, "internalTrafficPolicy", "Cluster");
    }
    if kind == "LoadBalancer" {
        default_unset(spec, "allocateLoadBalancerNodePorts", true);
        if let Some(status) = child(o, "status")
            && let Some(lb) = child(status, "loadBalancer")
        {
            for ingress in items(lb, "ingress") {
                if !zero(ingress, "ip") {
                    default_unset(ingress, "ipMode", "VIP");
                }
            }
        }
    }
}

/// Type Opaque; `stringData` is write-only: it is merged into `data` (base64), overriding
/// keys there, as upstream's conversion does.
pub fn secret(o: &mut Obj) {
    default_zero(o, "type", "Opaque");
    use base64::Engine;
    let Some(Value::Object(strings)) = o.remove("stringData") else {
        return;
    };
    if let Some(data) = child_or_empty(o, "data") {
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, encoded.into());
        }
    }
}

/// Every named namespace carries `kubernetes.io/metadata.name`.
pub fn namespace(o: &mut Obj) {
    let Some(name) = o
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
    else {
        return;
    };
    if let Some(meta) = child_or_empty(o, "metadata")
        && let Some(labels) = child_or_empty(meta, "labels")
    {
        labels.insert("kubernetes.io/metadata.name".into(), name.into());
    }
}

/// Allocatable defaults to capacity.
/// v1 keeps a field and its dual-stack plural (`podIP`/`podIPs`, `podCIDR`/`podCIDRs`) in step,
/// as upstream's v1 conversion does: a set singular wins and becomes the plural's only item
/// when they differ or the plural is empty; an unset singular takes the plural's first item.
fn singular_matches_plural(o: &mut Obj, singular: &str, plural: &str, item: impl Fn(&str) -> Value) {
    let first = |o: &Obj| {
        let first = o.get(plural)?.as_array()?.first()?;
        first.as_str().or_else(|| first["ip"].as_str()).map(str::to_owned)
    };
    match o.get(singular).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(one) => {
            if first(o).as_deref() != Some(one) {
                let one = item(one);
                o.insert(plural.into(), json!([one]));
            }
        }
        None => {
            if let Some(first) = first(o) {
                o.insert(singular.into(), first.into());
            }
        }
    }
}

pub fn node(o: &mut Obj) {
    if let Some(spec) = child(o, "spec") {
        singular_matches_plural(spec, "podCIDR", "podCIDRs", |cidr| json!(cidr));
    }
    if let Some(status) = child(o, "status") {
        resource_list(status, "capacity");
        resource_list(status, "allocatable");
    }
    if let Some(status) = child(o, "status")
        && unset(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        status.insert("allocatable".into(), capacity);
    }
}

pub fn persistent_volume(o: &mut Obj) {
    if let Some(spec) = child_or_empty(o, "spec") {
        default_zero(spec, "persistentVolumeReclaimPolicy", "Retain");
        resource_list(spec, "capacity");
        default_unset(spec, "volumeMode", "Filesystem");
        volume_source(spec);
    }
    if let Some(status) = child_or_empty(o, "status") {
        default_zero(status, "phase", "Pending");
    }
}

pub fn persistent_volume_claim(o: &mut Obj) {
    if let Some(spec) = child_or_empty(o, "spec") {
        default_unset(spec, "volumeMode", "Filesystem");
        if let Some(r) = child(spec, "resources") {
            resource_list(r, "limits");
            resource_list(r, "requests");
        }
    }
    if let Some(status) = child_or_empty(o, "status") {
        default_zero(status, "phase", "Pending");
        resource_list(status, "capacity");
        resource_list(status, "allocatedResources");
    }
}

pub fn resource_quota(o: &mut Obj) {
    if let Some(spec) = child(o, "spec") {
        resource_list(spec, "hard");
    }
    if let Some(status) = child(o, "status") {
        resource_list(status, "hard");
        resource_list(status, "used");
    }
}

pub fn endpoints(o: &mut Obj) {
    for subset in items(o, "subsets") {
        for p in items(subset, "ports") {
            default_zero(p, "protocol", "TCP");
        }
    }
}

/// Container limits: default limit from max, default request from the default limit, then
/// from min.
pub fn limit_range(o: &mut Obj) {
    let Some(spec) = child(o, "spec") else {
        return;
    };
    for item in items(spec, "limits") {
        for key in ["max", "min", "default", "defaultRequest", "maxLimitRequestRatio"] {
            resource_list(item, key);
        }
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let get = |item: &Obj, k: &str| {
            item.get(k)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let (max, min) = (get(item, "max"), get(item, "min"));
        let mut default = get(item, "default");
        for (k, v) in max {
            default.entry(k).or_insert(v);
        }
        let mut request = get(item, "defaultRequest");
        for (k, v) in default.iter().chain(min.iter()) {
            request.entry(k.clone()).or_insert(v.clone());
        }
        item.insert("default".into(), Value::Object(default));
        item.insert("defaultRequest".into(), Value::Object(request));
    }
}
