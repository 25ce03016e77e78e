//! The cross-node pod network (flannel's role in k3s), run by every node agent.
//!
//! Each node's pods live in its `spec.podCIDR(s)` on the `cni0` bridge (the bridge CNI plugin
//! attaches them; [`prepare`] makes the bridge with its gateway address first, so the node's
//! DNS server can listen there before any pod exists). This crate makes the other nodes' pod
//! CIDRs reachable ([`routes`]: host-gw routes when the peer is on one of our links, VXLAN in
//! flannel's layout otherwise — [`Backend`] picks), masquerades pod traffic leaving the
//! cluster CIDR ([`masquerade`]), and turns on what routing pods needs (IPv4 forwarding, and
//! bridged traffic through netfilter so Service rules see pod → pod on one bridge).
//!
//! A node publishes its VXLAN device's MAC in the annotation [`ANNOTATION_VTEP_MAC`]; peers
//! read it from the Node objects they watch.

pub mod ip;
pub mod masquerade;
pub mod routes;

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use cni::cidr::IpNet;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

/// The VXLAN device (flannel's is `flannel.1`), its VNI and UDP port (flannel's and the
/// Linux default, 8472).
pub const VXLAN_DEVICE: &str = "rkube.1";
pub const VXLAN_VNI: &str = "1";
pub const VXLAN_PORT: &str = "8472";
/// VXLAN's encapsulation overhead over IPv4.
const VXLAN_OVERHEAD: u32 = 50;
/// Node annotations this crate writes.
pub const ANNOTATION_VTEP_MAC: &str = "podnet.rkube.io/vtep-mac";
pub const ANNOTATION_BACKEND: &str = "podnet.rkube.io/backend";

/// How pods on other nodes are reached (`--flannel-backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// host-gw to peers on one of our links, VXLAN to the others.
    Auto,
    HostGw,
    Vxlan,
    /// No cross-node routes (a single node, or another network owns them).
    None,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "host-gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            "none" => Ok(Backend::None),
            _ => Err(format!(
                "unknown backend {s:?}: expected auto, host-gw, vxlan or none"
            )),
        }
    }
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
            Backend::None => "none",
        }
    }

    fn uses_vxlan(self) -> bool {
        matches!(self, Backend::Auto | Backend::Vxlan)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub backend: Backend,
    /// The whole pod address range (`--cluster-cidr`): traffic staying inside keeps its
    /// source address.
    pub cluster_cidrs: Vec<IpNet>,
    /// The pod bridge (`cni0`).
    pub bridge: String,
}

/// The node's pod network once it is in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub pod_cidrs: Vec<IpNet>,
    /// The bridge's address per family (`.1` of each pod CIDR): the pods' gateway.
    pub gateways: Vec<IpAddr>,
    /// The MTU pods' interfaces must use (room for VXLAN's header), if not the default.
    pub pod_mtu: Option<u32>,
}

/// Sets the node's pod network up, then keeps the routes to the other nodes' pods in step
/// with the Nodes until dropped. `ready` gets the [`Network`] once pods can be attached.
/// Failures before that are retried; a broken watch afterwards is retried by the watcher.
pub async fn run(
    client: kube::Client,
    config: Config,
    ready: watch::Sender<Option<Network>>,
) -> anyhow::Result<()> {
    let mut delay = Duration::from_secs(1);
    let network = loop {
        match prepare(&client, &config).await {
            Ok(network) => break network,
            Err(err) => {
                tracing::warn!(err = format!("{err:#}"), "pod network not ready");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(16));
            }
        }
    };
    tracing::info!(?network, backend = config.backend.name(), "pod network ready");
    let _ = ready.send(Some(network));
    sync_routes(client, config).await
}

