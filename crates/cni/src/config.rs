//! Network configuration lists (spec section 1) and the conf dir: parsed and validated as
//! libcni does, and chosen from a directory as containerd does (`/etc/cni/net.d` semantics:
//! the first `.conf`, `.conflist` or `.json` file in lexical order is the pod network).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::CniError;

/// The spec versions this client speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Extensions of configuration files in a conf dir.
const CONF_EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

/// A network: plugins run in order for ADD and CHECK, in reverse for DEL.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    /// The version the runtime uses with every plugin of the list.
    pub cni_version: String,
    pub disable_check: bool,
    pub plugins: Vec<PluginConfig>,
    raw: Value,
}

/// One plugin configuration object: `type`, the capabilities it declares, and everything
/// else, passed through to the plugin unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginConfig {
    pub plugin_type: String,
    /// The plugin object's own `name`, if any (libcni names a failing plugin by it).
    pub name: Option<String>,
    pub capabilities: BTreeMap<String, bool>,
    raw: Map<String, Value>,
}

fn list_error(message: impl std::fmt::Display) -> CniError {
    CniError::InvalidConfig(format!("error parsing configuration list: {message}"))
}

fn conf_error(message: impl std::fmt::Display) -> CniError {
    CniError::InvalidConfig(format!("error parsing configuration: {message}"))
}

/// Go's `%T` of a JSON value decoded into `interface{}`, for libcni's type errors.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

