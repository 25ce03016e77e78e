//! The iptables fallback (when `nft` is missing), in the manner of kube-proxy's iptables
//! mode: our own `RKUBE-*` chains in the nat and filter tables, loaded with
//! `iptables-restore --noflush` / `ip6tables-restore --noflush` (chains that changed are
//! re-declared, which flushes them, and rewritten; removed ones are deleted), entered from
//! the built-in chains by jump rules that are checked and inserted once.
//!
//! Ruleset chain names are `"<table> <chain>"`.

use std::fmt::Write as _;

use cni::IpNet;

use crate::model::{Endpoint, Family, FamilyModel, ServicePort};
use crate::names::Namer;
use crate::ruleset::{Changes, FragmentCache, Ruleset};

const MASQ_MARK: &str = "0x4000";
const NAT_SERVICES: &str = "nat RKUBE-SERVICES";
const NAT_NODEPORTS: &str = "nat RKUBE-NODEPORTS";
const NAT_POSTROUTING: &str = "nat RKUBE-POSTROUTING";
const NAT_MARK_MASQ: &str = "nat RKUBE-MARK-MASQ";
const FILTER_SERVICES: &str = "filter RKUBE-SERVICES";
const FILTER_EXTERNAL: &str = "filter RKUBE-EXTERNAL-SERVICES";
const FILTER_FIREWALL: &str = "filter RKUBE-FIREWALL";

/// (table, built-in chain, rule) entering our chains.
pub const JUMPS: &[(&str, &str, &str)] = &[
    ("nat", "PREROUTING", "-j RKUBE-SERVICES"),
    ("nat", "OUTPUT", "-j RKUBE-SERVICES"),
    ("nat", "POSTROUTING", "-j RKUBE-POSTROUTING"),
    ("filter", "INPUT", "-m conntrack --ctstate NEW -j RKUBE-FIREWALL"),
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW -j RKUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -j RKUBE-FIREWALL",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -j RKUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW -j RKUBE-EXTERNAL-SERVICES",
    ),
    ("filter", "OUTPUT", "-m conntrack --ctstate NEW -j RKUBE-FIREWALL"),
    ("filter", "OUTPUT", "-m conntrack --ctstate NEW -j RKUBE-SERVICES"),
];

fn short(chain: &str) -> &str {
    chain.split_once(' ').map(|(_, c)| c).unwrap_or(chain)
}

/// The desired chains of one family.
pub fn ruleset(
    model: &FamilyModel,
    family: Family,
    cluster_cidrs: &[IpNet],
    namer: &mut Namer,
    cache: &mut FragmentCache,
) -> Ruleset {
    let mut r = Ruleset::default();
    for chain in [
        NAT_SERVICES,
        NAT_NODEPORTS,
        NAT_POSTROUTING,
        NAT_MARK_MASQ,
        FILTER_SERVICES,
        FILTER_EXTERNAL,
        FILTER_FIREWALL,
    ] {
        r.chain(chain);
    }
    r.rule(NAT_MARK_MASQ, format!("-j MARK --or-mark {MASQ_MARK}"));
    r.rule(
        NAT_POSTROUTING,
        format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
    );
    r.rule(NAT_POSTROUTING, format!("-j MARK --xor-mark {MASQ_MARK}"));
    r.rule(NAT_POSTROUTING, "-j MASQUERADE --random-fully");
    // kube-proxy's local-traffic detector takes one CIDR per family.
    let cidr = cluster_cidrs
        .iter()
        .find(|c| Family::of(c.addr) == family)
        .map(|c| c.network().to_string());
    let skeleton = r.skeleton();
    for sp in model.ports.values() {
        let fragment = cache.fragment(family, sp, &skeleton, |f| {
            service_port(f, family, sp, cidr.as_deref(), namer)
        });
        r.merge(fragment);
    }
    let loopback = if family == Family::V4 {
        "127.0.0.0/8"
    } else {
        "::1"
    };
    r.rule(
        NAT_SERVICES,
        format!("! -d {loopback} -m addrtype --dst-type LOCAL -j RKUBE-NODEPORTS"),
    );
    r
}

