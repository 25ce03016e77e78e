//! The node agent (the kubelet's role). This slice: joining a cluster ([`join`]), registering
//! the Node from what the machine has ([`machine`], [`node`]), and heartbeats ([`heartbeat`]):
//! the node's Lease renewed every 10 s, the status posted when it changed or every 5 minutes,
//! and the Node registered again if it is deleted.
//!
//! [`run`] is the agent's main loop: the heartbeat and the pod workers ([`pods`], driving the
//! `runtime`, `cni` and `images` crates for the pods bound to this node) share its client and
//! [`Config`].

pub mod cluster_dns;
pub mod downward;
pub mod env;
pub mod eviction;
pub mod heartbeat;
pub mod join;
pub mod machine;
pub mod node;
pub mod objects;
pub mod pods;
pub mod probes;
pub mod server;
pub mod streaming;
pub mod volumes;

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
    /// What pods run with.
    pub pods: PodsConfig,
    /// kubelet's `--eviction-hard`: kept out of allocatable; crossing one is pressure.
    pub eviction_hard: eviction::EvictionHard,
    /// The kubelet API's port (`--kubelet-port`, 10250 as upstream), advertised in the Node's
    /// `status.daemonEndpoints`.
    pub kubelet_port: u16,
    /// The cluster CA (PEM): the kubelet API accepts client certificates it signed.
    pub ca_pem: String,
    /// The pod network across nodes.
    pub network: NetworkConfig,
}

/// How this node's pods reach other nodes' pods and the outside.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// `--flannel-backend`: host-gw, VXLAN, or auto (host-gw to peers on our links).
    pub backend: podnet::Backend,
    /// The cluster's pod range (`--cluster-cidr`): traffic leaving it is masqueraded.
    pub cluster_cidrs: Vec<cni::cidr::IpNet>,
    /// Where the node's DNS server forwards names outside the cluster domain.
    pub dns_upstreams: Vec<std::net::SocketAddr>,
    /// Whether this node runs the service proxy.
    pub kube_proxy: bool,
}

impl Default for NetworkConfig {
    fn default() -> NetworkConfig {
        NetworkConfig {
            backend: podnet::Backend::Auto,
            cluster_cidrs: vec!["10.42.0.0/16".parse().expect("a CIDR")],
            dns_upstreams: Vec::new(),
            kube_proxy: true,
        }
    }
}

/// How this node runs pods (kubelet's and the container runtime's settings).
#[derive(Clone, Debug)]
pub struct PodsConfig {
    /// The cluster DNS Service's address for pods' resolv.conf (kubelet's `--cluster-dns`).
    pub cluster_dns: Vec<IpAddr>,
    /// kubelet's `--cluster-domain`.
    pub cluster_domain: String,
    /// A registries.yaml (k3s's `--private-registry`): mirrors, endpoint auth and TLS.
    pub private_registry: Option<PathBuf>,
    /// The OCI runtime binary (runc, crun, youki).
    pub oci_runtime: PathBuf,
    pub image_gc: pods::image_gc::ImageGcPolicy,
}

impl Default for PodsConfig {
    fn default() -> PodsConfig {
        PodsConfig {
            cluster_dns: vec![IpAddr::from([10, 43, 0, 10])],
            cluster_domain: "cluster.local".into(),
            private_registry: None,
            oci_runtime: "runc".into(),
            image_gc: Default::default(),
        }
    }
}

/// kubelet's default port.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

