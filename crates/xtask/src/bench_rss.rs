//! `cargo xtask bench-rss`: the memory of a real `rkube server` process (release build, SQLite,
//! `--disable-agent`): resident set idle after start, then with 10,000 and 100,000 pods stored
//! (created through the API by kube-rs from this process) — once only written, and once every
//! object is also in the watch cache (after a watch and a `resourceVersion=0` list, as informers
//! do). RSS is read from `/proc/<pid>/status` (VmRSS; VmHWM is the peak).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};

use crate::rkube_process;
use kube::api::{Api, ListParams, PostParams, WatchParams};

#[derive(clap::Args)]
pub struct Args {
    /// Pod counts to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
    pods: Vec<usize>,
    /// Concurrent creates.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill(); // our own child, by PID
        let _ = self.child.wait();
    }
}

impl Server {
    fn rss_kib(&self) -> anyhow::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let binary = rkube_process::build_release()?;
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let data = tempfile::tempdir_in(&base)?;
    let port = testkit::free_port();
    let log = std::fs::File::create(data.path().join("server.log"))?;
    let child = Command::new(&binary)
        .args([
            "server",
            "--disable-agent",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let server = Server { child };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let kubeconfig = data.path().join("data/kubeconfig.yaml");
    let rows = runtime.block_on(measure(&server, &kubeconfig, &args))?;
    println!(
        "\n| stored pods | RSS after creating (MiB) | RSS with the watch cache loaded (MiB) | peak (MiB) |"
    );
    println!("|---|---|---|---|");
    for (pods, written, cached, peak) in rows {
        let cached = if cached.is_nan() {
            "—".to_owned()
        } else {
            format!("{cached:.1}")
        };
        println!("| {pods} | {written:.1} | {cached} | {peak:.1} |");
    }
    Ok(())
}

async fn measure(
    server: &Server,
    kubeconfig: &Path,
    args: &Args,
) -> anyhow::Result<Vec<(String, f64, f64, f64)>> {
    let client = rkube_process::connect(kubeconfig, Duration::from_secs(120)).await?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, peak) = server.rss_kib()?;
    let mut rows = vec![("0 (idle)".to_owned(), mib(idle), f64::NAN, mib(peak))];
    eprintln!("idle: {:.1} MiB", mib(idle));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "bench"}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let mut created = 0;
    for &target in &args.pods {
        let started = Instant::now();
        rkube_process::create_concurrently(&pods, created, target, args.concurrency, pod).await?;
        eprintln!(
            "{target} pods stored ({:.0} creates/s)",
            (target - created) as f64 / started.elapsed().as_secs_f64()
        );
        created = target;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (written, _) = server.rss_kib()?;
        // What informers do: a list at resourceVersion 0 (from the cache) and a watch.
        let mut watch = pods.watch(&WatchParams::default(), "0").await?.boxed();
        let _ = tokio::time::timeout(Duration::from_secs(2), watch.next()).await;
        let listed = pods.list(&ListParams::default().match_any()).await?;
        anyhow::ensure!(
            listed.items.len() == target,
            "listed {} of {target} pods",
            listed.items.len()
        );
        drop(listed);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cached, peak) = server.rss_kib()?;
        eprintln!(
            "{target}: {:.1} MiB written, {:.1} MiB cached",
            mib(written),
            mib(cached)
        );
        rows.push((target.to_string(), mib(written), mib(cached), mib(peak)));
    }
    Ok(rows)
}

/// A typical small workload pod: labels, one container with a port, resources and env.
fn pod(i: usize) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("web-{i:06}"),
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "5d4f8c7b9"},
        },
        "spec": {
            "containers": [{
                "name": "nginx",
                "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "name": "http"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "env": [{"name": "MODE", "value": "production"}],
            }],
        },
    }))
    .expect("a valid pod")
}