fn service_port(r: &mut Ruleset, family: Family, sp: &ServicePort, cidr: Option<&str>, namer: &mut Namer) {
    let proto = sp.name.protocol.as_str();
    let id = format!("{}/{}", sp.name, proto);
    let svc = namer.iptables_chain("RKUBE-SVC-", &id);
    let svl = namer.iptables_chain("RKUBE-SVL-", &id);
    let ext = namer.iptables_chain("RKUBE-EXT-", &id);
    let fw = namer.iptables_chain("RKUBE-FW-", &id);
    let internal = if sp.internal_policy_local { &svl } else { &svc };
    let external_policy = if sp.external_policy_local { &svl } else { &svc };
    let comment = format!("-m comment --comment \"{}\"", sp.name);
    let dst = |ip: std::net::IpAddr| format!("-d {ip} -p {proto} -m {proto} --dport {}", sp.port);
    // TCP gets a reset (see the nft backend's reject chain).
    let verdict = match (sp.has_endpoints, sp.name.protocol) {
        (true, _) => "DROP",
        (false, crate::model::Protocol::Tcp) => "REJECT --reject-with tcp-reset",
        (false, _) => "REJECT",
    };

    if sp.has_internal_endpoints() {
        r.rule(
            NAT_SERVICES,
            format!("{comment} {} -j {internal}", dst(sp.cluster_ip)),
        );
        if let Some(cidr) = cidr {
            r.rule(
                &format!("nat {internal}"),
                format!("{} ! -s {cidr} -j RKUBE-MARK-MASQ", dst(sp.cluster_ip)),
            );
        }
    } else {
        r.rule(
            FILTER_SERVICES,
            format!("{comment} {} -j {verdict}", dst(sp.cluster_ip)),
        );
    }
    for addr in sp.external_destinations() {
        if sp.has_endpoints {
            r.rule(NAT_SERVICES, format!("{comment} {} -j {ext}", dst(addr)));
        }
        if !sp.has_external_endpoints() {
            r.rule(FILTER_EXTERNAL, format!("{comment} {} -j {verdict}", dst(addr)));
        }
    }
    if !sp.load_balancer_ips.is_empty() && !sp.load_balancer_source_ranges.is_empty() {
        for addr in &sp.load_balancer_ips {
            // The filter table runs after DNAT: match the connection's original destination.
            r.rule(
                FILTER_FIREWALL,
                format!(
                    "{comment} -p {proto} -m conntrack --ctorigdst {addr} --ctorigdstport {} -j {fw}",
                    sp.port
                ),
            );
        }
        let chain = format!("filter {fw}");
        for range in &sp.load_balancer_source_ranges {
            r.rule(&chain, format!("-s {range} -j RETURN"));
        }
        r.rule(&chain, "-j DROP");
    }
    if let Some(node_port) = sp.node_port {
        let np = format!("-p {proto} -m {proto} --dport {node_port}");
        if sp.has_endpoints {
            r.rule(NAT_NODEPORTS, format!("{comment} {np} -j {ext}"));
        }
        if !sp.has_external_endpoints() {
            r.rule(
                FILTER_EXTERNAL,
                format!("{comment} -m addrtype --dst-type LOCAL {np} -j {verdict}"),
            );
        }
    }
    if sp.has_endpoints && sp.externally_accessible() {
        let chain = format!("nat {ext}");
        r.chain(&chain);
        if !sp.external_policy_local {
            r.rule(&chain, "-j RKUBE-MARK-MASQ");
        } else {
            if let Some(cidr) = cidr {
                r.rule(&chain, format!("-s {cidr} -j {svc}"));
            }
            r.rule(&chain, "-m addrtype --src-type LOCAL -j RKUBE-MARK-MASQ");
            r.rule(&chain, format!("-m addrtype --src-type LOCAL -j {svc}"));
        }
        if sp.has_external_endpoints() {
            r.rule(&chain, format!("-j {external_policy}"));
        }
    }
    let seps: std::collections::BTreeMap<&Endpoint, String> = sp
        .reachable_endpoints()
        .into_iter()
        .map(|ep| (ep, namer.iptables_chain("RKUBE-SEP-", &format!("{id}/{ep}"))))
        .collect();
    let sep = |ep: &Endpoint| seps[ep].clone();
    let mask = if family == Family::V4 {
        "255.255.255.255"
    } else {
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    };
    for (chain, endpoints, used) in [
        (&svc, &sp.cluster_endpoints, sp.uses_cluster_endpoints()),
        (&svl, &sp.local_endpoints, sp.uses_local_endpoints()),
    ] {
        if !used || endpoints.is_empty() {
            continue;
        }
        let chain = format!("nat {chain}");
        r.chain(&chain);
        if let Some(timeout) = sp.affinity_timeout {
            for ep in endpoints {
                let sep = sep(ep);
                r.rule(
                    &chain,
                    format!("-m recent --name {sep} --mask {mask} --rsource --rcheck --seconds {timeout} --reap -j {sep}"),
                );
            }
        }
        let n = endpoints.len();
        for (i, ep) in endpoints.iter().enumerate() {
            let left = n - i;
            if left > 1 {
                r.rule(
                    &chain,
                    format!(
                        "-m statistic --mode random --probability {:.10} -j {}",
                        1.0 / left as f64,
                        sep(ep)
                    ),
                );
            } else {
                r.rule(&chain, format!("-j {}", sep(ep)));
            }
        }
    }
    for ep in sp.reachable_endpoints() {
        let sep = sep(ep);
        let chain = format!("nat {sep}");
        r.rule(&chain, format!("-s {} -j RKUBE-MARK-MASQ", ep.ip));
        if sp.affinity_timeout.is_some() {
            r.rule(
                &chain,
                format!("-m recent --name {sep} --mask {mask} --rsource --set"),
            );
        }
        r.rule(
            &chain,
            format!("-p {proto} -m {proto} -j DNAT --to-destination {ep}"),
        );
    }
}

