//! `rkube image import|pull|ls` end to end on the images `scripts/build-test-images` builds from
//! Debian's busybox-static (scripts/test builds them before the tests run); pulls come from a
//! local docker-registry (testkit).

use std::process::{Command, Output};

fn rkube(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args(args)
        .output()
        .unwrap()
}

use testkit::test_image;

#[test]
fn images_import_from_oci_and_docker_archives_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let oci = test_image("busybox-oci.tar");
    let out = rkube(&["image", "import", "--data-dir", data_dir, oci.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "imported docker.io/library/busybox:latest\n"
    );
    let listed = rkube(&["image", "ls", "--data-dir", data_dir]);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"], "{text}");
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(&rows[1][..2], ["docker.io/library/busybox", "latest"], "{text}");
    // The layer is unpacked: busybox and its applets.
    let layers = dir.path().join("agent/images/layers/sha256");
    let layer = std::fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(layer.join("bin/busybox").is_file());
    assert!(
        std::fs::symlink_metadata(layer.join("bin/sh"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // The docker-archive form of the same image (same config) re-tags it.
    let docker = test_image("busybox-docker.tar");
    let out = rkube(&[
        "image",
        "import",
        "--data-dir",
        data_dir,
        docker.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let again = String::from_utf8_lossy(&rkube(&["image", "ls", "--data-dir", data_dir]).stdout).into_owned();
    assert_eq!(again.lines().count(), 2, "{again}");
    assert_eq!(
        again.lines().nth(1).unwrap().split_whitespace().nth(2),
        rows[1].get(2).copied(),
        "same image ID: {again}"
    );

    // Not an archive: one readable line.
    let bogus = dir.path().join("bogus.tar");
    std::fs::write(&bogus, b"not a tar").unwrap();
    let out = rkube(&["image", "import", "--data-dir", data_dir, bogus.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("rkube: error: cannot import"), "{stderr}");
}

#[test]
fn images_pull_through_a_mirror_and_list() {
    let registry = testkit::registry::DockerRegistry::start().unwrap();
    let oci = test_image("busybox-oci.tar");
    registry
        .push(&format!("oci-archive:{}", oci.display()), "library/busybox:1.36")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let config = dir.path().join("registries.yaml");
    std::fs::write(
        &config,
        format!(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
            registry.host()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = rkube(&[
        "image",
        "pull",
        "--data-dir",
        data_dir,
        "--registry-config",
        config,
        "busybox:1.36",
    ]);
    assert!(out.status.success(), "{out:?}");
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");
    let listed =
        String::from_utf8_lossy(&rkube(&["image", "ls", "--data-dir", data_dir]).stdout).into_owned();
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert_eq!(&rows[1][..2], ["docker.io/library/busybox", "1.36"], "{listed}");

    // The same image by the digest printed.
    let by_digest = format!("{}/library/busybox@{digest}", registry.host());
    let out = rkube(&["image", "pull", "--data-dir", data_dir, &by_digest]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);

    // A missing tag: one line, containerd's words.
    let missing = format!("{}/library/busybox:nope", registry.host());
    let out = rkube(&["image", "pull", "--data-dir", data_dir, &missing]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "rkube: error: failed to pull and unpack image \"{missing}\": failed to resolve reference \"{missing}\": {missing}: not found"
        )
    );
}
