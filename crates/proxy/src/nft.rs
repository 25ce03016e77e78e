//! The nftables backend, in the manner of kube-proxy's nftables mode: one table per family
//! (`ip rkube-proxy`, `ip6 rkube-proxy`); verdict maps keyed by
//! `daddr . meta l4proto . th dport` dispatch to per-service chains, which pick an endpoint
//! with `numgen random mod N vmap`; per-endpoint chains DNAT; masquerading by mark; services
//! without (usable) endpoints are rejected (or dropped) by filter chains that run before DNAT.
//!
//! [`ruleset`] is pure (model → [`Ruleset`]); [`full_script`], [`replace_script`] and
//! [`incremental_script`] render `nft -f` transactions; [`apply`] runs one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cni::IpNet;

use crate::model::{Endpoint, Family, FamilyModel, ServicePort};
use crate::names::Namer;
use crate::ruleset::{Chain, Changes, FragmentCache, Ruleset, Set};

pub const TABLE: &str = "rkube-proxy";
/// The packet mark bit asking for masquerade (kube-proxy's default bit 14).
pub const MASQ_MARK: &str = "0x00004000";

const SERVICES: &str = "services";
const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const CLUSTER_IPS: &str = "cluster-ips";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const FIREWALL_IPS: &str = "firewall-ips";
const REJECT_CHAIN: &str = "reject-chain";
const MARK_MASQ: &str = "mark-for-masquerade";
const MASQUERADING: &str = "masquerading";

/// The words that differ between the two families.
struct Words {
    family: &'static str,
    ip: &'static str,
    addr_type: &'static str,
    no_localhost: &'static str,
}

fn words(family: Family) -> Words {
    match family {
        Family::V4 => Words {
            family: "ip",
            ip: "ip",
            addr_type: "ipv4_addr",
            no_localhost: "ip daddr != 127.0.0.0/8",
        },
        Family::V6 => Words {
            family: "ip6",
            ip: "ip6",
            addr_type: "ipv6_addr",
            no_localhost: "ip6 daddr != ::1",
        },
    }
}

pub fn family_word(family: Family) -> &'static str {
    words(family).family
}

fn map(decl: String) -> Set {
    Set {
        decl,
        ..Set::default()
    }
}

fn base_chain(r: &mut Ruleset, name: &str, kind: &str, hook: &str, priority: i32, jumps: &[&str]) {
    let chain = r.chain(name);
    chain.header = format!("type {kind} hook {hook} priority {priority}; policy accept;");
    chain.rules = jumps.iter().map(|j| j.to_string()).collect();
}

