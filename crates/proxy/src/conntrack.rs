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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;
    use crate::model::build;
    use crate::testing::{ready, service, slice};
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use serde_json::json;

    fn model(protocol: &str, endpoints: &[&str]) -> FamilyModel {
        let svc: Service = service(
            "dns",
            "10.96.0.10",
            json!({"type": "NodePort", "externalIPs": ["192.168.50.100"],
                   "ports": [{"name": "dns", "port": 53, "nodePort": 30053, "protocol": protocol}]}),
        );
        let eps: Vec<_> = endpoints.iter().map(|ip| ready(ip, "node-a")).collect();
        let s: EndpointSlice = slice("dns", "dns-1", ("dns", 5353, protocol), &eps);
        build(&[svc], &[s], &Config::new("node-a")).v4
    }

    #[test]
    fn first_udp_endpoint_clears_flows_to_the_service() {
        let stale = stale_entries(&model("UDP", &[]), &model("UDP", &["10.42.0.5"]));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            stale.into_iter().collect::<Vec<_>>(),
            [
                Stale::Destination {
                    ip: ip("10.96.0.10"),
                    port: 53
                },
                Stale::Destination {
                    ip: ip("192.168.50.100"),
                    port: 53
                },
                Stale::NodePort { port: 30053 },
            ]
        );
    }

    #[test]
    fn removed_udp_endpoint_clears_its_nat_flows_and_tcp_is_left_alone() {
        let stale = stale_entries(
            &model("UDP", &["10.42.0.5", "10.42.0.6"]),
            &model("UDP", &["10.42.0.6"]),
        );
        let ep = "10.42.0.5".parse::<IpAddr>().unwrap();
        assert!(stale.contains(&Stale::Nat {
            ip: "10.96.0.10".parse().unwrap(),
            port: 53,
            endpoint: ep
        }));
        assert!(stale.contains(&Stale::NodePortNat {
            port: 30053,
            endpoint: ep
        }));
        assert_eq!(stale.len(), 3);
        assert!(stale_entries(&model("TCP", &["10.42.0.5"]), &model("TCP", &[])).is_empty());
        assert!(stale_entries(&model("UDP", &["10.42.0.5"]), &model("UDP", &["10.42.0.5"])).is_empty());
    }

    #[test]
    fn conntrack_arguments() {
        let nat = Stale::Nat {
            ip: "fd00:96::10".parse().unwrap(),
            port: 53,
            endpoint: "fd00:42::5".parse().unwrap(),
        };
        assert_eq!(
            args(Family::V6, &nat).join(" "),
            "-D -f ipv6 -p udp --orig-dst fd00:96::10 --dport 53 --dst-nat fd00:42::5"
        );
        assert_eq!(
            args(Family::V4, &Stale::NodePort { port: 30053 }).join(" "),
            "-D -p udp --dport 30053"
        );
    }
}
