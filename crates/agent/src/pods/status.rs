//! The pod status kubelet reports (`generateAPIPodStatus`), from what the worker observed:
//! phase by upstream's `getPhase`, the kubelet's conditions, container statuses with state,
//! last state, readiness and restart count, addresses and start time.

use std::collections::HashMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Container, Pod};
use runtime::{ContainerState, ContainerStatus};
use serde_json::{Value, json};

use super::spec::is_sidecar;

/// What the worker knows about one container of the pod.
#[derive(Clone, Debug, Default)]
pub struct ContainerView {
    /// The latest attempt, and the one before it (`lastState`).
    pub current: Option<ContainerStatus>,
    pub previous: Option<ContainerStatus>,
    /// Why the container is not running, when the worker knows better than "created"
    /// (ErrImagePull, CrashLoopBackOff, CreateContainerConfigError…).
    pub waiting: Option<(String, String)>,
    pub ready: bool,
    /// The startup probe passed (or there is none) and the container runs.
    pub started: bool,
    /// `repository@sha256:…` of the image it runs.
    pub image_id: Option<String>,
    /// The image as the runtime reports it (normalized).
    pub image: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub host_ip: Option<IpAddr>,
    pub pod_ips: Vec<IpAddr>,
    /// The sandbox exists and its network is set up.
    pub sandbox_ready: bool,
    pub containers: HashMap<String, ContainerView>,
    /// The agent stopped the pod for good (deleted, or finished): its phase is terminal.
    pub terminal: bool,
}

/// A timestamp as the API shows container times (whole seconds).
pub fn time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn container_id(id: &str) -> String {
    format!("runc://{id}")
}

fn terminated(c: &ContainerStatus) -> Value {
    let mut t = json!({
        "exitCode": c.exit_code.unwrap_or(0),
        "reason": c.reason.clone().unwrap_or_else(|| "Error".into()),
        "startedAt": c.started_at.map(time),
        "finishedAt": c.finished_at.map(time),
        "containerID": container_id(&c.id),
    });
    if let Some(message) = c.message.as_ref().filter(|m| !m.is_empty()) {
        t["message"] = message.clone().into();
    }
    json!({"terminated": t})
}

/// `state` and `lastState` of a container.
fn states(view: &ContainerView, default_waiting: &str) -> (Value, Value) {
    let last = |c: Option<&ContainerStatus>| {
        c.filter(|c| c.state == ContainerState::Exited)
            .map_or_else(|| json!({}), terminated)
    };
    match &view.current {
        Some(c) if c.state == ContainerState::Running => (
            json!({"running": {"startedAt": c.started_at.map(time)}}),
            last(view.previous.as_ref()),
        ),
        Some(c) if c.state == ContainerState::Exited => match &view.waiting {
            // Exited and about to start again: waiting, the exit as the last state.
            Some((reason, message)) => (waiting(reason, message), terminated(c)),
            None => (terminated(c), last(view.previous.as_ref())),
        },
        Some(_) => (waiting(default_waiting, ""), last(view.previous.as_ref())),
        None => match &view.waiting {
            Some((reason, message)) => (waiting(reason, message), json!({})),
            None => (waiting(default_waiting, ""), json!({})),
        },
    }
}

fn waiting(reason: &str, message: &str) -> Value {
    let mut w = json!({"reason": reason});
    if !message.is_empty() {
        w["message"] = message.into();
    }
    json!({"waiting": w})
}

fn container_status(container: &Container, view: &ContainerView, default_waiting: &str) -> Value {
    let (state, last_state) = states(view, default_waiting);
    let running = state.get("running").is_some();
    let mut status = json!({
        "name": container.name,
        "state": state,
        "lastState": last_state,
        "ready": view.ready,
        "restartCount": view.current.as_ref().map_or(0, |c| c.restart_count),
        "image": view.image.clone().unwrap_or_else(|| container.image.clone().unwrap_or_default()),
        "imageID": view.image_id.clone().unwrap_or_default(),
        "started": running && view.started,
    });
    if let Some(c) = &view.current {
        status["containerID"] = container_id(&c.id).into();
    }
    let mounts: Vec<Value> = container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let mut v = json!({"name": m.name, "mountPath": m.mount_path});
            if m.read_only == Some(true) {
                v["readOnly"] = true.into();
                v["recursiveReadOnly"] = "Disabled".into();
            }
            v
        })
        .collect();
    if !mounts.is_empty() {
        status["volumeMounts"] = mounts.into();
    }
    status
}

fn is_state(status: &Value, state: &str) -> bool {
    status["state"].get(state).is_some()
}

fn exit_code(status: &Value, which: &str) -> Option<i64> {
    status[which]["terminated"]["exitCode"].as_i64()
}