/// The desired ruleset of one family's table.
pub fn ruleset(
    model: &FamilyModel,
    family: Family,
    cluster_cidrs: &[IpNet],
    namer: &mut Namer,
    cache: &mut FragmentCache,
) -> Ruleset {
    let w = words(family);
    let ip = w.ip;
    let mut r = Ruleset::default();

    // Filter chains run before DNAT (dstnat - 10) so they see the service's own address.
    base_chain(
        &mut r,
        "filter-prerouting",
        "filter",
        "prerouting",
        -110,
        &["ct state new jump firewall-check"],
    );
    base_chain(
        &mut r,
        "filter-input",
        "filter",
        "input",
        -110,
        &[
            "ct state new jump nodeport-endpoints-check",
            "ct state new jump service-endpoints-check",
        ],
    );
    base_chain(
        &mut r,
        "filter-forward",
        "filter",
        "forward",
        -110,
        &[
            "ct state new jump service-endpoints-check",
            "ct state new jump cluster-ips-check",
        ],
    );
    base_chain(
        &mut r,
        "filter-output",
        "filter",
        "output",
        -110,
        &[
            "ct state new jump service-endpoints-check",
            "ct state new jump firewall-check",
        ],
    );
    // After DNAT: what still goes to a cluster IP hit no service port.
    base_chain(
        &mut r,
        "filter-output-post-dnat",
        "filter",
        "output",
        -90,
        &["ct state new jump cluster-ips-check"],
    );
    base_chain(
        &mut r,
        "nat-prerouting",
        "nat",
        "prerouting",
        -100,
        &["jump services"],
    );
    base_chain(&mut r, "nat-output", "nat", "output", -100, &["jump services"]);
    base_chain(
        &mut r,
        "nat-postrouting",
        "nat",
        "postrouting",
        100,
        &["jump masquerading"],
    );

    let ip_key = format!("type {} . inet_proto . inet_service : verdict;", w.addr_type);
    let port_key = "type inet_proto . inet_service : verdict;".to_string();
    r.sets.insert(SERVICE_IPS.into(), map(ip_key.clone()));
    r.sets.insert(SERVICE_NODEPORTS.into(), map(port_key.clone()));
    r.sets.insert(NO_ENDPOINT_SERVICES.into(), map(ip_key.clone()));
    r.sets.insert(NO_ENDPOINT_NODEPORTS.into(), map(port_key));
    r.sets.insert(FIREWALL_IPS.into(), map(ip_key));
    r.sets
        .insert(CLUSTER_IPS.into(), map(format!("type {};", w.addr_type)));

    r.rule(
        SERVICES,
        format!("{ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
    );
    r.rule(
        SERVICES,
        format!(
            "fib daddr type local {} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
            w.no_localhost
        ),
    );
    r.rule(
        "nodeport-endpoints-check",
        format!(
            "fib daddr type local {} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}",
            w.no_localhost
        ),
    );
    r.rule(
        "service-endpoints-check",
        format!("{ip} daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
    );
    r.rule(
        "firewall-check",
        format!("{ip} daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"),
    );
    r.rule(
        "cluster-ips-check",
        format!("{ip} daddr @{CLUSTER_IPS} goto {REJECT_CHAIN}"),
    );
    // TCP gets a reset: an ICMPv6 error to a new peer is rate-limited by the kernel
    // (net.ipv6.icmp.ratelimit), which would turn "refused" into a one-second wait.
    r.rule(REJECT_CHAIN, "meta l4proto tcp reject with tcp reset");
    r.rule(REJECT_CHAIN, "reject");
    r.rule(MARK_MASQ, format!("mark set mark or {MASQ_MARK}"));
    r.rule(MASQUERADING, format!("mark and {MASQ_MARK} == 0 return"));
    r.rule(MASQUERADING, format!("mark set mark xor {MASQ_MARK}"));
    r.rule(MASQUERADING, "masquerade fully-random");

    let cidrs: Vec<String> = cluster_cidrs
        .iter()
        .filter(|c| Family::of(c.addr) == family)
        .map(|c| c.network().to_string())
        .collect();
    let cluster_cidr_set = (!cidrs.is_empty()).then(|| format!("{{ {} }}", cidrs.join(", ")));

    let skeleton = r.skeleton();
    for sp in model.ports.values() {
        r.element(CLUSTER_IPS, sp.cluster_ip.to_string(), "");
        let fragment = cache.fragment(family, sp, &skeleton, |f| {
            service_port(f, &w, sp, cluster_cidr_set.as_deref(), namer)
        });
        r.merge(fragment);
    }
    r
}

fn service_port(
    r: &mut Ruleset,
    w: &Words,
    sp: &ServicePort,
    cluster_cidrs: Option<&str>,
    namer: &mut Namer,
) {
    let ip = w.ip;
    let proto = sp.name.protocol.as_str();
    let base = namer.service_base(&sp.name);
    // Each endpoint's name base, computed once.
    let bases: BTreeMap<&Endpoint, String> = sp
        .reachable_endpoints()
        .into_iter()
        .map(|ep| (ep, namer.endpoint_base(&sp.name, ep)))
        .collect();
    let cluster_chain = format!("service-{base}");
    let local_chain = format!("local-{base}");
    let external_chain = format!("external-{base}");
    let firewall_chain = format!("firewall-{base}");
    let key = |addr: std::net::IpAddr, port: u16| format!("{addr} . {proto} . {port}");

    let uses_cluster_chain = !sp.cluster_endpoints.is_empty() && sp.uses_cluster_endpoints();
    let uses_local_chain = !sp.local_endpoints.is_empty() && sp.uses_local_endpoints();
    let internal_chain = if sp.internal_policy_local {
        &local_chain
    } else {
        &cluster_chain
    };
    let external_policy_chain = if sp.external_policy_local {
        &local_chain
    } else {
        &cluster_chain
    };
    let has_internal = sp.has_internal_endpoints();
    let has_external = sp.has_external_endpoints();
    let uses_external_chain = sp.has_endpoints && sp.externally_accessible();

    // No endpoints at all: reject everything; endpoints but none for a Local policy: drop.
    let reject = format!("goto {REJECT_CHAIN}");
    let internal_verdict = if sp.has_endpoints { "drop" } else { reject.as_str() };
    let external_verdict = internal_verdict;

    if has_internal {
        r.element(
            SERVICE_IPS,
            key(sp.cluster_ip, sp.port),
            format!("goto {internal_chain}"),
        );
        // Traffic from outside the cluster CIDRs to a cluster IP is masqueraded (it may
        // have been routed here by a static route for the service range).
        if let Some(cidrs) = cluster_cidrs {
            r.rule(
                internal_chain,
                format!(
                    "{ip} daddr {} {proto} dport {} {ip} saddr != {cidrs} jump {MARK_MASQ}",
                    sp.cluster_ip, sp.port
                ),
            );
        }
    } else {
        r.element(
            NO_ENDPOINT_SERVICES,
            key(sp.cluster_ip, sp.port),
            internal_verdict,
        );
    }

    for addr in sp.external_destinations() {
        if sp.has_endpoints {
            r.element(SERVICE_IPS, key(addr, sp.port), format!("goto {external_chain}"));
        }
        if !has_external {
            r.element(NO_ENDPOINT_SERVICES, key(addr, sp.port), external_verdict);
        }
    }
    if !sp.load_balancer_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty() {
        let ranges: Vec<String> = sp
            .load_balancer_source_ranges
            .iter()
            .map(|c| c.to_string())
            .collect();
        r.rule(
            &firewall_chain,
            format!("{ip} saddr != {{ {} }} drop", ranges.join(", ")),
        );
        for addr in &sp.load_balancer_ips {
            r.element(
                FIREWALL_IPS,
                key(*addr, sp.port),
                format!("goto {firewall_chain}"),
            );
        }
    }
    if let Some(node_port) = sp.node_port {
        let np_key = format!("{proto} . {node_port}");
        if sp.has_endpoints {
            r.element(
                SERVICE_NODEPORTS,
                np_key.clone(),
                format!("goto {external_chain}"),
            );
        }
        if !has_external {
            r.element(NO_ENDPOINT_NODEPORTS, np_key, external_verdict);
        }
    }

    if uses_external_chain {
        let chain = r.chain(&external_chain);
        if !sp.external_policy_local {
            // Cluster policy: the endpoint may be on another node, so the reply must come back here.
            chain.rules.push(format!("jump {MARK_MASQ}"));
        } else {
            // Local policy keeps the client's address; pods and the node itself are
            // short-circuited to the cluster-wide endpoints as if they went out and back in.
            if let Some(cidrs) = cluster_cidrs {
                chain
                    .rules
                    .push(format!("{ip} saddr {cidrs} goto {cluster_chain}"));
            }
            chain.rules.push(format!("fib saddr type local jump {MARK_MASQ}"));
            chain
                .rules
                .push(format!("fib saddr type local goto {cluster_chain}"));
        }
        if has_external {
            chain.rules.push(format!("goto {external_policy_chain}"));
        }
    }

    if let Some(timeout) = sp.affinity_timeout {
        for epbase in bases.values() {
            let name = format!("affinity-{epbase}");
            r.sets.insert(
                name,
                Set {
                    decl: format!("type {}; flags dynamic,timeout; timeout {timeout}s;", w.addr_type),
                    elements: Default::default(),
                    dynamic: true,
                },
            );
        }
    }

    if uses_cluster_chain {
        balance(r, w, sp, &cluster_chain, &sp.cluster_endpoints, &bases);
    }
    if uses_local_chain {
        balance(r, w, sp, &local_chain, &sp.local_endpoints, &bases);
    }

    for (ep, epbase) in &bases {
        let chain = r.chain(format!("endpoint-{epbase}"));
        // Hairpin: a pod reaching itself through its Service must see the node as the peer.
        chain.rules.push(format!("{ip} saddr {} jump {MARK_MASQ}", ep.ip));
        if sp.affinity_timeout.is_some() {
            chain
                .rules
                .push(format!("update @affinity-{epbase} {{ {ip} saddr }}"));
        }
        chain.rules.push(format!("meta l4proto {proto} dnat to {ep}"));
    }
}

/// The service (or local) chain: sticky clients first, then a random endpoint.
fn balance(
    r: &mut Ruleset,
    w: &Words,
    sp: &ServicePort,
    chain: &str,
    endpoints: &[Endpoint],
    bases: &BTreeMap<&Endpoint, String>,
) {
    let mut rules = Vec::new();
    if sp.affinity_timeout.is_some() {
        for ep in endpoints {
            let epbase = &bases[ep];
            rules.push(format!(
                "{} saddr @affinity-{epbase} goto endpoint-{epbase}",
                w.ip
            ));
        }
    }
    let targets: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto endpoint-{}", bases[ep]))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        targets.join(", ")
    ));
    r.chain(chain).rules.extend(rules);
}