impl NetworkConfigList {
    /// A `.conflist` document.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CniError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(list_error)?;
        Self::from_value(raw)
    }

    pub fn from_value(raw: Value) -> Result<Self, CniError> {
        let Value::Object(obj) = &raw else {
            return Err(list_error(format!("cannot unmarshal {} into map", go_type(&raw))));
        };
        let name = match obj.get("name") {
            None => return Err(list_error("no name")),
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(list_error(format!("invalid name type {}", go_type(other)))),
        };
        validate_network_name(&name)?;
        let declared = match obj.get("cniVersion") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(list_error(format!("invalid cniVersion type {}", go_type(other))));
            }
        };
        let also = match obj.get("cniVersions") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(list_error(format!(
                        "invalid cniVersions entry type {}",
                        go_type(other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(list_error(format!("invalid cniVersions type {}", go_type(other))));
            }
        };
        let cni_version = select_version(&declared, &also);
        let disable_check = match obj.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(list_error(format!(
                    "invalid disableCheck type {}",
                    go_type(other)
                )));
            }
        };
        let plugins = match obj.get("plugins") {
            None => return Err(list_error("no 'plugins' key")),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(list_error(format!("invalid 'plugins' type {}", go_type(other))));
            }
        };
        if plugins.is_empty() {
            return Err(list_error("no plugins in list"));
        }
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| {
                PluginConfig::from_value(p.clone())
                    .map_err(|e| CniError::InvalidConfig(format!("failed to parse plugin config {i}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
            raw,
        })
    }

    /// A single-plugin `.conf` document, wrapped into a list as libcni's `ConfListFromConf`.
    pub fn from_single_conf(bytes: &[u8]) -> Result<Self, CniError> {
        let raw: Value = serde_json::from_slice(bytes).map_err(conf_error)?;
        let plugin = PluginConfig::from_value(raw.clone())?;
        let mut list = Map::new();
        for key in ["name", "cniVersion", "disableCheck"] {
            if let Some(v) = raw.get(key) {
                list.insert(key.to_owned(), v.clone());
            }
        }
        list.insert("plugins".to_owned(), Value::Array(vec![plugin.raw.into()]));
        Self::from_value(Value::Object(list))
    }

    /// Reads one file: `.conflist` as a list, anything else as a single plugin.
    pub fn from_file(path: &Path) -> Result<Self, CniError> {
        let bytes = std::fs::read(path).map_err(CniError::io(path))?;
        let parsed = if path.extension().is_some_and(|e| e == "conflist") {
            Self::from_bytes(&bytes)
        } else {
            Self::from_single_conf(&bytes)
        };
        parsed.map_err(|e| {
            CniError::InvalidConfig(format!("failed to load CNI config file {}: {e}", path.display()))
        })
    }

    /// The network of a conf dir: its first configuration file in lexical order.
    pub fn load_from_dir(dir: &Path) -> Result<Self, CniError> {
        let first = conf_files(dir)?.into_iter().next();
        match first {
            Some(path) => Self::from_file(&path),
            None => Err(CniError::NotInitialized { dir: dir.to_owned() }),
        }
    }

    /// The document as loaded (what the result cache records as the attachment's config).
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

/// The configuration files of a conf dir in lexical order; a missing dir has none.
pub fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CniError::io(dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(CniError::io(dir))?;
        let path = entry.path();
        let is_conf = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONF_EXTENSIONS.contains(&e));
        if is_conf && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl PluginConfig {
    pub fn from_value(raw: Value) -> Result<Self, CniError> {
        let Value::Object(raw) = raw else {
            return Err(conf_error(format!(
                "json: cannot unmarshal {} into Go value of type types.NetConf",
                go_type(&raw)
            )));
        };
        let plugin_type = match raw.get("type") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Value::String(_)) => return Err(conf_error("missing 'type'")),
            Some(other) => {
                return Err(conf_error(format!(
                    "json: cannot unmarshal {} into Go struct field NetConf.type of type string",
                    go_type(other)
                )));
            }
        };
        if plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
            return Err(conf_error(format!("invalid plugin type {plugin_type:?}")));
        }
        let name = raw.get("name").and_then(Value::as_str).map(str::to_owned);
        let capabilities = match raw.get("capabilities") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                conf_error(format!(
                    "json: cannot unmarshal capabilities into map[string]bool: {e}"
                ))
            })?,
        };
        Ok(PluginConfig {
            plugin_type,
            name,
            capabilities,
            raw,
        })
    }

    /// libcni's `pluginDescription`: `type="bridge"`, plus ` name="…"` if the object has one.
    pub fn description(&self) -> String {
        match &self.name {
            Some(name) if !name.is_empty() => format!("type={:?} name={name:?}", self.plugin_type),
            _ => format!("type={:?}", self.plugin_type),
        }
    }

    /// The request configuration for one invocation (spec "Deriving request configuration"):
    /// the object unchanged but for `name` and `cniVersion` from the list, `prevResult`,
    /// `runtimeConfig` (capabilities the plugin declares and the runtime provides), and no
    /// `capabilities`.
    pub fn request(
        &self,
        network: &str,
        cni_version: &str,
        prev_result: Option<&Value>,
        capability_args: &Map<String, Value>,
    ) -> Value {
        let mut conf = self.raw.clone();
        conf.insert("name".to_owned(), network.into());
        conf.insert("cniVersion".to_owned(), cni_version.into());
        // libcni keeps `capabilities` in the bytes it sends; the spec says it must not be set,
        // and no plugin reads it: follow the spec.
        conf.remove("capabilities");
        match prev_result {
            Some(prev) => {
                conf.insert("prevResult".to_owned(), prev.clone());
            }
            None => {
                conf.remove("prevResult");
            }
        }
        let runtime_config: Map<String, Value> = self
            .capabilities
            .iter()
            .filter(|(_, supported)| **supported)
            .filter_map(|(cap, _)| capability_args.get(cap).map(|v| (cap.clone(), v.clone())))
            .collect();
        if !runtime_config.is_empty() {
            conf.insert("runtimeConfig".to_owned(), Value::Object(runtime_config));
        }
        Value::Object(conf)
    }
}

/// Spec section 1: the highest version among `cniVersion` and `cniVersions` that this client
/// supports; the declared `cniVersion` when none is known (the plugin then decides).
fn select_version(declared: &str, also: &[String]) -> String {
    std::iter::once(declared)
        .chain(also.iter().map(String::as_str))
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .max_by_key(|v| version_key(v))
        .unwrap_or(declared)
        .to_owned()
}

/// A semantic version as numbers for ordering (`"0.4.0"` → `[0, 4, 0]`); junk sorts first.
pub(crate) fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// libcni's `ValidateNetworkName`.
pub(crate) fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(list_error("missing network name"));
    }
    if !valid_identifier(name) {
        return Err(list_error(format!(
            "invalid characters found in network name; {name}"
        )));
    }
    Ok(())
}

