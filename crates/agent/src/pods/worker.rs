//! One pod's worker: kubelet's `SyncPod` loop for a pod bound to this node. Each pass brings
//! the node in line with the pod object — sandbox and network, volumes, init containers one at
//! a time, sidecars, app containers with their restart policy and back-off — then reports the
//! status when it changed. A deleted pod is stopped (grace period, SIGTERM then SIGKILL), its
//! resources released, and the object removed with grace period 0, as kubelet's status manager
//! does once a pod's containers are gone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clientkit::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use runtime::{ContainerConfig, ContainerState, ContainerStatus, Mount, Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::backoff::Backoff;
use super::status::{self, ContainerView, Observed};
use super::{Node, files, spec};
use crate::probes::{self, ContainerProbes, lifecycle};

/// What the manager tells a worker: the latest pod object, or that it left the API.
#[derive(Clone)]
pub struct Update {
    pub pod: Arc<Pod>,
    pub removed: bool,
}

/// How often running containers are checked for exits (kubelet's PLEG relists every second).
const POLL: Duration = Duration::from_secs(1);
/// The first wait before retrying a failed sandbox, volume or container setup; it doubles
/// with each failure in a row up to [`MAX_RETRY`] (kubelet's pod workers back off too, and
/// every attempt writes an event).
const RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(32);
/// A pod with nothing running is looked at again this often.
const IDLE: Duration = Duration::from_secs(10);

pub struct Worker {
    node: Arc<Node>,
    uid: String,
    /// Woken by probes and other sources of news about this pod.
    pub wake: Arc<Notify>,
    sandbox: Option<Sandbox>,
    pod_ips: Vec<IpAddr>,
    network_ready: bool,
    /// Every container of this pod the runtime has, oldest first, by name.
    containers: HashMap<String, Vec<ContainerStatus>>,
    loaded: bool,
    images: HashMap<String, (String, String)>,
    waiting: HashMap<String, (String, String)>,
    restarts: Backoff,
    /// Termination messages read once per exited container, by container id.
    messages: HashMap<String, Option<String>>,
    last_posted: Option<Value>,
    /// The probes of running containers, by container id.
    probes: HashMap<String, ContainerProbes>,
    /// The pod reached a terminal phase (or was stopped for deletion): nothing restarts.
    terminal: bool,
    network_released: bool,
    /// Setup failures in a row (sandbox, volumes, container config): the retry back-off.
    failures: u32,
}

impl Worker {
    pub fn new(node: Arc<Node>, uid: String) -> Worker {
        Worker {
            node,
            uid,
            wake: Arc::default(),
            sandbox: None,
            pod_ips: Vec::new(),
            network_ready: false,
            containers: HashMap::new(),
            loaded: false,
            images: HashMap::new(),
            waiting: HashMap::new(),
            restarts: Backoff::default(),
            messages: HashMap::new(),
            last_posted: None,
            probes: HashMap::new(),
            terminal: false,
            network_released: false,
            failures: 0,
        }
    }

