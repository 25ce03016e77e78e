//! `taint-eviction-controller` (upstream's tainteviction): pods on a node with NoExecute taints
//! they do not tolerate are deleted at once; pods that tolerate them all for a while
//! (`tolerationSeconds`, e.g. the 300 s DefaultTolerationSeconds adds for not-ready and
//! unreachable) are deleted when the shortest of those runs out, counted from when the
//! controller first saw them tainted; when the taint goes first, the deletion is cancelled.
//! A deleted pod first gets the DisruptionTarget condition, as upstream's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::Context;
use crate::pods_by_node::PodsByNode;
use clientkit::{EventType, Recorder};

/// How often pods on tainted nodes are looked at.
const PASS_PERIOD: Duration = Duration::from_millis(500);

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let (nodes, node_writer) = reflector::store();
    let node_events = reflector(
        node_writer,
        watcher(Api::<Node>::all(ctx.client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let pods = PodsByNode::new(&ctx.pods);
    let recorder = Recorder::new(ctx.client.clone(), "taint-eviction-controller");
    let work = async move {
        nodes.wait_until_ready().await?;
        pods.synced().await;
        let mut scheduled: HashMap<String, Scheduled> = HashMap::new();
        let mut tick = tokio::time::interval(PASS_PERIOD);
        loop {
            tick.tick().await;
            pass(&ctx.client, &recorder, &nodes, &pods, &mut scheduled).await;
        }
    };
    tokio::select! {
        result = work => result,
        () = node_events => anyhow::bail!("node watch ended"),
    }
}

async fn pass(
    client: &kube::Client,
    recorder: &Recorder,
    nodes: &Store<Node>,
    pods: &PodsByNode,
    scheduled: &mut HashMap<String, Scheduled>,
) {
    let now = Instant::now();
    let mut still: HashMap<String, Scheduled> = HashMap::new();
    let mut evicted = Vec::new();
    for node in nodes.state() {
        let taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoExecute")
            .collect();
        if taints.is_empty() {
            continue;
        }
        let node_name = node.metadata.name.clone().unwrap_or_default();
        for pod in pods.on(&node_name) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let evict_at = match min_toleration(&taints, &tolerations) {
                Tolerated::Not => Some(now),
                Tolerated::Forever => None,
                Tolerated::For(seconds) => {
                    let since = scheduled.remove(&uid).map_or(now, |s| s.since);
                    let name = format!(
                        "{}/{}",
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        pod.metadata.name.as_deref().unwrap_or_default()
                    );
                    let pod_ref = clientkit::events::reference(&*pod);
                    still.insert(
                        uid.clone(),
                        Scheduled {
                            since,
                            pod: pod_ref,
                            name,
                        },
                    );
                    Some(since + Duration::from_secs(seconds))
                }
            };
            if evict_at.is_some_and(|at| at <= now) {
                still.remove(&uid);
                evicted.push(uid.clone());
                evict(client, recorder, &pod).await;
            }
        }
    }
    // Evictions whose taint went away first are cancelled.
    for (uid, cancelled) in std::mem::replace(scheduled, still) {
        if !evicted.contains(&uid) {
            let message = format!("Cancelling deletion of Pod {}", cancelled.name);
            recorder
                .record(
                    &cancelled.pod,
                    EventType::Normal,
                    "TaintManagerEviction",
                    &message,
                )
                .await;
        }
    }
}

/// An eviction waiting for a pod's tolerationSeconds to run out.
struct Scheduled {
    since: Instant,
    pod: k8s_openapi::api::core::v1::ObjectReference,
    name: String,
}

enum Tolerated {
    Not,
    Forever,
    For(u64),
}

/// Whether `tolerations` tolerate every taint, and for how long (the shortest
/// tolerationSeconds of the tolerations used; ≤ 0 means not at all).
fn min_toleration(taints: &[Taint], tolerations: &[Toleration]) -> Tolerated {
    let mut used = Vec::new();
    for taint in taints {
        match tolerations.iter().find(|t| tolerates(t, taint)) {
            Some(t) => used.push(t),
            None => return Tolerated::Not,
        }
    }
    let mut min: Option<i64> = None;
    for t in used {
        if let Some(seconds) = t.toleration_seconds {
            if seconds <= 0 {
                return Tolerated::Not;
            }
            min = Some(min.map_or(seconds, |m| m.min(seconds)));
        }
    }
    match min {
        None => Tolerated::Forever,
        Some(seconds) => Tolerated::For(seconds as u64),
    }
}

/// Upstream's ToleratesTaint.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Marks the pod (DisruptionTarget) and deletes it, with upstream's event.
async fn evict(client: &kube::Client, recorder: &Recorder, pod: &Pod) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    recorder
        .record(
            &clientkit::events::reference(pod),
            EventType::Normal,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {namespace}/{name}"),
        )
        .await;
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut conditions: Vec<serde_json::Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|c| c.iter().filter_map(|c| serde_json::to_value(c).ok()).collect())
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != "DisruptionTarget");
    conditions.push(json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": crate::node_lifecycle::now_rfc3339(),
    }));
    let patch = json!({"status": {"conditions": conditions}});
    if let Err(err) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::debug!(pod = %name, "cannot add the DisruptionTarget condition: {err}");
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(err) => tracing::warn!(pod = %name, "cannot evict the pod: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn toleration_times_as_upstream() {
        let taints = [taint("node.kubernetes.io/unreachable")];
        assert!(matches!(min_toleration(&taints, &[]), Tolerated::Not));
        assert!(matches!(
            min_toleration(
                &taints,
                &[toleration("node.kubernetes.io/unreachable", Some(300))]
            ),
            Tolerated::For(300)
        ));
        assert!(matches!(
            min_toleration(&taints, &[toleration("node.kubernetes.io/unreachable", None)]),
            Tolerated::Forever
        ));
        assert!(matches!(
            min_toleration(&taints, &[toleration("", None)]),
            Tolerated::Forever
        ));
        assert!(matches!(
            min_toleration(&taints, &[toleration("node.kubernetes.io/unreachable", Some(0))]),
            Tolerated::Not
        ));
        assert!(matches!(
            min_toleration(&taints, &[toleration("other", Some(10))]),
            Tolerated::Not
        ));
    }
}
