//! The Service proxy: kube-proxy's role in every node agent.
//!
//! Services and EndpointSlices (watched from the API server) become a pure [`model::Model`];
//! a backend renders it into a [`ruleset::Ruleset`] (nftables: [`nft`], iptables fallback:
//! [`iptables`]); [`ruleset::diff`] against what was applied last gives the minimal change set,
//! applied as one transaction. The first sync (and any sync after a failure) replaces the
//! whole table. Stale UDP conntrack entries are deleted after the rules change ([`conntrack`]).
//!
//! Public entry points: [`run`] (watch + sync until dropped) and [`Proxier`] (one sync from
//! given objects, for tests and the benchmark).
//!
//! ```no_run
//! # async fn agent(client: kube::Client) -> anyhow::Result<()> {
//! let mut config = proxy::Config::new("node-2");
//! config.node_ips = vec!["172.31.0.2".parse()?];
//! config.cluster_cidrs = vec!["10.42.0.0/16".parse()?];
//! proxy::run(client, config).await // runs until dropped
//! # }
//! ```
//!
//! What the node must provide (as kube-proxy expects): `net.ipv4.ip_forward=1`,
//! `net.bridge.bridge-nf-call-iptables=1` (and `…-ip6tables` for IPv6) for pods on a bridge,
//! the bridge's hairpin mode (a pod reaching itself through its Service), and a route covering
//! the service CIDR (a default route will do): the node's own connections to a cluster IP are
//! routed before they are DNAT-ed, and traffic to a Service without endpoints is rejected in
//! the forward hook, which unroutable packets never reach.

pub mod conntrack;
mod exec;
pub mod iptables;
pub mod model;
pub mod names;
pub mod nft;
pub mod ruleset;
pub mod testing;
mod watch;

use std::borrow::Borrow;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use cni::IpNet;
pub use model::{Family, Model};
pub use ruleset::{Changes, Ruleset, diff};
pub use watch::run;

/// Which rule-loading program programs the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// `nft -f -` transactions on tables `ip rkube-proxy` / `ip6 rkube-proxy`.
    Nftables,
    /// `iptables-restore` / `ip6tables-restore` of `RKUBE-*` chains.
    Iptables,
    /// nftables when the `nft` binary is present and works, else iptables.
    #[default]
    Auto,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name: endpoints whose `nodeName` equals it are local.
    pub node_name: String,
    /// This node's addresses: LoadBalancer Services open their port on them (servicelb).
    /// NodePorts are open on every local address but loopback (`fib daddr type local`).
    pub node_ips: Vec<IpAddr>,
    /// kube-proxy's `--cluster-cidr`: traffic to a cluster IP from outside is masqueraded, and
    /// pod traffic to an externalTrafficPolicy Local service's external address is treated as
    /// in-cluster. Empty: no cluster-IP masquerading.
    pub cluster_cidrs: Vec<IpNet>,
    pub backend: Backend,
    /// Changes arriving within this window are programmed together.
    pub min_sync: Duration,
}

impl Config {
    pub fn new(node_name: impl Into<String>) -> Config {
        Config {
            node_name: node_name.into(),
            node_ips: Vec::new(),
            cluster_cidrs: Vec::new(),
            backend: Backend::Auto,
            min_sync: Duration::from_millis(50),
        }
    }
}

/// What one sync did and how long its parts took.
#[derive(Clone, Debug, Default)]
pub struct SyncStats {
    /// Objects → model → rulesets → diff → script (pure work).
    pub compute: Duration,
    /// Running `nft` / `iptables-restore`.
    pub apply: Duration,
    /// Conntrack deletions.
    pub conntrack: Duration,
    /// A whole-table replacement rather than an incremental change.
    pub full: bool,
    /// nftables: a full sync could not rewrite the table in place (a kept declaration
    /// changed) and recreated it, losing session affinity entries.
    pub replaced: bool,
    /// Bytes of script handed to the kernel-loading program.
    pub script_bytes: usize,
}

/// The rule programmer: remembers what it applied per family, so the next sync is a diff.
pub struct Proxier {
    config: Config,
    backend: Backend,
    /// Per family (v4, v6): the ruleset last applied; `None` forces a full sync.
    applied: [Option<Ruleset>; 2],
    model: Model,
    namer: names::Namer,
    fragments: ruleset::FragmentCache,
}

