//! The node's registry configuration, in the form of k3s's `/etc/rancher/k3s/registries.yaml`:
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//!     rewrite: {"^rancher/(.*)": "mirrored/rancher/$1"}
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}        # or auth: base64(u:p), or identitytoken
//!     tls: {ca_file: /ca.pem, insecure_skip_verify: false}
//! ```
//!
//! A registry's mirror endpoints are tried in order, then its default endpoint (unless a mirror
//! already is it), as containerd's CRI plugin does; `*` mirrors every registry without an entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::auth::Credentials;
use crate::Error;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegistriesConfig {
    /// Registry host (`docker.io`, `*`) → where to pull its images from.
    pub mirrors: BTreeMap<String, Mirror>,
    /// Endpoint host (`127.0.0.1:5000`, `registry-1.docker.io`) → credentials and TLS.
    pub configs: BTreeMap<String, EndpointConfig>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Mirror {
    /// Endpoint URLs (`http://127.0.0.1:5000`); a missing scheme means https (http on loopback).
    pub endpoint: Vec<String>,
    /// Regular expression on the repository (`library/busybox`) → replacement (`$1` groups);
    /// applied on the mirror endpoints only.
    pub rewrite: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndpointConfig {
    pub auth: Option<AuthConfig>,
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AuthConfig {
    pub username: String,
    pub password: String,
    /// base64 of `username:password`.
    pub auth: String,
    pub identitytoken: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for registries that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// One place to try: `scheme://host/path`, the repository rewrites that apply there, and the
/// endpoint's own configuration.
#[derive(Clone, Debug)]
pub(crate) struct EndpointSpec {
    pub scheme: String,
    pub host: String,
    /// The API root, `/v2` unless the endpoint URL has a path.
    pub path: String,
    pub rewrites: Vec<(regex::Regex, String)>,
    pub config: EndpointConfig,
}

impl EndpointSpec {
    /// `repository` as this endpoint names it (the first matching rewrite, in key order).
    pub fn repository(&self, repository: &str) -> String {
        for (pattern, replacement) in &self.rewrites {
            if pattern.is_match(repository) {
                return pattern.replace(repository, replacement.as_str()).into_owned();
            }
        }
        repository.to_owned()
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path)
    }
}

impl RegistriesConfig {
    /// Reads a registries.yaml file.
    pub fn load(path: &Path) -> Result<RegistriesConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        RegistriesConfig::parse(&text).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
    }

    /// Parses registries.yaml text (an empty document is an empty configuration).
    pub fn parse(text: &str) -> Result<RegistriesConfig, String> {
        if text.trim().is_empty() {
            return Ok(RegistriesConfig::default());
        }
        let config: RegistriesConfig = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        // Surface bad endpoints and rewrites now rather than at the first pull.
        for registry in config.mirrors.keys() {
            config.endpoints(registry)?;
        }
        Ok(config)
    }

    /// The endpoints to try for images of `registry`, in order.
    pub(crate) fn endpoints(&self, registry: &str) -> Result<Vec<EndpointSpec>, String> {
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let mut rewrites = Vec::new();
        if let Some(mirror) = mirror {
            for (pattern, replacement) in &mirror.rewrite {
                let regex = regex::Regex::new(pattern)
                    .map_err(|e| format!("mirror {registry}: invalid rewrite {pattern:?}: {e}"))?;
                rewrites.push((regex, replacement.clone()));
            }
        }
        let default_host = default_host(registry);
        let mut endpoints = Vec::new();
        let mut has_default = false;
        for url in mirror.map(|m| m.endpoint.as_slice()).unwrap_or_default() {
            let (scheme, host, path) = split_endpoint(url)?;
            has_default |= host == registry || host == default_host;
            endpoints.push(EndpointSpec {
                config: self.configs.get(&host).cloned().unwrap_or_default(),
                scheme,
                host,
                path,
                rewrites: rewrites.clone(),
            });
        }
        if !has_default {
            endpoints.push(EndpointSpec {
                scheme: default_scheme(&default_host).to_owned(),
                config: self
                    .configs
                    .get(&default_host)
                    .or_else(|| self.configs.get(registry))
                    .cloned()
                    .unwrap_or_default(),
                host: default_host,
                path: "/v2".into(),
                rewrites: Vec::new(),
            });
        }
        Ok(endpoints)
    }
}

/// The host that serves a registry's API: Docker Hub's differs from its name.
fn default_host(registry: &str) -> String {
    if registry == crate::reference::DEFAULT_REGISTRY {
        "registry-1.docker.io".into()
    } else {
        registry.into()
    }
}

/// Loopback registries speak plain http, as containerd assumes.
fn default_scheme(host: &str) -> &'static str {
    if is_loopback(host) { "http" } else { "https" }
}

fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `http://host:port/path` → (scheme, host:port, API root).
fn split_endpoint(url: &str) -> Result<(String, String, String), String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => {
            let host = url.split('/').next().unwrap_or_default();
            (default_scheme(host).to_owned(), url)
        }
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!("endpoint {url:?}: scheme must be http or https"));
    }
    let (host, path) = match rest.split_once('/') {
        Some((host, path)) => (host, format!("/{}", path.trim_end_matches('/'))),
        None => (rest, String::new()),
    };
    if host.is_empty() || host.contains(['@', '?', '#', ' ']) {
        return Err(format!("endpoint {url:?}: invalid host"));
    }
    let path = if path.is_empty() || path == "/" {
        "/v2".into()
    } else {
        path
    };
    Ok((scheme, host.to_owned(), path))
}

