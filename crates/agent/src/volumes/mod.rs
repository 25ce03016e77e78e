//! The kubelet's volume manager for one node.
//!
//! ```text
//! let volumes = Volumes::new(client, pods_dir);          // <data-dir>/agent/pods
//! let ready = volumes.setup(&pod).await?;                 // every sync, and when the pod changes
//! let mounts = volumes.mounts(&pod, &container, &ready, &env)?;   // runtime::ContainerConfig::mounts
//! volumes.teardown(pod_uid).await?;                       // once the pod's containers are gone
//! ```
//!
//! [`Volumes::setup`] makes every volume of a pod ready under
//! `<pods-dir>/<uid>/volumes/kubernetes.io~<plugin>/<name>` and is idempotent:
//! - `emptyDir`: a directory (0777; with an `fsGroup`, owned by that group and setgid);
//!   `medium: Memory` is a tmpfs of `sizeLimit` (else the pod's memory limit when every
//!   container has one);
//! - `hostPath`: the host's path after the `type` check ([`host_path`]), mounted as it is
//!   (without a type, a missing path is made a directory, as containerd does);
//! - `configMap` (on disk), `secret`, `downwardAPI` and `projected` (each on its own tmpfs):
//!   files written by the [`atomic_writer`], always mounted read-only into containers;
//!   `projected` serves configMap, secret, downwardAPI and serviceAccountToken sources
//!   ([`tokens`]: TokenRequests bound to the pod, renewed at 80 % of their lifetime).
//!
//! Content follows the API: the referenced ConfigMaps and Secrets are watched per namespace
//! ([`crate::objects`]), and a change rewrites the files of every registered pod's volumes of
//! that namespace within a moment; a 10 s tick also renews tokens. downwardAPI files follow
//! the pod when `setup` is called again with the changed pod. subPath mounts pin the file they
//! name and do not see updates, as upstream's.
//!
//! Errors display as the kubelet's `FailedMount` events do:
//! `MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`.

pub mod atomic_writer;
pub mod host_path;
mod sources;
pub mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::downward::NodeFacts;
use crate::objects::ObjectCache;
use sources::Ownership;

/// How often every registered pod's API-backed volumes are refreshed without a watch event
/// (token renewal, and a safety net).
const RESYNC_PERIOD: Duration = Duration::from_secs(10);

/// A volume that failed, worded as the kubelet's events and container errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeError {
    /// Making a volume ready failed (`FailedMount` event; the pod stays ContainerCreating).
    SetUp { volume: String, message: String },
    /// A container's mounts cannot be made (CreateContainerConfigError).
    Container(String),
    /// Unmounting or removing failed.
    TearDown(String),
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VolumeError::SetUp { volume, message } => {
                write!(f, "MountVolume.SetUp failed for volume {volume:?} : {message}")
            }
            VolumeError::Container(message) | VolumeError::TearDown(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for VolumeError {}

/// The message of an API error as upstream prints it (the Status message), else the error.
pub(crate) fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// One ready volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyVolume {
    /// What containers mount: the volume directory, or the hostPath.
    pub host_path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are read-only whatever the mount says.
    pub read_only: bool,
}

/// A pod's ready volumes by name (what [`Volumes::setup`] returns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, ReadyVolume>,
}

struct Inner {
    client: kube::Client,
    pods_dir: PathBuf,
    objects: Arc<ObjectCache>,
    tokens: tokens::Tokens,
    node: Mutex<NodeFacts>,
    /// The pods whose volumes follow their objects: uid → the latest pod given to `setup`.
    pods: Mutex<HashMap<String, Pod>>,
    /// One pod's volumes are written by one task at a time (setup, refresh, teardown).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// See the module docs.
#[derive(Clone)]
pub struct Volumes {
    inner: Arc<Inner>,
}

/// The plugin directory names, as the kubelet's (`kubernetes.io~<plugin>`).
fn plugin_dir(volume: &Volume) -> Option<&'static str> {
    Some(if volume.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if volume.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if volume.secret.is_some() {
        "kubernetes.io~secret"
    } else if volume.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else if volume.projected.is_some() {
        "kubernetes.io~projected"
    } else {
        return None;
    })
}

