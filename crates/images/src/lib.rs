//! The node's image store, shared by the node agent and `rkube image import|ls` (which work
//! whether or not the node runs):
//!
//! ```text
//! <root>/blobs/sha256/<hex>    content-addressed blobs (manifests, configs, layer archives),
//!                              written only after their digest was verified
//! <root>/layers/sha256/<hex>   each layer unpacked by its diffID, whiteouts in overlayfs form,
//!                              stacked as overlay lower dirs by the runtime
//! <root>/images.json           names → images (replaced atomically)
//! <root>/lock                  writers hold an exclusive flock
//! ```
//!
//! `reference` parses image names as Docker does, `archive` imports OCI layouts and
//! docker-archive tars, `registry` pulls from OCI distribution registries, `unpack` turns layer
//! tars into directories.

mod archive;
mod blobs;
pub mod reference;
pub mod registry;
mod unpack;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub use reference::Reference;
pub use registry::{PullError, PullErrorKind, PullOptions};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {0}")]
    Reference(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Format(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        what: String,
        expected: String,
        actual: String,
    },
}

impl Error {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// One stored image.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Image {
    /// Digest of the image's manifest (what `imageID`s and `@sha256:` references name). A pull
    /// records the digest the reference resolved to, an image index's when the registry served
    /// one (as containerd does), so `name@<digest>` resolves to the stored image.
    pub manifest: String,
    /// Digest of the image config (`docker images`' IMAGE ID).
    pub config: String,
    pub layers: Vec<Layer>,
    /// Bytes of the stored blobs (config and layers).
    pub size: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the blob as stored (compressed or not).
    pub digest: String,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    pub diff_id: String,
    pub size: u64,
}

/// An image store rooted in a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating) the store under `root`.
    pub fn open(root: &Path) -> Result<Store, Error> {
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(Error::io(&path))?;
        }
        Ok(Store {
            root: root.to_owned(),
        })
    }

    /// Every stored name and its image, sorted by name.
    pub fn list(&self) -> Result<BTreeMap<String, Image>, Error> {
        let path = self.root.join("images.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io(&path)(e)),
        }
    }

    /// The image a reference names, if stored (by name and tag, or by digest).
    pub fn resolve(&self, reference: &Reference) -> Result<Option<Image>, Error> {
        let images = self.list()?;
        if let Some(digest) = &reference.digest {
            return Ok(images.into_values().find(|i| &i.manifest == digest));
        }
        Ok(images.get(&reference.to_string()).cloned())
    }

    /// Where a layer is unpacked (its directory exists once the image is stored).
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(diff_id.replacen(':', "/", 1))
    }

    /// Imports an OCI layout or docker-archive tar; returns the names it stored.
    pub fn import(&self, archive: &Path) -> Result<Vec<String>, Error> {
        let _lock = self.lock()?;
        let staged = tempfile::tempdir_in(self.root.join("tmp")).map_err(Error::io(&self.root))?;
        let found = archive::read(archive, staged.path(), self)?;
        let mut names = Vec::new();
        let mut images = self.list()?;
        for (name, image) in found {
            for layer in &image.layers {
                unpack::layer(self, layer)?;
            }
            images.insert(name.clone(), image);
            names.push(name);
        }
        self.save(&images)?;
        Ok(names)
    }

    /// Removes names; content no remaining image uses (manifest and config blobs, layer blobs
    /// and their unpacked directories) goes with them. Returns the bytes of blobs removed.
    /// Only what the removed images referenced is considered, so a pull in progress (its blobs
    /// stored, its name not yet) loses nothing.
    pub fn remove(&self, names: &[String]) -> Result<u64, Error> {
        let _lock = self.lock()?;
        let mut images = self.list()?;
        let removed: Vec<Image> = names.iter().filter_map(|n| images.remove(n)).collect();
        self.save(&images)?;
        let kept: std::collections::HashSet<&str> = images
            .values()
            .flat_map(|i| {
                [i.manifest.as_str(), i.config.as_str()].into_iter().chain(
                    i.layers
                        .iter()
                        .flat_map(|l| [l.digest.as_str(), l.diff_id.as_str()]),
                )
            })
            .collect();
        let mut freed = 0;
        for image in &removed {
            let blobs = [image.manifest.as_str(), image.config.as_str()]
                .into_iter()
                .chain(image.layers.iter().map(|l| l.digest.as_str()));
            for digest in blobs.filter(|d| !kept.contains(d)) {
                let path = self.blob_path(digest);
                if let Ok(meta) = std::fs::metadata(&path) {
                    std::fs::remove_file(&path).map_err(Error::io(&path))?;
                    freed += meta.len();
                }
            }
            for layer in image.layers.iter().filter(|l| !kept.contains(l.diff_id.as_str())) {
                let dir = self.layer_dir(&layer.diff_id);
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&dir)(e)),
                }
            }
        }
        Ok(freed)
    }

    fn save(&self, images: &BTreeMap<String, Image>) -> Result<(), Error> {
        let path = self.root.join("images.json");
        let tmp = self.root.join("tmp/images.json");
        let bytes = serde_json::to_vec_pretty(images).expect("images serialize");
        std::fs::write(&tmp, bytes).map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io(&path))
    }

    /// The writers' lock: one import (or pull) at a time per store, across processes.
    fn lock(&self) -> Result<Flock<File>, Error> {
        let path = self.root.join("lock");
        let file = File::create(&path).map_err(Error::io(&path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::io(&path)(e.into()))
    }

    /// The image's config blob (what the runtime reads the default command, env and user
    /// from).
    pub fn config_blob(&self, image: &Image) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(&image.config);
        std::fs::read(&path).map_err(Error::io(&path))
    }

    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs").join(digest.replacen(':', "/", 1))
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

#[cfg(test)]
mod tests;
