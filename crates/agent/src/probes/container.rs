//! The probes of one container instance, wired as kubelet's prober manager wires them: a
//! worker per probe the container declares, liveness and readiness gated on the startup
//! probe, and the container's `started` / `ready` / must-be-killed as kubelet derives them.

use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Container;
use tokio::sync::Notify;

use super::{EventSink, ProbeHandle, ProbeKind, Target, WorkerConfig, spawn};

/// Dropping it stops the workers; start a new one for a new container instance (results
/// start over, as upstream's reset on a new container ID).
pub struct ContainerProbes {
    container: Container,
    startup: Option<ProbeHandle>,
    liveness: Option<ProbeHandle>,
    readiness: Option<ProbeHandle>,
}

impl ContainerProbes {
    /// Starts the container's probes; `wake` is notified whenever a result changes.
    pub fn start(
        container: &Container,
        target: Target,
        started_at: SystemTime,
        events: EventSink,
        wake: Option<Arc<Notify>>,
    ) -> ContainerProbes {
        let worker = |kind: ProbeKind,
                      probe: Option<&k8s_openapi::api::core::v1::Probe>,
                      startup: Option<&ProbeHandle>| {
            probe.map(|probe| {
                spawn(WorkerConfig {
                    kind,
                    probe: probe.clone(),
                    container: container.clone(),
                    target: target.clone(),
                    started_at,
                    startup: startup.map(ProbeHandle::subscribe),
                    events: events.clone(),
                    wake: wake.clone(),
                })
            })
        };
        let startup = worker(ProbeKind::Startup, container.startup_probe.as_ref(), None);
        let liveness = worker(
            ProbeKind::Liveness,
            container.liveness_probe.as_ref(),
            startup.as_ref(),
        );
        let readiness = worker(
            ProbeKind::Readiness,
            container.readiness_probe.as_ref(),
            startup.as_ref(),
        );
        ContainerProbes {
            container: container.clone(),
            startup,
            liveness,
            readiness,
        }
    }

    /// `containerStatuses[].started` for a running container: its startup probe succeeded,
    /// or it has none.
    pub fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|h| h.result() == Some(true))
    }

    /// `containerStatuses[].ready` for a running container: started, and its readiness probe
    /// succeeded (or it has none).
    pub fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(|h| h.result() == Some(true))
    }

    /// The grace period a kill after this probe's failure uses instead of the pod's:
    /// the probe's `terminationGracePeriodSeconds`, when set.
    pub fn grace_period(&self, kind: ProbeKind) -> Option<i64> {
        let probe = match kind {
            ProbeKind::Liveness => self.container.liveness_probe.as_ref(),
            ProbeKind::Startup => self.container.startup_probe.as_ref(),
            ProbeKind::Readiness => None,
        };
        probe.and_then(|p| p.termination_grace_period_seconds)
    }

    /// The probe whose failure means the container must be killed (and restarted as the
    /// restart policy says), with [`ProbeKind::kill_message`].
    pub fn failed(&self) -> Option<ProbeKind> {
        if self.liveness.as_ref().is_some_and(|h| h.result() == Some(false)) {
            Some(ProbeKind::Liveness)
        } else if self.startup.as_ref().is_some_and(|h| h.result() == Some(false)) {
            Some(ProbeKind::Startup)
        } else {
            None
        }
    }
}
