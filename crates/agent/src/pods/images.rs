//! Images for containers, as kubelet's image manager: the pull policy decides whether to pull,
//! pull secrets give credentials, failures back off per pod and image (ErrImagePull, then
//! ImagePullBackOff), and the outcome is worded as kubelet's events and waiting reasons.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use images::registry::{Keyring, RegistriesConfig};
use images::{PullOptions, Reference};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;
use runtime::ImageConfig;

use super::backoff::Backoff;

/// An image ready for a container.
pub struct Ready {
    /// The reference as the runtime reports it (`docker.io/library/busybox:latest`).
    pub image: String,
    /// `docker.io/library/busybox@sha256:…`.
    pub image_id: String,
    pub config: ImageConfig,
    pub layers: Vec<PathBuf>,
}

/// Why the image is not there: the container's waiting reason and message.
#[derive(Debug)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// The wait before looking again after a failure that does not back off.
const RETRY: Duration = Duration::from_secs(2);

/// An event the caller records on the container.
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

pub struct ImageManager {
    store: images::Store,
    registries: RegistriesConfig,
    backoff: Mutex<Backoff>,
    /// The last pull error per back-off key, quoted while backing off.
    last_error: Mutex<std::collections::HashMap<String, String>>,
}

impl ImageManager {
    pub fn new(store: images::Store, registries: RegistriesConfig) -> ImageManager {
        ImageManager {
            store,
            registries,
            backoff: Mutex::default(),
            last_error: Mutex::default(),
        }
    }

    pub fn store(&self) -> &images::Store {
        &self.store
    }

    /// `repository@sha256:…` of a stored image, by the name the runtime reports (what a
    /// restarted agent shows for containers it found running).
    pub fn image_id(&self, image: &str) -> Option<String> {
        let reference = Reference::parse(image).ok()?;
        let stored = self.store.resolve(&reference).ok()??;
        Some(format!("{}@{}", reference.name(), stored.manifest))
    }

    /// Makes the container's image present as its pull policy says.
    pub async fn ensure(
        &self,
        client: &kube::Client,
        pod: &Pod,
        container: &Container,
        events: &mut Vec<Event>,
    ) -> Result<Ready, Failure> {
        let spec_image = container.image.clone().unwrap_or_default();
        let reference = Reference::parse(&spec_image).map_err(|_| Failure {
            reason: "InvalidImageName",
            message: format!(
                "Failed to apply default image tag {spec_image:?}: couldn't parse image name {spec_image:?}: invalid reference format"
            ),
            retry_after: RETRY,
        })?;
        let policy = container.image_pull_policy.as_deref().unwrap_or(
            if reference.tag.as_deref() == Some("latest") && reference.digest.is_none() {
                "Always"
            } else {
                "IfNotPresent"
            },
        );
        let present = self.store.resolve(&reference).ok().flatten();
        if policy != "Always" {
            if let Some(image) = present {
                events.push(Event {
                    warning: false,
                    reason: "Pulled",
                    message: format!("Container image {spec_image:?} already present on machine"),
                });
                return self.ready(&reference, image);
            }
            if policy == "Never" {
                let message =
                    format!("Container image {spec_image:?} is not present with pull policy of Never");
                events.push(Event {
                    warning: true,
                    reason: "ErrImageNeverPull",
                    message: message.clone(),
                });
                return Err(Failure {
                    reason: "ErrImageNeverPull",
                    message,
                    retry_after: RETRY,
                });
            }
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{uid}_{spec_image}");
        let backing_off = self
            .backoff
            .lock()
            .unwrap()
            .in_backoff_since_update(&key, Timestamp::now());
        if let Some(left) = backing_off {
            let last = self
                .last_error
                .lock()
                .unwrap()
                .get(&key)
                .cloned()
                .unwrap_or_default();
            events.push(Event {
                warning: false,
                reason: "BackOff",
                message: format!("Back-off pulling image {spec_image:?}"),
            });
            events.push(Event {
                warning: true,
                reason: "Failed",
                message: "Error: ImagePullBackOff".into(),
            });
            return Err(Failure {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image {spec_image:?}: ErrImagePull: {last}"),
                retry_after: left,
            });
        }
        events.push(Event {
            warning: false,
            reason: "Pulling",
            message: format!("Pulling image {spec_image:?}"),
        });
        let started = Instant::now();
        let options = PullOptions {
            credentials: keyring(client, pod).await,
            registries: self.registries.clone(),
        };
        match self.store.pull(&reference, &options).await {
            Ok(image) => {
                let took = started.elapsed().as_secs_f64();
                events.push(Event {
                    warning: false,
                    reason: "Pulled",
                    message: format!(
                        "Successfully pulled image {spec_image:?} in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        image.size
                    ),
                });
                self.backoff.lock().unwrap().reset(&key);
                self.ready(&reference, image)
            }
            Err(error) => {
                let message = error.cri_message();
                let now = Timestamp::now();
                self.backoff.lock().unwrap().next(&key, now, now);
                self.last_error.lock().unwrap().insert(key, message.clone());
                events.push(Event {
                    warning: true,
                    reason: "Failed",
                    message: format!("Failed to pull image {spec_image:?}: {message}"),
                });
                events.push(Event {
                    warning: true,
                    reason: "Failed",
                    message: "Error: ErrImagePull".into(),
                });
                Err(Failure {
                    reason: "ErrImagePull",
                    message,
                    retry_after: RETRY,
                })
            }
        }
    }

    fn ready(&self, reference: &Reference, image: images::Image) -> Result<Ready, Failure> {
        let failed = |e: String| Failure {
            reason: "CreateContainerError",
            message: format!("failed to read the image of {reference}: {e}"),
            retry_after: RETRY,
        };
        let blob = self
            .store
            .config_blob(&image)
            .map_err(|e| failed(e.to_string()))?;
        let config = ImageConfig::from_config_blob(&blob).map_err(|e| failed(e.to_string()))?;
        Ok(Ready {
            image: reference.to_string(),
            image_id: format!("{}@{}", reference.name(), image.manifest),
            config,
            layers: image
                .layers
                .iter()
                .map(|l| self.store.layer_dir(&l.diff_id))
                .collect(),
        })
    }
}

/// Credentials from the pod's image pull secrets (missing or malformed ones are skipped, as
/// kubelet does after a warning).
async fn keyring(client: &kube::Client, pod: &Pod) -> Keyring {
    let mut keyring = Keyring::default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let names = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    for name in names {
        let Ok(secret) = secrets.get(&name.name).await else {
            tracing::warn!(%namespace, secret = %name.name, "unable to retrieve an image pull secret");
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let json = data.get(".dockerconfigjson").map(|b| b.0.clone()).or_else(|| {
            // The legacy `.dockercfg` is the `auths` map alone.
            let legacy = data.get(".dockercfg")?;
            let auths: serde_json::Value = serde_json::from_slice(&legacy.0).ok()?;
            serde_json::to_vec(&serde_json::json!({"auths": auths})).ok()
        });
        if let Some(json) = json
            && let Err(e) = keyring.add_docker_config(&json)
        {
            tracing::warn!(%namespace, secret = %name.name, "unusable image pull secret: {e}");
        }
    }
    keyring
}
