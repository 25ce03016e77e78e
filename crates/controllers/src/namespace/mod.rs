//! The namespace controller (upstream's `namespace-controller`): empties a terminating
//! namespace, then releases it by removing the `kubernetes` finalizer through
//! `namespaces/NAME/finalize` (the API server removes the namespace once no finalizer is left).
//!
//! A namespace is looked at 5 s after each change that shows it deleted (upstream's grace
//! period for HA API servers to see the deletion), every 5 minutes again, and while content
//! remains after half the time its pods need to terminate (or on a backoff when deletion failed).

mod deleter;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};

use crate::Context;
use crate::garbage_collector::queue::WorkQueue;
use deleter::Outcome;

/// Upstream's `namespaceDeletionGracePeriod`.
const DELETION_GRACE: Duration = Duration::from_secs(5);
/// `--namespace-sync-period`.
const RESYNC: Duration = Duration::from_secs(300);
/// `--concurrent-namespace-syncs`.
const WORKERS: usize = 10;

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: Arc<WorkQueue<String>> = WorkQueue::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let (queue, client) = (queue.clone(), ctx.client.clone());
        tasks.spawn(async move {
            loop {
                let name = queue.get().await;
                match deleter::delete(&client, &name).await {
                    Ok(Outcome::Done) => queue.forget(&name),
                    Ok(Outcome::Remaining { estimate_seconds }) => {
                        queue.forget(&name);
                        queue.add_after(name.clone(), Duration::from_secs(estimate_seconds / 2 + 1));
                    }
                    Err(err) => {
                        tracing::info!(namespace = %name, "namespace deletion: {err:#}");
                        queue.add_rate_limited(name.clone());
                    }
                }
                queue.done(&name);
            }
        });
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let namespaces = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(namespaces);
    let mut resync = tokio::time::interval(RESYNC);
    resync.tick().await;
    let mut terminating: std::collections::BTreeSet<String> = Default::default();
    loop {
        tokio::select! {
            event = namespaces.next() => {
                let Some(event) = event else { anyhow::bail!("namespace watch ended") };
                let ns = match event {
                    Ok(watcher::Event::Apply(ns) | watcher::Event::InitApply(ns)) => ns,
                    Ok(watcher::Event::Delete(ns)) => {
                        terminating.remove(ns.metadata.name.as_deref().unwrap_or_default());
                        continue;
                    }
                    Ok(_) => continue,
                    Err(err) => {
                        tracing::debug!("namespace watch: {err}");
                        continue;
                    }
                };
                if ns.metadata.deletion_timestamp.is_some()
                    && let Some(name) = ns.metadata.name
                {
                    terminating.insert(name.clone());
                    queue.add_after(name, DELETION_GRACE);
                }
            }
            _ = resync.tick() => {
                for name in &terminating {
                    queue.add_after(name.clone(), DELETION_GRACE);
                }
            }
        }
    }
}
