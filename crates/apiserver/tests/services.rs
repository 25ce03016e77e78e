//! Service address and port allocation driven by kube-rs: concurrent creates never share an
//! address or port, and a second server over the same store (as after a restart) sees every
//! allocation; typed clients read the defaulted workloads they create.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Error};

async fn start(store: Arc<dyn store::Store>, dir: &std::path::Path) -> (apiserver::Running, Client) {
    let config = apiserver::Config {
        service_cidr: "10.96.0.0/26".into(),
        node_port_range: (30000, 30063),
        ..apiserver::Config::loopback(dir.join("data"))
    };
    let server = apiserver::start(config, store).await.unwrap();
    let client = common::client_of(&server).await;
    (server, client)
}

fn service(name: &str, node_port: bool, cluster_ip: Option<&str>) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"type": if node_port { "NodePort" } else { "ClusterIP" }, "clusterIP": cluster_ip,
                 "ports": [{"port": 80}]},
    }))
    .unwrap()
}

fn invalid_message(err: Error) -> String {
    match err {
        Error::Api(status) if status.code == 422 => status.message,
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_addresses_that_outlive_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::Store> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap());
    let (server, client) = start(store.clone(), dir.path()).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");

    let creates = (0..40).map(|i| {
        let services = services.clone();
        async move {
            services
                .create(&PostParams::default(), &service(&format!("s{i}"), true, None))
                .await
                .unwrap()
        }
    });
    let created = futures::future::join_all(creates).await;
    let ips: BTreeSet<String> = created
        .iter()
        .map(|s| s.spec.as_ref().unwrap().cluster_ip.clone().unwrap())
        .collect();
    let ports: BTreeSet<i32> = created
        .iter()
        .map(|s| {
            s.spec.as_ref().unwrap().ports.as_ref().unwrap()[0]
                .node_port
                .unwrap()
        })
        .collect();
    assert_eq!((ips.len(), ports.len()), (40, 40), "{ips:?} {ports:?}");
    assert!(!ips.contains("10.96.0.1"), "the kubernetes Service's address");
    assert!(ports.iter().all(|p| (30000..=30063).contains(p)));
    drop(server);

    // A new server over the same store knows what is taken.
    let (_server, client) = start(store, dir.path()).await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let kubernetes = services.get("kubernetes").await.unwrap();
    assert_eq!(kubernetes.spec.unwrap().cluster_ip.as_deref(), Some("10.96.0.1"));
    let taken = created[0].spec.as_ref().unwrap().cluster_ip.clone().unwrap();
    let err = services
        .create(&PostParams::default(), &service("again", false, Some(&taken)))
        .await
        .unwrap_err();
    assert_eq!(
        invalid_message(err),
        format!(
            "Service \"again\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{taken}\"}}: failed to allocate IP {taken}: provided IP is already allocated"
        )
    );
    services.delete("s0", &DeleteParams::default()).await.unwrap();
    let again = services
        .create(&PostParams::default(), &service("again", false, Some(&taken)))
        .await
        .unwrap();
    assert_eq!(again.spec.unwrap().cluster_ip, Some(taken));
}

#[tokio::test]
async fn typed_clients_read_defaulted_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::Store> =
        Arc::new(store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap());
    let (_server, client) = start(store, dir.path()).await;
    let template = serde_json::json!({"metadata": {"labels": {"app": "a"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let spec = serde_json::json!({"selector": {"matchLabels": {"app": "a"}}, "template": template});
    let body = |name: &str| serde_json::json!({"metadata": {"name": name}, "spec": spec});
    // Required status fields (replicas, …) must be there for typed clients to decode.
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let created = rs
        .create(
            &PostParams::default(),
            &serde_json::from_value(body("rs")).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().replicas, 0);
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let created = sts
        .create(
            &PostParams::default(),
            &serde_json::from_value(body("sts")).unwrap(),
        )
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    assert_eq!(spec.replicas, Some(1));
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    let created = deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(body("d")).unwrap(),
        )
        .await
        .unwrap();
    let strategy = created.spec.unwrap().strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(created.metadata.generation, Some(1));
}
