//! `node-lifecycle-controller`: watches node heartbeats (the Node's Ready condition and its
//! Lease in `kube-node-lease`) every `--node-monitor-period`. A node silent for
//! `--node-monitor-grace-period` (`--node-startup-grace-period` if it never posted status)
//! gets its conditions Unknown ("Kubelet stopped posting node status."), its pods marked not
//! ready, and the taints its state calls for: NoSchedule ones from its conditions
//! (TaintNodesByCondition) and `node.kubernetes.io/unreachable` / `not-ready` NoExecute, which
//! the taint eviction controller acts on. NoExecute taints are added at `--node-eviction-rate`
//! per zone (0.1/s, a first one at once), not at all in a small partially disrupted zone, and
//! all are removed when every zone is fully disrupted (upstream assumes the control plane's
//! own network failed). A node that recovers loses its taints.

mod conditions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};

pub use conditions::{TAINT_NOT_READY, TAINT_UNREACHABLE};

use crate::Context;
use crate::pods_by_node::PodsByNode;
use clientkit::{EventType, Recorder};

/// NoExecute taints per second in a healthy zone (`--node-eviction-rate`).
const EVICTION_RATE: f64 = 0.1;
/// The same in a partially disrupted zone larger than [`LARGE_CLUSTER`]
/// (`--secondary-node-eviction-rate`); smaller disrupted zones get none.
const SECONDARY_EVICTION_RATE: f64 = 0.01;
const LARGE_CLUSTER: usize = 50;
/// Share of not-ready nodes (with more than two) from which a zone is partially disrupted.
const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// How many events are written at once.
const EVENT_CONCURRENCY: usize = 8;

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

/// What the controller remembers of a node's heartbeats.
struct Health {
    /// When we last saw the node or its Lease change.
    probe: Instant,
    heartbeat: Option<String>,
    renew: Option<String>,
}

