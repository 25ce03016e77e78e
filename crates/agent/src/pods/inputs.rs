//! What a container gets from outside its image: volumes mounted into it and its environment.
//! The worker asks this adapter; it holds the node's volume manager and resolves env.
//!
//! This first version knows emptyDir and hostPath volumes and literal env values (with
//! `$(VAR)` references); the volume manager (`crate::volumes`) and the full env resolution
//! (`crate::env`) replace its insides.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};
use runtime::Mount;

pub struct Inputs {
    pods_dir: PathBuf,
}

impl Inputs {
    pub fn new(_client: kube::Client, pods_dir: PathBuf) -> Inputs {
        Inputs { pods_dir }
    }

    fn volume_dir(&self, uid: &str, name: &str) -> PathBuf {
        self.pods_dir
            .join(uid)
            .join("volumes/kubernetes.io~empty-dir")
            .join(name)
    }

    /// Makes the pod's volumes ready; the error is the FailedMount event's message.
    pub async fn setup(&self, pod: &Pod) -> Result<(), String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if volume.empty_dir.is_some() {
                let dir = self.volume_dir(&uid, &volume.name);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", volume.name))?;
            }
        }
        Ok(())
    }

    /// The container's mounts from its volumeMounts.
    pub fn mounts(&self, pod: &Pod, container: &Container) -> Result<Vec<Mount>, String> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let volumes: HashMap<&str, _> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .map(|v| (v.name.as_str(), v))
            .collect();
        let mut mounts = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let Some(volume) = volumes.get(m.name.as_str()) else {
                return Err(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    m.name, container.name
                ));
            };
            let host_path = if volume.empty_dir.is_some() {
                self.volume_dir(&uid, &volume.name)
            } else if let Some(host) = &volume.host_path {
                PathBuf::from(&host.path)
            } else {
                tracing::warn!(volume = %m.name, "volume type not supported yet; not mounted");
                continue;
            };
            let host_path = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let path = host_path.join(sub);
                    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
                    path
                }
                None => host_path,
            };
            mounts.push(Mount {
                container_path: m.mount_path.clone(),
                host_path,
                read_only: m.read_only == Some(true),
                propagation: Default::default(),
            });
        }
        Ok(mounts)
    }

    /// The container's environment; the error is the CreateContainerConfigError message.
    pub fn container_env(
        &self,
        _pod: &Pod,
        container: &Container,
        _pod_ips: &[IpAddr],
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        for var in container.env.iter().flatten() {
            let value = var.value.clone().unwrap_or_default();
            let known: HashMap<String, String> = env.iter().cloned().collect();
            env.push((var.name.clone(), expand(&value, &known)));
        }
        Ok(env)
    }

    /// Removes the pod's volumes.
    pub async fn teardown(&self, uid: &str) -> anyhow::Result<()> {
        let dir = self.pods_dir.join(uid).join("volumes");
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", dir.display())),
        }
    }
}

/// `$(VAR)` references to earlier variables, `$$` for a literal `$`.
fn expand(value: &str, known: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match known.get(name) {
                Some(v) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}
