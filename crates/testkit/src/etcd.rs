//! A real `etcd` server as a child process, for the etcd store backend's tests.
//!
//! Why a real process and not a mock: `store-etcd` is a thin mapping onto etcd's API, so what
//! needs testing is exactly etcd's behaviour (error strings, compaction, lease timing, the watch
//! protocol, durability across a crash). Why this shape:
//!
//! - Ports are picked at run time on 127.0.0.1 (client and peer), so parallel tests and other
//!   users of the machine never collide; a lost bind race is retried with fresh ports.
//! - Data lives in a temporary directory unless the caller names one, and etcd runs with its
//!   default durability (fsync on commit, no `--unsafe-no-fsync`): the crash test relies on it.
//! - etcd's output goes to `etcd.log` in the temporary directory, not the test's terminal; a
//!   start-up failure quotes its tail.
//! - The child is stopped by its PID (SIGKILL, then reaped) in [`EtcdProcess::kill`] and on drop,
//!   and is asked to die with the thread that spawned it (Linux `PR_SET_PDEATHSIG`), so a test
//!   process killed by a timeout does not leave an etcd behind. Start and restart etcd from a
//!   thread that lives as long as the server (the test's thread or a runtime worker, not a
//!   short-lived `spawn_blocking` thread).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// How long etcd may take to start serving before the start counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a start is retried with fresh ports when another process took one of them.
const BIND_ATTEMPTS: usize = 4;
/// Lines of etcd's log quoted in a start-up error.
const LOG_TAIL_LINES: usize = 25;

/// A single-member etcd cluster on free loopback ports. Killed (by PID) when dropped.
#[derive(Debug)]
pub struct EtcdProcess {
    child: Option<Child>,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Holds the log, and the data unless the caller gave a data directory. Declared last so it
    /// is removed only after `drop` has killed the child.
    _tmp: TempDir,
}

impl EtcdProcess {
    /// Starts etcd on a fresh, empty data directory inside a temporary directory.
    pub fn start() -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("testkit-etcd-").tempdir()?;
        let data_dir = tmp.path().join("data");
        Self::launch(tmp, data_dir)
    }

    /// Starts etcd on `data_dir` (created when missing; existing data is recovered).
    pub fn start_in(data_dir: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("testkit-etcd-").tempdir()?;
        Self::launch(tmp, data_dir.into())
    }

    fn launch(tmp: TempDir, data_dir: PathBuf) -> anyhow::Result<Self> {
        let log_path = tmp.path().join("etcd.log");
        let mut etcd = EtcdProcess {
            child: None,
            client_port: 0,
            peer_port: 0,
            data_dir,
            log_path,
            _tmp: tmp,
        };
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            [etcd.client_port, etcd.peer_port] = crate::free_ports::<2>();
            match etcd.spawn_and_wait() {
                Ok(()) => return Ok(etcd),
                // Someone took a port between our probe and etcd's bind: try other ports.
                Err(e) if etcd.log_tail().contains("address already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt")).context("etcd could not bind free ports")
    }

    /// The client URL in etcd's own form, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The datastore URL rkube accepts, `etcd://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    /// The PID of the running etcd, `None` after [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// etcd's combined stdout and stderr (appended to across restarts).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Kills etcd with SIGKILL, as a crash or power cut would, and reaps it. No-op when stopped.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is kill(pid, SIGKILL); the unreaped child keeps its PID reserved.
            child.kill().context("SIGKILL etcd")?;
            child.wait().context("reap etcd")?;
        }
        Ok(())
    }

    /// Starts etcd again on the same data directory and ports (killing it first if it runs).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn_and_wait()
    }

    /// Spawns etcd on the current ports and waits until `/health` reports healthy.
    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut command = self.command(log)?;
        let child = command
            .spawn()
            .context("spawn etcd (is /usr/bin/etcd installed?)")?;
        self.child = Some(child);
        match self.wait_until_healthy() {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.kill();
                Err(e.context(format!(
                    "etcd did not start; tail of {}:\n{}",
                    self.log_path.display(),
                    self.log_tail()
                )))
            }
        }
    }

    fn command(&self, log: File) -> anyhow::Result<Command> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .arg("--name=testkit")
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=testkit={peer}"))
            .arg("--initial-cluster-state=new")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // etcd also reads ETCD_* variables and refuses flags they shadow; start from a clean slate.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        die_with_parent(&mut command);
        Ok(command)
    }

    fn wait_until_healthy(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            if let Some(status) = self.child.as_mut().expect("spawned").try_wait()? {
                self.child = None;
                bail!("etcd exited with {status} before serving");
            }
            if healthy(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("etcd did not report healthy on {addr} within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines of etcd's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `GET /health` over plain HTTP/1.1: true once etcd has a leader and serves reads.
fn healthy(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.set_write_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    probe().is_ok_and(|r| r.starts_with("HTTP/1.1 200") && r.contains(r#""health":"true""#))
}

/// Asks Linux to SIGKILL the child when the spawning thread exits, so a test process that dies
/// without running destructors (timeout, abort) does not leave etcd running.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