/// upstream's `getPhase`.
fn phase(pod: &Pod, init: &[(bool, Value)], main: &[Value], terminal: bool) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut pending_init = 0;
    let mut failed_init = 0;
    for (sidecar, s) in init {
        if *sidecar {
            continue;
        }
        if is_state(s, "running") {
            pending_init += 1;
        } else if is_state(s, "terminated") {
            if exit_code(s, "state") != Some(0) {
                failed_init += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            if exit_code(s, "lastState") != Some(0) {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in main {
        if is_state(s, "running") {
            running += 1;
        } else if is_state(s, "terminated") {
            stopped += 1;
            if exit_code(s, "state") == Some(0) {
                succeeded += 1;
            }
        } else if s["lastState"].get("terminated").is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if terminal && running == 0 {
        // A stopped pod's containers never run again, whatever the policy.
        return if stopped > 0 && stopped == succeeded && pending_init == 0 && failed_init == 0 {
            "Succeeded"
        } else {
            "Failed"
        };
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// The pod's status as this node reports it. Conditions written by others (PodScheduled,
/// DisruptionTarget, readiness gates) are kept; ours keep their transition time while their
/// status stays.
pub fn generate(pod: &Pod, observed: &Observed, now: &str) -> Value {
    let spec = pod.spec.clone().unwrap_or_default();
    let init_containers = spec.init_containers.clone().unwrap_or_default();
    let default_waiting = if init_containers.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let view = |name: &str| observed.containers.get(name).cloned().unwrap_or_default();
    let init: Vec<(bool, Value)> = init_containers
        .iter()
        .map(|c| {
            (
                is_sidecar(c),
                container_status(c, &view(&c.name), default_waiting),
            )
        })
        .collect();
    let main: Vec<Value> = spec
        .containers
        .iter()
        .map(|c| container_status(c, &view(&c.name), default_waiting))
        .collect();
    let phase = phase(pod, &init, &main, observed.terminal);
    let completed = matches!(phase, "Succeeded" | "Failed");

    let incomplete: Vec<&str> = init
        .iter()
        .filter(|(sidecar, s)| {
            if *sidecar {
                !(is_state(s, "running") && s["started"] == true)
            } else {
                !(is_state(s, "terminated") && exit_code(s, "state") == Some(0))
            }
        })
        .map(|(_, s)| s["name"].as_str().unwrap_or_default())
        .collect();
    let unready: Vec<&str> = init
        .iter()
        .filter(|(sidecar, _)| *sidecar)
        .map(|(_, s)| s)
        .chain(main.iter())
        .filter(|s| s["ready"] != true)
        .map(|s| s["name"].as_str().unwrap_or_default())
        .collect();

    let existing: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .map(|c| {
            c.into_iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let old = |kind: &str| existing.iter().find(|c| c["type"] == kind);
    let make = |kind: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let transition = match old(kind) {
            Some(o) if o["status"] == status => o["lastTransitionTime"].clone(),
            _ => now.into(),
        };
        let mut c =
            json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
        if let Some(reason) = reason {
            c["reason"] = reason.into();
        }
        if let Some(message) = message {
            c["message"] = message.into();
        }
        c
    };
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let initialized = if incomplete.is_empty() || (completed && init.iter().all(|(s, _)| *s)) {
        make("Initialized", true, None, None)
    } else {
        make(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                list(&incomplete)
            )),
        )
    };
    let ready_condition = |kind: &str| {
        if completed {
            make(kind, false, Some("PodCompleted"), None)
        } else if unready.is_empty() {
            make(kind, true, None, None)
        } else {
            make(
                kind,
                false,
                Some("ContainersNotReady"),
                Some(format!("containers with unready status: {}", list(&unready))),
            )
        }
    };
    let gates_ok = spec
        .readiness_gates
        .iter()
        .flatten()
        .all(|gate| old(&gate.condition_type).is_some_and(|c| c["status"] == "True"));
    let mut ready = ready_condition("Ready");
    if ready["status"] == "True" && !gates_ok {
        let missing: Vec<String> = spec
            .readiness_gates
            .iter()
            .flatten()
            .filter(|g| !old(&g.condition_type).is_some_and(|c| c["status"] == "True"))
            .map(|g| g.condition_type.clone())
            .collect();
        ready = make(
            "Ready",
            false,
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                missing[0]
            )),
        );
    }
    let ours = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ];
    let mut conditions = vec![
        make(
            "PodReadyToStartContainers",
            observed.sandbox_ready && !completed,
            None,
            None,
        ),
        initialized,
        ready,
        ready_condition("ContainersReady"),
    ];
    conditions.extend(
        existing
            .iter()
            .filter(|c| !ours.contains(&c["type"].as_str().unwrap_or_default()))
            .cloned(),
    );
    if old("PodScheduled").is_none() {
        conditions.push(make("PodScheduled", true, None, None));
    }

    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or_else(|| now.to_owned(), |t| time(t.0));
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "startTime": start_time,
        "containerStatuses": main,
    });
    if let Some(ip) = observed.host_ip {
        status["hostIP"] = ip.to_string().into();
        status["hostIPs"] = json!([{"ip": ip.to_string()}]);
    }
    if let Some(ip) = observed.pod_ips.first() {
        status["podIP"] = ip.to_string().into();
        status["podIPs"] = observed
            .pod_ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string()}))
            .collect();
    }
    let ephemeral: Vec<Value> = crate::pods::spec::ephemeral_containers(&spec)
        .iter()
        .map(|c| {
            // Ephemeral containers never count as ready (kubelet tracks no readiness for them).
            let mut status = container_status(c, &view(&c.name), default_waiting);
            status["ready"] = false.into();
            status
        })
        .collect();
    if !ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] = ephemeral.into();
    }
    if !init.is_empty() {
        status["initContainerStatuses"] = init.into_iter().map(|(_, s)| s).collect();
    }
    if let Some(qos) = pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
        status["qosClass"] = qos.into();
    }
    status
}

