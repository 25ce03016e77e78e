//! The pure model: Services + EndpointSlices + [`Config`] → one [`ServicePort`] per
//! (Service, port, IP family) with its endpoints already categorised the way kube-proxy's
//! `CategorizeEndpoints` does. Backends only translate this into rules; every Kubernetes
//! decision (which endpoints, which addresses, which policy) is made here, without I/O.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use cni::IpNet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::Config;

/// The label an EndpointSlice names its Service with.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// sessionAffinityConfig.clientIP.timeoutSeconds when unset (upstream's default: 3 hours).
const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Lower case, as nft, iptables and conntrack spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// `namespace/name:port` plus the protocol: what kube-proxy keys a service port by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    pub namespace: String,
    pub name: String,
    pub port: String,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
    /// On this node (`nodeName` == [`Config::node_name`]).
    pub local: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(ip) => write!(f, "{ip}:{}", self.port),
            IpAddr::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// One port of one Service in one IP family, with its endpoints categorised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: ServicePortName,
    pub cluster_ip: IpAddr,
    pub port: u16,
    pub node_port: Option<u16>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress` IPs (not `ipMode: Proxy`) and, servicelb-style, this
    /// node's IPs for a LoadBalancer Service.
    pub load_balancer_ips: Vec<IpAddr>,
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// sessionAffinity ClientIP: the timeout in seconds.
    pub affinity_timeout: Option<u32>,
    pub internal_policy_local: bool,
    pub external_policy_local: bool,
    /// Endpoints for Cluster traffic policy (ready ones, else serving-terminating ones).
    pub cluster_endpoints: Vec<Endpoint>,
    /// Endpoints on this node for Local traffic policy (same fallback).
    pub local_endpoints: Vec<Endpoint>,
    /// Some usable endpoint exists anywhere in the cluster.
    pub has_endpoints: bool,
}

impl ServicePort {
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.load_balancer_ips.is_empty()
    }

    /// Even with externalTrafficPolicy Local, external traffic from pods and the node itself
    /// is short-circuited to the cluster-wide endpoints.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.externally_accessible() && self.external_policy_local)
    }

    /// ClusterIP traffic has somewhere to go.
    pub fn has_internal_endpoints(&self) -> bool {
        self.has_endpoints && (!self.internal_policy_local || !self.local_endpoints.is_empty())
    }

    /// NodePort / LoadBalancer / externalIP traffic from outside has somewhere to go.
    pub fn has_external_endpoints(&self) -> bool {
        self.has_endpoints && (!self.external_policy_local || !self.local_endpoints.is_empty())
    }

    /// Every endpoint some chain of this service may DNAT to (cluster ∪ local).
    pub fn reachable_endpoints(&self) -> Vec<&Endpoint> {
        let mut all: BTreeSet<&Endpoint> = BTreeSet::new();
        if self.uses_cluster_endpoints() {
            all.extend(self.cluster_endpoints.iter());
        }
        if self.uses_local_endpoints() {
            all.extend(self.local_endpoints.iter());
        }
        all.into_iter().collect()
    }

    /// Every destination IP this port is reached at besides NodePorts.
    pub fn external_destinations(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.external_ips
            .iter()
            .chain(self.load_balancer_ips.iter())
            .copied()
    }
}

/// The desired state for one IP family, keyed by service port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyModel {
    pub ports: BTreeMap<ServicePortName, ServicePort>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub v4: FamilyModel,
    pub v6: FamilyModel,
}

impl Model {
    pub fn family(&self, family: Family) -> &FamilyModel {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn family_mut(&mut self, family: Family) -> &mut FamilyModel {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }
}

/// One endpoint as a slice states it, before categorisation.
#[derive(Clone, Debug)]
struct SliceEndpoint {
    endpoint: Endpoint,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// Builds the model. Services kube-proxy skips are skipped: ExternalName, headless (no
/// cluster IP), and ports whose protocol is unknown.
pub fn build<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
    services: &[S],
    slices: &[E],
    config: &Config,
) -> Model {
    let endpoints = collect_endpoints(slices, config);
    let mut model = Model::default();
    for svc in services {
        let svc: &Service = svc.borrow();
        let (Some(spec), Some(namespace), Some(name)) = (
            svc.spec.as_ref(),
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ips: Vec<IpAddr> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|ip| ip.parse().ok()).collect(),
            _ => spec.cluster_ip.iter().filter_map(|ip| ip.parse().ok()).collect(),
        };
        let svc_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        let is_lb = svc_type == "LoadBalancer";
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let ingress_ips: Vec<IpAddr> = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ingress| {
                ingress
                    .iter()
                    .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
                    .filter_map(|i| i.ip.as_deref()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let external_ips: Vec<IpAddr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let source_ranges: Vec<IpNet> = spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|r| r.trim().parse::<IpNet>().ok())
            .map(|r| r.network())
            .collect();
        let external_policy_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let internal_policy_local = spec.internal_traffic_policy.as_deref() == Some("Local");

        for cluster_ip in cluster_ips {
            let family = Family::of(cluster_ip);
            let same_family = |ip: &IpAddr| Family::of(*ip) == family;
            for port in spec.ports.iter().flatten() {
                let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                    continue;
                };
                let Ok(port_number) = u16::try_from(port.port) else {
                    continue;
                };
                let name = ServicePortName {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    port: port.name.clone().unwrap_or_default(),
                    protocol,
                };
                let node_port = match svc_type {
                    "NodePort" | "LoadBalancer" => port
                        .node_port
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0),
                    _ => None,
                };
                let mut load_balancer_ips: Vec<IpAddr> = Vec::new();
                if is_lb {
                    load_balancer_ips.extend(ingress_ips.iter().copied().filter(same_family));
                    load_balancer_ips.extend(config.node_ips.iter().copied().filter(same_family));
                    let mut seen = BTreeSet::new();
                    load_balancer_ips.retain(|ip| seen.insert(*ip));
                }
                let mut sp = ServicePort {
                    cluster_ip,
                    port: port_number,
                    node_port,
                    external_ips: external_ips.iter().copied().filter(same_family).collect(),
                    load_balancer_source_ranges: if is_lb {
                        source_ranges
                            .iter()
                            .copied()
                            .filter(|r| Family::of(r.addr) == family)
                            .collect()
                    } else {
                        Vec::new()
                    },
                    load_balancer_ips,
                    affinity_timeout,
                    internal_policy_local,
                    external_policy_local: false,
                    cluster_endpoints: Vec::new(),
                    local_endpoints: Vec::new(),
                    has_endpoints: false,
                    name,
                };
                sp.external_policy_local = external_policy_local && sp.externally_accessible();
                let eps = endpoints
                    .get(&(family, sp.name.clone()))
                    .map(|m| m.values().cloned().collect::<Vec<_>>())
                    .unwrap_or_default();
                categorize(&mut sp, &eps);
                model.family_mut(family).ports.insert(sp.name.clone(), sp);
            }
        }
    }
    model
}

type EndpointsByPort = BTreeMap<(Family, ServicePortName), BTreeMap<(IpAddr, u16), SliceEndpoint>>;

/// Endpoints per service port from all slices (first slice by name wins for a duplicate
/// address, as kube-proxy's endpoint slice cache merges them).
fn collect_endpoints<E: Borrow<EndpointSlice>>(slices: &[E], config: &Config) -> EndpointsByPort {
    let mut sorted: Vec<&EndpointSlice> = slices.iter().map(|s| s.borrow()).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out: EndpointsByPort = BTreeMap::new();
    for slice in sorted {
        let family = match slice.address_type.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            _ => continue,
        };
        let (Some(namespace), Some(service)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        for port in slice.ports.iter().flatten() {
            let (Some(number), Some(protocol)) = (
                port.port.and_then(|p| u16::try_from(p).ok()),
                Protocol::parse(port.protocol.as_deref()),
            ) else {
                continue;
            };
            let key = ServicePortName {
                namespace: namespace.to_owned(),
                name: service.clone(),
                port: port.name.clone().unwrap_or_default(),
                protocol,
            };
            let entry = out.entry((family, key)).or_default();
            for ep in &slice.endpoints {
                // kube-proxy uses an endpoint's first address only.
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                if Family::of(ip) != family {
                    continue;
                }
                let cond = ep.conditions.as_ref();
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let serving = cond.and_then(|c| c.serving).unwrap_or(true);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                let local = ep.node_name.as_deref() == Some(config.node_name.as_str());
                entry.entry((ip, number)).or_insert(SliceEndpoint {
                    endpoint: Endpoint {
                        ip,
                        port: number,
                        local,
                    },
                    ready,
                    serving,
                    terminating,
                });
            }
        }
    }
    out
}

/// kube-proxy's `CategorizeEndpoints` (without topology hints): ready endpoints, falling back
/// to serving-and-terminating ones when none is ready, separately for cluster and local.
fn categorize(sp: &mut ServicePort, eps: &[SliceEndpoint]) {
    let pick = |filter: &dyn Fn(&SliceEndpoint) -> bool| -> Vec<Endpoint> {
        let ready: Vec<Endpoint> = eps
            .iter()
            .filter(|e| e.ready && filter(e))
            .map(|e| e.endpoint.clone())
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        eps.iter()
            .filter(|e| e.serving && e.terminating && filter(e))
            .map(|e| e.endpoint.clone())
            .collect()
    };
    sp.has_endpoints = eps.iter().any(|e| e.ready || (e.serving && e.terminating));
    if sp.uses_cluster_endpoints() {
        sp.cluster_endpoints = pick(&|_| true);
    }
    if sp.uses_local_endpoints() {
        sp.local_endpoints = pick(&|e| e.endpoint.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ready, service, slice};
    use serde_json::json;

    fn config() -> Config {
        let mut c = Config::new("node-a");
        c.node_ips = vec!["192.168.1.2".parse().unwrap()];
        c
    }

    fn port<'a>(m: &'a Model, svc: &str) -> &'a ServicePort {
        m.v4.ports.values().find(|p| p.name.name == svc).unwrap()
    }

    #[test]
    fn ready_endpoints_are_used_and_terminating_ones_are_the_fallback() {
        let svc = service("web", "10.96.0.10", json!({}));
        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[
                ready("10.42.0.5", "node-a"),
                ("10.42.0.6", "node-b", false, true, true),
                ("10.42.0.7", "node-b", false, false, false),
            ],
        );
        let m = build(std::slice::from_ref(&svc), &[s], &config());
        let p = port(&m, "web");
        assert_eq!(
            p.cluster_endpoints
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>(),
            ["10.42.0.5:8080"]
        );
        assert!(p.has_endpoints);
        assert_eq!(p.port, 80);

        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[("10.42.0.6", "node-b", false, true, true)],
        );
        let m = build(std::slice::from_ref(&svc), &[s], &config());
        assert_eq!(
            port(&m, "web").cluster_endpoints.len(),
            1,
            "serving-terminating fallback"
        );

        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[("10.42.0.7", "node-b", false, false, false)],
        );
        let m = build(&[svc], &[s], &config());
        assert!(!port(&m, "web").has_endpoints);
        assert!(port(&m, "web").cluster_endpoints.is_empty());
    }

    #[test]
    fn slice_port_names_and_protocols_select_the_service_port() {
        let svc = service(
            "dns",
            "10.96.0.10",
            json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
        );
        let udp = slice(
            "dns",
            "dns-1",
            ("dns", 5353, "UDP"),
            &[ready("10.42.0.5", "node-a")],
        );
        let m = build(&[svc], &[udp], &config());
        assert_eq!(m.v4.ports.len(), 2);
        let u =
            m.v4.ports
                .values()
                .find(|p| p.name.protocol == Protocol::Udp)
                .unwrap();
        let t =
            m.v4.ports
                .values()
                .find(|p| p.name.protocol == Protocol::Tcp)
                .unwrap();
        assert_eq!(u.cluster_endpoints.len(), 1);
        assert!(!t.has_endpoints);
    }

    #[test]
    fn duplicate_addresses_across_slices_count_once() {
        let svc = service("web", "10.96.0.10", json!({}));
        let a = slice(
            "web",
            "web-a",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a")],
        );
        let b = slice(
            "web",
            "web-b",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a"), ready("10.42.0.6", "node-b")],
        );
        let m = build(&[svc], &[a, b], &config());
        assert_eq!(port(&m, "web").cluster_endpoints.len(), 2);
    }

    #[test]
    fn traffic_policies_local() {
        let svc = service(
            "web",
            "10.96.0.10",
            json!({"type": "NodePort", "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
        );
        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-b"), ready("10.42.0.6", "node-a")],
        );
        let m = build(std::slice::from_ref(&svc), &[s], &config());
        let p = port(&m, "web");
        assert!(p.internal_policy_local && p.external_policy_local);
        assert!(
            p.uses_cluster_endpoints(),
            "for short-circuited pod and node traffic"
        );
        assert_eq!(
            p.local_endpoints
                .iter()
                .map(|e| e.ip.to_string())
                .collect::<Vec<_>>(),
            ["10.42.0.6"]
        );
        assert!(p.has_internal_endpoints() && p.has_external_endpoints());

        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-b")],
        );
        let m = build(&[svc], &[s], &config());
        let p = port(&m, "web");
        assert!(p.has_endpoints && !p.has_internal_endpoints() && !p.has_external_endpoints());
    }

    #[test]
    fn load_balancer_ips_are_ingress_and_node_ips() {
        let mut svc = service(
            "lb",
            "10.96.0.11",
            json!({"type": "LoadBalancer", "externalIPs": ["203.0.113.9", "fd00::9"],
                   "ports": [{"name": "http", "port": 80, "nodePort": 30081, "protocol": "TCP"}]}),
        );
        svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [
            {"ip": "192.168.1.3"}, {"ip": "192.168.1.2"}, {"ip": "198.51.100.1", "ipMode": "Proxy"}, {"hostname": "lb.example"}
        ]}}))
        .unwrap();
        let m = build(&[svc], &[] as &[EndpointSlice], &config());
        let p = port(&m, "lb");
        let lb: Vec<String> = p.load_balancer_ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(lb, ["192.168.1.3", "192.168.1.2"]);
        assert_eq!(p.external_ips, vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.node_port, Some(30081));
    }

    #[test]
    fn headless_external_name_and_affinity() {
        let headless = service("h", "None", json!({"clusterIPs": ["None"]}));
        let ext = service(
            "e",
            "",
            json!({"type": "ExternalName", "externalName": "example.com", "clusterIPs": []}),
        );
        let sticky = service("s", "10.96.0.12", json!({"sessionAffinity": "ClientIP"}));
        let sticky2 = service(
            "s2",
            "10.96.0.13",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
        );
        let m = build(
            &[headless, ext, sticky, sticky2],
            &[] as &[EndpointSlice],
            &config(),
        );
        assert_eq!(m.v4.ports.len(), 2);
        assert_eq!(port(&m, "s").affinity_timeout, Some(10800));
        assert_eq!(port(&m, "s2").affinity_timeout, Some(60));
    }

    #[test]
    fn dual_stack_services_get_a_port_per_family() {
        let svc = service(
            "d",
            "10.96.0.14",
            json!({"clusterIPs": ["10.96.0.14", "fd00:96::14"]}),
        );
        let v6 = slice(
            "d",
            "d-v6",
            ("http", 8080, "TCP"),
            &[ready("fd00:42::5", "node-a")],
        );
        let m = build(&[svc], &[v6], &config());
        assert_eq!(m.v4.ports.len(), 1);
        assert_eq!(m.v6.ports.len(), 1);
        assert!(!m.v4.ports.values().next().unwrap().has_endpoints);
        assert!(m.v6.ports.values().next().unwrap().has_endpoints);
    }
}
