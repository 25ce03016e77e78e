//! The ServiceAccount controller (upstream's `serviceaccount-controller`): every active
//! namespace has a `default` ServiceAccount, created when the namespace appears and again
//! whenever it is deleted.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::Context;
use crate::garbage_collector::queue::WorkQueue;

/// The accounts every namespace gets.
const MANAGED: &[&str] = &["default"];
/// `--concurrent-serviceaccount-syncs`.
const WORKERS: usize = 1;

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: Arc<WorkQueue<String>> = WorkQueue::new();
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    let (accounts, sa_writer) = reflector::store::<ServiceAccount>();
    let ns_events = reflector::reflector(
        ns_writer,
        watcher(
            Api::<Namespace>::all(ctx.client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    // Only the managed names matter: a deleted one is put back.
    let sa_events = reflector::reflector(
        sa_writer,
        watcher(
            Api::<ServiceAccount>::all(ctx.client.clone()),
            watcher::Config::default().fields("metadata.name=default"),
        ),
    )
    .default_backoff();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (queue, client) = (queue.clone(), ctx.client.clone());
        let (namespaces, accounts) = (namespaces.clone(), accounts.clone());
        tasks.spawn(async move {
            loop {
                let ns = queue.get().await;
                match sync(&client, &namespaces, &accounts, &ns).await {
                    Ok(()) => queue.forget(&ns),
                    Err(err) => {
                        tracing::info!(namespace = %ns, "serviceaccount controller: {err}");
                        queue.add_rate_limited(ns.clone());
                    }
                }
                queue.done(&ns);
            }
        });
    }
    let sa_queue = queue.clone();
    tasks.spawn(async move {
        futures::pin_mut!(sa_events);
        while let Some(event) = sa_events.next().await {
            if let Ok(watcher::Event::Delete(sa)) = event
                && let Some(ns) = sa.metadata.namespace
            {
                sa_queue.add(ns);
            }
        }
    });
    futures::pin_mut!(ns_events);
    while let Some(ns) = ns_events.next().await {
        match ns {
            Ok(ns) => queue.add(ns.metadata.name.unwrap_or_default()),
            Err(err) => tracing::debug!("serviceaccount controller: namespace watch: {err}"),
        }
    }
    anyhow::bail!("namespace watch ended")
}

async fn sync(
    client: &kube::Client,
    namespaces: &Store<Namespace>,
    accounts: &Store<ServiceAccount>,
    namespace: &str,
) -> Result<(), kube::Error> {
    let Some(ns) = namespaces.get(&ObjectRef::new(namespace)) else {
        return Ok(());
    };
    if ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Active") {
        return Ok(());
    }
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    for name in MANAGED {
        if accounts.get(&ObjectRef::new(name).within(namespace)).is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*name).to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            // The namespace started terminating meanwhile.
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("being terminated") => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