/// Waits for the node's pod CIDR, then: sysctls, the bridge with its gateway addresses, the
/// VXLAN device (published on the Node), the masquerade rules.
pub async fn prepare(client: &kube::Client, config: &Config) -> anyhow::Result<Network> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pod_cidrs = loop {
        let node = nodes.get(&config.node_name).await.context("read the node")?;
        let cidrs = pod_cidrs(&node);
        if !cidrs.is_empty() {
            break cidrs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ip::sysctl("net/ipv4/ip_forward", "1")?;
    if pod_cidrs.iter().any(|c| !c.is_ipv4()) {
        ip::sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    // Pod → Service → pod on the same bridge is bridged, not routed: without this the reply
    // would skip the DNAT's reverse translation.
    ip::sysctl("net/bridge/bridge-nf-call-iptables", "1")?;
    ip::sysctl("net/bridge/bridge-nf-call-ip6tables", "1")?;

    let underlay = ip::interface_with_address(config.node_ip).await?;
    let pod_mtu = config
        .backend
        .uses_vxlan()
        .then(|| underlay.mtu.saturating_sub(VXLAN_OVERHEAD));
    ensure_bridge(&config.bridge, &pod_cidrs, pod_mtu).await?;
    if config.backend.uses_vxlan() {
        let mac = ensure_vxlan(config.node_ip, &underlay, &pod_cidrs).await?;
        let patch = serde_json::json!({"metadata": {"annotations": {
            ANNOTATION_VTEP_MAC: mac,
            ANNOTATION_BACKEND: config.backend.name(),
        }}});
        nodes
            .patch(
                &config.node_name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .context("publish the VXLAN device's MAC on the node")?;
    }
    masquerade::install(&config.cluster_cidrs).await?;
    Ok(Network {
        gateways: pod_cidrs.iter().map(|c| c.offset(1)).collect(),
        pod_cidrs,
        pod_mtu,
    })
}

/// The Node's pod CIDRs (network addresses).
pub fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let spec = node.spec.clone().unwrap_or_default();
    let cidrs = spec
        .pod_cidrs
        .filter(|c| !c.is_empty())
        .or_else(|| spec.pod_cidr.map(|c| vec![c]))
        .unwrap_or_default();
    cidrs
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok())
        .map(|c| c.network())
        .collect()
}

/// The bridge with the gateway address of each pod CIDR, up. The bridge plugin finds it and
/// attaches pods; creating it here lets node services bind the gateway address early.
async fn ensure_bridge(bridge: &str, pod_cidrs: &[IpNet], mtu: Option<u32>) -> anyhow::Result<()> {
    if ip::link_mac(bridge).await.is_none() {
        ip::ip(&["link", "add", bridge, "type", "bridge"]).await?;
    }
    if let Some(mtu) = mtu {
        ip::ip(&["link", "set", bridge, "mtu", &mtu.to_string()]).await?;
    }
    for cidr in pod_cidrs {
        let gateway = format!("{}/{}", cidr.offset(1), cidr.prefix_len);
        ip::ip(&["addr", "replace", &gateway, "dev", bridge]).await?;
    }
    ip::ip(&["link", "set", bridge, "up"]).await?;
    Ok(())
}

/// The VXLAN device on the underlay interface, with our pod CIDR's network address (the VTEP
/// address peers route to); returns its MAC.
async fn ensure_vxlan(
    node_ip: IpAddr,
    underlay: &ip::Interface,
    pod_cidrs: &[IpNet],
) -> anyhow::Result<String> {
    let existing = ip::ip_json(&["-d", "link", "show", "dev", VXLAN_DEVICE])
        .await
        .unwrap_or_default();
    let matches = existing.first().is_some_and(|link| {
        let data = &link["linkinfo"]["info_data"];
        data["id"].as_u64().map(|id| id.to_string()).as_deref() == Some(VXLAN_VNI)
            && (data["local"].as_str() == Some(&node_ip.to_string())
                || data["local6"].as_str() == Some(&node_ip.to_string()))
            && data["port"].as_u64().map(|p| p.to_string()).as_deref() == Some(VXLAN_PORT)
    });
    if !matches {
        if !existing.is_empty() {
            ip::ip(&["link", "del", VXLAN_DEVICE]).await?;
        }
        let ip = node_ip.to_string();
        ip::ip(&[
            "link",
            "add",
            VXLAN_DEVICE,
            "type",
            "vxlan",
            "id",
            VXLAN_VNI,
            "local",
            &ip,
            "dev",
            &underlay.name,
            "dstport",
            VXLAN_PORT,
            "nolearning",
        ])
        .await?;
    }
    let mtu = underlay.mtu.saturating_sub(VXLAN_OVERHEAD).to_string();
    ip::ip(&["link", "set", VXLAN_DEVICE, "mtu", &mtu]).await?;
    for cidr in pod_cidrs.iter().filter(|c| c.is_ipv4() == node_ip.is_ipv4()) {
        let host = if cidr.is_ipv4() { 32 } else { 128 };
        let vtep = format!("{}/{host}", cidr.network().addr);
        ip::ip(&["addr", "replace", &vtep, "dev", VXLAN_DEVICE]).await?;
    }
    ip::ip(&["link", "set", VXLAN_DEVICE, "up"]).await?;
    ip::link_mac(VXLAN_DEVICE)
        .await
        .context("the VXLAN device has no MAC address")
}

/// A Node as a peer: its InternalIP (ExternalIP when it has none) of our family.
fn peer(node: &Node, family_v4: bool) -> Option<routes::Peer> {
    let addresses = node.status.as_ref()?.addresses.clone().unwrap_or_default();
    let pick = |kind: &str| {
        addresses
            .iter()
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() == family_v4)
    };
    Some(routes::Peer {
        name: node.metadata.name.clone()?,
        node_ip: pick("InternalIP").or_else(|| pick("ExternalIP"))?,
        pod_cidrs: pod_cidrs(node),
        vtep_mac: node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_VTEP_MAC))
            .cloned(),
    })
}

