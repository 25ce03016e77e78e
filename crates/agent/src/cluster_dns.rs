//! This node's share of the cluster DNS: the `dns` server on the pod bridge's gateway address
//! (port 53), and an EndpointSlice of the `kube-dns` Service in kube-system naming it, owned
//! by the Node (so it goes with the Node). The Service's `internalTrafficPolicy: Local` sends
//! each pod's queries to its own node's server; no pod is involved.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

pub const SERVICE: &str = "kube-dns";
pub const NAMESPACE: &str = "kube-system";
/// The `endpointslice.kubernetes.io/managed-by` of the slices agents write.
pub const MANAGED_BY: &str = "agent.rkube.io";

/// Settings from the agent's flags.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    pub cluster_domain: String,
    /// Where names outside the cluster domain go (`--dns-upstream`); empty: nowhere.
    pub upstreams: Vec<SocketAddr>,
    pub port: u16,
}

/// Waits for the pod network, then serves DNS on its gateway address and publishes the slice;
/// runs until the server stops.
pub async fn run(
    client: kube::Client,
    node_name: String,
    config: DnsConfig,
    mut network: watch::Receiver<Option<podnet::Network>>,
) -> anyhow::Result<()> {
    let network = network
        .wait_for(Option::is_some)
        .await
        .context("the pod network went away")?
        .clone()
        .expect("waited for Some");
    let listen: Vec<SocketAddr> = network
        .gateways
        .iter()
        .map(|ip| SocketAddr::new(*ip, config.port))
        .collect();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = dns::run(
        client.clone(),
        dns::Config {
            listen,
            cluster_domain: config.cluster_domain.clone(),
            upstreams: config.upstreams.clone(),
            ttl: 5,
        },
        ready_tx,
    );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("the cluster DNS server stopped"),
        _ = ready_rx => {}
    }
    if let Err(err) = publish(&client, &node_name, &network.gateways, config.port).await {
        tracing::error!(
            err = format!("{err:#}"),
            "cannot publish this node's DNS endpoint"
        );
    }
    server.await.context("the cluster DNS server stopped")
}

/// Applies `kube-dns-<node>`: one ready endpoint per family on this node.
pub async fn publish(
    client: &kube::Client,
    node_name: &str,
    addresses: &[IpAddr],
    port: u16,
) -> anyhow::Result<()> {
    let node = Api::<Node>::all(client.clone()).get(node_name).await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    for address in addresses {
        let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
        let name = if address.is_ipv4() {
            format!("{SERVICE}-{node_name}")
        } else {
            format!("{SERVICE}-{node_name}-v6")
        };
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                },
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Node", "name": node_name,
                    "uid": node.metadata.uid.clone().unwrap_or_default(),
                }],
            },
            "addressType": family,
            "endpoints": [{
                "addresses": [address.to_string()],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": node_name,
            }],
            "ports": [
                {"name": "dns", "port": port, "protocol": "UDP"},
                {"name": "dns-tcp", "port": port, "protocol": "TCP"},
            ],
        });
        slices
            .patch(
                &name,
                &PatchParams::apply(MANAGED_BY).force(),
                &Patch::Apply(&slice),
            )
            .await
            .with_context(|| format!("apply EndpointSlice {NAMESPACE}/{name}"))?;
    }
    Ok(())
}
