//! A probe worker: one task per (container instance, probe kind), as upstream's prober
//! `worker`. It probes right away and then every `periodSeconds`, skips while the container
//! has run less than `initialDelaySeconds`, counts results against the thresholds, records
//! kubelet's events, and publishes the result on a watch channel the pod worker listens to.
//!
//! The pod worker spawns the workers of a container when it starts and drops them when it
//! ends or is replaced, so a restarted container starts from the kind's initial result
//! (readiness `false`, liveness `true`, startup unknown). Liveness and readiness wait for the
//! startup probe's success ([`WorkerConfig::startup`]). After a liveness or startup failure
//! the worker stops probing (upstream's "on hold" until a new container): the pod worker kills
//! the container with [`super::ProbeKind::kill_message`]. A succeeded startup probe stops too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clientkit::events::EventType;
use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use super::{Handler, Outcome, ProbeKind, Purpose, Target, Thresholds, reasons, run_handler};

/// Where a worker's events go: (type, reason, message). The pod worker records them on the
/// pod with the container's `fieldPath`, as kubelet's container events.
pub type EventSink = Arc<dyn Fn(EventType, &'static str, String) + Send + Sync>;

/// How often a handler that could not run is retried within one probe (upstream's
/// `maxProbeRetries`).
const MAX_RETRIES: usize = 3;

pub struct WorkerConfig {
    pub kind: ProbeKind,
    pub probe: Probe,
    /// The container's spec (its named ports).
    pub container: Container,
    pub target: Target,
    /// When the container started (`state.running.startedAt`): `initialDelaySeconds` counts
    /// from it.
    pub started_at: SystemTime,
    /// For liveness and readiness of a container with a startup probe: the startup worker's
    /// results ([`ProbeHandle::subscribe`]); they probe only once it has succeeded.
    pub startup: Option<watch::Receiver<Option<bool>>>,
    pub events: EventSink,
    /// Notified whenever the published result changes (the pod worker's wake-up).
    pub wake: Option<Arc<Notify>>,
}

/// A running probe worker; dropping it stops it.
pub struct ProbeHandle {
    kind: ProbeKind,
    results: watch::Receiver<Option<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProbeHandle {
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The published result: `Some(true)` healthy / ready / started, `Some(false)` failed,
    /// `None` not known yet (a startup probe before its first verdict).
    pub fn result(&self) -> Option<bool> {
        *self.results.borrow()
    }

    /// The results as they change (the channel keeps its last value after the worker stops).
    pub fn subscribe(&self) -> watch::Receiver<Option<bool>> {
        self.results.clone()
    }
}

impl Drop for ProbeHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a worker on the current tokio runtime.
pub fn spawn(config: WorkerConfig) -> ProbeHandle {
    let kind = config.kind;
    let (tx, rx) = watch::channel(kind.initial_result());
    let task = tokio::spawn(run(config, tx));
    ProbeHandle {
        kind,
        results: rx,
        task,
    }
}

/// The probe's settings with the API server's defaults for unset fields.
struct Timing {
    initial_delay: u64,
    period: Duration,
    timeout: Duration,
}

impl Timing {
    fn of(probe: &Probe) -> Timing {
        let seconds = |v: Option<i32>, default: i32| v.filter(|v| *v > 0).unwrap_or(default) as u64;
        Timing {
            initial_delay: probe.initial_delay_seconds.unwrap_or(0).max(0) as u64,
            period: Duration::from_secs(seconds(probe.period_seconds, 10)),
            timeout: Duration::from_secs(seconds(probe.timeout_seconds, 1)),
        }
    }
}

async fn run(config: WorkerConfig, results: watch::Sender<Option<bool>>) {
    let WorkerConfig {
        kind,
        probe,
        container,
        target,
        started_at,
        startup,
        events,
        wake,
    } = config;
    let publish = |result: bool| {
        if results.send_if_modified(|r| r.replace(result) != Some(result))
            && let Some(wake) = &wake
        {
            wake.notify_one();
        }
    };
    let Some(handler) = Handler::of_probe(&probe) else {
        tracing::warn!(container = %container.name, "{} probe without a handler", kind.as_str());
        return;
    };
    let timing = Timing::of(&probe);
    let mut thresholds = Thresholds::new(
        probe.success_threshold.unwrap_or(1),
        probe.failure_threshold.unwrap_or(3),
    );
    let mut ticker = tokio::time::interval(timing.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if kind != ProbeKind::Startup
            && let Some(startup) = &startup
            && *startup.borrow() != Some(true)
        {
            continue;
        }
        if !container_running(&target).await {
            if kind == ProbeKind::Readiness {
                publish(false);
            }
            continue;
        }
        let ran_for = SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default()
            .as_secs();
        if ran_for < timing.initial_delay {
            continue;
        }
        let Some(success) = probe_once(kind, handler, &container, &target, timing.timeout, &events).await
        else {
            continue; // an error: the result is thrown away
        };
        let Some(result) = thresholds.observe(success) else {
            continue;
        };
        publish(result);
        match (kind, result) {
            (ProbeKind::Liveness | ProbeKind::Startup, false) => {
                thresholds.reset();
                return; // on hold: the container is killed and replaced
            }
            (ProbeKind::Startup, true) => return,
            _ => {}
        }
    }
}

/// One probe with upstream's retries of handler errors and its events; `None` when the
/// handler could not run.
async fn probe_once(
    kind: ProbeKind,
    handler: Handler<'_>,
    container: &Container,
    target: &Target,
    timeout: Duration,
    events: &EventSink,
) -> Option<bool> {
    let mut outcome = Outcome::Error(String::new());
    for _ in 0..MAX_RETRIES {
        outcome = run_handler(handler, Purpose::Probe, container, target, Some(timeout)).await;
        if !matches!(outcome, Outcome::Error(_)) {
            break;
        }
    }
    let name = kind.as_str();
    match outcome {
        Outcome::Success(_) => Some(true),
        Outcome::Warning(output) => {
            events(
                EventType::Warning,
                reasons::PROBE_WARNING,
                format!("{name} probe warning: {output}"),
            );
            Some(true)
        }
        Outcome::Failure(output) => {
            events(
                EventType::Warning,
                reasons::UNHEALTHY,
                format!("{name} probe failed: {output}"),
            );
            Some(false)
        }
        Outcome::Error(err) => {
            events(
                EventType::Warning,
                reasons::UNHEALTHY,
                format!("{name} probe errored and resulted in unknown state: {err}"),
            );
            None
        }
    }
}

async fn container_running(target: &Target) -> bool {
    let runtime = target.runtime.clone();
    let id = target.container_id.clone();
    tokio::task::spawn_blocking(move || runtime.container_status(&id))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|s| s.state == runtime::ContainerState::Running)
}
