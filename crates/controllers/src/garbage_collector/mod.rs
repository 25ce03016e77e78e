//! The garbage collector (upstream's `garbage-collector-controller`): deletes objects whose
//! owners are gone, and carries out foreground and orphan deletion.
//!
//! Every deletable resource the discovery reports (custom resources included, refreshed every
//! 30 s; Events excepted) is watched for metadata only. `graph` keeps owner → dependents by
//! uid; `collector` holds the two work queues' logic (`attempt_to_delete`: a dependent whose
//! owners are all absent — confirmed by a live read with uid check — is deleted, and an owner
//! with `foregroundDeletion` waits for its blocking dependents; `attempt_to_orphan`: an owner
//! with `orphan` releases its dependents).

mod collector;
mod graph;
pub(crate) mod queue;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Context;
use crate::discovery::{Resources, Served};
use graph::{Change, Graph};
use queue::WorkQueue;

/// How often the set of watched resources follows discovery (upstream: 30 s).
const RESYNC_DISCOVERY: Duration = Duration::from_secs(30);
/// Concurrent deletes (upstream's `--concurrent-gc-syncs`, 20).
const WORKERS: usize = 20;
/// Resources the collector ignores (upstream's default `GarbageCollectorControllerConfiguration`).
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

pub fn start(ctx: Context) -> futures::future::BoxFuture<'static, anyhow::Result<()>> {
    Box::pin(run(ctx))
}

async fn run(ctx: Context) -> anyhow::Result<()> {
    let resources = Arc::new(RwLock::new(Resources::discover(&ctx.client).await?));
    let (changes_tx, mut changes) = mpsc::unbounded_channel::<Change>();
    let gc = Arc::new(collector::Collector {
        client: ctx.client.clone(),
        resources: resources.clone(),
        graph: Mutex::new(Graph::default()),
        attempt_to_delete: WorkQueue::new(),
        attempt_to_orphan: WorkQueue::new(),
        changes: changes_tx.clone(),
        absent: Mutex::default(),
    });
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let gc = gc.clone();
        workers.spawn(async move { gc.delete_worker().await });
    }
    let orphaner = gc.clone();
    workers.spawn(async move { orphaner.orphan_worker().await });
    let graph_builder = gc.clone();
    workers.spawn(async move {
        while let Some(change) = changes.recv().await {
            graph_builder.apply(change);
        }
    });

    let mut watches: HashMap<(String, String), JoinHandle<()>> = HashMap::new();
    loop {
        let wanted: Vec<Served> = resources
            .read()
            .expect("resources lock")
            .preferred()
            .into_iter()
            .filter(|s| ["delete", "list", "watch"].iter().all(|v| s.supports(v)))
            .filter(|s| !IGNORED.contains(&(s.resource.group.as_str(), s.resource.plural.as_str())))
            .collect();
        let keys: Vec<(String, String)> = wanted
            .iter()
            .map(|s| (s.resource.group.clone(), s.resource.plural.clone()))
            .collect();
        watches.retain(|key, task| {
            let keep = keys.contains(key) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for served in wanted {
            let key = (served.resource.group.clone(), served.resource.plural.clone());
            watches
                .entry(key)
                .or_insert_with(|| tokio::spawn(watch(ctx.client.clone(), served, changes_tx.clone())));
        }
        tokio::time::sleep(RESYNC_DISCOVERY).await;
        match Resources::discover(&ctx.client).await {
            Ok(fresh) => *resources.write().expect("resources lock") = fresh,
            Err(err) => tracing::warn!("garbage collector: discovery failed: {err}"),
        }
    }
}

/// Watches one resource's metadata and feeds the graph; a relist reports what vanished
/// meanwhile as deleted (as an informer would).
async fn watch(client: kube::Client, served: Served, changes: mpsc::UnboundedSender<Change>) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &served.resource);
    let mut known: HashMap<String, ()> = HashMap::new();
    let mut relisted: Option<HashMap<String, ()>> = None;
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let upsert = |meta: ObjectMeta| Change::Upsert {
        api_version: served.resource.api_version.clone(),
        kind: served.resource.kind.clone(),
        meta: Box::new(meta),
    };
    while let Some(event) = stream.next().await {
        let sent = match event {
            Ok(watcher::Event::Init) => {
                relisted = Some(HashMap::new());
                Ok(())
            }
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(seen), Some(uid)) = (relisted.as_mut(), obj.metadata.uid.clone()) {
                    seen.insert(uid, ());
                }
                changes.send(upsert(obj.metadata)).map_err(|_| ())
            }
            Ok(watcher::Event::InitDone) => {
                let seen = relisted.take().unwrap_or_default();
                let gone: Vec<String> = known.keys().filter(|u| !seen.contains_key(*u)).cloned().collect();
                known = seen;
                gone.into_iter()
                    .try_for_each(|uid| changes.send(Change::Delete { uid }).map_err(|_| ()))
            }
            Ok(watcher::Event::Apply(obj)) => {
                if let Some(uid) = obj.metadata.uid.clone() {
                    known.insert(uid, ());
                }
                changes.send(upsert(obj.metadata)).map_err(|_| ())
            }
            Ok(watcher::Event::Delete(obj)) => match obj.metadata.uid {
                Some(uid) => {
                    known.remove(&uid);
                    changes.send(Change::Delete { uid }).map_err(|_| ())
                }
                None => Ok(()),
            },
            Err(err) => {
                tracing::debug!(resource = %served.group_resource(), "garbage collector watch: {err}");
                Ok(())
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