/// Whether the volume's content is written from the API (and so follows it).
fn is_api_backed(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

impl Volumes {
    /// A volume manager for pods under `pods_dir`. Must be called inside a Tokio runtime (it
    /// starts the task that keeps volume contents current).
    pub fn new(client: kube::Client, pods_dir: PathBuf) -> Volumes {
        let objects = ObjectCache::new(client.clone());
        Volumes::with_objects(client, pods_dir, objects)
    }

    /// The same, sharing an object cache (with [`crate::env`]).
    pub fn with_objects(client: kube::Client, pods_dir: PathBuf, objects: Arc<ObjectCache>) -> Volumes {
        let inner = Arc::new(Inner {
            client,
            pods_dir,
            objects,
            tokens: tokens::Tokens::default(),
            node: Mutex::new(NodeFacts::default()),
            pods: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        });
        tokio::spawn(follow(Arc::downgrade(&inner), inner.objects.subscribe()));
        Volumes { inner }
    }

    /// The object cache (for [`crate::env::container_env`]).
    pub fn objects(&self) -> &Arc<ObjectCache> {
        &self.inner.objects
    }

    /// What downwardAPI `resourceFieldRef`s read for unset limits (the node's allocatable).
    pub fn set_node(&self, node: NodeFacts) {
        *self.inner.node.lock().expect("not poisoned") = node;
    }

    fn pod_lock(&self, uid: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .locks
            .lock()
            .expect("not poisoned")
            .entry(uid.to_owned())
            .or_default()
            .clone()
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.inner.pods_dir.join(uid)
    }

    /// Makes every volume of the pod ready on disk. See the module docs.
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return Err(VolumeError::Container(format!("pod has an invalid uid {uid:?}")));
        }
        let mut ready = PodVolumes::default();
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        // Registered first, so that objects created while setup waits are noticed.
        self.inner
            .pods
            .lock()
            .expect("not poisoned")
            .insert(uid.clone(), pod.clone());
        let lock = self.pod_lock(&uid);
        let _guard = lock.lock().await;
        for volume in &volumes {
            let fail = |message: String| VolumeError::SetUp {
                volume: volume.name.clone(),
                message,
            };
            let ready_volume = self.setup_volume(pod, &uid, volume).await.map_err(fail)?;
            ready.volumes.insert(volume.name.clone(), ready_volume);
        }
        Ok(ready)
    }

    async fn setup_volume(&self, pod: &Pod, uid: &str, volume: &Volume) -> Result<ReadyVolume, String> {
        if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            host_path::check_type(&path, host.type_.as_deref())?;
            if host.type_.as_deref().unwrap_or("").is_empty() && std::fs::symlink_metadata(&path).is_err() {
                // No type: as containerd and Docker do, a missing source becomes a directory.
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            }
            return Ok(ReadyVolume {
                host_path: path,
                read_only: false,
            });
        }
        let Some(plugin) = plugin_dir(volume) else {
            return Err(unsupported(volume));
        };
        let dir = self.pod_dir(uid).join("volumes").join(plugin).join(&volume.name);
        let fresh = !dir.exists();
        if fresh {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if let Some(empty) = &volume.empty_dir {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| e.to_string())?;
            if empty.medium.as_deref() == Some("Memory") {
                let size = empty
                    .size_limit
                    .as_ref()
                    .and_then(|q| apimachinery::quantity::parse(&q.0))
                    .or_else(|| pod_memory_limit(pod));
                mount_tmpfs(&dir, size)?;
            }
            if let Some(gid) = ownership(pod).fs_group {
                // The kubelet's SetVolumeOwnership: the pod's fsGroup owns the directory, and
                // what is created in it inherits the group (setgid).
                std::os::unix::fs::chown(&dir, None, Some(gid)).map_err(|e| e.to_string())?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2777))
                    .map_err(|e| e.to_string())?;
            }
            return Ok(ReadyVolume {
                host_path: dir,
                read_only: false,
            });
        }
        if volume.config_map.is_none() {
            // secret, downwardAPI and projected content never touches the disk.
            mount_tmpfs(&dir, None)?;
        }
        self.write_content(pod, volume, &dir).await?;
        Ok(ReadyVolume {
            host_path: dir,
            read_only: true,
        })
    }

    /// Writes an API-backed volume's files (through the atomic writer).
    async fn write_content(&self, pod: &Pod, volume: &Volume, dir: &Path) -> Result<(), String> {
        let node = self.inner.node.lock().expect("not poisoned").clone();
        let ctx = sources::Context {
            client: &self.inner.client,
            objects: &self.inner.objects,
            tokens: &self.inner.tokens,
            node: &node,
            pod,
            ownership: ownership(pod),
        };
        let mut payload = atomic_writer::Payload::new();
        if let Some(cm) = &volume.config_map {
            let mode = cm.default_mode.unwrap_or(sources::DEFAULT_MODE);
            let optional = cm.optional.unwrap_or(false);
            sources::config_map(&ctx, &cm.name, cm.items.as_ref(), mode, optional, &mut payload).await?;
        } else if let Some(s) = &volume.secret {
            let mode = s.default_mode.unwrap_or(sources::DEFAULT_MODE);
            let optional = s.optional.unwrap_or(false);
            let name = s.secret_name.as_deref().unwrap_or_default();
            sources::secret(&ctx, name, s.items.as_ref(), mode, optional, &mut payload).await?;
        } else if let Some(d) = &volume.downward_api {
            let mode = d.default_mode.unwrap_or(sources::DEFAULT_MODE);
            sources::downward_api(&ctx, d.items.as_deref().unwrap_or_default(), mode, &mut payload)?;
        } else if let Some(p) = &volume.projected {
            sources::projected(&ctx, p, &mut payload).await?;
        }
        let dir = dir.to_owned();
        let changed = tokio::task::spawn_blocking(move || atomic_writer::write(&dir, &payload))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("failed to write the volume's files: {e}"))?;
        if changed {
            tracing::debug!(volume = %volume.name, pod = ?pod.metadata.name, "volume content updated");
        }
        Ok(())
    }

    /// Rewrites the API-backed volumes of registered pods (of `namespace`, or all).
    async fn refresh(&self, namespace: Option<&str>) {
        let pods: Vec<Pod> = self
            .inner
            .pods
            .lock()
            .expect("not poisoned")
            .values()
            .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
            .cloned()
            .collect();
        for pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let lock = self.pod_lock(&uid);
            let _guard = lock.lock().await;
            if !self.inner.pods.lock().expect("not poisoned").contains_key(&uid) {
                continue; // torn down meanwhile
            }
            for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
                let Some(plugin) = plugin_dir(volume).filter(|_| is_api_backed(volume)) else {
                    continue;
                };
                let dir = self.pod_dir(&uid).join("volumes").join(plugin).join(&volume.name);
                // Only volumes that setup made ready (and teardown has not removed).
                if !dir.join(atomic_writer::DATA_DIR).exists() {
                    continue;
                }
                if let Err(err) = self.write_content(&pod, volume, &dir).await {
                    tracing::info!(volume = %volume.name, pod = ?pod.metadata.name, "volume refresh: {err}");
                }
            }
        }
    }

    /// The runtime mounts of one container from its `volumeMounts`. `env` is the container's
    /// environment (from [`crate::env::container_env`]), which `subPathExpr` expands. (`_pod` is
    /// there for what upstream also reads from it, e.g. host-user namespaces; unused today.)
    pub fn mounts(
        &self,
        _pod: &Pod,
        container: &Container,
        volumes: &PodVolumes,
        env: &[(String, String)],
    ) -> Result<Vec<runtime::Mount>, VolumeError> {
        let privileged = container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false);
        let mut out = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = volumes.volumes.get(&mount.name).ok_or_else(|| {
                VolumeError::Container(format!(
                    "cannot find volume {:?} to mount into container {:?}",
                    mount.name, container.name
                ))
            })?;
            let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
                (Some(p), _) if !p.is_empty() => Some(p.clone()),
                (_, Some(expr)) if !expr.is_empty() => {
                    let vars = env_map(env);
                    Some(crate::env::expand(expr, &|name: &str| vars.get(name).cloned()))
                }
                _ => None,
            };
            let host_path = match sub_path {
                Some(sub) => sub_path_source(&volume.host_path, &sub).map_err(|e| {
                    VolumeError::Container(format!(
                        "failed to prepare subPath for volumeMount {:?} of container {:?}: {e}",
                        mount.name, container.name
                    ))
                })?,
                None => volume.host_path.clone(),
            };
            let propagation = match mount.mount_propagation.as_deref() {
                None | Some("None") => runtime::Propagation::None,
                Some("HostToContainer") => runtime::Propagation::HostToContainer,
                Some("Bidirectional") if privileged => runtime::Propagation::Bidirectional,
                Some("Bidirectional") => {
                    return Err(VolumeError::Container(
                        "Bidirectional mount propagation is available only to privileged containers".into(),
                    ));
                }
                Some(other) => {
                    return Err(VolumeError::Container(format!(
                        "invalid propagation mode: {other}"
                    )));
                }
            };
            out.push(runtime::Mount {
                container_path: mount.mount_path.clone(),
                host_path,
                read_only: mount.read_only.unwrap_or(false) || volume.read_only,
                propagation,
            });
        }
        Ok(out)
    }

    /// Unmounts and removes the pod's volumes (after its containers are gone). Idempotent.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let namespace = self
            .inner
            .pods
            .lock()
            .expect("not poisoned")
            .remove(pod_uid)
            .and_then(|p| p.metadata.namespace);
        self.inner.tokens.forget_pod(pod_uid);
        if let Some(namespace) = namespace {
            let pods = self.inner.pods.lock().expect("not poisoned");
            let in_use = |ns: &str| {
                ns == namespace && pods.values().any(|p| p.metadata.namespace.as_deref() == Some(ns))
            };
            self.inner.objects.retain(|ns| ns != namespace || in_use(ns));
        }
        if pod_uid.is_empty() || pod_uid.contains('/') || pod_uid.starts_with('.') {
            return Ok(());
        }
        let lock = self.pod_lock(pod_uid);
        let _guard = lock.lock().await;
        let dir = self.pod_dir(pod_uid).join("volumes");
        tokio::task::spawn_blocking(move || remove_volumes(&dir))
            .await
            .map_err(|e| VolumeError::TearDown(e.to_string()))?
            .map_err(VolumeError::TearDown)?;
        self.inner.locks.lock().expect("not poisoned").remove(pod_uid);
        Ok(())
    }
}

