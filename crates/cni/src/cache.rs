//! The result cache: what an ADD returned, with the configuration and arguments it ran with,
//! so CHECK and DEL can send the same `prevResult`, `CNI_ARGS` and capability arguments (the
//! portmap plugin only removes its rules when DEL carries the `portMappings` again).
//!
//! Same layout and format as libcni's (`<dir>/results/<network>-<containerID>-<ifname>`,
//! `kind: cniCacheV1`, the config as base64 bytes), so `cnitool` and friends can read ours.
//! Files are replaced atomically; the runtime never runs two operations on one attachment at
//! once (spec section 3), so no locking.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::NetworkConfigList;
use crate::error::CniError;
use crate::invoke::RuntimeConf;
use crate::result::AddResult;

const KIND: &str = "cniCacheV1";

#[derive(Clone, Debug)]
pub struct ResultCache {
    dir: PathBuf,
}

/// One cached attachment.
#[derive(Clone, Debug)]
pub struct Cached {
    pub config: NetworkConfigList,
    pub args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    pub result: Option<AddResult>,
}

#[derive(Serialize, Deserialize)]
struct CachedInfo {
    kind: String,
    #[serde(rename = "containerId")]
    container_id: String,
    /// Go marshals `[]byte` as base64.
    config: String,
    #[serde(rename = "ifName")]
    ifname: String,
    #[serde(rename = "networkName")]
    network_name: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Option::is_none")]
    cni_args: Option<Vec<[String; 2]>>,
    #[serde(rename = "capabilityArgs", default, skip_serializing_if = "Option::is_none")]
    capability_args: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
}

impl CachedInfo {
    fn is_for(&self, network: &str, rt: &RuntimeConf) -> bool {
        self.network_name == network && self.container_id == rt.container_id && self.ifname == rt.ifname
    }
}

