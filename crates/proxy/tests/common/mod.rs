//! A node in a network namespace for the proxy's root tests: a bridge `br0` (10.42.0.1/24)
//! with pods (each its own netns, 10.42.0.10+i, hairpin on their bridge port, as the CNI
//! bridge plugin's `hairpinMode` sets it), and an "outside" netns on the underlay
//! (node 192.168.50.2, outside 192.168.50.1). No route leaves the namespaces.
//!
//! Servers and clients are threads that entered a namespace: a TCP/UDP server answers
//! `"<pod name> <peer address>"`, so tests see both who answered and whom it saw.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::{Proxier, SyncStats};
use testkit::netns::NetNs;

pub const NODE_IP: &str = "192.168.50.2";
pub const OUTSIDE_IP: &str = "192.168.50.1";
pub const BRIDGE_IP: &str = "10.42.0.1";
/// An externalIP the outside routes to the node.
pub const EXTERNAL_IP: &str = "192.168.50.100";
pub const NODE: &str = "node-a";
pub const NODE_IP6: &str = "fd00:50::2";
pub const OUTSIDE_IP6: &str = "fd00:50::1";
pub const BRIDGE_IP6: &str = "fd00:42::1";

/// `ip -n <ns> <args…>` (whitespace-separated).
fn ip_in(ns: &str, args: &str) {
    let mut full = vec!["ip", "-n", ns];
    full.extend(args.split_whitespace());
    run(&full);
}

pub struct Pod {
    pub ns: NetNs,
    pub ip: String,
    pub ip6: String,
    pub name: String,
}

pub struct Lab {
    pub node: NetNs,
    pub outside: NetNs,
    pub pods: Vec<Pod>,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(ns: &NetNs, setting: &str) {
    run(&[
        "nsenter",
        &format!("--net={}", ns.path().display()),
        "sysctl",
        "-qw",
        setting,
    ]);
}

/// Runs `f` on a thread inside `ns`.
pub fn in_ns<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

impl Lab {
    pub fn new(pods: usize) -> Lab {
        let node = NetNs::create("pxn").unwrap();
        let outside = NetNs::create("pxo").unwrap();
        // No duplicate address detection: addresses (link-local ones too) work at once.
        for ns in [&node, &outside] {
            sysctl(ns, "net.ipv6.conf.default.accept_dad=0");
            sysctl(ns, "net.ipv6.conf.all.accept_dad=0");
        }
        let n = node.name().to_owned();
        run(&["ip", "-n", &n, "link", "add", "br0", "type", "bridge"]);
        run(&[
            "ip",
            "-n",
            &n,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/24"),
            "dev",
            "br0",
        ]);
        ip_in(&n, &format!("addr add {BRIDGE_IP6}/64 dev br0 nodad"));
        run(&["ip", "-n", &n, "link", "set", "br0", "up"]);
        run(&[
            "ip",
            "-n",
            &n,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.name(),
        ]);
        run(&[
            "ip",
            "-n",
            &n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "eth0",
        ]);
        ip_in(&n, &format!("addr add {NODE_IP6}/64 dev eth0 nodad"));
        run(&["ip", "-n", &n, "link", "set", "eth0", "up"]);
        ip_in(&n, &format!("-6 route add default via {OUTSIDE_IP6}"));
        // A default route: connect() needs a route to a cluster IP before DNAT picks the pod.
        run(&["ip", "-n", &n, "route", "add", "default", "via", OUTSIDE_IP]);
        let o = outside.name().to_owned();
        run(&[
            "ip",
            "-n",
            &o,
            "addr",
            "add",
            &format!("{OUTSIDE_IP}/24"),
            "dev",
            "eth0",
        ]);
        ip_in(&o, &format!("addr add {OUTSIDE_IP6}/64 dev eth0 nodad"));
        run(&["ip", "-n", &o, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &o, "route", "add", EXTERNAL_IP, "via", NODE_IP]);
        sysctl(&node, "net.ipv4.ip_forward=1");
        sysctl(&node, "net.bridge.bridge-nf-call-iptables=1");
        sysctl(&node, "net.ipv6.conf.all.forwarding=1");
        sysctl(&node, "net.bridge.bridge-nf-call-ip6tables=1");
        let mut lab = Lab {
            node,
            outside,
            pods: Vec::new(),
        };
        for i in 0..pods {
            lab.add_pod(i);
        }
        lab
    }