struct Controller {
    client: kube::Client,
    config: Arc<crate::Config>,
    recorder: Recorder,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: PodsByNode,
    health: HashMap<String, Health>,
    /// When each zone last got a NoExecute taint (the zone's rate limiter).
    last_taint: HashMap<String, Instant>,
    /// Events are written in the background, a few at a time (as client-go's broadcaster), so
    /// thousands of RegisteredNode events do not hold up a monitoring pass.
    event_writes: Arc<tokio::sync::Semaphore>,
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let (nodes, node_writer) = reflector::store();
    let node_events = reflector(
        node_writer,
        watcher(Api::<Node>::all(ctx.client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let (leases, lease_writer) = reflector::store();
    let lease_events = reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(ctx.client.clone(), "kube-node-lease"),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(|_| async {});
    let pods = PodsByNode::new(&ctx.pods);
    let mut controller = Controller {
        client: ctx.client.clone(),
        config: ctx.config.clone(),
        recorder: Recorder::new(ctx.client.clone(), "node-controller"),
        nodes,
        leases,
        pods,
        health: HashMap::new(),
        last_taint: HashMap::new(),
        event_writes: Arc::new(tokio::sync::Semaphore::new(EVENT_CONCURRENCY)),
    };
    let monitor = async move {
        controller.nodes.wait_until_ready().await?;
        controller.leases.wait_until_ready().await?;
        controller.pods.synced().await;
        let mut tick = tokio::time::interval(controller.config.node_monitor_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            controller.monitor().await;
        }
    };
    tokio::select! {
        result = monitor => result,
        () = node_events => anyhow::bail!("node watch ended"),
        () = lease_events => anyhow::bail!("lease watch ended"),
    }
}

/// A node as this pass sees it (after any update this pass made).
struct Seen {
    name: String,
    zone: String,
    node: Value,
    ready: String,
}

impl Controller {
    fn emit(
        &self,
        object: &k8s_openapi::api::core::v1::ObjectReference,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        let (recorder, permits) = (self.recorder.clone(), self.event_writes.clone());
        let (object, reason, message) = (object.clone(), reason.to_owned(), message.to_owned());
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            recorder.record(&object, kind, &reason, &message).await;
        });
    }

    /// One monitoring pass over every node (upstream's `monitorNodeHealth`).
    async fn monitor(&mut self) {
        let now = Instant::now();
        let wall = now_rfc3339();
        let nodes = self.nodes.state();
        let mut seen = Vec::with_capacity(nodes.len());
        let names: std::collections::HashSet<String> =
            nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
        let gone: Vec<String> = self
            .health
            .keys()
            .filter(|n| !names.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.health.remove(&name);
            self.last_taint.remove(&name);
            let reference = node_reference(&name, "");
            let message = format!("Node {name} event: Removing Node {name} from Controller");
            self.emit(&reference, EventType::Normal, "RemovingNode", &message);
        }
        for node in nodes {
            let Ok(mut value) = serde_json::to_value(&*node) else {
                continue;
            };
            let name = node.metadata.name.clone().unwrap_or_default();
            let uid = node.metadata.uid.clone().unwrap_or_default();
            if !self.health.contains_key(&name) {
                self.health.insert(
                    name.clone(),
                    Health {
                        probe: now,
                        heartbeat: None,
                        renew: None,
                    },
                );
                let message = format!("Registered Node {name} in Controller");
                self.emit(
                    &node_reference(&name, &uid),
                    EventType::Normal,
                    "RegisteredNode",
                    &message,
                );
            }
            let observed = conditions::ready_status(&value).to_owned();
            let has_ready = value["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready"));
            let heartbeat = value["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["lastHeartbeatTime"].as_str())
                .map(str::to_owned);
            let renew = self
                .leases
                .get(&ObjectRef::new(&name).within("kube-node-lease"))
                .and_then(|l| l.spec.as_ref()?.renew_time.clone())
                .map(|t| t.0.to_string());
            let health = self.health.get_mut(&name).expect("inserted above");
            if heartbeat.is_some() && heartbeat != health.heartbeat {
                health.heartbeat = heartbeat;
                health.probe = now;
            }
            if renew.is_some() && renew != health.renew {
                health.renew = renew;
                health.probe = now;
            }
            let grace = if has_ready {
                self.config.node_monitor_grace_period
            } else {
                self.config.node_startup_grace_period
            };
            if now.duration_since(health.probe) > grace
                && let Some(updated) = conditions::unknown_conditions(&value, &wall)
            {
                match self.patch_node_status(&name, &value, &updated).await {
                    Ok(revision) => {
                        value["status"]["conditions"] = updated;
                        value["metadata"]["resourceVersion"] = revision.into();
                    }
                    Err(err) => tracing::warn!(node = %name, "cannot mark the node unknown: {err}"),
                }
            }
            let ready = conditions::ready_status(&value).to_owned();
            if ready != "True" && observed == "True" {
                let message = format!("Node {name} status is now: NodeNotReady");
                self.emit(
                    &node_reference(&name, &uid),
                    EventType::Normal,
                    "NodeNotReady",
                    &message,
                );
                self.mark_pods_not_ready(&name).await;
            }
            seen.push(Seen {
                zone: zone(&value),
                name,
                node: value,
                ready,
            });
        }
        self.taint(seen, now, &wall).await;
    }

    /// Sets every node's taints: NoSchedule ones from its conditions, and the NoExecute
    /// not-ready / unreachable one under the zone's disruption state and rate.
    async fn taint(&mut self, seen: Vec<Seen>, now: Instant, wall: &str) {
        let mut zones: HashMap<&str, (usize, usize)> = HashMap::new();
        for s in &seen {
            let entry = zones.entry(s.zone.as_str()).or_default();
            if s.ready == "True" {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
        let state = |(ready, not_ready): (usize, usize)| {
            if ready == 0 && not_ready > 0 {
                ZoneState::FullDisruption
            } else if not_ready > 2
                && not_ready as f64 / (ready + not_ready) as f64 >= UNHEALTHY_ZONE_THRESHOLD
            {
                ZoneState::PartialDisruption
            } else {
                ZoneState::Normal
            }
        };
        let all_fully_disrupted =
            !zones.is_empty() && zones.values().all(|z| state(*z) == ZoneState::FullDisruption);
        let zone_info: HashMap<String, (ZoneState, usize)> = zones
            .iter()
            .map(|(zone, counts)| (zone.to_string(), (state(*counts), counts.0 + counts.1)))
            .collect();
        for s in seen {
            let no_schedule = conditions::no_schedule_taints(&s.node);
            let current = conditions::no_execute_taint(&s.node).map(str::to_owned);
            let wanted = match s.ready.as_str() {
                _ if all_fully_disrupted => None,
                "True" => None,
                "False" => Some(TAINT_NOT_READY),
                _ => Some(TAINT_UNREACHABLE),
            };
            let no_execute = match (wanted, current.as_deref()) {
                (None, _) => None,
                // Already tainted (or swapped between not-ready and unreachable): no rate limit.
                (Some(key), Some(_)) => Some(key),
                (Some(key), None) => {
                    let (zone_state, size) =
                        zone_info.get(&s.zone).copied().unwrap_or((ZoneState::Normal, 0));
                    let rate = match zone_state {
                        ZoneState::PartialDisruption if size > LARGE_CLUSTER => SECONDARY_EVICTION_RATE,
                        ZoneState::PartialDisruption => 0.0,
                        _ => EVICTION_RATE,
                    };
                    let allowed = rate > 0.0
                        && self
                            .last_taint
                            .get(&s.zone)
                            .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs_f64(1.0 / rate));
                    if allowed {
                        self.last_taint.insert(s.zone.clone(), now);
                        Some(key)
                    } else {
                        None
                    }
                }
            };
            let taints = conditions::desired_taints(&s.node, &no_schedule, no_execute, wall);
            let unchanged = s.node["spec"]["taints"]
                .as_array()
                .map_or(taints.is_empty(), |t| *t == taints);
            if unchanged {
                continue;
            }
            let nodes: Api<Node> = Api::all(self.client.clone());
            // No taints left: remove the field (as upstream's omitempty list shows it).
            let taints = if taints.is_empty() {
                Value::Null
            } else {
                Value::Array(taints)
            };
            // Only over the node as read: a concurrent change (e.g. `kubectl taint`) wins, and
            // the next pass decides again.
            let patch = json!({
                "metadata": {"resourceVersion": s.node["metadata"]["resourceVersion"]},
                "spec": {"taints": taints},
            });
            if let Err(err) = nodes
                .patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(node = %s.name, "cannot update the node's taints: {err}");
            }
        }
    }

    /// Writes the node's conditions (if the node is still as read); returns its new resourceVersion.
    async fn patch_node_status(&self, name: &str, node: &Value, conditions: &Value) -> kube::Result<String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let patch = json!({
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "status": {"conditions": conditions},
        });
        let updated = nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(updated.metadata.resource_version.unwrap_or_default())
    }

