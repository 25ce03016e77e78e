//! What the kube-rs test files share: an API server on a free loopback port with SQLite in a
//! temporary directory, and a kube-rs client from the admin kubeconfig it writes.
#![allow(dead_code)] // each test file uses part of it

use std::sync::Arc;

use kube::Client;

/// A client for `server`, as its admin kubeconfig describes.
pub async fn client_of(server: &apiserver::Running) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A server with `Config::loopback` on a fresh SQLite store; the directory holds both.
pub async fn start() -> (Client, apiserver::Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store_sqlite::SqliteStore::open(dir.path().join("state.db")).unwrap();
    let config = apiserver::Config::loopback(dir.path().join("data"));
    let server = apiserver::start(config, Arc::new(store)).await.unwrap();
    (client_of(&server).await, server, dir)
}
