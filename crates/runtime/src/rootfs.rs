//! A container's root filesystem: the image's unpacked layers as overlayfs lower dirs (top
//! layer first) under a per-container upper and work dir.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::Error;

/// The kernel takes mount options up to a page; longer lowerdir lists fail.
const MAX_OPTIONS: usize = 4095;

/// Mounts the overlay at `target` (created if missing). `layers` bottom first; `container_dir`
/// gets `upper/` and `work/` (an image without layers gets an empty lower dir there too).
pub fn mount(layers: &[PathBuf], container_dir: &Path, target: &Path) -> Result<(), Error> {
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    let mut lowers: Vec<PathBuf> = layers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        lowers.push(container_dir.join("empty"));
    }
    for dir in lowers.iter().chain([&upper, &work, &target.to_path_buf()]) {
        if dir.starts_with(container_dir) {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        } else if !dir.is_dir() {
            return Err(Error::Invalid(format!(
                "layer directory {} is missing",
                dir.display()
            )));
        }
    }
    let lowerdir: Vec<String> = lowers.iter().map(|p| escape(p)).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        escape(&upper),
        escape(&work)
    );
    if options.len() > MAX_OPTIONS {
        return Err(Error::Mount(format!(
            "overlay options for {} layers exceed a page",
            layers.len()
        )));
    }
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| Error::Mount(format!("mount overlay at {}: {e}", target.display())))
}

/// Commas and colons separate overlay options and lower dirs: escape them in paths.
fn escape(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Detaches whatever is mounted at `target`; nothing mounted is fine.
pub fn unmount(target: &Path) -> Result<(), Error> {
    match nix::mount::umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(Error::Mount(format!("unmount {}: {e}", target.display()))),
    }
}
