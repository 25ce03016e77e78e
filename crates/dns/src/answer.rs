//! The answer logic: CoreDNS's `kubernetes` plugin (`ServeDNS`, `Records`, `findServices`,
//! `findPods`, `Reverse`, `nsAddrs` and the generic `plugin.A`/`SRV`/`PTR`/`NS`/`SOA` helpers) as
//! k3s configures it — `kubernetes <domain> in-addr.arpa ip6.arpa { pods insecure; fallthrough
//! in-addr.arpa ip6.arpa }` — over the [`Index`]. Pure: no I/O, so every case is a unit test.
//!
//! The quirks are CoreDNS's and kept on purpose (clients and tests compare against it): a SOA
//! query below the apex is NODATA whatever the name, TXT for an existing name without records
//! is NXDOMAIN, PTR answers any ready endpoint address (dashed name when it has no hostname).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::index::{Index, ServiceKind};

/// The schema version the TXT record `dns-version.<zone>` announces (kubernetes/dns spec).
const DNS_SCHEMA_VERSION: &str = "1.1.0";
/// How long CNAME chains inside the zone are followed (CoreDNS's `maxCnameChainLength`).
const MAX_CNAME_CHAIN: usize = 10;
const REVERSE_ZONES: [&str; 2] = ["in-addr.arpa", "ip6.arpa"];

/// What answers depend on besides the index.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The cluster domain, lowercase, without a trailing dot (`cluster.local`).
    pub domain: String,
    pub ttl: u32,
    /// The addresses this server listens on: the NS records when they are no Service's endpoints.
    pub local_ips: Vec<IpAddr>,
}

/// What to do with a query.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// A complete answer from the cluster zones.
    Answer(Reply),
    /// A name outside the zones this server is authoritative for: forward it, REFUSED without
    /// upstreams.
    Outside,
    /// A reverse name the cluster knows nothing about (`fallthrough in-addr.arpa ip6.arpa`):
    /// forward it, this NXDOMAIN without upstreams.
    FallThrough(Reply),
}

#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
    /// An ExternalName target outside the cluster zone: the CNAME is in `answers`; the target's
    /// records of the asked type are looked up upstream and appended when there are upstreams.
    pub chase: Option<Name>,
}

impl Reply {
    fn new(rcode: ResponseCode) -> Reply {
        Reply {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
            chase: None,
        }
    }

    pub(crate) fn refused() -> Reply {
        Reply {
            authoritative: false,
            ..Reply::new(ResponseCode::Refused)
        }
    }
}

/// The name does not exist (CoreDNS's `errNoItems`, `errNsNotExposed`, `errInvalidRequest`).
#[derive(Debug, PartialEq)]
struct NameError;

/// One thing a name resolves to (CoreDNS's `msg.Service`).
#[derive(Clone, Debug, PartialEq)]
struct Found {
    host: Host,
    /// -1 when the endpoint has no ports: such entries make no SRV record.
    port: i32,
    /// The name an SRV record targets (the key's domain), without a trailing dot.
    target: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Host {
    Ip(IpAddr),
    /// An ExternalName: a CNAME target.
    Name(String),
}

/// A query name split against the zone it falls in.
struct Query<'a> {
    /// The asked name, as asked (answers keep its case).
    qname: &'a Name,
    /// Lowercase, no trailing dot.
    name: String,
    /// The matched zone, lowercase, no trailing dot.
    zone: &'a str,
    /// The zone with the case of the query (the SOA's owner).
    zone_name: Name,
}

/// Answers `qname`/`qtype` from the index.
pub(crate) fn resolve(index: &Index, settings: &Settings, qname: &Name, qtype: RecordType) -> Outcome {
    let mut name = qname.to_lowercase().to_ascii();
    if name.ends_with('.') {
        name.pop();
    }
    let Some(zone) = std::iter::once(settings.domain.as_str())
        .chain(REVERSE_ZONES)
        .filter(|zone| in_zone(&name, zone))
        .max_by_key(|zone| zone.len())
    else {
        return Outcome::Outside;
    };
    let zone_labels = if zone.is_empty() {
        0
    } else {
        zone.split('.').count()
    };
    let q = Query {
        qname,
        zone_name: qname.trim_to(zone_labels),
        name,
        zone,
    };
    let resolver = Resolver { index, settings };
    match resolver.answer(&q, qtype) {
        Ok(reply) => Outcome::Answer(reply),
        Err(NameError) => {
            let mut reply = Reply::new(ResponseCode::NXDomain);
            reply.authority.push(resolver.soa(&q));
            if is_reverse(&q.name) {
                Outcome::FallThrough(reply)
            } else {
                Outcome::Answer(reply)
            }
        }
    }
}