/// `iptables-restore --noflush` input: `chains` are (re)declared and written, `removed`
/// declared and deleted.
fn restore_input(written: &[(String, Vec<String>)], removed: &[String]) -> String {
    let mut out = String::new();
    for table in ["nat", "filter"] {
        let mine = |c: &String| c.split_once(' ').is_some_and(|(t, _)| t == table);
        let w: Vec<&(String, Vec<String>)> = written.iter().filter(|(c, _)| mine(c)).collect();
        let rm: Vec<&String> = removed.iter().filter(|c| mine(c)).collect();
        if w.is_empty() && rm.is_empty() {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        for (chain, _) in &w {
            let _ = writeln!(out, ":{} - [0:0]", short(chain));
        }
        for chain in &rm {
            let _ = writeln!(out, ":{} - [0:0]", short(chain));
        }
        for (chain, rules) in &w {
            for rule in rules {
                let _ = writeln!(out, "-A {} {rule}", short(chain));
            }
        }
        for chain in &rm {
            let _ = writeln!(out, "-X {}", short(chain));
        }
        let _ = writeln!(out, "COMMIT");
    }
    out
}

/// Startup: every chain written; `existing` (our chains found in the kernel) not in `new`
/// are deleted.
pub fn full_input(new: &Ruleset, existing: &[String]) -> String {
    let written: Vec<(String, Vec<String>)> = new
        .chains
        .iter()
        .map(|(n, c)| (n.clone(), c.rules.clone()))
        .collect();
    let removed: Vec<String> = existing
        .iter()
        .filter(|c| !new.chains.contains_key(*c))
        .cloned()
        .collect();
    restore_input(&written, &removed)
}

pub fn incremental_input(changes: &Changes) -> String {
    let written: Vec<(String, Vec<String>)> = changes
        .written_chains
        .iter()
        .map(|(n, c)| (n.clone(), c.rules.clone()))
        .collect();
    restore_input(&written, &changes.removed_chains)
}

fn tool(family: Family, name: &str) -> String {
    match family {
        Family::V4 => format!("ip{name}"),
        Family::V6 => format!("ip6{name}"),
    }
}

/// Our chains (`"<table> RKUBE-…"`) currently in the kernel.
pub async fn existing_chains(family: Family) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for table in ["nat", "filter"] {
        let save = crate::exec::output_with_stdin(&tool(family, "tables-save"), &["-t", table], "").await?;
        for line in String::from_utf8_lossy(&save.stdout).lines() {
            if let Some(rest) = line.strip_prefix(":RKUBE-") {
                let name = rest.split_whitespace().next().unwrap_or_default();
                out.push(format!("{table} RKUBE-{name}"));
            }
        }
    }
    Ok(out)
}