/// The status with every timestamp of our conditions blanked: two statuses that compare
/// equal this way need no write.
pub fn comparable(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions {
            c["lastTransitionTime"] = Value::Null;
            c["lastProbeTime"] = Value::Null;
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}, "spec": spec})).unwrap()
    }

    fn runtime_status(
        name: &str,
        state: ContainerState,
        exit: Option<i32>,
        restarts: u32,
    ) -> ContainerStatus {
        let t = Timestamp::from_second(1_800_000_000).unwrap();
        ContainerStatus {
            id: format!("{name}{restarts}"),
            pod_uid: "u".into(),
            name: name.into(),
            image: "docker.io/library/busybox:latest".into(),
            restart_count: restarts,
            state,
            pid: None,
            created_at: t,
            started_at: Some(t),
            finished_at: (state == ContainerState::Exited).then_some(t),
            exit_code: exit,
            reason: exit.map(|c| {
                if c == 0 {
                    "Completed".into()
                } else {
                    "Error".into()
                }
            }),
            message: None,
            log_path: "/dev/null".into(),
        }
    }

    fn observed(views: &[(&str, ContainerView)]) -> Observed {
        Observed {
            host_ip: Some("10.0.0.1".parse().unwrap()),
            pod_ips: vec!["10.42.0.9".parse().unwrap()],
            sandbox_ready: true,
            containers: views.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
            terminal: false,
        }
    }

    #[test]
    fn a_new_pod_is_pending_with_containers_creating() {
        let p = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let s = generate(&p, &observed(&[]), "t");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(
            s["conditions"][2]["message"],
            "containers with unready status: [a]"
        );
        assert_eq!(s["podIP"], "10.42.0.9");
    }

    #[test]
    fn a_crash_looping_container_keeps_the_pod_running_with_its_last_exit() {
        let p = pod(json!({"containers": [{"name": "a", "image": "busybox"}]}));
        let view = ContainerView {
            current: Some(runtime_status("a", ContainerState::Exited, Some(1), 2)),
            waiting: Some((
                "CrashLoopBackOff".into(),
                "back-off 20s restarting failed container=a pod=p_d(u)".into(),
            )),
            ..Default::default()
        };
        let s = generate(&p, &observed(&[("a", view)]), "t");
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(c["restartCount"], 2);
    }

    #[test]
    fn phases_follow_the_restart_policy() {
        let exited = |code| ContainerView {
            current: Some(runtime_status("a", ContainerState::Exited, Some(code), 0)),
            ..Default::default()
        };
        let never = pod(json!({"restartPolicy": "Never", "containers": [{"name": "a"}]}));
        assert_eq!(
            generate(&never, &observed(&[("a", exited(0))]), "t")["phase"],
            "Succeeded"
        );
        assert_eq!(
            generate(&never, &observed(&[("a", exited(2))]), "t")["phase"],
            "Failed"
        );
        let s = generate(&never, &observed(&[("a", exited(0))]), "t");
        assert_eq!(s["conditions"][2]["reason"], "PodCompleted");
        let always = pod(json!({"containers": [{"name": "a"}]}));
        let mut o = observed(&[("a", exited(137))]);
        o.terminal = true;
        assert_eq!(generate(&always, &o, "t")["phase"], "Failed");
    }

    #[test]
    fn init_containers_gate_initialization() {
        let p =
            pod(json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}));
        let done = ContainerView {
            current: Some(runtime_status("i1", ContainerState::Exited, Some(0), 0)),
            ready: true,
            ..Default::default()
        };
        let running = ContainerView {
            current: Some(runtime_status("i2", ContainerState::Running, None, 0)),
            ..Default::default()
        };
        let s = generate(&p, &observed(&[("i1", done), ("i2", running)]), "t");
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["conditions"][1]["message"],
            "containers with incomplete status: [i2]"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }
}
