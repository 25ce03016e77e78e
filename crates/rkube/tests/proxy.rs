//! `proxy::run` end to end: a real server, Services and EndpointSlices written through the
//! API (as the endpoints controller will), and traffic through the rules the proxy programs
//! inside a node's network namespace. The whole test runs in that namespace (the server
//! listens on its loopback), so the proxy's `nft` runs there too.

mod common;
#[path = "../../proxy/tests/common/mod.rs"]
mod lab;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

fn slice_for(name: &str, ips: &[&str]) -> EndpointSlice {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "test"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": ips.iter().map(|ip| json!({"addresses": [ip], "nodeName": lab::NODE, "conditions": {"ready": true}})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Polls `f` until it holds; returns how long that took.
fn within(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn proxy_programs_services_from_the_api_within_a_second() {
    let lab = lab::Lab::new(3);
    lab.serve_tcp(0, 8080);
    lab.serve_tcp(1, 8080);
    lab.node.enter().unwrap();
    let server = common::Server::start();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, cluster_ip) = runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let svc: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}]},
        }))
        .unwrap();
        let svc = services.create(&PostParams::default(), &svc).await.unwrap();
        (client, svc.spec.unwrap().cluster_ip.unwrap())
    });
    let mut config = proxy::Config::new(lab::NODE);
    config.node_ips = vec![lab::NODE_IP.parse().unwrap()];
    config.cluster_cidrs = vec!["10.42.0.0/16".parse().unwrap()];
    config.backend = proxy::Backend::Nftables;
    let proxy_task = runtime.spawn(proxy::run(client.clone(), config));
    let addr = format!("{cluster_ip}:80");
    let pod_client = &lab.pods[2].ns;

    // No endpoints yet: rejected.
    within(
        Duration::from_secs(10),
        "reject without endpoints",
        || matches!(lab::tcp_get(pod_client, &addr), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
    );

    let slices: Api<EndpointSlice> = Api::namespaced(client, "default");
    let ip0 = lab.pods[0].ip.clone();
    let ip1 = lab.pods[1].ip.clone();
    runtime
        .block_on(slices.create(&PostParams::default(), &slice_for("web-abc", &[&ip0])))
        .unwrap();
    let took = within(Duration::from_secs(1), "first endpoint", || {
        lab::tcp_get(pod_client, &addr).is_ok_and(|a| a.starts_with("pod0"))
    });
    eprintln!("first endpoint programmed after {took:?}");

    // A second endpoint (another slice) joins the rotation.
    runtime
        .block_on(slices.create(&PostParams::default(), &slice_for("web-def", &[&ip1])))
        .unwrap();
    within(Duration::from_secs(1), "second endpoint", || {
        lab::who_answers(pod_client, &addr, 20).len() == 2
    });
    assert!(lab::tcp_get(&lab.outside, &format!("{}:30080", lab::NODE_IP)).is_ok());

    // The first endpoint turns not ready: it leaves the rotation.
    let patch = json!({"endpoints": [{"addresses": [ip0], "nodeName": lab::NODE, "conditions": {"ready": false, "serving": false, "terminating": true}}]});
    runtime
        .block_on(slices.patch("web-abc", &PatchParams::default(), &Patch::Merge(&patch)))
        .unwrap();
    within(Duration::from_secs(1), "endpoint removal", || {
        lab::who_answers(pod_client, &addr, 10).keys().collect::<Vec<_>>() == ["pod1"]
    });

    assert!(!proxy_task.is_finished(), "proxy::run keeps running");
    proxy_task.abort();
    drop(server);
}
