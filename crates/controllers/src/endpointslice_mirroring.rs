//! The EndpointSlice mirroring controller (upstream's `endpointslice-mirroring-controller`):
//! Endpoints that users write for Services without a selector are mirrored into EndpointSlices
//! (managed by `endpointslicemirroring-controller.k8s.io`, owned by the Endpoints), one slice
//! per subset's ports and address type, at most 1000 addresses per subset. Endpoints labelled
//! `endpointslice.kubernetes.io/skip-mirror: "true"`, leader-election records, and Endpoints
//! without a selectorless Service are not mirrored (their mirrored slices go).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};

use crate::Context;
use crate::endpointslice::reconciler::{
    EndpointKey, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, endpoint_key, equal_beyond_key, port_map_key,
    slice_prefix,
};
use crate::endpointslice::{AbortOnDrop, Written, object_key};
use crate::informer::{self, Cache, Change};
use crate::pod_endpoints::{self as util, LAST_CHANGE_TRIGGER_TIME};
use crate::workqueue::{self, WorkQueue};

/// This controller's `managed-by` value.
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
/// Label that keeps Endpoints from being mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";
/// Addresses mirrored per subset (`--mirroring-max-endpoints-per-subset`, 1000).
const MAX_ENDPOINTS_PER_SUBSET: usize = 1000;
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const WORKERS: usize = 5;

pub fn start(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

struct Controller {
    client: kube::Client,
    services: Cache<Service>,
    endpoints: Cache<Endpoints>,
    slices: Cache<EndpointSlice>,
    written: Written,
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let (services, _services_subscription) = {
        let q = queue.clone();
        ctx.services.subscribe(move |(old, new): Change<Service>| {
            let selectorless = |s: &Option<Arc<Service>>| s.as_deref().map(|s| util::selector(s).is_none());
            if selectorless(&old) != selectorless(&new)
                && let Some(svc) = new.or(old)
            {
                q.add(object_key(&svc.metadata));
            }
        })
    };
    let (endpoints, endpoints_feed) = {
        let q = queue.clone();
        informer::informer(
            Api::<Endpoints>::all(ctx.client.clone()),
            move |(old, new): Change<Endpoints>| {
                let mirrored = |e: &Option<Arc<Endpoints>>| e.as_deref().is_some_and(should_mirror);
                if (mirrored(&old) || mirrored(&new))
                    && let Some(ep) = new.or(old)
                {
                    q.add(object_key(&ep.metadata));
                }
            },
        )
    };
    let (slices, slices_feed) = {
        let q = queue.clone();
        informer::informer(
            Api::<EndpointSlice>::all(ctx.client.clone()),
            move |(old, new): Change<EndpointSlice>| {
                for slice in [old, new].into_iter().flatten() {
                    let labels = slice.metadata.labels.as_ref();
                    let ours = labels.and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str)
                        == Some(CONTROLLER_NAME);
                    if let (true, Some(name)) = (ours, labels.and_then(|l| l.get(SERVICE_NAME_LABEL))) {
                        q.add(util::key(slice.metadata.namespace.as_deref().unwrap_or(""), name));
                    }
                }
            },
        )
    };
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        services,
        endpoints,
        slices,
        written: Written::default(),
    });
    let feeds = AbortOnDrop(vec![tokio::spawn(endpoints_feed), tokio::spawn(slices_feed)]);
    controller.services.wait_synced().await;
    controller.endpoints.wait_synced().await;
    controller.slices.wait_synced().await;
    for ep in controller.endpoints.all() {
        queue.add(object_key(&ep.metadata));
    }
    let c = controller.clone();
    workqueue::run_workers(queue, WORKERS, "endpointslice-mirroring-controller", move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
    .await;
    drop(feeds);
    Ok(())
}

fn should_mirror(ep: &Endpoints) -> bool {
    let skip = ep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SKIP_MIRROR_LABEL))
        .is_some_and(|v| v == "true");
    let leader = ep
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    !skip && !leader
}

