//! A `clientConfig.service` reference resolved to an address: a ready endpoint of the Service
//! (from its EndpointSlices; pods are reachable by IP from the API server's host), else its
//! ClusterIP. TLS still names the service (`<name>.<namespace>.svc`), as upstream dials it.

use apimachinery::resources;
use store::{KeyRange, RangeRequest, Store};

use crate::objects::from_store;

/// `(address, port)` to dial for the Service's `port`.
pub async fn resolve(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    port: i64,
) -> Result<(String, u16), String> {
    let services = resources::find("", "v1", "services").expect("built in");
    let not_found = || format!("service \"{name}\" not found");
    let kv = store
        .get(&services.key(Some(namespace), name))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(not_found)?;
    let service = from_store(&kv.value, kv.mod_revision).map_err(|e| e.message)?;
    let ports = service["spec"]["ports"].as_array().cloned().unwrap_or_default();
    let service_port = ports
        .iter()
        .find(|p| p["port"].as_i64() == Some(port))
        .ok_or_else(|| format!("no service port {port} found for service \"{name}\""))?;
    let port_name = service_port["name"].as_str().unwrap_or_default();

    let slices = resources::find("discovery.k8s.io", "v1", "endpointslices").expect("built in");
    let resp = store
        .range(RangeRequest::new(KeyRange::prefix(
            &slices.key_prefix(Some(namespace)),
        )))
        .await
        .map_err(|e| e.to_string())?;
    for kv in resp.kvs {
        let Ok(slice) = from_store(&kv.value, kv.mod_revision) else {
            continue;
        };
        if slice["metadata"]["labels"]["kubernetes.io/service-name"] != name {
            continue;
        }
        let target = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64());
        let Some(target) = target.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"] != false)
            .find_map(|e| e["addresses"][0].as_str());
        if let Some(address) = ready {
            return Ok((address.to_owned(), target));
        }
    }
    match service["spec"]["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() && ip != "None" => Ok((ip.to_owned(), u16::try_from(port).unwrap_or(443))),
        _ => Err(format!("service \"{name}\" has no ready endpoints")),
    }
}