impl ResultCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ResultCache { dir: dir.into() }
    }

    fn path(&self, network: &str, rt: &RuntimeConf) -> PathBuf {
        self.dir
            .join("results")
            .join(format!("{network}-{}-{}", rt.container_id, rt.ifname))
    }

    pub fn put(
        &self,
        config: &NetworkConfigList,
        rt: &RuntimeConf,
        result: &AddResult,
    ) -> Result<(), CniError> {
        let info = CachedInfo {
            kind: KIND.to_owned(),
            container_id: rt.container_id.clone(),
            config: BASE64.encode(serde_json::to_vec(config.raw()).expect("JSON serializes")),
            ifname: rt.ifname.clone(),
            network_name: config.name.clone(),
            cni_args: (!rt.args.is_empty())
                .then(|| rt.args.iter().map(|(k, v)| [k.clone(), v.clone()]).collect()),
            capability_args: (!rt.capability_args.is_empty()).then(|| rt.capability_args.clone()),
            result: Some(result.raw().clone()),
        };
        let path = self.path(&config.name, rt);
        let dir = path.parent().expect("cache files live in a directory");
        create_private_dir(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().expect("named").to_string_lossy()
        ));
        std::fs::write(&tmp, serde_json::to_vec(&info).expect("JSON serializes"))
            .map_err(CniError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(CniError::io(&path))
    }

    /// The cached attachment, `None` if there is none.
    pub fn get(&self, network: &str, rt: &RuntimeConf) -> Result<Option<Cached>, CniError> {
        let path = self.path(network, rt);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::io(&path)(e)),
        };
        let corrupt = |what: String| {
            CniError::InvalidConfig(format!(
                "failed to read cached network {network:?} config from {}: {what}",
                path.display()
            ))
        };
        let info: CachedInfo = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if info.kind != KIND {
            return Err(corrupt(format!("wrong kind {:?}", info.kind)));
        }
        if !info.is_for(network, rt) {
            // File names are ambiguous (`cbr0-b-x-eth0`: network `cbr0`, container `b-x`, or
            // network `cbr0-b`, container `x`): the recorded identity decides.
            return Ok(None);
        }
        let config = BASE64.decode(&info.config).map_err(|e| corrupt(e.to_string()))?;
        let config = NetworkConfigList::from_bytes(&config)?;
        let result = info
            .result
            .map(AddResult::from_json)
            .transpose()
            .map_err(corrupt)?;
        Ok(Some(Cached {
            config,
            args: info
                .cni_args
                .unwrap_or_default()
                .into_iter()
                .map(|[k, v]| (k, v))
                .collect(),
            capability_args: info.capability_args.unwrap_or_default(),
            result,
        }))
    }

    /// Forgets an attachment; absent is fine.
    pub fn remove(&self, network: &str, rt: &RuntimeConf) -> Result<(), CniError> {
        let path = self.path(network, rt);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every cached attachment as (network, container ID, interface), sorted.
    pub fn attachments(&self) -> Result<Vec<(String, String, String)>, CniError> {
        let dir = self.dir.join("results");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CniError::io(&dir)(e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry.map_err(CniError::io(&dir))?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue; // a write in progress
            }
            match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CachedInfo>(&b).ok())
            {
                Some(info) if info.kind == KIND => {
                    found.push((info.network_name, info.container_id, info.ifname))
                }
                _ => tracing::warn!(path = %path.display(), "unreadable CNI cache entry"),
            }
        }
        found.sort();
        Ok(found)
    }

    /// The network names with a cached attachment for this container and interface, so a
    /// teardown finds what was added even after the conf dir changed.
    pub fn networks_of(&self, rt: &RuntimeConf) -> Result<Vec<String>, CniError> {
        let dir = self.dir.join("results");
        let suffix = format!("-{}-{}", rt.container_id, rt.ifname);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CniError::io(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(CniError::io(&dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(network) = name.strip_suffix(&suffix) else {
                continue;
            };
            if network.is_empty() || network.starts_with('.') {
                continue;
            }
            let recorded = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<CachedInfo>(&b).ok());
            match recorded {
                Some(info) if info.is_for(network, rt) => names.push(network.to_owned()),
                Some(_) => {} // another container whose ID ends like ours
                None => tracing::warn!(path = %entry.path().display(), "unreadable CNI cache entry"),
            }
        }
        names.sort();
        Ok(names)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), CniError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(CniError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_in_libcni_format() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let config = NetworkConfigList::from_value(json!({
            "cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "bridge"}]
        }))
        .unwrap();
        let mut rt = RuntimeConf {
            container_id: "abc".into(),
            ifname: "eth0".into(),
            args: vec![("K8S_POD_NAME".into(), "web".into())],
            ..RuntimeConf::default()
        };
        rt.capability_args
            .insert("portMappings".into(), json!([{"hostPort": 80}]));
        assert!(cache.get("cbr0", &rt).unwrap().is_none());
        let result =
            AddResult::from_json(json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}))
                .unwrap();
        cache.put(&config, &rt, &result).unwrap();

        let file = dir.path().join("results/cbr0-abc-eth0");
        let on_disk: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(on_disk["kind"], "cniCacheV1");
        assert_eq!(on_disk["cniArgs"], json!([["K8S_POD_NAME", "web"]]));
        let config_bytes = BASE64.decode(on_disk["config"].as_str().unwrap()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&config_bytes).unwrap(),
            *config.raw()
        );

        let cached = cache.get("cbr0", &rt).unwrap().unwrap();
        assert_eq!(cached.config, config);
        assert_eq!(cached.args, rt.args);
        assert_eq!(cached.capability_args, rt.capability_args);
        assert_eq!(cached.result.unwrap(), result);
        assert_eq!(cache.networks_of(&rt).unwrap(), ["cbr0"]);
        assert_eq!(
            cache.attachments().unwrap(),
            [("cbr0".to_owned(), "abc".to_owned(), "eth0".to_owned())]
        );

        cache.remove("cbr0", &rt).unwrap();
        cache.remove("cbr0", &rt).unwrap();
        assert!(cache.get("cbr0", &rt).unwrap().is_none());
        assert!(cache.networks_of(&rt).unwrap().is_empty());
    }

    #[test]
    fn container_ids_that_end_alike_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let config = NetworkConfigList::from_value(json!({
            "cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "bridge"}]
        }))
        .unwrap();
        let rt = |id: &str| RuntimeConf {
            container_id: id.into(),
            ifname: "eth0".into(),
            ..RuntimeConf::default()
        };
        let result = AddResult::from_json(json!({"cniVersion": "1.0.0"})).unwrap();
        cache.put(&config, &rt("b-x"), &result).unwrap();
        assert!(cache.networks_of(&rt("x")).unwrap().is_empty());
        assert!(cache.get("cbr0-b", &rt("x")).unwrap().is_none());
        assert_eq!(cache.networks_of(&rt("b-x")).unwrap(), ["cbr0"]);
    }

    #[test]
    fn corrupt_entries_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path());
        let rt = RuntimeConf {
            container_id: "abc".into(),
            ifname: "eth0".into(),
            ..RuntimeConf::default()
        };
        std::fs::create_dir_all(dir.path().join("results")).unwrap();
        std::fs::write(dir.path().join("results/n-abc-eth0"), "{").unwrap();
        assert!(cache.get("n", &rt).is_err());
    }
}
