//! Masquerading of pod traffic that leaves the cluster's pod network (flannel's `--ip-masq`):
//! pod → pod across nodes keeps its source address; pod → anywhere else (the node network, the
//! outside) leaves with the node's. Multicast is left alone. The bridge plugin's own `ipMasq`
//! is off: it would masquerade pod → remote pod too.
//!
//! nftables when the `nft` binary is there (tables `ip rkube-podnet` / `ip6 rkube-podnet`,
//! replaced whole, atomically), else iptables (chain `RKUBE-POSTROUTING` in the nat table).

use cni::cidr::IpNet;

use crate::ip;

pub const TABLE: &str = "rkube-podnet";
pub const IPTABLES_CHAIN: &str = "RKUBE-POSTROUTING";

/// The nft script that (re)creates our tables for `cluster_cidrs`.
pub fn nft_script(cluster_cidrs: &[IpNet]) -> String {
    let mut script = String::new();
    for (family, v4, multicast) in [("ip", true, "224.0.0.0/4"), ("ip6", false, "ff00::/8")] {
        let cidrs: Vec<String> = cluster_cidrs
            .iter()
            .filter(|c| c.is_ipv4() == v4)
            .map(|c| c.network().to_string())
            .collect();
        // Declaring first makes the delete succeed on a fresh machine; the whole script is
        // one transaction.
        script.push_str(&format!(
            "table {family} {TABLE} {{}}\ndelete table {family} {TABLE}\n"
        ));
        if cidrs.is_empty() {
            continue;
        }
        let set = format!("{{ {} }}", cidrs.join(", "));
        script.push_str(&format!(
            "table {family} {TABLE} {{\n\
             \tchain postrouting {{\n\
             \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\t{family} saddr {set} {family} daddr {set} return\n\
             \t\t{family} saddr {set} {family} daddr != {multicast} masquerade fully-random\n\
             \t}}\n\
             }}\n"
        ));
    }
    script
}

/// The iptables-restore input for one family (`--noflush`: only our chain is rewritten).
pub fn iptables_rules(cluster_cidrs: &[IpNet], v4: bool) -> String {
    let multicast = if v4 { "224.0.0.0/4" } else { "ff00::/8" };
    let mut rules = format!("*nat\n:{IPTABLES_CHAIN} - [0:0]\n");
    for cidr in cluster_cidrs.iter().filter(|c| c.is_ipv4() == v4) {
        let cidr = cidr.network();
        rules.push_str(&format!("-A {IPTABLES_CHAIN} -s {cidr} -d {cidr} -j RETURN\n"));
    }
    for cidr in cluster_cidrs.iter().filter(|c| c.is_ipv4() == v4) {
        let cidr = cidr.network();
        rules.push_str(&format!(
            "-A {IPTABLES_CHAIN} -s {cidr} ! -d {multicast} -j MASQUERADE --random-fully\n"
        ));
    }
    rules.push_str("COMMIT\n");
    rules
}

/// Installs the rules (idempotent).
pub async fn install(cluster_cidrs: &[IpNet]) -> anyhow::Result<()> {
    if nft_available().await {
        return pipe("nft", &["-f", "-"], &nft_script(cluster_cidrs)).await;
    }
    for (v4, save, restore) in [
        (true, "iptables", "iptables-restore"),
        (false, "ip6tables", "ip6tables-restore"),
    ] {
        if !cluster_cidrs.iter().any(|c| c.is_ipv4() == v4) {
            continue;
        }
        pipe(restore, &["--noflush"], &iptables_rules(cluster_cidrs, v4)).await?;
        let jump = ["-t", "nat", "-C", "POSTROUTING", "-j", IPTABLES_CHAIN];
        if ip::run(save, &jump).await.is_err() {
            ip::run(save, &["-t", "nat", "-A", "POSTROUTING", "-j", IPTABLES_CHAIN]).await?;
        }
    }
    Ok(())
}

async fn nft_available() -> bool {
    ip::run("nft", &["--version"]).await.is_ok()
}

/// Runs `program args` with `input` on stdin.
pub async fn pipe(program: &str, args: &[&str], input: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        anyhow::bail!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_keep_pod_to_pod_and_masquerade_the_rest() {
        let cidrs: Vec<IpNet> = vec!["10.42.0.0/16".parse().unwrap()];
        let script = nft_script(&cidrs);
        assert!(script.contains("ip saddr { 10.42.0.0/16 } ip daddr { 10.42.0.0/16 } return"));
        assert!(script.contains("ip daddr != 224.0.0.0/4 masquerade fully-random"));
        assert!(script.contains("delete table ip6 rkube-podnet"));
        assert!(!script.contains("table ip6 rkube-podnet {\n"));
        let rules = iptables_rules(&cidrs, true);
        assert!(rules.contains("-A RKUBE-POSTROUTING -s 10.42.0.0/16 -d 10.42.0.0/16 -j RETURN"));
        assert!(rules.ends_with("COMMIT\n"));
    }
}
