//! `cargo xtask bench-api`: the API server over each store backend, in this process, driven by
//! kube-rs over HTTPS (client and server share the machine): create / get / list throughput and
//! p50 / p99 at 1, 16 and 256 concurrent clients, creates paced at a fixed rate, and the latency
//! of watch events to many concurrent watchers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};

use crate::stats::{Latency, Rate, histogram, latency, timed};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Creates per second in the paced phase.
    #[arg(long, default_value_t = 1000)]
    paced_rate: u32,
    /// Concurrent watchers in the watch phase.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Only this backend: sqlite or etcd.
    #[arg(long)]
    only: Option<String>,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Default)]
struct Figures {
    creates: Vec<(usize, Rate)>,
    paced: Rate,
    gets: Rate,
    lists: Rate,
    watch: Latency,
}

const CONCURRENCY: [usize; 3] = [1, 16, 256];

pub fn run(args: Args) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut results = Vec::new();
    for backend in ["sqlite", "etcd"] {
        if args.only.as_deref().is_some_and(|o| o != backend) {
            continue;
        }
        let data = tempfile::tempdir_in(&base)?;
        let mut etcd = None;
        let figures = runtime.block_on(async {
            let store: Arc<dyn store::Store> = if backend == "sqlite" {
                Arc::new(store_sqlite::SqliteStore::open(data.path().join("state.db"))?)
            } else {
                let process = testkit::etcd::EtcdProcess::start_in(data.path().join("etcd"))?;
                let store = store_etcd::EtcdStore::connect(&[process.endpoint()]).await?;
                etcd = Some(process);
                Arc::new(store)
            };
            let config = apiserver::Config::loopback(data.path().join("server"));
            let server = apiserver::start(config, store).await?;
            let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
            let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
            config.read_timeout = Some(Duration::from_secs(60));
            let client = Client::try_from(config)?;
            let figures = bench(&client, &args, backend).await?;
            drop(server);
            anyhow::Ok(figures)
        })?;
        drop(etcd);
        results.push((backend, figures));
    }
    print_report(&args, &results);
    Ok(())
}

fn configmap(name: String) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([("bench".into(), "api".into())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("payload".to_owned(), "x".repeat(1024))])),
        ..Default::default()
    }
}

async fn bench(client: &Client, args: &Args, backend: &str) -> anyhow::Result<Figures> {
    let phase = Duration::from_secs_f64(args.seconds);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("bench".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench");
    let mut f = Figures::default();
    for clients in CONCURRENCY {
        eprintln!("{backend}: creates, {clients} clients");
        let rate = timed(&api, clients, phase, move |api, task, i| async move {
            api.create(
                &PostParams::default(),
                &configmap(format!("c{clients}-{task}-{i}")),
            )
            .await
            .map(|_| ())
        })
        .await?;
        f.creates.push((clients, rate));
    }

    eprintln!("{backend}: creates paced at {}/s", args.paced_rate);
    f.paced = paced_creates(&api, args.paced_rate, phase).await?;

    eprintln!("{backend}: gets and lists, 16 clients");
    f.gets = timed(&api, 16, phase, |api, task, i| async move {
        api.get(&format!("c16-{}-{}", task, i % 50)).await.map(|_| ())
    })
    .await?;
    f.lists = timed(&api, 16, phase, |api, _, _| async move {
        api.list(&ListParams::default().limit(500)).await.map(|_| ())
    })
    .await?;

    eprintln!("{backend}: {} watchers", args.watchers);
    f.watch = watch_latency(client, args.watchers, phase).await?;
    Ok(f)
}

/// Creates at a fixed rate from enough concurrent senders that the rate holds.
async fn paced_creates(api: &Api<ConfigMap>, per_second: u32, phase: Duration) -> anyhow::Result<Rate> {
    let start = Instant::now();
    let total = (per_second as f64 * phase.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let (done, mut results) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (api, done) = (api.clone(), done.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let result = api
                .create(&PostParams::default(), &configmap(format!("paced-{i}")))
                .await
                .map(|_| t.elapsed());
            let _ = done.send(result);
        });
    }
    drop(done);
    let mut hist = histogram();
    while let Some(result) = results.recv().await {
        hist.record(result?.as_micros() as u64)?;
    }
    Ok(crate::stats::rate(&hist, start.elapsed()))
}

