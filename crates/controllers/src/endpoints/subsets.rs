//! Endpoints subsets without I/O: one subset per pod and port as upstream's controller builds
//! them, repacked into the canonical form (upstream's `endpoints.RepackSubsets`: addresses
//! that offer the same ports share a subset; an address not ready on any port is not ready),
//! and truncation to 1000 addresses.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};

use crate::pod_endpoints as util;

/// Upstream's cap on addresses in one Endpoints object.
pub const MAX_CAPACITY: usize = 1000;

/// The address of a pod for the service's (first) IP family, as upstream's
/// `podToEndpointAddressForService`; `None` when the pod has no IP of that family.
pub fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let status = pod.status.as_ref();
    let ipv6 = match spec.and_then(|s| s.ip_families.as_ref()).and_then(|f| f.first()) {
        Some(family) => family == "IPv6",
        // Before ipFamilies: the cluster IP's family, or the pod IP's when headless.
        None if util::is_service_ip_set(svc) => spec
            .and_then(|s| s.cluster_ip.as_deref())
            .is_some_and(|ip| ip.contains(':')),
        None => status
            .and_then(|s| s.pod_ip.as_deref())
            .is_some_and(|ip| ip.contains(':')),
    };
    let ip = util::pod_ips(pod)
        .into_iter()
        .find(|ip| ip.contains(':') == ipv6)?;
    Some(EndpointAddress {
        ip,
        node_name: Some(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default(),
        ),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_owned()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        hostname: util::should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
    })
}

/// The service's subsets from its pods, repacked.
pub fn subsets_for(svc: &Service, pods: &[std::sync::Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish_not_ready = util::publish_not_ready(svc);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut subsets = Vec::new();
    for pod in pods {
        if !util::should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(address) = pod_address(svc, pod) else {
            continue;
        };
        let ready = publish_not_ready || util::is_pod_ready(pod);
        let subset = |ports: Option<Vec<EndpointPort>>| {
            let (addresses, not_ready) = if ready {
                (Some(vec![address.clone()]), None)
            } else {
                (None, Some(vec![address.clone()]))
            };
            EndpointSubset {
                addresses,
                not_ready_addresses: not_ready,
                ports,
            }
        };
        if ports.is_empty() {
            // Headless services may have no ports (such subsets do not survive the repacking,
            // exactly as upstream's).
            if !util::is_service_ip_set(svc) {
                subsets.push(subset(None));
            }
            continue;
        }
        for sp in &ports {
            let Some(number) = util::find_port(pod, sp) else {
                continue;
            };
            subsets.push(subset(Some(vec![EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".to_owned())),
                app_protocol: sp.app_protocol.clone(),
            }])));
        }
    }
    repack(&subsets)
}

/// Identity of an address in repacking: its IP and target uid.
type AddressKey = (String, String);

fn address_key(a: &EndpointAddress) -> AddressKey {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|t| t.uid.clone())
            .unwrap_or_default(),
    )
}

/// A port as a map key.
type PortKey = (Option<String>, i32, Option<String>, Option<String>);

fn port_key(p: &EndpointPort) -> PortKey {
    (p.name.clone(), p.port, p.protocol.clone(), p.app_protocol.clone())
}

/// Upstream's `RepackSubsets`: expand to (port, address, ready), then group the ports by the
/// set of addresses offering them, and sort (addresses by IP then uid; ports and subsets in a
/// fixed order).
pub fn repack(subsets: &[EndpointSubset]) -> Vec<EndpointSubset> {
    let mut addresses: BTreeMap<AddressKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, EndpointPort> = BTreeMap::new();
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddressKey, bool>> = BTreeMap::new();
    for subset in subsets {
        for port in subset.ports.iter().flatten() {
            let pk = port_key(port);
            ports.entry(pk.clone()).or_insert_with(|| port.clone());
            let set = by_port.entry(pk).or_default();
            let ready = subset.addresses.iter().flatten().map(|a| (a, true));
            let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
            for (address, is_ready) in ready.chain(not_ready) {
                let ak = address_key(address);
                addresses.entry(ak.clone()).or_insert_with(|| address.clone());
                // Not ready on any subset wins over ready.
                let entry = set.entry(ak).or_insert(is_ready);
                *entry = *entry && is_ready;
            }
        }
    }
    let mut grouped: BTreeMap<Vec<(AddressKey, bool)>, Vec<PortKey>> = BTreeMap::new();
    for (pk, set) in by_port {
        grouped.entry(set.into_iter().collect()).or_default().push(pk);
    }
    let mut result: Vec<EndpointSubset> = grouped
        .into_iter()
        .map(|(set, port_keys)| {
            let pick = |want: bool| -> Option<Vec<EndpointAddress>> {
                let list: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, ready)| *ready == want)
                    .map(|(k, _)| addresses[k].clone())
                    .collect();
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: Some(port_keys.iter().map(|k| ports[k].clone()).collect()),
            }
        })
        .collect();
    result.sort_by_key(|s| serde_json::to_string(s).unwrap_or_default());
    result
}

