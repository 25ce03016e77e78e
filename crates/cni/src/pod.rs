//! What the node agent calls for each pod sandbox, as containerd's CRI plugin does: the
//! loopback network on `lo`, then the conf dir's network on `eth0` with the pod's identity in
//! `CNI_ARGS` and its `hostPort`s as the `portMappings` capability.
//!
//! Nothing here is serialized: sandboxes are set up in parallel (host-local locks its own
//! store). The caller must not run two operations on the *same* sandbox at once (spec
//! section 3).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cache::{Cached, ResultCache};
use crate::chain::{Client, validate_attachment};
use crate::config::NetworkConfigList;
use crate::error::{CniError, Command, PluginError, codes};
use crate::invoke::{Invoker, RuntimeConf};
use crate::network::loopback_network;
use crate::result::AddResult;

/// The pod's interface, as the kubelet names it.
pub const POD_IFNAME: &str = "eth0";
const LOOPBACK_IFNAME: &str = "lo";

/// Where plugins, configurations and cached results live.
#[derive(Clone, Debug)]
pub struct Options {
    /// Searched in order for plugin binaries (`CNI_PATH`).
    pub plugin_dirs: Vec<PathBuf>,
    /// The pod network is the first configuration file here in lexical order.
    pub conf_dir: PathBuf,
    /// The result cache (libcni's `/var/lib/cni`).
    pub cache_dir: PathBuf,
    /// Run plugins inside this network namespace instead of ours (tests put a "node" there).
    pub plugin_netns: Option<PathBuf>,
    /// How long one plugin may run.
    pub plugin_timeout: Duration,
}

impl Options {
    /// Debian's plugin dir, then the conventional one.
    pub fn default_plugin_dirs() -> Vec<PathBuf> {
        vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()]
    }

    /// rkube's layout under a node's data dir (k3s keeps the same under its agent dir):
    /// `agent/etc/cni/net.d` for configurations, `agent/cni` for cached results, the default
    /// plugin dirs, plugins in our own network namespace.
    pub fn for_data_dir(data_dir: &Path) -> Options {
        let agent = data_dir.join("agent");
        Options {
            plugin_dirs: Self::default_plugin_dirs(),
            conf_dir: agent.join("etc/cni/net.d"),
            cache_dir: agent.join("cni"),
            plugin_netns: None,
            plugin_timeout: Duration::from_secs(120),
        }
    }

    /// Where the default network's host-local IPAM should keep its allocations: beside the
    /// result cache, so a node's state stays in its data dir.
    pub fn ipam_data_dir(&self) -> PathBuf {
        self.cache_dir.join("networks")
    }
}

