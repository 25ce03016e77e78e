//! Hollow nodes: one process that plays the kubelet of many nodes without running anything
//! (the KWOK method), so controllers and the scheduler can be exercised at scale.
//!
//! Each hollow node registers a Node as a kubelet does, renews its Lease in `kube-node-lease`
//! every 10 s, re-posts its status when it changed or every 5 minutes, and "runs" the pods
//! bound to it: they go Running / Ready with an address from the node's `spec.podCIDR`, and
//! when deleted they terminate and are removed with a grace period of 0, as the kubelet does.
//! Pods run until deleted (whatever their restartPolicy: a hollow container never exits).
//! A node that gets no podCIDR within 10 s (node IPAM off or out of ranges) takes a fallback
//! /24 from 100.64.0.0/10, as a kubelet with a CNI plugin doing its own IPAM would.
//!
//! Cost does not grow with a watch per node: one pod watch and one node watch serve all nodes,
//! and every write goes through bounded concurrency.
//!
//! - `node`: the Node object and status a kubelet posts; `heartbeat`: leases and status posts,
//!   and stopping / resuming a node's heartbeats (`--stop-heartbeat-dir`);
//! - `pods`: the shared pod watch and the work queue that reports pod status and deletes
//!   terminated pods; `pod_status`: the status a kubelet reports; `podips`: per-node pod
//!   addresses from the node's podCIDR.

mod heartbeat;
mod node;
pub use node::parse_quantity_bytes;
mod pod_status;
mod podips;
mod pods;
mod queue;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;

/// How many API writes the whole simulation has in flight at once.
const WRITE_CONCURRENCY: usize = 64;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Config {
    /// How many nodes.
    pub nodes: usize,
    /// Node names are `<prefix><index>`, index from 0.
    pub name_prefix: String,
    /// Capacity per node: CPUs (a quantity such as `4` or `3500m`).
    pub cpu: String,
    /// Capacity per node: memory (a quantity such as `16Gi`).
    pub memory: String,
    /// Capacity per node: how many pods.
    pub pods: u32,
    /// How often each node renews its Lease and checks its status (kubelet: 10 s).
    pub heartbeat_interval: std::time::Duration,
    /// A node whose name is a file in this directory stops heartbeating (no Lease renewals, no
    /// status, no pod handling: as if its kubelet died); removing the file resumes it.
    pub stop_heartbeat_dir: Option<PathBuf>,
}

/// One hollow node's changing state.
#[derive(Default)]
struct NodeState {
    uid: Option<String>,
    /// The node's pod range, once node IPAM assigned it; pod addresses come from it.
    pod_ips: Option<podips::PodIps>,
    /// Heartbeats stopped on demand: nothing is written for this node.
    down: bool,
    /// The Node as the node watch last showed it.
    current: Option<Arc<serde_json::Value>>,
    /// When this process registered the node (the wait for a podCIDR counts from it).
    registered_at: Option<Instant>,
    /// When the node's status was last posted (the 5-minute report frequency).
    last_status_post: Option<Instant>,
}

/// Everything the simulation shares between its tasks.
struct Sim {
    client: kube::Client,
    config: Config,
    names: Vec<String>,
    nodes: Vec<Mutex<NodeState>>,
}

impl Sim {
    /// The index of one of our nodes by name.
    fn index(&self, name: &str) -> Option<usize> {
        let i: usize = name.strip_prefix(&self.config.name_prefix)?.parse().ok()?;
        (self.names.get(i)? == name).then_some(i)
    }

    fn node(&self, i: usize) -> std::sync::MutexGuard<'_, NodeState> {
        self.nodes[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs the simulation until the process stops: registers the nodes, then heartbeats and runs
/// their pods.
pub async fn run(client: kube::Client, config: Config) -> anyhow::Result<()> {
    let names: Vec<String> = (0..config.nodes)
        .map(|i| format!("{}{i}", config.name_prefix))
        .collect();
    let nodes = (0..config.nodes).map(|_| Mutex::default()).collect();
    let sim = Arc::new(Sim {
        client,
        config,
        names,
        nodes,
    });
    let started = Instant::now();
    let registered: Vec<anyhow::Result<()>> = futures::stream::iter(0..sim.config.nodes)
        .map(|i| heartbeat::register(&sim, i))
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    registered.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    eprintln!(
        "rkube sim: {} nodes registered in {:?}",
        sim.config.nodes,
        started.elapsed()
    );
    let pods = pods::Runner::start(sim.clone());
    tokio::select! {
        result = heartbeat::run(sim.clone(), pods.clone()) => result,
        result = pods.clone().watch_nodes() => result,
        result = pods.run() => result,
    }
}
