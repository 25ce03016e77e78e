//! The node's default network with the real plugins (Debian's containernetworking-plugins in
//! /usr/lib/cni: bridge, host-local, loopback, portmap), run as root inside a "node" network
//! namespace each test creates: pods get addresses in the pod CIDR, reach each other and the
//! gateway across `cni0`, hostPorts forward, DEL releases everything and is idempotent.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use cni::error::Command;
use cni::{CniError, DefaultNetwork, IpNet, Options, PodNetworking, PodSandbox, PortMapping, Protocol};
use common::Netns;

/// The node's own address, on one end of a veth pair whose other end stays in the node's
/// namespace too (no dummy driver in every kernel): an "uplink" that leads nowhere.
const NODE_IP: &str = "192.0.2.10";
const NODE_IP6: &str = "2001:db8::10";

struct Node {
    netns: Netns,
    /// The node's data dir, removed on drop.
    _dir: tempfile::TempDir,
    net: PodNetworking,
    cidrs: Vec<IpNet>,
}

impl Node {
    fn new(pod_cidrs: &[&str]) -> Node {
        let netns = Netns::new("node");
        netns.ok(&[
            "ip", "link", "add", "node0", "type", "veth", "peer", "name", "uplink0",
        ]);
        netns.ok(&["ip", "addr", "add", &format!("{NODE_IP}/24"), "dev", "node0"]);
        netns.ok(&[
            "ip",
            "addr",
            "add",
            &format!("{NODE_IP6}/64"),
            "dev",
            "node0",
            "nodad",
        ]);
        netns.ok(&["ip", "link", "set", "uplink0", "up"]);
        netns.ok(&["ip", "link", "set", "node0", "up"]);
        let dir = tempfile::tempdir().unwrap();
        // The agent's layout under a data dir, with the plugins in the node namespace.
        let options = Options {
            plugin_netns: Some(netns.path.clone()),
            ..Options::for_data_dir(dir.path())
        };
        let mut network = DefaultNetwork::new(pod_cidrs).unwrap();
        network.ipam_data_dir = Some(options.ipam_data_dir());
        network.write(&options.conf_dir).unwrap();
        let net = PodNetworking::new(options);
        Node {
            netns,
            net,
            cidrs: network.pod_cidrs.clone(),
            _dir: dir,
        }
    }

    /// host-local's record of an allocation: a file named after the address.
    fn allocation(&self, ip: IpAddr) -> PathBuf {
        self.net
            .options()
            .ipam_data_dir()
            .join("cbr0")
            .join(ip.to_string())
    }

    /// Addresses host-local still holds.
    fn allocations(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.net.options().ipam_data_dir().join("cbr0")) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect()
    }

    fn nat_rules(&self) -> String {
        self.netns.ok(&["iptables-save", "-t", "nat"])
    }
}

