//! What `rkube server` deploys into its cluster at start, as k3s deploys its packaged
//! manifests: the `kube-dns` Service in kube-system at the cluster DNS address. Its endpoints
//! are not pods: every node agent serves DNS itself and publishes its own EndpointSlice, and
//! the Service's `internalTrafficPolicy: Local` keeps each pod's queries on its own node.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

pub const KUBE_DNS: &str = "kube-dns";

/// Creates the kube-dns Service unless it exists (a user's edits are kept).
pub async fn ensure_kube_dns(client: kube::Client, address: IpAddr) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client, "kube-system");
    if services.get_opt(KUBE_DNS).await?.is_some() {
        return Ok(());
    }
    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBE_DNS,
            "namespace": "kube-system",
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": address.to_string(),
            "clusterIPs": [address.to_string()],
            "ipFamilies": [family],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Local",
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
        },
    }))?;
    match services.create(&PostParams::default(), &service).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot create the {KUBE_DNS} Service at {address}: {e}"
        )),
    }
}
