//! `rkube server`: the control plane in one process: datastore, compaction, API server, and the
//! controllers and the scheduler (each under leader election on its own Lease), each a client
//! of the API server over HTTPS, and (unless `--disable-agent`) the node agent for this machine.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::datastore;

#[derive(clap::Args)]
pub struct Args {
    /// Where state, certificates, the kubeconfig and the join token live.
    #[arg(long, default_value = datastore::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    https_port: u16,
    /// Datastore URL (sqlite:///path/state.db, etcd://host:2379,…); default: SQLite in the data dir.
    #[arg(long, env = "RKUBE_DATASTORE_ENDPOINT")]
    datastore_endpoint: Option<String>,
    /// Service addresses (ClusterIPs) come from this range.
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Services of type NodePort and LoadBalancer get ports from this range (`first-last`).
    #[arg(long, default_value = "30000-32767", value_parser = parse_port_range)]
    service_node_port_range: (u16, u16),
    /// Pod addresses come from this range (one block per node).
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Do not run a node agent in this process.
    #[arg(long)]
    disable_agent: bool,
    #[command(flatten)]
    node: crate::agent::NodeArgs,
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line (as kube-apiserver's).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Do not run the controllers (kube-controller-manager's role) in this process.
    #[arg(long)]
    disable_controller_manager: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Controllers to run, as kube-controller-manager's flag: `*` (all), `name`, `-name`.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    controllers: Vec<String>,
    /// Prefix length of each node's IPv4 pod range.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size_ipv4: u8,
    /// Prefix length of each node's IPv6 pod range.
    #[arg(long, default_value_t = 64)]
    node_cidr_mask_size_ipv6: u8,
    /// How often the node lifecycle controller checks node health.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    node_monitor_period: Duration,
    /// How long a node may miss heartbeats before it is marked NotReady/Unknown.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// The same allowance for a node that has not reported since it registered.
    #[arg(long, default_value = "1m0s", value_parser = parse_duration)]
    node_startup_grace_period: Duration,
    /// Terminated pods beyond this number are deleted, oldest first (0 disables).
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// At most this many endpoints in one EndpointSlice.
    #[arg(long, default_value_t = 100)]
    max_endpoints_per_slice: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let started = std::time::Instant::now();
        let url = args
            .datastore_endpoint
            .clone()
            .unwrap_or_else(|| datastore::default_url(&args.data_dir));
        let store = datastore::open(&url, &args.data_dir).await?;
        let _compactor = store::spawn_compactor(store.clone(), store::CompactionPolicy::default());
        let mut names = apiserver::pki::ServingNames::default();
        if !args.bind_address.is_unspecified() {
            names.ips.push(args.bind_address);
        }
        names.ips.push(first_service_ip(&args.service_cidr)?);
        let node_ip = args.node.node_ip.unwrap_or_else(agent::machine::default_node_ip);
        names.ips.push(node_ip);
        for san in &args.tls_san {
            match san.parse::<IpAddr>() {
                Ok(ip) => names.ips.push(ip),
                Err(_) => names.dns.push(san.clone()),
            }
        }
        let config = apiserver::Config {
            data_dir: args.data_dir.clone(),
            bind: SocketAddr::new(args.bind_address, args.https_port),
            serving_names: names,
            extra_kubeconfig: args.write_kubeconfig.clone(),
            token_auth_file: args.token_auth_file.clone(),
            service_cidr: args.service_cidr.clone(),
            node_port_range: args.service_node_port_range,
        };
        let running = apiserver::start(config, store).await?;
        let identity = leader_identity();
        let client = clientkit::from_kubeconfig_as(&running.kubeconfig, "rkube-server").await?;
        let mut components = tokio::task::JoinSet::new();
        let dns_ip = match args.node.cluster_dns {
            Some(ip) => ip,
            None => nth_service_ip(&args.service_cidr, 10)?,
        };
        {
            let client = client.clone();
            tokio::spawn(async move {
                if let Err(err) = crate::addons::ensure_kube_dns(client, dns_ip).await {
                    eprintln!("rkube server: {err:#}");
                }
            });
        }
        if !args.disable_agent {
            let config = agent::Config {
                node_name: args.node.name(),
                node_ip,
                data_dir: args.data_dir.clone(),
                control_plane: true,
                eviction_hard: args.node.eviction_hard.clone(),
                pods: args.node.pods_config(nth_service_ip(&args.service_cidr, 10)?),
                kubelet_port: args.node.kubelet_port,
                ca_pem: running.pki.ca_cert_pem().to_owned(),
                network: args.node.network_config(&args.cluster_cidr)?,
            };
            let client = node_client(&running, &config.node_name).await?;
            components.spawn(agent::run(client, config));
        }
        if !args.disable_controller_manager {
            let config = controllers::Config {
                root_ca: Some(running.pki.ca_cert_pem().to_owned()),
                ..controllers_config(&args)
            };
            // A client of its own, so that its writes carry its name as their field manager.
            let client =
                clientkit::from_kubeconfig_as(&running.kubeconfig, "kube-controller-manager").await?;
            let ctx = controllers::Context::new(client.clone(), config);
            let election = clientkit::LeaderElection::new(
                client.clone(),
                clientkit::LeaseConfig::new("kube-controller-manager", &identity),
            );
            components.spawn(election.run(move || controllers::run(ctx.clone())));
        }
        if !args.disable_scheduler {
            let client = clientkit::from_kubeconfig_as(&running.kubeconfig, "kube-scheduler").await?;
            let election = clientkit::LeaderElection::new(
                client.clone(),
                clientkit::LeaseConfig::new("kube-scheduler", &identity),
            );
            let client = client.clone();
            components
                .spawn(election.run(move || scheduler::run(client.clone(), scheduler::Config::default())));
        }
        eprintln!(
            "rkube server ready in {:?}: https://{} (kubeconfig {})",
            started.elapsed(),
            running.addr,
            running.kubeconfig.display()
        );
        tokio::select! {
            () = shutdown_signal() => {}
            Some(ended) = components.join_next() => match ended {
                Ok(Err(err)) => return Err(err.context("a control-plane component failed")),
                Ok(Ok(())) => anyhow::bail!("a control-plane component stopped"),
                Err(err) => anyhow::bail!("a control-plane component panicked: {err}"),
            },
        }
        eprintln!("rkube server: shutting down");
        anyhow::Ok(())
    })
}

