//! `cargo xtask bench-store`: writes/s with 1 and 64 concurrent writers, range reads/s and watch
//! delivery latency, for the SQLite backend and for Debian's etcd started here, one after the
//! other in one run, with data on the same file system. Both acknowledge a write only once it
//! is fsynced (SQLite: its sync thread fdatasyncs the WAL; etcd: its default WAL fsync).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use store::{KeyRange, Op, RangeRequest, Store, Txn};

use crate::stats::{Latency, Rate, histogram, latency, timed};

#[derive(clap::Args)]
pub struct Args {
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Bytes per value (Kubernetes objects are typically 1–4 KiB).
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Where the data goes (a temporary directory inside it); defaults to target/bench.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only this backend: sqlite or etcd.
    #[arg(long)]
    only: Option<String>,
}

#[derive(Default)]
struct Figures {
    writes_1: Rate,
    writes_64: Rate,
    gets: Rate,
    lists: Rate,
    watch: WatchFigures,
}

#[derive(Default)]
struct WatchFigures {
    from_issue: Latency,
    from_ack: Latency,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target/bench"));
    std::fs::create_dir_all(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let phase = Duration::from_secs_f64(args.seconds);
    let value = Bytes::from(vec![b'v'; args.value_size]);

    // Both backends stay open for the whole run and take turns phase by phase, so that a
    // change in the machine's disk speed during the run affects both alike.
    let data = tempfile::tempdir_in(&base)?;
    let mut backends: Vec<(&'static str, Arc<dyn Store>)> = Vec::new();
    let mut etcd = None;
    if args.only.as_deref().is_none_or(|o| o == "sqlite") {
        let store = store_sqlite::SqliteStore::open(data.path().join("state.db"))?;
        backends.push(("sqlite", Arc::new(store)));
    }
    if args.only.as_deref().is_none_or(|o| o == "etcd") {
        let process = testkit::etcd::EtcdProcess::start_in(data.path().join("etcd"))?;
        let store = runtime.block_on(store_etcd::EtcdStore::connect(&[process.endpoint()]))?;
        backends.push(("etcd", Arc::new(store)));
        etcd = Some(process);
    }
    eprintln!("data in {}", data.path().display());
    let figures = runtime.block_on(async {
        let mut figures: Vec<Figures> = backends.iter().map(|_| Figures::default()).collect();
        for (f, (name, store)) in figures.iter_mut().zip(&backends) {
            eprintln!("{name}: writes, 1 writer");
            f.writes_1 = writes(store, 1, phase, &value, "w1").await?;
        }
        for (f, (name, store)) in figures.iter_mut().zip(&backends) {
            eprintln!("{name}: writes, 64 writers");
            f.writes_64 = writes(store, 64, phase, &value, "w64").await?;
        }
        for (f, (name, store)) in figures.iter_mut().zip(&backends) {
            eprintln!("{name}: reads");
            preload(store, 1000, &value).await?;
            // Readers spread over the keys: task t reads key (61 t + 7 i) mod N on its i-th read.
            f.gets = timed(store, 16, phase, |store, task, i| async move {
                let n = (task as u64 * 61 + i * 7) % 1000;
                store.get(&format!("/bench/read/{n:04}")).await.map(|_| ())
            })
            .await?;
            f.lists = timed(store, 16, phase, |store, task, i| async move {
                let start = format!("/bench/read/{:04}", (task as u64 * 61 + i * 7) % 900);
                let req = RangeRequest::new(KeyRange::prefix_after("/bench/read/", &start)).with_limit(100);
                store.range(req).await.map(|_| ())
            })
            .await?;
        }
        for (f, (name, store)) in figures.iter_mut().zip(&backends) {
            eprintln!("{name}: watch latency");
            f.watch = watch_latency(store, phase, &value).await?;
        }
        anyhow::Ok(figures)
    })?;
    let results: Vec<(&str, Figures)> = backends.iter().map(|(name, _)| *name).zip(figures).collect();
    drop(backends);
    drop(etcd);
    print_report(&args, &results);
    Ok(())
}

/// `writers` tasks put fresh keys as fast as they are acknowledged.
async fn writes(
    store: &Arc<dyn Store>,
    writers: usize,
    phase: Duration,
    value: &Bytes,
    tag: &str,
) -> anyhow::Result<Rate> {
    let (value, tag) = (value.clone(), tag.to_owned());
    timed(store, writers, phase, move |store, w, i| {
        let (key, value) = (format!("/bench/{tag}/{w:03}/{i:09}"), value.clone());
        async move { store.put(&key, value, None).await.map(|_| ()) }
    })
    .await
}

async fn preload(store: &Arc<dyn Store>, keys: usize, value: &Bytes) -> anyhow::Result<()> {
    for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
        let txn = chunk.iter().fold(Txn::default(), |txn, i| {
            txn.then(Op::put(&format!("/bench/read/{i:04}"), value.clone(), None))
        });
        store.txn(txn).await.context("preload")?;
    }
    Ok(())
}

/// Watch latency while 8 writers keep the store busy, two ways: from issuing a write to a
/// watcher receiving its event (includes the commit), and from the write's acknowledgement to
/// the event (delivery proper; 0 when the event arrived first). A sentinel write ends it.
async fn watch_latency(
    store: &Arc<dyn Store>,
    phase: Duration,
    value: &Bytes,
) -> anyhow::Result<WatchFigures> {
    const SENTINEL: &str = "/bench/watch/~done";
    let epoch = Instant::now();
    let from = store.current_revision().await?;
    let mut watch = store.watch(KeyRange::prefix("/bench/watch/"), from).await?;
    let watcher = tokio::spawn(async move {
        let mut received = HashMap::new();
        loop {
            let event = tokio::time::timeout(Duration::from_secs(30), watch.next())
                .await
                .context("watch stalled")?
                .context("watch ended")??;
            let now = epoch.elapsed().as_micros() as u64;
            if event.kv.key == SENTINEL {
                return anyhow::Ok(received);
            }
            received.insert(event.kv.key, now);
        }
    });
    let deadline = epoch + phase;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (store, value) = (store.clone(), value.clone());
            tokio::spawn(async move {
                let mut writes = Vec::new();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("/bench/watch/{w}/{i:09}");
                    let issued = epoch.elapsed().as_micros() as u64;
                    store.put(&key, value.clone(), None).await?;
                    writes.push((key, issued, epoch.elapsed().as_micros() as u64));
                    i += 1;
                }
                anyhow::Ok(writes)
            })
        })
        .collect();
    let mut writes = Vec::new();
    for w in writers {
        writes.extend(w.await??);
    }
    store.put(SENTINEL, Bytes::new(), None).await?;
    let received = watcher.await??;
    anyhow::ensure!(
        received.len() == writes.len(),
        "watch delivered {} of {} events",
        received.len(),
        writes.len()
    );
    let mut from_issue = histogram();
    let mut from_ack = histogram();
    for (key, issued, acked) in &writes {
        let at = *received.get(key).context("event missing")?;
        from_issue.record(at.saturating_sub(*issued))?;
        from_ack.record(at.saturating_sub(*acked))?;
    }
    Ok(WatchFigures {
        from_issue: latency(&from_issue),
        from_ack: latency(&from_ack),
    })
}

