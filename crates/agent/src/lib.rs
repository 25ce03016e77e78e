//! The node agent (the kubelet's role). This slice: joining a cluster ([`join`]), registering
//! the Node from what the machine has ([`machine`], [`node`]), and heartbeats ([`heartbeat`]):
//! the node's Lease renewed every 10 s, the status posted when it changed or every 5 minutes,
//! and the Node registered again if it is deleted.
//!
//! [`run`] is the agent's main loop; the pod workers (driving the `runtime` and `cni` crates for
//! the pods bound to this node) will run beside the heartbeat there, sharing the same client
//! and [`Config`].

pub mod heartbeat;
pub mod join;
pub mod machine;
pub mod node;
pub mod server;
pub mod streaming;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Who this node is and where it keeps its state.
#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    /// The node's InternalIP.
    pub node_ip: IpAddr,
    /// The data dir (the agent's files live under `<data-dir>/agent`; its filesystem is the
    /// node's ephemeral storage).
    pub data_dir: PathBuf,
    /// The server's own node: labelled `node-role.kubernetes.io/control-plane`, as k3s does.
    pub control_plane: bool,
    /// The kubelet API's port (`--kubelet-port`, 10250 as upstream), advertised in the Node's
    /// `status.daemonEndpoints`.
    pub kubelet_port: u16,
    /// The cluster CA (PEM): the kubelet API accepts client certificates it signed.
    pub ca_pem: String,
}

/// kubelet's default port.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Runs the agent with an API client that acts as `system:node:<name>` until the process ends.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let dir = machine::agent_dir(&config.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the agent directory {}: {e}", dir.display()))?;
    let runtime = runtime::RuntimeConfig::new(&dir.join("runtime")).and_then(runtime::RuncRuntime::new);
    let kubelet_api = match runtime {
        Ok(runtime) => {
            let runtime: Arc<dyn runtime::Runtime> = Arc::new(runtime);
            // A node whose API cannot listen still runs and reports its pods.
            match start_kubelet_api(&config, runtime).await {
                Ok(tasks) => Some(tasks),
                Err(err) => {
                    tracing::error!(%err, "the kubelet API is not served");
                    eprintln!("rkube agent: the kubelet API is not served: {err:#}");
                    None
                }
            }
        }
        Err(err) => {
            tracing::warn!(%err, "no container runtime: the kubelet API is not served");
            None
        }
    };
    let result = heartbeat::Heartbeat::new(client, config).run().await;
    drop(kubelet_api);
    result
}

/// Listens on the node IP (and localhost) at the kubelet port and serves the kubelet API over
/// `runtime` until the returned set is dropped.
pub async fn start_kubelet_api(
    config: &Config,
    runtime: Arc<dyn runtime::Runtime>,
) -> anyhow::Result<tokio::task::JoinSet<()>> {
    let mut ips = vec![config.node_ip];
    if !config.node_ip.is_loopback() {
        ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let tls = server::tls::server_config(
        &machine::agent_dir(&config.data_dir).join("tls"),
        &config.ca_pem,
        &config.node_name,
        &ips,
    )?;
    let state = Arc::new(server::State {
        runtime,
        node_name: config.node_name.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for ip in ips {
        let addr = SocketAddr::new(ip, config.kubelet_port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("kubelet API: cannot listen on {addr}: {e}"))?;
        tasks.spawn(server::serve(listener, tls.clone(), state.clone()));
    }
    Ok(tasks)
}