/// `watchers` watches on the namespace; one writer creates objects for the phase; every watcher
/// must see every object. Latency: from issuing the create to each watcher's receipt.
async fn watch_latency(client: &Client, watchers: usize, phase: Duration) -> anyhow::Result<Latency> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-watch");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("bench-watch".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let rv = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .context("list resourceVersion")?;
    let epoch = Instant::now();
    let mut streams = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        streams.push(
            api.watch(&WatchParams::default().timeout(290), &rv)
                .await?
                .boxed(),
        );
    }
    let (sent_tx, sent_rx) = tokio::sync::watch::channel(0usize);
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            let mut sent = sent_rx.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                let mut seen = 0usize;
                loop {
                    let target = *sent.borrow();
                    if target > 0 && seen >= target {
                        return anyhow::Ok(hist);
                    }
                    tokio::select! {
                        event = stream.next() => match event.context("watch ended")?? {
                            WatchEvent::Added(cm) => {
                                let issued: u64 = cm.metadata.annotations.and_then(|a| a.get("issued").cloned()).context("issued")?.parse()?;
                                hist.record((epoch.elapsed().as_micros() as u64).saturating_sub(issued))?;
                                seen += 1;
                            }
                            WatchEvent::Error(e) => anyhow::bail!("watch error: {e:?}"),
                            _ => {}
                        },
                        _ = sent.changed() => {}
                    }
                }
            })
        })
        .collect();
    let deadline = epoch + phase;
    let mut created = 0usize;
    while Instant::now() < deadline {
        let mut cm = configmap(format!("w-{created}"));
        let issued = epoch.elapsed().as_micros().to_string();
        cm.metadata.annotations = Some(BTreeMap::from([("issued".to_owned(), issued)]));
        api.create(&PostParams::default(), &cm).await?;
        created += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sent_tx.send(created)?;
    let mut hist = histogram();
    for task in tasks {
        hist.add(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .context("watchers stalled")???,
        )?;
    }
    anyhow::ensure!(
        hist.len() as usize == created * watchers,
        "{} of {} events delivered",
        hist.len(),
        created * watchers
    );
    Ok(latency(&hist))
}

fn print_report(args: &Args, results: &[(&str, Figures)]) {
    println!("machine: {}", crate::machine::describe());
    println!(
        "command: cargo xtask bench-api --seconds {} --paced-rate {} --watchers {} (1 KiB ConfigMaps, kube-rs client in the same process)",
        args.seconds, args.paced_rate, args.watchers
    );
    println!();
    println!(
        "| backend | creates/s (p50 / p99 ms) at 1 · 16 · 256 clients | paced {}/s: achieved, p50 / p99 ms | gets/s (p99) | lists of 500/s (p99) | watch, {} watchers: p50 / p99 / max ms (events) |",
        args.paced_rate, args.watchers
    );
    println!("|---|---|---|---|---|---|");
    for (name, f) in results {
        let creates: Vec<String> = f
            .creates
            .iter()
            .map(|(_, r)| format!("{:.0} ({:.1} / {:.1})", r.per_second, r.p50_ms, r.p99_ms))
            .collect();
        println!(
            "| {name} | {} | {:.0}, {:.1} / {:.1} | {:.0} ({:.1}) | {:.0} ({:.1}) | {:.1} / {:.1} / {:.1} ({}) |",
            creates.join(" · "),
            f.paced.per_second,
            f.paced.p50_ms,
            f.paced.p99_ms,
            f.gets.per_second,
            f.gets.p99_ms,
            f.lists.per_second,
            f.lists.p99_ms,
            f.watch.p50_ms,
            f.watch.p99_ms,
            f.watch.max_ms,
            f.watch.events,
        );
    }
}
