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
