//! Plugin results (spec section 5): the ADD success object, typed, with the plugin's JSON kept
//! as it was printed — that raw JSON is what the next plugin gets as `prevResult` and what the
//! result cache stores, so fields this crate does not model survive the chain.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cidr::IpNet;

/// An ADD result, typed. Results of spec versions 0.3.0 to 1.1.0 share this shape (0.3.x/0.4.0
/// add an ignored `version` to each IP); 0.1.0/0.2.0 results (`ip4`, `ip6`) are converted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AddResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
    raw: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// The netns path for interfaces inside the container; empty for host interfaces.
    #[serde(default)]
    pub sandbox: String,
    #[serde(rename = "socketPath", default)]
    pub socket_path: String,
    #[serde(rename = "pciID", default)]
    pub pci_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Index into `interfaces`; absent in IPAM plugins' results.
    #[serde(default)]
    pub interface: Option<usize>,
    pub address: IpNet,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default)]
    pub gw: Option<IpAddr>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub advmss: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub table: Option<u32>,
    #[serde(default)]
    pub scope: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// The typed fields of a ≥ 0.3.0 result.
#[derive(Deserialize)]
struct CurrentShape {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

/// 0.1.0 / 0.2.0: one IP per family, routes inside it, no interfaces.
#[derive(Deserialize)]
struct LegacyShape {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    ip4: Option<LegacyIp>,
    #[serde(default)]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
}

impl AddResult {
    /// Parses a plugin's stdout. The error is a message for `CniError::InvalidResult`.
    pub fn from_json(raw: Value) -> Result<AddResult, String> {
        if !raw.is_object() {
            return Err(format!("expected a JSON object, got {raw}"));
        }
        let version = raw.get("cniVersion").and_then(Value::as_str).unwrap_or("");
        if version == "0.1.0" || version == "0.2.0" {
            let legacy: LegacyShape = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
            let mut result = AddResult {
                cni_version: legacy.cni_version,
                dns: legacy.dns,
                ..AddResult::default()
            };
            for ip in [legacy.ip4, legacy.ip6].into_iter().flatten() {
                result.ips.push(IpConfig {
                    interface: None,
                    address: ip.ip,
                    gateway: ip.gateway,
                });
                result.routes.extend(ip.routes);
            }
            result.raw = raw;
            return Ok(result);
        }
        let shape: CurrentShape = serde_json::from_value(raw.clone()).map_err(|e| e.to_string())?;
        for ip in &shape.ips {
            if let Some(i) = ip.interface
                && i >= shape.interfaces.len()
            {
                return Err(format!(
                    "IP {} refers to interface {i}, but there are {} interfaces",
                    ip.address,
                    shape.interfaces.len()
                ));
            }
        }
        Ok(AddResult {
            cni_version: shape.cni_version,
            interfaces: shape.interfaces,
            ips: shape.ips,
            routes: shape.routes,
            dns: shape.dns,
            raw,
        })
    }

    /// The result exactly as the plugin printed it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The addresses of the container interface `ifname` (in a sandbox), in the plugin's order;
    /// every IP when no IP names an interface (results that only an IPAM plugin shaped).
    pub fn sandbox_ips(&self, ifname: &str) -> Vec<&IpConfig> {
        if self.ips.iter().all(|ip| ip.interface.is_none()) {
            return self.ips.iter().collect();
        }
        self.ips
            .iter()
            .filter(|ip| {
                ip.interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|itf| itf.name == ifname && !itf.sandbox.is_empty())
            })
            .collect()
    }
}

/// The answer to VERSION.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct VersionResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(rename = "supportedVersions", default)]
    pub supported_versions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_spec_add_result() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "interfaces": [
                {"name": "cni0", "mac": "00:11:22:33:44:55"},
                {"name": "veth3243", "mac": "55:44:33:22:11:11"},
                {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
            ],
            "dns": {"nameservers": ["10.1.0.1"]},
            "somethingNew": {"kept": true}
        });
        let r = AddResult::from_json(raw.clone()).unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/16");
        assert_eq!(r.ips[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
        assert_eq!(r.dns.nameservers, ["10.1.0.1"]);
        assert_eq!(r.sandbox_ips("eth0").len(), 1);
        assert!(r.sandbox_ips("eth1").is_empty());
        assert_eq!(r.raw(), &raw, "unknown fields survive for prevResult");
    }

    #[test]
    fn parses_0_3_and_legacy_results() {
        let r = AddResult::from_json(json!({
            "cniVersion": "0.3.1",
            "ips": [{"version": "4", "address": "10.1.0.5/16"}]
        }))
        .unwrap();
        assert_eq!(r.sandbox_ips("eth0").len(), 1, "no interface indexes: all IPs");
        let r = AddResult::from_json(json!({
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "ip6": {"ip": "fd00::5/64"}
        }))
        .unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.routes.len(), 1);
    }

    #[test]
    fn refuses_malformed_results() {
        for bad in [
            json!("text"),
            json!({"ips": [{"address": "10.1.0.5"}]}),
            json!({"ips": [{"address": "10.1.0.5/16", "interface": 0}]}),
            json!({"interfaces": [{"mac": "x"}]}),
        ] {
            assert!(AddResult::from_json(bad.clone()).is_err(), "{bad}");
        }
    }
}
