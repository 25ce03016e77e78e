//! A layer archive unpacked into its own directory, ready to be an overlayfs lower dir: the OCI
//! whiteouts become overlayfs's — `.wh.<name>` a 0:0 character device named `<name>`,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute on its directory — as containerd's
//! overlay snapshotter does. The uncompressed stream must hash to the layer's diffID, and the
//! directory appears (by rename) only once it is complete.

use std::io::Read;
use std::path::{Component, Path};

use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use sha2::{Digest, Sha256};

use crate::{Error, Layer, Store};

const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_PREFIX: &str = ".wh.";

/// Unpacks `layer` unless it already is.
pub fn layer(store: &Store, layer: &Layer) -> Result<(), Error> {
    let target = store.layer_dir(&layer.diff_id);
    if target.exists() {
        return Ok(());
    }
    let blob = store.blob_path(&layer.digest);
    let file = std::fs::File::open(&blob).map_err(Error::io(&blob))?;
    let mut file = std::io::BufReader::new(file);
    let mut magic = [0u8; 4];
    let stream: Box<dyn Read> = {
        use std::io::BufRead;
        let head = file.fill_buf().map_err(Error::io(&blob))?;
        magic[..head.len().min(4)].copy_from_slice(&head[..head.len().min(4)]);
        match magic {
            [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(file)),
            [0x28, 0xb5, 0x2f, 0xfd] => {
                return Err(Error::Format(format!(
                    "layer {} is zstd-compressed, which rkube does not read yet",
                    layer.digest
                )));
            }
            _ => Box::new(file),
        }
    };
    let staging = tempfile::tempdir_in(store.tmp_dir()).map_err(Error::io(&store.tmp_dir()))?;
    let mut hashing = Hashing {
        inner: stream,
        hasher: Sha256::new(),
    };
    extract(&mut hashing, staging.path()).map_err(|e| match e {
        // tar's errors wrap their causes; show the chain.
        Error::Io { source, .. } => {
            let mut text = format!("layer {}: {source}", layer.digest);
            let mut cause = std::error::Error::source(&source);
            while let Some(inner) = cause {
                text.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            Error::Format(text)
        }
        other => other,
    })?;
    // tar stops at its end marker; the digest covers the whole stream.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(Error::io(&blob))?;
    let actual = format!("sha256:{:x}", hashing.hasher.finalize());
    if actual != layer.diff_id {
        return Err(Error::Digest {
            what: format!("layer {} (uncompressed)", layer.digest),
            expected: layer.diff_id.clone(),
            actual,
        });
    }
    let dir = staging.keep();
    std::fs::rename(&dir, &target).map_err(Error::io(&target))
}

fn extract(stream: &mut dyn Read, into: &Path) -> Result<(), Error> {
    let io = |e: std::io::Error| Error::io(into)(e);
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    // Ownership needs root (the agent is root; unit tests may not be).
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(io)?;
        let path = entry.path().map_err(io)?.into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name == OPAQUE || name.starts_with(WHITEOUT_PREFIX) {
            let parent = confined(into, path.parent().unwrap_or(Path::new("")))?;
            std::fs::create_dir_all(&parent).map_err(io)?;
            if name == OPAQUE {
                xattr::set(&parent, "trusted.overlay.opaque", b"y").map_err(io)?;
            } else {
                let hidden = parent.join(&name[WHITEOUT_PREFIX.len()..]);
                let _ = std::fs::remove_file(&hidden);
                mknod(&hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| io(e.into()))?;
            }
            continue;
        }
        entry.unpack_in(into).map_err(io)?;
    }
    Ok(())
}

/// `base/relative`, refusing paths that leave `base`.
fn confined(base: &Path, relative: &Path) -> Result<std::path::PathBuf, Error> {
    let mut out = base.to_owned();
    for component in relative.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => {
                return Err(Error::Format(format!(
                    "layer entry {} leaves the layer",
                    relative.display()
                )));
            }
        }
    }
    Ok(out)
}

struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
