//! The EndpointSlice controller (upstream's `endpointslice-controller`): every Service with a
//! selector gets EndpointSlices listing the addresses of the pods it selects, with their
//! conditions (ready, serving, terminating), node, zone and resolved ports. Pods come from the
//! shared pod watch and a pod change reaches the slices at once (upstream's
//! `--endpoint-updates-batch-period` is 0 by default). Slices of a deleted service go with it
//! through their owner reference (garbage collector). The packing itself is [`reconciler`].

pub mod reconciler;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::Value;

use crate::Context;
use crate::informer::{self, Cache, Change};
use crate::pod_endpoints::{self as util, LAST_CHANGE_TRIGGER_TIME, TriggerTimes};
use crate::workqueue::{self, WorkQueue};
use reconciler::{CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, ZONE_LABEL};

/// Workers (`--concurrent-service-endpoint-syncs`, 5).
const WORKERS: usize = 5;
/// How long a write we made may take to show in our watch before we stop waiting for it.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(10);

pub fn start(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

struct Controller {
    client: kube::Client,
    recorder: clientkit::Recorder,
    max_endpoints: usize,
    services: Cache<Service>,
    slices: Cache<EndpointSlice>,
    nodes: Cache<Node>,
    pods: Cache<Pod>,
    trigger_times: TriggerTimes,
    written: Written,
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let shared: Arc<std::sync::OnceLock<Arc<Controller>>> = Arc::default();

    let (services, _services_subscription) = {
        let q = queue.clone();
        let shared = shared.clone();
        ctx.services.subscribe(move |(old, new): Change<Service>| {
            let svc = new.as_ref().or(old.as_ref()).expect("a change has an object");
            let key = object_key(&svc.metadata);
            if new.is_none()
                && let Some(c) = shared.get()
            {
                c.trigger_times.forget(&key);
                c.written.forget(&key);
            }
            q.add(key);
        })
    };
    let (slices, slices_feed) = {
        let q = queue.clone();
        informer::informer(
            Api::<EndpointSlice>::all(ctx.client.clone()),
            move |(old, new): Change<EndpointSlice>| {
                // Our slices changing (or someone else taking one over) means a look at the service.
                for slice in [old, new].into_iter().flatten() {
                    let labels = slice.metadata.labels.as_ref();
                    let service = labels.and_then(|l| l.get(SERVICE_NAME_LABEL));
                    let ours = labels.and_then(|l| l.get(MANAGED_BY_LABEL)).map(String::as_str)
                        == Some(CONTROLLER_NAME);
                    if let (Some(service), true) = (service, ours) {
                        q.add(util::key(
                            slice.metadata.namespace.as_deref().unwrap_or(""),
                            service,
                        ));
                    }
                }
            },
        )
    };
    let (nodes, nodes_feed) = {
        let q = queue.clone();
        let shared = shared.clone();
        informer::informer(
            Api::<Node>::all(ctx.client.clone()),
            move |(old, new): Change<Node>| {
                // A node appearing or going, or changing zone, changes its pods' endpoints.
                let zone = |n: &Option<Arc<Node>>| {
                    n.as_ref().map(|n| {
                        n.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(ZONE_LABEL))
                            .cloned()
                    })
                };
                if zone(&old) != zone(&new)
                    && let Some(c) = shared.get()
                {
                    for svc in c.services.all() {
                        if util::selector(&svc).is_some() {
                            q.add(object_key(&svc.metadata));
                        }
                    }
                }
            },
        )
    };
    let on_pod = {
        let q = queue.clone();
        let shared = shared.clone();
        move |(old, new): Change<Pod>| {
            if let Some(c) = shared.get() {
                for key in util::services_for_pod_change(old.as_deref(), new.as_deref(), &c.services) {
                    q.add(key);
                }
            }
        }
    };
    let (pods, _pods_subscription) = ctx.pods.subscribe(on_pod);
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        recorder: clientkit::Recorder::new(ctx.client.clone(), "endpoint-slice-controller"),
        max_endpoints: ctx.config.max_endpoints_per_slice,
        services,
        slices,
        nodes,
        pods,
        trigger_times: TriggerTimes::default(),
        written: Written::default(),
    });
    let _ = shared.set(controller.clone());
    let feeds = AbortOnDrop(vec![tokio::spawn(slices_feed), tokio::spawn(nodes_feed)]);
    controller.services.wait_synced().await;
    controller.slices.wait_synced().await;
    controller.nodes.wait_synced().await;
    controller.pods.wait_synced().await;
    // Services seen before the pod cache synced were queued too early to matter; look again.
    for svc in controller.services.all() {
        queue.add(object_key(&svc.metadata));
    }
    let c = controller.clone();
    workqueue::run_workers(queue, WORKERS, "endpointslice-controller", move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
    .await;
    drop(feeds);
    Ok(())
}

