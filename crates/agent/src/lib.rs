//! The node agent (the kubelet's role). This slice: joining a cluster ([`join`]), registering
//! the Node from what the machine has ([`machine`], [`node`]), and heartbeats ([`heartbeat`]):
//! the node's Lease renewed every 10 s, the status posted when it changed or every 5 minutes,
//! and the Node registered again if it is deleted.
//!
//! [`run`] is the agent's main loop; the pod workers (driving the `runtime` and `cni` crates for
//! the pods bound to this node) will run beside the heartbeat there, sharing the same client
//! and [`Config`].

pub mod downward;
pub mod env;
pub mod heartbeat;
pub mod join;
pub mod machine;
pub mod node;
pub mod objects;
pub mod volumes;

use std::net::IpAddr;
use std::path::PathBuf;

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
}

/// Runs the agent with an API client that acts as `system:node:<name>` until the process ends.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let dir = machine::agent_dir(&config.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the agent directory {}: {e}", dir.display()))?;
    heartbeat::Heartbeat::new(client, config).run().await
}
