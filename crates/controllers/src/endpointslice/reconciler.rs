//! The EndpointSlice reconciler without I/O (upstream's `k8s.io/endpointslice` `Reconciler`):
//! from a Service, its pods and the slices it has, which slices to create, update and delete.
//! Endpoints are grouped by their resolved ports (pods whose named target port resolves to
//! different numbers land in different slices); existing slices are kept and patched in place
//! where they can be, filled up before new ones are made, and at most `max_endpoints` go in one
//! slice. A service with no endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::pod_endpoints::{self as util, HEADLESS_LABEL};

/// Label naming a slice's service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's `managed-by` value.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The zone label of nodes, copied to endpoints.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a sync does to the service's slices.
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is unknown, as upstream's errors (the service is
    /// tried again later).
    pub pods_without_node: Vec<String>,
}

/// How the reconciler looks up a node: `None` when the node does not exist, else its zone.
pub type NodeZone<'a> = &'a dyn Fn(&str) -> Option<Option<String>>;

/// The address types the service's slices have (upstream's `getAddressTypesForService`).
pub fn address_types(svc: &Service) -> BTreeSet<&'static str> {
    let spec = svc.spec.as_ref();
    let mut types = BTreeSet::new();
    for family in spec.and_then(|s| s.ip_families.as_ref()).into_iter().flatten() {
        match family.as_str() {
            "IPv4" => types.insert("IPv4"),
            "IPv6" => types.insert("IPv6"),
            _ => false,
        };
    }
    if !types.is_empty() {
        return types;
    }
    // Services from before ipFamilies: the cluster IP's family, or both when headless.
    if util::is_service_ip_set(svc) {
        let ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or("");
        types.insert(if ip.contains(':') { "IPv6" } else { "IPv4" });
    } else {
        types.extend(["IPv4", "IPv6"]);
    }
    types
}

/// The slices' ports for one pod (upstream's `getEndpointPorts`): each service port whose
/// target the pod has, in the service's order.
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let port = util::find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A canonical key for a set of ports (order does not matter), as upstream's `PortMapKey`.
pub(crate) fn port_map_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| format!("{:?}/{:?}/{:?}/{:?}", p.name, p.port, p.protocol, p.app_protocol))
        .collect();
    parts.sort();
    parts.join(",")
}

/// The identity of an endpoint within a slice: addresses, hostname and target pod. Other
/// fields (conditions, node, zone) may change in place.
pub(crate) type EndpointKey = (Vec<String>, String, String, String);

pub(crate) fn endpoint_key(ep: &Endpoint) -> EndpointKey {
    let mut addresses = ep.addresses.clone();
    addresses.sort();
    let target = ep.target_ref.as_ref();
    (
        addresses,
        ep.hostname.clone().unwrap_or_default(),
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// Whether two endpoints with one key are the same beyond it (upstream's
/// `EndpointsEqualBeyondHash`; the target's resourceVersion does not count).
pub(crate) fn equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name && a.zone == b.zone && conditions(a) == conditions(b) && target(a) == target(b)
}

/// The endpoint of a pod for one address type (upstream's `podToEndpoint`).
pub fn pod_to_endpoint(pod: &Pod, zone: Option<String>, svc: &Service, address_type: &str) -> Endpoint {
    let serving = util::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = util::publish_not_ready(svc) || (serving && !terminating);
    let addresses = util::pod_ips(pod)
        .iter()
        .filter_map(|ip| ip.parse::<std::net::IpAddr>().ok())
        .filter(|ip| ip.is_ipv6() == (address_type == "IPv6"))
        .map(|ip| ip.to_string())
        .collect();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name,
        zone: zone.filter(|z| !z.is_empty()),
        hostname: util::should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        ..Default::default()
    }
}

/// The prefix of the service's slice names (`<service>-`, without the dash when too long).
pub(crate) fn slice_prefix(service: &str) -> String {
    if service.len() + 1 > 253 - 5 {
        service.to_owned()
    } else {
        format!("{service}-")
    }
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == svc.metadata.uid.as_ref() && o.kind == "Service" && o.api_version == "v1")
}

