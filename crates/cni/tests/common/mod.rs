//! Network namespaces for tests: every test builds its own "node" namespace (no interface but
//! loopback and a dummy carrying the node's address, so no route leads out of it) and pod
//! namespaces, runs the plugins in the node namespace, and removes every namespace when its
//! guard drops — on failure too. The bridge, veths and iptables rules live inside the node
//! namespace and go with it.

#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(sweep_stale);
        let name = format!(
            "rkcni-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        checked(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            path: PathBuf::from("/run/netns").join(&name),
            name,
        };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace (`nsenter --net`, which leaves /sys alone).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path.display()))
            .arg("--")
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread that entered this namespace (threads have their own).
    pub fn within<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path.clone();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .expect("the thread inside the namespace did not panic")
    }

    /// A TCP server inside this namespace answering every connection with `reply`, until
    /// the returned guard drops.
    pub fn serve(&self, port: u16, reply: &'static str) -> Server {
        self.serve_on("0.0.0.0", port, reply)
    }

    /// As `serve`, on every IPv4 and IPv6 address (`[::]`, dual-stack socket).
    pub fn serve6(&self, port: u16, reply: &'static str) -> Server {
        self.serve_on("::", port, reply)
    }

    fn serve_on(&self, bind: &'static str, port: u16, reply: &'static str) -> Server {
        let path = self.path.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let listener = TcpListener::bind((bind, port)).expect("bind in the pod");
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let _ = conn.write_all(reply.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server ready");
        Server {
            stop,
            thread: Some(thread),
        }
    }

    /// Connects from inside this namespace and reads what the server says.
    pub fn fetch(&self, addr: SocketAddr) -> std::io::Result<String> {
        self.within(move || {
            let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut text = String::new();
            conn.read_to_string(&mut text)?;
            Ok(text)
        })
    }

    /// `busybox ping` from inside this namespace; retried a few seconds (IPv6 addresses may
    /// still be settling).
    pub fn ping(&self, ip: std::net::IpAddr) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let ip = ip.to_string();
        loop {
            let out = self.run(&["busybox", "ping", "-c", "1", "-W", "2", &ip]);
            if out.status.success() {
                return true;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "ping {ip} from {}: {}{}",
                    self.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn has_link(&self, name: &str) -> bool {
        self.run(&["ip", "link", "show", name]).status.success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

pub struct Server {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Deletes the namespaces of test processes that died without dropping their guards
/// (killed on a timeout): ours are named `rkcni-<pid>-…`.
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("rkcni-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

fn enter(path: &Path) {
    let ns = File::open(path).expect("open netns");
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
}

fn checked(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
