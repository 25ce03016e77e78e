//! The files a container directory holds between the runtime and its shim, written
//! atomically (temp file + rename) so a reader never sees half a file.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ContainerConfig, Error};

/// `container.json`: what the runtime created the container from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub pod_uid: String,
    pub created_at: Timestamp,
    pub cgroups_path: String,
    pub config: ContainerConfig,
}

/// `shim.json`: what the shim needs to run the container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub bundle: PathBuf,
    pub log_path: PathBuf,
    pub cgroups_path: String,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub tty: bool,
}

/// `state.json`: written by the shim once the container runs and again when it has exited.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimState {
    pub shim_pid: u32,
    pub pid: Option<i32>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Why the container did not start (runc's error).
    pub start_error: Option<String>,
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path)(e)),
    }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Error> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value).expect("state serializes");
    std::fs::write(&tmp, bytes).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}