/// Follows the Nodes and installs / removes routes so every peer's pod CIDRs are reachable.
async fn sync_routes(client: kube::Client, config: Config) -> anyhow::Result<()> {
    if config.backend == Backend::None {
        return std::future::pending().await;
    }
    let nodes: Api<Node> = Api::all(client);
    let mut events = watcher::watcher(nodes, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut peers: HashMap<String, routes::Peer> = HashMap::new();
    let mut listing: Option<HashMap<String, routes::Peer>> = None;
    // What is installed; `None` for routes a previous run left (their details unknown).
    let mut applied: HashMap<IpNet, Option<routes::Route>> =
        routes::installed().await.into_iter().map(|c| (c, None)).collect();
    let mut on_link_cache: HashMap<IpAddr, bool> = HashMap::new();
    let v4 = config.node_ip.is_ipv4();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listing = Some(HashMap::new()),
            Ok(watcher::Event::InitApply(node)) => {
                if let (Some(list), Some(peer)) = (listing.as_mut(), peer(&node, v4)) {
                    list.insert(peer.name.clone(), peer);
                }
                continue;
            }
            Ok(watcher::Event::InitDone) => peers = listing.take().unwrap_or_default(),
            Ok(watcher::Event::Apply(node)) => match peer(&node, v4) {
                Some(peer) => {
                    if peers.get(&peer.name) == Some(&peer) {
                        continue;
                    }
                    peers.insert(peer.name.clone(), peer);
                }
                None => continue,
            },
            Ok(watcher::Event::Delete(node)) => {
                peers.remove(node.metadata.name.as_deref().unwrap_or_default());
            }
            Err(err) => {
                tracing::warn!(%err, "node watch");
                continue;
            }
        }
        for peer in peers.values() {
            if let std::collections::hash_map::Entry::Vacant(entry) = on_link_cache.entry(peer.node_ip) {
                entry.insert(ip::on_link(peer.node_ip).await);
            }
        }
        let list: Vec<routes::Peer> = peers.values().cloned().collect();
        let (desired, unreachable) = routes::plan(config.backend, config.node_ip, &list, |ip| {
            on_link_cache.get(&ip).copied().unwrap_or(false)
        });
        if !unreachable.is_empty() {
            tracing::warn!(
                ?unreachable,
                backend = config.backend.name(),
                "no route to these nodes' pods"
            );
        }
        for (cidr, route) in &desired {
            if applied.get(cidr) == Some(&Some(route.clone())) {
                continue;
            }
            match routes::install(*cidr, route, VXLAN_DEVICE).await {
                Ok(()) => {
                    applied.insert(*cidr, Some(route.clone()));
                }
                Err(err) => tracing::warn!(err = format!("{err:#}"), %cidr, "cannot route a node's pods"),
            }
        }
        let gone: Vec<IpNet> = applied
            .keys()
            .filter(|c| !desired.contains_key(c))
            .copied()
            .collect();
        for cidr in gone {
            let route = applied.remove(&cidr).flatten();
            routes::remove(cidr, route.as_ref(), VXLAN_DEVICE).await;
        }
    }
    anyhow::bail!("the node watch ended")
}
