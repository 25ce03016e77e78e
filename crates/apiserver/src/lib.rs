//! The API server: the Kubernetes REST API over a [`store::Store`].
//!
//! - `server`: HTTPS (TLS via `pki`), authentication, dispatch, Status errors.
//! - `request`: what a path asks for (group, version, resource, namespace, name, verb).
//! - `discovery`: `/version`, `/api`, `/apis` and resource lists.
//! - `rest`: the generic handlers over the store; `watch`: watch streams; `filter`: selectors;
//!   `table`: server-side printing; `validation`: shared validation; `objects`: metadata helpers.
//! - `openapi`: `/openapi/v2` and `/openapi/v3` documents; `apply`: server-side apply and
//!   managed fields; `cache`: the watch cache; `field_validation`: unknown fields.
//! - `defaults`, `strategy`, `admission`: what upstream fills in and resets on writes;
//!   `allocator`: Service ClusterIPs and NodePorts; `bootstrap`: what exists from the start.
//! - `kubelet_proxy`: pods/log, exec, attach, portforward and nodes/proxy, proxied to the agent.
//! - `fuzz`: the fuzz entry point (`fuzz::one_input`) and the mutation fuzzer behind
//!   `cargo xtask fuzz`.

mod admission;
mod allocator;
mod apply;
pub mod authn;
mod bootstrap;
mod conversion;
pub use bootstrap::SYSTEM_NAMESPACES;
mod cache;
mod certificates;
mod component_statuses;
mod crd;
mod defaults;
mod deletion;
pub mod discovery;
mod field_validation;
mod filter;
pub mod fuzz;
mod graceful;
mod kubelet_proxy;
mod objects;
mod openapi;
mod partial;
mod patch;
pub mod pki;
mod quantity;
mod query;
pub mod request;
mod rest;
mod reviews;
mod sa_token;
pub mod server;
mod service_accounts;
mod strategy;
mod subresources;
mod table;
mod validation;
mod watch;
mod wire;
mod workload_proxy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use store::Store;

/// How to run an API server.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// Extra names and addresses the serving certificate must cover.
    pub serving_names: pki::ServingNames,
    /// Where to write the admin kubeconfig besides `<data-dir>/kubeconfig.yaml`.
    pub extra_kubeconfig: Option<PathBuf>,
    /// Static bearer tokens (upstream's `--token-auth-file` format).
    pub token_auth_file: Option<PathBuf>,
    /// Services' ClusterIPs come from this range (`--service-cidr`).
    pub service_cidr: String,
    /// Services' NodePorts come from this range (inclusive).
    pub node_port_range: (u16, u16),
}

impl Config {
    /// A server on a free port of 127.0.0.1 with the default ranges (`10.43.0.0/16`, upstream's
    /// NodePorts), no extra names, kubeconfig or tokens: what tests and benchmarks run.
    pub fn loopback(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            serving_names: Default::default(),
            extra_kubeconfig: None,
            token_auth_file: None,
            service_cidr: "10.43.0.0/16".into(),
            node_port_range: DEFAULT_NODE_PORT_RANGE,
        }
    }
}

/// kube-apiserver's default NodePort range.
pub const DEFAULT_NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

/// A running API server.
pub struct Running {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub pki: Arc<pki::Pki>,
    task: tokio::task::JoinHandle<()>,
    crd_watch: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the server stops (it runs until the process ends or the handle is dropped).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        self.crd_watch.abort();
    }
}

/// Starts serving: PKI and kubeconfig under the data dir, then the HTTPS listener.
pub async fn start(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    let pki = Arc::new(pki::Pki::load_or_create(
        &config.data_dir.join("tls"),
        &config.serving_names,
    )?);
    let join_token = pki::load_or_create_token(&config.data_dir.join("token"), &pki)?;
    let tokens = match &config.token_auth_file {
        Some(path) => authn::Tokens::load(path)?,
        None => authn::Tokens::default(),
    };
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        addr.ip().to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{}", addr.port());
    let kubeconfig = config.data_dir.join("kubeconfig.yaml");
    pki::write_kubeconfig(&kubeconfig, &url, &pki, pki::ADMIN_USER)?;
    if let Some(extra) = &config.extra_kubeconfig {
        pki::write_kubeconfig(extra, &url, &pki, pki::ADMIN_USER)?;
    }
    let services = Arc::new(allocator::ServiceRanges::new(
        &config.service_cidr,
        config.node_port_range,
    )?);
    let rest = rest::Rest::new(store, services);
    bootstrap::run(&rest, advertise_address(addr), addr.port()).await?;
    rest.crds
        .refresh(&rest)
        .await
        .context("cannot read the CustomResourceDefinitions")?;
    let crd_watch = rest.crds.spawn_watch(rest.clone());
    let state = Arc::new(server::State {
        rest,
        tokens,
        node_join: authn::NodeJoin::new(join_token, pki.clone()),
        openapi: openapi::OpenApi::default(),
        sa_signer: sa_token::Signer::load_or_create(pki.dir(), format!("{url}/openid/v1/jwks"))?,
        kubelet_tls: kubelet_proxy::client_config(pki.kubelet_client())?,
    });
    let task = tokio::spawn(server::serve(listener, pki.server_config()?, state));
    tracing::info!(%url, kubeconfig = %kubeconfig.display(), "API server listening");
    Ok(Running {
        addr,
        kubeconfig,
        pki,
        task,
        crd_watch,
    })
}

/// The address other components reach this server at: the bound address, or for a wildcard
/// bind the host's primary address (the one its default route uses; nothing is sent).
fn advertise_address(addr: SocketAddr) -> std::net::IpAddr {
    if !addr.ip().is_unspecified() {
        return addr.ip();
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(local) if !local.ip().is_unspecified() => local.ip(),
        _ => std::net::IpAddr::from([127, 0, 0, 1]),
    }
}