fn is_map(set: &Set) -> bool {
    set.decl.contains(" : ")
}

fn add_set(out: &mut String, prefix: &str, name: &str, set: &Set) {
    let kind = if is_map(set) { "map" } else { "set" };
    let _ = writeln!(out, "add {kind} {prefix} {name} {{ {} }}", set.decl);
}

fn add_elements(out: &mut String, prefix: &str, name: &str, set: &Set, elements: &[(&String, &String)]) {
    // Chunked: one very long line per map is slow for nft's parser.
    for chunk in elements.chunks(500) {
        let items: Vec<String> = chunk
            .iter()
            .map(|(k, v)| {
                if is_map(set) {
                    format!("{k} : {v}")
                } else {
                    (*k).clone()
                }
            })
            .collect();
        let _ = writeln!(out, "add element {prefix} {name} {{ {} }}", items.join(", "));
    }
}

fn add_chain(out: &mut String, prefix: &str, name: &str, chain: &Chain) {
    if chain.header.is_empty() {
        let _ = writeln!(out, "add chain {prefix} {name}");
    } else {
        let _ = writeln!(out, "add chain {prefix} {name} {{ {} }}", chain.header);
    }
}

/// What our table holds in the kernel (names only), for a full sync over it.
#[derive(Clone, Debug, Default)]
pub struct Existing {
    pub chains: Vec<String>,
    /// (name, is a map)
    pub sets: Vec<(String, bool)>,
}

