//! Running one plugin binary (spec section 2): found in the plugin dirs, parameters in
//! `CNI_*` environment variables on top of our own environment (plugins need `PATH` for
//! iptables), the request configuration on stdin, the result or error on stdout.
//!
//! Plugins run in the runtime's network namespace — ours, or the `plugin_netns` given, entered
//! with `nsenter --net` (not `ip netns exec`, which remounts /sys), so a test can put a whole
//! "node" into a namespace of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::Command as Process;

use crate::config::PluginConfig;
use crate::error::{CniError, Command, PluginError};
use crate::result::{AddResult, VersionResult};

/// Where the plugins are and how to run them.
#[derive(Clone, Debug)]
pub struct Invoker {
    pub plugin_dirs: Vec<PathBuf>,
    /// Run plugins inside this network namespace (a pinned netns file) instead of ours.
    pub plugin_netns: Option<PathBuf>,
    /// How long one plugin may run before it is killed.
    pub timeout: Duration,
}

/// The per-attachment parameters (spec section 3, "Attachment Parameters"), as libcni's
/// `RuntimeConf`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The sandbox's netns path; `None` on DEL when the namespace is already gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS` pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, …), passed to the plugins that declare them.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// `CNI_ARGS`: `K=V` pairs joined by `;`.
    pub fn cni_args(&self) -> String {
        let pairs: Vec<String> = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join(";")
    }
}

/// ETXTBSY: the binary is still open for writing somewhere (being installed, or a concurrent
/// fork inherited the writer's descriptor); libcni retries these.
const TEXT_FILE_BUSY: i32 = 26;
const BUSY_RETRIES: u32 = 10;

impl Invoker {
    pub fn new(plugin_dirs: Vec<PathBuf>) -> Self {
        Invoker {
            plugin_dirs,
            plugin_netns: None,
            timeout: Duration::from_secs(120),
        }
    }

    /// The first regular file named `plugin_type` in the plugin dirs (libcni's `FindInPath`).
    pub fn find(&self, plugin_type: &str) -> Result<PathBuf, CniError> {
        if !plugin_type.is_empty() && !plugin_type.contains('/') {
            for dir in &self.plugin_dirs {
                let path = dir.join(plugin_type);
                if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    return Ok(path);
                }
            }
        }
        Err(CniError::PluginNotFound {
            plugin: plugin_type.to_owned(),
            paths: self.plugin_dirs.clone(),
        })
    }

    /// ADD: the plugin's result.
    pub async fn add(
        &self,
        plugin: &PluginConfig,
        request: &Value,
        rt: &RuntimeConf,
    ) -> Result<AddResult, CniError> {
        let stdout = self.run(plugin, Command::Add, request, rt).await?;
        let raw: Value = serde_json::from_slice(&stdout).map_err(|e| CniError::InvalidResult {
            plugin: plugin.description(),
            message: format!("{e}: {:?}", String::from_utf8_lossy(&stdout)),
        })?;
        AddResult::from_json(raw).map_err(|message| CniError::InvalidResult {
            plugin: plugin.description(),
            message,
        })
    }

    /// DEL or CHECK: success or the plugin's error; output on success is ignored.
    pub async fn run_without_result(
        &self,
        plugin: &PluginConfig,
        command: Command,
        request: &Value,
        rt: &RuntimeConf,
    ) -> Result<(), CniError> {
        self.run(plugin, command, request, rt).await.map(drop)
    }

    /// VERSION: which spec versions the plugin speaks.
    pub async fn version(&self, plugin: &PluginConfig, cni_version: &str) -> Result<VersionResult, CniError> {
        let request = serde_json::json!({ "cniVersion": cni_version });
        let stdout = self
            .run(plugin, Command::Version, &request, &RuntimeConf::default())
            .await?;
        serde_json::from_slice(&stdout).map_err(|e| CniError::InvalidResult {
            plugin: plugin.description(),
            message: format!("decoding version info: {e}"),
        })
    }

    async fn run(
        &self,
        plugin: &PluginConfig,
        command: Command,
        request: &Value,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, CniError> {
        let path = self.find(&plugin.plugin_type)?;
        let stdin = serde_json::to_vec(request).expect("a JSON value serializes");
        let run = self.run_binary(&path, command, &stdin, rt);
        let output = match tokio::time::timeout(self.timeout, run).await {
            Ok(output) => output?,
            Err(_) => {
                return Err(CniError::Timeout {
                    plugin: plugin.description(),
                    command,
                    after: self.timeout,
                });
            }
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            if !stderr.trim().is_empty() {
                tracing::debug!(plugin = %plugin.plugin_type, command = command.env_value(), stderr = %stderr.trim(), "CNI plugin stderr");
            }
            return Ok(output.stdout);
        }
        Err(CniError::Plugin {
            plugin: plugin.description(),
            command,
            error: plugin_error(&output.status, &output.stdout, &stderr),
        })
    }

    async fn run_binary(
        &self,
        path: &Path,
        command: Command,
        stdin: &[u8],
        rt: &RuntimeConf,
    ) -> Result<std::process::Output, CniError> {
        let cni_path = self
            .plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut attempt = 0;
        let mut child = loop {
            let mut process = match &self.plugin_netns {
                Some(netns) => {
                    let mut p = Process::new("nsenter");
                    p.arg(format!("--net={}", netns.display())).arg("--").arg(path);
                    p
                }
                None => Process::new(path),
            };
            process
                .env("CNI_COMMAND", command.env_value())
                .env("CNI_CONTAINERID", &rt.container_id)
                .env(
                    "CNI_NETNS",
                    rt.netns.as_deref().map(Path::as_os_str).unwrap_or_default(),
                )
                .env("CNI_ARGS", rt.cni_args())
                .env("CNI_IFNAME", &rt.ifname)
                .env("CNI_PATH", &cni_path)
                .env("PATH", search_path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            match process.spawn() {
                Ok(child) => break child,
                Err(e) if e.raw_os_error() == Some(TEXT_FILE_BUSY) && attempt < BUSY_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(source) => {
                    return Err(CniError::Spawn {
                        path: path.to_owned(),
                        source,
                    });
                }
            }
        };
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // Write while reading: a plugin that prints before reading all of stdin must not
        // deadlock us. A plugin that exits without reading (VERSION needs nothing) is fine.
        let write = async move {
            let _ = pipe.write_all(stdin).await;
            drop(pipe);
        };
        let (_, output) = tokio::join!(write, child.wait_with_output());
        output.map_err(|source| CniError::Spawn {
            path: path.to_owned(),
            source,
        })
    }
}

/// Our `PATH` with the sbin directories added if missing: plugins run `iptables`, which
/// Debian installs in /usr/sbin, and a service manager's `PATH` may lack it.
fn search_path() -> std::ffi::OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    for sbin in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|d| d == Path::new(sbin)) {
            dirs.push(sbin.into());
        }
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

/// A failed plugin's error, as libcni's `pluginErr`: the JSON error object on stdout, else
/// stderr, else the exit status.
fn plugin_error(status: &std::process::ExitStatus, stdout: &[u8], stderr: &str) -> PluginError {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        let msg = if stderr.is_empty() {
            format!("netplugin failed with no error message: {status}")
        } else {
            format!("netplugin failed: {stderr:?}")
        };
        return PluginError {
            msg,
            ..PluginError::default()
        };
    }
    serde_json::from_slice(stdout).unwrap_or_else(|e| PluginError {
        msg: format!(
            "netplugin failed but error parsing its diagnostic message {:?}: {e}",
            String::from_utf8_lossy(stdout)
        ),
        ..PluginError::default()
    })
}
