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
                Err(e) if is_portmap_ipv6_check_bug(&plugin.plugin_type, &e, &cached) => {
                    tracing::debug!(error = %e, "ignoring portmap's IPv6 CHECK of an IPv4-only pod");
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

/// portmap before plugins v1.3.0 (Debian 12 ships 1.1.1) checks its IPv6 DNAT chain even for
/// a pod without an IPv6 address, where ADD never created one, so CHECK of every IPv4-only pod
/// with a hostPort fails ("could not check ipv6 dnat"). That one error, for such a pod, is not
/// a broken attachment.
fn is_portmap_ipv6_check_bug(plugin_type: &str, error: &CniError, result: &AddResult) -> bool {
    let CniError::Plugin { error, .. } = error else {
        return false;
    };
    plugin_type == "portmap"
        && error.msg.starts_with("could not check ipv6 dnat")
        && result.ips.iter().all(|ip| ip.address.is_ipv4())
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
