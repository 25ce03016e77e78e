//! `cargo xtask bench-pods`: the node agent with real containers (release `rkube`, runc, the CNI
//! bridge), inside a network namespace this command creates (no route out):
//! - `rkube server` start → its own Node Ready (kubelet registered, heartbeat posted);
//! - pod startup latency, create → Running as a watch sees it, with the image present
//!   (imported beforehand; `imagePullPolicy: IfNotPresent`) and the service-account token volume
//!   every pod gets (a TokenRequest, a tmpfs): pods one at a time, then many at once;
//! - the idle RSS of a joined `rkube agent` process (a second node; no pods).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use crate::rkube_process::Process;
use crate::{rkube_process, stats};

const NODE_IP: &str = "172.31.0.1";

#[derive(clap::Args)]
pub struct Args {
    /// Pods started one at a time.
    #[arg(long, default_value_t = 100)]
    sequential: usize,
    /// Pods started at once.
    #[arg(long, default_value_t = 50)]
    parallel: usize,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let binary = rkube_process::build_release()?;
    let image = rkube_process::test_image("busybox-oci.tar")?;
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let data = tempfile::tempdir_in(&base)?;
    let data_dir = std::fs::canonicalize(data.path())?.join("data");

    // Everything from here runs in a namespace of our own: threads and children inherit it.
    let netns = testkit::netns::NetNs::create("rkube-bench-pods")?;
    netns.add_interface("node0", &format!("{NODE_IP}/24"))?;
    netns.enter()?;

    let status = Command::new(&binary)
        .args(["image", "import", "--data-dir"])
        .arg(&data_dir)
        .arg(&image)
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "rkube image import failed");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let port = testkit::free_port().to_string();
    let started = Instant::now();
    let server = Process(
        Command::new(&binary)
            .args(["server", "--bind-address", "127.0.0.1", "--https-port", &port])
            .args(["--node-name", "bench-node", "--node-ip", NODE_IP])
            .args(["--eviction-hard", "nodefs.available<1%"])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.path().join("server.log"))?)
            .spawn()
            .context("cannot start rkube server")?,
    );
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    let result = runtime.block_on(async {
        let client = rkube_process::connect(&kubeconfig, Duration::from_secs(60)).await?;
        let ready = wait_node_ready(&client, "bench-node", started).await?;
        eprintln!("server start → node Ready: {ready:.2} s");
        wait_pod_cidr(&client, "bench-node").await?;
        wait_default_service_account(&client).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        // One pod first: the network configuration and first-use costs.
        start_pods(&pods, "warmup", 1).await?;
        delete_all(&pods).await?;
        let mut sequential = stats::histogram();
        for i in 0..args.sequential {
            let took = start_pods(&pods, &format!("seq-{i}"), 1).await?;
            sequential.record(took[0].as_micros() as u64)?;
        }
        delete_all(&pods).await?;
        let mut parallel = stats::histogram();
        for took in start_pods(&pods, "par", args.parallel).await? {
            parallel.record(took.as_micros() as u64)?;
        }
        delete_all(&pods).await?;
        let agent_rss = agent_idle_rss(&binary, data.path(), &port).await?;
        anyhow::Ok((
            ready,
            stats::latency(&sequential),
            stats::latency(&parallel),
            agent_rss,
        ))
    });
    let server_rss = rss_kib(server.0.id());
    drop(server);
    let (ready, sequential, parallel, agent_rss) = result?;
    println!("\n| measure | result |");
    println!("|---|---|");
    println!("| `rkube server` start → node Ready | {ready:.2} s |");
    println!(
        "| pod startup, {} one at a time | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms |",
        sequential.events, sequential.p50_ms, sequential.p99_ms, sequential.max_ms
    );
    println!(
        "| pod startup, {} at once | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms |",
        parallel.events, parallel.p50_ms, parallel.p99_ms, parallel.max_ms
    );
    println!(
        "| `rkube agent` idle RSS (joined, no pods) | {:.1} MiB |",
        agent_rss as f64 / 1024.0
    );
    println!(
        "| `rkube server` RSS after the runs | {:.1} MiB |",
        server_rss as f64 / 1024.0
    );
    Ok(())
}