/// Lists our table's chains and sets (`nft -j -t list table`); nothing when it is absent.
pub async fn existing(family: Family) -> Existing {
    let args = ["-j", "-t", "list", "table", family_word(family), TABLE];
    let Ok(out) = crate::exec::output_with_stdin("nft", &args, "").await else {
        return Existing::default();
    };
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut found = Existing::default();
    for item in listing["nftables"].as_array().into_iter().flatten() {
        if let Some(name) = item["chain"]["name"].as_str() {
            found.chains.push(name.to_owned());
        } else if let Some(name) = item["set"]["name"].as_str() {
            found.sets.push((name.to_owned(), false));
        } else if let Some(name) = item["map"]["name"].as_str() {
            found.sets.push((name.to_owned(), true));
        }
    }
    found
}

/// A full sync over whatever the table holds, in one transaction: every chain and map
/// rewritten, what is no longer wanted deleted, affinity sets kept with their entries (as
/// kube-proxy's resyncs). Fails if a kept object's declaration changed (a base chain's hook,
/// an affinity timeout): then [`replace_script`].
pub fn full_script(family: Family, new: &Ruleset, existing: &Existing) -> String {
    let prefix = format!("{} {TABLE}", family_word(family));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "add table {prefix} {{ comment \"rules for rkube-proxy\" ; }}"
    );
    for name in existing.chains.iter().filter(|c| !new.chains.contains_key(*c)) {
        let _ = writeln!(out, "flush chain {prefix} {name}");
    }
    for (name, chain) in &new.chains {
        add_chain(&mut out, &prefix, name, chain);
        if existing.chains.contains(name) {
            let _ = writeln!(out, "flush chain {prefix} {name}");
        }
    }
    for (name, is_map) in existing.sets.iter().filter(|(s, _)| !new.sets.contains_key(s)) {
        let kind = if *is_map { "map" } else { "set" };
        let _ = writeln!(out, "delete {kind} {prefix} {name}");
    }
    for (name, set) in &new.sets {
        add_set(&mut out, &prefix, name, set);
        if !set.dynamic && existing.sets.iter().any(|(s, _)| s == name) {
            let kind = if is_map(set) { "map" } else { "set" };
            let _ = writeln!(out, "flush {kind} {prefix} {name}");
        }
    }
    for (name, chain) in &new.chains {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule {prefix} {name} {rule}");
        }
    }
    for (name, set) in &new.sets {
        if !set.elements.is_empty() {
            let elements: Vec<(&String, &String)> = set.elements.iter().collect();
            add_elements(&mut out, &prefix, name, set, &elements);
        }
    }
    for name in existing.chains.iter().filter(|c| !new.chains.contains_key(*c)) {
        let _ = writeln!(out, "delete chain {prefix} {name}");
    }
    out
}

