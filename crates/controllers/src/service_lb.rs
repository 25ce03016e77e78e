//! The built-in service load balancer (k3s's servicelb role, controller `service-lb`):
//! Services of type LoadBalancer without `spec.loadBalancerClass` get the IPs of the cluster's
//! Ready nodes as `status.loadBalancer.ingress` — ExternalIPs if any node has one, else
//! InternalIPs; of the service's IP families, sorted (the API server defaults `ipMode: VIP`);
//! k3s's `svccontroller.k3s.cattle.io/enablelb` and `lbpool` labels narrow the nodes.
//! The node agents' proxy opens the ports on those IPs. The status follows nodes coming,
//! going and changing readiness, and is cleared when the type changes away.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use crate::Context;
use crate::endpointslice::{AbortOnDrop, object_key};
use crate::informer::{self, Cache, Change};
use crate::workqueue::{self, WorkQueue};

const WORKERS: usize = 2;
/// The events' source, as k3s's.
const COMPONENT: &str = "service-lb-controller";
/// k3s's node labels choosing the nodes that serve load balancers.
const ENABLE_LB_LABEL: &str = "svccontroller.k3s.cattle.io/enablelb";
const LB_POOL_LABEL: &str = "svccontroller.k3s.cattle.io/lbpool";

pub fn start(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let services_slot: Arc<std::sync::OnceLock<Cache<Service>>> = Arc::default();
    let (services, _services_subscription) = {
        let q = queue.clone();
        ctx.services.subscribe(move |(old, new): Change<Service>| {
            if let Some(svc) = new.or(old) {
                q.add(object_key(&svc.metadata));
            }
        })
    };
    let (nodes, nodes_feed) = {
        let q = queue.clone();
        let services = services_slot.clone();
        informer::informer(
            Api::<Node>::all(ctx.client.clone()),
            move |(old, new): Change<Node>| {
                let addresses = |n: &Option<Arc<Node>>| {
                    n.as_deref()
                        .map(|n| (is_ready(n), node_ips(n), n.metadata.labels.clone()))
                };
                if addresses(&old) == addresses(&new) {
                    return;
                }
                for svc in services.get().map(Cache::all).unwrap_or_default() {
                    if wants_load_balancer(&svc) {
                        q.add(object_key(&svc.metadata));
                    }
                }
            },
        )
    };
    let _ = services_slot.set(services.clone());
    let feeds = AbortOnDrop(vec![tokio::spawn(nodes_feed)]);
    services.wait_synced().await;
    nodes.wait_synced().await;
    for svc in services.all() {
        queue.add(object_key(&svc.metadata));
    }
    let client = ctx.client.clone();
    let recorder = clientkit::Recorder::new(ctx.client.clone(), COMPONENT);
    workqueue::run_workers(queue, WORKERS, "service-lb", move |key| {
        let (client, services, nodes, recorder) =
            (client.clone(), services.clone(), nodes.clone(), recorder.clone());
        async move { sync(&client, &recorder, &services, &nodes, &key).await }
    })
    .await;
    drop(feeds);
    Ok(())
}

/// A LoadBalancer service this controller serves (another class belongs to another one).
fn wants_load_balancer(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && spec.and_then(|s| s.load_balancer_class.as_ref()).is_none()
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// (ExternalIPs, InternalIPs) of a node.
fn node_ips(node: &Node) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut external = BTreeSet::new();
    let mut internal = BTreeSet::new();
    for a in node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
    {
        match a.type_.as_str() {
            "ExternalIP" => external.insert(a.address.clone()),
            "InternalIP" => internal.insert(a.address.clone()),
            _ => false,
        };
    }
    (external, internal)
}

/// The ingress IPs for `svc` given the nodes: k3s's choice of external over internal
/// addresses, filtered by the service's families in their order, each family sorted.
pub fn ingress_ips<'a>(svc: &Service, nodes: impl IntoIterator<Item = &'a Node> + Clone) -> Vec<String> {
    let label = |n: &Node, key: &str| n.metadata.labels.as_ref().and_then(|l| l.get(key)).cloned();
    // k3s: once any node carries the enablelb label, only nodes with `true` serve, and a
    // service's lbpool label picks the nodes of that pool.
    let selective = nodes
        .clone()
        .into_iter()
        .any(|n| label(n, ENABLE_LB_LABEL).is_some());
    let pool = svc
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LB_POOL_LABEL))
        .cloned();
    let serves = |n: &Node| {
        !selective
            || (label(n, ENABLE_LB_LABEL).as_deref() == Some("true")
                && pool
                    .as_ref()
                    .is_none_or(|p| label(n, LB_POOL_LABEL).as_ref() == Some(p)))
    };
    let (mut external, mut internal) = (BTreeSet::new(), BTreeSet::new());
    for node in nodes.into_iter().filter(|n| is_ready(n) && serves(n)) {
        let (e, i) = node_ips(node);
        external.extend(e);
        internal.extend(i);
    }
    let ips = if external.is_empty() { internal } else { external };
    let parsed: Vec<std::net::IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
    let families = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_else(|| vec!["IPv4".to_owned()]);
    let mut out = Vec::new();
    for family in families {
        let mut of_family: Vec<String> = parsed
            .iter()
            .filter(|ip| ip.is_ipv6() == (family == "IPv6"))
            .map(|ip| ip.to_string())
            .collect();
        of_family.sort();
        out.extend(of_family);
    }
    out
}

