//! What the Endpoints and EndpointSlice controllers share (upstream's `k8s.io/endpointslice/util`
//! and `pkg/api/v1/pod`): which pods belong in endpoints, a pod's readiness, target ports
//! resolved by name, hostnames, the services a pod change concerns, and the
//! `endpoints.kubernetes.io/last-change-trigger-time` bookkeeping.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::informer::Cache;

/// Annotation with the time of the change that led to the endpoints' last update.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label on endpoints of headless services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Whether the pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The pod's IPs: `status.podIPs`, or `status.podIP` alone when a writer set only that (an
/// upstream API server derives one from the other; these controllers do not rely on it).
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.clone())
        .filter(|ip| !ip.is_empty())
        .collect();
    match status.pod_ip.as_ref().filter(|ip| !ip.is_empty()) {
        // The primary IP is authoritative when the two disagree, as upstream's conversion.
        Some(primary) if ips.first() != Some(primary) => vec![primary.clone()],
        _ => ips,
    }
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal (Succeeded/Failed), has an IP, and —
/// unless `include_terminating` — not being deleted.
pub fn should_pod_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let has_ip = status.is_some_and(|s| {
        s.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
            || s.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
    });
    if !has_ip {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Whether an endpoint of `pod` carries its hostname for `svc`: the pod's subdomain is the
/// service (in the same namespace) and it has a hostname.
pub fn should_set_hostname(pod: &Pod, svc: &Service) -> bool {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.as_deref()).unwrap_or("");
    let subdomain = spec.and_then(|s| s.subdomain.as_deref()).unwrap_or("");
    !hostname.is_empty()
        && subdomain == svc.metadata.name.as_deref().unwrap_or("")
        && pod.metadata.namespace == svc.metadata.namespace
}

/// Upstream's `FindPort`: a numeric target port as it is; a named one looked up among the
/// containers' ports (then sidecars', i.e. init containers with `restartPolicy: Always`) with
/// the service port's protocol. `None` when the pod has no such port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let target = port.target_port.clone().unwrap_or(IntOrString::Int(port.port));
    let name = match target {
        IntOrString::Int(n) => return Some(n),
        IntOrString::String(name) => name,
    };
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol
        })
        .map(|p| p.container_port)
}

/// The service's selector when it selects pods: a missing or empty selector selects none (an
/// empty map does not survive upstream's storage either).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether `labels` match a service selector.
pub fn selects(selector: &BTreeMap<String, String>, labels: Option<&BTreeMap<String, String>>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Pods in the service's namespace that its selector matches.
pub fn selected_pods(
    svc: &Service,
    selector: &BTreeMap<String, String>,
    pods: &Cache<Pod>,
) -> Vec<std::sync::Arc<Pod>> {
    let mut selected: Vec<_> = pods
        .list(svc.metadata.namespace.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|p| selects(selector, p.metadata.labels.as_ref()))
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    selected
}

/// Whether the service has a cluster IP (not headless).
pub fn is_service_ip_set(svc: &Service) -> bool {
    let ip = svc
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or("");
    !ip.is_empty() && ip != "None"
}

pub fn is_external_name(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("ExternalName")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The keys of the services a pod change concerns (upstream's `GetServicesToUpdateOnPodChange`):
/// for an add or delete, the services selecting the pod; for an update that matters to
/// endpoints, those selecting it before or after (only the difference when only its labels
/// changed).
pub fn services_for_pod_change(
    old: Option<&Pod>,
    new: Option<&Pod>,
    services: &Cache<Service>,
) -> BTreeSet<String> {
    let matching = |pod: &Pod, labels: Option<&BTreeMap<String, String>>| -> BTreeSet<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        services
            .list(ns)
            .iter()
            .filter(|svc| selector(svc).is_some_and(|sel| selects(sel, labels)))
            .map(|svc| key(ns, svc.metadata.name.as_deref().unwrap_or("")))
            .collect()
    };
    match (old, new) {
        (None, None) => BTreeSet::new(),
        (Some(pod), None) | (None, Some(pod)) => matching(pod, pod.metadata.labels.as_ref()),
        (Some(old), Some(new)) => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return BTreeSet::new();
            }
            let (pod_changed, labels_changed) = pod_endpoints_changed(old, new);
            if !pod_changed && !labels_changed {
                return BTreeSet::new();
            }
            let now = matching(new, new.metadata.labels.as_ref());
            if !labels_changed {
                return now;
            }
            let before = matching(old, old.metadata.labels.as_ref());
            if pod_changed {
                now.union(&before).cloned().collect()
            } else {
                now.symmetric_difference(&before).cloned().collect()
            }
        }
    }
}