pub async fn apply(family: Family, input: &str) -> anyhow::Result<()> {
    if input.is_empty() {
        return Ok(());
    }
    crate::exec::run_with_stdin(&tool(family, "tables-restore"), &["--noflush", "-w", "5"], input).await
}

/// Inserts the jumps from the built-in chains where missing (after our chains exist).
pub async fn ensure_jumps(family: Family) -> anyhow::Result<()> {
    let iptables = tool(family, "tables");
    for (table, chain, rule) in JUMPS.iter().rev() {
        let rule: Vec<&str> = rule.split_whitespace().collect();
        let mut check = vec!["-w", "5", "-t", table, "-C", chain];
        check.extend(&rule);
        if crate::exec::run_with_stdin(&iptables, &check, "").await.is_ok() {
            continue;
        }
        let mut insert = vec!["-w", "5", "-t", table, "-I", chain];
        insert.extend(&rule);
        crate::exec::run_with_stdin(&iptables, &insert, "").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::model::build;
    use crate::testing::{ready, service, slice};
    use serde_json::json;

    fn render(endpoints: &[&str], spec: serde_json::Value) -> Ruleset {
        let mut c = Config::new("node-a");
        c.cluster_cidrs = vec!["10.42.0.0/16".parse().unwrap()];
        let svc = service("web", "10.96.0.10", spec);
        let eps: Vec<_> = endpoints.iter().map(|ip| ready(ip, "node-a")).collect();
        let s = slice("web", "web-1", ("http", 8080, "TCP"), &eps);
        let m = build(&[svc], &[s], &c);
        ruleset(
            &m.v4,
            Family::V4,
            &c.cluster_cidrs,
            &mut Namer::default(),
            &mut FragmentCache::default(),
        )
    }

    #[test]
    fn cluster_ip_balances_with_statistic_and_dnats() {
        let r = render(&["10.42.0.5", "10.42.0.6"], json!({}));
        let services = &r.chains[NAT_SERVICES].rules;
        assert!(
            services[0].starts_with("-m comment --comment \"default/web:http\" -d 10.96.0.10 -p tcp -m tcp --dport 80 -j RKUBE-SVC-"),
            "{services:?}"
        );
        assert_eq!(
            services.last().unwrap(),
            "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j RKUBE-NODEPORTS"
        );
        let (_, svc) = r
            .chains
            .iter()
            .find(|(n, _)| n.starts_with("nat RKUBE-SVC-"))
            .unwrap();
        assert_eq!(
            svc.rules[0],
            "-d 10.96.0.10 -p tcp -m tcp --dport 80 ! -s 10.42.0.0/16 -j RKUBE-MARK-MASQ"
        );
        assert!(
            svc.rules[1].starts_with("-m statistic --mode random --probability 0.5000000000 -j RKUBE-SEP-")
        );
        assert!(svc.rules[2].starts_with("-j RKUBE-SEP-"));
        let sep = r
            .chains
            .iter()
            .find(|(_, c)| c.rules.iter().any(|r| r.ends_with("10.42.0.5:8080")))
            .unwrap();
        assert_eq!(
            sep.1.rules,
            [
                "-s 10.42.0.5 -j RKUBE-MARK-MASQ",
                "-p tcp -m tcp -j DNAT --to-destination 10.42.0.5:8080"
            ]
        );
        assert!(
            sep.0.len() <= "filter ".len() + 28,
            "iptables chain names hold 28 characters"
        );
    }

    #[test]
    fn no_endpoints_reject_in_filter_and_restore_input() {
        let r = render(&[], json!({}));
        assert_eq!(
            r.chains[FILTER_SERVICES].rules,
            [
                "-m comment --comment \"default/web:http\" -d 10.96.0.10 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset"
            ]
        );
        let input = full_input(&r, &["nat RKUBE-SVC-OLD".to_string()]);
        assert!(input.starts_with("*nat\n:RKUBE-MARK-MASQ - [0:0]\n"), "{input}");
        assert!(input.contains("\n-X RKUBE-SVC-OLD\nCOMMIT\n*filter\n"), "{input}");
        assert!(input.ends_with("COMMIT\n"));
    }
}