/// A client for the in-process agent: `system:node:<name>` by a certificate from our own CA
/// (what a joining agent gets for the join token).
async fn node_client(running: &apiserver::Running, node_name: &str) -> anyhow::Result<kube::Client> {
    let cert = running
        .pki
        .issue_client_cert(&format!("system:node:{node_name}"), Some("system:nodes"))?;
    let host = match running.addr.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        IpAddr::V6(v6) => format!("[{v6}]"),
        ip => ip.to_string(),
    };
    let url = format!("https://{host}:{}", running.addr.port());
    clientkit::from_pem(&url, running.pki.ca_cert_pem(), &cert.cert_pem, &cert.key_pem).await
}

fn controllers_config(args: &Args) -> controllers::Config {
    controllers::Config {
        controllers: args.controllers.clone(),
        cluster_cidr: args.cluster_cidr.clone(),
        node_cidr_mask_size_ipv4: args.node_cidr_mask_size_ipv4,
        node_cidr_mask_size_ipv6: args.node_cidr_mask_size_ipv6,
        node_monitor_period: args.node_monitor_period,
        node_monitor_grace_period: args.node_monitor_grace_period,
        node_startup_grace_period: args.node_startup_grace_period,
        terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
        root_ca: None,
        max_endpoints_per_slice: args.max_endpoints_per_slice,
    }
}

/// This process's identity in leader-election Leases: `<hostname>_<uuid>`, as upstream's.
fn leader_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), uuid::Uuid::new_v4())
}

/// A Go-style duration such as `40s`, `5m0s`, `1h30m` or `500ms`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 40s or 5m0s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest == "0" {
        return Ok(total);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::from_secs_f64(value * seconds);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The first address of the service range (the `kubernetes` Service's ClusterIP).
fn first_service_ip(cidr: &str) -> anyhow::Result<IpAddr> {
    nth_service_ip(cidr, 1)
}

/// The `n`th address of the service CIDR (the 10th is the cluster DNS's, as k3s's).
fn nth_service_ip(cidr: &str, n: u32) -> anyhow::Result<IpAddr> {
    let (base, _) = cidr
        .split_once('/')
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR"))?;
    let base: IpAddr = base
        .parse()
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR"))?;
    Ok(match base {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + n).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + u128::from(n)).into()),
    })
}

/// `30000-32767` (as kube-apiserver's `--service-node-port-range`).
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port range such as 30000-32767");
    let (first, last) = s.split_once('-').ok_or_else(bad)?;
    let first: u16 = first.trim().parse().map_err(|_| bad())?;
    let last: u16 = last.trim().parse().map_err(|_| bad())?;
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok((first, last))
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("5m0s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("abc").is_err());
    }
}
