//! `Store::pull` against real registries: Debian's `docker-registry` (anonymous and htpasswd)
//! holding the busybox test image pushed by `skopeo`, and an in-test registry for Bearer tokens,
//! indexes, redirects and corrupt content (`fake_registry`).

mod fake_registry;

use base64::Engine;
use fake_registry::{FakeRegistry, sha};
use images::registry::{Keyring, RegistriesConfig};
use images::{PullErrorKind, PullOptions, Reference, Store};
use serde_json::json;
use testkit::registry::DockerRegistry;

use testkit::test_image;

fn oci_source() -> String {
    format!("oci-archive:{}", test_image("busybox-oci.tar").display())
}

fn reference(text: &str) -> Reference {
    Reference::parse(text).unwrap()
}

fn keyring(host: &str, user: &str, password: &str) -> Keyring {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut keyring = Keyring::default();
    keyring
        .add_docker_config(json!({"auths": {host: {"auth": auth}}}).to_string().as_bytes())
        .unwrap();
    keyring
}

fn assert_busybox_unpacked(store: &Store, image: &images::Image) {
    assert_eq!(image.layers.len(), 1);
    let layer = store.layer_dir(&image.layers[0].diff_id);
    assert!(layer.join("bin/busybox").is_file(), "{}", layer.display());
    assert!(
        std::fs::symlink_metadata(layer.join("bin/sh"))
            .unwrap()
            .is_symlink()
    );
}

#[tokio::test]
async fn pulls_by_tag_and_digest_from_a_local_registry() {
    let registry = DockerRegistry::start().unwrap();
    registry.push(&oci_source(), "library/busybox:1.36").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("store")).unwrap();
    let options = PullOptions::default();

    let by_tag = reference(&format!("{}/library/busybox:1.36", registry.host()));
    // Two pulls of one image at once share the store without harm.
    let (first, second) = tokio::join!(store.pull(&by_tag, &options), store.pull(&by_tag, &options));
    let image = first.unwrap();
    assert_eq!(second.unwrap(), image);
    assert_busybox_unpacked(&store, &image);
    assert_eq!(store.resolve(&by_tag).unwrap(), Some(image.clone()));
    assert_eq!(store.list().unwrap().len(), 1);

    // The same image as imported from its archive: same manifest, config and layers.
    let imported = Store::open(&tmp.path().join("imported")).unwrap();
    imported.import(&test_image("busybox-oci.tar")).unwrap();
    let from_archive = imported.resolve(&reference("busybox:latest")).unwrap().unwrap();
    assert_eq!(from_archive, image);

    // By digest, into another store: stored under the digest reference.
    let by_digest = reference(&format!("{}/library/busybox@{}", registry.host(), image.manifest));
    let other = Store::open(&tmp.path().join("other")).unwrap();
    assert_eq!(other.pull(&by_digest, &options).await.unwrap(), image);
    assert_eq!(
        other.list().unwrap().keys().collect::<Vec<_>>(),
        [&by_digest.to_string()]
    );

    // Pulling what is stored downloads no blob again (the registry is asked for the manifest).
    let layer_blob = tmp
        .path()
        .join("store/blobs/sha256")
        .join(image.layers[0].digest.trim_start_matches("sha256:"));
    let before = std::fs::metadata(&layer_blob).unwrap().modified().unwrap();
    store.pull(&by_tag, &options).await.unwrap();
    assert_eq!(
        std::fs::metadata(&layer_blob).unwrap().modified().unwrap(),
        before
    );

    // A Docker schema 2 manifest (skopeo pushes a docker-archive as one).
    let docker = format!("docker-archive:{}", test_image("busybox-docker.tar").display());
    registry.push(&docker, "library/busybox:docker").unwrap();
    let schema2 = store
        .pull(
            &reference(&format!("{}/library/busybox:docker", registry.host())),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(schema2.config, image.config);
    assert_ne!(schema2.manifest, image.manifest);
}

