//! `cargo xtask bench-dns`: the cluster DNS server (`dns` crate) answering from 1,000 Services.
//! An in-process API server (SQLite) holds the Services; the DNS server watches it and listens on
//! 127.0.0.1; N clients, each with its own UDP socket, ask A queries for random Services back to
//! back (closed loop) for a phase, then the same with search-path expansions (NXDOMAIN).
//! Reports queries/s and p50/p99 latency per client count.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::net::UdpSocket;

use crate::machine;
use crate::stats::{Rate, timed};

#[derive(clap::Args)]
pub struct Args {
    /// Services created (ClusterIP, one named port each).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

const NAMESPACE: &str = "bench";

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.services > 0, "--services must be positive");
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let data = tempfile::tempdir_in(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let results = runtime.block_on(async {
        let store = Arc::new(store_sqlite::SqliteStore::open(data.path().join("state.db"))?);
        let config = apiserver::Config::loopback(data.path().join("server"));
        let server = apiserver::start(config, store).await?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = Client::try_from(config)?;
        create_services(&client, args.services).await?;

        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let dns_config = dns::Config {
            listen: vec![addr],
            cluster_domain: "cluster.local".into(),
            upstreams: vec![],
            ttl: dns::DEFAULT_TTL,
        };
        let started = Instant::now();
        let dns_task = tokio::spawn(dns::run(client.clone(), dns_config, ready_tx));
        if ready_rx.await.is_err() {
            return Err(anyhow::anyhow!("the DNS server stopped: {:?}", dns_task.await));
        }
        let sync = started.elapsed();
        eprintln!("dns: ready after {sync:?} with {} Services", args.services);

        let found: Vec<Vec<u8>> = (0..args.services)
            .map(|i| encode(&format!("svc-{i}.{NAMESPACE}.svc.cluster.local.")))
            .collect::<anyhow::Result<_>>()?;
        let expansions: Vec<Vec<u8>> = (0..args.services)
            .map(|i| {
                encode(&format!(
                    "svc-{i}.{NAMESPACE}.svc.cluster.local.{NAMESPACE}.svc.cluster.local."
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        let phase = Duration::from_secs_f64(args.seconds);
        let mut results = Vec::new();
        for (label, queries, rcode) in [
            ("A, existing Service", &found, 0),
            ("search expansion, NXDOMAIN", &expansions, 3),
        ] {
            for &clients in &args.clients {
                eprintln!("dns: {label}, {clients} clients");
                let rate = bench(addr, clients, phase, Arc::new(queries.clone()), rcode).await?;
                results.push((label, clients, rate));
            }
        }
        dns_task.abort();
        drop(server);
        anyhow::Ok((sync, results))
    })?;
    print_report(&args, results.0, &results.1);
    Ok(())
}

async fn create_services(client: &Client, count: usize) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|worker| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in (worker..count).step_by(16) {
                    let service: Service = serde_json::from_value(serde_json::json!({
                        "metadata": {"name": format!("svc-{i}")},
                        "spec": {"ports": [{"name": "http", "port": 80}]},
                    }))?;
                    api.create(&PostParams::default(), &service).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    eprintln!("dns: {count} Services created in {:?}", started.elapsed());
    Ok(())
}

/// A recursive A query for `name`, id 0 (the client patches the id per query).
fn encode(name: &str) -> anyhow::Result<Vec<u8>> {
    let mut message = Message::new(0, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    Ok(message.to_vec()?)
}

/// One client per task, each with its own socket, asking queries back to back.
async fn bench(
    addr: SocketAddr,
    clients: usize,
    phase: Duration,
    queries: Arc<Vec<Vec<u8>>>,
    rcode: u8,
) -> anyhow::Result<Rate> {
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(addr).await?;
        sockets.push(Arc::new(socket));
    }
    let context = (Arc::new(sockets), queries);
    timed(
        &context,
        clients,
        phase,
        move |(sockets, queries), task, i| async move {
            let socket = &sockets[task];
            let mut query = queries[(task * 7919 + i as usize * 31) % queries.len()].clone();
            let id = (i as u16).to_be_bytes();
            query[..2].copy_from_slice(&id);
            socket.send(&query).await?;
            let mut buffer = [0u8; 1500];
            loop {
                let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer))
                    .await
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 2 s"))??;
                // A late answer to an earlier (timed-out) query is skipped.
                if len < 12 || buffer[..2] != id {
                    continue;
                }
                let answers = u16::from_be_bytes([buffer[6], buffer[7]]);
                let ok = buffer[3] & 0x0f == rcode && (rcode != 0 || answers > 0);
                return if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "unexpected answer: rcode {}",
                        buffer[3] & 0x0f
                    )))
                };
            }
        },
    )
    .await
    .context("a DNS query failed")
}

fn print_report(args: &Args, sync: Duration, results: &[(&str, usize, Rate)]) {
    println!("## DNS server: queries/s from 127.0.0.1 (issue 6)\n");
    println!(
        "`cargo xtask bench-dns --services {} --seconds {}`, {}.\n",
        args.services,
        args.seconds,
        machine::describe()
    );
    println!(
        "Ready (caches synced, sockets bound) {:.0} ms after start.\n",
        sync.as_secs_f64() * 1000.0
    );
    println!("| queries | clients | queries/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (label, clients, rate) in results {
        println!(
            "| {label} | {clients} | {:.0} | {:.3} ms | {:.3} ms |",
            rate.per_second, rate.p50_ms, rate.p99_ms
        );
    }
}
