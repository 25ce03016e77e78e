//! The files kubelet writes for a pod and bind-mounts into its containers: /etc/hosts,
//! /etc/hostname and /etc/resolv.conf (from the pod's DNS policy), and each container's
//! termination-message file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, PodSpec};

/// How pods find the cluster's DNS.
#[derive(Clone, Debug)]
pub struct Dns {
    /// The cluster DNS Service's address (kubelet's `--cluster-dns`).
    pub cluster_dns: Vec<IpAddr>,
    /// kubelet's `--cluster-domain`.
    pub cluster_domain: String,
    /// The resolv.conf `Default` pods inherit (kubelet's `--resolv-conf`).
    pub host_resolv_conf: PathBuf,
}

/// The pod's hostname and, with a subdomain, its fully qualified name.
pub fn hostnames(pod: &Pod, domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hostname = spec.hostname.clone().unwrap_or(name);
    let hostname: String = hostname.chars().take(63).collect();
    let hostname = hostname.trim_end_matches(['-', '.']).to_owned();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let fqdn = spec
        .subdomain
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|sub| format!("{hostname}.{sub}.{namespace}.svc.{domain}"));
    (hostname, fqdn)
}

/// kubelet's managed /etc/hosts.
pub fn hosts(pod: &Pod, pod_ips: &[IpAddr], domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = String::new();
    if spec.host_network == Some(true) {
        out.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    } else {
        out.push_str("# Kubernetes-managed hosts file.\n");
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str("fe00::0\tip6-localnet\n");
        out.push_str("fe00::0\tip6-mcastprefix\n");
        out.push_str("fe00::1\tip6-allnodes\n");
        out.push_str("fe00::2\tip6-allrouters\n");
        let (hostname, fqdn) = hostnames(pod, domain);
        for ip in pod_ips {
            match &fqdn {
                Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{hostname}\n")),
                None => out.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// resolv.conf by the pod's dnsPolicy and dnsConfig, as kubelet's `GetPodDNS`.
pub fn resolv_conf(pod: &Pod, dns: &Dns) -> String {
    let spec: PodSpec = pod.spec.clone().unwrap_or_default();
    let host = std::fs::read_to_string(&dns.host_resolv_conf).unwrap_or_default();
    let (mut nameservers, mut searches, mut options) = parse_resolv_conf(&host);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network == Some(true);
    let cluster_first = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    if policy == "None" {
        (nameservers, searches, options) = (Vec::new(), Vec::new(), Vec::new());
    } else if cluster_first && !dns.cluster_dns.is_empty() {
        nameservers = dns.cluster_dns.iter().map(IpAddr::to_string).collect();
        let domain = &dns.cluster_domain;
        let mut cluster = vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        cluster.append(&mut searches);
        searches = cluster;
        options = vec!["ndots:5".to_owned()];
    }
    if let Some(config) = &spec.dns_config {
        for ns in config.nameservers.iter().flatten() {
            if !nameservers.contains(ns) {
                nameservers.push(ns.clone());
            }
        }
        for s in config.searches.iter().flatten() {
            if !searches.contains(s) {
                searches.push(s.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let name = option.name.clone().unwrap_or_default();
            let value = match &option.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            options.retain(|o| o.split(':').next() != Some(name.as_str()));
            options.push(value);
        }
    }
    // glibc reads at most 3 nameservers and 32 search domains.
    nameservers.truncate(3);
    searches.truncate(32);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for ns in &nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut options) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => ns.extend(words.next().map(str::to_owned)),
            Some("search") | Some("domain") => {
                search = words.map(str::to_owned).collect();
            }
            Some("options") => options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    (ns, search, options)
}

/// Writes `contents` to `path` through a temporary file, so a container never sees half.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// What a container wrote to its termination-message file (kubelet reads at most 4096
/// bytes), or with `FallbackToLogsOnError` after a failure, the end of its log.
pub fn termination_message(file: &Path, fallback_log: Option<&Path>) -> Option<String> {
    let bytes = std::fs::read(file).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4096)]).into_owned();
    if !text.is_empty() {
        return Some(text);
    }
    let log = fallback_log?;
    // kubelet's fallback: the last 80 lines, at most 2048 bytes.
    let options = runtime::logs::ReadOptions {
        tail_lines: Some(80),
        ..Default::default()
    };
    let bytes = runtime::logs::read(log, &options).ok()?;
    let tail = &bytes[bytes.len().saturating_sub(2048)..];
    (!tail.is_empty()).then(|| String::from_utf8_lossy(tail).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-0", "namespace": "shop"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn cluster_first_resolv_conf_has_the_search_path_and_ndots() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("resolv.conf");
        std::fs::write(&host, "nameserver 192.0.2.1\nsearch example.org\n").unwrap();
        let dns = Dns {
            cluster_dns: vec!["10.43.0.10".parse().unwrap()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: host,
        };
        let conf = resolv_conf(&pod(json!({"containers": []})), &dns);
        assert_eq!(
            conf,
            "search shop.svc.cluster.local svc.cluster.local cluster.local example.org\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
        let default = resolv_conf(&pod(json!({"containers": [], "dnsPolicy": "Default"})), &dns);
        assert_eq!(default, "search example.org\nnameserver 192.0.2.1\n");
        let none = resolv_conf(
            &pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}})),
            &dns,
        );
        assert_eq!(none, "nameserver 1.2.3.4\noptions ndots:2 edns0\n");
    }

    #[test]
    fn hosts_file_names_the_pod_and_its_aliases() {
        let p = pod(json!({"containers": [], "hostname": "h", "subdomain": "s",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}));
        let hosts = hosts(&p, &["10.42.0.7".parse().unwrap()], "cluster.local");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.42.0.7\th.s.shop.svc.cluster.local\th\n"));
        assert!(hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"));
    }
}
