//! Registration and heartbeats, as kubelet 1.33 does them: the Node is created with its status
//! (an existing one is taken over, as by a restarted kubelet); then every 10 s
//! (nodeStatusUpdateFrequency) the Lease in `kube-node-lease` is renewed and the Node read: when
//! it is gone the agent registers it again; its status is posted when it differs from what the
//! machine says (a pressure condition flipped, the node lifecycle controller set Unknown, the
//! capacity changed) or was last posted 5 minutes ago (nodeStatusReportFrequency).

use std::time::{Duration, Instant};

use clientkit::kubelet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::machine::{self, Machine, Usage};
use crate::{Config, node};

/// How often the Lease is renewed and the status checked (kubelet's nodeStatusUpdateFrequency).
pub const UPDATE_FREQUENCY: Duration = Duration::from_secs(10);
/// How often an unchanged status is posted anyway (kubelet's nodeStatusReportFrequency).
pub const REPORT_FREQUENCY: Duration = Duration::from_secs(300);
/// The wait between failed registrations (kubelet backs off up to 7 s).
const REGISTER_RETRY: Duration = Duration::from_secs(1);

pub struct Heartbeat {
    nodes: Api<Node>,
    recorder: clientkit::events::Recorder,
    client: kube::Client,
    config: Config,
    machine: Machine,
    /// The Node's uid, once registered (owner of the Lease).
    uid: Option<String>,
    /// The status last posted, heartbeat times left out, and when.
    last_posted: Option<(Value, Instant)>,
    /// The pod network (the Ready condition waits for it; a change posts at once).
    network: tokio::sync::watch::Receiver<Option<podnet::Network>>,
}

impl Heartbeat {
    pub fn new(
        client: kube::Client,
        config: Config,
        machine: Machine,
        network: tokio::sync::watch::Receiver<Option<podnet::Network>>,
    ) -> Heartbeat {
        Heartbeat {
            nodes: Api::all(client.clone()),
            recorder: clientkit::events::Recorder::new(client.clone(), "kubelet")
                .with_host(&config.node_name),
            client,
            config,
            machine,
            uid: None,
            last_posted: None,
            network,
        }
    }

