//! The Endpoints controller (upstream's `endpoints-controller`): every Service with a selector
//! has a core/v1 Endpoints of the same name listing its pods' addresses — ready ones under
//! `addresses`, others under `notReadyAddresses` — in upstream's repacked subsets
//! ([`subsets`]), with the service's labels, the headless label, the trigger-time annotation,
//! and at most 1000 addresses (`endpoints.kubernetes.io/over-capacity: truncated`). The
//! Endpoints of a deleted Service are deleted; selectorless services' are left to their users.

pub mod subsets;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use crate::Context;
use crate::endpointslice::{AbortOnDrop, Written, object_key};
use crate::informer::{self, Cache, Change};
use crate::pod_endpoints::{self as util, HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME, TriggerTimes};
use crate::workqueue::{self, WorkQueue};

/// Workers (`--concurrent-endpoint-syncs`, 5).
const WORKERS: usize = 5;
/// Annotation marking truncated Endpoints, and its value.
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
const TRUNCATED: &str = "truncated";
/// Leader-election records kept in Endpoints (old clients): never deleted as leftovers.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

pub fn start(ctx: Context) -> BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

struct Controller {
    client: kube::Client,
    recorder: clientkit::Recorder,
    services: Cache<Service>,
    endpoints: Cache<Endpoints>,
    pods: Cache<Pod>,
    trigger_times: TriggerTimes,
    written: Written,
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let shared: Arc<std::sync::OnceLock<Arc<Controller>>> = Arc::default();
    let (services, _services_subscription) = {
        let q = queue.clone();
        ctx.services.subscribe(move |(old, new): Change<Service>| {
            let svc = new.as_ref().or(old.as_ref()).expect("a change has an object");
            q.add(object_key(&svc.metadata));
        })
    };
    let (endpoints, endpoints_feed) = {
        let q = queue.clone();
        let shared = shared.clone();
        informer::informer(
            Api::<Endpoints>::all(ctx.client.clone()),
            move |(old, new): Change<Endpoints>| {
                // Deleted Endpoints of a service with a selector come back; and a sync held
                // back until our own write shows in the watch goes on as soon as it does
                // (upstream waits for its retry instead). Other changes are left alone:
                // Endpoints written before their Service must not be taken for leftovers.
                let Some(ep) = new.as_ref().or(old.as_ref()) else {
                    return;
                };
                let key = object_key(&ep.metadata);
                let ours_pending = shared.get().is_some_and(|c| c.written.pending(&key));
                if new.is_none() || ours_pending {
                    q.add(key);
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
        recorder: clientkit::Recorder::new(ctx.client.clone(), "endpoint-controller"),
        services,
        endpoints,
        pods,
        trigger_times: TriggerTimes::default(),
        written: Written::default(),
    });
    let _ = shared.set(controller.clone());
    let feeds = AbortOnDrop(vec![tokio::spawn(endpoints_feed)]);
    controller.services.wait_synced().await;
    controller.endpoints.wait_synced().await;
    controller.pods.wait_synced().await;
    for svc in controller.services.all() {
        queue.add(object_key(&svc.metadata));
    }
    // Endpoints left from services deleted while no controller ran (upstream's
    // `checkLeftoverEndpoints`).
    for ep in controller.endpoints.all() {
        let leader = ep
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
        if !leader {
            queue.add(object_key(&ep.metadata));
        }
    }
    let c = controller.clone();
    workqueue::run_workers(queue, WORKERS, "endpoints-controller", move |key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    })
    .await;
    drop(feeds);
    Ok(())
}

impl Controller {
    async fn sync(&self, key: &str) -> anyhow::Result<()> {
        let (namespace, name) = key.split_once('/').unwrap_or(("", key));
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), namespace);
        let Some(svc) = self.services.get(namespace, name) else {
            // The service is gone: so are its Endpoints.
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(err) => return Err(err.into()),
            }
            self.trigger_times.forget(key);
            self.written.forget(key);
            return Ok(());
        };
        if util::is_external_name(&svc) {
            return Ok(());
        }
        let Some(selector) = util::selector(&svc) else {
            return Ok(());
        };
        let pods = util::selected_pods(&svc, selector, &self.pods);
        // Computed on every sync so the tracker keeps up even when nothing is written.
        let trigger_time = self.trigger_times.compute(&svc, &pods);
        let subsets = subsets::subsets_for(&svc, &pods);

        let current = self.endpoints.get(namespace, name);
        let cached: Vec<Arc<Endpoints>> = current.iter().cloned().collect();
        if let Some(stale) = self.written.stale(key, &cached) {
            anyhow::bail!("endpoints informer cache is out of date for {stale}");
        }
        let service_labels = svc.metadata.labels.clone().unwrap_or_default();
        if let Some(current) = &current {
            let mut compare_labels = current.metadata.labels.clone().unwrap_or_default();
            compare_labels.remove(HEADLESS_LABEL);
            let current_subsets = subsets::normalized(current.subsets.as_ref());
            let annotations = current.metadata.annotations.as_ref();
            let capacity_ok = subsets::address_count(&current_subsets) <= subsets::MAX_CAPACITY
                && !annotations.is_some_and(|a| a.contains_key(OVER_CAPACITY));
            if current_subsets == subsets::normalized(Some(&subsets))
                && compare_labels == service_labels
                && capacity_ok
            {
                return Ok(());
            }
        }

        let mut new = current.as_deref().cloned().unwrap_or_else(|| Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            subsets: None,
        });
        let mut subsets = subsets;
        let mut annotations: BTreeMap<String, String> = new.metadata.annotations.take().unwrap_or_default();
        match trigger_time {
            Some(t) => {
                annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_owned(), util::format_trigger_time(t));
            }
            None => {
                annotations.remove(LAST_CHANGE_TRIGGER_TIME);
            }
        }
        if subsets::truncate(&mut subsets) {
            annotations.insert(OVER_CAPACITY.to_owned(), TRUNCATED.to_owned());
        } else {
            annotations.remove(OVER_CAPACITY);
        }
        let mut labels = service_labels;
        if !util::is_service_ip_set(&svc) {
            labels.insert(HEADLESS_LABEL.to_owned(), String::new());
        }
        new.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
        new.metadata.labels = (!labels.is_empty()).then_some(labels);
        new.subsets = (!subsets.is_empty()).then_some(subsets);

        let result = match &current {
            None => api.create(&PostParams::default(), &new).await,
            Some(_) => api.replace(name, &PostParams::default(), &new).await,
        };
        let written = match result {
            Ok(written) => written,
            // A terminating namespace takes no new objects: nothing to do.
            Err(kube::Error::Api(e))
                if current.is_none() && e.code == 403 && e.message.contains("being terminated") =>
            {
                return Ok(());
            }
            Err(err) => {
                // Upstream's events, on the Endpoints.
                let (reason, message) = match current {
                    None => (
                        "FailedToCreateEndpoint",
                        format!("Failed to create endpoint for service {key}: {err}"),
                    ),
                    Some(_) => (
                        "FailedToUpdateEndpoint",
                        format!("Failed to update endpoint {key}: {err}"),
                    ),
                };
                let object = clientkit::events::reference(&new);
                self.recorder
                    .record(&object, clientkit::EventType::Warning, reason, &message)
                    .await;
                anyhow::bail!("{message}");
            }
        };
        self.written.expect(key, &written.metadata, false);
        Ok(())
    }
}
