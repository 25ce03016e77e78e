//! kubelet's prober: container handlers (exec, httpGet, tcpSocket; sleep for hooks) run once by
//! [`run_handler`], liveness / readiness / startup probe workers ([`spawn`]) with upstream's
//! thresholds and timing, and lifecycle hooks ([`lifecycle`]) through the same handlers.
//!
//! - `handler` — what one run of a handler does and what it reports (upstream's
//!   `pkg/probe/{exec,http,tcp}` results and output texts).
//! - `dial` — TCP connects from the node (or from inside a pod's netns), Go-worded errors.
//! - `exec` / `http` / `grpc` — the exec, httpGet and grpc (health checking over h2c) handlers.
//! - `worker` — one task per (container, probe kind), results on a watch channel;
//!   `thresholds` is its pure state machine.
//! - `container` — [`ContainerProbes`]: a container's workers wired together, and its
//!   `started` / `ready` / must-be-killed as kubelet derives them.
//! - `lifecycle` — postStart / preStop hooks and their failure messages.

mod container;
mod dial;
mod exec;
mod grpc;
mod handler;
mod http;
pub mod lifecycle;
mod thresholds;
mod worker;

pub use container::ContainerProbes;
pub use handler::{Handler, Outcome, Purpose, Target, run_handler};
pub use thresholds::Thresholds;
pub use worker::{EventSink, ProbeHandle, WorkerConfig, spawn};

/// The kubelet version probes and hooks announce in their `User-Agent` (`kube-probe/1.33`).
pub const KUBE_VERSION: &str = "1.33";

/// Event reasons as kubelet's `events` package names them.
pub mod reasons {
    /// A probe failed (Warning).
    pub const UNHEALTHY: &str = "Unhealthy";
    /// An httpGet probe stopped at a redirect to another host (Warning; the probe succeeds).
    pub const PROBE_WARNING: &str = "ProbeWarning";
    /// A container is being stopped (Normal), e.g. after a failed liveness probe.
    pub const KILLING: &str = "Killing";
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
    /// An HTTPS lifecycle hook got an HTTP answer and was retried over HTTP (Warning).
    pub const LIFECYCLE_HTTP_FALLBACK: &str = "LifecycleHTTPFallback";
}

/// The three probe kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    /// As upstream's `probeType.String()`: the word that starts its event messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    /// The result before the first probe settles it: readiness starts failed, liveness
    /// succeeded, startup unknown (upstream's `initialValue`s).
    pub fn initial_result(self) -> Option<bool> {
        match self {
            ProbeKind::Liveness => Some(true),
            ProbeKind::Readiness => Some(false),
            ProbeKind::Startup => None,
        }
    }

    /// The message of the `Killing` event when a failed liveness or startup probe makes the
    /// pod worker stop the container (kuberuntime's `computePodActions`); `restart` is
    /// whether the restart policy brings it back (anything but `Never`).
    pub fn kill_message(self, container: &str, restart: bool) -> String {
        let what = match self {
            ProbeKind::Startup => "startup",
            _ => "liveness",
        };
        let mut message = format!("Container {container} failed {what} probe");
        if restart {
            message.push_str(", will be restarted");
        }
        message
    }
}

/// An [`EventSink`] writing through `recorder` about `object`: the pod, with the container as
/// `fieldPath` (`spec.containers{name}`), as kubelet's container events. Each event is written
/// by a task of its own, so a probe never waits on the API server.
pub fn recorder_sink(
    recorder: clientkit::events::Recorder,
    object: k8s_openapi::api::core::v1::ObjectReference,
) -> EventSink {
    std::sync::Arc::new(move |kind, reason, message| {
        let recorder = recorder.clone();
        let object = object.clone();
        tokio::spawn(async move { recorder.record(&object, kind, reason, &message).await });
    })
}

pub(crate) use apimachinery::gostr::go_quote;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_messages_as_kuberuntime() {
        assert_eq!(
            ProbeKind::Liveness.kill_message("app", true),
            "Container app failed liveness probe, will be restarted"
        );
        assert_eq!(
            ProbeKind::Startup.kill_message("app", false),
            "Container app failed startup probe"
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("sh -c \"x\"\n"), r#""sh -c \"x\"\n""#);
    }
}