fn is_reserved_label(key: &str) -> bool {
    key == SERVICE_NAME_LABEL || key == MANAGED_BY_LABEL || key == HEADLESS_LABEL
}

/// A slice's labels for the service: the service's own (minus the reserved ones), the headless
/// label, the service name and `managed-by`; and whether the copied service labels differ
/// from the slice's (upstream's `setEndpointSliceLabels`).
pub fn slice_labels(
    current: Option<&BTreeMap<String, String>>,
    svc: &Service,
    controller: &str,
) -> (BTreeMap<String, String>, bool) {
    let copy = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| !is_reserved_label(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let mut labels = copy(svc.metadata.labels.as_ref());
    let changed = copy(current) != labels;
    if !util::is_service_ip_set(svc) {
        labels.insert(HEADLESS_LABEL.to_owned(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.to_owned(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_owned(), controller.to_owned());
    (labels, changed)
}

/// A new, unnamed slice of the service (upstream's `newEndpointSlice`).
pub fn new_slice(
    svc: &Service,
    ports: Vec<EndpointPort>,
    address_type: &str,
    controller: &str,
) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(slice_prefix(&name)),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(slice_labels(None, svc, controller).0),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Service".to_owned(),
                name,
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// Whether a slice to delete is just the placeholder a new one would be (upstream's
/// `placeholderSliceCompare`: namespace, labels, owners, ports, address type, endpoints).
fn same_placeholder(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.metadata.namespace == b.metadata.namespace
        && a.metadata.labels.clone().unwrap_or_default() == b.metadata.labels.clone().unwrap_or_default()
        && a.metadata.owner_references.clone().unwrap_or_default()
            == b.metadata.owner_references.clone().unwrap_or_default()
        && a.ports.clone().unwrap_or_default() == b.ports.clone().unwrap_or_default()
        && a.address_type == b.address_type
        && a.endpoints == b.endpoints
}

/// The whole reconciliation of one service: its slices of every address type.
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node_zone: NodeZone<'_>,
    max_endpoints: usize,
) -> Plan {
    let types = address_types(svc);
    let mut plan = Plan::default();
    let mut by_type: BTreeMap<&str, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    let mut wrong_type = Vec::new();
    for slice in existing {
        match types.get(slice.address_type.as_str()) {
            Some(t) => by_type.entry(t).or_default().push(slice.clone()),
            None => wrong_type.push((**slice).clone()),
        }
    }
    for address_type in &types {
        let slices = by_type.remove(address_type).unwrap_or_default();
        let typed = reconcile_address_type(svc, pods, &slices, node_zone, max_endpoints, address_type);
        plan.create.extend(typed.create);
        plan.update.extend(typed.update);
        plan.delete.extend(typed.delete);
        if plan.pods_without_node.is_empty() {
            plan.pods_without_node = typed.pods_without_node;
        }
    }
    plan.delete.extend(wrong_type);
    plan
}

fn reconcile_address_type(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node_zone: NodeZone<'_>,
    max_endpoints: usize,
    address_type: &str,
) -> Plan {
    let mut plan = Plan::default();
    let mut existing_by_ports: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, svc) {
            let key = port_map_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(key).or_default().push(slice.clone());
        } else {
            plan.delete.push((**slice).clone());
        }
    }

    // Desired endpoints, grouped by resolved ports.
    let mut desired: BTreeMap<String, (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>)> = BTreeMap::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = port_map_key(&ports);
        let group = desired.entry(key).or_insert_with(|| (ports, BTreeMap::new()));
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("");
        let zone = match node_zone(node) {
            Some(zone) => zone,
            None if util::publish_not_ready(svc) => None,
            None => {
                plan.pods_without_node.push(format!(
                    "skipping Pod {} for Service {}/{}: Node {node} Not Found",
                    pod.metadata.name.as_deref().unwrap_or(""),
                    svc.metadata.namespace.as_deref().unwrap_or(""),
                    svc.metadata.name.as_deref().unwrap_or(""),
                ));
                continue;
            }
        };
        let endpoint = pod_to_endpoint(pod, zone, svc, address_type);
        if !endpoint.addresses.is_empty() {
            group.1.insert(endpoint_key(&endpoint), endpoint);
        }
    }

    for (key, (ports, endpoints)) in &mut desired {
        let slices = existing_by_ports.get(key).map(Vec::as_slice).unwrap_or_default();
        let (create, update, delete) = reconcile_port_mapping(
            svc,
            slices,
            std::mem::take(endpoints),
            ports,
            address_type,
            max_endpoints,
        );
        plan.create.extend(create);
        plan.update.extend(update);
        plan.delete.extend(delete);
    }
    for (key, slices) in &existing_by_ports {
        if !desired.contains_key(key) {
            plan.delete.extend(slices.iter().map(|s| (**s).clone()));
        }
    }

    // A service without endpoints keeps one empty placeholder slice.
    if existing.len() == plan.delete.len() && plan.create.is_empty() {
        let placeholder = new_slice(svc, Vec::new(), address_type, CONTROLLER_NAME);
        if plan.delete.len() == 1 && same_placeholder(&plan.delete[0], &placeholder) {
            plan.delete.clear();
        } else {
            plan.create.push(placeholder);
        }
    }

    apply_hints(svc, existing, &mut plan);
    plan
}