fn print_report(args: &Args, results: &[(&str, Figures)]) {
    println!("machine: {}", crate::machine::describe());
    println!(
        "etcd: {}",
        crate::machine::output("etcd", &["--version"])
            .lines()
            .next()
            .unwrap_or("?")
    );
    println!(
        "command: cargo xtask bench-store --seconds {} --value-size {} ({}-byte values, {} s per phase)",
        args.seconds, args.value_size, args.value_size, args.seconds
    );
    println!();
    println!(
        "| backend | writes/s, 1 writer (p50 / p99 ms) | writes/s, 64 writers (p50 / p99 ms) | gets/s, 16 readers | range(limit 100)/s, 16 readers | watch: write issued → event, p50 / p99 / max ms | watch: write acknowledged → event, p50 / p99 / max ms (events) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, f) in results {
        println!(
            "| {name} | {:.0} ({:.2} / {:.2}) | {:.0} ({:.2} / {:.2}) | {:.0} | {:.0} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} ({}) |",
            f.writes_1.per_second,
            f.writes_1.p50_ms,
            f.writes_1.p99_ms,
            f.writes_64.per_second,
            f.writes_64.p50_ms,
            f.writes_64.p99_ms,
            f.gets.per_second,
            f.lists.per_second,
            f.watch.from_issue.p50_ms,
            f.watch.from_issue.p99_ms,
            f.watch.from_issue.max_ms,
            f.watch.from_ack.p50_ms,
            f.watch.from_ack.p99_ms,
            f.watch.from_ack.max_ms,
            f.watch.from_ack.events,
        );
    }
    if let (Some((_, sqlite)), Some((_, etcd))) = (
        results.iter().find(|(n, _)| *n == "sqlite"),
        results.iter().find(|(n, _)| *n == "etcd"),
    ) {
        println!();
        println!(
            "sqlite / etcd writes/s: {:.1}x with 1 writer, {:.1}x with 64 writers",
            sqlite.writes_1.per_second / etcd.writes_1.per_second,
            sqlite.writes_64.per_second / etcd.writes_64.per_second
        );
    }
}