/// Keeps volume contents current until the manager is dropped.
async fn follow(inner: Weak<Inner>, mut changes: tokio::sync::broadcast::Receiver<String>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut tick = tokio::time::interval(RESYNC_PERIOD);
    tick.tick().await;
    loop {
        let namespace = tokio::select! {
            changed = changes.recv() => match changed {
                Ok(ns) => Some(ns),
                Err(RecvError::Lagged(_)) => None,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => None,
        };
        let Some(inner) = inner.upgrade() else { return };
        Volumes { inner }.refresh(namespace.as_deref()).await;
    }
}

fn unsupported(volume: &Volume) -> String {
    let value = serde_json::to_value(volume).unwrap_or_default();
    let kind = value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("{kind} volumes are not supported by rkube yet")
}

/// fsGroup, and the single runAsUser every container runs as (the projected token's owner).
fn ownership(pod: &Pod) -> Ownership {
    let spec = pod.spec.as_ref();
    let pod_ctx = spec.and_then(|s| s.security_context.as_ref());
    let fs_group = pod_ctx.and_then(|c| c.fs_group).map(|g| g as u32);
    let pod_user = pod_ctx.and_then(|c| c.run_as_user);
    let mut users = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .map(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.run_as_user)
                .or(pod_user)
        });
    let first = users.next().flatten();
    let fs_user = first.filter(|u| users.all(|o| o == Some(*u))).map(|u| u as u32);
    Ownership { fs_group, fs_user }
}

