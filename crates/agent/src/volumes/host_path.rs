//! hostPath's `type` checks, with upstream's wording (`pkg/volume/hostpath`): `DirectoryOrCreate`
//! and `FileOrCreate` create what is missing (a directory 0755 with its parents; a file 0644 in
//! an existing directory), the others only check.

use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Checks (and, for the `…OrCreate` types, makes) `path` for a hostPath volume of `kind`.
pub fn check_type(path: &Path, kind: Option<&str>) -> Result<(), String> {
    let shown = path.display();
    let metadata = fs::metadata(path).ok();
    let missing = || format!("hostPath type check failed: {shown} does not exist");
    let kind = kind.unwrap_or("");
    let file_type = metadata.as_ref().map(fs::Metadata::file_type);
    let expect = |ok: fn(&fs::FileType) -> bool, what: &str| match &file_type {
        None => Err(missing()),
        Some(t) if ok(t) => Ok(()),
        Some(_) => Err(format!("hostPath type check failed: {shown} is not a {what}")),
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if file_type.is_none() => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| e.to_string()),
        "DirectoryOrCreate" | "Directory" => expect(fs::FileType::is_dir, "directory"),
        "FileOrCreate" if file_type.is_none() => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        "FileOrCreate" | "File" => expect(fs::FileType::is_file, "file"),
        "Socket" => expect(fs::FileType::is_socket, "socket file"),
        "CharDevice" => expect(fs::FileType::is_char_device, "character device"),
        "BlockDevice" => expect(fs::FileType::is_block_device, "block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_check_and_create_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let missing = d.join("missing");
        assert_eq!(
            check_type(&missing, Some("Directory")).unwrap_err(),
            format!("hostPath type check failed: {} does not exist", missing.display())
        );
        assert!(check_type(&missing, None).is_ok());
        check_type(&d.join("made/deep"), Some("DirectoryOrCreate")).unwrap();
        assert!(d.join("made/deep").is_dir());
        check_type(&d.join("f"), Some("FileOrCreate")).unwrap();
        assert!(d.join("f").is_file());
        assert!(check_type(&d.join("nodir/f"), Some("FileOrCreate")).is_err());
        assert_eq!(
            check_type(&d.join("f"), Some("Directory")).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                d.join("f").display()
            )
        );
        assert_eq!(
            check_type(d, Some("File")).unwrap_err(),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        assert_eq!(
            check_type(d, Some("FileOrCreate")).unwrap_err(),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        assert!(check_type(Path::new("/dev/null"), Some("CharDevice")).is_ok());
        assert_eq!(
            check_type(Path::new("/dev/null"), Some("BlockDevice")).unwrap_err(),
            "hostPath type check failed: /dev/null is not a block device"
        );
        assert_eq!(
            check_type(&d.join("f"), Some("Socket")).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a socket file",
                d.join("f").display()
            )
        );
        let socket = d.join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        assert!(check_type(&socket, Some("Socket")).is_ok());
        assert_eq!(
            check_type(d, Some("Nope")).unwrap_err(),
            "Nope is an invalid volume type"
        );
    }
}
