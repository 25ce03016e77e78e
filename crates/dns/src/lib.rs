//! The cluster DNS server: CoreDNS's role with the `kubernetes` plugin as k3s configures it
//! (`pods insecure`, `fallthrough in-addr.arpa ip6.arpa`, TTL 5), on hickory-server.
//!
//! One server runs inside every node agent, listening on the node's pod-bridge gateway address,
//! port 53; the `kube-dns` Service (10th address of the service CIDR) points at it.
//!
//! ```no_run
//! # async fn start(client: kube::Client) -> anyhow::Result<()> {
//! let config = dns::Config {
//!     listen: vec!["10.42.0.1:53".parse()?],
//!     cluster_domain: "cluster.local".into(),
//!     upstreams: vec![],          // forward nothing: outside names are REFUSED
//!     ttl: dns::DEFAULT_TTL,
//! };
//! let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
//! tokio::spawn(dns::run(client, config, ready_tx));
//! ready_rx.await?;                 // caches synced, sockets bound
//! # Ok(())
//! # }
//! ```
//!
//! What it answers (names under `<domain>`, `in-addr.arpa`, `ip6.arpa`; see `answer` for the
//! exact CoreDNS semantics):
//! - `<svc>.<ns>.svc.<domain>` A/AAAA: the ClusterIPs of that family; headless Services: the
//!   ready endpoint addresses; ExternalName: a CNAME (followed inside the zone, and upstream
//!   when there are upstreams);
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: one endpoint (its `hostname`, or its dashed address);
//! - SRV `_<port>._<proto>.<svc>.<ns>.svc.<domain>` and `<svc>.<ns>.svc.<domain>`, targets'
//!   addresses in the additional section;
//! - `<a-b-c-d>.<ns>.pod.<domain>` A (and dashed IPv6 AAAA);
//! - PTR for ClusterIPs and ready endpoint addresses; other reverse names are forwarded
//!   (NXDOMAIN without upstreams);
//! - SOA and NS at the apex, `dns-version.<domain>` TXT; NXDOMAIN vs NODATA as CoreDNS.
//!
//! Successful answers have their address records shuffled (k3s's `loadbalance`).
//! Other names go to `upstreams` (round-robin with failover, UDP then TCP when truncated);
//! without upstreams they are REFUSED, as CoreDNS answers names outside its server blocks.
//! UDP and TCP on every listen address; EDNS0; UDP answers over 512 bytes (or the client's EDNS
//! buffer) are truncated with TC set.

mod answer;
mod balance;
mod forward;
mod handler;
mod index;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

/// CoreDNS's `kubernetes` plugin default TTL (seconds).
pub const DEFAULT_TTL: u32 = 5;

/// How long a TCP client may stay idle between queries.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

/// Where and how the server answers.
#[derive(Clone, Debug)]
pub struct Config {
    /// UDP and TCP on each address.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Servers for names outside the cluster zones; empty: such names are REFUSED.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of every answer (the SOA's negative-caching TTL too).
    pub ttl: u32,
}

/// Watches Services, EndpointSlices and Namespaces (all namespaces) and answers DNS queries
/// until the future is dropped. Returns an error if it cannot listen (or the configuration is
/// invalid). `ready` is notified once the caches have synced and the sockets are bound.
pub async fn run(client: kube::Client, config: Config, ready: oneshot::Sender<()>) -> anyhow::Result<()> {
    let domain = config.cluster_domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        bail!("the cluster domain is empty");
    }
    if config.listen.is_empty() {
        bail!("no address to listen on");
    }
    let mut sockets = Vec::new();
    for addr in &config.listen {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("cannot listen on UDP {addr}"))?;
        let tcp = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on TCP {addr}"))?;
        sockets.push((udp, tcp));
    }

    let index = Arc::new(RwLock::new(index::Index::default()));
    let (synced_tx, mut synced_rx) = mpsc::channel(watch::KINDS);
    let watchers = watch::run(client, index.clone(), synced_tx);
    tokio::pin!(watchers);
    for _ in 0..watch::KINDS {
        tokio::select! {
            _ = &mut watchers => bail!("the DNS watchers stopped"),
            _ = synced_rx.recv() => {}
        }
    }

    let local_ips: Vec<IpAddr> = config
        .listen
        .iter()
        .map(SocketAddr::ip)
        .filter(|ip| !ip.is_unspecified())
        .collect();
    let handler = handler::Handler {
        index,
        settings: answer::Settings {
            domain,
            ttl: config.ttl,
            local_ips,
        },
        forwarder: forward::Forwarder::new(config.upstreams.clone()),
    };
    let mut server = Server::new(handler);
    for (udp, tcp) in sockets {
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    tracing::info!(listen = ?config.listen, domain = %config.cluster_domain, upstreams = ?config.upstreams, "cluster DNS serving");
    let _ = ready.send(());
    tokio::select! {
        _ = &mut watchers => bail!("the DNS watchers stopped"),
        done = server.block_until_done() => {
            done.context("the DNS server stopped")?;
            bail!("the DNS server stopped")
        }
    }
}