/// Upstream's `reconcileByPortMapping` for one group of slices with the same ports:
/// 1. drop endpoints no longer desired from existing slices and refresh changed ones (and the
///    labels); 2. fill the slices being updated anyway with new endpoints, fullest first;
///    3. put what is left into the unchanged slice it fits best, or into new slices.
fn reconcile_port_mapping(
    svc: &Service,
    existing: &[Arc<EndpointSlice>],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max_endpoints: usize,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut endpoint_changed = false;
        for endpoint in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(endpoint)) {
                if !equal_beyond_key(&want, endpoint) {
                    endpoint_changed = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(slice.metadata.labels.as_ref(), svc, CONTROLLER_NAME);
        let mut copy = (**slice).clone();
        if endpoint_changed || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                copy.endpoints = kept;
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
            }
        } else if labels_changed {
            copy.metadata.labels = Some(labels);
            to_update.insert(name.clone());
        } else {
            unchanged.insert(name.clone());
        }
        by_name.insert(name, copy);
    }

    let pop = |desired: &mut BTreeMap<EndpointKey, Endpoint>| desired.pop_first().map(|(_, e)| e);

    // 2. Fill the slices that are written anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<&String> = to_update.iter().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name[*n].endpoints.len()));
        let names: Vec<String> = names.into_iter().cloned().collect();
        for name in names {
            let slice = by_name.get_mut(&name).expect("slice by name");
            while slice.endpoints.len() < max_endpoints {
                let Some(endpoint) = pop(&mut desired) else { break };
                slice.endpoints.push(endpoint);
            }
        }
    }

    // 3. The rest: into the unchanged slice closest to full that takes them all, else new ones.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut fill_name = None;
        if desired.len() < max_endpoints && !unchanged.is_empty() {
            let mut closest = max_endpoints;
            for name in &unchanged {
                let len = by_name[name].endpoints.len();
                if len + desired.len() <= max_endpoints {
                    let diff = max_endpoints - (len + desired.len());
                    if diff < closest {
                        closest = diff;
                        fill_name = Some(name.clone());
                    }
                }
            }
        }
        match fill_name {
            Some(name) => {
                let slice = by_name.get_mut(&name).expect("slice by name");
                while slice.endpoints.len() < max_endpoints {
                    let Some(endpoint) = pop(&mut desired) else { break };
                    slice.endpoints.push(endpoint);
                }
                unchanged.remove(&name);
                to_update.insert(name);
            }
            None => {
                let mut slice = new_slice(svc, ports.to_vec(), address_type, CONTROLLER_NAME);
                while slice.endpoints.len() < max_endpoints {
                    let Some(endpoint) = pop(&mut desired) else { break };
                    slice.endpoints.push(endpoint);
                }
                create.push(slice);
            }
        }
    }

    let update = to_update.iter().map(|n| by_name[n].clone()).collect();
    let delete = to_delete.iter().map(|n| by_name[n].clone()).collect();
    (create, update, delete)
}

