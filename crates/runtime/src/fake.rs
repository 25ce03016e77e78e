//! An in-memory [`Runtime`] for testing the agent without root: it records every call, keeps
//! sandboxes and containers in maps, and lets a test decide how containers end
//! ([`FakeRuntime::exit`]) or whether they fail to start ([`FakeRuntime::fail_start`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

use crate::cgroups::pod_cgroup;
use crate::stats::Usage;
use crate::{
    ContainerConfig, ContainerState, ContainerStatus, Error, ExecConfig, ExecProcess, Runtime, Sandbox,
    SandboxConfig,
};

#[derive(Default)]
struct State {
    calls: Vec<String>,
    sandboxes: BTreeMap<String, Sandbox>,
    containers: BTreeMap<String, ContainerStatus>,
    next_id: u64,
    /// Container names whose start fails, with the message.
    failing: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Every call so far, as `method argument` strings, oldest first.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Makes starts of containers with this name fail (StartError) with `message`.
    pub fn fail_start(&self, container_name: &str, message: &str) {
        self.lock()
            .failing
            .insert(container_name.to_owned(), message.to_owned());
    }

    /// Ends a running container with an exit code (`oom`: as the OOM killer does).
    pub fn exit(&self, id: &str, exit_code: i32, oom: bool) -> Result<(), Error> {
        let mut state = self.lock();
        let c = state
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_owned()))?;
        finish(c, exit_code, oom);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: String) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.lock();
        state.calls.push(call);
        state
    }
}

fn finish(c: &mut ContainerStatus, exit_code: i32, oom: bool) {
    if c.state != ContainerState::Running {
        return;
    }
    c.state = ContainerState::Exited;
    c.finished_at = Some(Timestamp::now());
    c.exit_code = Some(exit_code);
    c.reason = Some(
        match (oom, exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            _ => "Error",
        }
        .into(),
    );
}

impl Runtime for FakeRuntime {
    fn create_sandbox(&self, config: &SandboxConfig) -> Result<Sandbox, Error> {
        let mut state = self.record(format!("create_sandbox {}", config.pod_uid));
        let sandbox = state
            .sandboxes
            .entry(config.pod_uid.clone())
            .or_insert_with(|| Sandbox {
                pod_uid: config.pod_uid.clone(),
                pod_name: config.pod_name.clone(),
                namespace: config.namespace.clone(),
                hostname: config.hostname.clone(),
                netns: (!config.host_network).then(|| format!("/fake/{}/ns/net", config.pod_uid).into()),
                ipc_ns: (!config.host_ipc).then(|| format!("/fake/{}/ns/ipc", config.pod_uid).into()),
                uts_ns: (!config.host_network).then(|| format!("/fake/{}/ns/uts", config.pod_uid).into()),
                shm: (!config.host_ipc).then(|| format!("/fake/{}/shm", config.pod_uid).into()),
                host_pid: config.host_pid,
                cgroup_parent: pod_cgroup("kubepods", config.qos, &config.pod_uid),
                created_at: Timestamp::now(),
            });
        Ok(sandbox.clone())
    }

    fn sandbox(&self, pod_uid: &str) -> Result<Option<Sandbox>, Error> {
        Ok(self.lock().sandboxes.get(pod_uid).cloned())
    }

    fn list_sandboxes(&self) -> Result<Vec<Sandbox>, Error> {
        Ok(self.lock().sandboxes.values().cloned().collect())
    }

    fn remove_sandbox(&self, pod_uid: &str) -> Result<(), Error> {
        let mut state = self.record(format!("remove_sandbox {pod_uid}"));
        if state.containers.values().any(|c| c.pod_uid == pod_uid) {
            return Err(Error::SandboxNotEmpty(pod_uid.to_owned()));
        }
        state.sandboxes.remove(pod_uid);
        Ok(())
    }

    fn create_container(&self, pod_uid: &str, config: &ContainerConfig) -> Result<String, Error> {
        let mut state = self.record(format!("create_container {pod_uid} {}", config.name));
        if !state.sandboxes.contains_key(pod_uid) {
            return Err(Error::SandboxNotFound(pod_uid.to_owned()));
        }
        state.next_id += 1;
        let id = format!("{:064x}", state.next_id);
        state.containers.insert(
            id.clone(),
            ContainerStatus {
                id: id.clone(),
                pod_uid: pod_uid.to_owned(),
                name: config.name.clone(),
                image: config.image.clone(),
                restart_count: config.restart_count,
                state: ContainerState::Created,
                pid: None,
                created_at: Timestamp::now(),
                started_at: None,
                finished_at: None,
                exit_code: None,
                reason: None,
                message: None,
                log_path: config.log_path.clone(),
            },
        );
        Ok(id)
    }