async fn wait_node_ready(client: &kube::Client, name: &str, since: Instant) -> anyhow::Result<f64> {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        if let Ok(node) = nodes.get(name).await {
            let ready = node
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                return Ok(since.elapsed().as_secs_f64());
            }
        }
        ensure!(
            since.elapsed() < Duration::from_secs(60),
            "node {name} did not become Ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_pod_cidr(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.get(name).await?.spec.and_then(|s| s.pod_cidr).is_none() {
        ensure!(Instant::now() < deadline, "node {name} got no pod CIDR");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Pods get their token volume only once the namespace's `default` ServiceAccount exists.
async fn wait_default_service_account(client: &kube::Client) -> anyhow::Result<()> {
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    while accounts.get_opt("default").await?.is_none() {
        ensure!(Instant::now() < deadline, "no default ServiceAccount");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn pod(name: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "c",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
            }],
        },
    }))?)
}

/// Creates `count` pods at once and returns each one's create → Running time.
async fn start_pods(pods: &Api<Pod>, prefix: &str, count: usize) -> anyhow::Result<Vec<Duration>> {
    let config = watcher::Config::default().labels("bench=pods");
    let mut events = watcher::watcher(pods.clone(), config).default_backoff().boxed();
    // The watch is established once its initial listing is done.
    while let Some(event) = events.next().await {
        if matches!(event?, Event::InitDone) {
            break;
        }
    }
    let mut created = HashMap::new();
    let creates = (0..count).map(|i| {
        let name = format!("{prefix}-{i}");
        async move {
            let at = Instant::now();
            pods.create(&PostParams::default(), &pod(&name)?).await?;
            anyhow::Ok((name, at))
        }
    });
    for result in futures::future::join_all(creates).await {
        let (name, at) = result?;
        created.insert(name, at);
    }
    let mut took = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while took.len() < count {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .context("pods did not all become Running within 2 minutes")?;
        let Some(Ok(Event::Apply(pod))) = event else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running")
            && let Some(at) = created.remove(pod.metadata.name.as_deref().unwrap_or_default())
        {
            took.push(at.elapsed());
        }
    }
    Ok(took)
}

/// Deletes the benchmark's pods and waits until the API has none left.
async fn delete_all(pods: &Api<Pod>) -> anyhow::Result<()> {
    let params = ListParams::default().labels("bench=pods");
    pods.delete_collection(&DeleteParams::default(), &params).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods.list(&params).await?.items.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "pods were not deleted within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Joins a second node with `rkube agent` and reads its RSS once it has been Ready and idle
/// for a while.
async fn agent_idle_rss(binary: &Path, dir: &Path, port: &str) -> anyhow::Result<u64> {
    let token = dir.join("data/token");
    let agent = Process(
        Command::new(binary)
            .args(["agent", "--server", &format!("https://127.0.0.1:{port}")])
            .arg("--token-file")
            .arg(&token)
            .arg("--data-dir")
            .arg(dir.join("agent-data"))
            .args(["--node-name", "idle-node", "--node-ip", NODE_IP])
            .args(["--eviction-hard", "nodefs.available<1%"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.log"))?)
            .spawn()
            .context("cannot start rkube agent")?,
    );
    let kubeconfig = dir.join("data/kubeconfig.yaml");
    let client = rkube_process::connect(&kubeconfig, Duration::from_secs(60)).await?;
    wait_node_ready(&client, "idle-node", Instant::now()).await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let rss = rss_kib(agent.0.id());
    if rss == 0 {
        bail!("cannot read the agent's RSS");
    }
    Ok(rss)
}