/// The pod a sandbox belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSandbox {
    /// The sandbox's ID: `CNI_CONTAINERID` (letters, digits, `_`, `.`, `-`).
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodSandbox {
    /// `CNI_ARGS` as containerd passes them.
    fn cni_args(&self) -> Vec<(String, String)> {
        [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", &self.namespace),
            ("K8S_POD_NAME", &self.name),
            ("K8S_POD_INFRA_CONTAINER_ID", &self.id),
            ("K8S_POD_UID", &self.uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// A container port's `protocol` (`TCP`, the default, `UDP`, `SCTP`).
    pub fn from_k8s(protocol: Option<&str>) -> Option<Protocol> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn cni_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A container port with a `hostPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only this host address forwards (`hostIP`); every address when `None`.
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// The `portMappings` capability entry (go-cni's `PortMapping` JSON).
    fn to_capability(&self) -> Value {
        let mut v = json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol.cni_name(),
        });
        if let Some(ip) = self.host_ip {
            v["hostIP"] = ip.to_string().into();
        }
        v
    }
}

/// A sandbox's network as set up.
#[derive(Clone, Debug, PartialEq)]
pub struct PodNetwork {
    /// The network's name.
    pub network: String,
    /// The pod's addresses on `eth0`, primary first (`status.podIP`): the first IPv4 address,
    /// then the others in the plugin's order — containerd's default preference.
    pub ips: Vec<IpAddr>,
    /// The final plugin's full result.
    pub result: AddResult,
}

/// The node's pod networking.
#[derive(Clone, Debug)]
pub struct PodNetworking {
    options: Options,
    client: Client,
}

impl PodNetworking {
    pub fn new(options: Options) -> Self {
        let invoker = Invoker {
            plugin_dirs: options.plugin_dirs.clone(),
            plugin_netns: options.plugin_netns.clone(),
            timeout: options.plugin_timeout,
        };
        let client = Client::new(invoker, ResultCache::new(&options.cache_dir));
        PodNetworking { options, client }
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The pod network now configured in the conf dir (read on every call, so a replaced file
    /// applies to the next sandbox; sandboxes already set up are torn down with the
    /// configuration they were set up with).
    pub fn network(&self) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::load_from_dir(&self.options.conf_dir)
    }

    /// Readiness (the node's NetworkReady): a network is configured and each of its plugins
    /// (and loopback) is installed and speaks the configuration's spec version.
    pub async fn status(&self) -> Result<NetworkConfigList, CniError> {
        let network = self.network()?;
        let loopback = loopback_network();
        for (list, plugin) in network
            .plugins
            .iter()
            .map(|p| (&network, p))
            .chain(loopback.plugins.iter().map(|p| (&loopback, p)))
        {
            let info = self.client.invoker.version(plugin, &list.cni_version).await?;
            if !info.supported_versions.contains(&list.cni_version) {
                return Err(CniError::Plugin {
                    plugin: plugin.description(),
                    command: Command::Version,
                    error: PluginError {
                        cni_version: list.cni_version.clone(),
                        code: codes::INCOMPATIBLE_VERSION,
                        msg: "incompatible CNI versions".to_owned(),
                        details: format!(
                            "config is {:?}, plugin supports {:?}",
                            list.cni_version, info.supported_versions
                        ),
                    },
                });
            }
        }
        Ok(network)
    }

    /// Adds the sandbox to loopback and the pod network. On failure everything added is
    /// deleted again before the error is returned (the spec asks for a DEL after a failed
    /// ADD; host-local would otherwise keep the address). A sandbox already set up in this
    /// netns gets its existing network back: a retried setup must not tear a working one down.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox.id))]
    pub async fn setup(
        &self,
        sandbox: &PodSandbox,
        netns: &Path,
        ports: &[PortMapping],
    ) -> Result<PodNetwork, CniError> {
        let mut pod = self.runtime_conf(sandbox, Some(netns), POD_IFNAME);
        validate_attachment(&pod)?;
        if let Some(existing) = self.existing(sandbox)? {
            let same_netns = existing
                .result
                .interfaces
                .iter()
                .any(|i| i.sandbox == netns.as_os_str().to_string_lossy());
            if same_netns {
                return Ok(existing);
            }
            // The ID set up before in another netns: release that attachment first.
            self.teardown(sandbox, None).await?;
        }
        let network = self.network()?;
        // containerd skips ports without a host port; so do we.
        let mappings: Vec<Value> = ports
            .iter()
            .filter(|p| p.host_port != 0)
            .map(PortMapping::to_capability)
            .collect();
        if !mappings.is_empty() {
            pod.capability_args
                .insert("portMappings".to_owned(), mappings.into());
        }
        let loopback = self.runtime_conf(sandbox, Some(netns), LOOPBACK_IFNAME);
        // Different interfaces of one netns: the two networks may be added at once.
        let lo_network = loopback_network();
        let (lo_added, added) = tokio::join!(
            self.client.add(&lo_network, &loopback),
            self.client.add(&network, &pod)
        );
        match lo_added.and(added) {
            Ok(result) => Ok(PodNetwork {
                network: network.name.clone(),
                ips: pod_ips(&result),
                result,
            }),
            Err(error) => {
                if let Err(cleanup) = self.delete(&network, &pod, &loopback).await {
                    tracing::warn!(%cleanup, "cleaning up after a failed CNI ADD");
                }
                Err(error)
            }
        }
    }

    /// The pod network a sandbox was set up with, from the result cache (the agent reads pod
    /// IPs back after a restart this way).
    pub fn existing(&self, sandbox: &PodSandbox) -> Result<Option<PodNetwork>, CniError> {
        let pod = self.runtime_conf(sandbox, None, POD_IFNAME);
        validate_attachment(&pod)?;
        for name in self.client.cache.networks_of(&pod)? {
            if let Some(Cached {
                result: Some(result), ..
            }) = self.client.cache.get(&name, &pod)?
            {
                return Ok(Some(PodNetwork {
                    network: name,
                    ips: pod_ips(&result),
                    result,
                }));
            }
        }
        Ok(None)
    }

    /// The IDs of the sandboxes with a cached pod network: after a restart, the agent tears
    /// down those it no longer knows, so their addresses and rules do not leak.
    pub fn sandboxes(&self) -> Result<Vec<String>, CniError> {
        let mut ids: Vec<String> = self
            .client
            .cache
            .attachments()?
            .into_iter()
            .filter(|(_, _, ifname)| ifname == POD_IFNAME)
            .map(|(_, id, _)| id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Removes the sandbox from its networks; idempotent, and fine for a sandbox never set up
    /// or whose netns is already gone (`netns: None`). Networks are deleted with the
    /// configuration, arguments and port mappings recorded when they were added.
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox.id))]
    pub async fn teardown(&self, sandbox: &PodSandbox, netns: Option<&Path>) -> Result<(), CniError> {
        let pod = self.runtime_conf(sandbox, netns, POD_IFNAME);
        validate_attachment(&pod)?;
        let loopback = self.runtime_conf(sandbox, netns, LOOPBACK_IFNAME);
        let cached = self.client.cache.networks_of(&pod)?;
        if cached.is_empty() {
            // Nothing recorded: an ADD may still have run part way (a crash before the cache
            // write). DEL with today's network releases what it took; no network, no ADD.
            match self.network() {
                Ok(network) => self.delete(&network, &pod, &loopback).await,
                Err(CniError::NotInitialized { .. }) => self.client.del(&loopback_network(), &loopback).await,
                Err(e) => Err(e),
            }
        } else {
            for name in cached {
                let (network, pod) = match self.client.cache.get(&name, &pod) {
                    Ok(Some(entry)) => with_cached(&pod, entry),
                    Ok(None) => continue,
                    Err(e) => {
                        // A damaged entry must not wedge the pod: fall back to today's network.
                        tracing::warn!(error = %e, "unreadable CNI cache entry");
                        (self.network()?, pod.clone())
                    }
                };
                self.client.del(&network, &pod).await?;
                // A stale entry of another name would otherwise be retried forever.
                self.client.cache.remove(&name, &pod)?;
            }
            self.client.del(&loopback_network(), &loopback).await
        }
    }

    /// CHECK of a sandbox set up earlier: its interfaces, addresses, routes and port mappings
    /// are still in place. `NotSetUp` if it was never set up (or torn down).
    #[tracing::instrument(skip_all, fields(sandbox = %sandbox.id))]
    pub async fn check(&self, sandbox: &PodSandbox, netns: &Path) -> Result<(), CniError> {
        let pod = self.runtime_conf(sandbox, Some(netns), POD_IFNAME);
        validate_attachment(&pod)?;
        let loopback = self.runtime_conf(sandbox, Some(netns), LOOPBACK_IFNAME);
        let not_set_up = || CniError::NotSetUp {
            network: self
                .network()
                .map(|n| n.name)
                .unwrap_or_else(|_| "<none>".to_owned()),
            container_id: sandbox.id.clone(),
            ifname: POD_IFNAME.to_owned(),
        };
        let name = self
            .client
            .cache
            .networks_of(&pod)?
            .into_iter()
            .next()
            .ok_or_else(not_set_up)?;
        let entry = self.client.cache.get(&name, &pod)?.ok_or_else(not_set_up)?;
        let (network, pod) = with_cached(&pod, entry);
        self.client.check(&loopback_network(), &loopback).await?;
        self.client.check(&network, &pod).await
    }

    fn runtime_conf(&self, sandbox: &PodSandbox, netns: Option<&Path>, ifname: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: sandbox.id.clone(),
            netns: netns.map(Path::to_owned),
            ifname: ifname.to_owned(),
            args: sandbox.cni_args(),
            capability_args: Map::new(),
        }
    }

    /// DEL of the pod network, then of loopback; both are tried, the first error wins.
    async fn delete(
        &self,
        network: &NetworkConfigList,
        pod: &RuntimeConf,
        loopback: &RuntimeConf,
    ) -> Result<(), CniError> {
        let pod_deleted = self.client.del(network, pod).await;
        let loopback_deleted = self.client.del(&loopback_network(), loopback).await;
        pod_deleted.and(loopback_deleted)
    }
}

/// The attachment's recorded configuration and arguments, with today's netns path.
fn with_cached(rt: &RuntimeConf, entry: Cached) -> (NetworkConfigList, RuntimeConf) {
    let mut rt = rt.clone();
    if !entry.args.is_empty() {
        rt.args = entry.args;
    }
    rt.capability_args = entry.capability_args;
    (entry.config, rt)
}

/// containerd's `selectPodIPs` with the default IPv4 preference.
fn pod_ips(result: &AddResult) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = result
        .sandbox_ips(POD_IFNAME)
        .into_iter()
        .map(|ip| ip.address.addr)
        .collect();
    if let Some(first_v4) = ips.iter().position(IpAddr::is_ipv4) {
        let primary = ips.remove(first_v4);
        ips.insert(0, primary);
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_ip_is_the_first_ipv4() {
        let result = AddResult::from_json(json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/ns"}],
            "ips": [
                {"address": "fd00::5/64", "interface": 1},
                {"address": "10.0.0.1/24", "interface": 0},
                {"address": "10.42.0.5/24", "interface": 1}
            ]
        }))
        .unwrap();
        let ips: Vec<String> = pod_ips(&result).iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["10.42.0.5", "fd00::5"]);
    }

    #[test]
    fn port_mappings_as_go_cni_writes_them() {
        let p = PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::from_k8s(None).unwrap(),
            host_ip: None,
        };
        assert_eq!(
            p.to_capability(),
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"})
        );
        let p = PortMapping {
            host_ip: Some("192.0.2.1".parse().unwrap()),
            protocol: Protocol::from_k8s(Some("UDP")).unwrap(),
            ..p
        };
        assert_eq!(p.to_capability()["hostIP"], "192.0.2.1");
        assert_eq!(p.to_capability()["protocol"], "udp");
        assert_eq!(Protocol::from_k8s(Some("tcp")), None);
    }
}
