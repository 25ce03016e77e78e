//! Importing images from an archive: an OCI image layout (`index.json` + `blobs/`, as
//! `skopeo copy … oci-archive:` or `docker buildx … type=oci` write it) or a docker-archive
//! (`manifest.json` with `RepoTags`, as `docker save` and `skopeo copy … docker-archive:` write
//! it), either as a tar (optionally gzipped) or as a directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Error, Image, Layer, Reference, Store};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The images in `archive`, their blobs moved into `store`; `staging` is a scratch directory on
/// the store's filesystem.
pub fn read(archive: &Path, staging: &Path, store: &Store) -> Result<Vec<(String, Image)>, Error> {
    let dir = if archive.is_dir() {
        archive.to_owned()
    } else {
        extract(archive, staging)?;
        staging.to_owned()
    };
    let images = if dir.join("index.json").exists() {
        oci_layout(&dir, store)?
    } else if dir.join("manifest.json").exists() {
        docker_archive(&dir, store)?
    } else {
        return Err(Error::Format(format!(
            "{} is neither an OCI image layout (index.json) nor a docker archive (manifest.json)",
            archive.display()
        )));
    };
    if images.is_empty() {
        return Err(Error::Format(format!(
            "{} holds no named image",
            archive.display()
        )));
    }
    Ok(images)
}

fn extract(archive: &Path, into: &Path) -> Result<(), Error> {
    let mut file = std::fs::File::open(archive).map_err(Error::io(archive))?;
    let mut magic = [0u8; 2];
    let gzipped = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(archive).map_err(Error::io(archive))?;
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    tar::Archive::new(reader)
        .unpack(into)
        .map_err(|e| Error::Format(format!("{}: not a readable tar archive: {e}", archive.display())))
}

fn json_file(path: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
}

fn blob_in(dir: &Path, digest: &str) -> Result<PathBuf, Error> {
    let (algorithm, hex) = digest
        .split_once(':')
        .filter(|(a, h)| *a == "sha256" && h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::Format(format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs").join(algorithm).join(hex))
}

/// The Go architecture name of this machine (`amd64`, `arm64`), as image platforms say it.
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn oci_layout(dir: &Path, store: &Store) -> Result<Vec<(String, Image)>, Error> {
    let index = json_file(&dir.join("index.json"))?;
    let mut images = Vec::new();
    for descriptor in index["manifests"].as_array().into_iter().flatten() {
        let annotations = &descriptor["annotations"];
        // containerd's annotation is a full name; the OCI one is often a bare tag (`latest`),
        // which names no repository: nothing to call the image by.
        let name = annotations["io.containerd.image.name"].as_str().or_else(|| {
            annotations["org.opencontainers.image.ref.name"]
                .as_str()
                .filter(|n| n.contains(':') || n.contains('/'))
        });
        let Some(name) = name else {
            tracing::warn!("skipping an unnamed image in {}", dir.display());
            continue;
        };
        let reference = Reference::parse(name)?;
        let manifest_digest = select_manifest(dir, descriptor)?;
        let image = store_image(dir, store, &manifest_digest)?;
        images.push((reference.to_string(), image));
    }
    Ok(images)
}

/// The manifest a descriptor leads to on this platform (through an image index if needed).
fn select_manifest(dir: &Path, descriptor: &Value) -> Result<String, Error> {
    let digest = descriptor["digest"].as_str().unwrap_or_default().to_owned();
    let media_type = descriptor["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
    if media_type != OCI_INDEX && media_type != DOCKER_MANIFEST_LIST {
        return Ok(digest);
    }
    let index = json_file(&blob_in(dir, &digest)?)?;
    let chosen = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == go_arch())
        .ok_or_else(|| Error::Format(format!("no linux/{} image in index {digest}", go_arch())))?;
    select_manifest(dir, chosen)
}

/// Moves an image's manifest, config and layers into the store (each verified by digest).
fn store_image(dir: &Path, store: &Store, manifest_digest: &str) -> Result<Image, Error> {
    let manifest_path = blob_in(dir, manifest_digest)?;
    let manifest = json_file(&manifest_path)?;
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let config_path = blob_in(dir, config_digest)?;
    let config = json_file(&config_path)?;
    let diff_ids = diff_ids(&config)?;
    let descriptors = manifest["layers"].as_array().cloned().unwrap_or_default();
    if descriptors.len() != diff_ids.len() {
        return Err(Error::Format(format!(
            "manifest {manifest_digest} has {} layers but its config {} diff IDs",
            descriptors.len(),
            diff_ids.len()
        )));
    }
    let (config_digest, config_size) = store.put_file(&config_path, Some(config_digest), "image config")?;
    let mut layers = Vec::new();
    let mut size = config_size;
    for (descriptor, diff_id) in descriptors.iter().zip(diff_ids) {
        let digest = descriptor["digest"].as_str().unwrap_or_default();
        let (digest, layer_size) = store.put_file(&blob_in(dir, digest)?, Some(digest), "layer")?;
        size += layer_size;
        layers.push(Layer {
            digest,
            diff_id,
            size: layer_size,
        });
    }
    let (manifest, _) = store.put_file(&manifest_path, Some(manifest_digest), "manifest")?;
    Ok(Image {
        manifest,
        config: config_digest,
        layers,
        size,
    })
}

pub(crate) fn diff_ids(config: &Value) -> Result<Vec<String>, Error> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| Error::Format("image config has no rootfs.diff_ids".into()))?
        .iter()
        .map(|d| {
            d.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Format("a diff ID is not a string".into()))
        })
        .collect()
}

fn docker_archive(dir: &Path, store: &Store) -> Result<Vec<(String, Image)>, Error> {
    let manifest = json_file(&dir.join("manifest.json"))?;
    let mut images = Vec::new();
    for entry in manifest.as_array().into_iter().flatten() {
        let tags: Vec<&str> = entry["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if tags.is_empty() {
            tracing::warn!("skipping an untagged image in {}", dir.display());
            continue;
        }
        let config_path = dir.join(entry["Config"].as_str().unwrap_or_default());
        let config = json_file(&config_path)?;
        let diff_ids = diff_ids(&config)?;
        let layer_paths: Vec<&str> = entry["Layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if layer_paths.len() != diff_ids.len() {
            return Err(Error::Format(format!(
                "{} lists {} layers but its config {} diff IDs",
                entry["Config"],
                layer_paths.len(),
                diff_ids.len()
            )));
        }
        let (config_digest, config_size) = store.put_file(&config_path, None, "image config")?;
        let mut layers = Vec::new();
        let mut descriptors = Vec::new();
        let mut size = config_size;
        for (path, diff_id) in layer_paths.iter().zip(diff_ids) {
            let path = dir.join(path);
            let gzipped = is_gzip(&path);
            let (digest, layer_size) = store.put_file(&path, None, "layer")?;
            size += layer_size;
            let media_type = if gzipped {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": layer_size}));
            layers.push(Layer {
                digest,
                diff_id,
                size: layer_size,
            });
        }
        // docker save has no manifest: write the OCI one a registry would serve.
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": descriptors,
        });
        let manifest_digest = store.put_bytes(&serde_json::to_vec(&manifest).expect("JSON"))?;
        let image = Image {
            manifest: manifest_digest,
            config: config_digest,
            layers,
            size,
        };
        for tag in tags {
            images.push((Reference::parse(tag)?.to_string(), image.clone()));
        }
    }
    Ok(images)
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}
