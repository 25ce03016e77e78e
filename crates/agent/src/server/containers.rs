//! Finding a container from the names in a kubelet API path: the pod's sandbox by namespace
//! and name (the newest, should a pod of the same name have been recreated), then its
//! containers of that name — the newest is the current one, the one before it the previous
//! (`--previous`) — all from the runtime alone.

use runtime::{ContainerStatus, Runtime, Sandbox};

#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    /// No sandbox for the pod on this node (404, as kubelet's `pod "x" not found`).
    PodNotFound(String),
    /// kubelet's wording for a missing or unavailable container (400).
    BadRequest(String),
    Runtime(String),
}

impl LookupError {
    pub fn code(&self) -> u16 {
        match self {
            LookupError::PodNotFound(_) => 404,
            LookupError::BadRequest(_) => 400,
            LookupError::Runtime(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LookupError::PodNotFound(m) | LookupError::BadRequest(m) | LookupError::Runtime(m) => m,
        }
    }
}

/// The pod's sandbox.
pub fn sandbox(runtime: &dyn Runtime, namespace: &str, pod: &str) -> Result<Sandbox, LookupError> {
    let sandboxes = runtime
        .list_sandboxes()
        .map_err(|e| LookupError::Runtime(e.to_string()))?;
    sandboxes
        .into_iter()
        .filter(|s| s.namespace == namespace && s.pod_name == pod)
        .max_by_key(|s| s.created_at)
        .ok_or_else(|| LookupError::PodNotFound(format!("pod \"{pod}\" not found")))
}

/// The current (or, with `previous`, the previous) container of that name in the pod.
pub fn container(
    runtime: &dyn Runtime,
    namespace: &str,
    pod: &str,
    name: &str,
    previous: bool,
) -> Result<(Sandbox, ContainerStatus), LookupError> {
    let sandbox = sandbox(runtime, namespace, pod)?;
    let mut runs: Vec<ContainerStatus> = runtime
        .list_containers(Some(&sandbox.pod_uid))
        .map_err(|e| LookupError::Runtime(e.to_string()))?
        .into_iter()
        .filter(|c| c.name == name)
        .collect();
    runs.sort_by_key(|c| (c.restart_count, c.created_at));
    let found = if previous {
        if runs.len() < 2 {
            return Err(LookupError::BadRequest(format!(
                "previous terminated container \"{name}\" in pod \"{pod}\" not found"
            )));
        }
        runs.swap_remove(runs.len() - 2)
    } else {
        runs.pop().ok_or_else(|| {
            LookupError::BadRequest(format!("container \"{name}\" in pod \"{pod}\" is not available"))
        })?
    };
    Ok((sandbox, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::fake::FakeRuntime;
    use runtime::{ContainerConfig, SandboxConfig};

    #[test]
    fn current_and_previous_runs() {
        let rt = FakeRuntime::new();
        let sandbox = rt
            .create_sandbox(&SandboxConfig {
                pod_uid: "u1".into(),
                pod_name: "web".into(),
                namespace: "ns".into(),
                ..Default::default()
            })
            .unwrap();
        let mut config = ContainerConfig {
            name: "app".into(),
            ..Default::default()
        };
        let first = rt.create_container(&sandbox.pod_uid, &config).unwrap();
        assert_eq!(
            container(&rt, "ns", "web", "app", true).unwrap_err(),
            LookupError::BadRequest("previous terminated container \"app\" in pod \"web\" not found".into())
        );
        config.restart_count = 1;
        let second = rt.create_container(&sandbox.pod_uid, &config).unwrap();
        assert_eq!(container(&rt, "ns", "web", "app", false).unwrap().1.id, second);
        assert_eq!(container(&rt, "ns", "web", "app", true).unwrap().1.id, first);
        assert_eq!(container(&rt, "ns", "web", "db", false).unwrap_err().code(), 400);
        assert_eq!(
            container(&rt, "ns", "gone", "app", false).unwrap_err().code(),
            404
        );
    }
}