/// The sum of the containers' memory limits, when every container has one.
fn pod_memory_limit(pod: &Pod) -> Option<f64> {
    let mut total = 0.0;
    for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        let limit = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))?;
        total += apimachinery::quantity::parse(&limit.0)?;
    }
    (total > 0.0).then_some(total)
}

fn env_map(env: &[(String, String)]) -> HashMap<String, String> {
    env.iter().cloned().collect()
}

/// The host path a subPath mount binds: inside the volume (symlinks resolved and checked, as
/// the kubelet's safe subpath handling), created as a directory when missing.
fn sub_path_source(volume: &Path, sub: &str) -> Result<PathBuf, String> {
    let rel = Path::new(sub);
    if rel.is_absolute() || rel.components().any(|c| c == Component::ParentDir) {
        return Err(format!("subPath {sub:?} must be a relative path without '..'"));
    }
    let root = volume
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", volume.display()))?;
    let wanted = root.join(rel);
    if std::fs::symlink_metadata(&wanted).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&wanted)
            .map_err(|e| format!("cannot create {}: {e}", wanted.display()))?;
    }
    let resolved = wanted
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", wanted.display()))?;
    if !resolved.starts_with(&root) {
        return Err(format!(
            "subpath {:?} not within volume path {:?}",
            resolved, root
        ));
    }
    Ok(resolved)
}