    /// Upstream's MarkPodsNotReady: every pod on the node gets Ready=False.
    async fn mark_pods_not_ready(&self, node: &str) {
        let wall = now_rfc3339();
        for pod in self.pods.on(node) {
            let Ok(mut value) = serde_json::to_value(&*pod) else {
                continue;
            };
            let Some(conditions) = value["status"]["conditions"].as_array_mut() else {
                continue;
            };
            let Some(ready) = conditions.iter_mut().find(|c| c["type"] == "Ready") else {
                continue;
            };
            if ready["status"] == "False" {
                continue;
            }
            ready["status"] = "False".into();
            ready["lastTransitionTime"] = wall.clone().into();
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let patch = json!({
                "metadata": {"resourceVersion": value["metadata"]["resourceVersion"]},
                "status": {"conditions": value["status"]["conditions"]},
            });
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            match pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.emit(
                        &clientkit::events::reference(&*pod),
                        EventType::Warning,
                        "NodeNotReady",
                        "Node is not ready",
                    );
                }
                Err(err) => tracing::warn!(pod = %name, "cannot mark the pod not ready: {err}"),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ZoneState {
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// Upstream's zone key: region and zone labels.
fn zone(node: &Value) -> String {
    let labels = &node["metadata"]["labels"];
    let region = labels["topology.kubernetes.io/region"]
        .as_str()
        .unwrap_or_default();
    let zone = labels["topology.kubernetes.io/zone"].as_str().unwrap_or_default();
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\u{0}:{zone}")
    }
}

fn node_reference(name: &str, uid: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        kind: Some("Node".into()),
        name: Some(name.into()),
        uid: (!uid.is_empty()).then(|| uid.into()),
        ..Default::default()
    }
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
