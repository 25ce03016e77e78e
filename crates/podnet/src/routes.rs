//! Which route reaches each peer node's pods (pure), and applying the difference.
//!
//! host-gw: `<peer podCIDR> via <peer node IP>`, valid only when the peer is on one of our
//! links. VXLAN (flannel's layout): the peer's VTEP address is the network address of its pod
//! CIDR; the route is `<podCIDR> via <vtep> dev <vxlan> onlink`, with a permanent neighbour
//! entry (vtep → the peer device's MAC) and an FDB entry (MAC → the peer node IP) so the kernel
//! never floods or learns.

use std::collections::BTreeMap;
use std::net::IpAddr;

use cni::cidr::IpNet;

use crate::Backend;
use crate::ip::{self, ROUTE_PROTOCOL};

/// Another node as the pod network sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub node_ip: IpAddr,
    pub pod_cidrs: Vec<IpNet>,
    /// Its VXLAN device's MAC (published in its Node annotation), if it has one.
    pub vtep_mac: Option<String>,
}

/// How one remote pod CIDR is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    HostGw {
        via: IpAddr,
    },
    Vxlan {
        vtep: IpAddr,
        mac: String,
        node_ip: IpAddr,
    },
}

/// The routes for `peers` under `backend`. `on_link` says whether a node IP is directly
/// reachable. A peer that no route can reach (host-gw across a router, VXLAN without a MAC
/// yet) is left out and named in the second list.
pub fn plan(
    backend: Backend,
    own_ip: IpAddr,
    peers: &[Peer],
    on_link: impl Fn(IpAddr) -> bool,
) -> (BTreeMap<IpNet, Route>, Vec<String>) {
    let mut routes = BTreeMap::new();
    let mut unreachable = Vec::new();
    for peer in peers {
        if peer.node_ip == own_ip || peer.node_ip.is_ipv4() != own_ip.is_ipv4() {
            continue;
        }
        let direct = matches!(backend, Backend::HostGw | Backend::Auto) && on_link(peer.node_ip);
        for cidr in &peer.pod_cidrs {
            // One underlay family carries the pod CIDRs of the same family.
            if cidr.is_ipv4() != own_ip.is_ipv4() {
                continue;
            }
            let route = if direct {
                Some(Route::HostGw { via: peer.node_ip })
            } else if matches!(backend, Backend::Vxlan | Backend::Auto) {
                peer.vtep_mac.as_ref().map(|mac| Route::Vxlan {
                    vtep: cidr.network().addr,
                    mac: mac.clone(),
                    node_ip: peer.node_ip,
                })
            } else {
                None
            };
            match route {
                Some(route) => {
                    routes.insert(cidr.network(), route);
                }
                None => unreachable.push(peer.name.clone()),
            }
        }
    }
    (routes, unreachable)
}

/// Installs `route` for `cidr` (replacing what was there).
pub async fn install(cidr: IpNet, route: &Route, vxlan_device: &str) -> anyhow::Result<()> {
    let cidr = cidr.to_string();
    match route {
        Route::HostGw { via } => {
            ip::ip(&[
                "route",
                "replace",
                &cidr,
                "via",
                &via.to_string(),
                "proto",
                ROUTE_PROTOCOL,
            ])
            .await?;
        }
        Route::Vxlan { vtep, mac, node_ip } => {
            let vtep = vtep.to_string();
            ip::ip(&[
                "neigh",
                "replace",
                &vtep,
                "lladdr",
                mac,
                "dev",
                vxlan_device,
                "nud",
                "permanent",
            ])
            .await?;
            ip::run(
                "bridge",
                &[
                    "fdb",
                    "replace",
                    mac,
                    "dev",
                    vxlan_device,
                    "dst",
                    &node_ip.to_string(),
                    "self",
                    "permanent",
                ],
            )
            .await?;
            ip::ip(&[
                "route",
                "replace",
                &cidr,
                "via",
                &vtep,
                "dev",
                vxlan_device,
                "onlink",
                "proto",
                ROUTE_PROTOCOL,
            ])
            .await?;
        }
    }
    Ok(())
}

/// Removes what [`install`] added; pieces already gone are fine.
pub async fn remove(cidr: IpNet, route: Option<&Route>, vxlan_device: &str) {
    let _ = ip::ip(&["route", "del", &cidr.to_string(), "proto", ROUTE_PROTOCOL]).await;
    if let Some(Route::Vxlan { vtep, mac, node_ip }) = route {
        let _ = ip::ip(&["neigh", "del", &vtep.to_string(), "dev", vxlan_device]).await;
        let _ = ip::run(
            "bridge",
            &[
                "fdb",
                "del",
                mac,
                "dev",
                vxlan_device,
                "dst",
                &node_ip.to_string(),
                "self",
            ],
        )
        .await;
    }
}

/// The destinations of routes a previous run installed (our protocol number).
pub async fn installed() -> Vec<IpNet> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        if let Ok(routes) = ip::ip_json(&[family, "route", "show", "proto", ROUTE_PROTOCOL]).await {
            out.extend(
                routes
                    .iter()
                    .filter_map(|r| r["dst"].as_str()?.parse::<IpNet>().ok()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: &str, cidr: &str, mac: Option<&str>) -> Peer {
        Peer {
            name: name.into(),
            node_ip: ip.parse().unwrap(),
            pod_cidrs: vec![cidr.parse().unwrap()],
            vtep_mac: mac.map(str::to_owned),
        }
    }

    #[test]
    fn auto_picks_host_gw_on_link_and_vxlan_across_routers() {
        let own: IpAddr = "172.31.0.1".parse().unwrap();
        let peers = [
            peer("self", "172.31.0.1", "10.42.0.0/24", Some("aa:aa:aa:aa:aa:aa")),
            peer("near", "172.31.0.2", "10.42.1.0/24", Some("bb:bb:bb:bb:bb:bb")),
            peer("far", "192.168.9.3", "10.42.2.0/24", Some("cc:cc:cc:cc:cc:cc")),
            peer("new", "192.168.9.4", "10.42.3.0/24", None),
        ];
        let on_link = |ip: IpAddr| ip.to_string().starts_with("172.31.0.");
        let (routes, unreachable) = plan(Backend::Auto, own, &peers, on_link);
        assert_eq!(routes.len(), 2);
        assert_eq!(
            routes[&"10.42.1.0/24".parse().unwrap()],
            Route::HostGw {
                via: "172.31.0.2".parse().unwrap()
            }
        );
        assert_eq!(
            routes[&"10.42.2.0/24".parse().unwrap()],
            Route::Vxlan {
                vtep: "10.42.2.0".parse().unwrap(),
                mac: "cc:cc:cc:cc:cc:cc".into(),
                node_ip: "192.168.9.3".parse().unwrap()
            }
        );
        assert_eq!(unreachable, ["new"]);

        let (routes, unreachable) = plan(Backend::HostGw, own, &peers, on_link);
        assert_eq!(routes.len(), 1);
        assert_eq!(unreachable, ["far", "new"]);

        let (routes, _) = plan(Backend::Vxlan, own, &peers, on_link);
        assert!(routes.values().all(|r| matches!(r, Route::Vxlan { .. })));
        assert_eq!(routes.len(), 2);
    }
}