    pub async fn run(mut self) -> anyhow::Result<()> {
        self.register_until_done().await;
        let mut tick = tokio::time::interval(UPDATE_FREQUENCY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut network = self.network.clone();
        let mut network_open = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                // Once the network task ended, beat on the clock only.
                changed = network.changed(), if network_open => network_open = changed.is_ok(),
            }
            if let Err(err) = self.beat().await {
                tracing::warn!(node = %self.config.node_name, "heartbeat failed: {err:#}");
            }
        }
    }

    async fn register_until_done(&mut self) {
        loop {
            match self.register().await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(node = %self.config.node_name, "unable to register the node: {err:#}");
                    tokio::time::sleep(REGISTER_RETRY).await;
                }
            }
        }
    }

    /// Creates the Node (or takes over an existing one) and its Lease.
    async fn register(&mut self) -> anyhow::Result<()> {
        let usage = self.usage()?;
        let mut wanted = node::object(&self.config, &self.machine, &usage);
        wanted["status"]["images"] = self.images();
        let object: Node = serde_json::from_value(wanted.clone())?;
        self.uid = match self.nodes.create(&PostParams::default(), &object).await {
            Ok(created) => {
                self.remember_posted(&wanted["status"]);
                self.condition_events(&Value::Null, &wanted["status"]).await;
                created.metadata.uid
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.nodes.get(&self.config.node_name).await?;
                self.post_status(&serde_json::to_value(&existing)?, &usage)
                    .await?;
                existing.metadata.uid
            }
            Err(e) => return Err(e.into()),
        };
        tracing::info!(node = %self.config.node_name, "node registered");
        self.node_event("Starting", "Starting kubelet.").await;
        self.node_event(
            "NodeAllocatableEnforced",
            "Updated Node Allocatable limit across pods",
        )
        .await;
        kubelet::renew_node_lease(&self.client, &self.config.node_name, self.uid.as_deref()).await
    }

    /// One heartbeat: the Lease, then the Node (registered again if gone, status if due).
    async fn beat(&mut self) -> anyhow::Result<()> {
        kubelet::renew_node_lease(&self.client, &self.config.node_name, self.uid.as_deref()).await?;
        let current = match self.nodes.get(&self.config.node_name).await {
            Ok(current) => serde_json::to_value(&current)?,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::warn!(node = %self.config.node_name, "the Node was deleted; registering it again");
                return self.register().await;
            }
            Err(e) => return Err(e.into()),
        };
        let usage = self.usage()?;
        let mut wanted = node::status(&self.config, &self.machine, &usage, &current, "");
        wanted["images"] = self.images();
        let changed = self.last_posted.as_ref().is_none_or(|(last, at)| {
            at.elapsed() >= REPORT_FREQUENCY || *last != without_heartbeats(&wanted)
        });
        let conditions = node::conditions(&self.machine, &usage, &self.config.eviction_hard);
        if changed || kubelet::conditions_changed(&conditions, &current) {
            self.post_status(&current, &usage).await?;
        }
        Ok(())
    }

    async fn post_status(&mut self, current: &Value, usage: &Usage) -> anyhow::Result<()> {
        let mut status = node::status(&self.config, &self.machine, usage, current, &kubelet::now());
        status["images"] = self.images();
        self.nodes
            .patch_status(
                &self.config.node_name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await?;
        self.condition_events(current, &status).await;
        self.remember_posted(&status);
        Ok(())
    }

    /// kubelet's node status events: `Node <name> status is now: NodeHasSufficientMemory`, …,
    /// `NodeReady`, for each condition whose status changed.
    async fn condition_events(&self, before: &Value, after: &Value) {
        let status_of = |v: &Value, kind: &str| -> Option<String> {
            v["status"]["conditions"]
                .as_array()
                .or_else(|| v["conditions"].as_array())?
                .iter()
                .find(|c| c["type"] == kind)
                .and_then(|c| c["status"].as_str().map(str::to_owned))
        };
        for (kind, if_true, if_false) in [
            (
                "MemoryPressure",
                "NodeHasInsufficientMemory",
                "NodeHasSufficientMemory",
            ),
            ("DiskPressure", "NodeHasDiskPressure", "NodeHasNoDiskPressure"),
            ("PIDPressure", "NodeHasInsufficientPID", "NodeHasSufficientPID"),
            ("Ready", "NodeReady", "NodeNotReady"),
        ] {
            let now = status_of(after, kind);
            if now.is_none() || now == status_of(before, kind) {
                continue;
            }
            let reason = if now.as_deref() == Some("True") {
                if_true
            } else {
                if_false
            };
            let message = format!("Node {} status is now: {reason}", self.config.node_name);
            self.node_event(reason, &message).await;
        }
    }

    async fn node_event(&self, reason: &str, message: &str) {
        let name = self.config.node_name.clone();
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("Node".into()),
            name: Some(name.clone()),
            uid: Some(name),
            ..Default::default()
        };
        self.recorder
            .record(&reference, clientkit::events::EventType::Normal, reason, message)
            .await;
    }

    fn remember_posted(&mut self, status: &Value) {
        self.last_posted = Some((without_heartbeats(status), Instant::now()));
    }

    /// The images in the node's store.
    fn images(&self) -> serde_json::Value {
        let dir = machine::agent_dir(&self.config.data_dir).join("images");
        match images::Store::open(&dir) {
            Ok(store) => node::images(&store),
            Err(_) => serde_json::Value::Array(Vec::new()),
        }
    }

    fn usage(&self) -> anyhow::Result<Usage> {
        let network_ready = self.network.borrow().is_some();
        Usage::read(&machine::agent_dir(&self.config.data_dir), network_ready)
    }
}

/// A status with the condition times blanked, to compare what was posted with what would be.
fn without_heartbeats(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions {
            c["lastHeartbeatTime"] = Value::Null;
            c["lastTransitionTime"] = Value::Null;
        }
    }
    status
}