impl Controller {
    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let existing: Vec<Arc<EndpointSlice>> = self
            .slices
            .list(namespace)
            .into_iter()
            .filter(|s| {
                let labels = s.metadata.labels.as_ref();
                labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).map(String::as_str) == Some(name)
                    && labels.and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str)
                        == Some(CONTROLLER_NAME)
                    && s.metadata.deletion_timestamp.is_none()
            })
            .collect();
        let endpoints = self.endpoints.get(namespace, name);
        let service = self.services.get(namespace, name);
        let mirrored = endpoints.as_deref().filter(|e| should_mirror(e)).filter(|_| {
            // Only for a Service without a selector (the EndpointSlice controller has the rest).
            service.as_deref().is_some_and(|s| util::selector(s).is_none())
        });
        let Some(endpoints) = mirrored else {
            self.written.forget(key);
            let plan = Plan {
                delete: existing.iter().map(|s| (**s).clone()).collect(),
                ..Plan::default()
            };
            return self.write(key, namespace, plan).await;
        };
        if let Some(stale) = self.written.stale(key, &existing) {
            anyhow::bail!("EndpointSlice informer cache is out of date: {stale} not seen yet");
        }
        let mut plan = reconcile(endpoints, &existing);
        recycle(&mut plan);
        if endpoints.metadata.deletion_timestamp.is_some() {
            plan.create.clear();
        }
        self.write(key, namespace, plan).await
    }

    async fn write(&self, key: &str, namespace: &str, plan: Plan) -> anyhow::Result<()> {
        let resource = ApiResource::erase::<EndpointSlice>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        let wire = |slice: EndpointSlice| -> anyhow::Result<DynamicObject> {
            let mut value = serde_json::to_value(&slice)?;
            value["apiVersion"] = "discovery.k8s.io/v1".into();
            value["kind"] = "EndpointSlice".into();
            Ok(serde_json::from_value(value)?)
        };
        for slice in plan.create {
            match api.create(&PostParams::default(), &wire(slice)?).await {
                Ok(created) => self.written.expect(key, &created.metadata, false),
                Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {
                    return Ok(());
                }
                Err(err) => anyhow::bail!("failed to create EndpointSlice for Endpoints {key}: {err}"),
            }
        }
        for slice in plan.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let updated = api
                .replace(&name, &PostParams::default(), &wire(slice)?)
                .await
                .map_err(|err| {
                    anyhow::anyhow!("failed to update {name} EndpointSlice for Endpoints {key}: {err}")
                })?;
            self.written.expect(key, &updated.metadata, false);
        }
        for slice in plan.delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => self.written.expect(key, &slice.metadata, true),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => anyhow::bail!("failed to delete {name} EndpointSlice for Endpoints {key}: {err}"),
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

/// The endpoint an Endpoints address becomes, and its address type; `None` for an invalid IP.
fn address_to_endpoint(address: &EndpointAddress, ready: bool) -> Option<(Endpoint, &'static str)> {
    let ip: std::net::IpAddr = address.ip.parse().ok()?;
    let endpoint = Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            ..Default::default()
        }),
        target_ref: address.target_ref.clone(),
        node_name: address.node_name.clone(),
        hostname: address.hostname.clone().filter(|h| !h.is_empty()),
        ..Default::default()
    };
    Some((endpoint, if ip.is_ipv6() { "IPv6" } else { "IPv4" }))
}

/// The labels and annotations a mirrored slice carries.
fn mirrored_meta(endpoints: &Endpoints) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = endpoints.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        SERVICE_NAME_LABEL.to_owned(),
        endpoints.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.to_owned(), CONTROLLER_NAME.to_owned());
    let mut annotations = endpoints.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_CHANGE_TRIGGER_TIME);
    annotations.remove(LAST_APPLIED);
    (labels, annotations)
}

fn new_slice(
    endpoints: &Endpoints,
    ports: &[EndpointPort],
    address_type: &str,
    name: Option<String>,
) -> EndpointSlice {
    let (labels, annotations) = mirrored_meta(endpoints);
    let ep_name = endpoints.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: name.is_none().then(|| slice_prefix(&ep_name)),
            name,
            namespace: endpoints.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_owned(),
                kind: "Endpoints".to_owned(),
                name: ep_name,
                uid: endpoints.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        address_type: address_type.to_owned(),
        endpoints: Vec::new(),
        ports: Some(ports.to_vec()),
    }
}

/// Upstream's mirroring reconciler: per (address type, ports) one slice holding the desired
/// endpoints — the first existing one rewritten when it differs, the others deleted.
pub fn reconcile(endpoints: &Endpoints, existing: &[Arc<EndpointSlice>]) -> Plan {
    type Group = (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>);
    let mut desired: BTreeMap<String, Group> = BTreeMap::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_default()),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let group_key = |address_type: &str| format!("{address_type}|{}", port_map_key(&ports));
        for address_type in ["IPv4", "IPv6"] {
            desired
                .entry(group_key(address_type))
                .or_insert_with(|| (ports.clone(), BTreeMap::new()));
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        let mut added = 0;
        for (address, is_ready) in ready.chain(not_ready) {
            if added >= MAX_ENDPOINTS_PER_SUBSET {
                break;
            }
            // Invalid IPs are skipped (upstream records an event for them).
            if let Some((endpoint, address_type)) = address_to_endpoint(address, is_ready) {
                let group = desired
                    .get_mut(&group_key(address_type))
                    .expect("group of both types");
                group.1.insert(endpoint_key(&endpoint), endpoint);
                added += 1;
            }
        }
    }

    let mut existing_by_key: BTreeMap<String, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in existing {
        let key = format!(
            "{}|{}",
            slice.address_type,
            port_map_key(slice.ports.as_deref().unwrap_or_default())
        );
        existing_by_key.entry(key).or_default().push(slice.clone());
    }
    for slices in existing_by_key.values_mut() {
        slices.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    }

    let (labels, annotations) = mirrored_meta(endpoints);
    let mut plan = Plan::default();
    for (key, slices) in &existing_by_key {
        if desired.get(key).is_none_or(|(_, eps)| eps.is_empty()) {
            plan.delete.extend(slices.iter().map(|s| (**s).clone()));
        }
    }
    for (key, (ports, wanted)) in desired {
        if wanted.is_empty() {
            continue;
        }
        let address_type = key.split('|').next().unwrap_or("IPv4");
        let slices = existing_by_key.get(&key).cloned().unwrap_or_default();
        let first = slices.first();
        plan.delete.extend(slices.iter().skip(1).map(|s| (**s).clone()));
        if let Some(first) = first {
            let same_endpoints = first.endpoints.len() == wanted.len()
                && first.endpoints.iter().all(|e| {
                    wanted
                        .get(&endpoint_key(e))
                        .is_some_and(|w| equal_beyond_key(w, e))
                });
            let same_meta = first.metadata.labels.clone().unwrap_or_default() == labels
                && first.metadata.annotations.clone().unwrap_or_default() == annotations;
            if same_endpoints && same_meta {
                continue;
            }
        }
        let mut slice = new_slice(
            endpoints,
            &ports,
            address_type,
            first.and_then(|s| s.metadata.name.clone()),
        );
        slice.metadata.resource_version = first.and_then(|s| s.metadata.resource_version.clone());
        slice.endpoints = wanted.into_values().collect();
        if slice.metadata.name.is_some() {
            plan.update.push(slice);
        } else {
            plan.create.push(slice);
        }
    }
    plan
}

