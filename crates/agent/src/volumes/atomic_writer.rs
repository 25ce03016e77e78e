//! The kubelet's AtomicWriter: a volume's files are written into a fresh timestamped directory
//! (`..2026_11_23_05_00_00.123456789`), a `..data` symlink is switched to it by one rename, and
//! the user-visible names are symlinks into `..data` (`key` → `..data/key`). A reader thus sees
//! the whole old payload or the whole new one, never a mix, and a changed payload replaces the
//! old one in a single step (configMap, secret, downwardAPI and projected volumes use it).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path};

/// The symlink naming the current payload directory.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
    /// Owner to set (the projected token's `fsUser`), if any.
    pub uid: Option<u32>,
    /// Group to set (`fsGroup`), if any.
    pub gid: Option<u32>,
}

impl File {
    pub fn new(data: impl Into<Vec<u8>>, mode: u32) -> File {
        File {
            data: data.into(),
            mode,
            uid: None,
            gid: None,
        }
    }
}

/// Relative path → file.
pub type Payload = BTreeMap<String, File>;

/// Upstream's path checks: relative, no `..` element, not starting with `..`.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".into());
    }
    if path.len() > 4096 {
        return Err(format!(
            "invalid path: must be less than or equal to 4096 characters: {path}"
        ));
    }
    if Path::new(path).is_absolute() {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    if Path::new(path).components().any(|c| c == Component::ParentDir) {
        return Err(format!("invalid path: must not contain '..': {path}"));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(())
}

fn first_component(path: &str) -> &str {
    path.split('/')
        .find(|p| !p.is_empty() && *p != ".")
        .unwrap_or(path)
}

fn clean(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes `payload` into `target` (which must exist). Returns whether anything changed.
pub fn write(target: &Path, payload: &Payload) -> io::Result<bool> {
    let mut cleaned = Payload::new();
    for (path, file) in payload {
        validate_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        cleaned.insert(clean(path), file.clone());
    }
    let data_link = target.join(DATA_DIR);
    let old_dir = fs::read_link(&data_link)
        .ok()
        .map(|name| target.join(name))
        .filter(|d| d.is_dir());
    let old_paths = match &old_dir {
        Some(dir) => {
            let old = read_payload(dir)?;
            if same(&old, &cleaned) {
                return Ok(false);
            }
            old.into_keys().collect()
        }
        None => BTreeSet::new(),
    };
    let new_dir = new_timestamped_dir(target)?;
    if let Err(err) = write_payload(&new_dir, &cleaned) {
        let _ = fs::remove_dir_all(&new_dir);
        return Err(err);
    }
    // The user-visible names: `top` → `..data/top` for each first path component.
    let tops: BTreeSet<&str> = cleaned.keys().map(|p| first_component(p)).collect();
    for top in &tops {
        let visible = target.join(top);
        if fs::symlink_metadata(&visible).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(top), &visible)?;
        }
    }
    // The switch: `..data_tmp` → new dir, renamed over `..data`.
    let tmp_link = target.join(DATA_DIR_TMP);
    let _ = fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(new_dir.file_name().expect("a named dir"), &tmp_link)?;
    fs::rename(&tmp_link, &data_link)?;
    // What the old payload had at its top level and the new one lacks.
    for old in &old_paths {
        let top = first_component(old);
        if !tops.contains(top) {
            let _ = fs::remove_file(target.join(top));
        }
    }
    if let Some(old) = old_dir {
        fs::remove_dir_all(old)?;
    }
    Ok(true)
}

fn same(old: &Payload, new: &Payload) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|((op, of), (np, nf))| {
            op == np
                && of.data == nf.data
                && of.mode == nf.mode
                && nf.uid.is_none_or(|u| of.uid == Some(u))
                && nf.gid.is_none_or(|g| of.gid == Some(g))
        })
}

fn new_timestamped_dir(target: &Path) -> io::Result<std::path::PathBuf> {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("..%Y_%m_%d_%H_%M_%S.").to_string();
    for attempt in 0u32.. {
        let name = format!("{stamp}{}", now.subsec_nanosecond() as u32 + attempt);
        let dir = target.join(name);
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

fn write_payload(dir: &Path, payload: &Payload) -> io::Result<()> {
    use std::io::Write as _;
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&full)?;
        out.write_all(&file.data)?;
        // The umask may have cut bits off.
        out.set_permissions(fs::Permissions::from_mode(file.mode))?;
        if file.uid.is_some() || file.gid.is_some() {
            std::os::unix::fs::fchown(&out, file.uid, file.gid)?;
        }
    }
    Ok(())
}

/// What a payload directory holds (regular files below it, by relative path).
fn read_payload(dir: &Path) -> io::Result<Payload> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = Payload::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                out.insert(
                    rel,
                    File {
                        data: fs::read(entry.path())?,
                        mode: meta.mode() & 0o7777,
                        uid: Some(meta.uid()),
                        gid: Some(meta.gid()),
                    },
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str, u32)]) -> Payload {
        files
            .iter()
            .map(|(p, d, m)| ((*p).to_owned(), File::new(d.as_bytes(), *m)))
            .collect()
    }

    fn entries(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn writes_swaps_and_cleans_up() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path();
        let first = payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)]);
        assert!(write(target, &first).unwrap());
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(target.join("sub/b")).unwrap(), "2");
        assert_eq!(fs::read_link(target.join("a")).unwrap(), Path::new("..data/a"));
        assert_eq!(fs::metadata(target.join("sub/b")).unwrap().mode() & 0o777, 0o400);
        let old = fs::read_link(target.join(DATA_DIR)).unwrap();
        assert!(old.to_string_lossy().starts_with("..20"), "{old:?}");
        // The same payload again: nothing happens.
        assert!(!write(target, &first).unwrap());
        assert_eq!(fs::read_link(target.join(DATA_DIR)).unwrap(), old);
        // A changed payload: one new dir, `sub` gone, `c` new, the old dir removed.
        let second = payload(&[("a", "1 changed", 0o644), ("c", "3", 0o644)]);
        assert!(write(target, &second).unwrap());
        assert_eq!(fs::read_to_string(target.join("a")).unwrap(), "1 changed");
        assert_eq!(fs::read_to_string(target.join("c")).unwrap(), "3");
        let new = fs::read_link(target.join(DATA_DIR)).unwrap();
        let expected: BTreeSet<String> = ["a", "c", DATA_DIR, &new.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(entries(target), expected);
        // A mode change alone is a change too.
        assert!(write(target, &payload(&[("a", "1 changed", 0o600), ("c", "3", 0o644)])).unwrap());
    }

    #[test]
    fn paths_are_checked_as_upstream() {
        assert!(validate_path("a/b").is_ok());
        assert_eq!(
            validate_path("/a").unwrap_err(),
            "invalid path: must be relative path: /a"
        );
        assert_eq!(
            validate_path("a/../b").unwrap_err(),
            "invalid path: must not contain '..': a/../b"
        );
        assert_eq!(
            validate_path("..a").unwrap_err(),
            "invalid path: must not start with '..': ..a"
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(write(dir.path(), &payload(&[("../x", "1", 0o644)])).is_err());
        assert_eq!(entries(dir.path()), BTreeSet::new());
    }
}
