//! The node's default pod network, as k3s's flannel backend has the bridge plugin build it: a
//! `cni0` bridge that is the pods' gateway (`.1` of the node's pod CIDR), host-local IPAM on the
//! Node's `spec.podCIDRs` (one range per family: dual-stack when there are two), masquerading
//! of traffic leaving the pod network, hairpin mode (a pod reaches itself through a Service),
//! and `portmap` for `hostPort`s. Written to the conf dir as `10-rkube.conflist`; a file that
//! sorts before it replaces it (`/etc/cni/net.d` semantics).
//!
//! The loopback interface is a network of its own (`cni-loopback`, interface `lo`), as
//! containerd sets it up, so a user's conflist need not contain it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cidr::IpNet;
use crate::config::NetworkConfigList;
use crate::error::CniError;

/// The file name of the generated configuration.
pub const DEFAULT_CONF_FILE: &str = "10-rkube.conflist";
/// k3s's network and bridge names.
pub const DEFAULT_NETWORK_NAME: &str = "cbr0";
pub const DEFAULT_BRIDGE: &str = "cni0";
pub const CNI_VERSION: &str = "1.0.0";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultNetwork {
    pub name: String,
    pub bridge: String,
    /// The Node's pod CIDRs (network addresses), at most one per family.
    pub pod_cidrs: Vec<IpNet>,
    /// Bridge and veth MTU; the kernel's default (1500) when unset.
    pub mtu: Option<u32>,
    /// Masquerade traffic from pods to addresses outside their range.
    pub ip_masq: bool,
    /// Where host-local keeps its allocations (`/var/lib/cni/networks` when unset).
    pub ipam_data_dir: Option<PathBuf>,
}

impl DefaultNetwork {
    /// The network for a Node's `spec.podCIDRs`.
    pub fn new<S: AsRef<str>>(pod_cidrs: &[S]) -> Result<Self, CniError> {
        if pod_cidrs.is_empty() {
            return Err(CniError::InvalidConfig("the node has no pod CIDR".to_owned()));
        }
        if pod_cidrs.len() > 2 {
            return Err(CniError::InvalidConfig(format!(
                "a node has at most two pod CIDRs (one per IP family), got {}",
                pod_cidrs.len()
            )));
        }
        let mut parsed: Vec<IpNet> = Vec::new();
        for cidr in pod_cidrs {
            let cidr = cidr.as_ref();
            let net: IpNet = cidr
                .parse()
                .map_err(|e: crate::cidr::ParseCidrError| CniError::InvalidConfig(e.to_string()))?;
            // Room for the gateway, at least one pod and (IPv4) the broadcast address.
            let max_prefix = if net.is_ipv4() { 30 } else { 126 };
            if net.prefix_len > max_prefix {
                return Err(CniError::InvalidConfig(format!(
                    "pod CIDR {cidr} is too small: the prefix must be at most /{max_prefix}"
                )));
            }
            if parsed.iter().any(|p| p.is_ipv4() == net.is_ipv4()) {
                return Err(CniError::InvalidConfig(format!(
                    "pod CIDRs {} and {cidr} are of the same IP family",
                    pod_cidrs[0].as_ref()
                )));
            }
            parsed.push(net.network());
        }
        Ok(DefaultNetwork {
            name: DEFAULT_NETWORK_NAME.to_owned(),
            bridge: DEFAULT_BRIDGE.to_owned(),
            pod_cidrs: parsed,
            mtu: None,
            ip_masq: true,
            ipam_data_dir: None,
        })
    }

    /// The gateway (the bridge's address) of each pod CIDR: its first address.
    pub fn gateways(&self) -> Vec<std::net::IpAddr> {
        self.pod_cidrs.iter().map(|c| c.offset(1)).collect()
    }