#[tokio::test]
async fn pulls_docker_io_images_through_a_mirror() {
    let registry = DockerRegistry::start().unwrap();
    registry.push(&oci_source(), "library/busybox:1.36").unwrap();
    registry.push(&oci_source(), "mirrored/busybox:1.36").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let config = format!(
        "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
        registry.host()
    );
    let options = PullOptions {
        registries: RegistriesConfig::parse(&config).unwrap(),
        ..PullOptions::default()
    };
    let image = store.pull(&reference("busybox:1.36"), &options).await.unwrap();
    assert_busybox_unpacked(&store, &image);
    assert!(
        store
            .list()
            .unwrap()
            .contains_key("docker.io/library/busybox:1.36")
    );

    // A rewrite maps the repository on the mirror.
    let rewritten = format!("{config}    rewrite:\n      \"^library/(.*)\": \"mirrored/$1\"\n");
    let options = PullOptions {
        registries: RegistriesConfig::parse(&rewritten).unwrap(),
        ..PullOptions::default()
    };
    let fresh = Store::open(&tmp.path().join("fresh")).unwrap();
    assert_eq!(
        fresh
            .pull(&reference("docker.io/library/busybox:1.36"), &options)
            .await
            .unwrap(),
        image
    );
}

#[tokio::test]
async fn basic_auth_from_pull_secrets_or_the_registry_config() {
    let registry = DockerRegistry::start_with_htpasswd("alice", "s3cret").unwrap();
    registry.push(&oci_source(), "library/busybox:1.36").unwrap();
    let host = registry.host();
    let image_ref = reference(&format!("{host}/library/busybox:1.36"));
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();

    // Anonymous: refused, worded as containerd.
    let err = store.pull(&image_ref, &PullOptions::default()).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::Unauthorized);
    assert_eq!(
        err.message,
        format!(
            "failed to pull and unpack image \"{image_ref}\": failed to resolve reference \"{image_ref}\": unexpected status from GET request to http://{host}/v2/library/busybox/manifests/1.36: 401 Unauthorized"
        )
    );
    assert_eq!(err.grpc_code(), "Unknown");

    // A wrong password from a pull secret: refused the same way.
    let wrong = PullOptions {
        credentials: keyring(&host, "alice", "wrong"),
        ..PullOptions::default()
    };
    let err = store.pull(&image_ref, &wrong).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::Unauthorized, "{err}");
    assert!(store.list().unwrap().is_empty());

    // The right one, from a pull secret keyed with a scheme, as `kubectl create secret
    // docker-registry --docker-server=http://…` writes it.
    let secret = PullOptions {
        credentials: keyring(&format!("http://{host}"), "alice", "s3cret"),
        ..PullOptions::default()
    };
    let image = store.pull(&image_ref, &secret).await.unwrap();
    assert_busybox_unpacked(&store, &image);

    // Or from registries.yaml's configs (a pull secret would take precedence).
    let configured = PullOptions {
        registries: RegistriesConfig::parse(&format!(
            "configs:\n  \"{host}\":\n    auth:\n      username: alice\n      password: s3cret\n"
        ))
        .unwrap(),
        ..PullOptions::default()
    };
    let fresh = Store::open(&tmp.path().join("fresh")).unwrap();
    assert_eq!(fresh.pull(&image_ref, &configured).await.unwrap(), image);
}