/// Upstream's `truncateEndpoints`: over [`MAX_CAPACITY`] addresses, keep ready ones first,
/// sharing the room among subsets in proportion to their size. Returns whether it truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let count = |s: &EndpointSubset, ready: bool| {
        if ready {
            s.addresses.as_ref().map_or(0, Vec::len)
        } else {
            s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        }
    };
    let total_ready: usize = subsets.iter().map(|s| count(s, true)).sum();
    let total_not_ready: usize = subsets.iter().map(|s| count(s, false)).sum();
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut room = max;
    for subset in subsets.iter_mut() {
        let n = count(subset, truncate_ready);
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let keep = share.min(room);
        if truncate_ready {
            if let Some(a) = subset.addresses.as_mut() {
                a.truncate(keep);
            }
            subset.not_ready_addresses = None;
            room -= subset.addresses.as_ref().map_or(0, Vec::len);
        } else {
            if let Some(a) = subset.not_ready_addresses.as_mut() {
                a.truncate(keep);
            }
            room -= subset.not_ready_addresses.as_ref().map_or(0, Vec::len);
        }
    }
    true
}

/// Subsets in a form where equal content compares equal: no empty lists, no target
/// resourceVersions (pod updates that do not matter must not rewrite the Endpoints).
pub fn normalized(subsets: Option<&Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    let addresses = |list: &Option<Vec<EndpointAddress>>| -> Option<Vec<EndpointAddress>> {
        let list: Vec<EndpointAddress> = list
            .iter()
            .flatten()
            .cloned()
            .map(|mut a| {
                if let Some(t) = a.target_ref.as_mut() {
                    t.resource_version = None;
                }
                a
            })
            .collect();
        (!list.is_empty()).then_some(list)
    };
    subsets
        .into_iter()
        .flatten()
        .map(|s| EndpointSubset {
            addresses: addresses(&s.addresses),
            not_ready_addresses: addresses(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()),
        })
        .collect()
}

/// Addresses in all subsets.
pub fn address_count(subsets: &[EndpointSubset]) -> usize {
    subsets
        .iter()
        .map(|s| {
            s.addresses.as_ref().map_or(0, Vec::len) + s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        })
        .sum()
}

/// The distinct IPs (for tests and messages).
pub fn ips(subsets: &[EndpointSubset]) -> BTreeSet<String> {
    subsets
        .iter()
        .flat_map(|s| {
            s.addresses
                .iter()
                .flatten()
                .chain(s.not_ready_addresses.iter().flatten())
        })
        .map(|a| a.ip.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subset(v: serde_json::Value) -> EndpointSubset {
        serde_json::from_value(v).unwrap()
    }

    fn addr(ip: &str, uid: &str) -> serde_json::Value {
        json!({"ip": ip, "targetRef": {"kind": "Pod", "uid": uid}})
    }

    #[test]
    fn repacking_groups_ports_by_address_set() {
        let input = vec![
            subset(
                json!({"addresses": [addr("10.0.0.2", "b")], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
            ),
            subset(
                json!({"addresses": [addr("10.0.0.1", "a")], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
            ),
            subset(
                json!({"addresses": [addr("10.0.0.1", "a")], "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}),
            ),
            subset(
                json!({"addresses": [addr("10.0.0.2", "b")], "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}),
            ),
            subset(
                json!({"notReadyAddresses": [addr("10.0.0.3", "c")], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}),
            ),
        ];
        let out = serde_json::to_value(repack(&input)).unwrap();
        assert_eq!(
            out,
            json!([
                {"addresses": [addr("10.0.0.1", "a"), addr("10.0.0.2", "b")],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}]},
                {"notReadyAddresses": [addr("10.0.0.3", "c")], "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
            ])
        );
    }

    #[test]
    fn not_ready_wins_and_portless_subsets_vanish() {
        let input = vec![
            subset(json!({"addresses": [addr("10.0.0.1", "a")], "ports": [{"port": 80}]})),
            subset(json!({"notReadyAddresses": [addr("10.0.0.1", "a")], "ports": [{"port": 80}]})),
            subset(json!({"addresses": [addr("10.0.0.9", "z")]})),
        ];
        let out = serde_json::to_value(repack(&input)).unwrap();
        assert_eq!(
            out,
            json!([{"notReadyAddresses": [addr("10.0.0.1", "a")], "ports": [{"port": 80}]}])
        );
    }

    #[test]
    fn truncation_prefers_ready_addresses_in_proportion() {
        let many = |n: usize, base: &str| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| addr(&format!("{base}.{}.{}", i / 250, i % 250), &format!("{base}{i}")))
                .collect()
        };
        let mut subsets = vec![
            subset(
                json!({"addresses": many(900, "10.1"), "notReadyAddresses": many(50, "10.3"), "ports": [{"port": 80}]}),
            ),
            subset(json!({"addresses": many(300, "10.2"), "ports": [{"port": 81}]})),
        ];
        assert!(truncate(&mut subsets));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 750);
        assert_eq!(subsets[1].addresses.as_ref().unwrap().len(), 250);
        assert!(subsets[0].not_ready_addresses.is_none());
        assert_eq!(address_count(&subsets), 1000);
        // Ready ones all fit: only not-ready addresses are cut.
        let mut subsets = vec![subset(
            json!({"addresses": many(990, "10.1"), "notReadyAddresses": many(20, "10.3"), "ports": [{"port": 80}]}),
        )];
        assert!(truncate(&mut subsets));
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 10);
        assert!(!truncate(&mut subsets));
    }
}