    /// Runs until the pod is gone from the API and from this node.
    pub async fn run(mut self, mut updates: watch::Receiver<Update>) {
        let wake = self.wake.clone();
        loop {
            let update = updates.borrow_and_update().clone();
            let pod = update.pod.clone();
            let next = if update.removed {
                self.stop_pod(&pod, Some(1)).await;
                self.cleanup().await;
                return;
            } else if pod.metadata.deletion_timestamp.is_some() {
                self.finish_deleted(&pod).await
            } else {
                match self.sync(&pod).await {
                    Ok(next) => next,
                    Err(err) => {
                        tracing::warn!(pod = %name_of(&pod), "sync failed: {err:#}");
                        RETRY
                    }
                }
            };
            // Wait for the next pass: its time, news from probes, or a change of the pod
            // that matters (our own status writes come back as updates too: not those).
            let deadline = tokio::time::sleep(next);
            tokio::pin!(deadline);
            let seen = significant(&pod);
            loop {
                tokio::select! {
                    changed = updates.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let update = updates.borrow();
                        if update.removed || significant(&update.pod) != seen {
                            break;
                        }
                    }
                    () = &mut deadline => break,
                    () = wake.notified() => break,
                }
            }
        }
    }

    /// One pass of kubelet's SyncPod; returns when to look again.
    async fn sync(&mut self, pod: &Pod) -> anyhow::Result<Duration> {
        let spec = pod.spec.clone().unwrap_or_default();
        self.load_containers().await?;
        let api_phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(api_phase, Some("Succeeded" | "Failed")) {
            self.terminal = true;
        }
        if self.terminal {
            self.stop_all(pod, Some(1)).await;
            self.release_network(pod).await;
            self.post_status(pod).await?;
            return Ok(IDLE);
        }
        if let Err(err) = self.ensure_sandbox(pod).await {
            self.event(
                pod,
                None,
                true,
                "FailedCreatePodSandBox",
                &format!("Failed to create pod sandbox: {err:#}"),
            );
            self.post_status(pod).await?;
            return Ok(self.retry());
        }
        if let Err(message) = self.node.inputs.setup(pod).await {
            self.event(pod, None, true, "FailedMount", &message);
            self.post_status(pod).await?;
            return Ok(self.retry());
        }
        let mut next = IDLE;
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());

        // Init containers, one at a time; sidecars keep running once started.
        let mut initialized = true;
        for container in spec.init_containers.iter().flatten() {
            let latest = self.latest(&container.name).cloned();
            if spec::is_sidecar(container) {
                match latest {
                    Some(c) if c.state == ContainerState::Running => continue,
                    Some(c) if c.state == ContainerState::Created => {
                        initialized = false;
                        break;
                    }
                    _ => {
                        next = next.min(
                            self.start_or_back_off(pod, container, latest.as_ref(), true)
                                .await,
                        );
                        initialized = false;
                        break;
                    }
                }
            }
            match latest {
                Some(c) if c.state == ContainerState::Exited && c.exit_code == Some(0) => continue,
                Some(c) if c.state == ContainerState::Exited => {
                    initialized = false;
                    if policy != "Never" {
                        next = next.min(self.start_or_back_off(pod, container, Some(&c), true).await);
                    }
                    break;
                }
                Some(_) => {
                    initialized = false;
                    next = next.min(POLL);
                    break;
                }
                None => {
                    initialized = false;
                    next = next.min(self.start_or_back_off(pod, container, None, true).await);
                    break;
                }
            }
        }

        if initialized {
            for container in &spec.containers {
                let latest = self.latest(&container.name).cloned();
                let start = match &latest {
                    None => true,
                    Some(c) if c.state == ContainerState::Exited => match policy.as_str() {
                        "Always" => true,
                        "OnFailure" => c.exit_code != Some(0),
                        _ => false,
                    },
                    Some(_) => false,
                };
                if start {
                    next = next.min(
                        self.start_or_back_off(pod, container, latest.as_ref(), false)
                            .await,
                    );
                }
            }
        }
        if initialized {
            next = next.min(self.start_ephemeral_containers(pod).await);
        }
        self.kill_unhealthy(pod).await;
        self.ensure_probes(pod);
        if self.any_running() {
            next = next.min(POLL);
        }

        let mut generated = self.status(pod);
        if matches!(generated["phase"].as_str(), Some("Succeeded" | "Failed")) {
            // Done for good: sidecars stop, the network goes; logs stay until deletion.
            self.terminal = true;
            self.stop_all(pod, None).await;
            self.release_network(pod).await;
            generated = self.status(pod);
        }
        self.write_status(pod, generated).await?;
        Ok(next)
    }

    /// Ephemeral containers start once in the running pod and are never restarted; one with a
    /// `targetContainerName` joins that container's PID namespace.
    async fn start_ephemeral_containers(&mut self, pod: &Pod) -> Duration {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut next = IDLE;
        for (container, ephemeral) in spec::ephemeral_containers(&spec)
            .into_iter()
            .zip(spec.ephemeral_containers.iter().flatten())
        {
            if self.latest(&container.name).is_some() {
                continue;
            }
            let target = ephemeral
                .target_container_name
                .as_deref()
                .filter(|t| !t.is_empty());
            let pid_namespace = match target {
                None => None,
                Some(target) => match self.latest(target).filter(|c| c.state == ContainerState::Running) {
                    Some(ContainerStatus { pid: Some(pid), .. }) => {
                        Some(PathBuf::from(format!("/proc/{pid}/ns/pid")))
                    }
                    // The target is not running yet: try again at the next poll.
                    _ => {
                        next = next.min(POLL);
                        continue;
                    }
                },
            };
            let started = self
                .start_container(pod, &container, 0, false, pid_namespace)
                .await;
            next = next.min(match started {
                Ok(()) => POLL,
                Err((reason, message, retry)) => {
                    self.waiting.insert(container.name.clone(), (reason, message));
                    retry
                }
            });
        }
        next
    }

    /// The wait after a setup failure: [`RETRY`] doubling per failure in a row.
    fn retry(&mut self) -> Duration {
        let wait = RETRY.saturating_mul(1 << self.failures.min(8)).min(MAX_RETRY);
        self.failures += 1;
        wait
    }

    /// The pod was deleted: stop it within its grace period, report the final status, release
    /// everything, and remove the object. Returns how long to wait for the removal to show.
    async fn finish_deleted(&mut self, pod: &Pod) -> Duration {
        if let Err(err) = self.load_containers().await {
            tracing::warn!(pod = %name_of(pod), "{err:#}");
        }
        self.stop_pod(pod, None).await;
        self.terminal = true;
        if let Err(err) = self.post_status(pod).await {
            tracing::warn!(pod = %name_of(pod), "final status: {err:#}");
        }
        self.cleanup().await;
        let api: Api<Pod> = Api::namespaced(
            self.node.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name_of(pod), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(err) => {
                tracing::warn!(pod = %name_of(pod), "cannot delete the pod: {err}");
                return RETRY;
            }
        }
        IDLE
    }

    /// Stops every running container of the pod: app containers first, in parallel, then
    /// sidecars in reverse order, within the grace period (`grace` overrides the pod's).
    async fn stop_pod(&mut self, pod: &Pod, grace: Option<i64>) {
        let grace = grace.unwrap_or_else(|| spec::grace_period(pod)).max(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(grace as u64);
        let spec = pod.spec.clone().unwrap_or_default();
        let running = |w: &Worker, c: &Container| {
            w.latest(&c.name)
                .filter(|s| s.state != ContainerState::Exited)
                .map(|s| s.id.clone())
        };
        let ephemeral = spec::ephemeral_containers(&spec);
        let mut app = Vec::new();
        for c in spec
            .containers
            .iter()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| !spec::is_sidecar(c)),
            )
            .chain(&ephemeral)
        {
            if let Some(id) = running(self, c) {
                self.event(
                    pod,
                    Some(c),
                    false,
                    "Killing",
                    &format!("Stopping container {}", c.name),
                );
                let this: &Worker = self;
                app.push(async move {
                    this.run_pre_stop(pod, c, &id, deadline).await;
                    this.stop_container(id, deadline).await;
                });
            }
        }
        futures::future::join_all(app).await;
        let sidecars: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| spec::is_sidecar(c))
            .collect();
        for c in sidecars.into_iter().rev() {
            if let Some(id) = running(self, c) {
                self.event(
                    pod,
                    Some(c),
                    false,
                    "Killing",
                    &format!("Stopping container {}", c.name),
                );
                self.run_pre_stop(pod, c, &id, deadline).await;
                self.stop_container(id, deadline).await;
            }
        }
        self.probes.clear();
        let _ = self.refresh().await;
    }

    /// Stops what still runs of a pod that is done (sidecars, containers left by a policy).
    async fn stop_all(&mut self, pod: &Pod, grace: Option<i64>) {
        if self.any_running() {
            self.stop_pod(pod, grace).await;
        }
    }

    fn stop_container(&self, id: String, deadline: tokio::time::Instant) -> impl Future<Output = ()> + use<> {
        let runtime = self.node.runtime.clone();
        let grace = deadline.saturating_duration_since(tokio::time::Instant::now());
        async move {
            let result = tokio::task::spawn_blocking(move || runtime.stop_container(&id, grace)).await;
            if let Ok(Err(err)) = result {
                tracing::warn!("stopping a container: {err}");
            }
        }
    }

    /// The probe target of a container of this pod.
    fn target(&self, container_id: &str) -> probes::Target {
        probes::Target {
            runtime: self.node.runtime.clone(),
            container_id: container_id.to_owned(),
            pod_ip: self.pod_ips.first().copied(),
            netns: None,
        }
    }

    fn event_sink(&self, pod: &Pod, container: &Container) -> probes::EventSink {
        probes::recorder_sink(self.node.recorder.clone(), self.reference(pod, Some(container)))
    }

    /// Starts the probes of running containers that have none yet (new containers, or
    /// containers a restarted agent found), and forgets those of containers that ended.
    fn ensure_probes(&mut self, pod: &Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut running = Vec::new();
        for container in spec::all_containers(&spec) {
            let Some(latest) = self.latest(&container.name) else {
                continue;
            };
            if latest.state != ContainerState::Running {
                continue;
            }
            running.push(latest.id.clone());
            let has_probes = container.liveness_probe.is_some()
                || container.readiness_probe.is_some()
                || container.startup_probe.is_some();
            if !has_probes || self.probes.contains_key(&latest.id) {
                continue;
            }
            let started_at = latest
                .started_at
                .map(SystemTime::from)
                .unwrap_or_else(SystemTime::now);
            let id = latest.id.clone();
            let probes = ContainerProbes::start(
                container,
                self.target(&id),
                started_at,
                self.event_sink(pod, container),
                Some(self.wake.clone()),
            );
            self.probes.insert(id, probes);
        }
        self.probes.retain(|id, _| running.contains(id));
    }

    /// Kills containers whose liveness or startup probe failed; the restart policy then
    /// decides what comes next.
    async fn kill_unhealthy(&mut self, pod: &Pod) {
        let spec = pod.spec.clone().unwrap_or_default();
        let restart = spec.restart_policy.as_deref() != Some("Never");
        let mut kills = Vec::new();
        for container in spec::all_containers(&spec) {
            let Some(latest) = self.latest(&container.name) else {
                continue;
            };
            let Some(probes) = self.probes.get(&latest.id) else {
                continue;
            };
            if let Some(kind) = probes.failed() {
                let grace = probes
                    .grace_period(kind)
                    .unwrap_or_else(|| spec::grace_period(pod));
                kills.push((container.clone(), latest.id.clone(), kind, grace));
            }
        }
        for (container, id, kind, grace) in kills {
            self.event(
                pod,
                Some(&container),
                false,
                "Killing",
                &kind.kill_message(&container.name, restart),
            );
            self.probes.remove(&id);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(grace.max(1) as u64);
            self.run_pre_stop(pod, &container, &id, deadline).await;
            self.stop_container(id, deadline).await;
        }
        let _ = self.refresh().await;
    }

    /// Runs the container's preStop hook, bounded by the grace period.
    async fn run_pre_stop(&self, pod: &Pod, container: &Container, id: &str, deadline: tokio::time::Instant) {
        let Some(handler) = container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) else {
            return;
        };
        let target = self.target(id);
        let sink = self.event_sink(pod, container);
        let description = lifecycle::pod_description(&name_of(pod), &namespace_of(pod), &self.uid);
        let hook = lifecycle::run_hook(handler, container, &target, &description, &sink);
        match tokio::time::timeout_at(deadline, hook).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => self.event(
                pod,
                Some(container),
                true,
                probes::reasons::FAILED_PRE_STOP_HOOK,
                &message,
            ),
            Err(_) => {
                tracing::info!(pod = %name_of(pod), container = %container.name, "preStop hook outlived the grace period")
            }
        }
    }

    /// Starts a container, or when it exited recently, tells it to wait (CrashLoopBackOff).
    /// Returns when to look again.
    async fn start_or_back_off(
        &mut self,
        pod: &Pod,
        container: &Container,
        latest: Option<&ContainerStatus>,
        init: bool,
    ) -> Duration {
        let name = &container.name;
        if let Some(exited) = latest.filter(|c| c.state == ContainerState::Exited) {
            let finished = exited.finished_at.unwrap_or_else(Timestamp::now);
            let now = Timestamp::now();
            if let Some((backoff, left)) = self.restarts.in_backoff_since(name, finished, now) {
                let message = format!(
                    "back-off {} restarting failed container={name} pod={}_{}({})",
                    go_duration(backoff),
                    name_of(pod),
                    namespace_of(pod),
                    self.uid
                );
                if self.waiting.get(name).map(|w| w.0.as_str()) != Some("CrashLoopBackOff") {
                    self.event(
                        pod,
                        Some(container),
                        true,
                        "BackOff",
                        &format!(
                            "Back-off restarting failed container {name} in pod {}_{}({})",
                            name_of(pod),
                            namespace_of(pod),
                            self.uid
                        ),
                    );
                }
                self.waiting
                    .insert(name.clone(), ("CrashLoopBackOff".into(), message));
                return left.min(IDLE);
            }
            self.restarts.next(name, finished, now);
        }
        let restart_count = latest.map_or(0, |c| c.restart_count + 1);
        match self
            .start_container(pod, container, restart_count, init, None)
            .await
        {
            Ok(()) => POLL,
            Err((reason, message, retry)) => {
                self.waiting.insert(name.clone(), (reason, message));
                retry
            }
        }
    }

    /// kubelet's startContainer: image, config, create, start.
    async fn start_container(
        &mut self,
        pod: &Pod,
        container: &Container,
        restart_count: u32,
        init: bool,
        pid_namespace: Option<PathBuf>,
    ) -> Result<(), (String, String, Duration)> {
        let mut events = Vec::new();
        let image = self
            .node
            .images
            .ensure(&self.node.client, pod, container, &mut events)
            .await;
        for e in events {
            self.event(pod, Some(container), e.warning, e.reason, &e.message);
        }
        let image = image.map_err(|f| (f.reason.to_owned(), f.message, f.retry_after))?;
        self.images.insert(
            container.name.clone(),
            (image.image.clone(), image.image_id.clone()),
        );
        let env = match self
            .node
            .inputs
            .container_env(pod, container, &self.pod_ips)
            .await
        {
            Ok(env) => env,
            Err(message) => {
                self.event(pod, Some(container), true, "Failed", &format!("Error: {message}"));
                return Err(("CreateContainerConfigError".into(), message, self.retry()));
            }
        };
        let mut mounts = match self.node.inputs.mounts(pod, container, &env) {
            Ok(m) => m,
            Err(message) => {
                self.event(pod, Some(container), true, "Failed", &format!("Error: {message}"));
                return Err(("CreateContainerConfigError".into(), message, self.retry()));
            }
        };
        let pod_dir = self.pod_dir();
        let termination_file = pod_dir
            .join("containers")
            .join(&container.name)
            .join(restart_count.to_string());
        if let Err(e) = create_empty_file(&termination_file) {
            return Err(("CreateContainerError".into(), e.to_string(), RETRY));
        }
        mounts.push(Mount {
            container_path: container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            host_path: termination_file,
            read_only: false,
            propagation: Default::default(),
        });
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network == Some(true);
        let qos = spec::qos_class(pod);
        let log_dir =
            runtime::logs::pod_log_dir(&self.node.logs_dir, &namespace_of(pod), &name_of(pod), &self.uid);
        let config = ContainerConfig {
            name: container.name.clone(),
            image: image.image.clone(),
            image_config: image.config,
            layers: image.layers,
            command: container.command.clone().unwrap_or_default(),
            args: container.args.clone().unwrap_or_default(),
            env,
            working_dir: container.working_dir.clone(),
            mounts,
            hosts_file: Some(pod_dir.join("etc-hosts")),
            hostname_file: (!host_network).then(|| pod_dir.join("hostname")),
            resolv_conf: Some(pod_dir.join("resolv.conf")),
            security: spec::security(&spec, container),
            resources: spec::container_resources(container),
            log_path: runtime::logs::container_log_path(&log_dir, &container.name, restart_count),
            oom_score_adj: Some(spec::oom_score_adj(qos, container, self.node.memory_capacity)),
            restart_count,
            stdin: container.stdin == Some(true),
            stdin_once: container.stdin_once == Some(true),
            tty: container.tty == Some(true),
            pid_namespace,
        };
        let runtime = self.node.runtime.clone();
        let uid = self.uid.clone();
        let created = tokio::task::spawn_blocking(move || -> Result<String, (String, runtime::Error)> {
            let id = runtime
                .create_container(&uid, &config)
                .map_err(|e| ("CreateContainerError".to_owned(), e))?;
            runtime.start_container(&id).map_err(|e| (id.clone(), e))?;
            Ok(id)
        })
        .await
        .map_err(|e| ("CreateContainerError".to_owned(), e.to_string(), RETRY))?;
        let _ = init;
        match created {
            Ok(id) => {
                self.event(
                    pod,
                    Some(container),
                    false,
                    "Created",
                    &format!("Created container: {}", container.name),
                );
                self.event(
                    pod,
                    Some(container),
                    false,
                    "Started",
                    &format!("Started container {}", container.name),
                );
                self.track(&id).await;
                self.waiting.remove(&container.name);
                self.failures = 0;
                self.run_post_start(pod, container, &id).await
            }
            Err((id_or_reason, err)) => {
                self.event(pod, Some(container), true, "Failed", &format!("Error: {err}"));
                if id_or_reason == "CreateContainerError" {
                    return Err((id_or_reason, err.to_string(), RETRY));
                }
                // Created but not started: the runtime reports it exited with StartError,
                // which counts as a failed run (and backs off).
                self.track(&id_or_reason).await;
                self.waiting.remove(&container.name);
                Ok(())
            }
        }
    }

    /// Runs the container's postStart hook; a failure kills the container (kubelet's
    /// `FailedPostStartHook`), which then restarts as its policy says.
    async fn run_post_start(
        &mut self,
        pod: &Pod,
        container: &Container,
        id: &str,
    ) -> Result<(), (String, String, Duration)> {
        let Some(handler) = container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return Ok(());
        };
        let target = self.target(id);
        let sink = self.event_sink(pod, container);
        let description = lifecycle::pod_description(&name_of(pod), &namespace_of(pod), &self.uid);
        let Err(message) = lifecycle::run_hook(handler, container, &target, &description, &sink).await else {
            return Ok(());
        };
        self.event(
            pod,
            Some(container),
            true,
            probes::reasons::FAILED_POST_START_HOOK,
            &message,
        );
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(spec::grace_period(pod).max(1) as u64);
        self.stop_container(id.to_owned(), deadline).await;
        let _ = self.refresh().await;
        Err((lifecycle::POST_START_HOOK_ERROR.to_owned(), message, RETRY))
    }

    /// Creates the sandbox, its network, and the pod's /etc files, once.
    async fn ensure_sandbox(&mut self, pod: &Pod) -> anyhow::Result<()> {
        if self.sandbox.is_some() && self.network_ready {
            return Ok(());
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let (hostname, _) = files::hostnames(pod, &self.node.dns.cluster_domain);
        let config = SandboxConfig {
            pod_uid: self.uid.clone(),
            pod_name: name_of(pod),
            namespace: namespace_of(pod),
            hostname: hostname.clone(),
            host_network: spec.host_network == Some(true),
            host_ipc: spec.host_ipc == Some(true),
            host_pid: spec.host_pid == Some(true),
            qos: spec::qos_class(pod),
            sysctls: spec
                .security_context
                .as_ref()
                .and_then(|s| s.sysctls.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|s| (s.name, s.value))
                .collect(),
            resources: spec::pod_resources(&spec),
        };
        let runtime = self.node.runtime.clone();
        let sandbox = tokio::task::spawn_blocking(move || runtime.create_sandbox(&config)).await??;
        if let Some(netns) = &sandbox.netns {
            self.node.ensure_network().await?;
            let network = self
                .node
                .network
                .setup(&self.cni_sandbox(pod), netns, &spec::port_mappings(&spec))
                .await?;
            self.pod_ips = network.ips;
        } else {
            self.pod_ips = vec![self.node.config.node_ip];
        }
        let dir = self.pod_dir();
        std::fs::create_dir_all(&dir)?;
        files::write_atomic(
            &dir.join("etc-hosts"),
            &files::hosts(pod, &self.pod_ips, &self.node.dns.cluster_domain),
        )?;
        files::write_atomic(&dir.join("hostname"), &format!("{hostname}\n"))?;
        files::write_atomic(&dir.join("resolv.conf"), &files::resolv_conf(pod, &self.node.dns))?;
        self.sandbox = Some(sandbox);
        self.network_ready = true;
        Ok(())
    }

    fn cni_sandbox(&self, pod: &Pod) -> cni::PodSandbox {
        cni_sandbox(&self.uid, &namespace_of(pod), &name_of(pod))
    }

    /// A finished pod gives its address back (kubelet stops the sandbox).
    async fn release_network(&mut self, pod: &Pod) {
        if self.network_released {
            return;
        }
        if let Some(netns) = self.sandbox.as_ref().and_then(|s| s.netns.clone())
            && let Err(err) = self
                .node
                .network
                .teardown(&self.cni_sandbox(pod), Some(&netns))
                .await
        {
            tracing::warn!(pod = %name_of(pod), "network teardown: {err}");
            return;
        }
        self.network_released = true;
    }

    /// Removes the pod from this node: containers, network, sandbox, volumes, files, logs.
    async fn cleanup(&mut self) {
        if let Err(err) = cleanup_pod(&self.node, &self.uid).await {
            tracing::warn!(uid = %self.uid, "cleanup: {err:#}");
        }
        self.sandbox = None;
        self.network_ready = false;
        self.containers.clear();
    }

    /// Reads this pod's containers from the runtime once (a restarted agent finds them).
    async fn load_containers(&mut self) -> anyhow::Result<()> {
        if !self.loaded {
            let runtime = self.node.runtime.clone();
            let uid = self.uid.clone();
            let list = tokio::task::spawn_blocking(move || runtime.list_containers(Some(&uid))).await??;
            for c in list {
                self.containers.entry(c.name.clone()).or_default().push(c);
            }
            let runtime = self.node.runtime.clone();
            let uid = self.uid.clone();
            self.sandbox = tokio::task::spawn_blocking(move || runtime.sandbox(&uid)).await??;
            if let Some(sandbox) = &self.sandbox {
                let cni = cni_sandbox(&self.uid, &sandbox.namespace, &sandbox.pod_name);
                match self.node.network.existing(&cni) {
                    Ok(Some(network)) => {
                        self.pod_ips = network.ips;
                        self.network_ready = true;
                    }
                    _ if sandbox.netns.is_none() => {
                        self.pod_ips = vec![self.node.config.node_ip];
                        self.network_ready = true;
                    }
                    _ => {}
                }
            }
            self.loaded = true;
            return Ok(());
        }
        self.refresh().await
    }

    /// Re-reads the state of the containers that may still change, and removes attempts older
    /// than the previous one (kubelet keeps one dead container per name).
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let runtime = self.node.runtime.clone();
        let live: Vec<String> = self
            .containers
            .values()
            .filter_map(|list| list.last())
            .filter(|c| c.state != ContainerState::Exited)
            .map(|c| c.id.clone())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let updated = tokio::task::spawn_blocking(move || {
            live.iter()
                .filter_map(|id| runtime.container_status(id).ok())
                .collect::<Vec<_>>()
        })
        .await?;
        for status in updated {
            if let Some(list) = self.containers.get_mut(&status.name)
                && let Some(slot) = list.iter_mut().find(|c| c.id == status.id)
            {
                *slot = status;
            }
        }
        Ok(())
    }

    async fn track(&mut self, id: &str) {
        let runtime = self.node.runtime.clone();
        let id = id.to_owned();
        let Ok(Ok(status)) = tokio::task::spawn_blocking(move || runtime.container_status(&id)).await else {
            return;
        };
        let list = self.containers.entry(status.name.clone()).or_default();
        list.push(status);
        // Keep the current and the previous attempt only.
        while list.len() > 2 {
            let old = list.remove(0);
            let runtime = self.node.runtime.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = runtime.remove_container(&old.id) {
                    tracing::debug!("removing an old container: {e}");
                }
            });
        }
    }

    fn latest(&self, name: &str) -> Option<&ContainerStatus> {
        self.containers.get(name).and_then(|l| l.last())
    }

    fn any_running(&self) -> bool {
        self.containers
            .values()
            .filter_map(|l| l.last())
            .any(|c| c.state != ContainerState::Exited)
    }

    /// What the status generator needs, termination messages read once per exit.
    fn observe(&mut self, pod: &Pod) -> Observed {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut views = HashMap::new();
        let ephemeral = spec::ephemeral_containers(&spec);
        for container in spec::all_containers(&spec).chain(&ephemeral) {
            let list = self.containers.get(&container.name).cloned().unwrap_or_default();
            let mut current = list.last().cloned();
            let mut previous = list.len().checked_sub(2).and_then(|i| list.get(i)).cloned();
            for c in current.iter_mut().chain(previous.iter_mut()) {
                if c.state == ContainerState::Exited {
                    c.message = self.termination_message(pod, container, c);
                }
            }
            let running = current
                .as_ref()
                .is_some_and(|c| c.state == ContainerState::Running);
            let completed_init = spec
                .init_containers
                .iter()
                .flatten()
                .any(|i| i.name == container.name)
                && !spec::is_sidecar(container)
                && current
                    .as_ref()
                    .is_some_and(|c| c.state == ContainerState::Exited && c.exit_code == Some(0));
            let (image, mut image_id) = self.images.get(&container.name).cloned().unzip();
            if image_id.is_none()
                && let Some(c) = &current
            {
                image_id = self.node.images.image_id(&c.image);
            }
            let waiting = self.waiting.get(&container.name).cloned();
            let probes = current.as_ref().and_then(|c| self.probes.get(&c.id));
            let (ready, started) = match probes {
                Some(p) => (p.ready(), p.started()),
                None => (
                    container.readiness_probe.is_none() && container.startup_probe.is_none(),
                    container.startup_probe.is_none(),
                ),
            };
            views.insert(
                container.name.clone(),
                ContainerView {
                    ready: (running && ready) || completed_init,
                    started: running && started,
                    waiting: if running { None } else { waiting },
                    image: image.or_else(|| current.as_ref().map(|c| c.image.clone())),
                    image_id,
                    current,
                    previous,
                },
            );
        }
        Observed {
            host_ip: Some(self.node.config.node_ip),
            // A finished pod keeps its addresses in its status, as upstream's.
            pod_ips: self.pod_ips.clone(),
            sandbox_ready: self.sandbox.is_some() && self.network_ready,
            containers: views,
            terminal: self.terminal,
        }
    }

    fn termination_message(
        &mut self,
        pod: &Pod,
        container: &Container,
        c: &ContainerStatus,
    ) -> Option<String> {
        if let Some(cached) = self.messages.get(&c.id) {
            return cached.clone();
        }
        let file = self
            .pod_dir()
            .join("containers")
            .join(&container.name)
            .join(c.restart_count.to_string());
        let fallback = (container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
            && c.exit_code != Some(0))
        .then_some(c.log_path.as_path());
        let message = files::termination_message(&file, fallback).or_else(|| c.message.clone());
        let _ = pod;
        self.messages.insert(c.id.clone(), message.clone());
        message
    }

    /// Computes the status and writes it when it differs from what we last wrote.
    async fn post_status(&mut self, pod: &Pod) -> anyhow::Result<()> {
        let status = self.status(pod);
        self.write_status(pod, status).await
    }

    /// The status this node reports for the pod now.
    fn status(&mut self, pod: &Pod) -> Value {
        let observed = self.observe(pod);
        status::generate(pod, &observed, &clientkit::kubelet::now())
    }

    /// Writes `status` unless it is what was last written (or what the pod already shows).
    async fn write_status(&mut self, pod: &Pod, status: Value) -> anyhow::Result<()> {
        let comparable = status::comparable(&status);
        if self.last_posted.as_ref() == Some(&comparable) {
            return Ok(());
        }
        let current = serde_json::to_value(pod.status.clone().unwrap_or_default())?;
        if self.last_posted.is_none() && status::comparable(&current) == comparable {
            self.last_posted = Some(comparable);
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(self.node.client.clone(), &namespace_of(pod));
        let patch = json!({"metadata": {"uid": self.uid}, "status": status});
        match api
            .patch_status(&name_of(pod), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.last_posted = Some(comparable);
                Ok(())
            }
            // The pod is gone (or replaced): the manager tells us.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn pod_dir(&self) -> PathBuf {
        self.node.pods_dir.join(&self.uid)
    }

    /// Records an event in the background (events never hold the pod up).
    fn event(&self, pod: &Pod, container: Option<&Container>, warning: bool, reason: &str, message: &str) {
        let reference = self.reference(pod, container);
        let kind = if warning {
            EventType::Warning
        } else {
            EventType::Normal
        };
        self.node.event(super::PendingEvent {
            object: reference,
            kind,
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The pod as events name it, with the container as `fieldPath`.
    fn reference(&self, pod: &Pod, container: Option<&Container>) -> ObjectReference {
        let field_path = container.map(|c| {
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|l| l.iter().any(|i| i.name == c.name));
            let ephemeral = pod
                .spec
                .as_ref()
                .and_then(|s| s.ephemeral_containers.as_ref())
                .is_some_and(|l| l.iter().any(|e| e.name == c.name));
            if init {
                format!("spec.initContainers{{{}}}", c.name)
            } else if ephemeral {
                format!("spec.ephemeralContainers{{{}}}", c.name)
            } else {
                format!("spec.containers{{{}}}", c.name)
            }
        });
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path,
        }
    }
}

/// What of a pod object makes its worker look again: everything but the status (which the
/// worker writes itself) and the resource version.
fn significant(pod: &Pod) -> (Option<&k8s_openapi::api::core::v1::PodSpec>, Value) {
    let meta = &pod.metadata;
    (
        pod.spec.as_ref(),
        json!([
            meta.labels,
            meta.annotations,
            meta.deletion_timestamp,
            meta.deletion_grace_period_seconds
        ]),
    )
}

/// Removes everything a pod has on this node (also for orphans found at start).
pub async fn cleanup_pod(node: &Node, uid: &str) -> anyhow::Result<()> {
    let runtime = node.runtime.clone();
    let id = uid.to_owned();
    let sandbox = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<Sandbox>> {
        for c in runtime.list_containers(Some(&id))? {
            if c.state != ContainerState::Exited {
                runtime.stop_container(&c.id, Duration::from_secs(1))?;
            }
            runtime.remove_container(&c.id)?;
        }
        Ok(runtime.sandbox(&id)?)
    })
    .await??;
    if let Some(sandbox) = &sandbox {
        let cni = cni_sandbox(uid, &sandbox.namespace, &sandbox.pod_name);
        node.network.teardown(&cni, sandbox.netns.as_deref()).await?;
        let log_dir = runtime::logs::pod_log_dir(&node.logs_dir, &sandbox.namespace, &sandbox.pod_name, uid);
        let _ = std::fs::remove_dir_all(log_dir);
    }
    node.inputs.teardown(uid).await?;
    let runtime = node.runtime.clone();
    let id = uid.to_owned();
    tokio::task::spawn_blocking(move || runtime.remove_sandbox(&id)).await??;
    let dir = node.pods_dir.join(uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", dir.display())),
    }
}

/// The pod as CNI knows it: the sandbox ID is the pod's uid (one sandbox per pod).
fn cni_sandbox(uid: &str, namespace: &str, name: &str) -> cni::PodSandbox {
    cni::PodSandbox {
        id: uid.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
    }
}

fn create_empty_file(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, b"")?;
    // Writable by whichever user the container runs as, as kubelet makes it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
}

pub fn name_of(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

pub fn namespace_of(pod: &Pod) -> String {
    pod.metadata.namespace.clone().unwrap_or_else(|| "default".into())
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`).
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