#[tokio::test]
async fn missing_images_and_unreachable_registries_fail_as_containerd_says() {
    let registry = DockerRegistry::start().unwrap();
    registry.push(&oci_source(), "library/busybox:1.36").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let options = PullOptions::default();

    for missing in [
        format!("{}/library/busybox:nope", registry.host()),
        format!("{}/library/absent:1.36", registry.host()),
    ] {
        let missing = reference(&missing);
        let err = store.pull(&missing, &options).await.unwrap_err();
        assert_eq!(err.kind, PullErrorKind::NotFound);
        assert_eq!(
            err.message,
            format!(
                "failed to pull and unpack image \"{missing}\": failed to resolve reference \"{missing}\": {missing}: not found"
            )
        );
        assert_eq!(err.grpc_code(), "NotFound");
        assert_eq!(
            err.cri_message(),
            format!("rpc error: code = NotFound desc = {}", err.message)
        );
    }

    let port = testkit::free_port();
    let unreachable = reference(&format!("127.0.0.1:{port}/library/busybox:1.36"));
    let err = store.pull(&unreachable, &options).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::Unavailable);
    assert_eq!(
        err.message,
        format!(
            "failed to pull and unpack image \"{unreachable}\": failed to resolve reference \"{unreachable}\": Get \"http://127.0.0.1:{port}/v2/library/busybox/manifests/1.36\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
    assert!(store.list().unwrap().is_empty());
}

/// An image of one layer per (file, contents): (layers as tar+gzip, config, manifest) bytes.
fn synthetic_image(files: &[(&str, &str)]) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (file, contents) in files {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        builder
            .append_data(&mut header, file, contents.as_bytes())
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        diff_ids.push(sha(&tar));
        layers.push(gz.finish().unwrap());
    }
    let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}}))
    .unwrap();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(l), "size": l.len()}))
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    (layers, config, manifest)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[tokio::test]
async fn bearer_tokens_indexes_redirects_and_corrupt_content() {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    let fake = FakeRegistry::start("bob", "hunter2").await;
    // Five layers: more than download at once.
    let files = [("hello", "world"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")];
    let (layers, config, manifest) = synthetic_image(&files);
    // An index whose entry for another platform does not exist: only ours may be fetched.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": sha(b"elsewhere"), "size": 9,
             "platform": {"os": "linux", "architecture": "s390x"}},
            {"mediaType": OCI_MANIFEST, "digest": sha(&manifest), "size": manifest.len(),
             "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    }))
    .unwrap();
    let (bad_layers, bad_config, bad_manifest) = synthetic_image(&[("evil", "payload")]);
    let bad_layer = bad_layers[0].clone();
    {
        let mut content = fake.content.lock().unwrap();
        for repo in ["app", "private/app"] {
            content.manifests.insert(
                format!("{repo}/multi"),
                ("application/vnd.oci.image.index.v1+json".into(), index.clone()),
            );
            content.manifests.insert(
                format!("{repo}/{}", sha(&manifest)),
                (OCI_MANIFEST.into(), manifest.clone()),
            );
        }
        content
            .manifests
            .insert("app/corrupt".into(), (OCI_MANIFEST.into(), bad_manifest.clone()));
        for layer in &layers {
            content.blobs.insert(sha(layer), layer.clone());
        }
        content.blobs.insert(sha(&config), config.clone());
        content.blobs.insert(sha(&bad_config), bad_config.clone());
        // The corrupt image's layer is served with other bytes than its digest says.
        let mut tampered = bad_layer.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0xff;
        content.blobs.insert(sha(&bad_layer), tampered);
    }
    let host = fake.host();
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let with_secret = PullOptions {
        credentials: keyring(&host, "bob", "hunter2"),
        ..PullOptions::default()
    };

    // Token flow with the pull secret, through the index, blobs from the CDN without credentials.
    let multi = reference(&format!("{host}/app:multi"));
    let image = store.pull(&multi, &with_secret).await.unwrap();
    assert_eq!(
        image.manifest,
        sha(&index),
        "the reference's digest is the index's"
    );
    assert_eq!(image.config, sha(&config));
    assert_eq!(image.layers.len(), files.len());
    for ((file, contents), layer) in files.iter().zip(&image.layers) {
        let dir = store.layer_dir(&layer.diff_id);
        assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), *contents);
    }
    let log = fake.log.lock().unwrap().clone();
    assert!(log.contains(&"token repository:app:pull".to_owned()), "{log:?}");
    for layer in &layers {
        assert!(log.contains(&format!("cdn {}", sha(layer))), "{log:?}");
    }
    // The index and the manifest are both stored.
    for digest in [sha(&index), sha(&manifest)] {
        assert!(tmp.path().join("blobs/sha256").join(&digest[7..]).exists());
    }

    // Without credentials the token service refuses.
    let err = store.pull(&multi, &PullOptions::default()).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::Unauthorized);
    assert_eq!(
        err.message,
        format!(
            "failed to pull and unpack image \"{multi}\": failed to resolve reference \"{multi}\": failed to authorize: failed to fetch anonymous token: unexpected status from GET request to http://{host}/token?service=fake&scope=repository%3Aapp%3Apull: 401 Unauthorized"
        )
    );

    // A token that does not grant the repository.
    let private = reference(&format!("{host}/private/app:multi"));
    let err = store.pull(&private, &with_secret).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::Unauthorized);
    assert!(
        err.message.ends_with(": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"),
        "{err}"
    );

    // Content that does not match its digest never enters the store.
    let corrupt = reference(&format!("{host}/app:corrupt"));
    let err = store.pull(&corrupt, &with_secret).await.unwrap_err();
    assert_eq!(err.kind, PullErrorKind::DigestMismatch, "{err}");
    assert_eq!(err.grpc_code(), "FailedPrecondition");
    assert!(
        err.message.contains("failed to copy: unexpected commit digest ")
            && err
                .message
                .contains(&format!("expected {}: failed precondition", sha(&bad_layer))),
        "{err}"
    );
    assert!(
        !tmp.path()
            .join("blobs/sha256")
            .join(&sha(&bad_layer)[7..])
            .exists()
    );
    assert!(store.resolve(&corrupt).unwrap().is_none());
    assert_eq!(store.list().unwrap().len(), 1);
}