fn sandbox(name: &str) -> PodSandbox {
    PodSandbox {
        id: format!("sandbox-{name}"),
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_each_other_the_gateway_and_their_host_ports() {
    let node = Node::new(&["10.42.7.0/24"]);
    let (ns_a, ns_b) = (Netns::new("a"), Netns::new("b"));
    let (a, b) = (sandbox("a"), sandbox("b"));
    node.net.status().await.unwrap();

    let pod_a = node.net.setup(&a, &ns_a.path, &[]).await.unwrap();
    let ports = [PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let pod_b = node.net.setup(&b, &ns_b.path, &ports).await.unwrap();
    let (ip_a, ip_b) = (pod_a.ips[0], pod_b.ips[0]);
    let gateway: IpAddr = "10.42.7.1".parse().unwrap();
    for ip in [ip_a, ip_b] {
        assert!(node.cidrs[0].contains(ip) && ip != gateway, "{ip}");
    }
    assert_ne!(ip_a, ip_b);
    assert_eq!(pod_a.ips.len(), 1);
    let route = &pod_a.result.routes[0];
    assert_eq!(route.dst.to_string(), "0.0.0.0/0");
    assert_eq!(pod_a.result.ips[0].gateway, Some(gateway));

    // Inside the pod: eth0 with the address, lo up, the default route via the gateway.
    assert!(
        ns_a.ok(&["ip", "-o", "addr", "show", "dev", "eth0"])
            .contains(&format!("{ip_a}/24"))
    );
    assert!(ns_a.ok(&["ip", "link", "show", "lo"]).contains("UP"));
    assert!(
        ns_a.ok(&["ip", "route"])
            .contains("default via 10.42.7.1 dev eth0")
    );
    // On the node: the bridge holds the gateway address.
    assert!(
        node.netns
            .ok(&["ip", "-o", "addr", "show", "dev", "cni0"])
            .contains("10.42.7.1/24")
    );
    // host-local recorded the allocations for our sandboxes.
    let owner = std::fs::read_to_string(node.allocation(ip_a)).unwrap();
    assert!(owner.starts_with("sandbox-a"), "{owner}");

    // A repeated setup returns the existing network untouched.
    assert_eq!(node.net.setup(&a, &ns_a.path, &[]).await.unwrap(), pod_a);
    assert_eq!(node.allocations().len(), 2);

    assert!(ns_a.ping(ip_b), "pod a → pod b");
    assert!(ns_b.ping(ip_a), "pod b → pod a");
    assert!(ns_a.ping(gateway), "pod a → gateway");

    // hostPort: the node's address forwards to pod b's port 80 — from the node itself
    // (OUTPUT), from another pod (PREROUTING on cni0) and from pod b itself (hairpin).
    let _server = ns_b.serve(80, "hello from b");
    let via_node = addr(NODE_IP, 8080);
    assert_eq!(node.netns.fetch(via_node).unwrap(), "hello from b");
    assert_eq!(ns_a.fetch(via_node).unwrap(), "hello from b");
    assert_eq!(ns_b.fetch(via_node).unwrap(), "hello from b");
    assert_eq!(ns_a.fetch(SocketAddr::new(ip_b, 80)).unwrap(), "hello from b");

    let rules = node.nat_rules();
    assert!(rules.contains("--dport 8080"), "{rules}");
    assert!(rules.contains(r#"id: \"sandbox-b\""#), "{rules}");

    node.net.check(&a, &ns_a.path).await.unwrap();
    node.net.check(&b, &ns_b.path).await.unwrap();
    // CHECK notices the port forwarding gone.
    let dnat_chain = node
        .nat_rules()
        .lines()
        .find_map(|l| {
            l.strip_prefix(":CNI-DN-")
                .map(|rest| format!("CNI-DN-{}", rest.split(' ').next().unwrap()))
        })
        .expect("portmap's DNAT chain");
    node.netns.ok(&["iptables", "-t", "nat", "-F", &dnat_chain]);
    let err = node.net.check(&b, &ns_b.path).await.unwrap_err();
    assert!(
        matches!(err, CniError::Plugin { command: Command::Check, ref plugin, .. } if plugin == r#"type="portmap""#),
        "{err}"
    );

    // Teardown removes the interface, the address, the port forwarding and the masquerade.
    node.net.teardown(&b, Some(&ns_b.path)).await.unwrap();
    assert!(!ns_b.has_link("eth0"));
    assert!(!node.allocation(ip_b).exists());
    let rules = node.nat_rules();
    assert!(!rules.contains("--dport 8080"), "{rules}");
    assert!(!rules.contains(r#"id: \"sandbox-b\""#), "{rules}");
    assert!(
        node.netns.fetch(via_node).is_err(),
        "no forwarding after teardown"
    );
    assert!(ns_a.ping(gateway), "pod a is untouched");

    // Idempotent: again, without the netns, and for a sandbox never set up.
    node.net.teardown(&b, Some(&ns_b.path)).await.unwrap();
    node.net.teardown(&b, None).await.unwrap();
    node.net
        .teardown(&sandbox("never"), Some(Path::new("/run/netns/rkcni-absent")))
        .await
        .unwrap();
    node.net.teardown(&a, Some(&ns_a.path)).await.unwrap();
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_set_up_concurrently_get_distinct_addresses_and_give_them_back() {
    const PODS: usize = 16;
    let node = Node::new(&["10.42.8.0/24"]);
    let namespaces: Vec<Netns> = (0..PODS).map(|i| Netns::new(&format!("p{i}"))).collect();
    let sandboxes: Vec<PodSandbox> = (0..PODS).map(|i| sandbox(&format!("p{i}"))).collect();

    let setups = sandboxes
        .iter()
        .zip(&namespaces)
        .map(|(s, ns)| node.net.setup(s, &ns.path, &[]));
    let pods: Vec<_> = futures::future::join_all(setups)
        .await
        .into_iter()
        .collect::<Result<_, CniError>>()
        .unwrap();
    let ips: HashSet<IpAddr> = pods.iter().map(|p| p.ips[0]).collect();
    assert_eq!(ips.len(), PODS, "distinct addresses: {ips:?}");
    assert!(ips.iter().all(|ip| node.cidrs[0].contains(*ip)));
    assert_eq!(node.allocations().len(), PODS);
    let mut ids: Vec<String> = sandboxes.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    assert_eq!(node.net.sandboxes().unwrap(), ids);
    // Spot-check connectivity between the first and the last.
    assert!(namespaces[0].ping(pods[PODS - 1].ips[0]));

    let teardowns = sandboxes
        .iter()
        .zip(&namespaces)
        .map(|(s, ns)| node.net.teardown(s, Some(&ns.path)));
    for done in futures::future::join_all(teardowns).await {
        done.unwrap();
    }
    assert!(node.net.sandboxes().unwrap().is_empty());
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_notices_a_broken_pod_and_teardown_still_cleans_up() {
    let node = Node::new(&["10.42.9.0/24"]);
    let ns = Netns::new("c");
    let pod = sandbox("c");
    let net = node.net.setup(&pod, &ns.path, &[]).await.unwrap();
    node.net.check(&pod, &ns.path).await.unwrap();

    ns.ok(&["ip", "link", "del", "eth0"]);
    let err = node.net.check(&pod, &ns.path).await.unwrap_err();
    assert!(
        matches!(err, CniError::Plugin { command: Command::Check, ref plugin, .. } if plugin == r#"type="bridge""#),
        "{err}"
    );

    node.net.teardown(&pod, Some(&ns.path)).await.unwrap();
    assert!(!node.allocation(net.ips[0]).exists());
    assert!(matches!(
        node.net.check(&pod, &ns.path).await,
        Err(CniError::NotSetUp { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_range_fails_setup_without_leaking() {
    // A /30: the gateway takes .1, the broadcast .3, leaving one pod address.
    let node = Node::new(&["10.42.10.0/30"]);
    let (ns1, ns2) = (Netns::new("x1"), Netns::new("x2"));
    let (p1, p2) = (sandbox("x1"), sandbox("x2"));
    let first = node.net.setup(&p1, &ns1.path, &[]).await.unwrap();
    assert_eq!(first.ips[0].to_string(), "10.42.10.2");

    let err = node.net.setup(&p2, &ns2.path, &[]).await.unwrap_err();
    match &err {
        CniError::Plugin {
            plugin,
            command: Command::Add,
            error,
        } => {
            assert_eq!(plugin, r#"type="bridge""#);
            assert!(
                error.msg.contains("no IP addresses available in range set"),
                "{error:?}"
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .starts_with(r#"plugin type="bridge" failed (add): failed to allocate for range 0"#),
        "{err}"
    );
    assert!(!ns2.has_link("eth0"), "the failed pod's veth was removed");
    assert_eq!(node.allocations(), ["10.42.10.2"]);

    node.net.teardown(&p1, Some(&ns1.path)).await.unwrap();
    let second = node.net.setup(&p2, &ns2.path, &[]).await.unwrap();
    assert_eq!(
        second.ips[0].to_string(),
        "10.42.10.2",
        "the address is free again"
    );
    node.net.teardown(&p2, Some(&ns2.path)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_after_the_netns_is_gone_releases_the_address() {
    let node = Node::new(&["10.42.11.0/24"]);
    let ns = Netns::new("gone");
    let pod = sandbox("gone");
    let net = node.net.setup(&pod, &ns.path, &[]).await.unwrap();
    let path = ns.path.clone();
    drop(ns);
    assert!(!path.exists());
    node.net.teardown(&pod, Some(&path)).await.unwrap();
    assert!(!node.allocation(net.ips[0]).exists());
    node.net.teardown(&pod, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_pods_get_an_address_of_each_family() {
    let node = Node::new(&["10.42.12.0/24", "fd00:42:12::/64"]);
    let (ns_a, ns_b) = (Netns::new("d1"), Netns::new("d2"));
    let (a, b) = (sandbox("d1"), sandbox("d2"));
    let pod_a = node.net.setup(&a, &ns_a.path, &[]).await.unwrap();
    let ports = [PortMapping {
        host_port: 8081,
        container_port: 81,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let pod_b = node.net.setup(&b, &ns_b.path, &ports).await.unwrap();
    for pod in [&pod_a, &pod_b] {
        assert_eq!(pod.ips.len(), 2, "{:?}", pod.ips);
        assert!(pod.ips[0].is_ipv4() && node.cidrs[0].contains(pod.ips[0]));
        assert!(pod.ips[1].is_ipv6() && node.cidrs[1].contains(pod.ips[1]));
    }
    assert!(
        ns_a.ok(&["ip", "-6", "route"])
            .contains("default via fd00:42:12::1")
    );
    assert!(ns_a.ping(pod_b.ips[1]), "pod → pod over IPv6");
    assert!(ns_a.ping("fd00:42:12::1".parse().unwrap()), "pod → IPv6 gateway");
    assert!(ns_b.ping(pod_a.ips[0]), "and IPv4");
    // The hostPort forwards on both families' node addresses.
    let _server = ns_b.serve6(81, "hello over both");
    for node_ip in [NODE_IP, NODE_IP6] {
        assert_eq!(
            node.netns.fetch(addr(node_ip, 8081)).unwrap(),
            "hello over both",
            "{node_ip}"
        );
    }
    node.net.check(&b, &ns_b.path).await.unwrap();
    node.net.teardown(&a, Some(&ns_a.path)).await.unwrap();
    node.net.teardown(&b, Some(&ns_b.path)).await.unwrap();
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}