fn index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

impl Proxier {
    /// Resolves [`Backend::Auto`] by probing `nft`.
    pub async fn new(config: Config) -> Proxier {
        let backend = match config.backend {
            Backend::Auto if nft::available().await => Backend::Nftables,
            Backend::Auto => Backend::Iptables,
            b => b,
        };
        tracing::info!(?backend, node = %config.node_name, "service proxy");
        Proxier {
            config,
            backend,
            applied: [None, None],
            model: Model::default(),
            namer: names::Namer::default(),
            fragments: ruleset::FragmentCache::default(),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The model last synced.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Forget what was applied: the next sync replaces our tables whole.
    pub fn force_full_sync(&mut self) {
        self.applied = [None, None];
    }

    /// Programs the rules for these objects. On failure the next sync is a full one.
    pub async fn sync<S: Borrow<Service>, E: Borrow<EndpointSlice>>(
        &mut self,
        services: &[S],
        slices: &[E],
    ) -> anyhow::Result<SyncStats> {
        let start = Instant::now();
        let model = model::build(services, slices, &self.config);
        let mut stats = SyncStats::default();
        let mut compute = start.elapsed();
        for family in [Family::V4, Family::V6] {
            let fm = model.family(family);
            let slot = index(family);
            let t = Instant::now();
            let new = match self.backend {
                Backend::Iptables => iptables::ruleset(
                    fm,
                    family,
                    &self.config.cluster_cidrs,
                    &mut self.namer,
                    &mut self.fragments,
                ),
                _ => nft::ruleset(
                    fm,
                    family,
                    &self.config.cluster_cidrs,
                    &mut self.namer,
                    &mut self.fragments,
                ),
            };
            let prev = self.applied[slot].take();
            let full = prev.is_none();
            let existing = if full && self.backend == Backend::Iptables {
                iptables::existing_chains(family).await.unwrap_or_default()
            } else {
                Vec::new()
            };
            let existing_nft = if full && self.backend != Backend::Iptables {
                nft::existing(family).await
            } else {
                nft::Existing::default()
            };
            let script = match (&prev, self.backend) {
                (None, Backend::Iptables) => iptables::full_input(&new, &existing),
                (None, _) => nft::full_script(family, &new, &existing_nft),
                (Some(old), Backend::Iptables) => iptables::incremental_input(&diff(old, &new)),
                (Some(old), _) => {
                    let changes = diff(old, &new);
                    if changes.is_empty() {
                        String::new()
                    } else {
                        nft::incremental_script(family, &changes, &new)
                    }
                }
            };
            compute += t.elapsed();
            stats.full |= full;
            stats.script_bytes += script.len();
            let t = Instant::now();
            if !script.is_empty() {
                let applied = match self.backend {
                    Backend::Iptables => match iptables::apply(family, &script).await {
                        Ok(()) if full => iptables::ensure_jumps(family).await,
                        other => other,
                    },
                    _ => match nft::apply(&script).await {
                        // A kept object's declaration changed: start the table over.
                        Err(e) if full => {
                            stats.replaced = true;
                            tracing::info!("replacing table {} rkube-proxy: {e:#}", nft::family_word(family));
                            nft::apply(&nft::replace_script(family, &new)).await
                        }
                        other => other,
                    },
                };
                match applied {
                    // A kernel without IPv6 cannot hold the (empty) ip6 rules: nothing is lost.
                    Err(e) if family == Family::V6 && fm.ports.is_empty() => {
                        tracing::debug!("no IPv6 rules: {e:#}");
                    }
                    Err(e) => {
                        // Leave `applied` empty: the next sync rewrites the table whole.
                        tracing::debug!("failed script:\n{script}");
                        return Err(e);
                    }
                    Ok(()) => {}
                }
            }
            stats.apply += t.elapsed();
            self.applied[slot] = Some(new);

            let t = Instant::now();
            let stale = conntrack::stale_entries(self.model.family(family), fm);
            if !stale.is_empty() {
                conntrack::clear(family, &stale).await;
            }
            stats.conntrack += t.elapsed();
        }
        stats.compute = compute;
        self.namer.rotate();
        self.fragments.sweep();
        self.model = model;
        Ok(stats)
    }
}