    fn add_pod(&mut self, i: usize) {
        let ns = NetNs::create("pxp").unwrap();
        sysctl(&ns, "net.ipv6.conf.default.accept_dad=0");
        sysctl(&ns, "net.ipv6.conf.all.accept_dad=0");
        let n = self.node.name().to_owned();
        let host_if = format!("vh{i}");
        run(&[
            "ip",
            "-n",
            &n,
            "link",
            "add",
            &host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        run(&["ip", "-n", &n, "link", "set", &host_if, "master", "br0", "up"]);
        run(&[
            "bridge", "-n", &n, "link", "set", "dev", &host_if, "hairpin", "on",
        ]);
        let ip = format!("10.42.0.{}", 10 + i);
        run(&[
            "ip",
            "-n",
            ns.name(),
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", ns.name(), "link", "set", "eth0", "up"]);
        run(&["ip", "-n", ns.name(), "route", "add", "default", "via", BRIDGE_IP]);
        let ip6 = format!("fd00:42::{}", 10 + i);
        ip_in(ns.name(), &format!("addr add {ip6}/64 dev eth0 nodad"));
        ip_in(ns.name(), &format!("-6 route add default via {BRIDGE_IP6}"));
        self.pods.push(Pod {
            ns,
            ip,
            ip6,
            name: format!("pod{i}"),
        });
    }

    /// A TCP server on `port` in pod `i`: each connection gets `"<name> <peer ip>"`.
    pub fn serve_tcp(&self, i: usize, port: u16) {
        let pod = &self.pods[i];
        let (tx, rx) = std::sync::mpsc::channel();
        let path = pod.ns.path();
        let name = pod.name.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            // Both families on one socket (IPV6_V6ONLY is off by default).
            let listener = TcpListener::bind(("::", port)).unwrap();
            tx.send(()).unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let peer = conn
                    .peer_addr()
                    .map(|a| a.ip().to_canonical().to_string())
                    .unwrap_or_default();
                let _ = conn.write_all(format!("{name} {peer}").as_bytes());
            }
        });
        rx.recv().unwrap();
    }

    /// A UDP server on `port` in pod `i`: each datagram is answered with `"<name> <peer ip>"`.
    pub fn serve_udp(&self, i: usize, port: u16) {
        let pod = &self.pods[i];
        let (tx, rx) = std::sync::mpsc::channel();
        let path = pod.ns.path();
        let name = pod.name.clone();
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind(("::", port)).unwrap();
            tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            while let Ok((_, peer)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(format!("{name} {}", peer.ip().to_canonical()).as_bytes(), peer);
            }
        });
        rx.recv().unwrap();
    }

    /// Programs the node's rules.
    pub fn sync(&self, proxier: &mut Proxier, services: &[Service], slices: &[EndpointSlice]) -> SyncStats {
        in_ns(&self.node, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(proxier.sync(services, slices))
                .unwrap()
        })
    }

    /// Runs a shell command inside the node's namespace (nft / iptables listings).
    pub fn node_output(&self, args: &[&str]) -> String {
        let mut full = vec![
            "nsenter".to_string(),
            format!("--net={}", self.node.path().display()),
        ];
        full.extend(args.iter().map(|a| a.to_string()));
        let out = Command::new(&full[0]).args(&full[1..]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

/// One TCP request from inside `ns`: the server's answer, or the error (refused, timeout).
pub fn tcp_get(ns: &NetNs, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    in_ns(ns, || {
        let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut out = String::new();
        conn.read_to_string(&mut out)?;
        Ok(out)
    })
}

/// Answers of `n` requests (who answered).
pub fn who_answers(ns: &NetNs, addr: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..n {
        let answer = tcp_get(ns, addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        let who = answer.split(' ').next().unwrap().to_owned();
        *seen.entry(who).or_insert(0) += 1;
    }
    seen
}

/// A UDP client socket living in `ns` on its own thread; `ask` sends one datagram from the
/// same source port each time and waits for the answer.
pub struct UdpClient {
    tx: std::sync::mpsc::Sender<(String, std::sync::mpsc::Sender<std::io::Result<String>>)>,
}

impl UdpClient {
    pub fn new(ns: &NetNs) -> UdpClient {
        let (tx, rx) =
            std::sync::mpsc::channel::<(String, std::sync::mpsc::Sender<std::io::Result<String>>)>();
        let path = ns.path();
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).unwrap();
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            for (addr, reply) in rx {
                let result = (|| {
                    socket.send_to(b"hello", addr.as_str())?;
                    let mut buf = [0u8; 1500];
                    let (n, _) = socket.recv_from(&mut buf)?;
                    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                })();
                let _ = reply.send(result);
            }
        });
        UdpClient { tx }
    }

    pub fn ask(&self, addr: &str) -> std::io::Result<String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send((addr.to_owned(), tx)).unwrap();
        rx.recv().unwrap()
    }
}