/// Drops whatever our table holds and creates it from scratch, atomically.
pub fn replace_script(family: Family, new: &Ruleset) -> String {
    let prefix = format!("{} {TABLE}", family_word(family));
    let mut out = format!("add table {prefix}\ndelete table {prefix}\n");
    out.push_str(&full_script(family, new, &Existing::default()));
    out
}

/// One transaction with only what changed. Order matters: chains exist before anything jumps
/// to them; references go (elements deleted, referencing chains flushed) before what they
/// reference is deleted.
pub fn incremental_script(family: Family, changes: &Changes, new: &Ruleset) -> String {
    let prefix = format!("{} {TABLE}", family_word(family));
    let mut out = String::new();
    // A redeclared set is deleted and added again: the chains naming it are rewritten too.
    let mut written: Vec<(String, std::sync::Arc<Chain>)> = changes.written_chains.clone();
    for set in &changes.removed_sets {
        if new.sets.contains_key(set) {
            let needle = format!("@{set} ");
            for (name, chain) in &new.chains {
                let mentions = chain
                    .rules
                    .iter()
                    .any(|r| r.contains(&needle) || r.ends_with(&format!("@{set}")));
                if mentions && !written.iter().any(|(n, _)| n == name) {
                    written.push((name.clone(), chain.clone()));
                }
            }
        }
    }
    for name in &changes.added_chains {
        add_chain(&mut out, &prefix, name, &new.chains[name]);
    }
    for (name, _) in &written {
        let _ = writeln!(out, "flush chain {prefix} {name}");
    }
    for name in &changes.removed_chains {
        let _ = writeln!(out, "flush chain {prefix} {name}");
    }
    for (set, key) in &changes.removed_elements {
        let _ = writeln!(out, "delete element {prefix} {set} {{ {key} }}");
    }
    for set in &changes.removed_sets {
        // The kind of a removed set is unknown here; both kinds share the namespace, and
        // only maps carry verdicts — affinity sets are the only sets ever removed.
        let kind = if set.starts_with("affinity-") {
            "set"
        } else {
            "map"
        };
        let _ = writeln!(out, "delete {kind} {prefix} {set}");
    }
    for (name, set) in &changes.added_sets {
        add_set(&mut out, &prefix, name, set);
        let elements: Vec<(&String, &String)> = set.elements.iter().collect();
        if !elements.is_empty() {
            add_elements(&mut out, &prefix, name, set, &elements);
        }
    }
    for (name, chain) in &written {
        for rule in &chain.rules {
            let _ = writeln!(out, "add rule {prefix} {name} {rule}");
        }
    }
    // Elements grouped per set, one statement per chunk.
    let mut by_set: std::collections::BTreeMap<&String, Vec<(&String, &String)>> = Default::default();
    for (set, key, value) in &changes.added_elements {
        by_set.entry(set).or_default().push((key, value));
    }
    for (set, elements) in by_set {
        add_elements(&mut out, &prefix, set, &new.sets[set], &elements);
    }
    for name in &changes.removed_chains {
        let _ = writeln!(out, "delete chain {prefix} {name}");
    }
    out
}

/// Runs `nft -f -` with the script on stdin.
pub async fn apply(script: &str) -> anyhow::Result<()> {
    crate::exec::run_with_stdin("nft", &["-f", "-"], script)
        .await
        .map_err(|e| {
            // Quote the lines nft complains about (`/dev/stdin:LINE:COLS: Error: …`).
            let text = e.to_string();
            let lines: Vec<&str> = script.lines().collect();
            let mut quoted = String::new();
            for part in text.split("/dev/stdin:").skip(1).take(5) {
                if let Some(n) = part.split(':').next().and_then(|n| n.parse::<usize>().ok()) {
                    let _ = write!(quoted, "\n  line {n}: {}", lines.get(n - 1).unwrap_or(&""));
                }
            }
            e.context(format!("nft rejected the transaction{quoted}"))
        })
}