impl AuthConfig {
    /// The credentials this entry holds (None when it is empty: anonymous).
    pub(crate) fn credentials(&self) -> Result<Option<Credentials>, String> {
        if !self.username.is_empty() {
            return Ok(Some(Credentials::basic(&self.username, &self.password)));
        }
        if !self.identitytoken.is_empty() {
            return Ok(Some(Credentials {
                identity_token: self.identitytoken.clone(),
                ..Credentials::default()
            }));
        }
        if !self.auth.is_empty() {
            return Credentials::from_auth_field(&self.auth).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_before_the_default_endpoint() {
        let config = RegistriesConfig::parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000", "mirror.example.com/prefix/"]
    rewrite:
      "^library/(.*)": "cache/$1"
  "*":
    endpoint: ["https://all.example.com"]
configs:
  "127.0.0.1:5000":
    auth: {username: u, password: p}
    tls: {insecure_skip_verify: true}
"#,
        )
        .unwrap();
        let hub = config.endpoints("docker.io").unwrap();
        let urls: Vec<String> = hub.iter().map(EndpointSpec::base_url).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000/v2",
                "https://mirror.example.com/prefix",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert_eq!(hub[0].repository("library/busybox"), "cache/busybox");
        assert_eq!(hub[2].repository("library/busybox"), "library/busybox");
        assert_eq!(
            hub[0].config.auth.as_ref().unwrap().credentials().unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        assert!(hub[0].config.tls.as_ref().unwrap().insecure_skip_verify);

        // `*` mirrors the rest; loopback hosts default to http.
        let other: Vec<String> = config
            .endpoints("quay.io")
            .unwrap()
            .iter()
            .map(EndpointSpec::base_url)
            .collect();
        assert_eq!(other, ["https://all.example.com/v2", "https://quay.io/v2"]);
        let local = RegistriesConfig::default().endpoints("localhost:5000").unwrap();
        assert_eq!(local[0].base_url(), "http://localhost:5000/v2");

        // A mirror that is the registry itself is not tried twice.
        let own =
            RegistriesConfig::parse("mirrors: {\"r.example.com\": {endpoint: [\"https://r.example.com\"]}}")
                .unwrap()
                .endpoints("r.example.com")
                .unwrap();
        assert_eq!(own.len(), 1);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(RegistriesConfig::parse("mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}").is_err());
        assert!(RegistriesConfig::parse("mirrors: {docker.io: {rewrite: {\"(\": \"x\"}}}").is_err());
        assert!(RegistriesConfig::parse("mirrors: [1]").is_err());
        assert!(RegistriesConfig::parse("").unwrap().mirrors.is_empty());
    }
}
