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
    /// The cluster's pod range, as the server's `--cluster-cidr` (comma-separated for dual
    /// stack): pod traffic leaving it is masqueraded.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
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
    /// The cluster DNS address pods resolve with (default: the 10th address of the service
    /// CIDR, 10.43.0.10).
    #[arg(long)]
    pub cluster_dns: Option<IpAddr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// A registries.yaml: registry mirrors, endpoint auth and TLS (k3s's format).
    #[arg(long, default_value = "/etc/rkube/registries.yaml")]
    pub private_registry: PathBuf,
    /// Hard eviction thresholds, in kubelet's syntax: kept out of allocatable, and crossing
    /// one sets the node's pressure condition.
    #[arg(long, default_value = "memory.available<100Mi,nodefs.available<10%", value_parser = agent::eviction::EvictionHard::parse)]
    pub eviction_hard: agent::eviction::EvictionHard,
    /// The OCI runtime binary containers run with (runc; crun or youki work too).
    #[arg(long, default_value = "runc")]
    pub oci_runtime: PathBuf,
    /// Disk usage (percent) of the image filesystem at which unused images are removed.
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: u8,
    /// Disk usage (percent) image garbage collection frees down to.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// How long an image stays at least, unused or not (kubelet's imageMinimumGCAge).
    #[arg(long, default_value = "2m", value_parser = crate::server::parse_duration)]
    pub image_minimum_gc_age: std::time::Duration,
    /// How often image garbage collection checks the disk (kubelet: 5 minutes).
    #[arg(long, default_value = "5m", value_parser = crate::server::parse_duration, hide = true)]
    pub image_gc_period: std::time::Duration,
    /// The port of the node's kubelet API (logs, exec, attach, port-forward).
    #[arg(long, default_value_t = agent::DEFAULT_KUBELET_PORT)]
    pub kubelet_port: u16,
    /// How pods reach other nodes' pods: `host-gw` (routes via the peer node, which must be on
    /// one of our links), `vxlan` (flannel-style overlay), `auto` (host-gw where possible,
    /// VXLAN otherwise) or `none`.
    #[arg(long, default_value = "auto")]
    pub flannel_backend: podnet::Backend,
    /// Where the node's cluster DNS server sends names outside the cluster domain: `ip[:port]`
    /// list, `none`, or (unset) the nameservers of the host's /etc/resolv.conf.
    #[arg(long)]
    pub dns_upstream: Option<String>,
    /// Do not run the service proxy on this node (another kube-proxy programs Services).
    #[arg(long)]
    pub disable_kube_proxy: bool,
}

/// `--dns-upstream`: `none`, a list of `ip[:port]`, or the host's resolv.conf nameservers.
fn dns_upstreams(flag: Option<&str>) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    let parse = |text: &str| -> anyhow::Result<std::net::SocketAddr> {
        let text = text.trim();
        if let Ok(addr) = text.parse() {
            return Ok(addr);
        }
        let ip: IpAddr = text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                anyhow::anyhow!(
                    "--dns-upstream {text:?} is not an address such as 192.0.2.53 or 192.0.2.53:5353"
                )
            })?;
        Ok(std::net::SocketAddr::new(ip, 53))
    };
    match flag {
        Some("none") => Ok(Vec::new()),
        Some(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(parse)
            .collect(),
        None => {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            Ok(text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .collect())
        }
    }
}

impl NodeArgs {
    pub fn pods_config(&self, default_dns: IpAddr) -> agent::PodsConfig {
        agent::PodsConfig {
            cluster_dns: vec![self.cluster_dns.unwrap_or(default_dns)],
            cluster_domain: self.cluster_domain.clone(),
            private_registry: Some(self.private_registry.clone()),
            oci_runtime: self.oci_runtime.clone(),
            image_gc: agent::pods::image_gc::ImageGcPolicy {
                high_percent: self.image_gc_high_threshold,
                low_percent: self.image_gc_low_threshold.min(self.image_gc_high_threshold),
                period: self.image_gc_period,
                minimum_age: self.image_minimum_gc_age,
            },
        }
    }

    /// The pod network settings for a cluster whose pod range is `cluster_cidr`.
    pub fn network_config(&self, cluster_cidr: &str) -> anyhow::Result<agent::NetworkConfig> {
        let cluster_cidrs = cluster_cidr
            .split(',')
            .map(|c| {
                c.trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--cluster-cidr {c:?} is not a CIDR"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(agent::NetworkConfig {
            backend: self.flannel_backend,
            cluster_cidrs,
            dns_upstreams: dns_upstreams(self.dns_upstream.as_deref())?,
            kube_proxy: !self.disable_kube_proxy,
        })
    }

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
            eviction_hard: args.node.eviction_hard.clone(),
            pods: args.node.pods_config(std::net::IpAddr::from([10, 43, 0, 10])),
            data_dir: args.data_dir,
            control_plane: false,
            kubelet_port: args.node.kubelet_port,
            ca_pem: credentials.ca_pem.clone(),
            network: args.node.network_config(&args.cluster_cidr)?,
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
