//! The root CA publisher (upstream's `root-ca-cert-publisher`): every namespace has a
//! `kube-root-ca.crt` ConfigMap whose `ca.crt` is the cluster CA, so pods can verify the API
//! server (the projected `kube-api-access-…` volume mounts it). Created with a namespace, put
//! back when deleted, and set right again when edited.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::Context;
use crate::garbage_collector::queue::WorkQueue;

/// The ConfigMap's name and key, as upstream's.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal \
    endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across \
    distributions of Kubernetes clusters.";

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    // Upstream does not start the controller without a root CA either.
    let Some(root_ca) = ctx.config.root_ca.clone() else {
        return std::future::pending().await;
    };
    let queue: Arc<WorkQueue<String>> = WorkQueue::new();
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    let (maps, cm_writer) = reflector::store::<ConfigMap>();
    let ns_events = reflector::reflector(
        ns_writer,
        watcher(
            Api::<Namespace>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let cm_events = reflector::reflector(
        cm_writer,
        watcher(
            Api::<ConfigMap>::all(ctx.client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}")),
        ),
    )
    .default_backoff();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (queue, client, root_ca) = (queue.clone(), ctx.client.clone(), root_ca.clone());
        let (namespaces, maps) = (namespaces.clone(), maps.clone());
        tasks.spawn(async move {
            loop {
                let ns = queue.get().await;
                match sync(&client, &namespaces, &maps, &root_ca, &ns).await {
                    Ok(()) => queue.forget(&ns),
                    Err(err) => {
                        tracing::info!(namespace = %ns, "root-ca-cert-publisher: {err}");
                        queue.add_rate_limited(ns.clone());
                    }
                }
                queue.done(&ns);
            }
        });
    }
    let cm_queue = queue.clone();
    tasks.spawn(async move {
        futures::pin_mut!(cm_events);
        while let Some(event) = cm_events.next().await {
            let touched = match event {
                Ok(watcher::Event::Delete(cm) | watcher::Event::Apply(cm)) => cm.metadata.namespace,
                _ => None,
            };
            if let Some(ns) = touched {
                cm_queue.add(ns);
            }
        }
    });
    futures::pin_mut!(ns_events);
    while let Some(ns) = ns_events.next().await {
        match ns {
            Ok(ns) => queue.add(ns.metadata.name.unwrap_or_default()),
            Err(err) => tracing::debug!("root-ca-cert-publisher: namespace watch: {err}"),
        }
    }
    anyhow::bail!("namespace watch ended")
}

/// Whether `cm` is exactly what the publisher writes.
fn is_current(cm: &ConfigMap, root_ca: &str) -> bool {
    let data_ok = cm
        .data
        .as_ref()
        .is_some_and(|d| d.len() == 1 && d.get(KEY).map(String::as_str) == Some(root_ca));
    let annotation_ok = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|a| a == DESCRIPTION);
    data_ok && annotation_ok && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty)
}

async fn sync(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    maps: &Store<ConfigMap>,
    root_ca: &str,
    namespace: &str,
) -> Result<(), kube::Error> {
    let Some(ns) = namespaces.get(&ObjectRef::new(namespace)) else {
        return Ok(());
    };
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let data = BTreeMap::from([(KEY.to_owned(), root_ca.to_owned())]);
    let annotations = |existing: Option<BTreeMap<String, String>>| {
        let mut a = existing.unwrap_or_default();
        a.insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
        Some(a)
    };
    let result = match maps.get(&ObjectRef::new(CONFIG_MAP).within(namespace)) {
        None => {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(CONFIG_MAP.to_owned()),
                    annotations: annotations(None),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            api.create(&PostParams::default(), &cm).await
        }
        Some(cm) if is_current(&cm, root_ca) => return Ok(()),
        Some(cm) => {
            let mut cm = (*cm).clone();
            cm.metadata.annotations = annotations(cm.metadata.annotations.take());
            cm.data = Some(data);
            cm.binary_data = None;
            api.replace(CONFIG_MAP, &PostParams::default(), &cm).await
        }
    };
    match result {
        Ok(_) => Ok(()),
        // Someone else created it meanwhile (the watch brings it back here), or the namespace
        // started terminating.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 || s.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_content_is_current() {
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_owned(),
                    DESCRIPTION.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(KEY.to_owned(), "CA".to_owned())])),
            ..ConfigMap::default()
        };
        assert!(is_current(&cm, "CA"));
        assert!(!is_current(&cm, "other CA"));
        cm.data.as_mut().unwrap().insert("extra".into(), "x".into());
        assert!(!is_current(&cm, "CA"));
    }
}
