//! Image references as Docker and Kubernetes read them: `busybox` means
//! `docker.io/library/busybox:latest`; a first component with a `.` or `:` (or `localhost`)
//! is a registry; `@sha256:…` pins a digest.

use std::fmt;

use crate::Error;

pub const DEFAULT_REGISTRY: &str = "docker.io";

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `docker.io`, `registry.k8s.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// `library/busybox`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…` when the reference pins one.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes a reference (a missing tag and digest means `latest`).
    pub fn parse(text: &str) -> Result<Reference, Error> {
        let bad = |why: &str| Error::Reference(format!("{text:?}: {why}"));
        if text.is_empty() || text.chars().any(char::is_whitespace) {
            return Err(bad("not an image reference"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let valid = digest
                    .strip_prefix("sha256:")
                    .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
                if !valid {
                    return Err(bad("invalid digest"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| {
            t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        }) {
            return Err(bad("invalid tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(valid_component) {
            return Err(bad(
                "invalid repository name (lower case letters, digits and ._- only)",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_owned())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `docker.io/library/busybox` (no tag or digest).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Reference;

    #[test]
    fn references_normalize_as_docker() {
        let full = |s: &str| Reference::parse(s).unwrap().to_string();
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("registry.k8s.io/pause:3.10"), "registry.k8s.io/pause:3.10");
        assert_eq!(full("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(full("localhost/a/b:v1"), "localhost/a/b:v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            full(&format!("busybox@{digest}")),
            format!("docker.io/library/busybox@{digest}")
        );
        for bad in ["", "Busybox", "busybox:", "a b", "busybox@sha256:12", "-x"] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }
}