    /// The configuration list document.
    pub fn conflist(&self) -> Value {
        let ranges: Vec<Value> = self
            .pod_cidrs
            .iter()
            .map(|c| json!([{ "subnet": c.to_string(), "gateway": c.offset(1).to_string() }]))
            .collect();
        let routes: Vec<Value> = self
            .pod_cidrs
            .iter()
            .map(|c| json!({ "dst": if c.is_ipv4() { "0.0.0.0/0" } else { "::/0" } }))
            .collect();
        let mut ipam = json!({ "type": "host-local", "ranges": ranges, "routes": routes });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = dir.display().to_string().into();
        }
        let mut bridge = json!({
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": self.ip_masq,
            "hairpinMode": true,
            "ipam": ipam,
        });
        if let Some(mtu) = self.mtu {
            bridge["mtu"] = mtu.into();
        }
        json!({
            "cniVersion": CNI_VERSION,
            "name": self.name,
            "plugins": [
                bridge,
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            ],
        })
    }

    /// Writes the configuration into `conf_dir` (atomically, and only if it changed), returning
    /// the file's path.
    pub fn write(&self, conf_dir: &Path) -> Result<PathBuf, CniError> {
        std::fs::create_dir_all(conf_dir).map_err(CniError::io(conf_dir))?;
        let path = conf_dir.join(DEFAULT_CONF_FILE);
        let mut text = serde_json::to_string_pretty(&self.conflist()).expect("JSON serializes");
        text.push('\n');
        if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(path);
        }
        // The temporary name has no configuration extension: readers never pick it up.
        let tmp = conf_dir.join(format!(".{DEFAULT_CONF_FILE}.tmp"));
        std::fs::write(&tmp, text).map_err(CniError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(CniError::io(&path))?;
        Ok(path)
    }
}

/// The loopback network containerd runs for every sandbox before the pod network.
pub fn loopback_network() -> NetworkConfigList {
    NetworkConfigList::from_value(json!({
        "cniVersion": CNI_VERSION,
        "name": "cni-loopback",
        "plugins": [{ "type": "loopback" }],
    }))
    .expect("the loopback network is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_stack_conflist() {
        let net = DefaultNetwork::new(&["10.42.3.0/24"]).unwrap();
        assert_eq!(
            net.conflist(),
            json!({
                "cniVersion": "1.0.0",
                "name": "cbr0",
                "plugins": [
                    {
                        "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
                        "hairpinMode": true,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]],
                            "routes": [{"dst": "0.0.0.0/0"}]
                        }
                    },
                    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
                ]
            })
        );
        let list = NetworkConfigList::from_value(net.conflist()).unwrap();
        assert_eq!(list.plugins.len(), 2);
    }

    #[test]
    fn dual_stack_conflist() {
        let mut net = DefaultNetwork::new(&["10.42.0.0/24", "fd00:42::/64"]).unwrap();
        net.mtu = Some(1450);
        net.ipam_data_dir = Some("/data/ipam".into());
        let conf = net.conflist();
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["mtu"], 1450);
        assert_eq!(
            bridge["ipam"]["ranges"],
            json!([
                [{"subnet": "10.42.0.0/24", "gateway": "10.42.0.1"}],
                [{"subnet": "fd00:42::/64", "gateway": "fd00:42::1"}]
            ])
        );
        assert_eq!(
            bridge["ipam"]["routes"],
            json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
        assert_eq!(bridge["ipam"]["dataDir"], "/data/ipam");
    }

    #[test]
    fn refuses_bad_pod_cidrs() {
        let none: [&str; 0] = [];
        assert!(DefaultNetwork::new(&none).is_err());
        for bad in [
            &["10.42.0.0"][..],
            &["10.42.0.0/31"],
            &["10.42.0.0/24", "10.43.0.0/24"],
            &["10.42.0.0/24", "fd00::/64", "10.44.0.0/24"],
        ] {
            assert!(DefaultNetwork::new(bad).is_err(), "{bad:?}");
        }
        let net = DefaultNetwork::new(&["10.42.0.7/24"]).unwrap();
        assert_eq!(net.pod_cidrs[0].to_string(), "10.42.0.0/24", "normalized");
    }

    #[test]
    fn written_file_is_loaded_unless_an_earlier_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let net = DefaultNetwork::new(&["10.42.0.0/24"]).unwrap();
        let path = net.write(dir.path()).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        net.write(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            mtime,
            "unchanged: not rewritten"
        );
        assert_eq!(NetworkConfigList::load_from_dir(dir.path()).unwrap().name, "cbr0");
        std::fs::write(
            dir.path().join("05-custom.conflist"),
            r#"{"cniVersion":"1.0.0","name":"custom","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        assert_eq!(
            NetworkConfigList::load_from_dir(dir.path()).unwrap().name,
            "custom"
        );
    }
}
