//! Stale UDP conntrack entries, as kube-proxy clears them: UDP has no connection to end, so a
//! flow keeps its old DNAT (or its cached "nothing here" rejection) until the entry is deleted.
//!
//! [`stale_entries`] is pure (old model, new model → what to delete); [`clear`] runs the
//! `conntrack` CLI (Debian package `conntrack`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::{Family, FamilyModel, Protocol, ServicePort};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    /// A UDP service destination that got its first endpoint: flows cached while it had none.
    Destination { ip: IpAddr, port: u16 },
    /// A UDP NodePort that got its first endpoint.
    NodePort { port: u16 },
    /// Flows from a service destination DNAT-ed to an endpoint that went away.
    Nat { ip: IpAddr, port: u16, endpoint: IpAddr },
    /// Flows to a NodePort DNAT-ed to an endpoint that went away.
    NodePortNat { port: u16, endpoint: IpAddr },
}

fn destinations(sp: &ServicePort) -> impl Iterator<Item = IpAddr> + '_ {
    std::iter::once(sp.cluster_ip).chain(sp.external_destinations())
}

/// What to delete after the rules for `new` are in place.
pub fn stale_entries(old: &FamilyModel, new: &FamilyModel) -> BTreeSet<Stale> {
    let mut out = BTreeSet::new();
    for (name, sp) in &new.ports {
        if name.protocol != Protocol::Udp {
            continue;
        }
        let had_endpoints = old.ports.get(name).is_some_and(|o| o.has_endpoints);
        if sp.has_endpoints && !had_endpoints {
            for ip in destinations(sp) {
                out.insert(Stale::Destination { ip, port: sp.port });
            }
            if let Some(port) = sp.node_port {
                out.insert(Stale::NodePort { port });
            }
        }
    }
    for (name, old_sp) in &old.ports {
        if name.protocol != Protocol::Udp {
            continue;
        }
        let new_sp = new.ports.get(name);
        let still: BTreeSet<IpAddr> = new_sp
            .map(|sp| sp.reachable_endpoints().into_iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        for ep in old_sp.reachable_endpoints() {
            if still.contains(&ep.ip) {
                continue;
            }
            for ip in destinations(old_sp) {
                out.insert(Stale::Nat {
                    ip,
                    port: old_sp.port,
                    endpoint: ep.ip,
                });
            }
            if let Some(port) = old_sp.node_port {
                out.insert(Stale::NodePortNat {
                    port,
                    endpoint: ep.ip,
                });
            }
        }
    }
    out
}

/// The `conntrack` arguments deleting one kind of stale entry.
pub fn args(family: Family, stale: &Stale) -> Vec<String> {
    let mut args: Vec<String> = vec!["-D".into()];
    if family == Family::V6 {
        args.extend(["-f".into(), "ipv6".into()]);
    }
    args.extend(["-p".into(), "udp".into()]);
    match stale {
        Stale::Destination { ip, port } => args.extend([
            "--orig-dst".into(),
            ip.to_string(),
            "--dport".into(),
            port.to_string(),
        ]),
        Stale::NodePort { port } => args.extend(["--dport".into(), port.to_string()]),
        Stale::Nat { ip, port, endpoint } => args.extend([
            "--orig-dst".into(),
            ip.to_string(),
            "--dport".into(),
            port.to_string(),
            "--dst-nat".into(),
            endpoint.to_string(),
        ]),
        Stale::NodePortNat { port, endpoint } => args.extend([
            "--dport".into(),
            port.to_string(),
            "--dst-nat".into(),
            endpoint.to_string(),
        ]),
    }
    args
}

/// Deletes the entries; "0 flow entries" (exit status 1 with that message) is not an error.
pub async fn clear(family: Family, stale: &BTreeSet<Stale>) {
    for entry in stale {
        let args = args(family, entry);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        match crate::exec::output_with_stdin("conntrack", &argv, "").await {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !stderr.contains("0 flow entries") {
                    tracing::warn!("conntrack {}: {}", args.join(" "), stderr.trim());
                }
            }
            Err(e) => tracing::warn!("conntrack: {e:#}"),
        }
    }
}
