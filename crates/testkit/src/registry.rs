//! A real Docker distribution registry (Debian's `docker-registry`, distribution 2.8) as a
//! child process, for the image pull tests, and `skopeo` to push test images into it.
//!
//! Same rules as the etcd harness: 127.0.0.1 on a free port (retried when another process took
//! it), files in a temporary directory, output in `registry.log`, stopped by PID on drop and
//! asked to die with the spawning thread. With `start_with_htpasswd` the registry demands
//! HTTP basic auth against a bcrypt htpasswd file (made by `htpasswd` from apache2-utils).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const BIND_ATTEMPTS: usize = 4;

/// A registry on a free loopback port. Killed (by PID) when dropped.
#[derive(Debug)]
pub struct DockerRegistry {
    child: Option<Child>,
    ip: Ipv4Addr,
    port: u16,
    credentials: Option<(String, String)>,
    log_path: PathBuf,
    _tmp: TempDir,
}

impl DockerRegistry {
    /// A registry anyone may pull from and push to.
    pub fn start() -> anyhow::Result<Self> {
        Self::launch(None, Ipv4Addr::LOCALHOST)
    }

    /// A registry anyone may use, listening on `ip` (an address of the network namespace the
    /// calling thread is in: nodes of a multi-node test reach it over their underlay).
    pub fn start_on(ip: Ipv4Addr) -> anyhow::Result<Self> {
        Self::launch(None, ip)
    }

    /// A registry that demands `user`/`password` (HTTP basic auth) for every request.
    pub fn start_with_htpasswd(user: &str, password: &str) -> anyhow::Result<Self> {
        Self::launch(Some((user.to_owned(), password.to_owned())), Ipv4Addr::LOCALHOST)
    }

    fn launch(credentials: Option<(String, String)>, ip: Ipv4Addr) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new().prefix("testkit-registry-").tempdir()?;
        let auth = match &credentials {
            Some((user, password)) => {
                let output = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .context("run htpasswd (is apache2-utils installed?)")?;
                if !output.status.success() {
                    bail!("htpasswd failed: {}", String::from_utf8_lossy(&output.stderr));
                }
                let path = tmp.path().join("htpasswd");
                std::fs::write(&path, &output.stdout)?;
                format!(
                    "auth:\n  htpasswd:\n    realm: testkit-registry\n    path: {}\n",
                    path.display()
                )
            }
            None => String::new(),
        };
        let log_path = tmp.path().join("registry.log");
        let mut registry = DockerRegistry {
            child: None,
            ip,
            port: 0,
            credentials,
            log_path,
            _tmp: tmp,
        };
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            registry.port = crate::free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}:{}\n  secret: testkit\n{auth}",
                registry._tmp.path().join("storage").display(),
                registry.ip,
                registry.port,
            );
            let config_path = registry._tmp.path().join("config.yml");
            std::fs::write(&config_path, config)?;
            match registry.spawn_and_wait(&config_path) {
                Ok(()) => return Ok(registry),
                Err(e) if registry.log_tail().contains("address already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt")).context("docker-registry could not bind a free port")
    }

    fn spawn_and_wait(&mut self, config: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)?;
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        crate::etcd::die_with_parent(&mut command);
        self.child = Some(
            command
                .spawn()
                .context("spawn docker-registry (is the docker-registry package installed?)")?,
        );
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((self.ip, self.port));
        loop {
            if let Some(status) = self.child.as_mut().expect("spawned").try_wait()? {
                self.child = None;
                bail!(
                    "docker-registry exited with {status} before serving:\n{}",
                    self.log_tail()
                );
            }
            if serving(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "docker-registry did not serve on {addr} within {START_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT` (the address it listens on), the registry part of image references.
    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Pushes an image with skopeo: `source` in skopeo's transport syntax
    /// (`oci-archive:/path.tar`, `docker-archive:/path.tar`), `name` as `library/busybox:1.36`.
    pub fn push(&self, source: &str, name: &str) -> anyhow::Result<()> {
        let mut command = Command::new("skopeo");
        command
            .args(["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"])
            .stdin(Stdio::null());
        if let Some((user, password)) = &self.credentials {
            command.arg(format!("--dest-creds={user}:{password}"));
        }
        let output = command
            .arg(source)
            .arg(format!("docker://{}/{name}", self.host()))
            .output()
            .context("run skopeo (is the skopeo package installed?)")?;
        if !output.status.success() {
            bail!(
                "skopeo copy {source} to {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Stops the registry (SIGKILL by PID, then reaped). No-op when stopped.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `GET /v2/` answers (200, or 401 when auth is on).
fn serving(addr: SocketAddr) -> bool {
    let probe = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = [0u8; 16];
        let n = stream.read(&mut response)?;
        Ok(String::from_utf8_lossy(&response[..n]).into_owned())
    };
    probe().is_ok_and(|r| r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.1 401"))
}
