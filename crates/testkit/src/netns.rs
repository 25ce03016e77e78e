//! A network namespace for one test, with no route out: node processes, kubectl and the
//! registry of a test run inside it, so bridges, pod addresses and firewall rules never touch
//! the host's network. The test thread enters it ([`NetNs::enter`]): processes and threads it
//! starts afterwards inherit it. Deleted (`ip netns del`) on drop.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

pub struct NetNs {
    name: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl NetNs {
    /// A new namespace named `<prefix>-<pid>-<n>` with `lo` up.
    pub fn create(prefix: &str) -> anyhow::Result<NetNs> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file (for `nsenter --net=`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Adds an interface with an address (`172.31.0.1/24`): a node's own address inside the
    /// namespace, reachable only from within. A veth pair with both ends inside (this kernel
    /// may lack the dummy driver).
    pub fn add_interface(&self, ifname: &str, cidr: &str) -> anyhow::Result<()> {
        let peer = format!("{ifname}-peer");
        ip(&[
            "-n", &self.name, "link", "add", ifname, "type", "veth", "peer", "name", &peer,
        ])?;
        ip(&["-n", &self.name, "addr", "add", cidr, "dev", ifname])?;
        ip(&["-n", &self.name, "link", "set", &peer, "up"])?;
        ip(&["-n", &self.name, "link", "set", ifname, "up"])
    }

    /// Runs `ip -n <ns> args…`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) -> anyhow::Result<()> {
        let file =
            std::fs::File::open(self.path()).with_context(|| format!("open {}", self.path().display()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("{e}");
        }
    }
}

/// Machines on one L2 segment, for multi-node tests: an "underlay" namespace holding a bridge
/// (`br0`, address `<prefix>.254/24`) and one namespace per node, each with `eth0` =
/// `<prefix>.<i>/24` (i from 1) plugged into the bridge and a default route via the underlay
/// address — which itself routes nowhere, so nothing leaves. The test thread enters the
/// underlay ([`Lab::enter`]) to reach the nodes as an outside client would; node processes are
/// started with `nsenter --net=<node path>`.
pub struct Lab {
    /// Dropped first: deleting a node namespace removes its veth pair.
    pub nodes: Vec<NetNs>,
    pub underlay: NetNs,
    prefix: String,
}

impl Lab {
    /// `prefix` is the first three octets (`172.31.0`).
    pub fn create(nodes: usize, prefix: &str) -> anyhow::Result<Lab> {
        let underlay = NetNs::create("rkube-u")?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["addr", "add", &format!("{prefix}.254/24"), "dev", "br0"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        let mut lab = Lab {
            nodes: Vec::new(),
            underlay,
            prefix: prefix.to_owned(),
        };
        for i in 1..=nodes {
            let node = NetNs::create(&format!("rkube-n{i}"))?;
            let port = format!("vn{i}");
            lab.underlay.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.name(),
            ])?;
            lab.underlay.ip(&["link", "set", &port, "master", "br0"])?;
            lab.underlay.ip(&["link", "set", &port, "up"])?;
            node.ip(&["addr", "add", &format!("{prefix}.{i}/24"), "dev", "eth0"])?;
            node.ip(&["link", "set", "eth0", "up"])?;
            node.ip(&["route", "add", "default", "via", &format!("{prefix}.254")])?;
            lab.nodes.push(node);
        }
        Ok(lab)
    }

    /// Node `i`'s address (from 1).
    pub fn node_ip(&self, i: usize) -> String {
        format!("{}.{i}", self.prefix)
    }

    /// The underlay's own address (where a test's registry listens).
    pub fn underlay_ip(&self) -> String {
        format!("{}.254", self.prefix)
    }

    /// Moves the calling thread into the underlay.
    pub fn enter(&self) -> anyhow::Result<()> {
        self.underlay.enter()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.nodes.clear();
    }
}
