//! iproute2 (`ip`, `bridge`) run as commands: what the pod network changes is a handful of
//! links, addresses, routes, neighbours and FDB entries per node, changed when nodes come and
//! go, so a process per change costs nothing worth a netlink library.

use std::net::IpAddr;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::Command;

/// Routes this crate installs carry this protocol number, so a restarted agent can tell its
/// own routes (to remove the stale ones) from everything else in the table.
pub const ROUTE_PROTOCOL: &str = "77";

/// Runs `program args…`; a non-zero exit is an error carrying stderr.
pub async fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn ip(args: &[&str]) -> anyhow::Result<String> {
    run("ip", args).await
}

/// `ip -j …` parsed; an empty output is an empty list.
pub async fn ip_json(args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let out = ip(&full).await?;
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(&out).with_context(|| format!("ip {}: not JSON", args.join(" ")))?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

/// The interface holding `addr`, with that address's prefix length and the interface's MTU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub prefix_len: u8,
    pub mtu: u32,
}

pub async fn interface_with_address(addr: IpAddr) -> anyhow::Result<Interface> {
    let links = ip_json(&["addr", "show"]).await?;
    find_interface(&links, addr).with_context(|| format!("no interface has the node address {addr}"))
}

/// Looks `addr` up in `ip -j addr show` output.
pub fn find_interface(links: &[Value], addr: IpAddr) -> Option<Interface> {
    links.iter().find_map(|link| {
        let info = link["addr_info"].as_array()?.iter().find(|a| {
            a["local"]
                .as_str()
                .and_then(|l| l.parse::<IpAddr>().ok())
                .is_some_and(|l| l == addr)
        })?;
        Some(Interface {
            name: link["ifname"].as_str()?.to_owned(),
            prefix_len: info["prefixlen"].as_u64()? as u8,
            mtu: link["mtu"].as_u64().unwrap_or(1500) as u32,
        })
    })
}

/// Whether `peer` is reached directly on a link of ours (no gateway in between): host-gw
/// routes need that, as flannel's host-gw backend does.
pub async fn on_link(peer: IpAddr) -> bool {
    match ip_json(&["route", "get", &peer.to_string()]).await {
        Ok(routes) => routes
            .first()
            .is_some_and(|r| r.get("gateway").is_none() && r["type"].as_str() != Some("local")),
        Err(_) => false,
    }
}

/// The link's MAC address, if the link exists.
pub async fn link_mac(name: &str) -> Option<String> {
    let links = ip_json(&["link", "show", "dev", name]).await.ok()?;
    links.first()?["address"].as_str().map(str::to_owned)
}

/// Sets a sysctl of this network namespace (`net/ipv4/ip_forward`); absent keys (a kernel
/// without br_netfilter) are skipped.
pub fn sysctl(key: &str, value: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new("/proc/sys").join(key);
    if !path.exists() {
        tracing::debug!(key, "sysctl not present");
        return Ok(());
    }
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).with_context(|| format!("cannot set {key} = {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interface_of_an_address() {
        let links: Vec<Value> = serde_json::from_str(
            r#"[{"ifname":"lo","mtu":65536,"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
                {"ifname":"eth0","mtu":1500,"addr_info":[{"family":"inet","local":"172.31.0.2","prefixlen":24},
                                                         {"family":"inet6","local":"fe80::1","prefixlen":64}]}]"#,
        )
        .unwrap();
        assert_eq!(
            find_interface(&links, "172.31.0.2".parse().unwrap()),
            Some(Interface {
                name: "eth0".into(),
                prefix_len: 24,
                mtu: 1500
            })
        );
        assert_eq!(find_interface(&links, "172.31.0.3".parse().unwrap()), None);
    }
}