async fn sync(
    client: &kube::Client,
    recorder: &clientkit::Recorder,
    services: &Cache<Service>,
    nodes: &Cache<Node>,
    key: &str,
) -> anyhow::Result<()> {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let Some(svc) = services.get(namespace, name) else {
        return Ok(());
    };
    let current: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .map(|i| i.ip.clone().unwrap_or_default())
        .collect();
    let wanted = if wants_load_balancer(&svc) {
        let all = nodes.all();
        ingress_ips(&svc, all.iter().map(|n| &**n))
    } else if svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_ref())
        .is_none()
    {
        // No longer a LoadBalancer: what we published goes.
        Vec::new()
    } else {
        return Ok(());
    };
    if current == wanted {
        return Ok(());
    }
    // A merge patch replaces the whole list; `null` removes it (leaving `loadBalancer: {}`).
    let ingress: Vec<_> = wanted.iter().map(|ip| json!({"ip": ip})).collect();
    let ingress = if ingress.is_empty() {
        serde_json::Value::Null
    } else {
        ingress.into()
    };
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    Api::<Service>::namespaced(client.clone(), namespace)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    if wants_load_balancer(&svc) {
        // k3s's events, with Go's `%v` of the IP lists.
        let object = clientkit::events::reference(&*svc);
        if wanted.is_empty() {
            let message = "There are no available nodes for LoadBalancer";
            recorder
                .record(
                    &object,
                    clientkit::EventType::Warning,
                    "UnAvailableLoadBalancer",
                    message,
                )
                .await;
        } else {
            let message = format!(
                "Updated LoadBalancer with new IPs: [{}] -> [{}]",
                current.join(" "),
                wanted.join(" ")
            );
            recorder
                .record(
                    &object,
                    clientkit::EventType::Normal,
                    "UpdatedLoadBalancer",
                    &message,
                )
                .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: bool, addresses: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "addresses": addresses}}))
        .unwrap()
    }

    #[test]
    fn ingress_is_ready_nodes_external_over_internal_by_family() {
        let svc: Service =
            serde_json::from_value(json!({"spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"]}}))
                .unwrap();
        let nodes = [
            node(
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.3"}, {"type": "Hostname", "address": "a"}]),
            ),
            node(
                true,
                json!([{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "InternalIP", "address": "fd00::2"}]),
            ),
            node(false, json!([{"type": "InternalIP", "address": "10.0.0.1"}])),
        ];
        assert_eq!(ingress_ips(&svc, &nodes), ["10.0.0.2", "10.0.0.3"]);
        let dual: Service =
            serde_json::from_value(json!({"spec": {"ipFamilies": ["IPv6", "IPv4"]}})).unwrap();
        assert_eq!(ingress_ips(&dual, &nodes), ["fd00::2", "10.0.0.2", "10.0.0.3"]);
        let with_external = [
            node(true, json!([{"type": "InternalIP", "address": "10.0.0.3"}])),
            node(true, json!([{"type": "ExternalIP", "address": "192.0.2.7"}])),
        ];
        assert_eq!(ingress_ips(&svc, &with_external), ["192.0.2.7"]);
    }

    #[test]
    fn k3s_node_labels_choose_the_serving_nodes() {
        let labelled = |ip: &str, labels: serde_json::Value| {
            let mut n = node(true, json!([{"type": "InternalIP", "address": ip}]));
            n.metadata.labels = serde_json::from_value(labels).unwrap();
            n
        };
        let nodes = [
            labelled("10.0.0.1", json!({ENABLE_LB_LABEL: "true", LB_POOL_LABEL: "a"})),
            labelled("10.0.0.2", json!({ENABLE_LB_LABEL: "true", LB_POOL_LABEL: "b"})),
            labelled("10.0.0.3", json!({ENABLE_LB_LABEL: "false"})),
            labelled("10.0.0.4", json!({})),
        ];
        let svc: Service = serde_json::from_value(json!({"spec": {"ipFamilies": ["IPv4"]}})).unwrap();
        assert_eq!(ingress_ips(&svc, &nodes), ["10.0.0.1", "10.0.0.2"]);
        let pooled: Service = serde_json::from_value(
            json!({"metadata": {"labels": {LB_POOL_LABEL: "b"}}, "spec": {"ipFamilies": ["IPv4"]}}),
        )
        .unwrap();
        assert_eq!(ingress_ips(&pooled, &nodes), ["10.0.0.2"]);
        assert_eq!(ingress_ips(&svc, &nodes[3..]), ["10.0.0.4"]);
    }
}
