//! `rkube agent`: a node that joins a server with its join token (as `k3s agent` does) and runs
//! the node agent. `rkube server` runs the same agent in-process for its own node.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

use crate::datastore;

#[derive(clap::Args)]
pub struct Args {
    /// The server to join: `https://host:port`.
    #[arg(long)]
    server: String,
    /// A file holding the server's join token (`<server data dir>/token`).
    #[arg(long)]
    token_file: PathBuf,
    /// Where the node's state lives.
    #[arg(long, default_value = datastore::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// The flags that name a node (shared with `rkube server`).
#[derive(clap::Args, Clone)]
pub struct NodeArgs {
    /// The node's name (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the address of the interface that reaches the server,
    /// for a server its default-route interface, else 127.0.0.1).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// The port of the node's kubelet API (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = agent::DEFAULT_KUBELET_PORT)]
    pub kubelet_port: u16,
}

impl NodeArgs {
    pub fn name(&self) -> String {
        self.node_name.clone().unwrap_or_else(agent::machine::hostname)
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let token = std::fs::read_to_string(&args.token_file)
            .with_context(|| format!("cannot read the token file {}", args.token_file.display()))?;
        let token = agent::join::Token::parse(&token)
            .with_context(|| format!("token file {}", args.token_file.display()))?;
        let node_name = args.node.name();
        let server = args.server.trim_end_matches('/').to_owned();
        let node_ip = args.node.node_ip.unwrap_or_else(|| {
            agent::join::server_ip(&server).map_or_else(agent::machine::default_node_ip, |ip| {
                agent::machine::source_address_towards(ip)
            })
        });
        let credentials = agent::join::join(&server, &token, &node_name)
            .await
            .with_context(|| format!("joining {server} as node {node_name}"))?;
        let client = clientkit::from_pem(
            &server,
            &credentials.ca_pem,
            &credentials.cert_pem,
            &credentials.key_pem,
        )
        .await?;
        let trust = if credentials.ca_pinned {
            "CA verified against the token"
        } else {
            "WARNING: the token pins no CA hash, the server's CA was trusted as presented"
        };
        eprintln!("rkube agent: joined {server} as node {node_name} ({node_ip}); {trust}");
        let config = agent::Config {
            node_name,
            node_ip,
            data_dir: args.data_dir,
            control_plane: false,
            kubelet_port: args.node.kubelet_port,
            ca_pem: credentials.ca_pem.clone(),
        };
        tokio::select! {
            result = agent::run(client, config) => result,
            () = crate::server::shutdown_signal() => {
                eprintln!("rkube agent: shutting down");
                Ok(())
            }
        }
    })
}
