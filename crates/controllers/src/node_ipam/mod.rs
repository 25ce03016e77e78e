//! `node-ipam-controller`, upstream's RangeAllocator: every Node gets `spec.podCIDR` /
//! `spec.podCIDRs` (one range per `--cluster-cidr` entry, of `--node-cidr-mask-size-ipv4/6`
//! bits). Ranges nodes already have are occupied first; a deleted node's ranges are free
//! again; when a range set is exhausted the node gets a `CIDRNotAvailable` event.

mod cidrset;

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::Context;
use cidrset::CidrSet;

/// How many node patches are in flight at once.
const CONCURRENT_WRITES: usize = 32;

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

/// Allocation state: the range sets and what each node holds (or is being given).
struct Allocator {
    sets: Vec<CidrSet>,
    by_node: HashMap<String, Vec<String>>,
}

impl Allocator {
    fn occupy(&mut self, node: &str, cidrs: &[String]) {
        for cidr in cidrs {
            for set in &mut self.sets {
                if set.occupy(cidr) {
                    break;
                }
            }
        }
        self.by_node.insert(node.to_owned(), cidrs.to_vec());
    }

    fn release(&mut self, node: &str) {
        for cidr in self.by_node.remove(node).unwrap_or_default() {
            for set in &mut self.sets {
                if set.same_family(&cidr) {
                    set.release(&cidr);
                }
            }
        }
    }

    /// One range from every set, or None (nothing taken) if one is exhausted.
    fn allocate(&mut self, node: &str) -> Option<Vec<String>> {
        let mut taken = Vec::new();
        for set in &mut self.sets {
            match set.allocate() {
                Some(cidr) => taken.push(cidr),
                None => {
                    for (cidr, set) in taken.iter().zip(&mut self.sets) {
                        set.release(cidr);
                    }
                    return None;
                }
            }
        }
        self.by_node.insert(node.to_owned(), taken.clone());
        Some(taken)
    }
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let config = &ctx.config;
    let mut sets = Vec::new();
    for cidr in config.cluster_cidr.split(',').filter(|c| !c.trim().is_empty()) {
        let v6 = cidr.contains(':');
        let bits = if v6 {
            config.node_cidr_mask_size_ipv6
        } else {
            config.node_cidr_mask_size_ipv4
        };
        sets.push(CidrSet::new(cidr, bits).map_err(anyhow::Error::msg)?);
    }
    if sets.is_empty() {
        // No cluster CIDR: nothing to allocate (upstream does not start the controller).
        return std::future::pending().await;
    }
    let allocator = Arc::new(std::sync::Mutex::new(Allocator {
        sets,
        by_node: HashMap::new(),
    }));
    let recorder = clientkit::Recorder::new(ctx.client.clone(), "cidrAllocator");
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let writes = Arc::new(Semaphore::new(CONCURRENT_WRITES));
    let mut events = watcher(nodes.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed: Vec<Node> = Vec::new();
    // Nodes that found no free range, by name.
    let mut starved: HashMap<String, Node> = HashMap::new();
    while let Some(event) = events.try_next().await? {
        let todo: Vec<Node> = match event {
            watcher::Event::Init => {
                listed.clear();
                continue;
            }
            watcher::Event::InitApply(node) => {
                listed.push(node);
                continue;
            }
            watcher::Event::InitDone => {
                // Occupy every existing range first, then allocate for the others.
                let mut state = lock(&allocator);
                state.by_node.clear();
                for set in &mut state.sets {
                    set.clear();
                }
                for node in &listed {
                    let cidrs = pod_cidrs(node);
                    if !cidrs.is_empty() {
                        state.occupy(&name(node), &cidrs);
                    }
                }
                std::mem::take(&mut listed)
            }
            watcher::Event::Apply(node) => vec![node],
            watcher::Event::Delete(node) => {
                lock(&allocator).release(&name(&node));
                starved.remove(&name(&node));
                // A range came free: nodes that found none try again (upstream requeues them).
                starved.values().cloned().collect()
            }
        };
        for node in todo {
            let node_name = name(&node);
            let cidrs = pod_cidrs(&node);
            let allocated = {
                let mut state = lock(&allocator);
                if !cidrs.is_empty() {
                    starved.remove(&node_name);
                    if state.by_node.get(&node_name) != Some(&cidrs) {
                        state.release(&node_name);
                        state.occupy(&node_name, &cidrs);
                    }
                    continue;
                }
                if state.by_node.contains_key(&node_name) {
                    // A patch for it is in flight.
                    continue;
                }
                state.allocate(&node_name)
            };
            let Some(allocated) = allocated else {
                tracing::warn!(node = %node_name, "no pod CIDR left to allocate");
                starved.insert(node_name.clone(), node.clone());
                recorder
                    .record(
                        &clientkit::events::reference(&node),
                        clientkit::EventType::Normal,
                        "CIDRNotAvailable",
                        &format!("Node {node_name} status is now: CIDRNotAvailable"),
                    )
                    .await;
                continue;
            };
            starved.remove(&node_name);
            let permit = writes.clone().acquire_owned().await?;
            let (nodes, allocator) = (nodes.clone(), allocator.clone());
            let uid = node.metadata.uid.clone();
            tokio::spawn(async move {
                let patch = json!({
                    "metadata": {"uid": uid},
                    "spec": {"podCIDR": allocated[0], "podCIDRs": allocated},
                });
                if let Err(err) = nodes
                    .patch(&node_name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    tracing::warn!(node = %node_name, "cannot set the pod CIDR: {err}");
                    // Free it again; the node's next update retries.
                    lock(&allocator).release(&node_name);
                }
                drop(permit);
            });
        }
    }
    Ok(())
}

fn name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn pod_cidrs(node: &Node) -> Vec<String> {
    let spec = node.spec.as_ref();
    match spec.and_then(|s| s.pod_cidrs.clone()).filter(|c| !c.is_empty()) {
        Some(cidrs) => cidrs,
        None => spec.and_then(|s| s.pod_cidr.clone()).into_iter().collect(),
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
