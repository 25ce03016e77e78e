//! What every cluster has from the start, as kube-apiserver's post-start hooks create it: the
//! system namespaces, the system PriorityClasses, the `cluster-admin` ClusterRole bound to
//! `system:masters`, and the `kubernetes` Service in `default`
//! (first address of the service range, port 443) with its Endpoints and EndpointSlice pointing
//! at this server (rewritten at each start, so a new address or port is picked up).

use std::net::IpAddr;

use apimachinery::resources;
use serde_json::{Value, json};

use crate::admission::SYSTEM_PRIORITY_CLASSES;
use crate::query::Query;
use crate::request::{ResourceRequest, Verb};
use crate::rest::Rest;

/// The namespaces every cluster has from the start (as kube-apiserver's system namespaces
/// controller creates them).
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

pub async fn run(rest: &Rest, address: IpAddr, port: u16) -> anyhow::Result<()> {
    for name in SYSTEM_NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        ensure(rest, "", "namespaces", ns, false).await?;
    }
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        let class = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "description": description});
        ensure(rest, "scheduling.k8s.io", "priorityclasses", class, false).await?;
    }
    // RBAC's bootstrap policy as upstream's: clients and charts bind to `cluster-admin`.
    let defaults = json!({"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}});
    let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": defaults, "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]}]});
    role["metadata"]["name"] = "cluster-admin".into();
    ensure(rest, "rbac.authorization.k8s.io", "clusterroles", role, false).await?;
    let mut binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": defaults,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]});
    binding["metadata"]["name"] = "cluster-admin".into();
    ensure(
        rest,
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        binding,
        false,
    )
    .await?;
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": rest.services.first_ip().to_string(), "type": "ClusterIP",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    ensure(rest, "", "services", service, true).await?;
    let endpoint_port = json!({"name": "https", "port": port, "protocol": "TCP"});
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address.to_string()}], "ports": [endpoint_port]}],
    });
    ensure(rest, "", "endpoints", endpoints, true).await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.to_string()], "conditions": {"ready": true}}],
        "ports": [endpoint_port],
    });
    ensure(rest, "discovery.k8s.io", "endpointslices", slice, true).await?;
    Ok(())
}

/// Creates `obj` unless it exists; with `replace`, an existing one is overwritten.
async fn ensure(rest: &Rest, group: &str, resource: &str, obj: Value, replace: bool) -> anyhow::Result<()> {
    // Every object created here is of a v1 resource.
    let version = "v1";
    let def = resources::find(group, version, resource).expect("built-in resource");
    // Written as kube-apiserver itself writes them (their managedFields name it).
    let query = Query::parse(Some("fieldManager=kube-apiserver"));
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let namespace = obj["metadata"]["namespace"].as_str().map(str::to_owned);
    let mut req = ResourceRequest {
        group: group.into(),
        version: version.into(),
        resource: resource.into(),
        namespace,
        name: None,
        subresource: None,
        verb: Verb::Create,
    };
    let mut get = req.clone();
    get.name = Some(name.clone());
    get.verb = Verb::Get;
    // Look first: a create of an existing Service would fail on its taken address.
    match rest.get(def, &get).await {
        Ok(_) if replace => {
            req.name = Some(name.clone());
            req.verb = Verb::Update;
            rest.update(def, &req, &query, obj)
                .await
                .map_err(|e| anyhow::anyhow!("cannot update {resource} {name}: {}", e.message))?;
        }
        Ok(_) => {}
        Err(e) if e.code == 404 => match rest.create(def, &req, &query, obj).await {
            Ok(_) => tracing::info!(resource, name, "created"),
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => anyhow::bail!("cannot create {resource} {name}: {}", e.message),
        },
        Err(e) => anyhow::bail!("cannot read {resource} {name}: {}", e.message),
    }
    Ok(())
}
