//! Registration and heartbeats, as the kubelet does them: the Node is created with its status;
//! every 10 s (nodeStatusUpdateFrequency, spread over the nodes) each node renews its Lease in
//! `kube-node-lease` and posts its status if it changed or was last posted 5 minutes ago
//! (nodeStatusReportFrequency). A node named by a file in `--stop-heartbeat-dir` does none of
//! this until the file goes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::pods::Runner;
use crate::{Sim, WRITE_CONCURRENCY, node};

/// Each node beats in one of this many slots of the heartbeat interval, so writes spread.
const SLOTS: u64 = 10;
/// How often an unchanged status is posted anyway (kubelet's nodeStatusReportFrequency).
const REPORT_FREQUENCY: Duration = Duration::from_secs(300);
/// How long a node waits for node IPAM before it takes a fallback pod range.
const FALLBACK_AFTER: Duration = Duration::from_secs(10);

/// Registers node `index` (an existing one is taken over, as a restarted kubelet does) and
/// creates its Lease.
pub async fn register(sim: &Sim, index: usize) -> anyhow::Result<()> {
    let name = &sim.names[index];
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let object: Node = serde_json::from_value(node::object(&sim.config, name, index))?;
    let uid = match nodes.create(&PostParams::default(), &object).await {
        Ok(created) => created.metadata.uid,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = nodes.get(name).await?;
            let current = serde_json::to_value(&existing)?;
            post_status(sim, index, &current).await?;
            existing.metadata.uid
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("registering node {name}"))),
    };
    {
        let mut state = sim.node(index);
        state.uid = uid.clone();
        state.last_status_post = Some(Instant::now());
        state.registered_at = Some(Instant::now());
    }
    renew_lease(sim, index, uid.as_deref()).await
}

/// Heartbeats for good, every `heartbeat_interval` (kubelet: 10 s); node `i` beats in slot
/// `i % 10` of each interval, so the writes spread.
pub async fn run(sim: Arc<Sim>, pods: Runner) -> anyhow::Result<()> {
    let slot = (sim.config.heartbeat_interval / SLOTS as u32).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(slot);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut second: u64 = 0;
    loop {
        tick.tick().await;
        second += 1;
        let stopped = stopped_nodes(&sim);
        for (index, name) in sim.names.iter().enumerate() {
            let down = stopped.contains(name.as_str());
            let was_down = std::mem::replace(&mut sim.node(index).down, down);
            if was_down && !down {
                eprintln!("rkube sim: {name} resumes heartbeats");
                pods.requeue_node(index);
            } else if down && !was_down {
                eprintln!("rkube sim: {name} stops heartbeats");
                sim.node(index).last_status_post = None;
            }
            if !down && take_fallback_range(&sim, index) {
                pods.requeue_node(index);
            }
        }
        let due: Vec<usize> = (0..sim.names.len())
            .filter(|i| (*i as u64) % SLOTS == second % SLOTS || resumed(&sim, *i))
            .filter(|i| !sim.node(*i).down)
            .collect();
        futures::stream::iter(due)
            .for_each_concurrent(WRITE_CONCURRENCY, |index| {
                let sim = sim.clone();
                async move {
                    if let Err(err) = beat(&sim, index).await {
                        tracing::warn!(node = %sim.names[index], "heartbeat failed: {err:#}");
                    }
                }
            })
            .await;
    }
}

/// A node that just resumed beats at once (its status is Unknown; a kubelet that restarts
/// posts straight away).
fn resumed(sim: &Sim, index: usize) -> bool {
    sim.node(index).last_status_post.is_none()
}

/// One heartbeat: the Lease, then the status when it changed or is due.
async fn beat(sim: &Sim, index: usize) -> anyhow::Result<()> {
    let (uid, current, last) = {
        let state = sim.node(index);
        (state.uid.clone(), state.current.clone(), state.last_status_post)
    };
    renew_lease(sim, index, uid.as_deref()).await?;
    let current = current.map(|c| (*c).clone()).unwrap_or(Value::Null);
    let due = last.is_none_or(|t| t.elapsed() >= REPORT_FREQUENCY);
    if due || node::status_changed(&current) {
        post_status(sim, index, &current).await?;
    }
    Ok(())
}

async fn post_status(sim: &Sim, index: usize, current: &Value) -> anyhow::Result<()> {
    let name = &sim.names[index];
    let nodes: Api<Node> = Api::all(sim.client.clone());
    let status = node::status(&sim.config, name, index, current, &node::now());
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await?;
    sim.node(index).last_status_post = Some(Instant::now());
    Ok(())
}

/// Creates or renews the node's Lease.
async fn renew_lease(sim: &Sim, index: usize, uid: Option<&str>) -> anyhow::Result<()> {
    clientkit::kubelet::renew_node_lease(&sim.client, &sim.names[index], uid).await
}

/// A node that node IPAM gave no pod range (IPAM disabled, or the cluster CIDR exhausted:
/// e.g. thousands of hollow nodes on the default /16) still runs pods, as a kubelet whose CNI
/// plugin has its own IPAM does: after [`FALLBACK_AFTER`] it takes a /24 of 100.64.0.0/10 by
/// its index. A range node IPAM assigns later replaces it.
fn take_fallback_range(sim: &Sim, index: usize) -> bool {
    let mut state = sim.node(index);
    let waited = state.registered_at.is_some_and(|t| t.elapsed() >= FALLBACK_AFTER);
    if state.pod_ips.is_some() || !waited {
        return false;
    }
    let base = u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + ((index as u32 % (1 << 14)) << 8);
    let cidr = format!("{}/24", std::net::Ipv4Addr::from(base));
    tracing::info!(node = %sim.names[index], %cidr, "no podCIDR assigned; pod addresses from a fallback range");
    state.pod_ips = crate::podips::PodIps::new(&cidr);
    state.pod_ips.is_some()
}

/// The nodes whose heartbeats are stopped: files named after them in `--stop-heartbeat-dir`.
fn stopped_nodes(sim: &Sim) -> HashSet<String> {
    let Some(dir) = &sim.config.stop_heartbeat_dir else {
        return HashSet::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashSet::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}