/// `nft` exists and can talk to the kernel.
pub async fn available() -> bool {
    crate::exec::run_with_stdin("nft", &["list", "tables"], "")
        .await
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::model::build;
    use crate::ruleset::diff;
    use crate::testing::{ready, service, slice};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn config() -> Config {
        let mut c = Config::new("node-a");
        c.node_ips = vec!["192.168.1.2".parse().unwrap()];
        c.cluster_cidrs = vec!["10.42.0.0/16".parse().unwrap()];
        c
    }

    fn render(services: &[Service], slices: &[EndpointSlice]) -> Ruleset {
        let c = config();
        ruleset(
            &build(services, slices, &c).v4,
            Family::V4,
            &c.cluster_cidrs,
            &mut Namer::default(),
            &mut FragmentCache::default(),
        )
    }

    fn chain_named<'a>(r: &'a Ruleset, prefix: &str) -> (&'a String, &'a Chain) {
        r.chains
            .iter()
            .map(|(n, c)| (n, &**c))
            .find(|(n, _)| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no chain {prefix}*"))
    }

    #[test]
    fn cluster_ip_with_endpoints_dispatches_balances_and_dnats() {
        let svc = service("web", "10.96.0.10", json!({}));
        let s = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a"), ready("10.42.1.6", "node-b")],
        );
        let r = render(&[svc], &[s]);
        let (svc_chain, chain) = chain_named(&r, "service-");
        assert!(svc_chain.ends_with("-default/web/tcp/http"), "{svc_chain}");
        assert_eq!(
            r.sets[SERVICE_IPS].elements["10.96.0.10 . tcp . 80"],
            format!("goto {svc_chain}")
        );
        assert_eq!(
            chain.rules[0],
            "ip daddr 10.96.0.10 tcp dport 80 ip saddr != { 10.42.0.0/16 } jump mark-for-masquerade"
        );
        assert!(
            chain.rules[1].starts_with("numgen random mod 2 vmap { 0 : goto endpoint-"),
            "{}",
            chain.rules[1]
        );
        let (_, ep) = r
            .chains
            .iter()
            .find(|(n, _)| n.ends_with("__10.42.0.5/8080"))
            .unwrap();
        assert_eq!(
            ep.rules,
            [
                "ip saddr 10.42.0.5 jump mark-for-masquerade",
                "meta l4proto tcp dnat to 10.42.0.5:8080"
            ]
        );
        assert!(r.sets[NO_ENDPOINT_SERVICES].elements.is_empty());
        assert!(r.sets[CLUSTER_IPS].elements.contains_key("10.96.0.10"));
    }

    #[test]
    fn services_without_endpoints_are_rejected_and_local_policy_without_local_ones_dropped() {
        let empty = service(
            "empty",
            "10.96.0.20",
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30020, "protocol": "TCP"}]}),
        );
        let local = service(
            "local",
            "10.96.0.21",
            json!({"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "nodePort": 30021, "protocol": "TCP"}]}),
        );
        let s = slice(
            "local",
            "local-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.1.6", "node-b")],
        );
        let r = render(&[empty, local], &[s]);
        let no_ep = &r.sets[NO_ENDPOINT_SERVICES].elements;
        assert_eq!(no_ep["10.96.0.20 . tcp . 80"], "goto reject-chain");
        assert!(
            !no_ep.contains_key("10.96.0.21 . tcp . 80"),
            "cluster traffic still has endpoints"
        );
        let no_np = &r.sets[NO_ENDPOINT_NODEPORTS].elements;
        assert_eq!(no_np["tcp . 30020"], "goto reject-chain");
        assert_eq!(no_np["tcp . 30021"], "drop");
        // The external chain still short-circuits pods and the node to the cluster endpoints.
        let (_, ext) = chain_named(&r, "external-");
        assert_eq!(ext.rules.len(), 3);
        assert!(ext.rules[0].starts_with("ip saddr { 10.42.0.0/16 } goto service-"));
        assert_eq!(r.sets[SERVICE_NODEPORTS].elements.len(), 1);
    }

    #[test]
    fn load_balancer_opens_ingress_and_node_ips_and_firewalls_source_ranges() {
        let mut lb = service(
            "lb",
            "10.96.0.30",
            json!({"type": "LoadBalancer", "loadBalancerSourceRanges": ["192.168.0.0/16"],
                   "ports": [{"name": "http", "port": 80, "nodePort": 30030, "protocol": "TCP"}]}),
        );
        lb.status =
            serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.9"}]}})).unwrap();
        let s = slice(
            "lb",
            "lb-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a")],
        );
        let r = render(&[lb], &[s]);
        let ips = &r.sets[SERVICE_IPS].elements;
        assert!(ips["192.168.1.9 . tcp . 80"].starts_with("goto external-"));
        assert!(ips["192.168.1.2 . tcp . 80"].starts_with("goto external-"));
        assert!(r.sets[SERVICE_NODEPORTS].elements["tcp . 30030"].starts_with("goto external-"));
        let (_, ext) = chain_named(&r, "external-");
        assert_eq!(ext.rules[0], "jump mark-for-masquerade");
        let (_, fw) = chain_named(&r, "firewall-");
        assert_eq!(fw.rules, ["ip saddr != { 192.168.0.0/16 } drop"]);
        assert_eq!(r.sets[FIREWALL_IPS].elements.len(), 2);
    }

    #[test]
    fn session_affinity_uses_timeout_sets() {
        let svc = service(
            "s",
            "10.96.0.40",
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 30}}}),
        );
        let s = slice("s", "s-1", ("http", 8080, "TCP"), &[ready("10.42.0.5", "node-a")]);
        let r = render(&[svc], &[s]);
        let (aff, set) = r.sets.iter().find(|(n, _)| n.starts_with("affinity-")).unwrap();
        assert_eq!(set.decl, "type ipv4_addr; flags dynamic,timeout; timeout 30s;");
        assert!(set.dynamic);
        let (_, svc_chain) = chain_named(&r, "service-");
        assert_eq!(
            svc_chain.rules[1],
            format!(
                "ip saddr @{aff} goto {}",
                aff.replacen("affinity-", "endpoint-", 1)
            )
        );
        let (_, ep) = chain_named(&r, "endpoint-");
        assert_eq!(ep.rules[1], format!("update @{aff} {{ ip saddr }}"));
    }

    #[test]
    fn ipv6_words() {
        let c = config();
        let svc = service("d", "fd00:96::14", json!({}));
        let s = slice(
            "d",
            "d-1",
            ("http", 8080, "TCP"),
            &[ready("fd00:42::5", "node-a")],
        );
        let r = ruleset(
            &build(&[svc], &[s], &c).v6,
            Family::V6,
            &c.cluster_cidrs,
            &mut Namer::default(),
            &mut FragmentCache::default(),
        );
        let (_, ep) = chain_named(&r, "endpoint-");
        assert_eq!(ep.rules[1], "meta l4proto tcp dnat to [fd00:42::5]:8080");
        assert!(r.sets[SERVICE_IPS].decl.starts_with("type ipv6_addr"));
        let script = replace_script(Family::V6, &r);
        assert!(script.starts_with("add table ip6 rkube-proxy\ndelete table ip6 rkube-proxy\n"));
        let over = full_script(
            Family::V6,
            &r,
            &Existing {
                chains: vec!["endpoint-OLD".into()],
                sets: vec![("affinity-OLD".into(), false)],
            },
        );
        assert!(over.contains("\nflush chain ip6 rkube-proxy endpoint-OLD\n"));
        assert!(over.contains("\ndelete set ip6 rkube-proxy affinity-OLD\n"));
        assert!(over.ends_with("delete chain ip6 rkube-proxy endpoint-OLD\n"));
    }

    #[test]
    fn removing_an_endpoint_rewrites_one_chain_and_deletes_one() {
        let svc = service("web", "10.96.0.10", json!({}));
        let two = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a"), ready("10.42.1.6", "node-b")],
        );
        let one = slice(
            "web",
            "web-1",
            ("http", 8080, "TCP"),
            &[ready("10.42.0.5", "node-a")],
        );
        let old = render(std::slice::from_ref(&svc), &[two]);
        let new = render(&[svc], &[one]);
        let changes = diff(&old, &new);
        assert_eq!(changes.written_chains.len(), 1);
        assert!(changes.written_chains[0].0.starts_with("service-"));
        assert_eq!(changes.removed_chains.len(), 1);
        assert!(changes.removed_chains[0].ends_with("__10.42.1.6/8080"));
        assert!(changes.added_elements.is_empty() && changes.removed_elements.is_empty());
        let script = incremental_script(Family::V4, &changes, &new);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 5, "{script}");
        assert!(lines[0].starts_with("flush chain ip rkube-proxy service-"));
        assert!(lines[1].starts_with("flush chain ip rkube-proxy endpoint-"));
        assert!(lines[4].starts_with("delete chain ip rkube-proxy endpoint-"));
    }
}