    fn start_container(&self, id: &str) -> Result<(), Error> {
        let mut state = self.record(format!("start_container {id}"));
        let State {
            containers, failing, ..
        } = &mut *state;
        let c = containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_owned()))?;
        if c.state != ContainerState::Created {
            return Err(Error::WrongState {
                id: id.to_owned(),
                state: c.state.as_str(),
                expected: "created",
            });
        }
        if let Some(message) = failing.get(&c.name) {
            c.state = ContainerState::Exited;
            c.finished_at = Some(Timestamp::now());
            c.exit_code = Some(crate::shim::START_ERROR_EXIT_CODE);
            c.reason = Some("StartError".into());
            c.message = Some(message.clone());
            return Err(Error::Start {
                id: id.to_owned(),
                message: message.clone(),
            });
        }
        c.state = ContainerState::Running;
        c.pid = Some(1000 + c.id.len() as i32);
        c.started_at = Some(Timestamp::now());
        Ok(())
    }

    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), Error> {
        let mut state = self.record(format!("stop_container {id} {}s", grace.as_secs()));
        let c = state
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::ContainerNotFound(id.to_owned()))?;
        // As a process without a SIGTERM handler: killed.
        finish(c, 137, false);
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), Error> {
        self.record(format!("remove_container {id}"))
            .containers
            .remove(id);
        Ok(())
    }

    fn container_status(&self, id: &str) -> Result<ContainerStatus, Error> {
        self.lock()
            .containers
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ContainerNotFound(id.to_owned()))
    }

    fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerStatus>, Error> {
        let mut out: Vec<_> = self
            .lock()
            .containers
            .values()
            .filter(|c| pod_uid.is_none_or(|u| u == c.pod_uid))
            .cloned()
            .collect();
        out.sort_by_key(|c| c.created_at);
        Ok(out)
    }

    fn exec(&self, id: &str, config: &ExecConfig) -> Result<ExecProcess, Error> {
        drop(self.record(format!("exec {id} {}", config.command.join(" "))));
        Err(Error::Invalid("the fake runtime does not run processes".into()))
    }

    fn attach_stdin(&self, id: &str) -> Result<std::fs::File, Error> {
        drop(self.record(format!("attach_stdin {id}")));
        Err(Error::Invalid("the fake runtime does not run processes".into()))
    }

    fn resize_terminal(&self, id: &str, rows: u16, columns: u16) -> Result<(), Error> {
        drop(self.record(format!("resize_terminal {id} {rows}x{columns}")));
        self.container_status(id).map(|_| ())
    }

    fn container_stats(&self, id: &str) -> Result<Usage, Error> {
        self.container_status(id)?;
        Ok(Usage {
            timestamp: Timestamp::now(),
            cpu_usage_nanos: 0,
            memory_usage_bytes: 0,
            memory_working_set_bytes: 0,
        })
    }

    fn pod_stats(&self, pod_uid: &str) -> Result<Usage, Error> {
        self.sandbox(pod_uid)?
            .ok_or_else(|| Error::SandboxNotFound(pod_uid.to_owned()))?;
        Ok(Usage {
            timestamp: Timestamp::now(),
            cpu_usage_nanos: 0,
            memory_usage_bytes: 0,
            memory_working_set_bytes: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_plays_lifecycles() {
        let fake = FakeRuntime::new();
        let rt: &dyn Runtime = &fake;
        let pod = rt
            .create_sandbox(&SandboxConfig {
                pod_uid: "u1".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(pod.cgroup_parent, "/kubepods/burstable/podu1");
        let config = |name: &str| ContainerConfig {
            name: name.into(),
            ..Default::default()
        };
        let app = rt.create_container("u1", &config("app")).unwrap();
        rt.start_container(&app).unwrap();
        assert_eq!(rt.container_status(&app).unwrap().state, ContainerState::Running);
        fake.exit(&app, 137, true).unwrap();
        let status = rt.container_status(&app).unwrap();
        assert_eq!(
            (status.exit_code, status.reason.as_deref()),
            (Some(137), Some("OOMKilled"))
        );

        fake.fail_start("broken", "exec: no such file");
        let broken = rt.create_container("u1", &config("broken")).unwrap();
        assert!(matches!(rt.start_container(&broken), Err(Error::Start { .. })));
        assert_eq!(
            rt.container_status(&broken).unwrap().reason.as_deref(),
            Some("StartError")
        );

        assert!(matches!(rt.remove_sandbox("u1"), Err(Error::SandboxNotEmpty(_))));
        for c in rt.list_containers(Some("u1")).unwrap() {
            rt.remove_container(&c.id).unwrap();
        }
        rt.remove_sandbox("u1").unwrap();
        assert!(matches!(
            rt.create_container("u1", &config("late")),
            Err(Error::SandboxNotFound(_))
        ));
        assert_eq!(
            fake.calls()[..3],
            [
                "create_sandbox u1",
                "create_container u1 app",
                format!("start_container {app}").as_str()
            ]
        );
    }
}
