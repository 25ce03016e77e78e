//! Root tests of the diff against the kernel: a sequence of pseudo-random cluster states is
//! applied incrementally in one namespace and by full syncs in another; after every step
//! both namespaces must hold the same rules (order of chains and elements aside). Every
//! feature appears: NodePort, LoadBalancer with source ranges, externalIPs, affinity with
//! changing timeouts, traffic policies, TCP/UDP/SCTP, IPv4 and IPv6, terminating endpoints.

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::testing::{service, slice};
use proxy::{Backend, Config, Proxier};
use serde_json::{Value, json};
use testkit::netns::NetNs;

/// A small deterministic generator (xorshift): the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn state(rng: &mut Rng, sctp: bool) -> (Vec<Service>, Vec<EndpointSlice>) {
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for i in 0..6 {
        if rng.chance(15) {
            continue;
        }
        let name = format!("svc{i}");
        let protocols: &[&str] = if sctp {
            &["TCP", "UDP", "SCTP"]
        } else {
            &["TCP", "UDP"]
        };
        let protocol = protocols[rng.below(protocols.len() as u64) as usize];
        let ty = ["ClusterIP", "NodePort", "LoadBalancer"][rng.below(3) as usize];
        let v6 = rng.chance(30);
        let cluster_ip = if v6 {
            format!("fd00:96::{}", i + 1)
        } else {
            format!("10.96.0.{}", i + 1)
        };
        let mut spec = json!({
            "type": ty,
            "ports": [{"name": "p", "port": 80 + rng.below(2), "protocol": protocol}],
        });
        if ty != "ClusterIP" {
            spec["ports"][0]["nodePort"] = json!(30000 + i);
            if rng.chance(50) {
                spec["externalTrafficPolicy"] = json!("Local");
            }
        }
        if rng.chance(30) {
            spec["internalTrafficPolicy"] = json!("Local");
        }
        if rng.chance(40) {
            spec["sessionAffinity"] = json!("ClientIP");
            spec["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 60 * (1 + rng.below(2))}});
        }
        if rng.chance(30) {
            spec["externalIPs"] = json!([if v6 { "fd00:50::100" } else { "192.168.50.100" }]);
        }
        if ty == "LoadBalancer" && rng.chance(50) {
            spec["loadBalancerSourceRanges"] = json!([if v6 { "fd00:50::/64" } else { "192.168.50.0/24" }]);
        }
        let mut svc = service(&name, &cluster_ip, spec);
        if ty == "LoadBalancer" {
            let ingress = if v6 { "fd00:50::9" } else { "192.168.50.9" };
            svc.status =
                serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": ingress}]}})).unwrap();
        }
        services.push(svc);
        let mut eps = Vec::new();
        for e in 0..5 {
            if rng.chance(50) {
                continue;
            }
            let ip = if v6 {
                format!("fd00:42::{}", e + 10)
            } else {
                format!("10.42.0.{}", e + 10)
            };
            let node = if rng.chance(50) { "node-a" } else { "node-b" };
            let (ready, serving, terminating) = match rng.below(4) {
                0 => (false, true, true),
                1 => (false, false, false),
                _ => (true, true, false),
            };
            eps.push((ip, node, ready, serving, terminating));
        }
        let eps: Vec<_> = eps
            .iter()
            .map(|(ip, n, r, s, t)| (ip.as_str(), *n, *r, *s, *t))
            .collect();
        let port = 8080 + rng.below(2) as u16;
        slices.push(slice(&name, &format!("{name}-x"), ("p", port, protocol), &eps));
    }
    (services, slices)
}

fn in_ns<T: Send>(ns: &NetNs, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter().unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn sync(ns: &NetNs, p: &mut Proxier, services: &[Service], slices: &[EndpointSlice]) -> proxy::SyncStats {
    in_ns(ns, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(p.sync(services, slices))
            .unwrap()
    })
}