fn in_zone(name: &str, zone: &str) -> bool {
    zone.is_empty() || name == zone || name.strip_suffix(zone).is_some_and(|rest| rest.ends_with('.'))
}

fn is_reverse(name: &str) -> bool {
    REVERSE_ZONES.iter().any(|zone| in_zone(name, zone))
}

struct Resolver<'a> {
    index: &'a Index,
    settings: &'a Settings,
}

impl Resolver<'_> {
    fn ttl(&self) -> u32 {
        self.settings.ttl
    }

    /// `ServeDNS`: records per type, then NODATA (SOA in authority) when there are none.
    fn answer(&self, q: &Query, qtype: RecordType) -> Result<Reply, NameError> {
        let mut reply = Reply::new(ResponseCode::NoError);
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let mut chain = Vec::new();
                self.addresses(q, q.qname, &q.name, qtype, &mut chain, &mut reply)?;
            }
            RecordType::TXT => reply.answers = self.txt(q)?,
            RecordType::CNAME => {
                let found = self.services(q, &q.name, qtype)?;
                if let Some(Found {
                    host: Host::Name(target),
                    ..
                }) = found.first()
                    && let Some(target) = fqdn(target)
                {
                    reply
                        .answers
                        .push(self.record(q.qname, RData::CNAME(CNAME(target))));
                }
            }
            RecordType::PTR => reply.answers = self.ptr(q)?,
            RecordType::MX => {
                // No Service carries mail exchangers: an existing name is NODATA.
                self.services(q, &q.name, qtype)?;
            }
            RecordType::SRV => self.srv(q, &mut reply)?,
            RecordType::SOA => {
                if q.name == q.zone {
                    reply.answers.push(self.soa(q));
                }
            }
            RecordType::AXFR | RecordType::IXFR => return Ok(Reply::refused()),
            RecordType::NS if q.name == q.zone => self.ns(q, &mut reply),
            _ => {
                // CoreDNS's fake A lookup: tells NODATA from NXDOMAIN.
                self.services(q, &q.name, RecordType::A)?;
            }
        }
        if reply.answers.is_empty() {
            reply.additionals.clear();
            reply.authority.push(self.soa(q));
        }
        Ok(reply)
    }

    fn record(&self, owner: &Name, rdata: RData) -> Record {
        Record::from_rdata(owner.clone(), self.ttl(), rdata)
    }

    /// The zone's SOA (`plugin.SOA`): TTL and negative-caching TTL follow the `ttl` option.
    fn soa(&self, q: &Query) -> Record {
        let zone = &q.zone_name;
        let prepend = |labels: &[&str]| {
            labels
                .iter()
                .rev()
                .try_fold(zone.clone(), |name, label| name.prepend_label(*label))
                .unwrap_or_else(|_| zone.clone())
        };
        let soa = SOA::new(
            prepend(&["ns", "dns"]),
            prepend(&["hostmaster"]),
            self.index.serial(),
            7200,
            1800,
            86400,
            self.ttl(),
        );
        Record::from_rdata(zone.clone(), self.ttl().min(300), RData::SOA(soa))
    }

    /// `Kubernetes.Services`: what a name holds for a query type.
    fn services(&self, q: &Query, name: &str, qtype: RecordType) -> Result<Vec<Found>, NameError> {
        if name == format!("ns.dns.{}", q.zone) {
            return Ok(self
                .ns_addresses(q.zone)
                .into_iter()
                .filter(|(_, ip)| {
                    matches!(
                        (qtype, ip),
                        (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_))
                    )
                })
                .map(|(_, ip)| Found {
                    host: Host::Ip(ip),
                    port: 0,
                    target: name.to_owned(),
                })
                .collect());
        }
        let mut found = self.records(q.zone, name)?;
        if qtype == RecordType::SRV {
            // SRV for ExternalName Services is not answered.
            found.retain(|f| matches!(f.host, Host::Ip(_)));
        }
        Ok(found)
    }

    /// `Kubernetes.Records`: parse the name (`parseRequest`) and look it up.
    fn records(&self, zone: &str, name: &str) -> Result<Vec<Found>, NameError> {
        let base = if name == zone {
            ""
        } else if zone.is_empty() {
            name
        } else {
            &name[..name.len() - zone.len() - 1]
        };
        // The apex, `svc.<zone>` and `pod.<zone>` exist and hold nothing.
        if base.is_empty() || base == "svc" || base == "pod" {
            return Ok(Vec::new());
        }
        let mut labels = base.rsplit('.');
        let kind = labels.next().unwrap_or_default();
        if kind != "svc" && kind != "pod" {
            return Err(NameError);
        }
        let namespace = labels.next().unwrap_or_default();
        let service = labels.next().unwrap_or_default();
        let rest: Vec<&str> = labels.collect();
        let (endpoint, port, protocol) = match rest.as_slice() {
            [] => ("", "", ""),
            [endpoint] => (*endpoint, "", ""),
            [protocol, port] => ("", strip_underscore(port), strip_underscore(protocol)),
            _ => return Err(NameError),
        };
        if is_reverse(name) || !self.index.namespace_exists(namespace) {
            return Err(NameError);
        }
        if kind == "pod" {
            return self.find_pod(zone, namespace, service);
        }
        self.find_services(zone, namespace, service, endpoint, port, protocol)
    }

    /// `findPods` in `pods insecure` mode: the address is read from the name.
    fn find_pod(&self, zone: &str, namespace: &str, pod: &str) -> Result<Vec<Found>, NameError> {
        if pod.is_empty() {
            return Ok(Vec::new());
        }
        let address = if pod.matches('-').count() == 3 && !pod.contains("--") {
            pod.replace('-', ".")
        } else {
            pod.replace('-', ":")
        };
        let ip: IpAddr = address.parse().map_err(|_| NameError)?;
        Ok(vec![Found {
            host: Host::Ip(ip),
            port: 0,
            target: format!("{pod}.{namespace}.pod.{zone}"),
        }])
    }

    /// `findServices`: a Service's ClusterIPs, its ready endpoints (headless, or an endpoint
    /// name), or its ExternalName.
    fn find_services(
        &self,
        zone: &str,
        namespace: &str,
        name: &str,
        endpoint: &str,
        port: &str,
        protocol: &str,
    ) -> Result<Vec<Found>, NameError> {
        if name.is_empty() {
            return Ok(Vec::new());
        }
        let service = self.index.service(namespace, name).ok_or(NameError)?;
        let service_domain = format!("{name}.{namespace}.svc.{zone}");
        let mut found = Vec::new();
        match &service.kind {
            ServiceKind::ExternalName(target) => {
                if !endpoint.is_empty() || !port.is_empty() || !protocol.is_empty() {
                    return Err(NameError);
                }
                if target.is_empty() || target.parse::<IpAddr>().is_ok() {
                    return Err(NameError);
                }
                found.push(Found {
                    host: Host::Name(target.clone()),
                    port: 0,
                    target: service_domain,
                });
            }
            ServiceKind::ClusterIp(ips) if endpoint.is_empty() => {
                let mut any_port = false;
                for p in &service.ports {
                    if !port_matches(port, &p.name, protocol, &p.protocol) {
                        continue;
                    }
                    any_port = true;
                    found.extend(ips.iter().map(|ip| Found {
                        host: Host::Ip(*ip),
                        port: p.port,
                        target: service_domain.clone(),
                    }));
                }
                if !any_port {
                    return Err(NameError);
                }
            }
            ServiceKind::Headless | ServiceKind::ClusterIp(_) => {
                for slice in self.index.slices_of(namespace, name) {
                    for address in &slice.addresses {
                        if !endpoint.is_empty() && endpoint != address.hostname {
                            continue;
                        }
                        for p in &slice.ports {
                            if !port_matches(port, &p.name, protocol, &p.protocol) {
                                continue;
                            }
                            found.push(Found {
                                host: Host::Ip(address.ip),
                                port: p.port,
                                target: format!("{}.{service_domain}", address.hostname),
                            });
                        }
                    }
                }
                if found.is_empty() {
                    return Err(NameError);
                }
            }
        }
        Ok(found)
    }

    /// `plugin.A` / `plugin.AAAA`: addresses of the family asked, CNAMEs for ExternalNames
    /// (followed inside the zone; outside it, chased upstream by the caller).
    fn addresses(
        &self,
        q: &Query,
        owner: &Name,
        name: &str,
        qtype: RecordType,
        chain: &mut Vec<String>,
        reply: &mut Reply,
    ) -> Result<(), NameError> {
        let found = self.services(q, name, qtype)?;
        let mut seen = HashSet::new();
        for f in found {
            match f.host {
                Host::Name(target) => {
                    let target = target.trim_end_matches('.').to_ascii_lowercase();
                    if target == name || chain.len() > MAX_CNAME_CHAIN || chain.contains(&target) {
                        continue;
                    }
                    let Some(target_name) = fqdn(&target) else {
                        continue;
                    };
                    let cname = self.record(owner, RData::CNAME(CNAME(target_name.clone())));
                    if in_zone(&target, q.zone) {
                        let mut inner = Reply::new(ResponseCode::NoError);
                        chain.push(target.clone());
                        let followed = self.addresses(q, &target_name, &target, qtype, chain, &mut inner);
                        if followed.is_ok() && !inner.answers.is_empty() {
                            reply.answers.push(cname);
                            reply.answers.append(&mut inner.answers);
                        }
                        continue;
                    }
                    reply.answers.push(cname);
                    reply.chase = Some(target_name);
                }
                Host::Ip(ip) => {
                    let rdata = match (qtype, canonical(ip)) {
                        (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
                        (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
                        _ => continue,
                    };
                    if seen.insert(ip) {
                        reply.answers.push(self.record(owner, rdata));
                    }
                }
            }
        }
        Ok(())
    }

    /// TXT: only `dns-version.<zone>`; an existing name is NODATA, a name without anything
    /// NXDOMAIN (CoreDNS answers a namespace or `svc.<zone>` TXT query with NXDOMAIN too).
    fn txt(&self, q: &Query) -> Result<Vec<Record>, NameError> {
        if q.name == format!("dns-version.{}", q.zone) {
            let txt = TXT::new(vec![DNS_SCHEMA_VERSION.to_owned()]);
            return Ok(vec![Record::from_rdata(q.qname.clone(), 28800, RData::TXT(txt))]);
        }
        match self.records(q.zone, &q.name) {
            Ok(found) if !found.is_empty() => Ok(Vec::new()),
            _ => Err(NameError),
        }
    }

    /// `plugin.SRV`: one record per (target, port), weights splitting 100 evenly, the targets'
    /// addresses in the additional section.
    fn srv(&self, q: &Query, reply: &mut Reply) -> Result<(), NameError> {
        let found = self.services(q, &q.name, RecordType::SRV)?;
        let total = 100 * found.len().max(1);
        let weight = ((100.0 / total as f64) * 100.0).floor().max(1.0) as u16;
        let mut records = HashSet::new();
        let mut addresses = HashSet::new();
        for f in &found {
            let (Host::Ip(ip), Ok(port)) = (&f.host, u16::try_from(f.port)) else {
                continue;
            };
            let Some(target) = fqdn(&f.target) else {
                continue;
            };
            if records.insert((f.target.clone(), port)) {
                let srv = SRV::new(0, weight, port, target.clone());
                reply.answers.push(self.record(q.qname, RData::SRV(srv)));
            }
            if addresses.insert((f.target.clone(), *ip)) {
                reply.additionals.push(self.address_record(target, *ip));
            }
        }
        Ok(())
    }

    fn address_record(&self, owner: Name, ip: IpAddr) -> Record {
        let rdata = match canonical(ip) {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(owner, self.ttl(), rdata)
    }

    /// `Reverse` + `plugin.PTR`: a ClusterIP names its Service; otherwise every ready endpoint
    /// address names `<hostname>.<service>.<ns>.svc.<domain>`.
    fn ptr(&self, q: &Query) -> Result<Vec<Record>, NameError> {
        let Some(ip) = address_from_reverse(&q.name) else {
            self.records(q.zone, &q.name)?;
            return Ok(Vec::new());
        };
        let domain = &self.settings.domain;
        let mut names = Vec::new();
        if let Some((namespace, service)) = self.index.services_with_ip(ip).next() {
            names.push(format!("{service}.{namespace}.svc.{domain}"));
        } else {
            for ((namespace, _), slice) in self.index.slices_with_ip(ip) {
                for address in slice.addresses.iter().filter(|a| a.ip == ip) {
                    let name = format!("{}.{}.{namespace}.svc.{domain}", address.hostname, slice.service);
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        if names.is_empty() {
            return Err(NameError);
        }
        Ok(names
            .iter()
            .filter_map(|name| fqdn(name))
            .map(|target| self.record(q.qname, RData::PTR(PTR(target))))
            .collect())
    }

    /// `nsAddrs`: the Services whose endpoints are this server's addresses (the `kube-dns`
    /// Service), else `ns.dns.<zone>` at the listen addresses.
    fn ns_addresses(&self, zone: &str) -> Vec<(String, IpAddr)> {
        let mut out = Vec::new();
        let mut found_endpoint = false;
        for local in &self.settings.local_ips {
            for ((namespace, _), slice) in self.index.slices_with_ip(*local) {
                found_endpoint = true;
                let Some(service) = self.index.service(namespace, &slice.service) else {
                    continue;
                };
                let domain = format!("{}.{namespace}.svc.{zone}", slice.service);
                match &service.kind {
                    ServiceKind::Headless => out.extend(
                        slice
                            .addresses
                            .iter()
                            .map(|a| (format!("{}.{domain}", a.hostname), a.ip)),
                    ),
                    ServiceKind::ClusterIp(ips) => out.extend(ips.iter().map(|ip| (domain.clone(), *ip))),
                    ServiceKind::ExternalName(_) => {}
                }
            }
        }
        if !found_endpoint {
            out = self
                .settings
                .local_ips
                .iter()
                .map(|ip| (format!("ns.dns.{zone}"), *ip))
                .collect();
        }
        out
    }

    /// `plugin.NS` at the apex: NS records with their addresses as additional records.
    fn ns(&self, q: &Query, reply: &mut Reply) {
        let mut seen = HashSet::new();
        for (name, ip) in self.ns_addresses(q.zone) {
            let Some(target) = fqdn(&name) else {
                continue;
            };
            reply.additionals.push(self.address_record(target.clone(), ip));
            if seen.insert(name) {
                reply.answers.push(self.record(q.qname, RData::NS(NS(target))));
            }
        }
    }
}

fn strip_underscore(label: &str) -> &str {
    label.strip_prefix('_').unwrap_or(label)
}

/// `matchPortAndProtocol`: an empty request part matches anything.
fn port_matches(want_port: &str, port: &str, want_protocol: &str, protocol: &str) -> bool {
    (want_port.is_empty() || want_port.eq_ignore_ascii_case(port))
        && (want_protocol.is_empty() || want_protocol.eq_ignore_ascii_case(protocol))
}

/// An IPv4-mapped IPv6 address is an A record, as Go's `To4` sees it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn fqdn(name: &str) -> Option<Name> {
    let mut name = Name::from_ascii(name).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// `dnsutil.ExtractAddressFromReverse`: the address a full reverse name stands for.
fn address_from_reverse(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let octets: Vec<u8> = rest
            .rsplit('.')
            .map(|label| {
                if label.len() > 1 && label.starts_with('0') {
                    return None;
                }
                label.parse().ok()
            })
            .collect::<Option<_>>()?;
        let octets: [u8; 4] = octets.try_into().ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = rest
        .rsplit('.')
        .map(|label| match label.as_bytes() {
            [c] => (*c as char).to_digit(16).map(|d| d as u8),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in nibbles.chunks(2).enumerate() {
        bytes[i] = pair[0] << 4 | pair[1];
    }
    Some(IpAddr::V6(Ipv6Addr::from(bytes)))
}

#[cfg(test)]
mod tests;
