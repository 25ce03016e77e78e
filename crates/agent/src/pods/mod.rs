//! The pods bound to this node, run as real containers (kubelet's pod workers). One watch
//! of the node's pods (`spec.nodeName=<node>`) feeds one [`worker::Worker`] per pod uid;
//! after the first list, sandboxes of pods the API no longer has are removed.
//!
//! - `worker`: one pod's sync loop (sandbox, network, containers, restarts, termination);
//! - `status`: the pod status kubelet reports; `spec`: what the spec asks of the runtime
//!   (QoS, resources, security, host ports); `files`: /etc/hosts, resolv.conf, hostname,
//!   termination messages; `images`: pull policy, pull secrets, pull back-off; `backoff`:
//!   kubelet's exponential back-off; `inputs`: volumes and env for containers; `image_gc`:
//!   unused images removed when the disk fills.

pub mod backoff;
pub mod files;
pub mod image_gc;
pub mod images;
pub mod inputs;
pub mod spec;
pub mod status;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use runtime::Runtime;
use tokio::sync::{Mutex, mpsc, watch};

use crate::Config;
use worker::{Update, Worker};

/// What every pod worker of this node shares.
pub struct Node {
    pub client: kube::Client,
    pub config: Config,
    pub runtime: Arc<dyn Runtime>,
    pub network: cni::PodNetworking,
    pub images: images::ImageManager,
    pub inputs: inputs::Inputs,
    pub recorder: clientkit::events::Recorder,
    pub dns: files::Dns,
    /// `<agent>/pods/<uid>`: per-pod files and volumes.
    pub pods_dir: PathBuf,
    /// `<agent>/logs`: container logs (kubelet's /var/log/pods).
    pub logs_dir: PathBuf,
    pub memory_capacity: i64,
    /// Held while the pod network's configuration is written.
    network_config: Mutex<bool>,
    /// The node's pod network (bridge, routes, masquerading) once `podnet` has set it up.
    pod_network: watch::Receiver<Option<podnet::Network>>,
    /// Events go out one at a time, in the order they happened (`Pulling` before `Pulled`),
    /// without holding the workers up.
    events: mpsc::UnboundedSender<PendingEvent>,
}

/// An event waiting to be written.
pub struct PendingEvent {
    pub object: k8s_openapi::api::core::v1::ObjectReference,
    pub kind: clientkit::events::EventType,
    pub reason: String,
    pub message: String,
}

impl Node {
    pub fn new(
        client: kube::Client,
        config: Config,
        runtime: Arc<dyn Runtime>,
        network: cni::PodNetworking,
        images: images::ImageManager,
        dns: files::Dns,
        memory_capacity: i64,
        pod_network: watch::Receiver<Option<podnet::Network>>,
    ) -> Node {
        let agent = crate::machine::agent_dir(&config.data_dir);
        let pods_dir = agent.join("pods");
        let recorder =
            clientkit::events::Recorder::new(client.clone(), "kubelet").with_host(&config.node_name);
        let (events, mut queue) = mpsc::unbounded_channel::<PendingEvent>();
        let writer = recorder.clone();
        tokio::spawn(async move {
            while let Some(e) = queue.recv().await {
                writer.record(&e.object, e.kind, &e.reason, &e.message).await;
            }
        });
        Node {
            events,
            inputs: inputs::Inputs::new(
                client.clone(),
                recorder.clone(),
                pods_dir.clone(),
                &config.node_name,
                config.node_ip,
            ),
            recorder,
            client,
            config,
            runtime,
            network,
            images,
            dns,
            pods_dir,
            logs_dir: agent.join("logs"),
            memory_capacity,
            network_config: Mutex::new(false),
            pod_network,
        }
    }

    /// Queues an event (written in order by one task).
    pub fn event(&self, event: PendingEvent) {
        let _ = self.events.send(event);
    }

