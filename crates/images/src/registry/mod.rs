//! Pulling images from OCI distribution registries into the store, as kubelet with containerd
//! does: resolve the reference to a manifest (mirrors first, then the registry itself), follow
//! an index to this platform's manifest, download the config and the layers that are not
//! stored yet — each verified against its digest before it enters the store — then unpack the
//! layers and name the image, under the store's writer lock.
//!
//! `config` reads registries.yaml, `keyring` looks pull-secret credentials up for an image,
//! `auth` answers registries' challenges, `client` speaks HTTP, `manifest` reads manifests.
//! Failures are worded as containerd's CRI plugin words them (kubelet shows them in
//! `ErrImagePull` messages) and typed by [`PullErrorKind`].

mod auth;
mod client;
mod config;
mod keyring;
mod manifest;

use std::io::Write;

use futures::StreamExt;
use sha2::{Digest, Sha256};

pub use auth::Credentials;
pub use client::SkipVerification;
pub use config::{AuthConfig, EndpointConfig, Mirror, RegistriesConfig, TlsConfig};
pub use keyring::Keyring;

use crate::{Error, Image, Layer, Reference, Store};
use client::{Endpoint, next_frame, read_body, unexpected_status};
use manifest::{Descriptor, Document};

/// How many layers of one image download at once.
const CONCURRENT_DOWNLOADS: usize = 3;

/// Where a pull reads from and with which credentials.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Credentials from the pod's image pull secrets; each matching one is tried in turn, as
    /// kubelet does. When none match, endpoints use their configured auth, else none.
    pub credentials: Keyring,
    pub registries: RegistriesConfig,
}

/// Why a pull failed, for the agent to choose its status and the CRI-style error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullErrorKind {
    /// No such repository, tag or digest (HTTP 404), or no image for this platform.
    NotFound,
    /// The registry refused the credentials, or the pull without them (401, 403).
    Unauthorized,
    /// The registry could not be reached or failed (connection, TLS, timeout, 5xx).
    Unavailable,
    /// Content did not match its digest.
    DigestMismatch,
    /// Unusable content: bad manifest, unsupported media type, bad configuration.
    Invalid,
    /// The local store failed (disk full, permissions).
    Store,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PullError {
    pub kind: PullErrorKind,
    /// containerd's wording: `failed to pull and unpack image "docker.io/library/x:1":
    /// failed to resolve reference "docker.io/library/x:1": docker.io/library/x:1: not found`.
    pub message: String,
}

impl PullError {
    /// The gRPC code containerd's CRI answers with, as kubelet shows it in
    /// `rpc error: code = <code> desc = <message>`.
    pub fn grpc_code(&self) -> &'static str {
        match self.kind {
            PullErrorKind::NotFound => "NotFound",
            PullErrorKind::DigestMismatch => "FailedPrecondition",
            _ => "Unknown",
        }
    }

    /// The error as kubelet receives it from a CRI runtime, which is what it puts in the
    /// container's `ErrImagePull` waiting message and its `Failed to pull image` event.
    pub fn cri_message(&self) -> String {
        format!("rpc error: code = {} desc = {}", self.grpc_code(), self.message)
    }
}

/// A failed step of a pull, before it is worded for the whole pull.
#[derive(Debug)]
pub(crate) struct Failure {
    pub kind: PullErrorKind,
    pub message: String,
}

