//! Credentials from image pull secrets (`kubernetes.io/dockerconfigjson`'s `.dockerconfigjson`,
//! or the legacy `.dockercfg`), looked up for an image as kubelet's credential keyring does:
//! keys lose their scheme and a `/v1/` or `/v2/` path, host labels may be globs (`*.example.com`),
//! a key with a path matches images under that path, every matching key counts (longest keys
//! first), and Docker Hub's keys (`index.docker.io`, `https://index.docker.io/v1/`, …) serve
//! `docker.io` images.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::auth::Credentials;
use crate::Reference;

#[derive(Clone, Debug, Default)]
pub struct Keyring {
    /// (normalized key, credentials), sorted by key in reverse as kubelet's index.
    entries: Vec<(String, Credentials)>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
}

const DOCKER_HUB_KEYS: [&str; 3] = ["index.docker.io", "docker.io", "registry-1.docker.io"];

impl Keyring {
    /// Adds a decoded `.dockerconfigjson` (`{"auths": {…}}`) or `.dockercfg` (`{host: …}`).
    pub fn add_docker_config(&mut self, json: &[u8]) -> Result<(), String> {
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| format!("invalid docker config: {e}"))?;
        let auths = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let auths: BTreeMap<String, Entry> =
            serde_json::from_value(auths).map_err(|e| format!("invalid docker config: {e}"))?;
        for (key, entry) in auths {
            let credentials = if entry.auth.is_empty() {
                Credentials::basic(&entry.username, &entry.password)
            } else {
                Credentials::from_auth_field(&entry.auth)?
            };
            self.entries.push((normalize_key(&key), credentials));
        }
        self.entries.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The credentials to try for an image, in order (none: pull anonymously).
    pub fn lookup(&self, reference: &Reference) -> Vec<Credentials> {
        let image = reference.name();
        let matched: Vec<Credentials> = self
            .entries
            .iter()
            .filter(|(key, _)| urls_match(key, &image))
            .map(|(_, c)| c.clone())
            .collect();
        if !matched.is_empty() || reference.registry != crate::reference::DEFAULT_REGISTRY {
            return matched;
        }
        self.entries
            .iter()
            .filter(|(key, _)| DOCKER_HUB_KEYS.contains(&key.as_str()))
            .map(|(_, c)| c.clone())
            .collect()
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `reg.example.com/team` stays.
fn normalize_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") {
        &path[3..]
    } else {
        path
    };
    if path.is_empty() || path == "/" {
        host.to_owned()
    } else {
        format!("{host}{path}")
    }
}

/// kubelet's `URLsMatchStr`: same port, same number of host labels each matching as a glob,
/// and the image's path starting with the key's.
fn urls_match(key: &str, image: &str) -> bool {
    let split = |s: &str| -> (String, String) {
        match s.find('/') {
            Some(i) => (s[..i].to_owned(), s[i..].to_owned()),
            None => (s.to_owned(), String::new()),
        }
    };
    let (key_host, key_path) = split(key);
    let (image_host, image_path) = split(image);
    let host_port = |h: &str| -> (String, String) {
        let (host, port) = match h.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").unwrap_or((rest.trim_end_matches(']'), "")),
            None => h.rsplit_once(':').unwrap_or((h, "")),
        };
        (host.to_owned(), port.to_owned())
    };
    let (key_host, key_port) = host_port(&key_host);
    let (image_host, image_port) = host_port(&image_host);
    if key_port != image_port {
        return false;
    }
    let key_labels: Vec<&str> = key_host.split('.').collect();
    let image_labels: Vec<&str> = image_host.split('.').collect();
    key_labels.len() == image_labels.len()
        && key_labels
            .iter()
            .zip(&image_labels)
            .all(|(glob, label)| glob_match(glob.as_bytes(), label.as_bytes()))
        && image_path.starts_with(&key_path)
}

/// Go's `filepath.Match` for one host label: `*` and `?` (character classes are not used in
/// registry hosts).
fn glob_match(glob: &[u8], text: &[u8]) -> bool {
    match glob.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn users(keyring: &Keyring, image: &str) -> Vec<String> {
        keyring
            .lookup(&reference(image))
            .into_iter()
            .map(|c| c.username)
            .collect()
    }

    #[test]
    fn lookups_match_as_kubelets_keyring() {
        let auth = base64::engine::general_purpose::STANDARD.encode("hub:pw");
        let mut keyring = Keyring::default();
        keyring
            .add_docker_config(
                format!(
                    r#"{{"auths": {{
                        "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                        "registry.example.com": {{"username": "reg", "password": "p"}},
                        "registry.example.com/team": {{"username": "team", "password": "p"}},
                        "*.glob.io": {{"username": "glob", "password": "p"}},
                        "http://127.0.0.1:5000": {{"username": "local", "password": "p"}}
                    }}}}"#
                )
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(users(&keyring, "busybox"), ["hub"]);
        assert_eq!(users(&keyring, "docker.io/someone/app:1"), ["hub"]);
        assert_eq!(users(&keyring, "registry.example.com/team/app"), ["team", "reg"]);
        assert_eq!(users(&keyring, "registry.example.com/other/app"), ["reg"]);
        assert_eq!(users(&keyring, "a.glob.io/x"), ["glob"]);
        assert!(users(&keyring, "a.b.glob.io/x").is_empty());
        assert_eq!(users(&keyring, "127.0.0.1:5000/library/busybox:1.36"), ["local"]);
        assert!(users(&keyring, "127.0.0.1:5001/library/busybox").is_empty());
        assert!(users(&keyring, "quay.io/x/y").is_empty());

        // The legacy .dockercfg form has no "auths" wrapper.
        let mut legacy = Keyring::default();
        legacy
            .add_docker_config(br#"{"quay.io": {"username": "q", "password": "p"}}"#)
            .unwrap();
        assert_eq!(users(&legacy, "quay.io/x/y"), ["q"]);
        assert!(Keyring::default().add_docker_config(b"[]").is_err());
    }
}
