use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// A layer tar of (path, contents) files; a path ending in `/` is a directory.
fn layer(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if path.ends_with('/') {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, path, std::io::empty()).unwrap();
        } else {
            header.set_mode(0o644);
            header.set_size(contents.len() as u64);
            builder
                .append_data(&mut header, path, contents.as_bytes())
                .unwrap();
        }
    }
    builder.into_inner().unwrap()
}

/// An OCI layout directory holding one image of the given layers (gzipped), named `name`.
fn oci_layout(dir: &Path, name: &str, layers: &[Vec<u8>]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |data: &[u8]| {
        let digest = sha(data);
        std::fs::write(dir.join("blobs/sha256").join(&digest[7..]), data).unwrap();
        digest
    };
    let mut descriptors = Vec::new();
    for tar in layers {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, tar).unwrap();
        let gz = gz.finish().unwrap();
        descriptors.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(&gz), "size": gz.len()}));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = serde_json::to_vec(
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    )
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "config": {"digest": config_digest, "size": config.len()}, "layers": descriptors})).unwrap();
    let manifest_digest = put(&manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest.len(), "annotations": {"io.containerd.image.name": name}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

#[test]
fn imports_unpack_layers_with_overlay_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let base = layer(&[("a/", ""), ("a/x", "x"), ("a/y", "y"), ("b/", ""), ("b/old", "o")]);
    let top = layer(&[
        ("a/.wh.x", ""),
        ("b/.wh..wh..opq", ""),
        ("b/new", "n"),
        ("c", "c"),
    ]);
    oci_layout(
        &tmp.path().join("layout"),
        "example.com/app:v1",
        &[base.clone(), top.clone()],
    );
    let store = Store::open(&tmp.path().join("store")).unwrap();
    assert_eq!(
        store.import(&tmp.path().join("layout")).unwrap(),
        ["example.com/app:v1"]
    );

    let image = store
        .resolve(&Reference::parse("example.com/app:v1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[1].diff_id, sha(&top));
    let lower = store.layer_dir(&image.layers[0].diff_id);
    assert_eq!(std::fs::read_to_string(lower.join("a/x")).unwrap(), "x");
    let upper = store.layer_dir(&image.layers[1].diff_id);
    assert_eq!(std::fs::read_to_string(upper.join("c")).unwrap(), "c");
    assert!(!upper.join("a/.wh.x").exists());
    if nix::unistd::geteuid().is_root() {
        // overlayfs's whiteout: a 0:0 character device; an opaque directory's xattr.
        let whiteout = std::fs::symlink_metadata(upper.join("a/x")).unwrap();
        assert!(whiteout.file_type().is_char_device());
        assert_eq!(
            xattr::get(upper.join("b"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
    }
    // By digest too; an unknown name is None.
    let by_digest = Reference::parse(&format!("example.com/app@{}", image.manifest)).unwrap();
    assert_eq!(store.resolve(&by_digest).unwrap(), Some(image));
    assert_eq!(
        store
            .resolve(&Reference::parse("example.com/app:v2").unwrap())
            .unwrap(),
        None
    );
}

#[test]
fn corrupt_blobs_and_escaping_paths_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    oci_layout(&layout, "busybox", &[layer(&[("f", "1")])]);
    // Flip a byte of every blob: the import must fail on a digest, storing nothing.
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let err = store.import(&layout).unwrap_err().to_string();
    assert!(
        err.contains("digest mismatch") || err.contains("JSON") || err.contains("expected"),
        "{err}"
    );
    assert!(store.list().unwrap().is_empty());

    // A whiteout whose path climbs out of the layer (tar's builder refuses to write one, so
    // the header is made by hand).
    let mut header = tar::Header::new_gnu();
    let name = b"../.wh.escape";
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_mode(0o644);
    header.set_size(0);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&header, std::io::empty()).unwrap();
    let evil = tmp.path().join("evil");
    oci_layout(&evil, "evil", &[builder.into_inner().unwrap()]);
    let err = store.import(&evil).unwrap_err().to_string();
    assert!(err.contains("leaves the layer"), "{err}");
}

#[test]
fn docker_archives_keep_their_repo_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    std::fs::create_dir_all(dir.join("l1")).unwrap();
    let tar = layer(&[("hello", "world")]);
    std::fs::write(dir.join("l1/layer.tar"), &tar).unwrap();
    let config = serde_json::to_vec(&json!({"rootfs": {"type": "layers", "diff_ids": [sha(&tar)]}})).unwrap();
    std::fs::write(dir.join("config.json"), &config).unwrap();
    let manifest = json!([{"Config": "config.json", "RepoTags": ["busybox:1.36", "127.0.0.1:5000/tools/bb:x"], "Layers": ["l1/layer.tar"]}]);
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let names = store.import(&dir).unwrap();
    assert_eq!(
        names,
        ["docker.io/library/busybox:1.36", "127.0.0.1:5000/tools/bb:x"]
    );
    let image = store
        .resolve(&Reference::parse("busybox:1.36").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(image.config, sha(&config));
    assert_eq!(
        std::fs::read_to_string(store.layer_dir(&sha(&tar)).join("hello")).unwrap(),
        "world"
    );
}

#[test]
fn removing_an_image_keeps_content_other_images_share() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = layer(&[("shared", "s")]);
    let own = layer(&[("own", "o")]);
    oci_layout(
        &tmp.path().join("one"),
        "example.com/one:v1",
        &[shared.clone(), own.clone()],
    );
    oci_layout(
        &tmp.path().join("two"),
        "example.com/two:v1",
        std::slice::from_ref(&shared),
    );
    let store = Store::open(&tmp.path().join("store")).unwrap();
    store.import(&tmp.path().join("one")).unwrap();
    store.import(&tmp.path().join("two")).unwrap();
    let one = store
        .resolve(&Reference::parse("example.com/one:v1").unwrap())
        .unwrap()
        .unwrap();
    let freed = store.remove(&["example.com/one:v1".to_owned()]).unwrap();
    assert!(freed > 0);
    assert!(store.list().unwrap().keys().eq(["example.com/two:v1"]));
    assert!(!store.layer_dir(&sha(&own)).exists());
    assert!(!store.blob_path(&one.config).exists());
    assert!(store.layer_dir(&sha(&shared)).join("shared").exists());
    // Unknown names are nothing to remove.
    assert_eq!(store.remove(&["example.com/nope:v1".to_owned()]).unwrap(), 0);
}
