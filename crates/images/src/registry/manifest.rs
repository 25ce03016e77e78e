//! Manifests as registries serve them: OCI image manifests and indexes, Docker schema 2
//! manifests and manifest lists. An index leads to the manifest of this machine's platform.

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];

/// What a manifest request accepts, as containerd asks.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*";

/// containerd's bound on a manifest's size.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: String,
}

/// A parsed manifest document.
#[derive(Debug)]
pub enum Document {
    Index(Vec<Descriptor>),
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

/// Parses a manifest; the type comes from the response's `Content-Type`, else the document's
/// own `mediaType`, else its shape.
pub fn parse(bytes: &[u8], content_type: &str) -> Result<Document, String> {
    let content_type = content_type.split(';').next().unwrap_or_default().trim();
    if DOCKER_SCHEMA1.contains(&content_type) {
        return Err(schema1());
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))?;
    let media_type = match content_type {
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST => content_type,
        _ if !raw.media_type.is_empty() => raw.media_type.as_str(),
        _ if raw.manifests.is_some() => OCI_INDEX,
        _ => OCI_MANIFEST,
    };
    match media_type {
        OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(Document::Index(raw.manifests.unwrap_or_default())),
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let config = raw.config.ok_or("invalid manifest: no config")?;
            Ok(Document::Image {
                config,
                layers: raw.layers.unwrap_or_default(),
            })
        }
        other if DOCKER_SCHEMA1.contains(&other) => Err(schema1()),
        other => Err(format!("unsupported manifest media type {other:?}")),
    }
}

fn schema1() -> String {
    format!(
        "media type {:?} is no longer supported since containerd v2.0, please rebuild the image as {DOCKER_MANIFEST:?} or {OCI_MANIFEST:?}: not implemented",
        DOCKER_SCHEMA1[0]
    )
}

/// The entry of an index for linux on this machine's architecture (an exact variant match
/// first, as containerd's platform matcher prefers).
pub fn select_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    select_for(manifests, crate::archive::go_arch(), default_variant())
}

fn default_variant() -> &'static str {
    match crate::archive::go_arch() {
        "arm64" => "v8",
        "arm" => "v7",
        _ => "",
    }
}

fn select_for<'a>(manifests: &'a [Descriptor], arch: &str, variant: &str) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .collect();
    candidates
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.variant == variant))
        .or_else(|| {
            candidates
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| p.variant.is_empty()))
        })
        .or(candidates.first())
        .copied()
}

/// Whether a layer's media type is one rkube unpacks (tar, gzip; zstd is refused at unpack).
pub fn is_layer(media_type: &str) -> bool {
    media_type.is_empty()
        || media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: &str, digest: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: digest.into(),
            size: 1,
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.into(),
            }),
        }
    }

    #[test]
    fn indexes_lead_to_this_platform() {
        let list = vec![
            entry("arm", "v6", "a"),
            entry("arm64", "", "b"),
            entry("arm64", "v8", "c"),
            entry("amd64", "", "d"),
        ];
        assert_eq!(select_for(&list, "arm64", "v8").unwrap().digest, "c");
        assert_eq!(select_for(&list, "amd64", "").unwrap().digest, "d");
        assert_eq!(select_for(&list, "arm", "v7").unwrap().digest, "a");
        assert!(select_for(&list, "s390x", "").is_none());
    }

    #[test]
    fn manifest_types_come_from_the_header_or_the_document() {
        let index = br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:1","size":3}]}"#;
        assert!(matches!(parse(index, "").unwrap(), Document::Index(m) if m.len() == 1));
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:c"},"layers":[{"digest":"sha256:l"}]}"#;
        match parse(image, "application/octet-stream").unwrap() {
            Document::Image { config, layers } => {
                assert_eq!(config.digest, "sha256:c");
                assert_eq!(layers.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let err = parse(b"{}", "application/vnd.docker.distribution.manifest.v1+prettyjws").unwrap_err();
        assert!(err.contains("no longer supported"), "{err}");
        assert!(parse(b"not json", OCI_MANIFEST).is_err());
        assert!(parse(br#"{"mediaType":"application/x-helm"}"#, "").is_err());
    }
}
