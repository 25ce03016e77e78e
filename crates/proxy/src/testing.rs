//! Services and EndpointSlices as the API server returns them, for tests and the benchmark.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

pub fn service(name: &str, cluster_ip: &str, spec: Value) -> Service {
    let mut full = json!({
        "type": "ClusterIP",
        "clusterIP": cluster_ip,
        "clusterIPs": [cluster_ip],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    });
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": full,
    }))
    .unwrap()
}

/// An endpoint: (ip, node, ready, serving, terminating).
pub type Ep<'a> = (&'a str, &'a str, bool, bool, bool);

pub fn slice(service: &str, name: &str, port: (&str, u16, &str), endpoints: &[Ep<'_>]) -> EndpointSlice {
    let family = if endpoints.first().is_some_and(|e| e.0.contains(':')) {
        "IPv6"
    } else {
        "IPv4"
    };
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
        "addressType": family,
        "ports": [{"name": port.0, "port": port.1, "protocol": port.2}],
        "endpoints": endpoints.iter().map(|(ip, node, ready, serving, terminating)| json!({
            "addresses": [ip],
            "nodeName": node,
            "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

pub fn ready<'a>(ip: &'a str, node: &'a str) -> Ep<'a> {
    (ip, node, true, true, false)
}
