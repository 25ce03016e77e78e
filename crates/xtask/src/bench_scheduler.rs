//! `cargo xtask bench-scheduler`: scheduler throughput in the manner of upstream's
//! scheduler_perf `SchedulingBasic`, on real processes: a release `rkube server` (SQLite,
//! controllers and scheduler in-process, no agent) and `rkube sim` hollow nodes. For each
//! (nodes, pods) pair: N nodes register and go Ready, then P small pods are created through the
//! API (kube-rs, concurrent) and a watch sees each one bound. Throughput is P over the time from
//! the first create to the last bind. Then a Deployment of `--deployment-replicas` is created on
//! the last cluster and timed until it reports every replica available.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;

use crate::rkube_process;
use crate::rkube_process::Process;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

#[derive(clap::Args)]
pub struct Args {
    /// Hollow node counts, one run each (paired with --pods).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 5_000])]
    nodes: Vec<usize>,
    /// Pods to schedule in each run.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 50_000])]
    pods: Vec<usize>,
    /// Replicas of the Deployment timed to Available on the last cluster (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    deployment_replicas: usize,
    /// Concurrent pod creates.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Run {
    nodes: usize,
    pods: usize,
    seconds: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    ensure!(
        args.nodes.len() == args.pods.len(),
        "--nodes and --pods need as many values each"
    );
    let binary = rkube_process::build_release()?;
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut runs = Vec::new();
    let mut deployment = None;
    for (i, (&nodes, &pods)) in args.nodes.iter().zip(&args.pods).enumerate() {
        let data = tempfile::tempdir_in(&base)?;
        let port = testkit::free_port().to_string();
        let _server = Process(
            Command::new(&binary)
                .args([
                    "server",
                    "--disable-agent",
                    "--bind-address",
                    "127.0.0.1",
                    "--https-port",
                    &port,
                    // 16,384 node ranges of /24 (the default /16 has 256: too few for 5,000 nodes).
                    "--cluster-cidr=10.64.0.0/10",
                ])
                .arg("--data-dir")
                .arg(data.path().join("data"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(data.path().join("server.log"))?)
                .spawn()
                .with_context(|| format!("cannot start {}", binary.display()))?,
        );
        let kubeconfig = data.path().join("data/kubeconfig.yaml");
        let client = runtime.block_on(rkube_process::connect(&kubeconfig, Duration::from_secs(300)))?;
        let _sim = Process(
            Command::new(&binary)
                .args(["sim", "--nodes", &nodes.to_string()])
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(data.path().join("sim.log"))?)
                .spawn()
                .context("cannot start rkube sim")?,
        );
        let seconds = runtime.block_on(schedule_pods(&client, nodes, pods, args.concurrency))?;
        eprintln!(
            "{nodes} nodes, {pods} pods: {seconds:.2} s, {:.0} pods/s",
            pods as f64 / seconds
        );
        runs.push(Run { nodes, pods, seconds });
        if i + 1 == args.nodes.len() && args.deployment_replicas > 0 {
            let seconds = runtime.block_on(deployment_available(&client, args.deployment_replicas))?;
            eprintln!(
                "Deployment of {} replicas Available in {seconds:.2} s",
                args.deployment_replicas
            );
            deployment = Some((nodes, seconds));
        }
    }
    println!("\n| hollow nodes | pods | first create → last bind (s) | pods/s |");
    println!("|---|---|---|---|");
    for run in &runs {
        println!(
            "| {} | {} | {:.2} | {:.0} |",
            run.nodes,
            run.pods,
            run.seconds,
            run.pods as f64 / run.seconds
        );
    }
    if let Some((nodes, seconds)) = deployment {
        println!(
            "\nDeployment of {} replicas on {nodes} hollow nodes: Available after {seconds:.2} s",
            args.deployment_replicas
        );
    }
    Ok(())
}

/// Waits for `nodes` Ready nodes, creates `pods` pods and returns the seconds from the first
/// create to the last bind.
async fn schedule_pods(
    client: &Client,
    nodes: usize,
    pods: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    wait_for_ready_nodes(client, nodes).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "bench"}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "bench");
    // The watch is running before the first create, so no bind is missed.
    let bound = tokio::spawn(count_bound(api.clone(), pods));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    rkube_process::create_concurrently(&api, 0, pods, concurrency, pod).await?;
    eprintln!("{pods} pods created in {:.2} s", started.elapsed().as_secs_f64());
    let done = tokio::time::timeout(Duration::from_secs(1800), bound)
        .await
        .context("pods were not all bound within 30 minutes")???;
    Ok(done.duration_since(started).as_secs_f64())
}

/// Watches pods until `target` of them have a node; returns when the last was seen bound.
async fn count_bound(api: Api<Pod>, target: usize) -> anyhow::Result<Instant> {
    let mut bound = HashSet::new();
    let mut events = watcher(api, watcher::Config::default()).applied_objects().boxed();
    while let Some(pod) = events.try_next().await? {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
            bound.insert(pod.metadata.name.unwrap_or_default());
            if bound.len() >= target {
                return Ok(Instant::now());
            }
        }
    }
    bail!("the pod watch ended")
}

async fn wait_for_ready_nodes(client: &Client, nodes: usize) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let ready = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= nodes {
            eprintln!(
                "{nodes} nodes Ready after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready} of {nodes} nodes Ready after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Creates a Deployment of `replicas` and returns the seconds until it reports them all available.
async fn deployment_available(client: &Client, replicas: usize) -> anyhow::Result<f64> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench"}},
            "template": {
                "metadata": {"labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    }))?;
    let started = Instant::now();
    api.create(&PostParams::default(), &deployment).await?;
    let config = watcher::Config::default().fields("metadata.name=bench");
    let mut events = watcher(api, config).applied_objects().boxed();
    while let Some(d) = events.try_next().await? {
        let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
        if available as usize >= replicas {
            return Ok(started.elapsed().as_secs_f64());
        }
    }
    bail!("the deployment watch ended")
}

/// scheduler_perf's basic pod: one container with small requests.
fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("pod-{i:06}")},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}]},
    }))
    .expect("a valid pod")
}
