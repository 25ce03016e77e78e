//! Executing a network configuration list (spec section 3), as libcni's `CNIConfig` does:
//! ADD runs the plugins in order, each getting the previous one's result as `prevResult`, and
//! caches the final result; CHECK runs them in order against the cached result; DEL runs them
//! in reverse with the cached result and forgets it.

use crate::cache::ResultCache;
use crate::config::{NetworkConfigList, valid_identifier, version_key};
use crate::error::{CniError, Command, PluginError, codes};
use crate::invoke::{Invoker, RuntimeConf};
use crate::result::AddResult;

#[derive(Clone, Debug)]
pub struct Client {
    pub invoker: Invoker,
    pub cache: ResultCache,
}

/// CHECK and `prevResult` on DEL arrived with spec 0.4.0.
fn at_least_0_4(version: &str) -> bool {
    version_key(version) >= version_key("0.4.0")
}

impl Client {
    pub fn new(invoker: Invoker, cache: ResultCache) -> Self {
        Client { invoker, cache }
    }

    pub async fn add(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<AddResult, CniError> {
        validate_attachment(rt)?;
        let mut prev: Option<AddResult> = None;
        for plugin in &list.plugins {
            let request = plugin.request(
                &list.name,
                &list.cni_version,
                prev.as_ref().map(AddResult::raw),
                &rt.capability_args,
            );
            prev = Some(self.invoker.add(plugin, &request, rt).await?);
        }
        let result = prev.expect("a list has at least one plugin");
        self.cache.put(list, rt, &result)?;
        Ok(result)
    }

    /// CHECK with the cached ADD result. `NotSetUp` if there is none.
    pub async fn check(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        if !at_least_0_4(&list.cni_version) {
            return Err(CniError::CheckUnsupported {
                version: list.cni_version.clone(),
            });
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self
            .cache
            .get(&list.name, rt)?
            .and_then(|c| c.result)
            .ok_or_else(|| CniError::NotSetUp {
                network: list.name.clone(),
                container_id: rt.container_id.clone(),
                ifname: rt.ifname.clone(),
            })?;
        for plugin in &list.plugins {
            let request = plugin.request(
                &list.name,
                &list.cni_version,
                Some(cached.raw()),
                &rt.capability_args,
            );
            let checked = self
                .invoker
                .run_without_result(plugin, Command::Check, &request, rt)
                .await;
            match checked {
                Err(e) if is_portmap_cross_family_check_bug(&plugin.plugin_type, &e, &cached) => {
                    tracing::debug!(error = %e, "ignoring portmap's CHECK of one family's rules in the other's table");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// DEL in reverse order with the cached result (if any), then forget the attachment.
    /// Plugins must succeed on a DEL of something never added, so this is idempotent.
    pub async fn del(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        let prev = if at_least_0_4(&list.cni_version) {
            self.cache.get(&list.name, rt)?.and_then(|c| c.result)
        } else {
            None
        };
        for plugin in list.plugins.iter().rev() {
            let request = plugin.request(
                &list.name,
                &list.cni_version,
                prev.as_ref().map(AddResult::raw),
                &rt.capability_args,
            );
            self.invoker
                .run_without_result(plugin, Command::Del, &request, rt)
                .await?;
        }
        self.cache.remove(&list.name, rt)
    }
}

/// portmap before plugins v1.3.0 (Debian 12 ships 1.1.1) checks each family's DNAT rules in
/// both iptables and ip6tables, where ADD only put them in their own family's table: CHECK of
/// a pod with a hostPort always fails, "could not check ipv6 dnat" with the IPv4 rules (or a
/// missing chain, for an IPv4-only pod), and the mirror image for IPv6. Such an error — about
/// the other family's rules, or a chain of a family the pod has no address in — is not a
/// broken attachment. (The plugin stops at it, so its remaining checks are skipped.)
fn is_portmap_cross_family_check_bug(plugin_type: &str, error: &CniError, result: &AddResult) -> bool {
    let CniError::Plugin { error, .. } = error else {
        return false;
    };
    if plugin_type != "portmap" {
        return false;
    }
    let (table_v6, detail) = if let Some(rest) = error.msg.strip_prefix("could not check ipv6 dnat: ") {
        (true, rest)
    } else if let Some(rest) = error.msg.strip_prefix("could not check ipv4 dnat: ") {
        (false, rest)
    } else {
        return false;
    };
    let pod_has_family = result.ips.iter().any(|ip| ip.address.addr.is_ipv6() == table_v6);
    let other_family_rules = result
        .ips
        .iter()
        .filter(|ip| ip.address.addr.is_ipv6() != table_v6)
        .any(|ip| detail.contains(&ip.address.addr.to_string()));
    (!pod_has_family && detail.starts_with("chain ")) || other_family_rules
}

fn invalid(msg: &str, details: impl Into<String>) -> CniError {
    CniError::InvalidArgument(PluginError {
        cni_version: String::new(),
        code: codes::INVALID_ENVIRONMENT,
        msg: msg.to_owned(),
        details: details.into(),
    })
}

/// libcni's `ValidateContainerID` and `ValidateInterfaceName`.
pub(crate) fn validate_attachment(rt: &RuntimeConf) -> Result<(), CniError> {
    if rt.container_id.is_empty() {
        return Err(CniError::InvalidArgument(PluginError {
            code: codes::UNKNOWN_CONTAINER,
            msg: "missing containerID".to_owned(),
            ..PluginError::default()
        }));
    }
    if !valid_identifier(&rt.container_id) {
        return Err(invalid(
            "invalid characters in containerID",
            rt.container_id.clone(),
        ));
    }
    let ifname = &rt.ifname;
    if ifname.is_empty() {
        return Err(invalid("interface name is empty", ""));
    }
    if ifname.len() > 15 {
        return Err(invalid(
            "interface name is too long",
            "interface name should be less than 16 characters",
        ));
    }
    if ifname == "." || ifname == ".." {
        return Err(invalid("interface name is . or ..", ""));
    }
    if ifname.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(invalid(
            "interface name contains / or : or whitespace characters",
            "",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_portmaps_cross_family_check_bug_only() {
        let result = |ips: serde_json::Value| {
            AddResult::from_json(serde_json::json!({"cniVersion": "1.0.0", "ips": ips})).unwrap()
        };
        let v4 = result(serde_json::json!([{"address": "10.42.0.3/24"}]));
        let dual = result(serde_json::json!([{"address": "10.42.0.3/24"}, {"address": "fd00::3/64"}]));
        let failed = |msg: &str| CniError::Plugin {
            plugin: r#"type="portmap""#.into(),
            command: Command::Check,
            error: PluginError {
                msg: msg.into(),
                ..PluginError::default()
            },
        };
        let v6_chain = failed("could not check ipv6 dnat: chain CNI-DN-1 not found in iptables table nat");
        let v4_chain = failed("could not check ipv4 dnat: chain CNI-DN-1 not found in iptables table nat");
        let v4_rules_in_v6 = failed(
            "could not check ipv6 dnat: rule [[-p tcp --dport 8081 -j DNAT --to-destination 10.42.0.3:81]] in chain CNI-DN-1 not found in table nat",
        );
        let v4_rules_in_v4 = failed(
            "could not check ipv4 dnat: rule [[-p tcp --dport 8081 -j DNAT --to-destination 10.42.0.3:81]] in chain CNI-DN-1 not found in table nat",
        );
        assert!(is_portmap_cross_family_check_bug("portmap", &v6_chain, &v4));
        assert!(
            !is_portmap_cross_family_check_bug("portmap", &v6_chain, &dual),
            "a real loss"
        );
        assert!(
            !is_portmap_cross_family_check_bug("portmap", &v4_chain, &v4),
            "a real loss"
        );
        assert!(is_portmap_cross_family_check_bug(
            "portmap",
            &v4_rules_in_v6,
            &dual
        ));
        assert!(!is_portmap_cross_family_check_bug(
            "portmap",
            &v4_rules_in_v4,
            &dual
        ));
        assert!(!is_portmap_cross_family_check_bug("bridge", &v6_chain, &v4));
    }

    #[test]
    fn validates_attachment_parameters() {
        let rt = |id: &str, ifname: &str| RuntimeConf {
            container_id: id.into(),
            ifname: ifname.into(),
            ..RuntimeConf::default()
        };
        assert!(validate_attachment(&rt("abc", "eth0")).is_ok());
        let cases = [
            (rt("", "eth0"), "missing containerID"),
            (rt("a b", "eth0"), "invalid characters in containerID; a b"),
            (rt("abc", ""), "interface name is empty"),
            (
                rt("abc", "abcdefghijklmnop"),
                "interface name is too long; interface name should be less than 16 characters",
            ),
            (rt("abc", ".."), "interface name is . or .."),
            (
                rt("abc", "eth:0"),
                "interface name contains / or : or whitespace characters",
            ),
        ];
        for (rt, want) in cases {
            assert_eq!(validate_attachment(&rt).unwrap_err().to_string(), want);
        }
    }
}
