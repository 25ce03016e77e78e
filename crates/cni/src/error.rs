//! What can go wrong talking to CNI plugins. Messages follow libcni's, which containerd puts in
//! the kubelet's `FailedCreatePodSandBox` events (`plugin type="bridge" name="cbr0" failed
//! (add): …`), so users see the wording they know.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The error object a plugin prints on failure (spec section 5, "Error").
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    #[serde(rename = "cniVersion", default, skip_serializing_if = "String::is_empty")]
    pub cni_version: String,
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// Well-known error codes (spec section 5).
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const PLUGIN_NOT_AVAILABLE_LIMITED_CONNECTIVITY: u32 = 51;
}

impl fmt::Display for PluginError {
    // libcni's types.Error: "msg; details".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if !self.details.is_empty() {
            write!(f, "; {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for PluginError {}

/// Which CNI operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub fn env_value(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
        }
    }

    /// libcni's word in "plugin … failed (add)".
    fn verb(self) -> &'static str {
        match self {
            Command::Add => "add",
            Command::Del => "delete",
            Command::Check => "check",
            Command::Version => "version",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A network configuration file or object that does not parse or validate.
    #[error("{0}")]
    InvalidConfig(String),
    /// The conf dir holds no usable network configuration (containerd's wording; the kubelet
    /// reports it in the node's NetworkReady condition).
    #[error("no network config found in {}: cni plugin not initialized", .dir.display())]
    NotInitialized { dir: PathBuf },
    #[error("failed to find plugin {plugin:?} in path {}", go_list(.paths))]
    PluginNotFound { plugin: String, paths: Vec<PathBuf> },
    /// A container ID, interface or network name CNI does not accept.
    #[error("{0}")]
    InvalidArgument(PluginError),
    /// The plugin ran and reported failure. `plugin` is libcni's description of it: its type,
    /// and its own name if the plugin object has one (`type="bridge"`).
    #[error("plugin {plugin} failed ({}): {error}", .command.verb())]
    Plugin {
        plugin: String,
        command: Command,
        error: PluginError,
    },
    #[error("plugin {plugin} failed ({}): timed out after {after:?}", .command.verb())]
    Timeout {
        plugin: String,
        command: Command,
        after: Duration,
    },
    #[error("failed to run plugin {}: {source}", .path.display())]
    Spawn { path: PathBuf, source: std::io::Error },
    /// The plugin succeeded but printed something that is not a result.
    #[error("plugin {plugin} returned an invalid result: {message}")]
    InvalidResult { plugin: String, message: String },
    #[error("configuration version {version:?} does not support the CHECK command")]
    CheckUnsupported { version: String },
    /// CHECK of an attachment that was never added (or already deleted): no cached result.
    #[error("network {network:?} is not set up for container {container_id:?} ({ifname})")]
    NotSetUp {
        network: String,
        container_id: String,
        ifname: String,
    },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl CniError {
    /// The plugin's CNI error code, when a plugin reported one.
    pub fn code(&self) -> Option<u32> {
        match self {
            CniError::Plugin { error, .. } | CniError::InvalidArgument(error) => Some(error.code),
            _ => None,
        }
    }

    /// Code 11: a transient condition; the caller should retry later.
    pub fn is_try_again_later(&self) -> bool {
        self.code() == Some(codes::TRY_AGAIN_LATER)
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CniError {
        let path = path.into();
        move |source| CniError::Io { path, source }
    }
}

/// Go's `%s` of a `[]string`: `[/usr/lib/cni /opt/cni/bin]`.
fn go_list(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_libcni() {
        let e = CniError::Plugin {
            plugin: r#"type="bridge" name="cbr0""#.into(),
            command: Command::Add,
            error: PluginError {
                cni_version: "1.0.0".into(),
                code: 999,
                msg: "failed to allocate for range 0".into(),
                details: "no IP addresses available".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            r#"plugin type="bridge" name="cbr0" failed (add): failed to allocate for range 0; no IP addresses available"#
        );
        assert_eq!(e.code(), Some(999));
        let e = CniError::PluginNotFound {
            plugin: "flannel".into(),
            paths: vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"failed to find plugin "flannel" in path [/usr/lib/cni /opt/cni/bin]"#
        );
    }

    #[test]
    fn plugin_error_parses_spec_example() {
        let e: PluginError = serde_json::from_str(
            r#"{"cniVersion":"1.1.0","code":7,"msg":"Invalid Configuration","details":"Network 192.168.0.0/31 too small to allocate from."}"#,
        )
        .unwrap();
        assert_eq!(e.code, codes::INVALID_NETWORK_CONFIG);
        assert_eq!(
            e.to_string(),
            "Invalid Configuration; Network 192.168.0.0/31 too small to allocate from."
        );
    }
}
