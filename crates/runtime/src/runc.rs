//! The OCI runtime's command line (runc; crun and youki take the same commands), with its own
//! state directory (`--root`) so rkube's containers never mix with anyone else's.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

#[derive(Clone, Debug)]
pub struct Runc {
    pub binary: PathBuf,
    pub root: PathBuf,
}

impl Runc {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        command
    }

    /// `run --keep` in the foreground: runc waits for the container and exits with its status
    /// (128 + signal when killed); `--keep` leaves the cgroup for the OOM check until `delete`.
    pub fn run_command(&self, id: &str, bundle: &Path, pid_file: &Path, log: &Path) -> Command {
        let mut command = self.command();
        command.arg("--log").arg(log).args(["--log-format", "json"]);
        command
            .args(["run", "--keep", "--bundle"])
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id);
        command
    }

    /// `exec` of a process spec in the foreground (runc exits with the process's status).
    pub fn exec_command(&self, id: &str, process_file: &Path) -> Command {
        let mut command = self.command();
        command.arg("exec").arg("--process").arg(process_file).arg(id);
        command
    }

    /// Sends a signal to the container's init process.
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), Error> {
        self.checked(self.command().args(["kill", id, signal]), "kill")
    }

    /// Deletes the container (killing it with `force`); an unknown container is fine.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let mut command = self.command();
        command.arg("delete");
        if force {
            command.arg("--force");
        }
        match self.checked(command.arg(id), "delete") {
            Err(Error::Command { message, .. }) if message.contains("does not exist") => Ok(()),
            other => other,
        }
    }

    fn checked(&self, command: &mut Command, what: &str) -> Result<(), Error> {
        let out = command.output().map_err(Error::io(&self.binary))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::Command {
            command: format!("{} {what}", self.binary.display()),
            message: error_message(&String::from_utf8_lossy(&out.stderr)),
        })
    }
}

/// The message of runc's last error line (`time=… level=error msg="…"` or JSON), else the text.
pub fn error_message(text: &str) -> String {
    for line in text.lines().rev() {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
            && value["level"] == "error"
            && let Some(msg) = value["msg"].as_str()
        {
            return msg.to_owned();
        }
        if let Some(rest) = line.split_once(" msg=").map(|(_, r)| r)
            && line.contains("level=error")
        {
            let msg = rest.trim();
            return serde_json::from_str::<String>(msg).unwrap_or_else(|_| msg.to_owned());
        }
    }
    text.trim().to_owned()
}

/// Gives `command` a new pseudo-terminal (of `size` rows × columns) as its stdin, stdout and
/// stderr: runc then proxies between it and the container's terminal. Returns the master side
/// and the terminal's path.
pub(crate) fn on_new_terminal(
    command: &mut Command,
    size: Option<(u16, u16)>,
) -> Result<(std::fs::File, Option<PathBuf>), Error> {
    let size = size.map(|(rows, columns)| nix::pty::Winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = nix::pty::openpty(size.as_ref(), None).map_err(|e| Error::Command {
        command: "openpty".into(),
        message: e.to_string(),
    })?;
    let path = nix::unistd::ttyname(&pty.slave).ok();
    let slave = std::fs::File::from(pty.slave);
    let pts = Path::new("/dev/pts");
    command
        .stdin(slave.try_clone().map_err(Error::io(pts))?)
        .stdout(slave.try_clone().map_err(Error::io(pts))?)
        .stderr(slave);
    Ok((std::fs::File::from(pty.master), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_error_messages() {
        let json = "{\"level\":\"info\",\"msg\":\"x\"}\n{\"level\":\"error\",\"msg\":\"runc run failed: exec: \\\"nope\\\": executable file not found in $PATH\",\"time\":\"t\"}\n";
        assert_eq!(
            error_message(json),
            "runc run failed: exec: \"nope\": executable file not found in $PATH"
        );
        let text = "time=\"2026-01-01T00:00:00Z\" level=error msg=\"container does not exist\"\n";
        assert_eq!(error_message(text), "container does not exist");
        assert_eq!(error_message("plain\n"), "plain");
    }
}