/// Topology hints: with `trafficDistribution: PreferClose` (and no topology-aware-hints
/// annotation) every ready endpoint with a zone gets a hint for its zone, and unchanged slices
/// with wrong hints are rewritten; otherwise slices being written lose their hints (upstream's
/// `trafficdist.ReconcileHints` / `RemoveHintsFromSlices`).
fn apply_hints(svc: &Service, existing: &[Arc<EndpointSlice>], plan: &mut Plan) {
    let annotations = svc.metadata.annotations.as_ref();
    let annotation = annotations
        .and_then(|a| a.get("service.kubernetes.io/topology-aware-hints"))
        .or_else(|| annotations.and_then(|a| a.get("service.kubernetes.io/topology-mode")));
    let hints_annotation = annotation.is_some_and(|v| v == "Auto" || v == "auto");
    let prefer_close =
        svc.spec.as_ref().and_then(|s| s.traffic_distribution.as_deref()) == Some("PreferClose");
    if !prefer_close || hints_annotation {
        for slice in plan.create.iter_mut().chain(plan.update.iter_mut()) {
            for endpoint in &mut slice.endpoints {
                endpoint.hints = None;
            }
        }
        return;
    }
    let written: BTreeSet<Option<String>> = plan
        .update
        .iter()
        .chain(plan.delete.iter())
        .map(|s| s.metadata.name.clone())
        .collect();
    for slice in existing {
        if !written.contains(&slice.metadata.name) && slice.endpoints.iter().any(|e| zone_hint(e) != e.hints)
        {
            plan.update.push((**slice).clone());
        }
    }
    for slice in plan.create.iter_mut().chain(plan.update.iter_mut()) {
        for endpoint in &mut slice.endpoints {
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true);
            if ready {
                endpoint.hints = zone_hint(endpoint);
            }
        }
    }
}

/// The hint a ready endpoint should carry under PreferClose (none without a zone).
fn zone_hint(endpoint: &Endpoint) -> Option<EndpointHints> {
    let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(true);
    if !ready {
        return endpoint.hints.clone();
    }
    endpoint.zone.as_ref().map(|zone| EndpointHints {
        for_zones: Some(vec![ForZone { name: zone.clone() }]),
        for_nodes: None,
    })
}