/// (the pod changed in a way its endpoints show, its labels or hostname changed).
fn pod_endpoints_changed(old: &Pod, new: &Pod) -> (bool, bool) {
    let host = |p: &Pod| {
        let spec = p.spec.as_ref();
        (
            spec.and_then(|s| s.hostname.clone()),
            spec.and_then(|s| s.subdomain.clone()),
        )
    };
    let labels_changed = old.metadata.labels != new.metadata.labels || host(old) != host(new);
    let ips = pod_ips;
    let pod_changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_pod_ready(old) != is_pod_ready(new)
        || ips(old) != ips(new)
        // Upstream relies on nodeName being set before the IP; a phase turning terminal drops
        // the pod too (upstream notices through the Ready condition the kubelet clears).
        || old.spec.as_ref().and_then(|s| s.node_name.as_ref()) != new.spec.as_ref().and_then(|s| s.node_name.as_ref())
        || phase(old) != phase(new);
    (pod_changed, labels_changed)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Upstream's `TriggerTimeTracker`: per service, the pods' Ready-transition times and the
/// service's creation time seen at the last sync. The annotation gets the earliest of the
/// times that changed since (a new service: its creation time); `None` when nothing did.
#[derive(Default)]
pub struct TriggerTimes {
    states: Mutex<HashMap<String, ServiceState>>,
}

#[derive(Default)]
struct ServiceState {
    service: Option<Timestamp>,
    pods: HashMap<String, Timestamp>,
}

impl TriggerTimes {
    pub fn compute(&self, svc: &Service, pods: &[std::sync::Arc<Pod>]) -> Option<Timestamp> {
        let svc_key = key(
            svc.metadata.namespace.as_deref().unwrap_or(""),
            svc.metadata.name.as_deref().unwrap_or(""),
        );
        let mut states = self.states.lock().expect("trigger times lock");
        let was_known = states.contains_key(&svc_key);
        let state = states.entry(svc_key).or_default();
        let mut min_changed: Option<Timestamp> = None;
        let mut earliest = |t: Timestamp| {
            min_changed = Some(min_changed.map_or(t, |m| m.min(t)));
        };
        let mut pod_times = HashMap::new();
        for pod in pods {
            let Some(t) = ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if state.pods.get(&name).is_none_or(|last| t > *last) {
                earliest(t);
            }
            pod_times.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created
            && state.service.is_none_or(|last| t > last)
        {
            earliest(t);
        }
        state.pods = pod_times;
        state.service = created;
        if !was_known {
            return created;
        }
        min_changed
    }

    pub fn forget(&self, svc_key: &str) {
        self.states.lock().expect("trigger times lock").remove(svc_key);
    }
}

/// A time as upstream writes the annotation (RFC 3339 with nanoseconds, trailing zeros cut).
pub fn format_trigger_time(t: Timestamp) -> String {
    // jiff's Display is RFC 3339 with only the fractional digits needed, as Go's RFC3339Nano.
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn port(v: serde_json::Value) -> ServicePort {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let p = pod(json!({"metadata": {"name": "a"}, "spec": {
            "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "init", "ports": [{"name": "other", "containerPort": 7070}]}]}}));
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "http"}))),
            Some(8080)
        );
        assert_eq!(
            find_port(
                &p,
                &port(json!({"port": 80, "targetPort": "dns", "protocol": "UDP"}))
            ),
            Some(53)
        );
        assert_eq!(
            find_port(
                &p,
                &port(json!({"port": 80, "targetPort": "dns", "protocol": "TCP"}))
            ),
            None
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "metrics"}))),
            Some(9090)
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": "other"}))),
            None
        );
        assert_eq!(
            find_port(&p, &port(json!({"port": 80, "targetPort": 81}))),
            Some(81)
        );
        assert_eq!(find_port(&p, &port(json!({"port": 80}))), Some(80));
    }

    #[test]
    fn pod_ips_fall_back_to_the_primary_ip() {
        let with = |status: serde_json::Value| pod(json!({"metadata": {"name": "a"}, "status": status}));
        assert_eq!(pod_ips(&with(json!({"podIP": "10.0.0.1"}))), ["10.0.0.1"]);
        assert_eq!(
            pod_ips(&with(
                json!({"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]})
            )),
            ["10.0.0.1", "fd00::1"]
        );
        assert_eq!(
            pod_ips(&with(
                json!({"podIP": "10.0.0.2", "podIPs": [{"ip": "10.0.0.1"}]})
            )),
            ["10.0.0.2"]
        );
        assert!(pod_ips(&with(json!({}))).is_empty());
    }

    #[test]
    fn terminal_and_ipless_pods_are_left_out() {
        let with = |phase: &str, ip: Option<&str>, deleting: bool| {
            let mut v = json!({"metadata": {"name": "a"}, "status": {"phase": phase}});
            if let Some(ip) = ip {
                v["status"]["podIP"] = json!(ip);
                v["status"]["podIPs"] = json!([{"ip": ip}]);
            }
            if deleting {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            pod(v)
        };
        assert!(should_pod_be_in_endpoints(
            &with("Running", Some("10.0.0.1"), false),
            false
        ));
        assert!(!should_pod_be_in_endpoints(&with("Running", None, false), true));
        assert!(!should_pod_be_in_endpoints(
            &with("Succeeded", Some("10.0.0.1"), false),
            true
        ));
        assert!(!should_pod_be_in_endpoints(
            &with("Failed", Some("10.0.0.1"), false),
            true
        ));
        assert!(should_pod_be_in_endpoints(
            &with("Running", Some("10.0.0.1"), true),
            true
        ));
        assert!(!should_pod_be_in_endpoints(
            &with("Running", Some("10.0.0.1"), true),
            false
        ));
    }

    #[test]
    fn trigger_time_is_the_earliest_change_since_the_last_sync() {
        let svc: Service = serde_json::from_value(
            json!({"metadata": {"name": "s", "namespace": "d", "creationTimestamp": "2026-01-01T00:00:00Z"}}),
        )
        .unwrap();
        let ready_at = |name: &str, t: &str| {
            std::sync::Arc::new(pod(json!({"metadata": {"name": name}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": t}]}})))
        };
        let tracker = TriggerTimes::default();
        let first = tracker.compute(&svc, &[ready_at("a", "2026-01-01T00:00:05Z")]);
        assert_eq!(first.unwrap().to_string(), "2026-01-01T00:00:00Z");
        let same = tracker.compute(&svc, &[ready_at("a", "2026-01-01T00:00:05Z")]);
        assert_eq!(same, None);
        let changed = tracker.compute(
            &svc,
            &[
                ready_at("a", "2026-01-01T00:00:09Z"),
                ready_at("b", "2026-01-01T00:00:07Z"),
            ],
        );
        assert_eq!(changed.unwrap().to_string(), "2026-01-01T00:00:07Z");
    }
}