fn output(ns: &NetNs, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn strip_handles(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("handle");
            for item in map.values_mut() {
                strip_handles(item);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

/// The table's objects without handles, chains and sets in name order, elements sorted,
/// rules in their order per chain.
fn nft_state(ns: &NetNs, family: &str) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let listing = output(ns, &["nft", "-j", "list", "table", family, "rkube-proxy"]);
    let mut v: Value = serde_json::from_str(&listing).unwrap();
    strip_handles(&mut v);
    let mut objects = Vec::new();
    let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in v["nftables"].as_array().unwrap() {
        if let Some(rule) = item.get("rule") {
            rules
                .entry(rule["chain"].as_str().unwrap().to_owned())
                .or_default()
                .push(rule["expr"].to_string());
        } else if item.get("metainfo").is_none() {
            let mut item = item.clone();
            for kind in ["set", "map"] {
                if let Some(elem) = item
                    .get_mut(kind)
                    .and_then(|s| s.get_mut("elem"))
                    .and_then(Value::as_array_mut)
                {
                    elem.sort_by_key(|e| e.to_string());
                }
            }
            objects.push(item.to_string());
        }
    }
    objects.sort();
    (objects, rules)
}

/// Our iptables chains: declarations sorted, rules per chain in order.
fn iptables_state(ns: &NetNs, tool: &str) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let mut decls = Vec::new();
    let mut rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for table in ["nat", "filter"] {
        for line in output(ns, &[tool, "-t", table]).lines() {
            if let Some(rest) = line.strip_prefix(':') {
                decls.push(format!("{table} {}", rest.split_whitespace().next().unwrap()));
            } else if let Some(rest) = line.strip_prefix("-A ") {
                let chain = rest.split_whitespace().next().unwrap();
                rules
                    .entry(format!("{table} {chain}"))
                    .or_default()
                    .push(rest.to_owned());
            }
        }
    }
    decls.sort();
    (decls, rules)
}

fn incremental_matches_full(backend: Backend) {
    let incremental_ns = NetNs::create("pxi").unwrap();
    let full_ns = NetNs::create("pxf").unwrap();
    let config = |name: &str| {
        let mut c = Config::new(name);
        c.node_ips = vec!["192.168.50.2".parse().unwrap(), "fd00:50::2".parse().unwrap()];
        c.cluster_cidrs = vec!["10.42.0.0/16".parse().unwrap(), "fd00:42::/64".parse().unwrap()];
        c.backend = backend;
        c
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut inc = rt.block_on(Proxier::new(config("node-a")));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // iptables' sctp match needs a kernel module this machine may lack.
    let sctp = backend == Backend::Nftables;
    let mut incremental_steps = 0;
    let mut rewritten_in_place = 0;
    for step in 0..15 {
        let (services, slices) = state(&mut rng, sctp);
        let stats = sync(&incremental_ns, &mut inc, &services, &slices);
        incremental_steps += usize::from(!stats.full);
        // A fresh proxier: nothing cached, everything rendered and written from scratch
        // (what was in the kernel is replaced).
        let mut full = rt.block_on(Proxier::new(config("node-a")));
        let stats = sync(&full_ns, &mut full, &services, &slices);
        assert!(stats.full);
        rewritten_in_place += usize::from(!stats.replaced);
        for family in ["ip", "ip6"] {
            let (a, b) = match backend {
                Backend::Iptables => {
                    let tool = if family == "ip" {
                        "iptables-save"
                    } else {
                        "ip6tables-save"
                    };
                    (
                        iptables_state(&incremental_ns, tool),
                        iptables_state(&full_ns, tool),
                    )
                }
                _ => (nft_state(&incremental_ns, family), nft_state(&full_ns, family)),
            };
            assert_eq!(a.0, b.0, "step {step} {family}: chains/sets differ");
            assert_eq!(a.1, b.1, "step {step} {family}: rules differ");
            assert!(!a.1.is_empty());
        }
    }
    assert_eq!(incremental_steps, 14);
    // Full syncs over the previous step's table rewrite it in place, unless an affinity
    // timeout changed (then the table is recreated).
    assert!(rewritten_in_place >= 10, "{rewritten_in_place} of 15 in place");
}

#[test]
fn nftables_incremental_updates_match_a_full_sync() {
    incremental_matches_full(Backend::Nftables);
}

#[test]
fn iptables_incremental_updates_match_a_full_sync() {
    incremental_matches_full(Backend::Iptables);
}