/// Upstream's `finalize`: creates turn into updates of slices that would be deleted (same
/// address type, owned by the service), so churn is an update rather than a delete and a
/// create. Creating is skipped for a service being deleted.
pub fn recycle_deletions(svc: &Service, plan: &mut Plan) {
    let mut i = 0;
    while i < plan.delete.len() && !plan.create.is_empty() {
        let old = &plan.delete[i];
        let new = plan.create.last().expect("a slice to create");
        if old.address_type == new.address_type && owned_by(old, svc) {
            let old = plan.delete.remove(i);
            let mut new = plan.create.pop().expect("a slice to create");
            new.metadata.name = old.metadata.name;
            new.metadata.resource_version = old.metadata.resource_version;
            plan.update.push(new);
        } else {
            i += 1;
        }
    }
    if svc.metadata.deletion_timestamp.is_some() {
        plan.create.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        let mut base = json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid",
            "labels": {"app": "web", "tier": "front"}},
            "spec": {"clusterIP": "10.43.0.10", "ipFamilies": ["IPv4"], "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}});
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    fn pod(name: &str, ip: &str, port: i32, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            }))
            .unwrap(),
        )
    }

    fn zone(node: &str) -> Option<Option<String>> {
        (node == "node-a").then(|| Some("zone-1".to_owned()))
    }

    /// Applies a plan as the API server would: names for new slices, updates in place.
    fn apply(existing: &mut Vec<Arc<EndpointSlice>>, plan: Plan, next: &mut u32) {
        for d in &plan.delete {
            existing.retain(|s| s.metadata.name != d.metadata.name);
        }
        for u in plan.update {
            let i = existing
                .iter()
                .position(|s| s.metadata.name == u.metadata.name)
                .unwrap();
            existing[i] = Arc::new(u);
        }
        for mut c in plan.create {
            *next += 1;
            c.metadata.name = Some(format!("web-{next}"));
            existing.push(Arc::new(c));
        }
    }

    fn sync(
        svc: &Service,
        pods: &[Arc<Pod>],
        existing: &mut Vec<Arc<EndpointSlice>>,
        next: &mut u32,
        max: usize,
    ) -> (usize, usize, usize) {
        let mut plan = reconcile(svc, pods, existing, &zone, max);
        recycle_deletions(svc, &mut plan);
        let counts = (plan.create.len(), plan.update.len(), plan.delete.len());
        apply(existing, plan, next);
        counts
    }

    #[test]
    fn endpoints_carry_conditions_topology_and_target() {
        let svc = service(json!({}));
        let mut existing = Vec::new();
        let mut next = 0;
        sync(
            &svc,
            &[
                pod("a", "10.42.0.5", 8080, true),
                pod("b", "10.42.0.6", 8080, false),
            ],
            &mut existing,
            &mut next,
            100,
        );
        assert_eq!(existing.len(), 1);
        let slice = serde_json::to_value(&*existing[0]).unwrap();
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"app": "web", "tier": "front",
            "kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
        );
        assert_eq!(slice["metadata"]["ownerReferences"][0]["uid"], "svc-uid");
        assert_eq!(
            slice["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["endpoints"][0],
            json!({"addresses": ["10.42.0.5"],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": "node-a", "zone": "zone-1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}})
        );
        assert_eq!(
            slice["endpoints"][1]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        // A second sync changes nothing.
        assert_eq!(
            sync(
                &svc,
                &[
                    pod("a", "10.42.0.5", 8080, true),
                    pod("b", "10.42.0.6", 8080, false)
                ],
                &mut existing,
                &mut next,
                100
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn named_ports_with_different_numbers_get_different_slices() {
        let svc = service(json!({}));
        let (mut existing, mut next) = (Vec::new(), 0);
        sync(
            &svc,
            &[
                pod("a", "10.42.0.5", 8080, true),
                pod("b", "10.42.0.6", 9090, true),
            ],
            &mut existing,
            &mut next,
            100,
        );
        let mut ports: Vec<i32> = existing
            .iter()
            .map(|s| s.ports.as_ref().unwrap()[0].port.unwrap())
            .collect();
        ports.sort();
        assert_eq!(ports, [8080, 9090]);
        assert!(existing.iter().all(|s| s.endpoints.len() == 1));
    }

    #[test]
    fn packing_fills_slices_to_the_maximum_and_reuses_them() {
        let svc = service(json!({}));
        let (mut existing, mut next) = (Vec::new(), 0);
        let pods: Vec<_> = (0..250)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    &format!("10.42.{}.{}", i / 200, i % 200 + 1),
                    8080,
                    true,
                )
            })
            .collect();
        assert_eq!(sync(&svc, &pods, &mut existing, &mut next, 100), (3, 0, 0));
        let mut sizes: Vec<usize> = existing.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        assert_eq!(sizes, [50, 100, 100]);
        // Ten pods fewer: only the slices that held them change, nothing is created.
        let (c, u, d) = sync(&svc, &pods[10..], &mut existing, &mut next, 100);
        assert_eq!((c, d), (0, 0));
        assert!(u >= 1);
        assert_eq!(existing.iter().map(|s| s.endpoints.len()).sum::<usize>(), 240);
        // Five new pods go into one existing slice rather than a new one.
        let mut more = pods[10..].to_vec();
        more.extend((0..5).map(|i| pod(&format!("n{i}"), &format!("10.43.0.{}", i + 1), 8080, true)));
        let (c, _, d) = sync(&svc, &more, &mut existing, &mut next, 100);
        assert_eq!((c, d), (0, 0));
        assert_eq!(existing.len(), 3);
        assert!(existing.iter().all(|s| s.endpoints.len() <= 100));
    }

    #[test]
    fn no_endpoints_leaves_one_placeholder() {
        let svc = service(json!({}));
        let (mut existing, mut next) = (Vec::new(), 0);
        assert_eq!(sync(&svc, &[], &mut existing, &mut next, 100), (1, 0, 0));
        assert!(existing[0].endpoints.is_empty());
        assert_eq!(existing[0].ports.as_deref(), Some(&[][..]));
        assert_eq!(sync(&svc, &[], &mut existing, &mut next, 100), (0, 0, 0));
        // Pods come: the placeholder is recycled as an update, not deleted and recreated.
        assert_eq!(
            sync(
                &svc,
                &[pod("a", "10.42.0.5", 8080, true)],
                &mut existing,
                &mut next,
                100
            ),
            (0, 1, 0)
        );
        assert_eq!(existing.len(), 1);
        // They go: back to the placeholder, again by an update.
        assert_eq!(sync(&svc, &[], &mut existing, &mut next, 100), (0, 1, 0));
        assert!(existing[0].endpoints.is_empty());
    }

    #[test]
    fn headless_label_publish_not_ready_and_terminating() {
        let svc = service(json!({"spec": {"clusterIP": "None", "publishNotReadyAddresses": true}}));
        let (mut existing, mut next) = (Vec::new(), 0);
        let mut terminating = (*pod("t", "10.42.0.7", 8080, true)).clone();
        terminating.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        sync(
            &svc,
            &[pod("a", "10.42.0.5", 8080, false), Arc::new(terminating)],
            &mut existing,
            &mut next,
            100,
        );
        let labels = existing[0].metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get(HEADLESS_LABEL).map(String::as_str), Some(""));
        let conditions: Vec<_> = existing[0]
            .endpoints
            .iter()
            .map(|e| e.conditions.clone().unwrap())
            .collect();
        assert!(conditions.iter().all(|c| c.ready == Some(true)));
        let t = existing[0]
            .endpoints
            .iter()
            .find(|e| e.addresses == ["10.42.0.7"])
            .unwrap();
        assert_eq!(t.conditions.as_ref().unwrap().terminating, Some(true));
        assert_eq!(t.conditions.as_ref().unwrap().serving, Some(true));
    }

    #[test]
    fn pods_on_unknown_nodes_wait() {
        let svc = service(json!({}));
        let mut p = (*pod("a", "10.42.0.5", 8080, true)).clone();
        p.spec.as_mut().unwrap().node_name = Some("gone".to_owned());
        let plan = reconcile(&svc, &[Arc::new(p)], &[], &zone, 100);
        assert_eq!(
            plan.pods_without_node,
            ["skipping Pod a for Service default/web: Node gone Not Found"]
        );
    }

    #[test]
    fn prefer_close_sets_zone_hints() {
        let svc = service(json!({"spec": {"trafficDistribution": "PreferClose"}}));
        let (mut existing, mut next) = (Vec::new(), 0);
        sync(
            &svc,
            &[pod("a", "10.42.0.5", 8080, true)],
            &mut existing,
            &mut next,
            100,
        );
        let hints = existing[0].endpoints[0].hints.clone().unwrap();
        assert_eq!(hints.for_zones.unwrap()[0].name, "zone-1");
        assert_eq!(
            sync(
                &svc,
                &[pod("a", "10.42.0.5", 8080, true)],
                &mut existing,
                &mut next,
                100
            ),
            (0, 0, 0)
        );
    }
}