impl Failure {
    fn new(kind: PullErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    fn context(self, context: &str) -> Failure {
        Failure {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let kind = match &error {
            Error::Digest { .. } => PullErrorKind::DigestMismatch,
            Error::Io { .. } => PullErrorKind::Store,
            Error::Reference(_) | Error::Format(_) => PullErrorKind::Invalid,
        };
        Failure::new(kind, error.to_string())
    }
}

/// The manifest a reference resolved to, and where.
struct Resolved {
    endpoint: usize,
    digest: String,
    bytes: Vec<u8>,
    document: Document,
}

impl Store {
    /// Pulls `reference` into the store and names it; returns the stored image. Concurrent
    /// pulls (in this process or others) are safe: downloads go to private temporary files and
    /// enter the store by rename once verified; unpacking and naming hold the writer lock.
    pub async fn pull(&self, reference: &Reference, options: &PullOptions) -> Result<Image, PullError> {
        let found = options.credentials.lookup(reference);
        let attempts: Vec<Option<Credentials>> = if found.is_empty() {
            vec![None]
        } else {
            found.into_iter().map(Some).collect()
        };
        let mut failures = Vec::new();
        for credentials in attempts {
            match self.pull_with(reference, options, credentials).await {
                Ok(image) => return Ok(image),
                Err(failure) => failures.push(failure),
            }
        }
        let kind = failures.last().expect("one attempt at least").kind;
        let worded: Vec<String> = failures
            .into_iter()
            .map(|f| format!("failed to pull and unpack image \"{reference}\": {}", f.message))
            .collect();
        // kubelet aggregates the errors of several credentials as `[a, b]`.
        let message = if worded.len() == 1 {
            worded.into_iter().next().expect("one")
        } else {
            format!("[{}]", worded.join(", "))
        };
        Err(PullError { kind, message })
    }

    async fn pull_with(
        &self,
        reference: &Reference,
        options: &PullOptions,
        credentials: Option<Credentials>,
    ) -> Result<Image, Failure> {
        let invalid = |e: String| Failure::new(PullErrorKind::Invalid, e);
        let mut endpoints = options
            .registries
            .endpoints(&reference.registry)
            .map_err(invalid)?
            .into_iter()
            .map(|spec| Endpoint::new(spec, &reference.repository, credentials.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let resolved = resolve(&mut endpoints, reference)
            .await
            .map_err(|f| f.context(&format!("failed to resolve reference \"{reference}\"")))?;
        // Blobs come from the endpoint that resolved the reference, then the ones after it.
        let order: Vec<usize> = (resolved.endpoint..endpoints.len()).collect();
        let mut manifests = vec![resolved.bytes];
        let (config, layers) = match resolved.document {
            Document::Image { config, layers } => (config, layers),
            Document::Index(entries) => {
                let chosen = manifest::select_platform(&entries)
                    .ok_or_else(|| {
                        Failure::new(
                            PullErrorKind::NotFound,
                            "no match for platform in manifest: not found",
                        )
                    })?
                    .clone();
                let (bytes, document) = fetch_manifest(&mut endpoints, &order, &chosen.digest).await?;
                manifests.push(bytes);
                match document {
                    Document::Image { config, layers } => (config, layers),
                    Document::Index(_) => {
                        return Err(invalid(format!(
                            "manifest {} for this platform is itself an index",
                            chosen.digest
                        )));
                    }
                }
            }
        };
        let copy = |f: Failure| f.context("failed to copy");
        self.fetch_blob(&mut endpoints, &order, &config)
            .await
            .map_err(copy)?;
        let config_path = self.blob_path(&config.digest);
        let config_json: serde_json::Value = std::fs::read(&config_path)
            .map_err(Error::io(&config_path))
            .map_err(Failure::from)
            .and_then(|bytes| {
                serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("image config {}: {e}", config.digest)))
            })?;
        let diff_ids = crate::archive::diff_ids(&config_json)?;
        if diff_ids.len() != layers.len() {
            return Err(invalid(format!(
                "mismatched image rootfs and manifest layers: manifest has {} layers, config {} diff IDs",
                layers.len(),
                diff_ids.len()
            )));
        }
        for layer in &layers {
            if !manifest::is_layer(&layer.media_type) {
                return Err(invalid(format!(
                    "layer {}: unsupported media type {:?}",
                    layer.digest, layer.media_type
                )));
            }
        }
        // Layers download a few at a time, as containerd's default max_concurrent_downloads.
        // Boxed as `Send`: a lazily mapped stream of borrowing futures is not provably Send
        // (a rustc limitation), and the agent pulls on spawned tasks.
        type Download<'a> = std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;
        let fetches: Vec<Download<'_>> = layers
            .iter()
            .map(|layer| {
                let mut endpoints = endpoints.clone();
                let order = &order;
                Box::pin(async move { self.fetch_blob(&mut endpoints, order, layer).await }) as Download<'_>
            })
            .collect();
        let downloads = futures::stream::iter(fetches)
            .buffered(CONCURRENT_DOWNLOADS)
            .collect::<Vec<_>>()
            .await;
        for result in downloads {
            result.map_err(copy)?;
        }
        let mut size = blob_size(self, &config.digest)?;
        let mut stored_layers = Vec::new();
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let layer_size = blob_size(self, &layer.digest)?;
            size += layer_size;
            stored_layers.push(Layer {
                digest: layer.digest.clone(),
                diff_id,
                size: layer_size,
            });
        }
        let image = Image {
            manifest: resolved.digest,
            config: config.digest,
            layers: stored_layers,
            size,
        };
        let store = self.clone();
        let name = reference.to_string();
        let stored = image.clone();
        tokio::task::spawn_blocking(move || store.commit_pull(&name, &manifests, &stored))
            .await
            .map_err(|e| Failure::new(PullErrorKind::Store, format!("unpacking stopped: {e}")))??;
        Ok(image)
    }

    /// Stores the manifests, unpacks the layers and names the image, under the writer lock.
    fn commit_pull(&self, name: &str, manifests: &[Vec<u8>], image: &Image) -> Result<(), Failure> {
        let _lock = self.lock()?;
        for bytes in manifests {
            self.put_bytes(bytes)?;
        }
        for layer in &image.layers {
            crate::unpack::layer(self, layer).map_err(|e| {
                Failure::from(e).context(&format!("failed to extract layer {}", layer.diff_id))
            })?;
        }
        let mut images = self.list()?;
        images.insert(name.to_owned(), image.clone());
        self.save(&images)?;
        Ok(())
    }

    /// Downloads a blob unless stored, from the first endpoint that has it.
    async fn fetch_blob(
        &self,
        endpoints: &mut [Endpoint],
        order: &[usize],
        blob: &Descriptor,
    ) -> Result<(), Failure> {
        if !valid_digest(&blob.digest) {
            return Err(Failure::new(
                PullErrorKind::Invalid,
                format!("unsupported digest {:?}", blob.digest),
            ));
        }
        if self.blob_path(&blob.digest).exists() {
            return Ok(());
        }
        let mut first_failure = None;
        for &i in order {
            match self.download(&mut endpoints[i], blob).await {
                Ok(()) => return Ok(()),
                // Another endpoint may have it; wrong content is final.
                Err(f) if f.kind != PullErrorKind::DigestMismatch && f.kind != PullErrorKind::Store => {
                    first_failure.get_or_insert(f);
                }
                Err(f) => return Err(f),
            }
        }
        Err(first_failure.expect("at least one endpoint"))
    }

    /// Streams a blob into a temporary file, hashing it, and moves it into the store only if
    /// its digest and size are the descriptor's.
    async fn download(&self, endpoint: &mut Endpoint, blob: &Descriptor) -> Result<(), Failure> {
        let url = endpoint.url("blobs", &blob.digest);
        let response = endpoint.get(&url, None).await?;
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND {
            return Err(Failure::new(
                PullErrorKind::NotFound,
                format!("content at {url} not found: not found"),
            ));
        }
        if status != http::StatusCode::OK {
            return Err(Failure::new(
                status_kind(status),
                unexpected_status(&http::Method::GET, &url, status),
            ));
        }
        let tmp_dir = self.tmp_dir();
        let store_error = |e: std::io::Error| Failure::from(Error::io(&tmp_dir)(e));
        let mut file = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(store_error)?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut body = response.into_body();
        // Writes go to the page cache: short enough not to need a blocking thread.
        while let Some(data) = next_frame(&mut body).await? {
            written += data.len() as u64;
            if blob.size > 0 && written > blob.size {
                return Err(Failure::new(
                    PullErrorKind::DigestMismatch,
                    format!(
                        "{}: more than the expected {} bytes: failed precondition",
                        blob.digest, blob.size
                    ),
                ));
            }
            hasher.update(&data);
            file.write_all(&data).map_err(store_error)?;
        }
        let actual = format!("sha256:{:x}", hasher.finalize());
        if actual != blob.digest {
            return Err(Failure::new(
                PullErrorKind::DigestMismatch,
                format!(
                    "unexpected commit digest {actual}, expected {}: failed precondition",
                    blob.digest
                ),
            ));
        }
        if blob.size > 0 && written != blob.size {
            return Err(Failure::new(
                PullErrorKind::DigestMismatch,
                format!(
                    "unexpected commit size {written}, expected {}: failed precondition",
                    blob.size
                ),
            ));
        }
        let target = self.blob_path(&blob.digest);
        file.persist(&target)
            .map_err(|e| Failure::from(Error::io(&target)(e.error)))?;
        Ok(())
    }
}

/// Finds the manifest a reference names, trying each endpoint in turn. Of the failures, the
/// one that got furthest is reported (an error status over a 404 over a connection failure),
/// as containerd's resolver does.
async fn resolve(endpoints: &mut [Endpoint], reference: &Reference) -> Result<Resolved, Failure> {
    let object = match (&reference.digest, &reference.tag) {
        (Some(digest), _) => digest.clone(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => "latest".to_owned(),
    };
    let mut best: Option<(u8, Failure)> = None;
    let mut note = |priority: u8, failure: Failure| {
        if best.as_ref().is_none_or(|(p, _)| *p < priority) {
            best = Some((priority, failure));
        }
    };
    for (i, endpoint) in endpoints.iter_mut().enumerate() {
        let url = endpoint.url("manifests", &object);
        let response = match endpoint.get(&url, Some(manifest::ACCEPT)).await {
            Ok(response) => response,
            Err(failure) => {
                tracing::debug!("resolving {reference} at {url}: {}", failure.message);
                note(1, failure);
                continue;
            }
        };
        let status = response.status();
        if status == http::StatusCode::NOT_FOUND {
            note(
                2,
                Failure::new(PullErrorKind::NotFound, format!("{reference}: not found")),
            );
            continue;
        }
        if status != http::StatusCode::OK {
            note(
                3,
                Failure::new(
                    status_kind(status),
                    unexpected_status(&http::Method::GET, &url, status),
                ),
            );
            continue;
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let content_type = header("content-type");
        let header_digest = header("docker-content-digest");
        let bytes = read_body(response, manifest::MAX_MANIFEST_SIZE).await?;
        let actual = sha256(&bytes);
        // By digest the reference is the truth; by tag, the registry's header when it sent one.
        let expected = reference
            .digest
            .clone()
            .or_else(|| (!header_digest.is_empty()).then_some(header_digest));
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(Failure::new(
                PullErrorKind::DigestMismatch,
                format!("unexpected commit digest {actual}, expected {expected}: failed precondition"),
            ));
        }
        let document =
            manifest::parse(&bytes, &content_type).map_err(|e| Failure::new(PullErrorKind::Invalid, e))?;
        return Ok(Resolved {
            endpoint: i,
            digest: actual,
            bytes: bytes.to_vec(),
            document,
        });
    }
    Err(best
        .map(|(_, f)| f)
        .unwrap_or_else(|| Failure::new(PullErrorKind::NotFound, format!("{reference}: not found"))))
}

/// The manifest an index entry names, verified against its digest.
async fn fetch_manifest(
    endpoints: &mut [Endpoint],
    order: &[usize],
    digest: &str,
) -> Result<(Vec<u8>, Document), Failure> {
    let mut first_failure = None;
    for &i in order {
        let endpoint = &mut endpoints[i];
        let url = endpoint.url("manifests", digest);
        let response = match endpoint.get(&url, Some(manifest::ACCEPT)).await {
            Ok(response) => response,
            Err(f) => {
                first_failure.get_or_insert(f);
                continue;
            }
        };
        let status = response.status();
        if status != http::StatusCode::OK {
            let failure = if status == http::StatusCode::NOT_FOUND {
                Failure::new(
                    PullErrorKind::NotFound,
                    format!("content at {url} not found: not found"),
                )
            } else {
                Failure::new(
                    status_kind(status),
                    unexpected_status(&http::Method::GET, &url, status),
                )
            };
            first_failure.get_or_insert(failure);
            continue;
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = read_body(response, manifest::MAX_MANIFEST_SIZE).await?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(Failure::new(
                PullErrorKind::DigestMismatch,
                format!("unexpected commit digest {actual}, expected {digest}: failed precondition"),
            ));
        }
        let document =
            manifest::parse(&bytes, &content_type).map_err(|e| Failure::new(PullErrorKind::Invalid, e))?;
        return Ok((bytes.to_vec(), document));
    }
    Err(first_failure.expect("at least one endpoint"))
}

fn status_kind(status: http::StatusCode) -> PullErrorKind {
    match status.as_u16() {
        401 | 403 => PullErrorKind::Unauthorized,
        404 => PullErrorKind::NotFound,
        408 | 429 | 500..=599 => PullErrorKind::Unavailable,
        _ => PullErrorKind::Invalid,
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn blob_size(store: &Store, digest: &str) -> Result<u64, Failure> {
    let path = store.blob_path(digest);
    Ok(std::fs::metadata(&path).map_err(Error::io(&path))?.len())
}