    /// Writes the node's pod network configuration (the bridge on its pod CIDRs, as `podnet`
    /// prepared it) once that network is up, unless the node uses a network of its own (a
    /// conflist sorting before ours). Until then pods cannot start: kubelet's NetworkNotReady.
    pub async fn ensure_network(&self) -> anyhow::Result<()> {
        let mut done = self.network_config.lock().await;
        if *done {
            return Ok(());
        }
        if self
            .network
            .network()
            .is_ok_and(|list| list.name != cni::network::DEFAULT_NETWORK_NAME)
        {
            *done = true;
            return Ok(());
        }
        let mut ready = self.pod_network.clone();
        let network = tokio::time::timeout(Duration::from_secs(10), ready.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|n| n.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!("network is not ready: the node's pod network is not set up yet")
            })?;
        let cidrs: Vec<String> = network.pod_cidrs.iter().map(|c| c.to_string()).collect();
        let mut conf = cni::DefaultNetwork::new(&cidrs)?;
        // podnet masquerades what leaves the cluster CIDR; the plugin's ipMasq would also
        // rewrite pod → pod traffic across nodes.
        conf.ip_masq = false;
        conf.mtu = network.pod_mtu;
        // Addresses are kept in the node's data dir, not the host-wide /var/lib/cni.
        conf.ipam_data_dir = Some(self.network.options().ipam_data_dir());
        conf.write(&self.network.options().conf_dir)?;
        *done = true;
        Ok(())
    }
}

/// Runs the pod workers of this node until the watch ends for good.
pub async fn run(node: Arc<Node>) -> anyhow::Result<()> {
    tokio::spawn(image_gc::run(node.clone(), node.config.pods.image_gc.clone()));
    let api: Api<Pod> = Api::all(node.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.config.node_name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Update>> = HashMap::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut listing: Option<HashSet<String>> = None;
    let mut orphans_checked = false;
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else {
                    anyhow::bail!("the pod watch ended");
                };
                match event {
                    Ok(Event::Init) => listing = Some(HashSet::new()),
                    Ok(Event::InitApply(pod)) => {
                        if let (Some(seen), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                            seen.insert(uid);
                        }
                        dispatch(&node, &mut workers, &done_tx, pod, false);
                    }
                    Ok(Event::Apply(pod)) => dispatch(&node, &mut workers, &done_tx, pod, false),
                    Ok(Event::Delete(pod)) => dispatch(&node, &mut workers, &done_tx, pod, true),
                    Ok(Event::InitDone) => {
                        let seen = listing.take().unwrap_or_default();
                        // Pods deleted while the watch was down.
                        for (uid, tx) in &workers {
                            if !seen.contains(uid) {
                                let pod = tx.borrow().pod.clone();
                                let _ = tx.send(Update { pod, removed: true });
                            }
                        }
                        if !orphans_checked {
                            orphans_checked = true;
                            tokio::spawn(remove_orphans(node.clone(), seen));
                        }
                    }
                    Err(err) => tracing::warn!("pod watch: {err}"),
                }
            }
            Some(uid) = done_rx.recv() => {
                workers.remove(&uid);
            }
        }
    }
}

fn dispatch(
    node: &Arc<Node>,
    workers: &mut HashMap<String, watch::Sender<Update>>,
    done: &mpsc::UnboundedSender<String>,
    pod: Pod,
    removed: bool,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let update = Update {
        pod: Arc::new(pod),
        removed,
    };
    if let Some(tx) = workers.get(&uid) {
        let _ = tx.send(update);
        return;
    }
    if removed {
        // Never seen: only leftovers could exist on the node.
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(err) = worker::cleanup_pod(&node, &uid).await {
                tracing::warn!(%uid, "cleanup: {err:#}");
            }
        });
        return;
    }
    let (tx, rx) = watch::channel(update);
    workers.insert(uid.clone(), tx);
    let worker = Worker::new(node.clone(), uid.clone());
    let done = done.clone();
    tokio::spawn(async move {
        worker.run(rx).await;
        let _ = done.send(uid);
    });
}

/// Removes sandboxes (and their networks) of pods the API no longer has: what a stopped
/// agent left behind.
async fn remove_orphans(node: Arc<Node>, known: HashSet<String>) {
    let runtime = node.runtime.clone();
    let sandboxes = match tokio::task::spawn_blocking(move || runtime.list_sandboxes()).await {
        Ok(Ok(list)) => list,
        other => {
            tracing::warn!("listing sandboxes: {other:?}");
            return;
        }
    };
    for sandbox in sandboxes {
        if !known.contains(&sandbox.pod_uid) {
            tracing::info!(uid = %sandbox.pod_uid, pod = %sandbox.pod_name, "removing an orphaned pod");
            if let Err(err) = worker::cleanup_pod(&node, &sandbox.pod_uid).await {
                tracing::warn!(uid = %sandbox.pod_uid, "orphan cleanup: {err:#}");
            }
        }
    }
}
