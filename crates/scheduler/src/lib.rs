//! kube-scheduler's role: binds pending pods to nodes, as upstream's scheduler does, through the
//! API server's HTTP API only (watches in, `pods/binding` and status writes out).
//!
//! - [`informers`]: one watch each on pods, nodes, namespaces and PodDisruptionBudgets.
//! - [`cache`]: per-node [`node_info::NodeInfo`] kept incrementally, with assumed pods, and the
//!   cheap per-cycle [`cache::Snapshot`].
//! - [`queue`]: activeQ / backoffQ / unschedulable pods, requeued on cluster events.
//! - [`framework`]: the extension-point traits and their runner; [`plugins`]: the in-tree
//!   plugins, the registry and the default profile.
//! - [`scheduler`]: the scheduling loop on its own thread; [`api`]: the writes, off the loop.
//!
//! The scheduler never writes a pod's status except its PodScheduled condition and
//! `nominatedNodeName`; a pod's node is set only through `pods/binding`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub mod api;
pub mod cache;
pub mod framework;
pub mod informers;
pub mod node_info;
pub mod plugins;
pub mod pod_info;
pub mod queue;
pub mod resources;
pub mod scheduler;

pub use plugins::node_resources_fit::ScoringStrategy;

/// Maps and sets looked up once per node per pod: hashed with foldhash, not SipHash (keys are
/// names and uids, not attacker-chosen collisions worth defending against per lookup).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// The scheduler's configuration (the parts of KubeSchedulerConfiguration we support).
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Percentage of nodes to find feasible before scoring; 0 = adaptive (upstream's default).
    pub percentage_of_nodes_to_score: u32,
    /// NodeResourcesFit's scoring strategy.
    pub scoring_strategy: ScoringStrategy,
}

/// The queue orders pods by the profile's QueueSort plugin.
struct ProfileSort(Arc<dyn framework::Plugin>);

impl framework::QueueSortPlugin for ProfileSort {
    fn sort_key(&self, pod: &pod_info::PodInfo, queued_at: std::time::Instant) -> (i64, std::time::Instant) {
        match self.0.queue_sort() {
            Some(sort) => sort.sort_key(pod, queued_at),
            None => (0, queued_at),
        }
    }
}

/// Stops the scheduling thread when the scheduler's future is dropped (leadership lost).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the scheduler until it fails or its future is dropped.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let api = api::ApiWriter::new(client.clone(), runtime.clone());
    let handle = plugins::Handle {
        client: Some(client.clone()),
        api: Some(api.clone()),
        config,
        ..plugins::Handle::default()
    };
    let framework = Arc::new(plugins::default_framework(&handle));
    let queue = Arc::new(queue::SchedulingQueue::new(Arc::new(ProfileSort(
        framework.queue_sort.clone(),
    ))));
    let cache = Arc::new(Mutex::new(cache::Cache::default()));

    let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel(4);
    let mut watches = tokio::task::JoinSet::new();
    watches.spawn(informers::pods(
        client.clone(),
        cache.clone(),
        queue.clone(),
        synced_tx.clone(),
    ));
    watches.spawn(informers::nodes(
        client.clone(),
        cache.clone(),
        queue.clone(),
        synced_tx.clone(),
    ));
    watches.spawn(informers::namespaces(
        client.clone(),
        handle.namespaces.clone(),
        synced_tx.clone(),
    ));
    watches.spawn(informers::pdbs(client.clone(), handle.pdbs.clone(), synced_tx));
    // As upstream, schedule only once every informer has listed.
    for _ in 0..4 {
        if synced_rx.recv().await.is_none() {
            anyhow::bail!("a scheduler watch ended before listing");
        }
    }
    tracing::info!("scheduler: caches synced, scheduling");

    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let scheduler = scheduler::Scheduler::new(framework, cache, queue, Some(api), Some(runtime));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("scheduler".to_owned())
        .spawn(move || scheduler.run(&thread_stop))?;
    let ended = watches.join_next().await;
    stop.store(true, Ordering::Relaxed);
    drop(thread);
    match ended {
        Some(Err(err)) => anyhow::bail!("a scheduler watch panicked: {err}"),
        _ => anyhow::bail!("a scheduler watch ended"),
    }
}
