//! The in-memory record index: what CoreDNS's `kubernetes` plugin keeps in its informer caches,
//! reduced to what answers need and keyed for the lookups queries make (a Service by namespace and
//! name, its EndpointSlices, an address back to its owners), so no query scans all Services.
//!
//! Names are stored as the API holds them; Kubernetes names are lowercase DNS labels, and queries
//! are lowercased before lookup, which makes matching case-insensitive as CoreDNS's `EqualFold`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label naming the Service an EndpointSlice belongs to.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// `(namespace, name)` of a Service or an EndpointSlice.
pub(crate) type Key = (String, String);

/// A port as a Service or an EndpointSlice declares it; `port` is -1 for an EndpointSlice without
/// ports (CoreDNS's sentinel: such endpoints still get A records, never SRV records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Port {
    pub name: String,
    pub protocol: String,
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ServiceKind {
    /// A virtual IP per family (`spec.clusterIPs`).
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`: names resolve to the ready endpoint addresses.
    Headless,
    /// `type: ExternalName`: a CNAME to `spec.externalName`.
    ExternalName(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceEntry {
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
}

/// One address of a ready endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointAddress {
    pub ip: IpAddr,
    /// CoreDNS's `endpointHostname`: `spec.hostname` when set, else the address with dashes
    /// (`10-42-0-5`, `fd00--5`), lowercased.
    pub hostname: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SliceEntry {
    /// The Service the slice belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    pub ports: Vec<Port>,
    pub addresses: Vec<EndpointAddress>,
}

/// Services, EndpointSlices and Namespaces as the watchers last saw them, with reverse indexes.
#[derive(Default, Debug)]
pub(crate) struct Index {
    namespaces: HashSet<String>,
    services: HashMap<Key, ServiceEntry>,
    slices: HashMap<Key, SliceEntry>,
    /// (namespace, service) → names of its slices.
    slices_by_service: HashMap<Key, BTreeSet<String>>,
    /// ClusterIP → the Services holding it (one, unless the API briefly reuses an address).
    services_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
    /// Endpoint address → the slices (namespace, slice name) listing it as ready.
    slices_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
    /// Unix seconds of the last change: the SOA serial, as CoreDNS's `Modified`.
    modified: u32,
}

impl Index {
    pub fn serial(&self) -> u32 {
        self.modified
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceEntry> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The slices of a Service, in name order (a stable answer order).
    pub fn slices_of(&self, namespace: &str, service: &str) -> impl Iterator<Item = &SliceEntry> {
        self.slices_by_service
            .get(&(namespace.to_owned(), service.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(move |slice| self.slices.get(&(namespace.to_owned(), slice.clone())))
    }

    /// The Services whose ClusterIPs include `ip`, in key order.
    pub fn services_with_ip(&self, ip: IpAddr) -> impl Iterator<Item = &Key> {
        self.services_by_ip.get(&ip).into_iter().flatten()
    }

    /// `(namespace, slice)` of the slices listing `ip` as a ready address, in key order.
    pub fn slices_with_ip(&self, ip: IpAddr) -> impl Iterator<Item = (&Key, &SliceEntry)> {
        self.slices_by_ip
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|key| Some((key, self.slices.get(key)?)))
    }

    fn touch(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        // Monotonic even if the clock steps back: secondaries compare serials.
        self.modified = now.max(self.modified.wrapping_add(1)).max(1);
    }

    // ---- Namespaces ----

    pub fn apply_namespace(&mut self, namespace: &Namespace) {
        if let Some(name) = &namespace.metadata.name
            && self.namespaces.insert(name.clone())
        {
            self.touch();
        }
    }

    pub fn delete_namespace(&mut self, namespace: &Namespace) {
        if let Some(name) = &namespace.metadata.name
            && self.namespaces.remove(name)
        {
            self.touch();
        }
    }

    pub fn replace_namespaces(&mut self, namespaces: &[Namespace]) {
        self.namespaces = namespaces
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        self.touch();
    }

    // ---- Services ----

    pub fn apply_service(&mut self, service: &Service) {
        let Some(key) = key_of(&service.metadata) else {
            return;
        };
        let entry = service_entry(service);
        if self.services.get(&key) == Some(&entry) {
            return;
        }
        self.remove_service(&key);
        for ip in cluster_ips(&entry) {
            self.services_by_ip.entry(*ip).or_default().insert(key.clone());
        }
        self.services.insert(key, entry);
        self.touch();
    }

    pub fn delete_service(&mut self, service: &Service) {
        if let Some(key) = key_of(&service.metadata)
            && self.remove_service(&key)
        {
            self.touch();
        }
    }

    pub fn replace_services(&mut self, services: &[Service]) {
        self.services.clear();
        self.services_by_ip.clear();
        for service in services {
            self.apply_service(service);
        }
        self.touch();
    }

    fn remove_service(&mut self, key: &Key) -> bool {
        let Some(old) = self.services.remove(key) else {
            return false;
        };
        for ip in cluster_ips(&old) {
            remove_from(&mut self.services_by_ip, *ip, key);
        }
        true
    }

    // ---- EndpointSlices ----

    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let Some(key) = key_of(&slice.metadata) else {
            return;
        };
        let entry = slice_entry(slice);
        if self.slices.get(&key) == entry.as_ref() {
            return;
        }
        self.remove_slice(&key);
        if let Some(entry) = entry {
            let owner = (key.0.clone(), entry.service.clone());
            self.slices_by_service
                .entry(owner)
                .or_default()
                .insert(key.1.clone());
            for address in &entry.addresses {
                self.slices_by_ip
                    .entry(address.ip)
                    .or_default()
                    .insert(key.clone());
            }
            self.slices.insert(key, entry);
        }
        self.touch();
    }

    pub fn delete_slice(&mut self, slice: &EndpointSlice) {
        if let Some(key) = key_of(&slice.metadata)
            && self.remove_slice(&key)
        {
            self.touch();
        }
    }

    pub fn replace_slices(&mut self, slices: &[EndpointSlice]) {
        self.slices.clear();
        self.slices_by_service.clear();
        self.slices_by_ip.clear();
        for slice in slices {
            self.apply_slice(slice);
        }
        self.touch();
    }

    fn remove_slice(&mut self, key: &Key) -> bool {
        let Some(old) = self.slices.remove(key) else {
            return false;
        };
        let owner = (key.0.clone(), old.service.clone());
        if let Some(names) = self.slices_by_service.get_mut(&owner) {
            names.remove(&key.1);
            if names.is_empty() {
                self.slices_by_service.remove(&owner);
            }
        }
        for address in &old.addresses {
            remove_from(&mut self.slices_by_ip, address.ip, key);
        }
        true
    }
}

fn remove_from(map: &mut HashMap<IpAddr, BTreeSet<Key>>, ip: IpAddr, key: &Key) {
    if let Some(keys) = map.get_mut(&ip) {
        keys.remove(key);
        if keys.is_empty() {
            map.remove(&ip);
        }
    }
}

fn cluster_ips(entry: &ServiceEntry) -> &[IpAddr] {
    match &entry.kind {
        ServiceKind::ClusterIp(ips) => ips,
        _ => &[],
    }
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// What CoreDNS's `object.ToService` keeps: the kind, the ClusterIPs, the ports.
pub(crate) fn service_entry(service: &Service) -> ServiceEntry {
    let spec = service.spec.clone().unwrap_or_default();
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.unwrap_or_default(),
            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
            port: p.port,
        })
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.unwrap_or_default())
    } else {
        let ips = match spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.into_iter().collect(),
        };
        if ips.first().map(String::as_str) == Some("None") {
            ServiceKind::Headless
        } else {
            ServiceKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
        }
    };
    ServiceEntry { kind, ports }
}

/// What CoreDNS's `EndpointSliceToEndpoints` keeps: the ports (a -1 sentinel when there are none)
/// and the addresses of ready endpoints (`ready` unset counts as ready). A slice without the
/// service-name label belongs to no Service and is skipped.
pub(crate) fn slice_entry(slice: &EndpointSlice) -> Option<SliceEntry> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let mut ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.clone().unwrap_or_default(),
            protocol: p.protocol.clone().unwrap_or_default(),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    if ports.is_empty() {
        ports.push(Port {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        });
    }
    let mut addresses = Vec::new();
    for endpoint in &slice.endpoints {
        let ready = endpoint.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        for address in &endpoint.addresses {
            // FQDN slices hold names, not addresses: nothing to answer with.
            let Ok(ip) = address.parse::<IpAddr>() else {
                continue;
            };
            let hostname = match &endpoint.hostname {
                Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
                _ => dashed(address),
            };
            addresses.push(EndpointAddress { ip, hostname });
        }
    }
    Some(SliceEntry {
        service,
        ports,
        addresses,
    })
}

/// An address as a DNS label: dots or colons become dashes, with a trailing `0` when an IPv6
/// address ends in `::` (a label cannot end with a dash).
pub(crate) fn dashed(address: &str) -> String {
    let mut label = address.replace(['.', ':'], "-").to_ascii_lowercase();
    if label.ends_with('-') {
        label.push('0');
    }
    label
}

/// Objects as the API serves them, for unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::SERVICE_NAME_LABEL;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(crate) fn service(ns: &str, name: &str, ips: &[&str], ports: &[(&str, i32)]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: ips.first().map(|s| s.to_string()),
                cluster_ips: Some(ips.iter().map(|s| s.to_string()).collect()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p)| ServicePort {
                            name: Some(n.to_string()),
                            port: *p,
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn slice(
        ns: &str,
        name: &str,
        service: &str,
        endpoints: &[(&str, Option<&str>, Option<bool>)],
        ports: &[(&str, i32)],
    ) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: endpoints
                .iter()
                .map(|(ip, hostname, ready)| Endpoint {
                    addresses: vec![ip.to_string()],
                    hostname: hostname.map(str::to_owned),
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| EndpointPort {
                        name: Some(n.to_string()),
                        port: Some(*p),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn dashed_addresses_are_labels() {
        assert_eq!(dashed("10.42.0.5"), "10-42-0-5");
        assert_eq!(dashed("fd00::5"), "fd00--5");
        assert_eq!(dashed("fd00::"), "fd00--0");
        assert_eq!(dashed("FD00::A"), "fd00--a");
    }

    #[test]
    fn service_kinds() {
        let s = service("ns", "a", &["10.43.0.10", "fd00::10"], &[("dns", 53)]);
        assert_eq!(
            service_entry(&s).kind,
            ServiceKind::ClusterIp(vec!["10.43.0.10".parse().unwrap(), "fd00::10".parse().unwrap()])
        );
        let h = service("ns", "h", &["None"], &[]);
        assert_eq!(service_entry(&h).kind, ServiceKind::Headless);
        let mut e = service("ns", "e", &[], &[]);
        let spec = e.spec.as_mut().unwrap();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some("example.org".into());
        assert_eq!(
            service_entry(&e).kind,
            ServiceKind::ExternalName("example.org".into())
        );
    }

    #[test]
    fn slices_keep_ready_addresses_and_a_port_sentinel() {
        let s = slice(
            "ns",
            "h-abc",
            "h",
            &[
                ("10.42.0.1", Some("web-0"), Some(true)),
                ("10.42.0.2", None, None),
                ("10.42.0.3", None, Some(false)),
            ],
            &[],
        );
        let entry = slice_entry(&s).unwrap();
        assert_eq!(entry.service, "h");
        assert_eq!(entry.ports.len(), 1);
        assert_eq!(entry.ports[0].port, -1);
        let hosts: Vec<_> = entry.addresses.iter().map(|a| a.hostname.as_str()).collect();
        assert_eq!(hosts, ["web-0", "10-42-0-2"]);

        let mut unlabelled = s.clone();
        unlabelled.metadata.labels = None;
        assert!(slice_entry(&unlabelled).is_none());
    }

    #[test]
    fn reverse_indexes_follow_updates_and_deletes() {
        let mut index = Index::default();
        let svc = service("ns", "a", &["10.43.0.7"], &[("http", 80)]);
        index.apply_service(&svc);
        let ip: IpAddr = "10.43.0.7".parse().unwrap();
        assert_eq!(index.services_with_ip(ip).count(), 1);
        let moved = service("ns", "a", &["10.43.0.8"], &[("http", 80)]);
        index.apply_service(&moved);
        assert_eq!(index.services_with_ip(ip).count(), 0);
        index.delete_service(&moved);
        assert!(index.service("ns", "a").is_none());
        assert!(index.services_by_ip.is_empty());

        let sl = slice("ns", "a-1", "a", &[("10.42.0.1", None, None)], &[("http", 8080)]);
        index.apply_slice(&sl);
        let pod: IpAddr = "10.42.0.1".parse().unwrap();
        assert_eq!(index.slices_with_ip(pod).count(), 1);
        assert_eq!(index.slices_of("ns", "a").count(), 1);
        let not_ready = slice("ns", "a-1", "a", &[("10.42.0.1", None, Some(false))], &[]);
        index.apply_slice(&not_ready);
        assert_eq!(index.slices_with_ip(pod).count(), 0);
        index.delete_slice(&not_ready);
        assert_eq!(index.slices_of("ns", "a").count(), 0);
        assert!(index.slices_by_service.is_empty());
    }

    #[test]
    fn relist_replaces_everything() {
        let mut index = Index::default();
        index.apply_service(&service("ns", "gone", &["10.43.0.1"], &[]));
        index.replace_services(&[service("ns", "kept", &["10.43.0.2"], &[])]);
        assert!(index.service("ns", "gone").is_none());
        assert!(index.service("ns", "kept").is_some());
        let serial = index.serial();
        index.apply_service(&service("ns", "kept", &["10.43.0.2"], &[]));
        assert_eq!(index.serial(), serial, "an unchanged object is no change");
    }
}
