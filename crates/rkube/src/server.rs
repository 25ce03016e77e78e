//! `rkube server`: the control plane in one process: datastore, compaction, API server.
//! (Controllers, scheduler and the node agent join in later issues.)

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

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
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    write_kubeconfig: Option<PathBuf>,
    /// Extra names or addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Static bearer tokens, one `token,user,uid,"group1,group2"` per line (as kube-apiserver's).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
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
        let _ = (&args.cluster_cidr, args.disable_agent);
        eprintln!(
            "rkube server ready in {:?}: https://{} (kubeconfig {})",
            started.elapsed(),
            running.addr,
            running.kubeconfig.display()
        );
        shutdown_signal().await;
        eprintln!("rkube server: shutting down");
        anyhow::Ok(())
    })
}

/// The first address of the service range (the `kubernetes` Service's ClusterIP).
fn first_service_ip(cidr: &str) -> anyhow::Result<IpAddr> {
    let (base, _) = cidr
        .split_once('/')
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR"))?;
    let base: IpAddr = base
        .parse()
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR"))?;
    Ok(match base {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + 1).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + 1).into()),
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

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