/// Creates become updates of slices of the same address type that would be deleted.
fn recycle(plan: &mut Plan) {
    let mut creates = std::mem::take(&mut plan.create);
    let mut kept = Vec::new();
    for mut slice in creates.drain(..) {
        match plan
            .delete
            .iter()
            .position(|d| d.address_type == slice.address_type)
        {
            Some(i) => {
                let old = plan.delete.remove(i);
                slice.metadata.name = old.metadata.name;
                slice.metadata.generate_name = None;
                slice.metadata.resource_version = old.metadata.resource_version;
                plan.update.push(slice);
            }
            None => kept.push(slice),
        }
    }
    plan.create = kept;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoints() -> Endpoints {
        serde_json::from_value(json!({
        "metadata": {"name": "ext", "namespace": "default", "uid": "ep-uid", "labels": {"a": "b"},
                     "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "x", "keep": "me"}},
        "subsets": [
            {"addresses": [{"ip": "192.0.2.1", "hostname": "one"}, {"ip": "2001:db8::1"}],
             "notReadyAddresses": [{"ip": "192.0.2.2"}, {"ip": "not-an-ip"}],
             "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            {"addresses": [{"ip": "192.0.2.9"}], "ports": [{"port": 53, "protocol": "UDP"}]}
        ]}))
        .unwrap()
    }

    #[test]
    fn subsets_mirror_per_ports_and_address_type() {
        let plan = reconcile(&endpoints(), &[]);
        assert!(plan.update.is_empty() && plan.delete.is_empty());
        let mut slices: Vec<serde_json::Value> = plan
            .create
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        slices.sort_by_key(|s| {
            (
                s["addressType"].as_str().unwrap().to_owned(),
                s["ports"][0]["port"].as_i64(),
            )
        });
        assert_eq!(slices.len(), 3);
        let v4_http = &slices[1];
        assert_eq!(v4_http["metadata"]["generateName"], "ext-");
        assert_eq!(
            v4_http["metadata"]["labels"],
            json!({"a": "b", "kubernetes.io/service-name": "ext",
                   "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"})
        );
        assert_eq!(v4_http["metadata"]["annotations"], json!({"keep": "me"}));
        assert_eq!(v4_http["metadata"]["ownerReferences"][0]["kind"], "Endpoints");
        assert_eq!(
            v4_http["ports"],
            json!([{"name": "http", "port": 80, "protocol": "TCP"}])
        );
        assert_eq!(
            v4_http["endpoints"],
            json!([{"addresses": ["192.0.2.1"], "conditions": {"ready": true}, "hostname": "one"},
                   {"addresses": ["192.0.2.2"], "conditions": {"ready": false}}])
        );
        assert_eq!(slices[0]["ports"][0]["port"], 53);
        assert_eq!(slices[2]["addressType"], "IPv6");
    }

    #[test]
    fn unchanged_mirrors_are_left_alone_and_extra_slices_go() {
        let ep = endpoints();
        let mut existing: Vec<Arc<EndpointSlice>> = reconcile(&ep, &[])
            .create
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                s.metadata.name = Some(format!("ext-{i}"));
                Arc::new(s)
            })
            .collect();
        let plan = reconcile(&ep, &existing);
        assert!(plan.create.is_empty() && plan.update.is_empty() && plan.delete.is_empty());
        let mut dup = (*existing[0]).clone();
        dup.metadata.name = Some("ext-dup".to_owned());
        existing.push(Arc::new(dup));
        let plan = reconcile(&ep, &existing);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].metadata.name.as_deref(), Some("ext-dup"));
    }
}
