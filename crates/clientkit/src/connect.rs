//! A `kube::Client` from a kubeconfig file, as `--kubeconfig` means for upstream's components.

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Connects with the current context of the kubeconfig at `path`.
pub async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("cannot build an API client")
}

/// Connects to `url` as the holder of a client certificate, trusting only `ca_pem` (all PEM):
/// how node agents talk to the API server once they joined.
pub async fn from_pem(
    url: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<kube::Client> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "rkube", "cluster": {"server": url, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "node", "user": {
            "client-certificate-data": b64(cert_pem),
            "client-key-data": b64(key_pem),
        }}],
        "contexts": [{"name": "rkube", "context": {"cluster": "rkube", "user": "node"}}],
        "current-context": "rkube",
    });
    let kubeconfig = Kubeconfig::from_yaml(&kubeconfig.to_string()).context("building a kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("cannot use the credentials for {url}"))?;
    kube::Client::try_from(config).context("cannot build an API client")
}
