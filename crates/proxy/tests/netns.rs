//! Root tests: rules programmed into a node's network namespace carry real traffic between
//! pod namespaces, the node and an outside namespace — with the nftables backend and the
//! iptables fallback.

mod common;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::testing::{ready, service, slice};
use proxy::{Backend, Config, Proxier};
use serde_json::json;

fn proxier(backend: Backend) -> Proxier {
    let mut config = Config::new(NODE);
    config.node_ips = vec![NODE_IP.parse().unwrap(), NODE_IP6.parse().unwrap()];
    config.cluster_cidrs = vec!["10.42.0.0/16".parse().unwrap(), "fd00:42::/64".parse().unwrap()];
    config.backend = backend;
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(Proxier::new(config))
}

/// A LoadBalancer Service `web` (cluster IP 10.96.0.10:80, NodePort 30080, externalIP)
/// whose ingress is the node's address, servicelb-style.
fn web(extra: serde_json::Value) -> Service {
    let mut spec = json!({
        "type": "LoadBalancer",
        "externalIPs": [EXTERNAL_IP],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP", "targetPort": 8080}],
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let mut svc = service("web", "10.96.0.10", spec);
    svc.status = serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": NODE_IP}]}})).unwrap();
    svc
}

fn web_slice(lab: &Lab, pods: &[usize]) -> EndpointSlice {
    let eps: Vec<_> = pods.iter().map(|i| ready(&lab.pods[*i].ip, NODE)).collect();
    slice("web", "web-abc", ("http", 8080, "TCP"), &eps)
}

fn refused_fast(result: std::io::Result<String>, started: Instant) {
    match result {
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
        other => panic!("expected connection refused, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

fn services_reach_endpoints(backend: Backend) {
    let lab = Lab::new(3);
    lab.serve_tcp(0, 8080);
    lab.serve_tcp(1, 8080);
    let mut p = proxier(backend);
    let svc = web(json!({}));
    let stats = lab.sync(&mut p, std::slice::from_ref(&svc), &[web_slice(&lab, &[0, 1])]);
    assert!(stats.full);

    // Pod → ClusterIP: random over both endpoints.
    let seen = who_answers(&lab.pods[2].ns, "10.96.0.10:80", 30);
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Node → ClusterIP, outside → NodePort, LoadBalancer (node IP), externalIP.
    assert!(tcp_get(&lab.node, "10.96.0.10:80").unwrap().starts_with("pod"));
    for addr in [
        format!("{NODE_IP}:30080"),
        format!("{NODE_IP}:80"),
        format!("{EXTERNAL_IP}:80"),
    ] {
        let answer = tcp_get(&lab.outside, &addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        // Cluster traffic policy: external clients are masqueraded to the node.
        assert!(answer.ends_with(BRIDGE_IP), "{addr}: {answer}");
    }
    // A pod's own address is kept for in-cluster traffic.
    let answer = tcp_get(&lab.pods[2].ns, "10.96.0.10:80").unwrap();
    assert!(answer.ends_with(&lab.pods[2].ip), "{answer}");
    if backend == Backend::Nftables {
        // A port the cluster IP does not serve is rejected (kube-proxy's nftables
        // cluster-ips-check; its iptables mode has no such rule).
        let started = Instant::now();
        refused_fast(tcp_get(&lab.pods[2].ns, "10.96.0.10:81"), started);
    }

    // Incremental: one endpoint leaves.
    let stats = lab.sync(&mut p, std::slice::from_ref(&svc), &[web_slice(&lab, &[0])]);
    assert!(!stats.full);
    let seen = who_answers(&lab.pods[2].ns, "10.96.0.10:80", 10);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["pod0"], "{seen:?}");

    // Only a terminating (still serving) endpoint: kube-proxy's fallback keeps it in use;
    // a not-ready, not-serving one is not used.
    let terminating = slice(
        "web",
        "web-abc",
        ("http", 8080, "TCP"),
        &[
            (&lab.pods[1].ip, NODE, false, true, true),
            (&lab.pods[0].ip, NODE, false, false, false),
        ],
    );
    lab.sync(&mut p, std::slice::from_ref(&svc), &[terminating]);
    let seen = who_answers(&lab.pods[2].ns, "10.96.0.10:80", 10);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["pod1"], "{seen:?}");

    // No endpoints: fast "connection refused" from a pod, the node and outside.
    lab.sync(&mut p, std::slice::from_ref(&svc), &[] as &[EndpointSlice]);
    for (ns, addr) in [
        (&lab.pods[2].ns, "10.96.0.10:80".to_string()),
        (&lab.node, "10.96.0.10:80".to_string()),
        (&lab.outside, format!("{NODE_IP}:30080")),
        (&lab.outside, format!("{EXTERNAL_IP}:80")),
    ] {
        let started = Instant::now();
        refused_fast(tcp_get(ns, &addr), started);
    }

    // Endpoints back; then the Service goes: rules go with it.
    lab.sync(&mut p, &[svc], &[web_slice(&lab, &[1])]);
    assert!(
        tcp_get(&lab.pods[2].ns, "10.96.0.10:80")
            .unwrap()
            .starts_with("pod1")
    );
    lab.sync(&mut p, &[] as &[Service], &[] as &[EndpointSlice]);
    assert!(tcp_get(&lab.pods[2].ns, "10.96.0.10:80").is_err());
}

#[test]
fn nftables_services_reach_endpoints() {
    services_reach_endpoints(Backend::Nftables);
}

#[test]
fn iptables_services_reach_endpoints() {
    services_reach_endpoints(Backend::Iptables);
}

fn session_affinity_and_hairpin(backend: Backend) {
    let lab = Lab::new(3);
    for i in 0..3 {
        lab.serve_tcp(i, 8080);
    }
    let mut p = proxier(backend);
    let sticky = web(
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}),
    );
    lab.sync(
        &mut p,
        std::slice::from_ref(&sticky),
        &[web_slice(&lab, &[0, 1, 2])],
    );
    let seen = who_answers(&lab.pods[2].ns, "10.96.0.10:80", 15);
    assert_eq!(seen.len(), 1, "sticks to one endpoint: {seen:?}");
    // A periodic full resync keeps the affinity entries.
    for _ in 0..3 {
        p.force_full_sync();
        let stats = lab.sync(
            &mut p,
            std::slice::from_ref(&sticky),
            &[web_slice(&lab, &[0, 1, 2])],
        );
        assert!(stats.full && !stats.replaced);
        assert_eq!(
            who_answers(&lab.pods[2].ns, "10.96.0.10:80", 5)
                .keys()
                .collect::<Vec<_>>(),
            seen.keys().collect::<Vec<_>>(),
            "still sticks after a resync"
        );
    }

    // Hairpin: a pod reaching itself through its Service sees the node as its peer.
    let plain = web(json!({}));
    lab.sync(&mut p, &[plain], &[web_slice(&lab, &[0])]);
    let answer = tcp_get(&lab.pods[0].ns, "10.96.0.10:80").unwrap();
    assert_eq!(answer, format!("pod0 {BRIDGE_IP}"));
}

#[test]
fn nftables_session_affinity_and_hairpin() {
    session_affinity_and_hairpin(Backend::Nftables);
}

#[test]
fn iptables_session_affinity_and_hairpin() {
    session_affinity_and_hairpin(Backend::Iptables);
}

fn udp_conntrack_entries_follow_endpoints(backend: Backend) {
    let lab = Lab::new(3);
    lab.serve_udp(0, 5353);
    lab.serve_udp(1, 5353);
    let mut p = proxier(backend);
    let dns = service(
        "dns",
        "10.96.0.53",
        json!({"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
    );
    let to = |i: usize| {
        slice(
            "dns",
            "dns-1",
            ("dns", 5353, "UDP"),
            &[ready(&lab.pods[i].ip, NODE)],
        )
    };
    lab.sync(&mut p, std::slice::from_ref(&dns), &[to(0)]);
    let client = UdpClient::new(&lab.pods[2].ns);
    assert!(client.ask("10.96.0.53:53").unwrap().starts_with("pod0"));
    // The flow's conntrack entry still DNATs to pod0 (which still answers) unless deleted.
    lab.sync(&mut p, &[dns], &[to(1)]);
    assert!(client.ask("10.96.0.53:53").unwrap().starts_with("pod1"));
}

#[test]
fn nftables_udp_conntrack_entries_follow_endpoints() {
    udp_conntrack_entries_follow_endpoints(Backend::Nftables);
}

#[test]
fn iptables_udp_conntrack_entries_follow_endpoints() {
    udp_conntrack_entries_follow_endpoints(Backend::Iptables);
}

fn traffic_policies_local(backend: Backend) {
    let lab = Lab::new(3);
    lab.serve_tcp(0, 8080);
    let mut p = proxier(backend);
    let local = web(json!({"externalTrafficPolicy": "Local"}));
    // The only endpoint is on this node: the client's address is kept.
    lab.sync(&mut p, std::slice::from_ref(&local), &[web_slice(&lab, &[0])]);
    let answer = tcp_get(&lab.outside, &format!("{NODE_IP}:30080")).unwrap();
    assert_eq!(answer, format!("pod0 {OUTSIDE_IP}"));
    // The only endpoint is elsewhere: outside traffic is dropped (a timeout, not a refusal),
    // in-cluster traffic still gets through.
    let elsewhere = slice(
        "web",
        "web-abc",
        ("http", 8080, "TCP"),
        &[ready(&lab.pods[0].ip, "node-b")],
    );
    lab.sync(&mut p, &[local], &[elsewhere]);
    match tcp_get(&lab.outside, &format!("{NODE_IP}:30080")) {
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected a drop, got {other:?}"),
    }
    assert!(
        tcp_get(&lab.pods[2].ns, "10.96.0.10:80")
            .unwrap()
            .starts_with("pod0")
    );
    assert!(
        tcp_get(&lab.pods[2].ns, &format!("{NODE_IP}:30080"))
            .unwrap()
            .starts_with("pod0")
    );

    // internalTrafficPolicy Local: in-cluster traffic only to this node's endpoints; with
    // none here it is dropped (the endpoints elsewhere exist, so no rejection).
    let internal = web(json!({"internalTrafficPolicy": "Local"}));
    let elsewhere = slice(
        "web",
        "web-abc",
        ("http", 8080, "TCP"),
        &[ready(&lab.pods[0].ip, "node-b")],
    );
    lab.sync(&mut p, std::slice::from_ref(&internal), &[elsewhere]);
    match tcp_get(&lab.pods[2].ns, "10.96.0.10:80") {
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected a drop, got {other:?}"),
    }
    lab.sync(&mut p, &[internal], &[web_slice(&lab, &[0])]);
    assert!(
        tcp_get(&lab.pods[2].ns, "10.96.0.10:80")
            .unwrap()
            .starts_with("pod0")
    );
}

#[test]
fn nftables_traffic_policies_local() {
    traffic_policies_local(Backend::Nftables);
}

#[test]
fn iptables_traffic_policies_local() {
    traffic_policies_local(Backend::Iptables);
}

fn ipv6_services(backend: Backend) {
    let lab = Lab::new(3);
    lab.serve_tcp(0, 8080);
    lab.serve_tcp(1, 8080);
    let mut p = proxier(backend);
    let svc = service(
        "web",
        "fd00:96::10",
        json!({"type": "NodePort", "ipFamilies": ["IPv6", "IPv4"], "clusterIPs": ["fd00:96::10", "10.96.0.10"],
               "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
    );
    let eps: Vec<_> = [0, 1].iter().map(|i| ready(&lab.pods[*i].ip6, NODE)).collect();
    let v6 = slice("web", "web-v6", ("http", 8080, "TCP"), &eps);
    let v4 = web_slice(&lab, &[0]);
    lab.sync(&mut p, std::slice::from_ref(&svc), &[v6, v4]);
    let seen = who_answers(&lab.pods[2].ns, "[fd00:96::10]:80", 30);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let answer = tcp_get(&lab.pods[2].ns, "[fd00:96::10]:80").unwrap();
    assert!(answer.ends_with(&lab.pods[2].ip6), "{answer}");
    assert!(tcp_get(&lab.node, "[fd00:96::10]:80").is_ok());
    let answer = tcp_get(&lab.outside, &format!("[{NODE_IP6}]:30080")).unwrap();
    assert!(answer.ends_with(BRIDGE_IP6), "masqueraded: {answer}");
    // The IPv4 side of the dual-stack Service has its own endpoints.
    let seen = who_answers(&lab.pods[2].ns, "10.96.0.10:80", 10);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["pod0"], "{seen:?}");
    // No IPv6 endpoints: rejected.
    lab.sync(&mut p, &[svc], &[web_slice(&lab, &[0])]);
    let started = Instant::now();
    refused_fast(tcp_get(&lab.pods[2].ns, "[fd00:96::10]:80"), started);
}

#[test]
fn nftables_ipv6_services() {
    ipv6_services(Backend::Nftables);
}

#[test]
fn iptables_ipv6_services() {
    ipv6_services(Backend::Iptables);
}

fn load_balancer_source_ranges(backend: Backend) {
    let lab = Lab::new(1);
    lab.serve_tcp(0, 8080);
    let mut p = proxier(backend);
    let lb = |range: &str| web(json!({"loadBalancerSourceRanges": [range]}));
    lab.sync(&mut p, &[lb("192.168.60.0/24")], &[web_slice(&lab, &[0])]);
    // Not from an allowed range: dropped at the LoadBalancer address; NodePorts are not
    // subject to source ranges (as kube-proxy).
    match tcp_get(&lab.outside, &format!("{NODE_IP}:80")) {
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("expected a drop, got {other:?}"),
    }
    assert!(tcp_get(&lab.outside, &format!("{NODE_IP}:30080")).is_ok());
    lab.sync(&mut p, &[lb("192.168.50.0/24")], &[web_slice(&lab, &[0])]);
    assert!(tcp_get(&lab.outside, &format!("{NODE_IP}:80")).is_ok());
}

#[test]
fn nftables_load_balancer_source_ranges() {
    load_balancer_source_ranges(Backend::Nftables);
}

#[test]
fn iptables_load_balancer_source_ranges() {
    load_balancer_source_ranges(Backend::Iptables);
}