/// Runs the agent with an API client that acts as `system:node:<name>` until the process ends.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let dir = machine::agent_dir(&config.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the agent directory {}: {e}", dir.display()))?;
    let runtime_config = {
        let mut c = runtime::RuntimeConfig::new(&dir.join("runtime"))?;
        c.runc = config.pods.oci_runtime.clone();
        c
    };
    let runtime: Arc<dyn runtime::Runtime> = Arc::new(runtime::RuncRuntime::new(runtime_config)?);
    // A node whose kubelet API cannot listen still runs and reports its pods.
    let kubelet_api = match start_kubelet_api(&config, runtime.clone(), Some(client.clone())).await {
        Ok(tasks) => Some(tasks),
        Err(err) => {
            tracing::error!(%err, "the kubelet API is not served");
            eprintln!("rkube agent: the kubelet API is not served: {err:#}");
            None
        }
    };
    // Probed once (it runs `runc --version`): the heartbeat and the pod workers share it.
    let machine = machine::Machine::probe();
    let (network_tx, network_rx) = tokio::sync::watch::channel(None);
    let node = Arc::new(pod_node(
        client.clone(),
        config.clone(),
        runtime,
        machine.memory_bytes as i64,
        network_rx.clone(),
    )?);
    let network = podnet::Config {
        node_name: config.node_name.clone(),
        node_ip: config.node_ip,
        backend: config.network.backend,
        cluster_cidrs: config.network.cluster_cidrs.clone(),
        bridge: cni::network::DEFAULT_BRIDGE.to_owned(),
    };
    // A node whose DNS server cannot listen still runs pods (their queries go unanswered).
    let dns = tokio::spawn({
        let dns = cluster_dns::DnsConfig {
            cluster_domain: config.pods.cluster_domain.clone(),
            upstreams: config.network.dns_upstreams.clone(),
            port: 53,
        };
        let run = cluster_dns::run(client.clone(), config.node_name.clone(), dns, network_rx.clone());
        async move {
            if let Err(err) = run.await {
                tracing::error!(err = format!("{err:#}"), "no cluster DNS on this node");
                eprintln!("rkube agent: no cluster DNS on this node: {err:#}");
            }
        }
    });
    // The service proxy (kube-proxy's role) on this node's address and the cluster CIDR.
    let mut proxy_config = proxy::Config::new(config.node_name.clone());
    proxy_config.node_ips = vec![config.node_ip];
    proxy_config.cluster_cidrs = config.network.cluster_cidrs.clone();
    let service_proxy = {
        let (enabled, client) = (config.network.kube_proxy, client.clone());
        async move {
            if !enabled {
                return std::future::pending().await;
            }
            proxy::run(client, proxy_config).await
        }
    };
    let result = tokio::select! {
        result = service_proxy => result,
        result = heartbeat::Heartbeat::new(client.clone(), config, machine, network_rx.clone()).run() => result,
        result = pods::run(node) => result,
        result = podnet::run(client, network, network_tx) => result,
    };
    drop(kubelet_api);
    dns.abort();
    result
}

/// The networking and image store the pod workers use, from the agent's directory.
fn pod_node(
    client: kube::Client,
    config: Config,
    runtime: Arc<dyn runtime::Runtime>,
    memory: i64,
    pod_network: tokio::sync::watch::Receiver<Option<podnet::Network>>,
) -> anyhow::Result<pods::Node> {
    let dir = machine::agent_dir(&config.data_dir);
    let network = cni::PodNetworking::new(cni::Options::for_data_dir(&config.data_dir));
    let store = images::Store::open(&dir.join("images"))?;
    let registries = match &config.pods.private_registry {
        Some(path) if path.exists() => images::registry::RegistriesConfig::load(path)?,
        _ => Default::default(),
    };
    let dns = pods::files::Dns {
        cluster_dns: config.pods.cluster_dns.clone(),
        cluster_domain: config.pods.cluster_domain.clone(),
        host_resolv_conf: "/etc/resolv.conf".into(),
    };
    Ok(pods::Node::new(
        client,
        config,
        runtime,
        network,
        pods::images::ImageManager::new(store, registries),
        dns,
        memory,
        pod_network,
    ))
}

/// Listens on the node IP (and localhost) at the kubelet port and serves the kubelet API over
/// `runtime` until the returned set is dropped; `client` reads pod statuses for kubelet's
/// wording of containers not started yet.
pub async fn start_kubelet_api(
    config: &Config,
    runtime: Arc<dyn runtime::Runtime>,
    client: Option<kube::Client>,
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
        client,
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
