//! A `kube::Client` from a kubeconfig file, as `--kubeconfig` means for upstream's components.

use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue, USER_AGENT};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Connects with the current context of the kubeconfig at `path`.
pub async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    from_kubeconfig_as(path, "rkube").await
}

/// Connects as [`from_kubeconfig`], introducing itself as `component` (`kube-scheduler`,
/// `kube-controller-manager`): the API server records that name as the field manager of the
/// component's writes, as upstream's components' user agents make it.
pub async fn from_kubeconfig_as(path: &Path, component: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("cannot use the kubeconfig {}", path.display()))?;
    config.headers.push(user_agent(component)?);
    kube::Client::try_from(config).context("cannot build an API client")
}

/// `component/v<version> (linux/<arch>) rkube`, shaped like upstream's
/// `kube-scheduler/v1.33.0 (linux/amd64) kubernetes/<commit>`; the server keeps what is
/// before the first `/`.
fn user_agent(component: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let value = format!("{component}/v{} (linux/{arch}) rkube", env!("CARGO_PKG_VERSION"));
    Ok((
        USER_AGENT,
        HeaderValue::from_str(&value).context("a user agent is plain text")?,
    ))
}

/// Connects to `url` as the holder of a client certificate, trusting only `ca_pem` (all PEM):
/// how node agents talk to the API server once they joined (as `kubelet`, the field manager
/// of their writes).
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
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("cannot use the credentials for {url}"))?;
    config.headers.push(user_agent("kubelet")?);
    kube::Client::try_from(config).context("cannot build an API client")
}