/// Stops the watch feeds with the controller.
pub(crate) struct AbortOnDrop(pub Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

pub(crate) fn object_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    util::key(
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or(""),
    )
}

impl Controller {
    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let Some(svc) = self.services.get(namespace, name) else {
            self.trigger_times.forget(key);
            self.written.forget(key);
            return Ok(());
        };
        // ExternalName services get no endpoints; selectorless ones get theirs from elsewhere
        // (the mirroring controller, the API server, agents).
        if util::is_external_name(&svc) {
            return Ok(());
        }
        let Some(selector) = util::selector(&svc) else {
            return Ok(());
        };
        let pods = util::selected_pods(&svc, selector, &self.pods);
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
        if let Some(stale) = self.written.stale(key, &existing) {
            anyhow::bail!("EndpointSlice informer cache is out of date: {stale} not seen yet");
        }
        let trigger_time = self.trigger_times.compute(&svc, &pods);
        let node_zone = |node: &str| -> Option<Option<String>> {
            let node = self.nodes.get("", node)?;
            Some(
                node.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(ZONE_LABEL))
                    .cloned(),
            )
        };
        let mut plan = reconciler::reconcile(&svc, &pods, &existing, &node_zone, self.max_endpoints);
        reconciler::recycle_deletions(&svc, &mut plan);
        let mut errors = plan.pods_without_node;
        let written = self
            .write(
                key,
                namespace,
                plan.create,
                plan.update,
                plan.delete,
                trigger_time,
            )
            .await;
        if let Err(err) = written {
            errors.push(format!("{err:#}"));
        }
        if errors.is_empty() {
            return Ok(());
        }
        // Upstream's event, with its aggregate error's wording.
        errors.dedup();
        let error = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let message = format!("Error updating Endpoint Slices for Service {key}: {error}");
        self.recorder
            .record(
                &clientkit::events::reference(&*svc),
                clientkit::EventType::Warning,
                "FailedToUpdateEndpointSlices",
                &message,
            )
            .await;
        Err(anyhow::anyhow!(error))
    }

    async fn write(
        &self,
        key: &str,
        namespace: &str,
        create: Vec<EndpointSlice>,
        update: Vec<EndpointSlice>,
        delete: Vec<EndpointSlice>,
        trigger_time: Option<jiff::Timestamp>,
    ) -> anyhow::Result<()> {
        let resource = ApiResource::erase::<EndpointSlice>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &resource);
        for slice in create {
            let body = wire_form(slice, trigger_time)?;
            match api.create(&PostParams::default(), &body).await {
                Ok(created) => self.written.expect(key, &created.metadata, false),
                // A terminating namespace takes no new objects: nothing to do.
                Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {
                    return Ok(());
                }
                Err(err) => anyhow::bail!("failed to create EndpointSlice for Service {key}: {err}"),
            }
        }
        for slice in update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let body = wire_form(slice, trigger_time)?;
            let updated = api
                .replace(&name, &PostParams::default(), &body)
                .await
                .map_err(|err| {
                    anyhow::anyhow!("failed to update {name} EndpointSlice for Service {key}: {err}")
                })?;
            self.written.expect(key, &updated.metadata, false);
        }
        for slice in delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => self.written.expect(key, &slice.metadata, true),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => anyhow::bail!("failed to delete {name} EndpointSlice for Service {key}: {err}"),
            }
        }
        Ok(())
    }
}