/// The mount points at or below `dir`, deepest first (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(n) = u8::from_str_radix(&code, 8) {
                out.push(n as char);
                continue;
            }
            out.push('\\');
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

fn is_mount_point(dir: &Path) -> bool {
    mounts_under(dir).iter().any(|p| p == dir)
}

fn mount_tmpfs(dir: &Path, size: Option<f64>) -> Result<(), String> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = String::from("mode=0777");
    if let Some(size) = size {
        options.push_str(&format!(",size={}", size.ceil() as u64));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mount failed: tmpfs on {}: {e}", dir.display()))
}

fn remove_volumes(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    for mount in mounts_under(dir) {
        if let Err(err) = nix::mount::umount2(&mount, nix::mount::MntFlags::empty()) {
            tracing::info!(mount = %mount.display(), "unmount failed ({err}); detaching");
            nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| format!("cannot unmount {}: {e}", mount.display()))?;
        }
    }
    if let Some(left) = mounts_under(dir).first() {
        return Err(format!("{} is still mounted", left.display()));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    // The pod directory itself goes when nothing else is left in it.
    if let Some(parent) = dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_the_kubelet_events() {
        let err = VolumeError::SetUp {
            volume: "cfg".into(),
            message: "configmap \"x\" not found".into(),
        };
        assert_eq!(
            err.to_string(),
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"x\" not found"
        );
    }

    #[test]
    fn sub_paths_stay_inside_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        std::fs::write(dir.path().join("outside"), "x").unwrap();
        std::os::unix::fs::symlink("../outside", vol.join("escape")).unwrap();
        assert!(
            sub_path_source(&vol, "escape")
                .unwrap_err()
                .contains("not within volume path")
        );
        assert!(sub_path_source(&vol, "../x").is_err());
        assert!(sub_path_source(&vol, "/etc").is_err());
        let made = sub_path_source(&vol, "a/b").unwrap();
        assert!(made.is_dir() && made.ends_with("vol/a/b"));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    }

    #[test]
    fn the_token_owner_is_the_one_user_all_containers_share() {
        let pod: Pod = serde_json::from_value(serde_json::json!({"spec": {
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "containers": [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 1000}}]}}))
        .unwrap();
        let owner = ownership(&pod);
        assert_eq!((owner.fs_user, owner.fs_group), (Some(1000), Some(2000)));
        let pod: Pod = serde_json::from_value(serde_json::json!({"spec": {
            "containers": [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 1000}}]}}))
        .unwrap();
        assert_eq!(ownership(&pod).fs_user, None);
    }
}
