//! The pod garbage collector (upstream's `pod-garbage-collector-controller`). Every 20 s:
//! - terminated pods (Succeeded / Failed) above `--terminated-pod-gc-threshold` are deleted,
//!   evicted ones first, then oldest first;
//! - terminating pods on a NotReady node tainted `node.kubernetes.io/out-of-service` are
//!   deleted;
//! - pods bound to a node that does not exist — still missing after a 40 s quarantine and a
//!   live read — are marked Failed with a `DisruptionTarget` condition and deleted;
//! - terminating pods that were never scheduled are deleted.
//!
//! Deletion is forced (grace period 0) after the pod is marked Failed, since no kubelet is
//! there to do it.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::Context;
use crate::informer::Cache;

/// Upstream's `gcCheckPeriod`.
const CHECK_PERIOD: Duration = Duration::from_secs(20);
/// Upstream's `quarantineTime`: a node may be missing from the cache only briefly.
const QUARANTINE: Duration = Duration::from_secs(40);

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let (pods, _subscription) = ctx.pods.subscribe(|_| {});
    let (nodes, node_writer) = reflector::store::<Node>();
    let node_stream = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(ctx.client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let threshold = ctx.config.terminated_pod_gc_threshold;
    let gc = async move {
        pods.wait_synced().await;
        nodes.wait_until_ready().await?;
        let mut quarantine = Quarantine::default();
        let mut tick = tokio::time::interval(CHECK_PERIOD);
        loop {
            tick.tick().await;
            collect(&ctx.client, &pods, &nodes, threshold, &mut quarantine).await;
        }
    };
    tokio::select! {
        () = node_stream => anyhow::bail!("node watch ended"),
        result = gc => result,
    }
}

/// Node names seen missing, with when they may be checked (upstream's delaying node queue).
#[derive(Default)]
struct Quarantine {
    until: BTreeMap<String, Instant>,
}

async fn collect(
    client: &kube::Client,
    pods: &Cache<Pod>,
    nodes: &Store<Node>,
    threshold: usize,
    quarantine: &mut Quarantine,
) {
    let pods = pods.all();
    let nodes = nodes.state();
    if threshold > 0 {
        collect_terminated(client, &pods, threshold).await;
    }
    collect_terminating_out_of_service(client, &pods, &nodes).await;
    collect_orphaned(client, &pods, &nodes, quarantine).await;
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_none())
    {
        mark_failed_and_delete(client, pod, None).await;
    }
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), Some("Pending" | "Running" | "Unknown"))
}

fn evicted(pod: &Pod) -> bool {
    phase(pod) == Some("Failed") && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Evicted pods first, then by creation time, then by name.
fn deletion_order(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        evicted(b)
            .cmp(&evicted(a))
            .then_with(|| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

async fn collect_terminated(client: &kube::Client, pods: &[std::sync::Arc<Pod>], threshold: usize) {
    let mut done: Vec<&Pod> = pods.iter().map(|p| &**p).filter(|p| terminated(p)).collect();
    let Some(excess) = done.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return;
    };
    tracing::info!(pods = excess, "pod garbage collector: deleting terminated pods");
    deletion_order(&mut done);
    futures::future::join_all(
        done[..excess]
            .iter()
            .map(|p| mark_failed_and_delete(client, p, None)),
    )
    .await;
}

async fn collect_terminating_out_of_service(
    client: &kube::Client,
    pods: &[std::sync::Arc<Pod>],
    nodes: &[std::sync::Arc<Node>],
) {
    let out_of_service: HashSet<&str> = nodes
        .iter()
        .filter(|n| !ready(n) && tainted_out_of_service(n))
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut terminating: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| node_name(p).is_some_and(|n| out_of_service.contains(n)))
        .collect();
    deletion_order(&mut terminating);
    futures::future::join_all(
        terminating
            .iter()
            .map(|p| mark_failed_and_delete(client, p, None)),
    )
    .await;
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn tainted_out_of_service(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| t.key == "node.kubernetes.io/out-of-service")
}

async fn collect_orphaned(
    client: &kube::Client,
    pods: &[std::sync::Arc<Pod>],
    nodes: &[std::sync::Arc<Node>],
    quarantine: &mut Quarantine,
) {
    let existing: HashSet<&str> = nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
    let now = Instant::now();
    for pod in pods.iter() {
        if let Some(node) = node_name(pod).filter(|n| !existing.contains(n)) {
            quarantine
                .until
                .entry(node.to_owned())
                .or_insert(now + QUARANTINE);
        }
    }
    // Nodes past their quarantine and still missing, confirmed by a live read.
    let due: Vec<String> = quarantine
        .until
        .iter()
        .filter(|(_, until)| **until <= now)
        .map(|(n, _)| n.clone())
        .collect();
    let mut deleted = HashSet::new();
    let api: Api<Node> = Api::all(client.clone());
    for name in due {
        quarantine.until.remove(&name);
        if existing.contains(name.as_str()) {
            continue;
        }
        match api.get_opt(&name).await {
            Ok(None) => {
                deleted.insert(name);
            }
            Ok(Some(_)) => {}
            Err(err) => tracing::info!(node = %name, "pod garbage collector: cannot read node: {err}"),
        }
    }
    let condition = json!({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists"});
    for pod in pods
        .iter()
        .filter(|p| node_name(p).is_some_and(|n| deleted.contains(n)))
    {
        mark_failed_and_delete(client, pod, Some(&condition)).await;
    }
}

/// Marks the pod Failed (with `condition`) unless it already finished, then deletes it at once.
async fn mark_failed_and_delete(client: &kube::Client, pod: &Pod, condition: Option<&serde_json::Value>) {
    let (Some(namespace), Some(name)) = (pod.metadata.namespace.as_deref(), pod.metadata.name.as_deref())
    else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if !matches!(phase(pod), Some("Succeeded" | "Failed")) {
        let mut status = json!({"phase": "Failed"});
        if let Some(condition) = condition {
            let mut condition = condition.clone();
            condition["lastTransitionTime"] = json!(jiff::Timestamp::now().to_string());
            let mut conditions: Vec<serde_json::Value> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .filter(|c| c.type_ != "DisruptionTarget")
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect();
            conditions.push(condition);
            status["conditions"] = json!(conditions);
        }
        // The uid guards against a pod of the same name created meanwhile.
        let patch = json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
        if let Err(err) = api
            .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::info!(pod = %name, "pod garbage collector: cannot mark the pod failed: {err}");
            return;
        }
    }
    tracing::info!(%namespace, pod = %name, "pod garbage collector: force deleting pod");
    if let Err(err) = api.delete(name, &DeleteParams::default().grace_period(0)).await
        && !matches!(&err, kube::Error::Api(s) if s.code == 404)
    {
        tracing::info!(pod = %name, "pod garbage collector: cannot delete pod: {err}");
    }
}