/// A slice as sent: the trigger-time annotation set (or cleared), and empty endpoint and port
/// lists as `null`, which is how upstream's API server returns them.
fn wire_form(
    mut slice: EndpointSlice,
    trigger_time: Option<jiff::Timestamp>,
) -> anyhow::Result<DynamicObject> {
    let annotations = slice.metadata.annotations.get_or_insert_with(Default::default);
    match trigger_time {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_owned(), util::format_trigger_time(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if annotations.is_empty() {
        slice.metadata.annotations = None;
    }
    let mut value = serde_json::to_value(&slice)?;
    value["apiVersion"] = "discovery.k8s.io/v1".into();
    value["kind"] = "EndpointSlice".into();
    for list in ["endpoints", "ports"] {
        if value[list].as_array().is_none_or(Vec::is_empty) {
            value[list] = Value::Null;
        }
    }
    Ok(serde_json::from_value(value)?)
}

/// Writes not yet seen in the watch (upstream's `EndpointSliceTracker`): syncing on a cache
/// that misses a slice we just created would create it again.
#[derive(Default)]
pub(crate) struct Written {
    by_service: Mutex<HashMap<String, Vec<Expected>>>,
}

struct Expected {
    name: String,
    /// The resourceVersion our write produced, or `None` for a deletion.
    resource_version: Option<u64>,
    at: Instant,
}

impl Written {
    pub(crate) fn expect(
        &self,
        service: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        deleted: bool,
    ) {
        let name = meta.name.clone().unwrap_or_default();
        let resource_version = if deleted {
            None
        } else {
            Some(parse_rv(meta.resource_version.as_deref()))
        };
        let mut map = self.by_service.lock().expect("written lock");
        let list = map.entry(service.to_owned()).or_default();
        list.retain(|e| e.name != name);
        list.push(Expected {
            name,
            resource_version,
            at: Instant::now(),
        });
    }

    /// The name of a slice the cache does not show as we wrote it yet, if any. Expectations
    /// met (or too old to wait for) are dropped.
    pub(crate) fn stale<T: kube::Resource>(&self, service: &str, cached: &[Arc<T>]) -> Option<String> {
        let mut map = self.by_service.lock().expect("written lock");
        let list = map.get_mut(service)?;
        let cached_rv = |name: &str| {
            cached
                .iter()
                .find(|s| s.meta().name.as_deref() == Some(name))
                .map(|s| parse_rv(s.meta().resource_version.as_deref()))
        };
        list.retain(|e| {
            let met = match (e.resource_version, cached_rv(&e.name)) {
                (None, seen) => seen.is_none(),
                (Some(want), Some(seen)) => seen >= want,
                (Some(_), None) => false,
            };
            !met && e.at.elapsed() < EXPECTATION_TIMEOUT
        });
        let stale = list.first().map(|e| e.name.clone());
        if list.is_empty() {
            map.remove(service);
        }
        stale
    }

    /// Whether writes for `service` wait to show in the watch.
    pub(crate) fn pending(&self, service: &str) -> bool {
        self.by_service
            .lock()
            .expect("written lock")
            .contains_key(service)
    }

    pub(crate) fn forget(&self, service: &str) {
        self.by_service.lock().expect("written lock").remove(service);
    }
}

/// rkube's resourceVersions are the store's revisions: numbers that only grow.
fn parse_rv(rv: Option<&str>) -> u64 {
    rv.and_then(|rv| rv.parse().ok()).unwrap_or(0)
}
