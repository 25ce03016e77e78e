//! Datastore URLs: `sqlite:///path/to/state.db`, `etcd://host:2379,host2:2379`, or a list of
//! `http://host:2379` endpoints.

use std::path::PathBuf;

use crate::{Result, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    /// Endpoints as `http://host:port`.
    Etcd(Vec<String>),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid("expected sqlite:///path/to/state.db"));
            }
            if path.contains('?') {
                return Err(invalid("query parameters are not supported for sqlite"));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        let (hosts, default_scheme) = match url.strip_prefix("etcd://") {
            Some(hosts) => (hosts, true),
            None if url.starts_with("http://") || url.starts_with("https://") => (url, false),
            None => return Err(invalid("expected a sqlite://, etcd:// or http:// URL")),
        };
        let mut endpoints = Vec::new();
        for item in hosts.split(',').map(str::trim) {
            let host_port = match (item.strip_prefix("http://"), default_scheme) {
                (Some(rest), _) => rest,
                (None, _) if item.starts_with("https://") => {
                    return Err(invalid("TLS etcd endpoints (https://) are not supported yet"));
                }
                (None, true) => item,
                (None, false) => item.strip_prefix("etcd://").unwrap_or(item),
            };
            let host_port = host_port.trim_end_matches('/');
            if host_port.is_empty() || host_port.contains('/') {
                return Err(invalid("each etcd endpoint must be host:port"));
            }
            let with_port = if host_port
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                host_port.to_owned()
            } else if host_port.contains(':') && !host_port.ends_with(']') {
                return Err(invalid("etcd endpoint has an invalid port"));
            } else {
                format!("{host_port}:2379")
            };
            endpoints.push(format!("http://{with_port}"));
        }
        Ok(StoreUrl::Etcd(endpoints))
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Etcd(endpoints) => {
                let hosts: Vec<&str> = endpoints
                    .iter()
                    .map(|e| e.strip_prefix("http://").unwrap_or(e))
                    .collect();
                write!(f, "etcd://{}", hosts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_paths() {
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/rkube/state.db").unwrap(),
            StoreUrl::Sqlite("/var/lib/rkube/state.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite://state.db").unwrap(),
            StoreUrl::Sqlite("state.db".into())
        );
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert!(StoreUrl::parse("sqlite:///x.db?_journal=WAL").is_err());
    }

    #[test]
    fn parses_etcd_endpoint_lists() {
        let want = StoreUrl::Etcd(vec![
            "http://127.0.0.1:2379".into(),
            "http://10.0.0.2:32379".into(),
        ]);
        assert_eq!(
            StoreUrl::parse("etcd://127.0.0.1:2379,10.0.0.2:32379").unwrap(),
            want
        );
        assert_eq!(
            StoreUrl::parse("http://127.0.0.1:2379,http://10.0.0.2:32379").unwrap(),
            want
        );
        assert_eq!(
            StoreUrl::parse("etcd://127.0.0.1").unwrap(),
            StoreUrl::Etcd(vec!["http://127.0.0.1:2379".into()])
        );
        assert_eq!(
            StoreUrl::parse("etcd://127.0.0.1:2379,10.0.0.2:32379")
                .unwrap()
                .to_string(),
            "etcd://127.0.0.1:2379,10.0.0.2:32379"
        );
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        for bad in [
            "mysql://x",
            "etcd://",
            "etcd://a:2379,",
            "https://127.0.0.1:2379",
            "etcd://h:port",
            "/tmp/x.db",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