/// CNI's identifier rule (container IDs, network names): `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub(crate) fn valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(v: Value) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::from_value(v)
    }

    #[test]
    fn parses_a_conflist() {
        let l = list(json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        }))
        .unwrap();
        assert_eq!(l.name, "cbr0");
        assert_eq!(l.cni_version, "1.0.0");
        assert!(l.plugins[1].capabilities["portMappings"]);
        assert_eq!(l.plugins[0].description(), r#"type="bridge""#);
    }

    #[test]
    fn errors_read_as_libcni() {
        let cases = [
            (
                json!({"plugins": []}),
                "error parsing configuration list: no name",
            ),
            (
                json!({"name": 3}),
                "error parsing configuration list: invalid name type float64",
            ),
            (
                json!({"name": "n"}),
                "error parsing configuration list: no 'plugins' key",
            ),
            (
                json!({"name": "n", "plugins": {}}),
                "error parsing configuration list: invalid 'plugins' type map[string]interface {}",
            ),
            (
                json!({"name": "n", "plugins": []}),
                "error parsing configuration list: no plugins in list",
            ),
            (
                json!({"name": "n", "plugins": [{"bridge": "x"}]}),
                "failed to parse plugin config 0: error parsing configuration: missing 'type'",
            ),
            (
                json!({"name": "n", "disableCheck": "yes", "plugins": []}),
                "error parsing configuration list: invalid disableCheck type string",
            ),
            (
                json!({"name": "a b", "plugins": [{"type": "x"}]}),
                "error parsing configuration list: invalid characters found in network name; a b",
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(list(doc).unwrap_err().to_string(), want);
        }
        assert!(NetworkConfigList::from_bytes(b"{").is_err());
    }

    #[test]
    fn selects_highest_supported_version() {
        let l = list(json!({
            "cniVersion": "0.4.0", "cniVersions": ["0.3.1", "1.0.0", "9.9.9"], "name": "n",
            "plugins": [{"type": "bridge"}]
        }))
        .unwrap();
        assert_eq!(l.cni_version, "1.0.0");
    }

    #[test]
    fn request_injects_runtime_fields_and_keeps_the_rest() {
        let l = list(json!({
            "cniVersion": "1.0.0", "name": "cbr0",
            "plugins": [{"type": "portmap", "snat": true, "capabilities": {"portMappings": true, "bandwidth": false}}]
        }))
        .unwrap();
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        caps.insert("bandwidth".into(), json!({"ingressRate": 1}));
        caps.insert("mac".into(), json!("00:11:22:33:44:55"));
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let req = l.plugins[0].request("cbr0", "1.0.0", Some(&prev), &caps);
        assert_eq!(
            req,
            json!({
                "type": "portmap", "snat": true, "name": "cbr0", "cniVersion": "1.0.0",
                "prevResult": prev,
                "runtimeConfig": {"portMappings": [{"hostPort": 8080}]}
            })
        );
        let first = l.plugins[0].request("cbr0", "1.0.0", None, &Map::new());
        assert!(first.get("prevResult").is_none() && first.get("runtimeConfig").is_none());
    }

    #[test]
    fn conf_dir_takes_first_file_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            NetworkConfigList::load_from_dir(dir.path()),
            Err(CniError::NotInitialized { .. })
        ));
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "not a config").unwrap();
        std::fs::create_dir(dir.path().join("05-dir.conf")).unwrap();
        let l = NetworkConfigList::load_from_dir(dir.path()).unwrap();
        assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("a", "0.4.0"));
        assert_eq!(l.plugins[0].plugin_type, "ptp");
        std::fs::write(dir.path().join("01-broken.conflist"), "{").unwrap();
        let err = NetworkConfigList::load_from_dir(dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("failed to load CNI config file"),
            "{err}"
        );
    }

    #[test]
    fn identifiers() {
        assert!(valid_identifier("abc-1.2_3"));
        for bad in ["", "-a", "a b", "a/b", "é"] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }
}
